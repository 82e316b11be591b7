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
use crate::kernels::simd::{Loop, in_lanes, vectorized};
use std::ops::Range;

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
        let rows = (s.xp.chunks_exact(3 * hid).zip(s.hp.chunks_exact(3 * hid)))
            .zip(s.gates.chunks_exact_mut(3 * hid))
            .zip(s.h_prev.chunks_exact(hid))
            .zip(s.c.chunks_exact_mut(hid).zip(s.h.chunks_exact_mut(hid)));
        for ((((xp, hp), gates), h_prev), (hn, h)) in rows {
            forward_row(xp, hp, h_prev, gates, hn, h);
        }
    }
}

/// The three `[H]` thirds `[r | z | n]` of a `[3H]` row.
#[inline(always)]
fn thirds(row: &[f32], hid: usize) -> [&[f32]; 3] {
    [0, 1, 2].map(|q| &row[q * hid..(q + 1) * hid])
}

/// [`thirds`], mutable.
#[inline(always)]
fn thirds_mut(row: &mut [f32], hid: usize) -> [&mut [f32]; 3] {
    let (a, rest) = row.split_at_mut(hid);
    let (b, c) = rest.split_at_mut(hid);
    [a, b, &mut c[..hid]]
}

/// One row of [`forward`], in blocks of columns (see [`in_lanes`]).
#[inline(always)]
fn forward_row(
    xp: &[f32],
    hp: &[f32],
    h_prev: &[f32],
    gates: &mut [f32],
    hn: &mut [f32],
    h: &mut [f32],
) {
    let hid = h.len();
    let (xp, hp) = (thirds(xp, hid), thirds(hp, hid));
    let mut gates = thirds_mut(gates, hid);
    in_lanes!(hid, |r| forward_block(
        r,
        (xp, hp),
        h_prev,
        &mut gates,
        hn,
        h
    ));
}

/// Columns `r` of [`forward_row`]. Its slices are arguments so that the compiler knows they do
/// not overlap, and all of one length, which is what lets it vectorize the loop.
#[inline(always)]
fn forward_block(
    r: Range<usize>,
    (xp, hp): ([&[f32]; 3], [&[f32]; 3]),
    h_prev: &[f32],
    gates: &mut [&mut [f32]; 3],
    hn: &mut [f32],
    h: &mut [f32],
) {
    let ([xr, xz, xn], [hr, hz, hpn]) = (xp.map(|q| &q[r.clone()]), hp.map(|q| &q[r.clone()]));
    let [gr, gz, gn] = gates.each_mut().map(|q| &mut q[r.clone()]);
    let (h_prev, hn, h) = (&h_prev[r.clone()], &mut hn[r.clone()], &mut h[r]);
    for j in 0..h.len() {
        let r = sigmoid(xr[j] + hr[j]);
        let z = sigmoid(xz[j] + hz[j]);
        hn[j] = hpn[j];
        let n = tanh(xn[j] + r * hn[j]);
        (gr[j], gz[j], gn[j]) = (r, z, n);
        h[j] = (1.0 - z) * n + z * h_prev[j];
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
        let rows = (s.gates.chunks_exact(3 * hid).zip(s.dh.chunks_exact(hid)))
            .zip(s.c.chunks_exact(hid).zip(s.h_prev.chunks_exact(hid)))
            .zip(
                s.dxp
                    .chunks_exact_mut(3 * hid)
                    .zip(s.dhp.chunks_exact_mut(3 * hid)),
            )
            .zip(s.dh_prev.chunks_exact_mut(hid));
        for ((((gates, dh), (hn, h_prev)), (dxp, dhp)), direct) in rows {
            backward_row(gates, dh, hn, h_prev, dxp, dhp, direct);
        }
    }
}

/// One row of [`backward`], in blocks of columns (see [`in_lanes`]).
#[inline(always)]
fn backward_row(
    gates: &[f32],
    dh: &[f32],
    hn: &[f32],
    h_prev: &[f32],
    dxp: &mut [f32],
    dhp: &mut [f32],
    direct: &mut [f32],
) {
    let hid = direct.len();
    let gates = thirds(gates, hid);
    let mut d = (thirds_mut(dxp, hid), thirds_mut(dhp, hid));
    in_lanes!(hid, |c| backward_block(
        c,
        gates,
        (dh, hn, h_prev),
        &mut d,
        direct
    ));
}

/// The `[H]` thirds of ∂xp and ∂hp.
type GradThirds<'a> = ([&'a mut [f32]; 3], [&'a mut [f32]; 3]);

/// Columns `cols` of [`backward_row`] (slices as arguments: see [`forward_block`]).
#[inline(always)]
fn backward_block(
    cols: Range<usize>,
    gates: [&[f32]; 3],
    (dh, hn, h_prev): (&[f32], &[f32], &[f32]),
    (dxp, dhp): &mut GradThirds<'_>,
    direct: &mut [f32],
) {
    let [r, z, n] = gates.map(|q| &q[cols.clone()]);
    let [dxr, dxz, dxn] = dxp.each_mut().map(|q| &mut q[cols.clone()]);
    let [dhr, dhz, dhn] = dhp.each_mut().map(|q| &mut q[cols.clone()]);
    let (dh, hn, h_prev) = (&dh[cols.clone()], &hn[cols.clone()], &h_prev[cols.clone()]);
    let direct = &mut direct[cols];
    for j in 0..direct.len() {
        let dpre_n = dh[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
        let dpre_r = dpre_n * hn[j] * r[j] * (1.0 - r[j]);
        let dpre_z = dh[j] * (h_prev[j] - n[j]) * z[j] * (1.0 - z[j]);
        (dxr[j], dxz[j], dxn[j]) = (dpre_r, dpre_z, dpre_n);
        (dhr[j], dhz[j], dhn[j]) = (dpre_r, dpre_z, dpre_n * r[j]);
        direct[j] = dh[j] * z[j];
    }
}
