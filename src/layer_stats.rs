//! `train --layer-stats FILE.csv` (and the dashboard's layer panel): the health of every parameter tensor while training, sampled
//! every few batches, as Karpathy's lecture on activations and gradients reads it.
//!
//! Per sampled batch `k` and parameter `w` (before step `k`): mean and standard deviation of `w`
//! and of its gradient `g`, and the update-to-weight ratio `‖w_{k+1} − w_k‖ / ‖w_k‖` of the step
//! actually taken (healthy near 1e-3), read at the next batch. Per layer that runs, on a fixed
//! probe batch in evaluation mode: mean and standard deviation of its output, and for Tanh the
//! fraction with |y| > 0.97, for Sigmoid with y < 0.03 or y > 0.97, for ReLU the fraction of units
//! that are 0 for every probe sample (dead). Sums are in f64, in element order.

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::model::Model;
use crate::tensor::Tensor;
use crate::train::Observer;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CSV header.
pub const HEADER: &str = "epoch,batch,kind,name,mean,std,grad_mean,grad_std,update_ratio,saturated";

/// One parameter tensor at a sampled batch.
#[derive(Clone, Debug, Serialize)]
pub struct ParamStat {
    /// Its name (`0.weight`).
    pub name: String,
    /// Mean and standard deviation of the weights before the step.
    pub mean: f64,
    /// See `mean`.
    pub std: f64,
    /// Mean and standard deviation of the gradient the step used.
    pub grad_mean: f64,
    /// See `grad_mean`.
    pub grad_std: f64,
    /// `‖w_{k+1} − w_k‖ / ‖w_k‖` of the step taken.
    pub update_ratio: f64,
}

/// One layer's output on the probe batch at a sampled batch.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationStat {
    /// The layer's index in the model.
    pub index: usize,
    /// The layer, as printed (`Tanh()`).
    pub layer: String,
    /// Mean and standard deviation of its output.
    pub mean: f64,
    /// See `mean`.
    pub std: f64,
    /// Saturated (Tanh, Sigmoid) or dead (ReLU) fraction; `None` for other layers.
    pub saturated: Option<f64>,
}

/// Everything measured at one sampled batch (`epoch`, `batch` from 0).
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// The epoch, from 0.
    pub epoch: usize,
    /// The batch within the epoch, from 0.
    pub batch: usize,
    /// Every parameter tensor, in visiting order.
    pub params: Vec<ParamStat>,
    /// Every layer that runs.
    pub activations: Vec<ActivationStat>,
}

/// Takes a [`Sample`] every `every` batches; each is complete one batch later, when the update it
/// measures has been applied. Used by `--layer-stats` and by the dashboard.
pub struct Sampler {
    every: usize,
    batches_per_epoch: usize,
    /// A sample waiting for its update, and the weights before it.
    pending: Option<(Sample, Vec<Vec<f32>>)>,
    /// The probe batch for activation statistics.
    probe: Tensor,
}

/// `(mean, standard deviation)` of `v` (population, f64 sums).
fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl Sampler {
    /// Samples batches 0, `every`, 2·`every`, … of each epoch (but its last), with activations on
    /// `probe` (`[n, …sample shape]`).
    pub fn new(every: usize, batches_per_epoch: usize, probe: Tensor) -> Sampler {
        Sampler {
            every: every.max(1),
            batches_per_epoch,
            pending: None,
            probe,
        }
    }

    /// Call before each optimiser step (an [`Observer`]'s moment): starts a sample at a sampled
    /// batch, and returns the one started at the batch before, now that its update is known.
    ///
    /// # Errors
    /// The probe batch cannot run through the model.
    pub fn before_step(
        &mut self,
        model: &mut Model,
        epoch: usize,
        batch: usize,
    ) -> Result<Option<Sample>> {
        let sample = batch.is_multiple_of(self.every) && batch + 1 < self.batches_per_epoch;
        let pending = self.pending.take();
        if pending.is_none() && !sample {
            return Ok(None);
        }
        let mut params = Vec::new();
        let mut weights = Vec::new();
        let mut ratios = Vec::new();
        model.net().visit_params("", &mut |name, p| {
            if let Some((_, before)) = &pending {
                let w = &before[ratios.len()];
                let (mut du, mut ww) = (0.0f64, 0.0f64);
                for (now, then) in p.value.data().iter().zip(w) {
                    du += (*now as f64 - *then as f64).powi(2);
                    ww += (*then as f64).powi(2);
                }
                ratios.push(du.sqrt() / ww.sqrt().max(f64::MIN_POSITIVE));
            }
            if sample {
                let (mean, std) = mean_std(p.value.data());
                let (grad_mean, grad_std) = mean_std(p.grad.data());
                params.push(ParamStat {
                    name: name.to_string(),
                    mean,
                    std,
                    grad_mean,
                    grad_std,
                    update_ratio: f64::NAN,
                });
                weights.push(p.value.data().to_vec());
            }
        });
        if sample {
            let activations = self.activations(model)?;
            let started = Sample {
                epoch,
                batch,
                params,
                activations,
            };
            self.pending = Some((started, weights));
        }
        Ok(pending.map(|(mut done, _)| {
            for (p, r) in done.params.iter_mut().zip(ratios) {
                p.update_ratio = r;
            }
            done
        }))
    }

    /// Every running layer's output on the probe batch.
    fn activations(&self, model: &mut Model) -> Result<Vec<ActivationStat>> {
        let outputs = model.net().outputs(self.probe.clone())?;
        Ok(outputs
            .into_iter()
            .map(|(index, layer, y)| {
                let (mean, std) = mean_std(y.data());
                let v = y.data();
                let frac = |n: usize| n as f64 / v.len().max(1) as f64;
                let saturated = if layer.starts_with("Tanh") {
                    Some(frac(v.iter().filter(|y| y.abs() > 0.97).count()))
                } else if layer.starts_with("Sigmoid") {
                    Some(frac(v.iter().filter(|y| **y < 0.03 || **y > 0.97).count()))
                } else if layer.starts_with("ReLU") {
                    // Dead: a unit that is 0 for every probe sample.
                    let per = v.len() / y.shape()[0].max(1);
                    let dead = (0..per)
                        .filter(|u| v.iter().skip(*u).step_by(per.max(1)).all(|y| *y == 0.0))
                        .count();
                    Some(dead as f64 / per.max(1) as f64)
                } else {
                    None
                };
                ActivationStat {
                    index,
                    layer,
                    mean,
                    std,
                    saturated,
                }
            })
            .collect())
    }
}

/// Writes one CSV row per parameter tensor and per running layer for every sample.
pub struct LayerStats {
    out: BufWriter<File>,
    path: PathBuf,
    sampler: Sampler,
    failed: Option<std::io::Error>,
}

impl LayerStats {
    /// Creates `path` with the header; samples as [`Sampler::new`].
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(
        path: &Path,
        every: usize,
        batches_per_epoch: usize,
        probe: Tensor,
    ) -> Result<LayerStats> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{HEADER}").map_err(|e| Error::io(path, e))?;
        Ok(LayerStats {
            out,
            path: path.to_path_buf(),
            sampler: Sampler::new(every, batches_per_epoch, probe),
            failed: None,
        })
    }

    /// Writes what is buffered.
    ///
    /// # Errors
    /// This or an earlier write failed.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(Error::io(&self.path, e));
        }
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn write(&mut self, s: &Sample) -> std::io::Result<()> {
        let (e, b) = (s.epoch + 1, s.batch + 1);
        for p in &s.params {
            writeln!(
                self.out,
                "{e},{b},param,{},{},{},{},{},{},",
                p.name, p.mean, p.std, p.grad_mean, p.grad_std, p.update_ratio
            )?;
        }
        for a in &s.activations {
            let saturated = a.saturated.map_or(String::new(), |f| f.to_string());
            writeln!(
                self.out,
                "{e},{b},activation,{} {},{},{},,,,{saturated}",
                a.index,
                a.layer.replace(',', ";"),
                a.mean,
                a.std
            )?;
        }
        Ok(())
    }
}

impl Observer for LayerStats {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        let written = match self.sampler.before_step(model, epoch, batch) {
            Ok(Some(s)) => self.write(&s),
            Ok(None) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        if let Err(e) = written {
            self.failed.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!((m, s), (2.0, 1.0));
    }
}
