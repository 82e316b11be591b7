//! Losses: each returns the loss and ∂L/∂prediction, written into the prediction's own buffer.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;
use std::str::FromStr;

/// What a batch is compared against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per sample.
    Classes(&'a [u32]),
    /// One value per output element, row-major like the prediction.
    Values(&'a [f32]),
}

/// A loss function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `L = (1/(N·D)) Σ (a − y)²`, as `nn.MSELoss()` (mean over every element).
    Mse,
    /// `L = (1/N) Σ_n (log Σ_c e^(x_nc) − x_n,y_n)` on logits, as `nn.CrossEntropyLoss()`.
    CrossEntropy,
    /// `L = (1/N) Σ_n ½‖a_n − y_n‖²`, Nielsen's quadratic cost.
    Quadratic,
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Loss> {
        match s {
            "mse" => Ok(Loss::Mse),
            "cross-entropy" => Ok(Loss::CrossEntropy),
            "quadratic" => Ok(Loss::Quadratic),
            _ => Err(Error::invalid(format!(
                "unknown loss '{s}': expected cross-entropy, mse or quadratic"
            ))),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross-entropy",
            Loss::Quadratic => "quadratic",
        })
    }
}

/// One-hot rows: `[N, classes]` with a 1 at each sample's class.
pub fn one_hot(classes: &[u32], n_classes: usize) -> Tensor {
    let mut t = Tensor::zeros(&[classes.len(), n_classes]);
    for (row, &c) in t.data_mut().chunks_exact_mut(n_classes).zip(classes) {
        row[c as usize] = 1.0;
    }
    t
}

/// Checks that every class index is below `n_classes`.
pub fn check_classes(classes: &[u32], n_classes: usize) -> Result<()> {
    match classes.iter().position(|&c| c as usize >= n_classes) {
        Some(i) => Err(Error::invalid(format!(
            "label {} (sample {i}) is out of range for a model with {n_classes} outputs",
            classes[i]
        ))),
        None => Ok(()),
    }
}

impl Loss {
    /// The mean loss of a batch and ∂L/∂pred (in `pred`'s buffer).
    ///
    /// `pred` is `[N, D]` (any rank; `D` is everything after the batch dimension). Class targets
    /// for `mse`/`quadratic` are taken as one-hot rows.
    ///
    /// # Errors
    /// Targets of the wrong length or a class index out of range.
    pub fn compute(&self, mut pred: Tensor, targets: Targets<'_>) -> Result<(f64, Tensor)> {
        let n = pred.shape()[0];
        let d = pred.len().checked_div(n).unwrap_or(0);
        let hot;
        let values = match (self, targets) {
            (Loss::CrossEntropy, Targets::Values(_)) => {
                return Err(Error::invalid(
                    "cross-entropy needs integer class indices as targets",
                ));
            }
            (Loss::CrossEntropy, Targets::Classes(c)) => {
                if c.len() != n {
                    return Err(Error::invalid(format!(
                        "{} targets for a batch of {n}",
                        c.len()
                    )));
                }
                check_classes(c, d)?;
                let loss = cross_entropy(pred.data_mut(), c, d);
                return Ok((loss, pred));
            }
            (_, Targets::Classes(c)) => {
                check_classes(c, d)?;
                hot = one_hot(c, d);
                hot.data()
            }
            (_, Targets::Values(v)) => v,
        };
        if values.len() != pred.len() {
            return Err(Error::invalid(format!(
                "targets have {} values per batch, the model outputs {} ({:?})",
                values.len(),
                pred.len(),
                pred.shape()
            )));
        }
        // mse: L = Σ(a−y)²/(N·D), ∂L/∂a = 2(a−y)/(N·D).  quadratic: L = Σ½(a−y)²/N, ∂L/∂a = (a−y)/N.
        let (scale, grad_scale) = match self {
            Loss::Mse => (1.0 / (n * d) as f64, 2.0 / (n * d) as f32),
            _ => (0.5 / n as f64, 1.0 / n as f32),
        };
        let mut sum = 0.0f64;
        for (a, &y) in pred.data_mut().iter_mut().zip(values) {
            let diff = *a - y;
            sum += (diff as f64) * (diff as f64);
            *a = diff * grad_scale;
        }
        Ok((sum * scale, pred))
    }
}

/// Mean cross-entropy of logits `x: [N, C]` (in place: becomes ∂L/∂x = (softmax(x) − onehot(y))/N).
///
/// `log Σ e^x` is taken as `m + log Σ e^(x−m)` with `m = max x`, so large logits do not overflow.
fn cross_entropy(x: &mut [f32], classes: &[u32], c: usize) -> f64 {
    let n = classes.len();
    let mut total = 0.0f64;
    for (row, &y) in x.chunks_exact_mut(c).zip(classes) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
        let log_z = m as f64 + sum.ln();
        total += log_z - row[y as usize] as f64;
        for (k, v) in row.iter_mut().enumerate() {
            let p = ((*v as f64) - log_z).exp();
            *v = ((p - if k == y as usize { 1.0 } else { 0.0 }) / n as f64) as f32;
        }
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of the loss against the returned gradient.
    fn gradcheck(loss: Loss, shape: &[usize], targets: Targets<'_>) {
        let c = crate::layers::gradcheck::check_loss(loss, shape, targets, 4).unwrap();
        let (i, a, n) = c.worst;
        assert!(c.pass, "{loss} [{i}]: {a} vs {n}");
    }

    #[test]
    fn gradients_match_central_differences() {
        let values: Vec<f32> = (0..12).map(|v| v as f32 / 6.0 - 1.0).collect();
        gradcheck(Loss::Mse, &[4, 3], Targets::Values(&values));
        gradcheck(Loss::Quadratic, &[3, 4], Targets::Values(&values));
        gradcheck(Loss::CrossEntropy, &[3, 4], Targets::Classes(&[0, 3, 1]));
        gradcheck(Loss::Quadratic, &[3, 4], Targets::Classes(&[2, 3, 0]));
    }

    #[test]
    fn known_values() {
        // Uniform logits over 4 classes: log 4.
        let (l, _) = Loss::CrossEntropy
            .compute(Tensor::zeros(&[2, 4]), Targets::Classes(&[1, 3]))
            .unwrap();
        assert!((l - 4f64.ln()).abs() < 1e-9);
        let pred = Tensor::new(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let (mse, _) = Loss::Mse
            .compute(pred.clone(), Targets::Values(&[0.0; 4]))
            .unwrap();
        assert!((mse - 30.0 / 4.0).abs() < 1e-9);
        let (q, _) = Loss::Quadratic
            .compute(pred, Targets::Values(&[0.0; 4]))
            .unwrap();
        assert!((q - 0.5 * 30.0 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn huge_logits_stay_finite() {
        let x = Tensor::new(&[1, 3], vec![1000.0, -1000.0, 0.0]).unwrap();
        let (l, g) = Loss::CrossEntropy
            .compute(x, Targets::Classes(&[1]))
            .unwrap();
        assert!((l - 2000.0).abs() < 1e-3 && g.all_finite());
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Loss::CrossEntropy
            .compute(Tensor::zeros(&[2, 10]), Targets::Classes(&[1, 10]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "label 10 (sample 1) is out of range for a model with 10 outputs"
        );
        let e = Loss::Mse
            .compute(Tensor::zeros(&[2, 3]), Targets::Values(&[0.0; 4]))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("targets have 4 values per batch, the model outputs 6"),
            "{e}"
        );
        let e = Loss::CrossEntropy
            .compute(Tensor::zeros(&[1, 2]), Targets::Values(&[0.0; 2]))
            .unwrap_err();
        assert!(e.to_string().contains("integer class indices"), "{e}");
        assert!(
            "hinge"
                .parse::<Loss>()
                .unwrap_err()
                .to_string()
                .contains("unknown loss 'hinge'")
        );
    }

    #[test]
    fn one_hot_rows() {
        assert_eq!(one_hot(&[2, 0], 3).data(), &[0., 0., 1., 1., 0., 0.]);
    }
}
