//! `GELU(approximate='none')`: `y = x·Φ(x)`, and `GELU(approximate='tanh')`.

use super::Activation;
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::fmt;

/// `f(x) = x·Φ(x)` with `Φ(x) = ½(1 + erf(x/√2))`, `f′(x) = Φ(x) + x·φ(x)`, `φ(x) = e^(−x²/2)/√(2π)`.
///
/// With `tanh`: `f(x) = ½x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)`,
/// `f′(x) = ½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²)`.
/// Evaluated in f64 and rounded once, so both sit within an ulp of PyTorch's float kernels.
#[derive(Clone, Copy, Debug, Default)]
pub struct GELU {
    /// `approximate='tanh'` rather than the exact erf form.
    pub tanh: bool,
}

const C: f64 = 0.044715;

impl GELU {
    /// `√(2/π)`.
    fn k() -> f64 {
        (2.0 / PI).sqrt()
    }
}

impl Activation for GELU {
    const DF_USES_Y: bool = false;
    fn f(&self, x: f32) -> f32 {
        let x = x as f64;
        let y = if self.tanh {
            0.5 * x * (1.0 + (Self::k() * (x + C * x * x * x)).tanh())
        } else {
            0.5 * x * (1.0 + libm::erf(x * FRAC_1_SQRT_2))
        };
        y as f32
    }
    fn df(&self, x: f32, _y: f32) -> f32 {
        let x = x as f64;
        let d = if self.tanh {
            let t = (Self::k() * (x + C * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * Self::k() * (1.0 + 3.0 * C * x * x)
        } else {
            let cdf = 0.5 * (1.0 + libm::erf(x * FRAC_1_SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
            cdf + x * pdf
        };
        d as f32
    }
}

impl fmt::Display for GELU {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = if self.tanh { "tanh" } else { "none" };
        write!(f, "GELU(approximate='{a}')")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, gradcheck::check_layer};

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut Elementwise::new(GELU { tanh: false }), &[3, 5], 0.0);
        check_layer(&mut Elementwise::new(GELU { tanh: true }), &[2, 2, 3], 0.0);
    }

    #[test]
    fn values_and_repr() {
        // torch.nn.functional.gelu(torch.tensor([1.0, -0.5])) and with approximate='tanh'.
        let (e, t) = (GELU { tanh: false }, GELU { tanh: true });
        assert!((e.f(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((e.f(-0.5) + 0.154_268_8).abs() < 1e-6);
        assert!((t.f(1.0) - 0.841_192).abs() < 1e-6);
        assert_eq!(e.to_string(), "GELU(approximate='none')");
        assert_eq!(t.to_string(), "GELU(approximate='tanh')");
    }
}
