//! `Tanh()`: `y = tanh(x)`.

use super::Activation;
use std::fmt;

/// `f(x) = tanh(x)`, `f′(x) = 1 − y²`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

impl Activation for Tanh {
    fn f(&self, x: f32) -> f32 {
        x.tanh()
    }
    fn df(&self, _x: f32, y: f32) -> f32 {
        1.0 - y * y
    }
}

impl fmt::Display for Tanh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tanh()")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(Tanh), &[2, 7], 0.0);
    }
}
