//! `SiLU()`: `y = x·σ(x)`.

use super::Activation;
use std::fmt;

/// `f(x) = x·σ(x)`, `f′(x) = σ(x)·(1 + x·(1 − σ(x)))`, `σ(x) = 1/(1 + e^(−x))`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SiLU;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Activation for SiLU {
    const DF_USES_Y: bool = false;
    fn f(&self, x: f32) -> f32 {
        x * sigmoid(x)
    }
    fn df(&self, x: f32, _y: f32) -> f32 {
        let s = sigmoid(x);
        s * (1.0 + x * (1.0 - s))
    }
}

impl fmt::Display for SiLU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiLU()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(SiLU), &[4, 5], 0.0);
    }

    #[test]
    fn values() {
        // torch.nn.functional.silu(torch.tensor([1.0, -2.0])) = [0.7311, -0.2384]
        assert!((SiLU.f(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((SiLU.f(-2.0) + 0.238_405_8).abs() < 1e-6);
    }
}
