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
//! Inside the layer the sequence is time-major (`[T, N, ·]`), so one step's rows are contiguous:
//! the input projection of all steps is one GEMM, `[T·N, in] · W_ihᵀ`, and each step makes one
//! `[N, H] · W_hhᵀ` product.

use super::rnn::Nonlinearity;
use super::{gru, lstm, rnn};
use crate::error::{Error, Result};
use crate::init;
use crate::kernels::{Op, matmul};
use crate::layers::{Layer, Mode, Param, no_forward};
use crate::tensor::Tensor;
use rand::Rng;
use std::fmt;

/// The logistic function `σ(v) = 1/(1 + e^−v)`.
pub(super) fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

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

/// One step forward: `rows` (= N) rows of `[N, G·H]` projections and `[N, H]` states.
pub(super) struct StepForward<'a> {
    pub(super) rows: usize,
    pub(super) xp: &'a [f32],
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
    /// Out: ∂L/∂xp and ∂L/∂hp, `[N, G·H]`.
    pub(super) dxp: &'a mut [f32],
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

/// What one direction of one layer kept for backward, time-major.
struct Run {
    /// `[T, N, G·H]`
    gates: Vec<f32>,
    /// `[T, N, H]`
    c: Vec<f32>,
    /// `[T, N, H]`: the direction's output.
    h: Vec<f32>,
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
    /// From the last forward: `(N, T)`, each layer's time-major input `[T·N, in_k]`, and the runs.
    cache: Option<Cache>,
}

struct Cache {
    n: usize,
    t: usize,
    inputs: Vec<Vec<f32>>,
    runs: Vec<Run>,
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

    /// Runs direction `d` of layer `k` over `x: [T·N, in_k]` (time-major).
    fn run(&self, k: usize, d: usize, x: &[f32], n: usize, t: usize) -> Run {
        let w = &self.weights[k * self.dirs() + d];
        let (hid, gh, inputs) = (
            self.hidden_size,
            self.cell.gates() * self.hidden_size,
            self.inputs(k),
        );
        // xp: [T·N, G·H] = x: [T·N, in] · W_ihᵀ: [in, G·H] (+ b_ih), every step in one product.
        let mut xp = vec![0.0; t * n * gh];
        fill_rows(&mut xp, w.b_ih.as_ref());
        matmul(
            &mut xp,
            x,
            Op::N,
            w.w_ih.value.data(),
            Op::T,
            t * n,
            inputs,
            gh,
            true,
        );
        let mut run = Run {
            gates: vec![0.0; t * n * gh],
            c: vec![0.0; t * n * hid],
            h: vec![0.0; t * n * hid],
        };
        let (mut h_prev, mut c_prev) = (vec![0.0; n * hid], vec![0.0; n * hid]);
        let mut hp = vec![0.0; n * gh];
        for (s, step) in steps(t, d == 1).enumerate() {
            // hp: [N, G·H] = h_prev: [N, H] · W_hhᵀ: [H, G·H] (+ b_hh); h_prev is 0 at the first step.
            fill_rows(&mut hp, w.b_hh.as_ref());
            if s > 0 {
                matmul(
                    &mut hp,
                    &h_prev,
                    Op::N,
                    w.w_hh.value.data(),
                    Op::T,
                    n,
                    hid,
                    gh,
                    true,
                );
            }
            let (g, st) = (
                step * n * gh..(step + 1) * n * gh,
                step * n * hid..(step + 1) * n * hid,
            );
            self.cell.forward(StepForward {
                rows: n,
                xp: &xp[g.clone()],
                hp: &hp,
                h_prev: &h_prev,
                c_prev: &c_prev,
                gates: &mut run.gates[g],
                c: &mut run.c[st.clone()],
                h: &mut run.h[st.clone()],
            });
            h_prev.copy_from_slice(&run.h[st.clone()]);
            c_prev.copy_from_slice(&run.c[st]);
        }
        run
    }

    /// Backward through direction `d` of layer `k`, given its output gradient `dy: [T·N, H]`; adds
    /// the parameter gradients and writes (`accumulate`: adds) ∂L/∂x into `dx: [T·N, in_k]`.
    #[allow(clippy::too_many_arguments)]
    fn run_backward(
        &mut self,
        k: usize,
        d: usize,
        run: &Run,
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        accumulate: bool,
        (n, t): (usize, usize),
    ) {
        let (hid, gh, inputs) = (
            self.hidden_size,
            self.cell.gates() * self.hidden_size,
            self.inputs(k),
        );
        let cell = self.cell;
        let w = &mut self.weights[k * if self.bidirectional { 2 } else { 1 } + d];
        let (mut dxp, mut dhp) = (vec![0.0; t * n * gh], vec![0.0; t * n * gh]);
        let zeros = vec![0.0; n * hid];
        let (mut dh, mut dh_next, mut dc) =
            (vec![0.0; n * hid], vec![0.0; n * hid], vec![0.0; n * hid]);
        let order: Vec<usize> = steps(t, d == 1).collect();
        for s in (0..t).rev() {
            let step = order[s];
            let st = step * n * hid..(step + 1) * n * hid;
            let g = step * n * gh..(step + 1) * n * gh;
            let prev = (s > 0).then(|| order[s - 1] * n * hid);
            let h_prev = prev.map_or(&zeros[..], |p| &run.h[p..][..n * hid]);
            let c_prev = prev.map_or(&zeros[..], |p| &run.c[p..][..n * hid]);
            for ((a, &b), &c) in dh.iter_mut().zip(&dy[st.clone()]).zip(&dh_next) {
                *a = b + c;
            }
            cell.backward(StepBackward {
                rows: n,
                dh: &dh,
                dc: &mut dc,
                gates: &run.gates[g.clone()],
                c: &run.c[st.clone()],
                c_prev,
                h_prev,
                h: &run.h[st],
                dxp: &mut dxp[g.clone()],
                dhp: &mut dhp[g.clone()],
                dh_prev: &mut dh_next,
            });
            // ∂L/∂h_prev: [N, H] += ∂hp: [N, G·H] · W_hh: [G·H, H]
            if s > 0 {
                matmul(
                    &mut dh_next,
                    &dhp[g],
                    Op::N,
                    w.w_hh.value.data(),
                    Op::N,
                    n,
                    gh,
                    hid,
                    true,
                );
            }
        }

        // Parameter gradients, all steps at once.
        // ∂W_ih: [G·H, in] += ∂xpᵀ: [G·H, T·N] · x: [T·N, in]
        matmul(
            w.w_ih.grad.data_mut(),
            &dxp,
            Op::T,
            x,
            Op::N,
            gh,
            t * n,
            inputs,
            true,
        );
        // ∂W_hh: [G·H, H] += ∂hpᵀ: [G·H, (T−1)·N] · h_prev: [(T−1)·N, H], where step t's h_prev is
        // the output at t−1 (forward) or t+1 (reverse), so both are shifted slices of the run.
        if t > 1 {
            let (later, earlier) = (&dhp[n * gh..], &run.h[..(t - 1) * n * hid]);
            let (sooner, after) = (&dhp[..(t - 1) * n * gh], &run.h[n * hid..]);
            let (a, b) = if d == 0 {
                (later, earlier)
            } else {
                (sooner, after)
            };
            matmul(
                w.w_hh.grad.data_mut(),
                a,
                Op::T,
                b,
                Op::N,
                gh,
                (t - 1) * n,
                hid,
                true,
            );
        }
        add_column_sums(w.b_ih.as_mut(), &dxp);
        add_column_sums(w.b_hh.as_mut(), &dhp);

        // Input gradient.
        // ∂x: [T·N, in] (+)= ∂xp: [T·N, G·H] · W_ih: [G·H, in]
        matmul(
            dx,
            &dxp,
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

/// The order a direction visits the steps in.
fn steps(t: usize, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
    if reverse {
        Box::new((0..t).rev())
    } else {
        Box::new(0..t)
    }
}

/// Sets every row of `m` to the bias, or to zero without one.
fn fill_rows(m: &mut [f32], bias: Option<&Param>) {
    match bias {
        Some(b) => m
            .chunks_exact_mut(b.value.len())
            .for_each(|row| row.copy_from_slice(b.value.data())),
        None => m.fill(0.0),
    }
}

/// `∂L/∂b += Σ_rows ∂L/∂(pre-activation)`, rows in order.
fn add_column_sums(bias: Option<&mut Param>, rows: &[f32]) {
    if let Some(b) = bias {
        let g = b.grad.data_mut();
        for row in rows.chunks_exact(g.len()) {
            g.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
    }
}

/// `[A, B, F]` → `[B, A, F]`: batch-first ⇄ time-major.
fn swap_leading(x: &[f32], a: usize, b: usize, f: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * f..][..f].copy_from_slice(&x[(i * b + j) * f..][..f]);
        }
    }
    out
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
        let out_f = self.dirs() * self.hidden_size;
        let mut input = swap_leading(x.data(), n, t, self.input_size);
        let (mut inputs, mut runs) = (Vec::new(), Vec::new());
        for k in 0..self.num_layers {
            let mut out = vec![0.0; t * n * out_f];
            for d in 0..self.dirs() {
                let run = self.run(k, d, &input, n, t);
                // Layer output [T·N, D·H]: direction d in columns d·H..(d+1)·H.
                for (row, h) in out
                    .chunks_exact_mut(out_f)
                    .zip(run.h.chunks_exact(self.hidden_size))
                {
                    row[d * self.hidden_size..][..self.hidden_size].copy_from_slice(h);
                }
                runs.push(run);
            }
            inputs.push(std::mem::replace(&mut input, out));
        }
        self.cache = Some(Cache { n, t, inputs, runs });
        Tensor::new(&[n, t, out_f], swap_leading(&input, t, n, out_f))
    }

    /// BPTT, layer by layer from the top (see the module docs).
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let Cache { n, t, inputs, runs } = self.cache.take().ok_or_else(|| no_forward(self))?;
        let (hid, dirs) = (self.hidden_size, self.dirs());
        let mut dout = swap_leading(grad_y.data(), n, t, dirs * hid);
        for k in (0..self.num_layers).rev() {
            let mut dx = vec![0.0; t * n * self.inputs(k)];
            for d in 0..dirs {
                let dy: Vec<f32> = dout
                    .chunks_exact(dirs * hid)
                    .flat_map(|row| &row[d * hid..][..hid])
                    .copied()
                    .collect();
                let run = &runs[k * dirs + d];
                self.run_backward(k, d, run, &inputs[k], &dy, &mut dx, d > 0, (n, t));
            }
            dout = dx;
        }
        Tensor::new(
            &[n, t, self.input_size],
            swap_leading(&dout, t, n, self.input_size),
        )
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
