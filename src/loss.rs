//! Losses: each returns the loss and ∂L/∂prediction, written into the prediction's own buffer.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;
use std::str::FromStr;

/// What a batch is compared against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per sample (`[N]`), or per step of a sequence (`[N, T]` flat, for a
    /// prediction `[N, T, C]`).
    Classes(&'a [u32]),
    /// One value per output element, row-major like the prediction.
    Values(&'a [f32]),
}

/// A loss function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// `L = (1/(N·D)) Σ (a − y)²`, as `nn.MSELoss()` (mean over every element).
    Mse,
    /// `L = (1/N) Σ_n (log Σ_c e^(x_nc) − x_n,y_n)` on logits, as `nn.CrossEntropyLoss()`.
    CrossEntropy,
    /// `nn.CrossEntropyLoss(label_smoothing=ε)`: the target of sample n is `(1−ε)·onehot(y_n) + ε/C`,
    /// `L = (1/N) Σ_n Σ_c −q_nc log softmax(x_n)_c`.
    SmoothedCrossEntropy {
        /// `ε`.
        label_smoothing: f32,
    },
    /// `L = (1/N) Σ_n ½‖a_n − y_n‖²`, Nielsen's quadratic cost.
    Quadratic,
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Loss> {
        let smoothed = s
            .strip_prefix("cross-entropy(label_smoothing=")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|v| v.parse().ok());
        match s {
            "mse" => Ok(Loss::Mse),
            "cross-entropy" => Ok(Loss::CrossEntropy),
            "quadratic" => Ok(Loss::Quadratic),
            _ if smoothed.is_some() => Loss::cross_entropy(smoothed.unwrap_or_default()),
            _ => Err(Error::invalid(format!(
                "unknown loss '{s}': expected cross-entropy, mse or quadratic"
            ))),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Mse => f.write_str("mse"),
            Loss::CrossEntropy => f.write_str("cross-entropy"),
            Loss::SmoothedCrossEntropy { label_smoothing } => {
                write!(f, "cross-entropy(label_smoothing={label_smoothing})")
            }
            Loss::Quadratic => f.write_str("quadratic"),
        }
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
    /// Cross-entropy with label smoothing `ε` (plain cross-entropy for 0).
    ///
    /// # Errors
    /// `ε` outside [0, 1].
    pub fn cross_entropy(label_smoothing: f32) -> Result<Loss> {
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(Error::invalid(format!(
                "--label-smoothing must be in [0, 1], got {label_smoothing}"
            )));
        }
        Ok(if label_smoothing == 0.0 {
            Loss::CrossEntropy
        } else {
            Loss::SmoothedCrossEntropy { label_smoothing }
        })
    }

    /// Whether the loss takes class indices and logits (cross-entropy, smoothed or not).
    pub fn is_cross_entropy(&self) -> bool {
        matches!(self, Loss::CrossEntropy | Loss::SmoothedCrossEntropy { .. })
    }

    /// The mean loss of a batch and ∂L/∂pred (in `pred`'s buffer).
    ///
    /// `pred` is `[N, D]` (any rank; `D` is everything after the batch dimension). Class targets
    /// for `mse`/`quadratic` are taken as one-hot rows.
    ///
    /// # Errors
    /// Targets of the wrong length or a class index out of range.
    pub fn compute(&self, mut pred: Tensor, targets: Targets<'_>) -> Result<(f64, Tensor)> {
        let n = pred.shape()[0];
        // From the shape, so that a batch of no rows (a rank's empty share) still knows D.
        let d: usize = pred.shape()[1..].iter().product();
        let hot;
        let smoothing = match self {
            Loss::SmoothedCrossEntropy { label_smoothing } => *label_smoothing as f64,
            _ => 0.0,
        };
        let values = match (self, targets) {
            (l, Targets::Values(_)) if l.is_cross_entropy() => {
                return Err(Error::invalid(
                    "cross-entropy needs integer class indices as targets",
                ));
            }
            (l, Targets::Classes(c)) => {
                // Per step: N·T targets for `[N, T, C…]`, each position a row of C scores, as
                // `F.cross_entropy(out.reshape(-1, C), y.reshape(-1))`.
                let per_step = pred.shape().len() >= 3 && c.len() == n * pred.shape()[1];
                if c.len() != n && !per_step {
                    return Err(Error::invalid(format!(
                        "{} targets for a batch of {n} (outputs {:?})",
                        c.len(),
                        pred.shape()
                    )));
                }
                // Scores per target, from the shape (a batch of no rows still knows them).
                let d: usize = if per_step {
                    pred.shape()[2..].iter().product()
                } else {
                    d
                };
                check_classes(c, d)?;
                if l.is_cross_entropy() {
                    let loss = cross_entropy(pred.data_mut(), c, d, smoothing);
                    return Ok((loss, pred));
                }
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

/// Mean cross-entropy of logits `x: [N, C]` against targets `q = (1−ε)·onehot(y) + ε/C` (ε the label
/// smoothing, 0 for plain cross-entropy): `L = (1/N) Σ_n (log Σ_c e^(x_nc) − Σ_c q_nc x_nc)`; in place,
/// `x` becomes `∂L/∂x = (softmax(x) − q)/N`.
///
/// `log Σ e^x` is taken as `m + log Σ e^(x−m)` with `m = max x`, so large logits do not overflow.
fn cross_entropy(x: &mut [f32], classes: &[u32], c: usize, smoothing: f64) -> f64 {
    let n = classes.len();
    let mut total = 0.0f64;
    let q = |k: usize, y: usize| (1.0 - smoothing) * ((k == y) as u8 as f64) + smoothing / c as f64;
    for (row, &y) in x.chunks_exact_mut(c).zip(classes) {
        let y = y as usize;
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
        let log_z = m as f64 + sum.ln();
        total += if smoothing == 0.0 {
            log_z - row[y] as f64
        } else {
            log_z - (0..c).map(|k| q(k, y) * row[k] as f64).sum::<f64>()
        };
        for (k, v) in row.iter_mut().enumerate() {
            let p = ((*v as f64) - log_z).exp();
            *v = ((p - q(k, y)) / n as f64) as f32;
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
        gradcheck(
            Loss::cross_entropy(0.2).unwrap(),
            &[3, 4],
            Targets::Classes(&[0, 3, 1]),
        );
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
