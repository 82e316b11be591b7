//! What a checkpoint holds beyond the weights, so that a run can continue exactly where it stopped:
//! the loss, the optimiser (configuration, step count, state), the batch schedule and seed, the
//! position (epoch, batch, running sums), the history so far, the data flags, and how the run
//! started and how far it goes ([`Origin`]), so that `train --resume` can tell the same run from
//! another one.
//!
//! It is stored as JSON in the safetensors metadata (key `scratchnet.resume`), never as tensors, so
//! PyTorch's strict `load_state_dict` still accepts the file. Optimiser state is kept bit-exact as
//! base64 of little-endian f32.

use crate::checkpoint::{self, Checkpoint};
use crate::data::source::DataArgs;
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::loss::Loss;
use crate::model::Model;
use crate::optim::{Config, Optimizer};
use crate::train::{Controls, EpochStats, Position, Schedule, Trainer};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The metadata key.
pub const KEY: &str = "scratchnet.resume";

/// The resumable state of a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resume {
    /// The loss, as its flag spells it.
    pub loss: String,
    /// The optimiser and its numbers.
    pub optimizer: Config,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Optimiser state: name → base64 of little-endian f32.
    pub state: BTreeMap<String, String>,
    /// How batches are drawn.
    pub schedule: Schedule,
    /// Where the run stopped.
    pub position: Position,
    /// The finished epochs' figures.
    pub history: Vec<EpochStats>,
    /// Where the data came from.
    pub data: DataArgs,
    /// Absent from checkpoints written before it was recorded.
    #[serde(default)]
    pub origin: Origin,
    /// The schedule (where it stands) and clipping.
    #[serde(default)]
    pub controls: Controls,
}

/// What defines a run beyond the trainer's own state: where its weights started, and the epoch
/// count asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// `--init`: the checkpoint the weights started from.
    pub init: Option<String>,
    /// `--initializer`.
    pub initializer: Option<String>,
    /// `--epochs`: the total the run trains to.
    pub epochs: Option<usize>,
}

/// The metadata that makes `trainer`'s checkpoint resumable.
pub fn metadata(
    trainer: &Trainer,
    data: &DataArgs,
    origin: &Origin,
) -> Result<BTreeMap<String, String>> {
    let state = trainer
        .optimizer
        .state
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                STANDARD.encode(v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>()),
            )
        })
        .collect();
    let r = Resume {
        loss: trainer.loss.to_string(),
        optimizer: trainer.optimizer.config.clone(),
        steps: trainer.optimizer.steps,
        state,
        schedule: trainer.schedule.clone(),
        position: trainer.position.clone(),
        history: trainer.history.clone(),
        data: data.clone(),
        origin: origin.clone(),
        controls: trainer.controls.clone(),
    };
    let json = serde_json::to_string(&r)
        .map_err(|e| Error::invalid(format!("cannot encode the training state: {e}")))?;
    Ok(BTreeMap::from([(KEY.to_string(), json)]))
}

impl Resume {
    /// Reads the resumable state of a checkpoint.
    ///
    /// # Errors
    /// The file is not a checkpoint, or was not written by `scratchnet train` (a PyTorch state dict
    /// has weights but no training state: start a new run from it with `--init`).
    pub fn read(path: &Path) -> Result<Resume> {
        Self::of(&checkpoint::read(path)?)
    }

    /// The resumable state of a checkpoint already read.
    ///
    /// # Errors
    /// As [`Resume::read`].
    pub fn of(ck: &Checkpoint) -> Result<Resume> {
        let err = |msg: String| Error::Checkpoint {
            path: ck.path.clone(),
            msg,
        };
        let json = ck.metadata.get(KEY).ok_or_else(|| {
            err("holds no training state to resume (not written by `scratchnet train`); start a new run from its weights with --init".into())
        })?;
        serde_json::from_str(json)
            .map_err(|e| err(format!("its training state is unreadable ({e})")))
    }

    /// The loss a checkpoint was trained with, if it says.
    pub fn loss_of(ck: &Checkpoint) -> Option<Loss> {
        Self::of(ck).ok().and_then(|r| r.loss.parse().ok())
    }

    /// A trainer that continues the run, around `model` (already loaded from `ck`).
    ///
    /// # Errors
    /// Optimiser state that does not match the model's parameters.
    pub fn into_trainer(self, mut model: Model, ck: &Checkpoint) -> Result<Trainer> {
        let err = |msg: String| Error::Checkpoint {
            path: ck.path.clone(),
            msg,
        };
        let mut sizes = BTreeMap::new();
        model.net().visit_params("", &mut |name, p| {
            sizes.insert(name.to_string(), p.value.len());
        });
        let mut optimizer = Optimizer::new(self.optimizer)?;
        optimizer.steps = self.steps;
        for (name, b64) in self.state {
            let bytes = STANDARD
                .decode(&b64)
                .map_err(|e| err(format!("optimiser state '{name}' is corrupt ({e})")))?;
            if bytes.len() % 4 != 0 {
                return Err(err(format!("optimiser state '{name}' is truncated")));
            }
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let param = name.split_once('/').map_or("", |(_, p)| p);
            if sizes.get(param) != Some(&(bytes.len() / 4)) {
                return Err(err(format!(
                    "optimiser state '{name}' does not match the model's parameters"
                )));
            }
            optimizer.state.insert(name, values);
        }
        Ok(Trainer {
            model,
            optimizer,
            loss: self.loss.parse()?,
            schedule: self.schedule,
            position: self.position,
            history: self.history,
            controls: self.controls,
            observer: None,
        })
    }
}
