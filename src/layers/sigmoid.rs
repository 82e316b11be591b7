//! `Sigmoid()`: `y = 1 / (1 + e^(−x))`.

use super::Activation;
use std::fmt;

/// `f(x) = σ(x) = 1/(1 + e^(−x))`, `f′(x) = y·(1 − y)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;

impl Activation for Sigmoid {
    fn f(&self, x: f32) -> f32 {
        // Split by sign so that e^(−x) never overflows.
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }
    fn df(&self, _x: f32, y: f32) -> f32 {
        y * (1.0 - y)
    }
}

impl fmt::Display for Sigmoid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sigmoid()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(Sigmoid), &[4, 3], 0.0);
    }

    #[test]
    fn stable_at_extremes() {
        assert_eq!(Sigmoid.f(-1000.0), 0.0);
        assert_eq!(Sigmoid.f(1000.0), 1.0);
        assert!((Sigmoid.f(0.0) - 0.5).abs() < 1e-7);
    }
}
