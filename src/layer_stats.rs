//! `train --layer-stats FILE.csv`: the health of every parameter tensor while training, sampled
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
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The CSV header.
pub const HEADER: &str = "epoch,batch,kind,name,mean,std,grad_mean,grad_std,update_ratio,saturated";

/// A sampled batch waiting for its update: epoch, batch, rows without the ratio, the weights then.
struct Pending {
    epoch: usize,
    batch: usize,
    rows: Vec<String>,
    weights: Vec<Vec<f32>>,
}

/// Writes one CSV row per parameter tensor for every `every`-th batch.
pub struct LayerStats {
    out: BufWriter<File>,
    path: PathBuf,
    every: usize,
    batches_per_epoch: usize,
    pending: Option<Pending>,
    /// The probe batch for activation statistics.
    probe: Tensor,
    failed: Option<std::io::Error>,
}

/// `(mean, standard deviation)` of `v` (population, f64 sums).
fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl LayerStats {
    /// Creates `path` with the header.
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
            every: every.max(1),
            batches_per_epoch,
            pending: None,
            probe,
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
}

impl Observer for LayerStats {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        let mut rows = Vec::new();
        let mut weights = Vec::new();
        let sample = batch.is_multiple_of(self.every) && batch + 1 < self.batches_per_epoch;
        let pending = self.pending.take();
        if pending.is_none() && !sample {
            return;
        }
        let mut ratios = Vec::new();
        model.net().visit_params("", &mut |name, p| {
            if let Some(before) = &pending {
                let w = &before.weights[ratios.len()];
                let (mut du, mut ww) = (0.0f64, 0.0f64);
                for (now, then) in p.value.data().iter().zip(w) {
                    du += (*now as f64 - *then as f64).powi(2);
                    ww += (*then as f64).powi(2);
                }
                ratios.push(du.sqrt() / ww.sqrt().max(f64::MIN_POSITIVE));
            }
            if sample {
                let (wm, ws) = mean_std(p.value.data());
                let (gm, gs) = mean_std(p.grad.data());
                rows.push(format!("param,{name},{wm},{ws},{gm},{gs}"));
                weights.push(p.value.data().to_vec());
            }
        });
        if let Some(p) = pending {
            for (row, ratio) in p.rows.iter().zip(&ratios) {
                if let Err(err) =
                    writeln!(self.out, "{},{},{row},{ratio},", p.epoch + 1, p.batch + 1)
                {
                    self.failed.get_or_insert(err);
                }
            }
        }
        if sample {
            self.activations(model, epoch, batch);
            self.pending = Some(Pending {
                epoch,
                batch,
                rows,
                weights,
            });
        }
    }
}

impl LayerStats {
    /// One row per layer output on the probe batch.
    fn activations(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        let outputs = match model.net().outputs(self.probe.clone()) {
            Ok(o) => o,
            Err(e) => {
                self.failed
                    .get_or_insert(std::io::Error::other(e.to_string()));
                return;
            }
        };
        for (i, layer, y) in outputs {
            let (m, s) = mean_std(y.data());
            let v = y.data();
            let frac = |n: usize| n as f64 / v.len().max(1) as f64;
            let saturated = if layer.starts_with("Tanh") {
                frac(v.iter().filter(|y| y.abs() > 0.97).count()).to_string()
            } else if layer.starts_with("Sigmoid") {
                frac(v.iter().filter(|y| **y < 0.03 || **y > 0.97).count()).to_string()
            } else if layer.starts_with("ReLU") {
                // Dead: a unit that is 0 for every probe sample.
                let per = v.len() / y.shape()[0].max(1);
                let dead = (0..per)
                    .filter(|u| v.iter().skip(*u).step_by(per.max(1)).all(|y| *y == 0.0))
                    .count();
                (dead as f64 / per.max(1) as f64).to_string()
            } else {
                String::new()
            };
            let name = layer.replace(',', ";");
            if let Err(err) = writeln!(
                self.out,
                "{},{},activation,{i} {name},{m},{s},,,,{saturated}",
                epoch + 1,
                batch + 1
            ) {
                self.failed.get_or_insert(err);
            }
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
