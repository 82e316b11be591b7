//! `Dropout2d(p=0.5)`: in training, zeroes whole channels of each sample with probability `p` and
//! scales the rest by `1/(1−p)`; in evaluation, the identity. As `torch.nn.Dropout2d`, with our own
//! seeded masks drawn as [`super::Dropout`] draws them (one value per channel of each sample).

use super::dropout::draw_mask;
use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// Channel dropout.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, H, W]`; the mask is `[N, C]`, each value covering an `H×W` plane.
pub struct Dropout2d {
    p: f32,
    /// The scaled mask of the last forward, one value per `(n, c)` (`None` inside: evaluation).
    mask: Option<Option<Vec<f32>>>,
}

impl Dropout2d {
    /// Channel dropout with probability `p ∈ [0, 1]`.
    pub fn new(p: f32) -> Self {
        Dropout2d { p, mask: None }
    }

    /// Multiplies each `H×W` plane of `t` by its mask value.
    fn apply(mask: &[f32], t: &mut Tensor) {
        let plane = t.len() / mask.len().max(1);
        t.data_mut()
            .chunks_exact_mut(plane.max(1))
            .zip(mask)
            .for_each(|(v, m)| v.iter_mut().for_each(|v| *v *= m));
    }
}

impl fmt::Display for Dropout2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dropout2d(p={}, inplace=False)", self.p)
    }
}

impl Layer for Dropout2d {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input {
            [_, _, _] => Ok(input.to_vec()),
            _ => Err("[C, H, W]".into()),
        }
    }

    fn needs_whole_batch(&self) -> bool {
        true
    }

    /// `y[n, c] = x[n, c] · m[n, c] / (1−p)` with `m[n, c] ~ Bernoulli(1−p)`.
    fn forward(&mut self, mut x: Tensor, mode: Mode) -> Result<Tensor> {
        let Mode::Train { seed, rows, .. } = mode else {
            self.mask = Some(None);
            return Ok(x);
        };
        let mut mask = match self.mask.take() {
            Some(Some(m)) => m,
            _ => Vec::new(),
        };
        let n = x.shape().first().copied().unwrap_or(1);
        let per_row = x.shape().get(1).copied().unwrap_or(1);
        draw_mask(self.p, seed, &rows.runs(n, per_row), &mut mask);
        Self::apply(&mask, &mut x);
        self.mask = Some(Some(mask));
        Ok(x)
    }

    /// ∂L/∂x[n, c] = ∂L/∂y[n, c] · m[n, c] / (1−p).
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        if let Some(mask) = self.mask.take().ok_or_else(|| no_forward(self))? {
            Self::apply(&mask, &mut grad_y);
            self.mask = Some(Some(mask));
        }
        Ok(grad_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Dropout2d::new(0.4), &[3, 4, 2, 3], 0.0);
    }

    #[test]
    fn drops_whole_channels_about_p_and_eval_is_identity() {
        let mut d = Dropout2d::new(0.25);
        let x = Tensor::new(&[50, 40, 2, 3], vec![1.0; 12_000]).unwrap();
        let y = d.forward(x.clone(), Mode::train(9)).unwrap();
        let planes: Vec<&[f32]> = y.data().chunks(6).collect();
        assert!(planes.iter().all(|p| p.iter().all(|&v| v == p[0])));
        let dropped = planes.iter().filter(|p| p[0] == 0.0).count();
        assert!((400..600).contains(&dropped), "{dropped} of 2000 dropped");
        assert!(planes.iter().all(|p| p[0] == 0.0 || p[0] == 1.0 / 0.75));
        assert_eq!(d.forward(x.clone(), Mode::Eval).unwrap(), x);
        assert_eq!(d.to_string(), "Dropout2d(p=0.25, inplace=False)");
        assert_eq!(d.output_shape(&[4, 5]).unwrap_err(), "[C, H, W]");
    }
}
