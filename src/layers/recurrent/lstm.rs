//! The LSTM cell, gates in PyTorch's order i, f, g, o:
//!
//! ```text
//! i = σ(xp_i + hp_i)   f = σ(xp_f + hp_f)   g = tanh(xp_g + hp_g)   o = σ(xp_o + hp_o)
//! c' = f ⊙ c + i ⊙ g        h' = o ⊙ tanh(c')
//! ```
//! where `xp = W_ih x + b_ih` and `hp = W_hh h + b_hh`, each `[N, 4H]` as `[i | f | g | o]` per row.

use super::stack::{StepBackward, StepForward, sigmoid};

/// One step: keeps the activated gates `[N, 4H]` and the cell state `c'` for backward.
pub(super) fn forward(s: StepForward<'_>) {
    let hid = s.h.len() / s.rows;
    for r in 0..s.rows {
        let g4 = r * 4 * hid..(r + 1) * 4 * hid;
        let (xp, hp, gates) = (&s.xp[g4.clone()], &s.hp[g4.clone()], &mut s.gates[g4]);
        for (k, gate) in gates.iter_mut().enumerate() {
            let pre = xp[k] + hp[k];
            *gate = if (2 * hid..3 * hid).contains(&k) {
                pre.tanh()
            } else {
                sigmoid(pre)
            };
        }
        let (i, rest) = gates.split_at(hid);
        let (f, rest) = rest.split_at(hid);
        let (g, o) = rest.split_at(hid);
        let row = r * hid..(r + 1) * hid;
        let (c_prev, c, h) = (&s.c_prev[row.clone()], &mut s.c[row.clone()], &mut s.h[row]);
        for j in 0..hid {
            c[j] = f[j] * c_prev[j] + i[j] * g[j];
            h[j] = o[j] * c[j].tanh();
        }
    }
}

/// BPTT through one step, with `dc` carrying ∂L/∂c' in and ∂L/∂c out:
///
/// ```text
/// ∂o = ∂h' ⊙ tanh(c')                   ∂c' += ∂h' ⊙ o ⊙ (1 − tanh²(c'))
/// ∂i = ∂c' ⊙ g    ∂g = ∂c' ⊙ i    ∂f = ∂c' ⊙ c    ∂c = ∂c' ⊙ f
/// ∂pre = [∂i·i(1−i) | ∂f·f(1−f) | ∂g·(1−g²) | ∂o·o(1−o)] = ∂xp = ∂hp
/// ```
pub(super) fn backward(s: StepBackward<'_>) {
    let hid = s.dh.len() / s.rows;
    for r in 0..s.rows {
        let g4 = r * 4 * hid..(r + 1) * 4 * hid;
        let gates = &s.gates[g4.clone()];
        let (i, f, g, o) = (
            &gates[..hid],
            &gates[hid..2 * hid],
            &gates[2 * hid..3 * hid],
            &gates[3 * hid..],
        );
        let row = r * hid..(r + 1) * hid;
        let (dh, c, c_prev) = (
            &s.dh[row.clone()],
            &s.c[row.clone()],
            &s.c_prev[row.clone()],
        );
        let (dc, dpre) = (&mut s.dc[row], &mut s.dxp[g4.clone()]);
        for j in 0..hid {
            let tc = c[j].tanh();
            let d_c = dc[j] + dh[j] * o[j] * (1.0 - tc * tc);
            dpre[j] = d_c * g[j] * i[j] * (1.0 - i[j]);
            dpre[hid + j] = d_c * c_prev[j] * f[j] * (1.0 - f[j]);
            dpre[2 * hid + j] = d_c * i[j] * (1.0 - g[j] * g[j]);
            dpre[3 * hid + j] = dh[j] * tc * o[j] * (1.0 - o[j]);
            dc[j] = d_c * f[j];
        }
        s.dhp[g4.clone()].copy_from_slice(&s.dxp[g4]);
    }
    s.dh_prev.fill(0.0);
}
