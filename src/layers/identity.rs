//! `Identity()`: `y = x`, as `torch.nn.Identity` (a placeholder, e.g. a block's empty shortcut).

use super::{Layer, Mode};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// `y = x`, ∂L/∂x = ∂L/∂y.
///
/// # Shapes
/// Any; the output is the input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity()")
    }
}

impl Layer for Identity {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        Ok(x)
    }

    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        Ok(grad_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Identity, &[2, 3, 2], 0.0);
        assert_eq!(Identity.to_string(), "Identity()");
    }
}
