//! `ReLU()`: `y = max(0, x)`.

use super::Activation;
use std::fmt;

/// `f(x) = max(0, x)`, `f′(x) = [x > 0]` (0 at the kink, as PyTorch).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

impl Activation for ReLU {
    const DF_USES_Y: bool = false;
    /// `x` if above 0, else 0 (so 0 for NaN and for −0: what `max(x, 0)` gives on x86 vectors).
    fn f(&self, x: f32) -> f32 {
        if x > 0.0 { x } else { 0.0 }
    }
    fn df(&self, x: f32, _y: f32) -> f32 {
        if x > 0.0 { 1.0 } else { 0.0 }
    }
}

impl fmt::Display for ReLU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReLU()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(ReLU), &[3, 2, 4], 0.05);
    }

    #[test]
    fn values() {
        assert_eq!(
            (ReLU.f(-2.0), ReLU.f(3.0), ReLU.df(0.0, 0.0)),
            (0.0, 3.0, 0.0)
        );
    }
}
