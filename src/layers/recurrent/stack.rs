//! Recurrent layers, `RNN`, `LSTM` and `GRU`, as `torch.nn`'s with `batch_first=True`: one stack
//! ([`Recurrent`]) runs layers and directions through time; each cell's math is in its own file.
//!
//! # Backpropagation through time
//! A direction runs its cell over the steps in order (`t = 0..T`, or `T−1..0` when reversed):
//! `h_t = cell(xp_t, hp_t, h_{t−1})` with the input projection `xp_t = W_ih x_t + b_ih` and the
//! recurrent one `hp_t = W_hh h_{t−1} + b_hh` (`h` and the LSTM's `c` start at zero). Backward
//! walks the steps the other way: the gradient into `h_t` is the output's `∂L/∂y_t` plus what step
//! `t+1` sent back, `∂L/∂h_t += ∂L/∂hp_{t+1} · W_hh` (plus the cell's direct path). Then, summed
//! over all steps in one product each:
//! ```text
//! ∂L/∂W_ih += Σ_t ∂xp_tᵀ · x_t       ∂L/∂b_ih += Σ_t ∂xp_t       ∂L/∂x_t = ∂xp_t · W_ih
//! ∂L/∂W_hh += Σ_t ∂hp_tᵀ · h_{t−1}   ∂L/∂b_hh += Σ_t ∂hp_t
//! ```
//! A bidirectional layer adds both directions' `∂L/∂x`; layer `k+1` reads layer `k`'s output
//! `[h_fwd | h_rev]`.
//!
//! # Speed
//! Inside the layer the batch is cut into chunks of rows ([`chunks`]: a power of two of them, each
//! of at least 24 rows, fixed by the batch size alone), and rows are ordered chunk by chunk, each
//! chunk time-major: chunk `[r0, r1)` holds rows `T·r0 .. T·r1` of every `[rows, ·]` buffer, its
//! step `s` the `r1 − r0` rows from `T·r0 + s·(r1 − r0)`. Each chunk runs on its own, the chunks in
//! parallel: the input projection of all its steps in one GEMM, `[T·rows, in] · W_ihᵀ`, then its
//! steps (one `[rows, H] · W_hhᵀ` product and one fused cell pass each), with nothing shared between
//! them until the parameter gradients, which are summed over all rows in one fixed order. So the
//! result never depends on the thread count. `W_hh` is packed once per batch and direction for
//! [`matmul_packed_b`], whose micro-tiles fit the chunks' few rows, and each step's product reads
//! the state as it lies. For the LSTM and the RNN, whose pre-activation is the plain sum
//! `xp + hp`, `b_hh` is folded into the input projection's bias and each step adds
//! `h_{t−1} · W_hhᵀ` straight into `xp_t`. The weight gradients are one product per direction
//! (two for the GRU) by the same kernel, taken transposed, `[xᵀ; h_prevᵀ] · ∂pre`
//! ([`add_weight_grads`]). Buffers are kept from batch to batch.

use super::rnn::Nonlinearity;
use super::{gru, lstm, rnn};
use crate::error::{Error, Result};
use crate::init;
use crate::kernels::gemm::matmul_serial;
use crate::kernels::packed_b::{PackedB, matmul_packed_b};
use crate::kernels::{Op, matmul};
use crate::layers::{Layer, Mode, Param, no_forward};
use crate::tensor::Tensor;
use rand::Rng;
use rayon::prelude::*;
use std::fmt;
use std::ops::Range;

/// Which cell a [`Recurrent`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `RNN`: the Elman cell with `tanh` or `relu`.
    Rnn(Nonlinearity),
    /// `LSTM`: gates i, f, g, o.
    Lstm,
    /// `GRU`: gates r, z, n.
    Gru,
}

impl Cell {
    /// Gates per hidden unit: the rows of `W_ih` are `gates · hidden_size`.
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn(_) => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Whether ∂L/∂hp differs from ∂L/∂xp: the GRU's reset gate sits between `hp_n` and the sum;
    /// the others add `xp + hp`, so one buffer serves both, and forward adds `hp` into `xp`
    /// ([`StepForward::hp`]).
    fn own_hp_grad(self) -> bool {
        self == Cell::Gru
    }

    fn name(self) -> &'static str {
        match self {
            Cell::Rnn(_) => "RNN",
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }

    fn forward(self, s: StepForward<'_>) {
        match self {
            Cell::Rnn(act) => rnn::forward(act, s),
            Cell::Lstm => lstm::forward(s),
            Cell::Gru => gru::forward(s),
        }
    }

    fn backward(self, s: StepBackward<'_>) {
        match self {
            Cell::Rnn(act) => rnn::backward(act, s),
            Cell::Lstm => lstm::backward(s),
            Cell::Gru => gru::backward(s),
        }
    }
}

/// One step forward: `rows` rows of `[rows, G·H]` projections and `[rows, H]` states.
pub(super) struct StepForward<'a> {
    pub(super) rows: usize,
    /// `xp = W_ih x + b_ih`; for the LSTM and the RNN, the whole pre-activation `xp + hp` (the
    /// stack adds `hp` into it).
    pub(super) xp: &'a [f32],
    /// `hp = W_hh h + b_hh` for the GRU ([`Cell::own_hp_grad`]); else empty.
    pub(super) hp: &'a [f32],
    pub(super) h_prev: &'a [f32],
    pub(super) c_prev: &'a [f32],
    /// Out: the activated gates, kept for backward.
    pub(super) gates: &'a mut [f32],
    /// Out: the LSTM's cell state (the GRU keeps `hp_n` here).
    pub(super) c: &'a mut [f32],
    /// Out: the new hidden state.
    pub(super) h: &'a mut [f32],
}

/// One step backward, over what [`StepForward`] kept.
pub(super) struct StepBackward<'a> {
    pub(super) rows: usize,
    /// ∂L/∂h' of this step (from the output and from the step after).
    pub(super) dh: &'a [f32],
    /// In: ∂L/∂c' from the step after; out: ∂L/∂c for the step before (LSTM only).
    pub(super) dc: &'a mut [f32],
    pub(super) gates: &'a [f32],
    pub(super) c: &'a [f32],
    pub(super) c_prev: &'a [f32],
    pub(super) h_prev: &'a [f32],
    pub(super) h: &'a [f32],
    /// Out: ∂L/∂xp, `[rows, G·H]`.
    pub(super) dxp: &'a mut [f32],
    /// Out: ∂L/∂hp, `[rows, G·H]`, where it differs from ∂L/∂xp ([`Cell::own_hp_grad`]; else empty).
    pub(super) dhp: &'a mut [f32],
    /// Out: the part of ∂L/∂h that does not go through `W_hh` (the GRU's `z ⊙ ∂h'`; else 0).
    pub(super) dh_prev: &'a mut [f32],
}

/// The weights of one layer in one direction.
struct Weights {
    /// `[G·H, in]`
    w_ih: Param,
    /// `[G·H, H]`
    w_hh: Param,
    /// `[G·H]` each
    b_ih: Option<Param>,
    b_hh: Option<Param>,
}

impl Weights {
    /// The parameters under their PyTorch names (without the `_l{k}` suffix), in PyTorch's order.
    fn named(&self) -> [(&'static str, Option<&Param>); 4] {
        [
            ("weight_ih", Some(&self.w_ih)),
            ("weight_hh", Some(&self.w_hh)),
            ("bias_ih", self.b_ih.as_ref()),
            ("bias_hh", self.b_hh.as_ref()),
        ]
    }

    /// [`Weights::named`], mutable.
    fn named_mut(&mut self) -> [(&'static str, Option<&mut Param>); 4] {
        [
            ("weight_ih", Some(&mut self.w_ih)),
            ("weight_hh", Some(&mut self.w_hh)),
            ("bias_ih", self.b_ih.as_mut()),
            ("bias_hh", self.b_hh.as_mut()),
        ]
    }
}

/// PyTorch's name suffix of `weights[i]`: `l{k}`, or `l{k}_reverse` for the second direction.
fn suffix(i: usize, dirs: usize) -> String {
    let reverse = if i % dirs == 1 { "_reverse" } else { "" };
    format!("l{}{reverse}", i / dirs)
}

/// What one direction of one layer kept for backward, in the layer's row order (module docs).
#[derive(Default)]
struct Run {
    /// `[T·N, G·H]`
    gates: Vec<f32>,
    /// `[T·N, H]`
    c: Vec<f32>,
    /// `[T·N, H]`: the direction's output.
    h: Vec<f32>,
}

/// The buffers of forward and backward, kept from batch to batch (resized, never cleared, when
/// the batch changes), so that training allocates nothing per batch.
#[derive(Default)]
struct Buffers {
    /// Each layer's input `[T·N, in_k]`.
    inputs: Vec<Vec<f32>>,
    /// `[layer · D + direction]`
    runs: Vec<Run>,
    /// The input projection of one direction, `[T·N, G·H]` (plus `hp`, but for the GRU).
    xp: Vec<f32>,
    /// The GRU's recurrent projection of one step, each chunk's `[rows, G·H]`.
    hp: Vec<f32>,
    /// `W_hhᵀ` (forward) or `W_hh` (backward) packed for [`matmul_packed_b`].
    packed: PackedB,
    /// `[N, H]` zeros: the state before the first step.
    zeros: Vec<f32>,
    /// ∂L/∂xp and (GRU) ∂L/∂hp, `[T·N, G·H]`.
    dxp: Vec<f32>,
    dhp: Vec<f32>,
    /// ∂L/∂ of a layer's output `[T·N, D·H]` and of its input `[T·N, in_k]`.
    dout: Vec<f32>,
    dx: Vec<f32>,
    /// Each chunk's ∂L/∂h', ∂L/∂c' and ∂L/∂h (to the step before), `[N, H]`.
    dh: Vec<f32>,
    dc: Vec<f32>,
    dh_next: Vec<f32>,
    /// The weight gradients' transposed product ([`add_weight_grads`]): its left operand and C.
    weight_a: Vec<f32>,
    weight_c: Vec<f32>,
}

/// A stack of recurrent layers, each of one or two directions: PyTorch's `RNN`, `LSTM`, `GRU`.
///
/// # Shapes
/// - input `[N, T, input_size]` (batch first), output `[N, T, D·hidden_size]` (PyTorch's `output`;
///   `D = 2` if bidirectional); the initial state is zero.
/// - per layer `k` and direction (suffix `_reverse` for the second): `weight_ih_l{k}: [G·H, in_k]`,
///   `weight_hh_l{k}: [G·H, H]`, `bias_ih_l{k}`, `bias_hh_l{k}: [G·H]`, with `G` = 1 (RNN), 4 (LSTM,
///   gates i, f, g, o) or 3 (GRU, gates r, z, n), `in_0 = input_size`, `in_k = D·H`.
///
/// Every weight and bias starts `U(−1/√H, 1/√H)`, as PyTorch's `reset_parameters`.
pub struct Recurrent {
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    bidirectional: bool,
    /// `[layer · D + direction]`
    weights: Vec<Weights>,
    /// From the last forward: `(N, T)` and its input (whose buffer becomes ∂L/∂x); what else
    /// backward needs is in `bufs`.
    cache: Option<(usize, usize, Tensor)>,
    bufs: Buffers,
    /// A buffer free to become the next output.
    spare: Tensor,
}

/// The sizes one direction of one layer runs with.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    t: usize,
    hid: usize,
    inputs: usize,
}

impl Recurrent {
    /// A new stack with PyTorch's initialisation drawn from `rng` (in parameter order).
    pub fn new(
        cell: Cell,
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        bias: bool,
        bidirectional: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let bound = init::pytorch_bound(hidden_size);
        let gh = cell.gates() * hidden_size;
        let dirs = if bidirectional { 2 } else { 1 };
        let mut u = |shape: &[usize]| Param::new(init::uniform(shape, -bound, bound, rng));
        let mut weights = Vec::new();
        for k in 0..num_layers {
            let inputs = if k == 0 {
                input_size
            } else {
                dirs * hidden_size
            };
            for _ in 0..dirs {
                weights.push(Weights {
                    w_ih: u(&[gh, inputs]),
                    w_hh: u(&[gh, hidden_size]),
                    b_ih: bias.then(|| u(&[gh])),
                    b_hh: bias.then(|| u(&[gh])),
                });
            }
        }
        Recurrent {
            cell,
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            weights,
            cache: None,
            bufs: Buffers::default(),
            spare: Tensor::default(),
        }
    }

    /// The cell this stack runs.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// `hidden_size`: `H`, the features of each direction's state.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// `num_layers`.
    pub fn num_layers(&self) -> usize {
        self.num_layers
    }

    /// Whether each layer also runs the sequence backwards (`D = 2`).
    pub fn bidirectional(&self) -> bool {
        self.bidirectional
    }

    fn dirs(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// The number of features layer `k` reads per step.
    fn inputs(&self, k: usize) -> usize {
        if k == 0 {
            self.input_size
        } else {
            self.dirs() * self.hidden_size
        }
    }

    /// The backward pass; ∂L/∂x of the stack's input only if `input_grad`.
    fn backward_impl(&mut self, grad_y: Tensor, input_grad: bool) -> Result<Tensor> {
        let (n, t, x) = self.cache.take().ok_or_else(|| no_forward(self))?;
        let (hid, dirs, cell) = (self.hidden_size, self.dirs(), self.cell);
        let chunks = chunks(n);
        let b = &mut self.bufs;
        b.dout.resize(t * n * dirs * hid, 0.0);
        for (q, p) in row_pairs(t, &chunks) {
            let f = dirs * hid;
            b.dout[q * f..][..f].copy_from_slice(&grad_y.data()[p * f..][..f]);
        }
        for k in (0..self.num_layers).rev() {
            let inputs = if k == 0 { self.input_size } else { dirs * hid };
            let dims = Dims { n, t, hid, inputs };
            let mut dx = (k > 0 || input_grad).then_some(&mut b.dx);
            if let Some(dx) = dx.as_deref_mut() {
                dx.resize(t * n * inputs, 0.0);
            }
            for d in 0..dirs {
                backward_direction(
                    cell,
                    &mut self.weights[k * dirs + d],
                    (&b.runs[k * dirs + d], &b.inputs[k], &b.dout),
                    (d, dirs),
                    dims,
                    &chunks,
                    dx.as_deref_mut().map(|dx| (&mut dx[..], d > 0)),
                    (&mut b.dxp, &mut b.dhp),
                    (&mut b.dh, &mut b.dc, &mut b.dh_next, &mut b.zeros),
                    &mut b.packed,
                    (&mut b.weight_a, &mut b.weight_c),
                );
            }
            std::mem::swap(&mut b.dout, &mut b.dx);
        }
        self.spare = grad_y;
        if !input_grad {
            return Ok(x);
        }
        let f = self.input_size;
        let mut grad_x = Tensor::reuse(x, &[n, t, f]);
        for (q, p) in row_pairs(t, &chunks) {
            grad_x.data_mut()[p * f..][..f].copy_from_slice(&b.dout[q * f..][..f]);
        }
        Ok(grad_x)
    }
}

/// The chunks of a batch of `n` rows (see the module docs): the largest power of two of them with
/// at least `CHUNK_ROWS` rows each (one if `n < 2·CHUNK_ROWS`), as even as can be. They depend on
/// `n` alone, never on the thread count.
fn chunks(n: usize) -> Vec<Range<usize>> {
    let count = 1usize << (n / CHUNK_ROWS).max(1).ilog2();
    (0..count)
        .map(|i| i * n / count..(i + 1) * n / count)
        .collect()
}

/// Rows per chunk, at least: a 24-row chunk's products still fill two of the GEMM's 12-row tiles.
const CHUNK_ROWS: usize = 24;

/// `(q, p)` for every row: internal row `q` (chunk by chunk, each time-major; module docs) is row
/// `p = i·T + s` of the batch-first `[N, T, ·]` (batch row `i`, step `s`).
fn row_pairs(t: usize, chunks: &[Range<usize>]) -> impl Iterator<Item = (usize, usize)> + '_ {
    chunks
        .iter()
        .flat_map(move |c| (0..t).flat_map(move |s| c.clone().map(move |i| i * t + s)))
        .enumerate()
}

/// Each chunk's block of `buf`, which holds `per_row` floats for every batch row.
fn blocks<'a>(
    mut buf: &'a mut [f32],
    chunks: &[Range<usize>],
    per_row: usize,
) -> Vec<&'a mut [f32]> {
    chunks
        .iter()
        .map(|c| {
            let (block, rest) = std::mem::take(&mut buf).split_at_mut(c.len() * per_row);
            buf = rest;
            block
        })
        .collect()
}

/// [`blocks`], read-only.
fn blocks_ref<'a>(buf: &'a [f32], chunks: &[Range<usize>], per_row: usize) -> Vec<&'a [f32]> {
    chunks
        .iter()
        .map(|c| &buf[c.start * per_row..c.end * per_row])
        .collect()
}

/// Runs direction `reverse` of one layer over `x: [T·N, in]` into `run`.
#[allow(clippy::too_many_arguments)]
fn forward_direction(
    cell: Cell,
    w: &Weights,
    x: &[f32],
    reverse: bool,
    Dims { n, t, hid, inputs }: Dims,
    chunks: &[Range<usize>],
    run: &mut Run,
    (xp, hp, zeros): (&mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>),
    packed: &mut PackedB,
) {
    let gh = cell.gates() * hid;
    let own_hp = cell.own_hp_grad();
    xp.resize(t * n * gh, 0.0);
    run.gates.resize(t * n * gh, 0.0);
    run.c.resize(t * n * hid, 0.0);
    run.h.resize(t * n * hid, 0.0);
    let hp_row = if own_hp { gh } else { 0 };
    hp.resize(n * hp_row, 0.0);
    zeros.resize(n * hid, 0.0);
    // W_hhᵀ: [H, G·H] is packed once for all steps and chunks (it does not change within a batch).
    packed.pack(w.w_hh.value.data(), Op::T, hid, gh);
    let packed = &*packed;
    let tasks: Vec<_> = chunks
        .iter()
        .zip(blocks_ref(x, chunks, t * inputs))
        .zip(blocks(xp, chunks, t * gh))
        .zip(blocks(&mut run.gates, chunks, t * gh))
        .zip(blocks(&mut run.c, chunks, t * hid))
        .zip((blocks(&mut run.h, chunks, t * hid).into_iter()).zip(blocks(hp, chunks, hp_row)))
        .collect();
    tasks
        .into_par_iter()
        .for_each(|(((((rows, x), xp), gates), c), (h, hp))| {
            let (rows, zeros) = (rows.len(), &zeros[..rows.len() * hid]);
            let (g, st) = (rows * gh, rows * hid);
            // xp: [T·rows, G·H] = x: [T·rows, in] · W_ihᵀ: [in, G·H] + b_ih (+ b_hh, which the
            // steps' products then leave out, but for the GRU), all the chunk's steps in one
            // product.
            let folded = if own_hp { None } else { w.b_hh.as_ref() };
            fill_rows(xp, [w.b_ih.as_ref(), folded]);
            let w_ih = w.w_ih.value.data();
            matmul_serial(xp, x, Op::N, w_ih, Op::T, t * rows, inputs, gh, true);
            let mut prev = None;
            for step in steps(t, reverse) {
                let (h_prev, h) = prev_and_current(h, prev, step, st, zeros);
                let (c_prev, c) = prev_and_current(c, prev, step, st, zeros);
                let xp = &mut xp[step * g..][..g];
                // hp: [rows, G·H] = h_prev: [rows, H] · W_hhᵀ: [H, G·H] (+ b_hh), 0 at the first
                // step: the GRU's on its own, the others' added into xp (b_hh already is).
                let sum = if own_hp {
                    fill_rows(hp, [w.b_hh.as_ref(), None]);
                    &mut *hp
                } else {
                    &mut *xp
                };
                if prev.is_some() {
                    matmul_packed_b(sum, h_prev, packed, rows, true);
                }
                cell.forward(StepForward {
                    rows,
                    xp,
                    hp,
                    h_prev,
                    c_prev,
                    gates: &mut gates[step * g..][..g],
                    c,
                    h,
                });
                prev = Some(step);
            }
        });
}

/// Step `prev`'s block (read; `zeros` before the first step) and step `cur`'s (written) of `buf`,
/// whose steps are blocks of `len` floats.
fn prev_and_current<'a>(
    buf: &'a mut [f32],
    prev: Option<usize>,
    cur: usize,
    len: usize,
    zeros: &'a [f32],
) -> (&'a [f32], &'a mut [f32]) {
    match prev {
        None => (zeros, &mut buf[cur * len..][..len]),
        Some(p) if p < cur => {
            let (before, from_cur) = buf.split_at_mut(cur * len);
            (&before[p * len..][..len], &mut from_cur[..len])
        }
        Some(p) => {
            let (to_prev, from_prev) = buf.split_at_mut(p * len);
            (&from_prev[..len], &mut to_prev[cur * len..][..len])
        }
    }
}

/// Backward through direction `d` of `dirs` of one layer, given the layer's output gradient
/// `dout: [T·N, D·H]`: adds the parameter gradients, and writes (`true`: adds) ∂L/∂x into
/// `dx: [T·N, in]` if asked.
#[allow(clippy::too_many_arguments)]
fn backward_direction(
    cell: Cell,
    w: &mut Weights,
    (run, x, dout): (&Run, &[f32], &[f32]),
    (d, dirs): (usize, usize),
    Dims { n, t, hid, inputs }: Dims,
    chunks: &[Range<usize>],
    dx: Option<(&mut [f32], bool)>,
    (dxp, dhp): (&mut Vec<f32>, &mut Vec<f32>),
    (dh, dc, dh_next, zeros): (&mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>, &mut Vec<f32>),
    packed: &mut PackedB,
    (weight_a, weight_c): (&mut Vec<f32>, &mut Vec<f32>),
) {
    let gh = cell.gates() * hid;
    let own_hp_grad = cell.own_hp_grad();
    dxp.resize(t * n * gh, 0.0);
    dhp.resize(if own_hp_grad { t * n * gh } else { 0 }, 0.0);
    for v in [&mut *dh, &mut *dc, &mut *dh_next, &mut *zeros] {
        v.resize(n * hid, 0.0);
    }
    // W_hh: [G·H, H] packed once for all steps and chunks (see `forward_direction`).
    packed.pack(w.w_hh.value.data(), Op::N, gh, hid);
    let w_hh = &*packed;
    let tasks: Vec<_> = chunks
        .iter()
        .zip(blocks_ref(&run.gates, chunks, t * gh))
        .zip(blocks_ref(&run.c, chunks, t * hid))
        .zip(blocks_ref(&run.h, chunks, t * hid))
        .zip(blocks_ref(dout, chunks, t * dirs * hid))
        .zip(blocks(dxp, chunks, t * gh))
        .zip(blocks(dhp, chunks, if own_hp_grad { t * gh } else { 0 }))
        .zip(blocks(dh, chunks, hid))
        .zip(blocks(dc, chunks, hid))
        .zip(blocks(dh_next, chunks, hid))
        .collect();
    tasks.into_par_iter().for_each(
        |(((((((((rows, gates), c), h), dy), dxp), dhp), dh), dc), dh_next)| {
            let (rows, zeros) = (rows.len(), &zeros[..rows.len() * hid]);
            let (g, st) = (rows * gh, rows * hid);
            dc.fill(0.0);
            dh_next.fill(0.0);
            let order: Vec<usize> = steps(t, reverse(d)).collect();
            for s in (0..t).rev() {
                let step = order[s];
                let prev = (s > 0).then(|| order[s - 1] * st);
                // ∂L/∂h' = ∂L/∂y (this direction's columns) + what the step after sent back.
                let dy = dy[step * rows * dirs * hid..].chunks_exact(dirs * hid);
                for ((a, y), b) in dh
                    .chunks_exact_mut(hid)
                    .zip(dy)
                    .zip(dh_next.chunks_exact(hid))
                {
                    for ((a, y), b) in a.iter_mut().zip(&y[d * hid..]).zip(b) {
                        *a = y + b;
                    }
                }
                let (gs, ss) = (step * g..(step + 1) * g, step * st..(step + 1) * st);
                cell.backward(StepBackward {
                    rows,
                    dh,
                    dc,
                    gates: &gates[gs.clone()],
                    c: &c[ss.clone()],
                    c_prev: prev.map_or(zeros, |p| &c[p..][..st]),
                    h_prev: prev.map_or(zeros, |p| &h[p..][..st]),
                    h: &h[ss],
                    dxp: &mut dxp[gs.clone()],
                    dhp: if own_hp_grad {
                        &mut dhp[gs.clone()]
                    } else {
                        &mut []
                    },
                    dh_prev: dh_next,
                });
                // ∂L/∂h_prev: [rows, H] += ∂hp: [rows, G·H] · W_hh: [G·H, H]
                if s > 0 {
                    let dhp = if own_hp_grad { &dhp[gs] } else { &dxp[gs] };
                    matmul_packed_b(dh_next, dhp, w_hh, rows, true);
                }
            }
        },
    );
    let dhp: &[f32] = if own_hp_grad { dhp } else { dxp };

    // Weight gradients, all steps at once, each computed transposed (see `add_weight_grads`):
    // ∂W_ihᵀ: [in, G·H] += xᵀ: [in, T·N] · ∂xp: [T·N, G·H]
    // ∂W_hhᵀ: [H, G·H] += h_prevᵀ: [H, T·N] · ∂hp: [T·N, G·H]
    // where row q's h_prev is its state before its step (zero at a chunk's first step). For the
    // LSTM and the RNN, ∂xp = ∂hp: one product, with [xᵀ; h_prevᵀ] as the left operand.
    let x_rows = |q: usize| Some(&x[q * inputs..][..inputs]);
    let h_prev = |q: usize| previous_state(&run.h, q, (t, hid), chunks, reverse(d));
    let (w_ih, w_hh) = (w.w_ih.grad.data_mut(), w.w_hh.grad.data_mut());
    if own_hp_grad {
        let bufs = (&mut *packed, &mut *weight_a, &mut *weight_c);
        add_weight_grads(dxp, gh, &mut [(w_ih, inputs, &x_rows)], bufs);
        add_weight_grads(
            dhp,
            gh,
            &mut [(w_hh, hid, &h_prev)],
            (packed, weight_a, weight_c),
        );
    } else {
        let grads: &mut [WeightGrad<'_>] = &mut [(w_ih, inputs, &x_rows), (w_hh, hid, &h_prev)];
        add_weight_grads(dxp, gh, grads, (packed, weight_a, weight_c));
    }
    // ∂b_ih += Σ_rows ∂xp, ∂b_hh += Σ_rows ∂hp: the same sums but for the GRU, so one pass.
    if own_hp_grad {
        add_column_sums([w.b_ih.as_mut(), None], dxp);
        add_column_sums([w.b_hh.as_mut(), None], dhp);
    } else {
        add_column_sums([w.b_ih.as_mut(), w.b_hh.as_mut()], dxp);
    }

    // Input gradient.
    // ∂x: [T·N, in] (+)= ∂xp: [T·N, G·H] · W_ih: [G·H, in]
    if let Some((dx, accumulate)) = dx {
        matmul(
            dx,
            dxp,
            Op::N,
            w.w_ih.value.data(),
            Op::N,
            t * n,
            gh,
            inputs,
            accumulate,
        );
    }
}

/// Whether direction `d` runs the sequence backwards.
fn reverse(d: usize) -> bool {
    d == 1
}

/// The order a direction visits the steps in.
fn steps(t: usize, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
    if reverse {
        Box::new((0..t).rev())
    } else {
        Box::new(0..t)
    }
}

/// Sets every row of `m` to the sum of the biases there are (in order), or to zero without any.
fn fill_rows(m: &mut [f32], biases: [Option<&Param>; 2]) {
    let mut biases = biases.into_iter().flatten().map(|b| b.value.data());
    let Some(b0) = biases.next() else {
        return m.fill(0.0);
    };
    if m.is_empty() {
        return;
    }
    let (first, rest) = m.split_at_mut(b0.len());
    first.copy_from_slice(b0);
    for b in biases {
        first.iter_mut().zip(b).for_each(|(a, v)| *a += v);
    }
    for row in rest.chunks_exact_mut(b0.len()) {
        row.copy_from_slice(first);
    }
}

/// Row `q`'s state before its step (rows in the layer's order, see the module docs): the same
/// batch row's `h` one step earlier in the direction's order, `None` (zero) at its first step.
fn previous_state<'a>(
    h: &'a [f32],
    q: usize,
    (t, hid): (usize, usize),
    chunks: &[Range<usize>],
    reverse: bool,
) -> Option<&'a [f32]> {
    let c = chunks.iter().find(|c| q < t * c.end)?;
    let (rows, local) = (c.len(), q - t * c.start);
    let (s, i) = (local / rows, local % rows);
    let before = if reverse { s + 1 } else { s.checked_sub(1)? };
    (before < t).then(|| &h[(t * c.start + before * rows + i) * hid..][..hid])
}

/// A weight gradient `∂W: [G·H, F]`, `F`, and the source `S: [K, F]` it is the product with, as
/// row `q` of `S` (`None`: zeros).
type WeightGrad<'a> = (
    &'a mut [f32],
    usize,
    &'a (dyn Fn(usize) -> Option<&'a [f32]> + Sync),
);

/// `∂W += ∂preᵀ · S` for each `(∂W, F, S)` of `grads`, over the `K` rows of `∂pre: [K, G·H]`:
/// one product `C: [ΣF, G·H] = [S₁ᵀ; S₂ᵀ; …]: [ΣF, K] · ∂pre` by [`matmul_packed_b`], added back
/// transposed. So ∂pre, the large operand, is packed in one pass along its rows (as the left
/// operand `∂preᵀ` of `matmul`, its packing gathers a few floats from each row, rows a page apart,
/// which cost a fifth of these products' time). The rows of A and C are cut in two for the cores;
/// each row of C is summed on its own, so the cut changes no bit.
fn add_weight_grads(
    dpre: &[f32],
    gh: usize,
    grads: &mut [WeightGrad<'_>],
    (packed, a, c): (&mut PackedB, &mut Vec<f32>, &mut Vec<f32>),
) {
    let k = dpre.len() / gh.max(1);
    let m: usize = grads.iter().map(|g| g.1).sum();
    if k == 0 || m == 0 || gh == 0 {
        return;
    }
    packed.pack(dpre, Op::N, k, gh);
    let packed = &*packed;
    a.resize(m * k, 0.0);
    c.resize(m * gh, 0.0);
    // Rows `r0..` of A: [ΣF, K] (each S written transposed, 16 of its rows at a time: a cache
    // line per write), then of C.
    let sources: Vec<_> = grads.iter().map(|g| (g.1, g.2)).collect();
    let rows_of_c = |r0: usize, a: &mut [f32], c: &mut [f32]| {
        let mut first = 0;
        for &(f, rows) in &sources {
            let zeros = vec![0.0; f];
            let mine = r0.max(first)..(r0 + a.len() / k).min(first + f);
            for q0 in (0..k).step_by(16) {
                let width = 16.min(k - q0);
                let src: [&[f32]; 16] =
                    std::array::from_fn(|i| rows(q0 + i.min(width - 1)).unwrap_or(&zeros));
                for r in mine.clone() {
                    let dst = &mut a[(r - r0) * k + q0..][..width];
                    for (v, s) in dst.iter_mut().zip(&src) {
                        *v = s[r - first];
                    }
                }
            }
            first += f;
        }
        matmul_packed_b(c, a, packed, a.len() / k, false);
    };
    let half = m / 2;
    let ((c0, c1), (a0, a1)) = (c.split_at_mut(half * gh), a.split_at_mut(half * k));
    rayon::join(|| rows_of_c(0, a0, c0), || rows_of_c(half, a1, c1));
    // ∂W[g, j] += C[first + j, g]
    let mut first = 0;
    for (grad, f, _) in grads.iter_mut() {
        for (g, row) in grad.chunks_exact_mut(*f).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v += c[(first + j) * gh + g];
            }
        }
        first += *f;
    }
}

/// `∂L/∂b += Σ_rows ∂L/∂(pre-activation)` into each bias there is, rows in order, reading the
/// rows once.
fn add_column_sums(biases: [Option<&mut Param>; 2], rows: &[f32]) {
    let mut grads: Vec<&mut [f32]> = biases
        .into_iter()
        .flatten()
        .map(|b| b.grad.data_mut())
        .collect();
    let Some(width) = grads.first().map(|g| g.len()) else {
        return;
    };
    for row in rows.chunks_exact(width) {
        for g in &mut grads {
            g.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
    }
}

/// Writes the outputs of one layer's directions side by side, `[h_fwd | h_rev]` per row, into `out`:
/// in the layer's row order, or batch-first `[N, T, D·H]` if `batch_first`.
fn gather(
    runs: &[Run],
    out: &mut [f32],
    hid: usize,
    t: usize,
    chunks: &[Range<usize>],
    batch_first: bool,
) {
    let f = runs.len() * hid;
    for (q, p) in row_pairs(t, chunks) {
        let row = &mut out[if batch_first { p } else { q } * f..][..f];
        for (part, run) in row.chunks_exact_mut(hid).zip(runs) {
            part.copy_from_slice(&run.h[q * hid..][..hid]);
        }
    }
}

impl fmt::Display for Recurrent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}, {}",
            self.cell.name(),
            self.input_size,
            self.hidden_size
        )?;
        if self.num_layers != 1 {
            write!(f, ", num_layers={}", self.num_layers)?;
        }
        if self.cell == Cell::Rnn(Nonlinearity::Relu) {
            write!(f, ", nonlinearity='relu'")?;
        }
        if self.weights[0].b_ih.is_none() {
            write!(f, ", bias=False")?;
        }
        write!(f, ", batch_first=True")?;
        if self.bidirectional {
            write!(f, ", bidirectional=True")?;
        }
        write!(f, ")")
    }
}

impl Layer for Recurrent {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input {
            [t, f] if *t > 0 && *f == self.input_size => {
                Ok(vec![*t, self.dirs() * self.hidden_size])
            }
            _ => Err(format!(
                "[T, {}] (batch first: [N, T, features])",
                self.input_size
            )),
        }
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let (n, t) = match x.shape() {
            [n, t, f] if *f == self.input_size => (*n, *t),
            s => {
                return Err(Error::invalid(format!(
                    "{self} expects input [N, T, {}], got {s:?}",
                    self.input_size
                )));
            }
        };
        let (hid, dirs, layers) = (self.hidden_size, self.dirs(), self.num_layers);
        let (f, out_f) = (self.input_size, dirs * hid);
        let chunks = chunks(n);
        let b = &mut self.bufs;
        b.inputs.resize_with(layers, Vec::new);
        b.runs.resize_with(layers * dirs, Run::default);
        b.inputs[0].resize(t * n * f, 0.0);
        for (q, p) in row_pairs(t, &chunks) {
            b.inputs[0][q * f..][..f].copy_from_slice(&x.data()[p * f..][..f]);
        }
        for k in 0..layers {
            let inputs = if k == 0 { f } else { out_f };
            for d in 0..dirs {
                forward_direction(
                    self.cell,
                    &self.weights[k * dirs + d],
                    &b.inputs[k],
                    reverse(d),
                    Dims { n, t, hid, inputs },
                    &chunks,
                    &mut b.runs[k * dirs + d],
                    (&mut b.xp, &mut b.hp, &mut b.zeros),
                    &mut b.packed,
                );
            }
            if k + 1 < layers {
                // Layer k+1 reads [h_fwd | h_rev].
                b.inputs[k + 1].resize(t * n * out_f, 0.0);
                let runs = &b.runs[k * dirs..][..dirs];
                gather(runs, &mut b.inputs[k + 1], hid, t, &chunks, false);
            }
        }
        let buf = std::mem::take(&mut self.spare).or_stale(self.cache.take().map(|c| c.2));
        let mut y = Tensor::reuse(buf, &[n, t, out_f]);
        let last = &b.runs[(layers - 1) * dirs..];
        gather(last, y.data_mut(), hid, t, &chunks, true);
        self.cache = Some((n, t, x));
        Ok(y)
    }

    /// BPTT, layer by layer from the top (see the module docs).
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, true)
    }

    /// As [`Layer::backward`] without ∂L/∂x of the stack's input (one product fewer per direction
    /// of the first layer); the input's buffer comes back as it is.
    fn backward_params(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, false)
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        let dirs = self.dirs();
        for (i, w) in self.weights.iter_mut().enumerate() {
            for (name, p) in w.named_mut() {
                if let Some(p) = p {
                    f(&format!("{prefix}{name}_{}", suffix(i, dirs)), p);
                }
            }
        }
    }

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (i, w) in self.weights.iter().enumerate() {
            for (name, p) in w.named() {
                if let Some(p) = p {
                    f(&format!("{prefix}{name}_{}", suffix(i, self.dirs())), p);
                }
            }
        }
    }

    fn macs(&self, input: &[usize]) -> usize {
        let t = input.first().copied().unwrap_or(0);
        let gh = self.cell.gates() * self.hidden_size;
        (0..self.num_layers)
            .map(|k| t * self.dirs() * (self.inputs(k) + self.hidden_size) * gh)
            .sum()
    }
}

#[cfg(test)]
#[path = "stack_tests.rs"]
mod tests;
