//! `Select(dim, index)`: keeps one slice along a dimension, as `x.select(dim, index)`.
//!
//! PyTorch has no module for this; its twin is `torch.Tensor.select` in a wrapper, e.g.
//! `class Select(nn.Module): def forward(self, x): return x.select(self.dim, self.index)`
//! (`x[:, -1]` for `Select(1, -1)`, the last step of an RNN's output). It has no parameters, so a
//! checkpoint of a model using it loads into such a wrapper unchanged.

use super::super::{Layer, Mode, no_forward};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;

/// `y = x.select(dim, index)`; `dim` counts the batch as 0 and must be ≥ 1, `index` may be
/// negative (counted from the end).
///
/// # Shapes
/// `[N, d1, …, dk]` → the same without dimension `dim`, e.g. `Select(1, -1)`: `[N, T, H]` → `[N, H]`.
pub struct Select {
    dim: i64,
    index: i64,
    /// The input shape of the last forward.
    shape: Option<Vec<usize>>,
}

/// Where a selection falls in a batched shape: `(outer, size, inner, index)`.
type Cut = (usize, usize, usize, usize);

impl Select {
    /// `(dim, index)` as given (negative ones count from the end; `dim` counts the batch).
    pub fn dim_index(&self) -> (i64, i64) {
        (self.dim, self.index)
    }

    /// A selection of `index` along `dim`.
    pub fn new(dim: i64, index: i64) -> Self {
        Select {
            dim,
            index,
            shape: None,
        }
    }

    /// The cut of a batched shape, or what is expected instead.
    fn cut(&self, shape: &[usize]) -> std::result::Result<Cut, String> {
        let rank = shape.len() as i64;
        let dim = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        };
        if dim < 1 || dim >= rank {
            return Err(format!(
                "a shape with dimension {} after the batch",
                self.dim
            ));
        }
        let d = dim as usize;
        let size = shape[d] as i64;
        let index = if self.index < 0 {
            self.index + size
        } else {
            self.index
        };
        if index < 0 || index >= size {
            return Err(format!(
                "index {} in range for dimension {} (of size {size})",
                self.index, self.dim
            ));
        }
        let outer = shape[..d].iter().product();
        let inner = shape[d + 1..].iter().product();
        Ok((outer, shape[d], inner, index as usize))
    }

    fn out_shape(&self, shape: &[usize]) -> Vec<usize> {
        let rank = shape.len() as i64;
        let d = if self.dim < 0 {
            self.dim + rank
        } else {
            self.dim
        } as usize;
        [&shape[..d], &shape[d + 1..]].concat()
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Select(dim={}, index={})", self.dim, self.index)
    }
}

impl Layer for Select {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let batched: Vec<usize> = std::iter::once(1).chain(input.iter().copied()).collect();
        self.cut(&batched)?;
        Ok(self.out_shape(&batched)[1..].to_vec())
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let (outer, size, inner, index) = self
            .cut(x.shape())
            .map_err(|e| Error::invalid(format!("{self}: expected {e}, got {:?}", x.shape())))?;
        let mut y = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            let start = (o * size + index) * inner;
            y.extend_from_slice(&x.data()[start..start + inner]);
        }
        let y = Tensor::new(&self.out_shape(x.shape()), y)?;
        self.shape = Some(x.shape().to_vec());
        Ok(y)
    }

    /// ∂L/∂x is zero except at the selected slice, where it is ∂L/∂y.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let shape = self.shape.take().ok_or_else(|| no_forward(self))?;
        let (outer, size, inner, index) = self.cut(&shape).map_err(Error::invalid)?;
        let mut grad_x = Tensor::zeros(&shape);
        for o in 0..outer {
            let start = (o * size + index) * inner;
            grad_x.data_mut()[start..start + inner]
                .copy_from_slice(&grad_y.data()[o * inner..(o + 1) * inner]);
        }
        Ok(grad_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn picks_the_last_step() {
        let x = Tensor::new(&[1, 3, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let y = Select::new(1, -1).forward(x.clone(), Mode::Eval).unwrap();
        assert_eq!((y.shape(), y.data()), (&[1, 2][..], &[5., 6.][..]));
        let y = Select::new(2, 0).forward(x, Mode::Eval).unwrap();
        assert_eq!(y.data(), &[1., 3., 5.]);
        assert_eq!(Select::new(1, -1).output_shape(&[7, 4]).unwrap(), vec![4]);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let e = Select::new(1, 3).output_shape(&[3, 4]).unwrap_err();
        assert!(
            e.contains("index 3 in range for dimension 1 (of size 3)"),
            "{e}"
        );
        assert!(Select::new(1, -4).output_shape(&[3, 4]).is_err());
        let e = Select::new(3, 0).output_shape(&[3, 4]).unwrap_err();
        assert!(e.contains("dimension 3 after the batch"), "{e}");
        assert!(Select::new(0, 0).output_shape(&[3, 4]).is_err());
        let x = Tensor::zeros(&[2, 3]);
        let e = Select::new(1, 5).forward(x, Mode::Eval).unwrap_err();
        assert!(e.to_string().contains("Select(dim=1, index=5)"), "{e}");
        assert!(Select::new(1, 0).backward(Tensor::zeros(&[2])).is_err());
    }

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Select::new(1, -1), &[2, 3, 4], 0.0);
        check_layer(&mut Select::new(-1, 1), &[2, 3, 4], 0.0);
    }
}
