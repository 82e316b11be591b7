//! `Flatten(start_dim=1, end_dim=-1)`: merges dimensions into one, as `torch.nn.Flatten`.

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// Reshapes `[N, d1, …, dk]` by merging dimensions `start_dim..=end_dim` (of the batched shape).
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C·H·W]` with the defaults.
pub struct Flatten {
    start_dim: i64,
    end_dim: i64,
    /// The input shape of the last forward.
    shape: Option<Vec<usize>>,
}

impl Flatten {
    /// A flatten of `start_dim..=end_dim`; negative values count from the end.
    pub fn new(start_dim: i64, end_dim: i64) -> Self {
        Flatten {
            start_dim,
            end_dim,
            shape: None,
        }
    }

    /// `(start_dim, end_dim)` as given.
    pub fn dims(&self) -> (i64, i64) {
        (self.start_dim, self.end_dim)
    }

    /// The flattened shape of a batched shape, if the dimensions are in range (and their product
    /// fits a `usize`).
    fn flat(&self, shape: &[usize]) -> Option<Vec<usize>> {
        let rank = shape.len() as i64;
        let norm = |d: i64| if d < 0 { d + rank } else { d };
        let (s, e) = (norm(self.start_dim), norm(self.end_dim));
        if s < 1 || e < s || e >= rank {
            return None;
        }
        let (s, e) = (s as usize, e as usize);
        let mut out = shape[..s].to_vec();
        out.push(
            shape[s..=e]
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))?,
        );
        out.extend_from_slice(&shape[e + 1..]);
        Some(out)
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new(1, -1)
    }
}

impl fmt::Display for Flatten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Flatten(start_dim={}, end_dim={})",
            self.start_dim, self.end_dim
        )
    }
}

impl Layer for Flatten {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let batched: Vec<usize> = std::iter::once(1).chain(input.iter().copied()).collect();
        self.flat(&batched).map(|s| s[1..].to_vec()).ok_or_else(|| {
            format!(
                "a shape with dimensions {}..={} after the batch",
                self.start_dim, self.end_dim
            )
        })
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let out = self.flat(x.shape()).ok_or_else(|| {
            crate::error::Error::invalid(format!("{self}: cannot take input {:?}", x.shape()))
        })?;
        self.shape = Some(x.shape().to_vec());
        x.reshape(&out)
    }

    /// ∂L/∂x is ∂L/∂y under the input's shape.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let shape = self.shape.take().ok_or_else(|| no_forward(self))?;
        grad_y.reshape(&shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn shapes() {
        let f = Flatten::default();
        assert_eq!(f.output_shape(&[8, 6, 6]).unwrap(), vec![288]);
        assert_eq!(f.output_shape(&[784]).unwrap(), vec![784]);
        assert_eq!(
            Flatten::new(2, -1).output_shape(&[8, 6, 6]).unwrap(),
            vec![8, 36]
        );
        assert!(Flatten::new(3, 1).output_shape(&[8, 6, 6]).is_err());
        assert_eq!(f.to_string(), "Flatten(start_dim=1, end_dim=-1)");
    }

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Flatten::default(), &[2, 3, 2, 2], 0.0);
    }
}
