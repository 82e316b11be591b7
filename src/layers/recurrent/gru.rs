//! The GRU cell, gates in PyTorch's order r, z, n:
//!
//! ```text
//! r = σ(xp_r + hp_r)   z = σ(xp_z + hp_z)   n = tanh(xp_n + r ⊙ hp_n)
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//! where `xp = W_ih x + b_ih` and `hp = W_hh h + b_hh`, each `[N, 3H]` as `[r | z | n]` per row.
//! Unlike the LSTM, `hp_n` sits inside the reset gate, so it is kept for backward (in the step's
//! `c`, which the GRU has no other use for).

use super::stack::{StepBackward, StepForward};
use crate::kernels::activation::{sigmoid, tanh};
use crate::kernels::simd::{Loop, vectorized};

/// One step: keeps the activated gates `[N, 3H]` and `hp_n` for backward (one vectorized pass, see
/// [`vectorized`]).
pub(super) fn forward(s: StepForward<'_>) {
    vectorized(Forward(s))
}

/// [`forward`] as a [`Loop`].
struct Forward<'a>(StepForward<'a>);

impl Loop for Forward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let s = self.0;
        let hid = s.h.len() / s.rows;
        for r in 0..s.rows {
            let g3 = r * 3 * hid..(r + 1) * 3 * hid;
            let (xp, hp, gates) = (&s.xp[g3.clone()], &s.hp[g3.clone()], &mut s.gates[g3]);
            let row = r * hid..(r + 1) * hid;
            let (h_prev, hn, h) = (&s.h_prev[row.clone()], &mut s.c[row.clone()], &mut s.h[row]);
            for j in 0..hid {
                let rg = sigmoid(xp[j] + hp[j]);
                let z = sigmoid(xp[hid + j] + hp[hid + j]);
                hn[j] = hp[2 * hid + j];
                let n = tanh(xp[2 * hid + j] + rg * hn[j]);
                gates[j] = rg;
                gates[hid + j] = z;
                gates[2 * hid + j] = n;
                h[j] = (1.0 - z) * n + z * h_prev[j];
            }
        }
    }
}

/// BPTT through one step:
///
/// ```text
/// ∂n = ∂h' ⊙ (1 − z)     ∂z = ∂h' ⊙ (h − n)     ∂h (direct) = ∂h' ⊙ z
/// ∂pre_n = ∂n ⊙ (1 − n²)   ∂r = ∂pre_n ⊙ hp_n
/// ∂xp = [∂r·r(1−r) | ∂z·z(1−z) | ∂pre_n]      ∂hp = [∂r·r(1−r) | ∂z·z(1−z) | ∂pre_n ⊙ r]
/// ```
pub(super) fn backward(s: StepBackward<'_>) {
    vectorized(Backward(s))
}

/// [`backward`] as a [`Loop`].
struct Backward<'a>(StepBackward<'a>);

impl Loop for Backward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let s = self.0;
        let hid = s.dh.len() / s.rows;
        for r in 0..s.rows {
            let g3 = r * 3 * hid..(r + 1) * 3 * hid;
            let gates = &s.gates[g3.clone()];
            let row = r * hid..(r + 1) * hid;
            let (dh, hn, h_prev) = (
                &s.dh[row.clone()],
                &s.c[row.clone()],
                &s.h_prev[row.clone()],
            );
            let (dxp, dhp, direct) = (&mut s.dxp[g3.clone()], &mut s.dhp[g3], &mut s.dh_prev[row]);
            for j in 0..hid {
                let (rg, z, n) = (gates[j], gates[hid + j], gates[2 * hid + j]);
                let dpre_n = dh[j] * (1.0 - z) * (1.0 - n * n);
                let dpre_r = dpre_n * hn[j] * rg * (1.0 - rg);
                let dpre_z = dh[j] * (h_prev[j] - n) * z * (1.0 - z);
                dxp[j] = dpre_r;
                dxp[hid + j] = dpre_z;
                dxp[2 * hid + j] = dpre_n;
                dhp[j] = dpre_r;
                dhp[hid + j] = dpre_z;
                dhp[2 * hid + j] = dpre_n * rg;
                direct[j] = dh[j] * z;
            }
        }
    }
}
