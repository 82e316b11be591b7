//! The LSTM cell, gates in PyTorch's order i, f, g, o:
//!
//! ```text
//! i = σ(xp_i + hp_i)   f = σ(xp_f + hp_f)   g = tanh(xp_g + hp_g)   o = σ(xp_o + hp_o)
//! c' = f ⊙ c + i ⊙ g        h' = o ⊙ tanh(c')
//! ```
//! where `xp = W_ih x + b_ih` and `hp = W_hh h + b_hh`, each `[N, 4H]` as `[i | f | g | o]` per row.
//! The stack hands the cell their sum, the pre-activation `xp + hp` (in [`StepForward::xp`]).
//!
//! Each direction is one pass over the step's rows, vectorized (see [`vectorized`]) with the
//! polynomial σ and tanh of [`crate::kernels::activation`]; the tests hold it to a naive twin that
//! activates the gates in one loop and updates the state in another, with `f32::exp`/`tanh`.

use super::stack::{StepBackward, StepForward};
use crate::kernels::activation::{sigmoid, tanh};
use crate::kernels::simd::{Loop, in_lanes, vectorized};
use std::ops::Range;

/// One step: keeps the activated gates `[N, 4H]` and the cell state `c'` for backward.
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
        let rows =
            s.xp.chunks_exact(4 * hid)
                .zip(s.gates.chunks_exact_mut(4 * hid))
                .zip(s.c_prev.chunks_exact(hid))
                .zip(s.c.chunks_exact_mut(hid).zip(s.h.chunks_exact_mut(hid)));
        for (((pre, gates), c_prev), (c, h)) in rows {
            forward_row(pre, c_prev, gates, c, h);
        }
    }
}

/// The four `[H]` quarters `[i | f | g | o]` of a `[4H]` row.
#[inline(always)]
fn quarters(row: &[f32], hid: usize) -> [&[f32]; 4] {
    [0, 1, 2, 3].map(|q| &row[q * hid..(q + 1) * hid])
}

/// [`quarters`], mutable.
#[inline(always)]
fn quarters_mut(row: &mut [f32], hid: usize) -> [&mut [f32]; 4] {
    let (a, rest) = row.split_at_mut(hid);
    let (b, rest) = rest.split_at_mut(hid);
    let (c, d) = rest.split_at_mut(hid);
    [a, b, c, &mut d[..hid]]
}

/// One row of [`forward`], in blocks of columns (see [`in_lanes`]).
#[inline(always)]
fn forward_row(pre: &[f32], c_prev: &[f32], gates: &mut [f32], c: &mut [f32], h: &mut [f32]) {
    let hid = c.len();
    let pre = quarters(pre, hid);
    let mut gates = quarters_mut(gates, hid);
    in_lanes!(hid, |r| forward_block(r, pre, c_prev, &mut gates, c, h));
}

/// Columns `r` of [`forward_row`]. Its slices are arguments so that the compiler knows they do
/// not overlap, and all of one length, which is what lets it vectorize the loop.
#[inline(always)]
fn forward_block(
    r: Range<usize>,
    pre: [&[f32]; 4],
    c_prev: &[f32],
    gates: &mut [&mut [f32]; 4],
    c: &mut [f32],
    h: &mut [f32],
) {
    let [pi, pf, pg, po] = pre.map(|q| &q[r.clone()]);
    let [gi, gf, gg, go] = gates.each_mut().map(|q| &mut q[r.clone()]);
    let (c_prev, c, h) = (&c_prev[r.clone()], &mut c[r.clone()], &mut h[r]);
    for j in 0..c.len() {
        let i = sigmoid(pi[j]);
        let f = sigmoid(pf[j]);
        let g = tanh(pg[j]);
        let o = sigmoid(po[j]);
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
        c[j] = f * c_prev[j] + i * g;
        h[j] = o * tanh(c[j]);
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
        let rows = s
            .gates
            .chunks_exact(4 * hid)
            .zip(s.dxp.chunks_exact_mut(4 * hid))
            .zip(s.dh.chunks_exact(hid).zip(s.dc.chunks_exact_mut(hid)))
            .zip(s.c.chunks_exact(hid).zip(s.c_prev.chunks_exact(hid)));
        for (((gates, dpre), (dh, dc)), (c, c_prev)) in rows {
            backward_row(gates, dh, c, c_prev, dpre, dc);
        }
        s.dh_prev.fill(0.0);
    }
}

/// One row of [`backward`], in blocks of columns (see [`in_lanes`]).
#[inline(always)]
fn backward_row(
    gates: &[f32],
    dh: &[f32],
    c: &[f32],
    c_prev: &[f32],
    dpre: &mut [f32],
    dc: &mut [f32],
) {
    let hid = dc.len();
    let gates = quarters(gates, hid);
    let mut dpre = quarters_mut(dpre, hid);
    in_lanes!(hid, |r| backward_block(
        r,
        gates,
        (dh, c, c_prev),
        &mut dpre,
        dc
    ));
}

/// Columns `r` of [`backward_row`] (slices as arguments: see [`forward_block`]).
#[inline(always)]
fn backward_block(
    r: Range<usize>,
    gates: [&[f32]; 4],
    (dh, c, c_prev): (&[f32], &[f32], &[f32]),
    dpre: &mut [&mut [f32]; 4],
    dc: &mut [f32],
) {
    let [i, f, g, o] = gates.map(|q| &q[r.clone()]);
    let [di, df, dg, d_o] = dpre.each_mut().map(|q| &mut q[r.clone()]);
    let (dh, c, c_prev) = (&dh[r.clone()], &c[r.clone()], &c_prev[r.clone()]);
    let dc = &mut dc[r];
    for j in 0..dc.len() {
        let tc = tanh(c[j]);
        let d_c = dc[j] + dh[j] * o[j] * (1.0 - tc * tc);
        di[j] = d_c * g[j] * i[j] * (1.0 - i[j]);
        df[j] = d_c * c_prev[j] * f[j] * (1.0 - f[j]);
        dg[j] = d_c * i[j] * (1.0 - g[j] * g[j]);
        d_o[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
        dc[j] = d_c * f[j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sigmoid_naive(v: f32) -> f32 {
        1.0 / (1.0 + (-v).exp())
    }

    /// The naive twin of [`forward`]: the gates activated in one loop, the state in another.
    fn forward_naive(s: StepForward<'_>) {
        let hid = s.h.len() / s.rows;
        for (k, gate) in s.gates.iter_mut().enumerate() {
            let pre = s.xp[k];
            *gate = if (2 * hid..3 * hid).contains(&(k % (4 * hid))) {
                pre.tanh()
            } else {
                sigmoid_naive(pre)
            };
        }
        for r in 0..s.rows {
            let g = &s.gates[r * 4 * hid..];
            for j in 0..hid {
                let (i, f, gg, o) = (g[j], g[hid + j], g[2 * hid + j], g[3 * hid + j]);
                let at = r * hid + j;
                s.c[at] = f * s.c_prev[at] + i * gg;
                s.h[at] = o * s.c[at].tanh();
            }
        }
    }

    fn random(n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-3.0..3.0)).collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "{what}[{k}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn fused_step_matches_its_naive_twin_on_odd_sizes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for (rows, hid) in [(1, 1), (3, 7), (5, 17), (2, 33)] {
            let pre = random(rows * 4 * hid, &mut rng);
            let (c_prev, h_prev) = (random(rows * hid, &mut rng), random(rows * hid, &mut rng));
            let mut out = [(); 2].map(|_| {
                (
                    vec![0.0; rows * 4 * hid],
                    vec![0.0; rows * hid],
                    vec![0.0; rows * hid],
                )
            });
            for (fast, (gates, c, h)) in [true, false].into_iter().zip(out.iter_mut()) {
                let s = StepForward {
                    rows,
                    xp: &pre,
                    hp: &[],
                    h_prev: &h_prev,
                    c_prev: &c_prev,
                    gates,
                    c,
                    h,
                };
                if fast { forward(s) } else { forward_naive(s) }
            }
            let [(g0, c0, h0), (g1, c1, h1)] = &out;
            close(g0, g1, "gates");
            close(c0, c1, "c");
            close(h0, h1, "h");
        }
    }
}
