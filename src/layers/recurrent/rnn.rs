//! The Elman cell of `RNN`: `h' = act(W_ih x + b_ih + W_hh h + b_hh)`, `act` = tanh or ReLU.

use super::stack::{StepBackward, StepForward};
use crate::kernels::activation::tanh;
use crate::kernels::simd::{Loop, vectorized};

/// The cell's nonlinearity, PyTorch's `nonlinearity='tanh'` or `'relu'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `'tanh'` (PyTorch's default).
    Tanh,
    /// `'relu'`.
    Relu,
}

/// `h' = act(xp + hp)`, where `xp = W_ih x + b_ih` and `hp = W_hh h + b_hh` (`[N, H]` each); the
/// stack hands the cell their sum (in [`StepForward::xp`]).
pub(super) fn forward(act: Nonlinearity, s: StepForward<'_>) {
    match act {
        Nonlinearity::Tanh => vectorized(TanhForward(s)),
        Nonlinearity::Relu => {
            for (h, &pre) in s.h.iter_mut().zip(s.xp) {
                *h = pre.max(0.0);
            }
        }
    }
}

/// `h' = tanh(pre)` as a [`Loop`].
struct TanhForward<'a>(StepForward<'a>);

impl Loop for TanhForward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let s = self.0;
        for (h, &pre) in s.h.iter_mut().zip(s.xp) {
            *h = tanh(pre);
        }
    }
}

/// `∂L/∂pre = ∂L/∂h' ⊙ act'(pre)`, with `tanh' = 1 − h'²` and `relu' = [h' > 0]`; the
/// pre-activation is a plain sum, so `∂L/∂xp = ∂L/∂hp = ∂L/∂pre` and `h` has no other path.
pub(super) fn backward(act: Nonlinearity, s: StepBackward<'_>) {
    for ((dx, &dh), &h) in s.dxp.iter_mut().zip(s.dh).zip(s.h) {
        *dx = match act {
            Nonlinearity::Tanh => dh * (1.0 - h * h),
            Nonlinearity::Relu => {
                if h > 0.0 {
                    dh
                } else {
                    0.0
                }
            }
        };
    }
    s.dh_prev.fill(0.0);
}
