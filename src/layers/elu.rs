//! `ELU(alpha=1.0)`: `y = x` for `x > 0`, else `α·(eˣ − 1)`.

use super::Activation;
use std::fmt;

/// `f(x) = x if x > 0 else α(eˣ − 1)`, `f′(x) = 1 if x > 0 else α·eˣ`.
#[derive(Clone, Copy, Debug)]
pub struct ELU {
    /// `α`, the value approached for very negative inputs is `−α`.
    pub alpha: f32,
}

impl Default for ELU {
    fn default() -> Self {
        ELU { alpha: 1.0 }
    }
}

impl Activation for ELU {
    const DF_USES_Y: bool = false;
    fn f(&self, x: f32) -> f32 {
        if x > 0.0 { x } else { self.alpha * x.exp_m1() }
    }
    fn df(&self, x: f32, _y: f32) -> f32 {
        if x > 0.0 { 1.0 } else { self.alpha * x.exp() }
    }
}

impl fmt::Display for ELU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ELU(alpha={:?})", self.alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(ELU::default()), &[3, 4], 0.05);
        check_layer(&mut Elementwise::new(ELU { alpha: 0.5 }), &[2, 6], 0.05);
    }

    #[test]
    fn values_and_repr() {
        assert_eq!(ELU::default().f(2.0), 2.0);
        assert!((ELU::default().f(-1.0) + 0.632_120_6).abs() < 1e-6);
        assert_eq!(ELU::default().to_string(), "ELU(alpha=1.0)");
    }
}
