//! `Softmax(dim=1)`: `y_i = e^(x_i − max x) / Σ_j e^(x_j − max x)` along one dimension.

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// Softmax along `dim` (of the batched shape; negative counts from the end, as PyTorch).
///
/// # Shapes
/// Any input of rank > `dim`; the output has the same shape.
pub struct Softmax {
    dim: i64,
    /// The output of the last forward, and `(outer, size of dim, inner)` of its shape.
    y: Option<(Tensor, (usize, usize, usize))>,
}

impl Softmax {
    /// Softmax along `dim`, which must not be the batch dimension 0.
    pub fn new(dim: i64) -> Self {
        Softmax { dim, y: None }
    }

    /// The dimension it normalises along.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// `(outer, size, inner)` of the batched shape around the softmax dimension.
    fn split(&self, shape: &[usize]) -> Option<(usize, usize, usize)> {
        let rank = shape.len() as i64;
        let d = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        };
        if d < 1 || d >= rank {
            return None;
        }
        let d = d as usize;
        Some((
            shape[..d].iter().product(),
            shape[d],
            shape[d + 1..].iter().product(),
        ))
    }
}

impl fmt::Display for Softmax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Softmax(dim={})", self.dim)
    }
}

impl Layer for Softmax {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let batched: Vec<usize> = std::iter::once(1).chain(input.iter().copied()).collect();
        match self.split(&batched) {
            Some(_) => Ok(input.to_vec()),
            None => Err(format!(
                "a dimension {} that is not the batch dimension",
                self.dim
            )),
        }
    }

    fn forward(&mut self, mut x: Tensor, _mode: Mode) -> Result<Tensor> {
        let (outer, size, inner) = self.split(x.shape()).ok_or_else(|| {
            crate::error::Error::invalid(format!("{self}: cannot take input {:?}", x.shape()))
        })?;
        for o in 0..outer {
            let block = &mut x.data_mut()[o * size * inner..][..size * inner];
            for i in 0..inner {
                let max = (0..size)
                    .map(|c| block[c * inner + i])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for c in 0..size {
                    let e = (block[c * inner + i] - max).exp();
                    block[c * inner + i] = e;
                    sum += e;
                }
                (0..size).for_each(|c| block[c * inner + i] /= sum);
            }
        }
        let y = x;
        match &mut self.y {
            Some((cache, dims)) => {
                cache.clone_from(&y);
                *dims = (outer, size, inner);
            }
            None => self.y = Some((y.clone(), (outer, size, inner))),
        }
        Ok(y)
    }

    /// ∂L/∂x_i = y_i · (∂L/∂y_i − Σ_j ∂L/∂y_j · y_j).
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        let (y, (outer, size, inner)) = self.y.take().ok_or_else(|| no_forward(self))?;
        for o in 0..outer {
            let g = &mut grad_y.data_mut()[o * size * inner..][..size * inner];
            let yb = &y.data()[o * size * inner..][..size * inner];
            for i in 0..inner {
                let dot: f32 = (0..size)
                    .map(|c| g[c * inner + i] * yb[c * inner + i])
                    .sum();
                (0..size)
                    .for_each(|c| g[c * inner + i] = yb[c * inner + i] * (g[c * inner + i] - dot));
            }
        }
        self.y = Some((y, (outer, size, inner)));
        Ok(grad_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Softmax::new(1), &[3, 4], 0.0);
        check_layer(&mut Softmax::new(1), &[2, 3, 2, 2], 0.0);
        check_layer(&mut Softmax::new(-1), &[2, 3, 5], 0.0);
    }

    #[test]
    fn rows_sum_to_one_and_large_logits_are_stable() {
        let x = Tensor::new(&[2, 3], vec![1000.0, 1000.0, 1000.0, 1.0, 2.0, 3.0]).unwrap();
        let y = Softmax::new(1).forward(x, Mode::Eval).unwrap();
        assert!((y.data()[0] - 1.0 / 3.0).abs() < 1e-6);
        assert!((y.data()[3..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(y.data()[5] > y.data()[4]);
    }

    #[test]
    fn batch_dimension_is_refused() {
        assert!(Softmax::new(0).output_shape(&[10]).is_err());
        assert!(Softmax::new(2).output_shape(&[10]).is_err());
        assert!(Softmax::new(2).output_shape(&[3, 4]).is_ok());
    }
}
