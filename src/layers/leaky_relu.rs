//! `LeakyReLU(negative_slope=0.01)`: `y = x` for `x > 0`, else `α·x`.

use super::Activation;
use std::fmt;

/// `f(x) = x if x > 0 else α·x`, `f′(x) = 1 if x > 0 else α`.
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    /// The slope for x < 0 (PyTorch's default 0.01).
    pub negative_slope: f32,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
        }
    }
}

impl Activation for LeakyReLU {
    const DF_USES_Y: bool = false;
    fn f(&self, x: f32) -> f32 {
        if x > 0.0 { x } else { self.negative_slope * x }
    }
    fn df(&self, x: f32, _y: f32) -> f32 {
        if x > 0.0 { 1.0 } else { self.negative_slope }
    }
}

impl fmt::Display for LeakyReLU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeakyReLU(negative_slope={})", self.negative_slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(
            &mut Elementwise::new(LeakyReLU {
                negative_slope: 0.1,
            }),
            &[3, 5],
            0.05,
        );
        check_layer(
            &mut Elementwise::new(LeakyReLU::default()),
            &[2, 2, 2, 2],
            0.05,
        );
    }

    #[test]
    fn values_and_repr() {
        let l = LeakyReLU {
            negative_slope: 0.1,
        };
        assert_eq!((l.f(-2.0), l.f(3.0)), (-0.2, 3.0));
        assert_eq!(
            LeakyReLU::default().to_string(),
            "LeakyReLU(negative_slope=0.01)"
        );
    }
}
