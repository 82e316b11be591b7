//! `Residual(...)`: `y = x + f(x)`, a skip connection around layers applied in order.
//!
//! PyTorch has no such module. Ours behaves as this PyTorch module would, and its parameters and
//! buffers are named as PyTorch names them (`{i}.0.weight`, `{i}.1.running_mean`):
//! ```python
//! class Residual(nn.Sequential):
//!     def forward(self, x):
//!         return x + super().forward(x)
//! ```

use super::{Buffer, Layer, Mode, Param, Sequential, one_line};
use crate::error::{Error, Result};
use crate::kernels::elementwise::add;
use crate::tensor::Tensor;
use std::fmt;

/// `y = x + f(x)`, `f` the layers inside in order; `∂L/∂x = ∂L/∂y + J_fᵀ(∂L/∂y)`.
///
/// # Shapes
/// Any input that `f` maps to the same shape; the output has that shape.
pub struct Residual {
    inner: Sequential,
    /// A copy of `x` in forward, of ∂L/∂y in backward.
    skip: Tensor,
}

impl Residual {
    /// A skip connection around `layers` (not yet checked: see [`Layer::check`]).
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        Residual {
            inner: Sequential::new(layers),
            skip: Tensor::default(),
        }
    }
}

impl fmt::Display for Residual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.to_string();
        write!(f, "Residual{}", &inner["Sequential".len()..])
    }
}

impl Layer for Residual {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match self.inner.output_shape(input)? {
            out if out == input => Ok(out),
            out => Err(format!(
                "layers inside that keep its shape (they give {out:?})"
            )),
        }
    }

    /// The layers inside are checked one by one (an error names the innermost that refuses), then
    /// their output against the input.
    fn check(&self, index: &str, input: &[usize], from: &str) -> Result<Vec<usize>> {
        let out = self.inner.check(index, input, from)?;
        if out != input {
            return Err(Error::Shape {
                index: index.to_string(),
                layer: one_line(self),
                expected: format!("layers inside that keep its shape (they give {out:?})"),
                got: input.to_vec(),
                after: from.to_string(),
            });
        }
        Ok(out)
    }

    fn forward(&mut self, x: Tensor, mode: Mode) -> Result<Tensor> {
        self.skip.clone_from(&x);
        let mut y = self.inner.forward(x, mode)?;
        add(y.data_mut(), self.skip.data());
        Ok(y)
    }

    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.skip.clone_from(&grad_y);
        let mut grad_x = self.inner.backward(grad_y)?;
        add(grad_x.data_mut(), self.skip.data());
        Ok(grad_x)
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        self.inner.visit_params(prefix, f);
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Buffer)) {
        self.inner.visit_buffers(prefix, f);
    }

    fn macs(&self, input: &[usize]) -> usize {
        self.inner.macs(input)
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.inner.children()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;
    use crate::layers::{BatchNorm, Conv2d, Elementwise, Linear, Tanh};
    use rand::SeedableRng;

    #[test]
    fn gradients_match_central_differences() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut block = Residual::new(vec![
            Box::new(Conv2d::new(2, 2, (3, 3), (1, 1), (1, 1), true, &mut rng)),
            Box::new(BatchNorm::new(2, 2, 1e-5, 0.1)),
            Box::new(Elementwise::new(Tanh)),
        ]);
        check_layer(&mut block, &[3, 2, 3, 3], 0.0);
        let mut names = Vec::new();
        block.visit_params("2.", &mut |n, _| names.push(n.to_string()));
        block.visit_buffers("2.", &mut |n, _| names.push(n.to_string()));
        assert_eq!(
            names,
            [
                "2.0.weight",
                "2.0.bias",
                "2.1.weight",
                "2.1.bias",
                "2.1.running_mean",
                "2.1.running_var",
                "2.1.num_batches_tracked"
            ]
        );
        assert!(block.needs_whole_batch());
    }

    #[test]
    fn an_inside_that_changes_the_shape_is_refused_naming_the_block() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let block = Residual::new(vec![Box::new(Linear::new(4, 3, true, &mut rng))]);
        let e = block
            .check("1", &[4], " from the input")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "layer 1 (Residual( (0): Linear(in_features=4, out_features=3, bias=True) )) expects \
             input layers inside that keep its shape (they give [3]), got [4] from the input"
        );
        let e = block.check("1", &[5], "").unwrap_err().to_string();
        assert!(e.starts_with("layer 1.0 (Linear(in_features=4"), "{e}");
    }
}
