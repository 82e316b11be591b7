//! `scratchnet compare`: a checkpoint run layer by layer here and in `torch.nn`, outputs and
//! gradients side by side, as the tutorials compared them by hand.
//!
//! Our half writes a trace (the batch `x`, a random `r`, each top-level layer's output, ∂L/∂input
//! and parameter gradients for `L = Σ r ⊙ y`) as .npy files; `tools/compare_torch.py`, embedded
//! here, rebuilds the model as `nn.Sequential`, loads the checkpoint strictly, does the same and
//! prints the differences. Layers are built one by one from the model text, so none runs fused.

use crate::checkpoint;
use crate::data::npy::write_npy_f32;
use crate::error::{Error, Result};
use crate::layers::{Layer, Mode};
use crate::tensor::Tensor;
use rand::SeedableRng;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = include_str!("../tools/compare_torch.py");

/// The Python interpreter: `$SCRATCHNET_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("SCRATCHNET_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Checks that PyTorch can be imported, or says how to install it.
fn check_torch() -> Result<()> {
    let out = Command::new(python())
        .args(["-c", "import torch, numpy, safetensors"])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::invalid(format!(
            "compare needs PyTorch, numpy and safetensors in {}: pip install torch numpy safetensors ({})",
            python(),
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        ))),
        Err(e) => Err(Error::invalid(format!(
            "compare needs Python with PyTorch, and {} cannot run ({e}): install Python 3, then pip install torch numpy safetensors",
            python()
        ))),
    }
}

/// Writes our trace of `x` through the checkpoint's model into `dir`.
fn trace(ck: &checkpoint::Checkpoint, text: &str, x: &Tensor, dir: &Path) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    crate::model::Model::build(text, &x.shape()[1..], &mut rng)?;
    let calls = crate::spec::parse(text)?;
    let mut budget = usize::MAX;
    let mut layers = calls
        .iter()
        .map(|c| crate::spec::build(c, text, &mut budget, &mut rng))
        .collect::<Result<Vec<Box<dyn Layer>>>>()?;
    let save = |name: &str, t: &Tensor| {
        write_npy_f32(&dir.join(format!("{name}.npy")), t.shape(), t.data())
    };
    // Weights: tensor `I.NAME` of the checkpoint goes to parameter NAME of layer I.
    for (i, layer) in layers.iter_mut().enumerate() {
        let mut missing = None;
        layer.visit_params(
            &format!("{i}."),
            &mut |name, p| match ck.tensors.get(name) {
                Some(t) if t.shape() == p.value.shape() => p.value = t.clone(),
                _ => missing = Some(name.to_string()),
            },
        );
        if let Some(name) = missing {
            return Err(Error::Checkpoint {
                path: ck.path.clone(),
                msg: format!("no tensor '{name}' of the right shape for the model"),
            });
        }
    }
    save("x", x)?;
    let mut h = x.clone();
    for (i, layer) in layers.iter_mut().enumerate() {
        h = layer.forward(h, Mode::Eval)?;
        save(&format!("out_{i}"), &h)?;
    }
    let r = crate::init::uniform(
        h.shape(),
        -1.0,
        1.0,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
    );
    save("r", &r)?;
    let mut g = r;
    for (i, layer) in layers.iter_mut().enumerate().rev() {
        g = layer.backward(g)?;
        save(&format!("gin_{i}"), &g)?;
        let mut grads = Vec::new();
        layer.visit_params(&format!("{i}."), &mut |name, p| {
            grads.push((name.to_string(), p.grad.clone()))
        });
        for (name, grad) in grads {
            save(&format!("grad_{name}"), &grad)?;
        }
    }
    Ok(())
}

/// Runs `x` through the checkpoint here and in PyTorch and prints the differences per layer.
///
/// # Errors
/// PyTorch is not installed (the message says how to install it), the checkpoint or input is
/// unreadable or does not fit, or torch cannot build the model.
pub fn compare(path: &Path, text: Option<&str>, x: &Tensor) -> Result<()> {
    check_torch()?;
    let ck = checkpoint::read(path)?;
    let text = text.or(ck.model_text()).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: "the checkpoint has no 'model' metadata; pass --model TEXT".into(),
    })?;
    let text = crate::spec::expand(text).trim().to_string();
    let dir = std::env::temp_dir().join(format!("scratchnet-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = trace(&ck, &text, x, &dir).and_then(|()| {
        let status = Command::new(python())
            .args([
                "-c",
                SCRIPT,
                &path.to_string_lossy(),
                &text,
                &dir.to_string_lossy(),
            ])
            .status()
            .map_err(|e| Error::invalid(format!("cannot run {}: {e}", python())))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::invalid(
                "the PyTorch side of the comparison failed (its message is above)",
            ))
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
