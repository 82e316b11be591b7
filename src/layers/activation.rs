//! Elementwise activations: one generic layer, and one small file per function with its derivative.

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// Elements per parallel task: large tensors (a conv layer's output) spread over the cores, a batch
/// of a few hundred values stays on one.
const CHUNK: usize = 1 << 15;

/// A scalar function applied elementwise, with its derivative beside it.
pub trait Activation: Send + Sync + fmt::Display + 'static {
    /// `y = f(x)`.
    fn f(&self, x: f32) -> f32;
    /// `dy/dx` at `x`, given `y = f(x)` (whichever is cheaper to use).
    fn df(&self, x: f32, y: f32) -> f32;
    /// Whether [`Activation::df`] reads `y`; if not, the layer does not keep a copy of its output.
    const DF_USES_Y: bool = true;
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

    /// The function it applies.
    pub fn activation(&self) -> &A {
        &self.act
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
        let buf = std::mem::take(&mut self.spare).or_stale(self.x.take());
        let mut y = Tensor::reuse(buf, x.shape());
        let act = &self.act;
        y.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(x.data().par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = act.f(x)));
        if A::DF_USES_Y {
            self.y.clone_from(&y);
        }
        self.x = Some(x);
        Ok(y)
    }

    /// ∂L/∂x = ∂L/∂y ⊙ f′(x), computed in place in the upstream gradient's buffer.
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        let x = self.x.take().ok_or_else(|| no_forward(self))?;
        let act = &self.act;
        let grad = grad_y.data_mut().par_chunks_mut(CHUNK);
        if A::DF_USES_Y {
            grad.zip(x.data().par_chunks(CHUNK))
                .zip(self.y.data().par_chunks(CHUNK))
                .for_each(|((g, x), y)| {
                    for ((g, &x), &y) in g.iter_mut().zip(x).zip(y) {
                        *g *= act.df(x, y);
                    }
                });
        } else {
            // y = f(x) is recomputed where df ignores it, so the compiler drops it.
            grad.zip(x.data().par_chunks(CHUNK)).for_each(|(g, x)| {
                for (g, &x) in g.iter_mut().zip(x) {
                    *g *= act.df(x, act.f(x));
                }
            });
        }
        self.spare = x;
        Ok(grad_y)
    }
}
