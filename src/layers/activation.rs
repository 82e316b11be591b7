//! Elementwise activations: one generic layer, and one small file per function with its derivative.

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// A scalar function applied elementwise, with its derivative beside it.
pub trait Activation: Send + fmt::Display {
    /// `y = f(x)`.
    fn f(&self, x: f32) -> f32;
    /// `dy/dx` at `x`, given `y = f(x)` (whichever is cheaper to use).
    fn df(&self, x: f32, y: f32) -> f32;
}

/// The layer `y = f(x)` elementwise, for any [`Activation`] `f`.
///
/// # Shapes
/// Any input shape; the output has the same shape.
pub struct Elementwise<A> {
    act: A,
    /// The input and output of the last forward.
    x: Option<Tensor>,
    y: Tensor,
    spare: Tensor,
}

impl<A: Activation> Elementwise<A> {
    /// Wraps an activation function as a layer.
    pub fn new(act: A) -> Self {
        Elementwise {
            act,
            x: None,
            y: Tensor::default(),
            spare: Tensor::default(),
        }
    }
}

impl<A: Activation> fmt::Display for Elementwise<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.act.fmt(f)
    }
}

impl<A: Activation> Layer for Elementwise<A> {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let mut y = Tensor::recycle(std::mem::take(&mut self.spare), x.shape());
        y.data_mut()
            .iter_mut()
            .zip(x.data())
            .for_each(|(y, &x)| *y = self.act.f(x));
        self.y.clone_from(&y);
        self.x = Some(x);
        Ok(y)
    }

    /// ∂L/∂x = ∂L/∂y ⊙ f′(x), computed in place in the upstream gradient's buffer.
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        let x = self.x.take().ok_or_else(|| no_forward(self))?;
        for ((g, &x), &y) in grad_y
            .data_mut()
            .iter_mut()
            .zip(x.data())
            .zip(self.y.data())
        {
            *g *= self.act.df(x, y);
        }
        self.spare = x;
        Ok(grad_y)
    }
}
