//! `BatchNorm1d(num_features, eps=1e-5, momentum=0.1)` and `BatchNorm2d(...)`, as `torch.nn`'s with
//! `affine=True, track_running_stats=True`: each channel normalised by the batch's statistics in
//! training, by the running statistics in evaluation.

use super::{Activation, Buffer, Layer, Mode, Param, ReLU, Shares, no_forward};
use crate::error::{Error, Result};
use crate::kernels::simd::{Loop, vectorized};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// Batch normalisation over channel `c` of `x: [N, C, S…]`, with `M = N·∏S` values per channel:
///
/// - training: `μ = (1/M) Σ x`, `σ² = (1/M) Σ (x − μ)²` (biased), `x̂ = (x − μ)/√(σ² + ε)`,
///   `y = γ·x̂ + β`; then `running_mean ← (1 − m)·running_mean + m·μ`,
///   `running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)` (unbiased), `num_batches_tracked += 1`.
/// - evaluation: the same `y` with `μ, σ²` = `running_mean, running_var`.
///
/// Running statistics are [`Buffer`]s: checkpoints keep them, optimisers never see them.
///
/// When processes share the batch (`Mode::Train`'s [`Shares`], data parallelism) every sum over the
/// batch — `M`, `Σx`, `Σ(x − μ)²` here, `Σg`, `Σg·x̂` in backward — is summed over all of them, so
/// each normalises with the whole batch's statistics and the running statistics are one process's.
///
/// A ReLU just after it can be taken over ([`BatchNorm::take_relu`], as `layers::plan` decides):
/// the output is then `ReLU(γ·x̂ + β)`, and ∂L/∂y is masked by `ReLU′(γ·x̂ + β)`, recomputed from
/// the kept `x̂`, inside the two backward passes: the ReLU's own passes over the batch go.
///
/// # Shapes
/// `BatchNorm1d`: `[N, C]` or `[N, C, L]`; `BatchNorm2d`: `[N, C, H, W]`; output as input.
/// `weight, bias, running_mean, running_var: [C]`, `num_batches_tracked: []` (int64 on file).
pub struct BatchNorm {
    /// 1 for `BatchNorm1d`, 2 for `BatchNorm2d`.
    dims: usize,
    num_features: usize,
    eps: f32,
    momentum: f32,
    weight: Param,
    bias: Param,
    running_mean: Buffer,
    running_var: Buffer,
    num_batches_tracked: Buffer,
    /// `x̂` of the last forward and, when it used batch statistics, the whole batch's `M` and who
    /// shares the batch; `1/√(σ² + ε)` per channel.
    xhat: Option<(Tensor, Option<(f64, Shares)>)>,
    inv_std: Vec<f32>,
    /// Whether the output goes through `ReLU` (a ReLU taken over from the layer after).
    relu: bool,
    spare: Tensor,
}

impl BatchNorm {
    /// `ε`, added to the variance.
    pub fn eps(&self) -> f32 {
        self.eps
    }

    /// `BatchNorm{dims}d(num_features, eps, momentum)`: `γ = 1`, `β = 0`, running mean 0 and
    /// variance 1, as PyTorch's `reset_parameters`.
    pub fn new(dims: usize, num_features: usize, eps: f32, momentum: f32) -> Self {
        let c = [num_features];
        let buffer = |value: Tensor| Buffer { value, int: false };
        BatchNorm {
            dims,
            num_features,
            eps,
            momentum,
            weight: Param::new(Tensor::new(&c, vec![1.0; num_features]).expect("[C]")),
            bias: Param::new(Tensor::zeros(&c)),
            running_mean: buffer(Tensor::zeros(&c)),
            running_var: buffer(Tensor::new(&c, vec![1.0; num_features]).expect("[C]")),
            num_batches_tracked: Buffer {
                value: Tensor::zeros(&[]),
                int: true,
            },
            xhat: None,
            inv_std: Vec::new(),
            relu: false,
            spare: Tensor::default(),
        }
    }

    /// From now on, runs `ReLU(BatchNorm(x))` and its gradient for the ReLU just after it, which is
    /// then skipped (a fusion `layers::plan` decides).
    pub(crate) fn take_relu(&mut self) {
        self.relu = true;
    }

    /// `∂L/∂y` of this layer's own `γ·x̂ + β` from the `g` that came back: `g·ReLU′(γ·x̂ + β)` when
    /// it took a ReLU over (the product the ReLU's backward takes, so the same bits), else `g`.
    #[inline(always)]
    fn pre_relu_grad(relu: bool, g: f32, xhat: f32, gamma: f32, beta: f32) -> f32 {
        if relu {
            let y = gamma * xhat + beta;
            g * ReLU.df(y, ReLU.f(y))
        } else {
            g
        }
    }

    /// `(Σ p, Σ q)` per channel of two `[N, C, S]` tensors `a`, `b` (`b` may be `a`), with
    /// `(p, q) = f(channel)(a, b)` elementwise, in f64. Each row `[S]` is summed on its own (the
    /// rows spread over the cores) by [`lane_sums`], then the rows of a channel are added in `n`
    /// order: a fixed order whatever the threads.
    fn channel_sums<F: Fn(f32, f32) -> (f64, f64)>(
        &self,
        a: &[f32],
        b: &[f32],
        s: usize,
        f: impl Fn(usize) -> F + Sync,
    ) -> Vec<(f64, f64)> {
        let c = self.num_features;
        let rows: Vec<(f64, f64)> = a
            .par_chunks(s)
            .zip(b.par_chunks(s))
            .with_min_len((ROW_TASK / s).max(1))
            .enumerate()
            .map(|(row, (a, b))| {
                vectorized(RowSums {
                    a,
                    b,
                    f: f(row % c),
                })
            })
            .collect();
        let mut sums = vec![(0f64, 0f64); c];
        for (row, (p, q)) in rows.iter().enumerate() {
            sums[row % c].0 += p;
            sums[row % c].1 += q;
        }
        sums
    }
}

/// Values per parallel task of [`BatchNorm::channel_sums`] (several rows of a small `S`).
const ROW_TASK: usize = 4096;

/// `(Σ p, Σ q)` over one row, `(p, q) = f(a, b)`, in f64 on eight interleaved lanes added in lane
/// order at the end: eight independent chains (which the compiler keeps in one vector register)
/// instead of one chain of dependent additions, in an order fixed by the row alone.
#[inline(always)]
fn lane_sums(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f64, f64)) -> (f64, f64) {
    let (mut ps, mut qs) = ([0f64; 8], [0f64; 8]);
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (a8.remainder(), b8.remainder());
    for (a, b) in a8.zip(b8) {
        for k in 0..8 {
            let (p, q) = f(a[k], b[k]);
            ps[k] += p;
            qs[k] += q;
        }
    }
    for (k, (&a, &b)) in ar.iter().zip(br).enumerate() {
        let (p, q) = f(a, b);
        ps[k] += p;
        qs[k] += q;
    }
    (ps.iter().sum(), qs.iter().sum())
}

// The passes over the batch, one row `[S]` of one channel at a time, each a [`Loop`] so that
// [`vectorized`] compiles it for the CPU's widest vectors (the binary's baseline is SSE2): the
// same arithmetic, so the same bits, at several times the speed.

/// [`lane_sums`] of one row.
struct RowSums<'a, F> {
    a: &'a [f32],
    b: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> (f64, f64)> Loop for RowSums<'_, F> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        lane_sums(self.a, self.b, self.f)
    }
}

/// Forward, one row: `x̂ = (x − μ)·inv_std` in place of `x`, `y = γ·x̂ + β` (through ReLU if `relu`).
struct Normalise<'a> {
    x: &'a mut [f32],
    y: &'a mut [f32],
    mean: f32,
    inv_std: f32,
    gamma: f32,
    beta: f32,
    relu: bool,
}

impl Loop for Normalise<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Normalise {
            x,
            y,
            mean,
            inv_std,
            gamma,
            beta,
            relu,
        } = self;
        for (x, y) in x.iter_mut().zip(y) {
            *x = (*x - mean) * inv_std;
            *y = gamma * *x + beta;
            if relu {
                *y = ReLU.f(*y);
            }
        }
    }
}

/// Backward, one row, in place of `g = ∂L/∂y`: `scale·(g′ − mg − x̂·mgx)`, `g′` the gradient of
/// `γ·x̂ + β` ([`BatchNorm::pre_relu_grad`]).
struct InputGrad<'a> {
    g: &'a mut [f32],
    xhat: &'a [f32],
    scale: f32,
    mg: f32,
    mgx: f32,
    gamma: f32,
    beta: f32,
    relu: bool,
}

impl Loop for InputGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let InputGrad {
            g,
            xhat,
            scale,
            mg,
            mgx,
            gamma,
            beta,
            relu,
        } = self;
        for (g, x) in g.iter_mut().zip(xhat) {
            *g = scale * (BatchNorm::pre_relu_grad(relu, *g, *x, gamma, beta) - mg - x * mgx);
        }
    }
}

impl fmt::Display for BatchNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BatchNorm{}d({}, eps={}, momentum={}, affine=True, bias=True, track_running_stats=True)",
            self.dims,
            self.num_features,
            python_float(self.eps),
            python_float(self.momentum)
        )
    }
}

/// A float as Python's `repr` writes it (`1e-05`, `0.1`).
fn python_float(v: f32) -> String {
    let v = v as f64;
    let short: f64 = format!("{}", v as f32).parse().unwrap_or(v);
    if short != 0.0 && short.abs() < 1e-4 {
        let e = format!("{short:e}");
        let (m, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        format!("{m}e-{:02}", -exp)
    } else {
        format!("{short:?}")
    }
}

impl Layer for BatchNorm {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let c = self.num_features;
        match (self.dims, input) {
            (1, [ch] | [ch, _]) | (2, [ch, _, _]) if *ch == c => Ok(input.to_vec()),
            (1, _) => Err(format!("[C={c}] or [C={c}, L]")),
            _ => Err(format!("[C={c}, H, W]")),
        }
    }

    fn needs_whole_batch(&self) -> bool {
        true
    }

    fn forward(&mut self, mut x: Tensor, mode: Mode) -> Result<Tensor> {
        let c = self.num_features;
        let out = self.check("", &x.shape()[1..], "")?;
        let s: usize = out[1..].iter().product();
        let shares = match mode {
            Mode::Train { shares, .. } => Some(shares),
            Mode::Eval => None,
        };
        let mut batch = None;
        let (mean, var): (Vec<f32>, Vec<f32>) = if let Some(shares) = shares {
            // [M, Σx per channel], over every process's rows.
            let mut sums = vec![(x.len() / c) as f64];
            let own = self.channel_sums(x.data(), x.data(), s, |_| |x, _| (x as f64, 0.0));
            sums.extend(own.iter().map(|v| v.0));
            shares.sum(&mut sums);
            let m = sums[0] as usize;
            if m <= 1 {
                return Err(Error::invalid(format!(
                    "{self}: Expected more than 1 value per channel when training, got input size {:?}",
                    x.shape()
                )));
            }
            let mean: Vec<f64> = sums[1..].iter().map(|s| s / m as f64).collect();
            // σ² as Σ(x − μ)²/M, a second pass: E[x²] − μ² loses digits when |μ| ≫ σ.
            let mut centred: Vec<f64> = self
                .channel_sums(x.data(), x.data(), s, |ch| {
                    let mean = mean[ch];
                    move |x, _| ((x as f64 - mean).powi(2), 0.0)
                })
                .iter()
                .map(|(sq, _)| *sq)
                .collect();
            shares.sum(&mut centred);
            centred.iter_mut().for_each(|v| *v /= m as f64);
            batch = Some((m as f64, shares));
            // Running statistics: the unbiased variance, M/(M − 1)·σ².
            let k = self.momentum;
            for ch in 0..c {
                let rm = &mut self.running_mean.value.data_mut()[ch];
                *rm = (1.0 - k) * *rm + k * mean[ch] as f32;
                let rv = &mut self.running_var.value.data_mut()[ch];
                *rv = (1.0 - k) * *rv + k * (centred[ch] * m as f64 / (m - 1) as f64) as f32;
            }
            self.num_batches_tracked.value.data_mut()[0] += 1.0;
            (
                mean.iter().map(|&v| v as f32).collect(),
                centred.iter().map(|&v| v as f32).collect(),
            )
        } else {
            (
                self.running_mean.value.data().to_vec(),
                self.running_var.value.data().to_vec(),
            )
        };
        self.inv_std.clear();
        self.inv_std
            .extend(var.iter().map(|v| 1.0 / (v + self.eps).sqrt()));

        // x̂ in the input's buffer, y = γ·x̂ + β in a spare one.
        let shape = x.shape().to_vec();
        let mut y = Tensor::reuse(std::mem::take(&mut self.spare), &shape);
        let (inv_std, gamma, beta, relu) = (
            &self.inv_std,
            self.weight.value.data(),
            self.bias.value.data(),
            self.relu,
        );
        x.data_mut()
            .par_chunks_mut(s)
            .zip(y.data_mut().par_chunks_mut(s))
            .enumerate()
            .for_each(|(row, (x, y))| {
                let ch = row % c;
                vectorized(Normalise {
                    x,
                    y,
                    mean: mean[ch],
                    inv_std: inv_std[ch],
                    gamma: gamma[ch],
                    beta: beta[ch],
                    relu,
                })
            });
        self.xhat = Some((x, batch));
        Ok(y)
    }

    /// With `g = ∂L/∂y` and sums over the `M` values of channel `c`:
    /// `∂L/∂γ += Σ g·x̂`, `∂L/∂β += Σ g`;
    /// training: `∂L/∂x = γ/√(σ² + ε) · (g − Σg/M − x̂·Σ(g·x̂)/M)` (μ and σ² depend on every x);
    /// evaluation: `∂L/∂x = γ/√(running_var + ε) · g`.
    /// (With a ReLU taken over, `g` is `∂L/∂y·ReLU′(γ·x̂ + β)`, formed as it is read.)
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        let (xhat, batch) = self.xhat.take().ok_or_else(|| no_forward(self))?;
        let c = self.num_features;
        let s = xhat.shape()[2..].iter().product::<usize>().max(1);

        // Parameter gradients, from this process's rows (a shared batch sums them with the others).
        let (gamma, beta, relu) = (self.weight.value.data(), self.bias.value.data(), self.relu);
        let sums = self.channel_sums(grad_y.data(), xhat.data(), s, |ch| {
            let (gamma, beta) = (gamma[ch], beta[ch]);
            move |g, x| {
                let g = Self::pre_relu_grad(relu, g, x, gamma, beta) as f64;
                (g, g * x as f64)
            }
        });
        for (ch, (sg, sgx)) in sums.iter().enumerate() {
            self.weight.grad.data_mut()[ch] += *sgx as f32;
            self.bias.grad.data_mut()[ch] += *sg as f32;
        }

        // Input gradient, in place in ∂L/∂y's buffer.
        let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * self.inv_std[ch]).collect();
        let means: Vec<(f32, f32)> = match batch {
            Some((m, shares)) => {
                // Σg and Σg·x̂ over the whole batch.
                let mut all: Vec<f64> = sums.iter().flat_map(|&(sg, sgx)| [sg, sgx]).collect();
                shares.sum(&mut all);
                all.chunks(2)
                    .map(|p| ((p[0] / m) as f32, (p[1] / m) as f32))
                    .collect()
            }
            None => vec![(0.0, 0.0); c],
        };
        grad_y
            .data_mut()
            .par_chunks_mut(s)
            .zip(xhat.data().par_chunks(s))
            .enumerate()
            .for_each(|(row, (g, xhat))| {
                let ch = row % c;
                let (mg, mgx) = means[ch];
                vectorized(InputGrad {
                    g,
                    xhat,
                    scale: scale[ch],
                    mg,
                    mgx,
                    gamma: gamma[ch],
                    beta: beta[ch],
                    relu,
                })
            });
        self.spare = xhat;
        Ok(grad_y)
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
        f(&format!("{prefix}bias"), &mut self.bias);
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Buffer)) {
        f(&format!("{prefix}running_mean"), &mut self.running_mean);
        f(&format!("{prefix}running_var"), &mut self.running_var);
        f(
            &format!("{prefix}num_batches_tracked"),
            &mut self.num_batches_tracked,
        );
    }

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&format!("{prefix}weight"), &self.weight);
        f(&format!("{prefix}bias"), &self.bias);
    }

    fn buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Buffer)) {
        f(&format!("{prefix}running_mean"), &self.running_mean);
        f(&format!("{prefix}running_var"), &self.running_var);
        f(
            &format!("{prefix}num_batches_tracked"),
            &self.num_batches_tracked,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;
    use rand::SeedableRng;
    use std::ops::Range;

    /// A layer with γ, β away from their defaults, so that the check sees them act.
    fn bn(dims: usize, c: usize) -> BatchNorm {
        let mut l = BatchNorm::new(dims, c, 1e-5, 0.1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        l.weight.value = crate::init::uniform(&[c], 0.5, 1.5, &mut rng);
        l.bias.value = crate::init::uniform(&[c], -0.5, 0.5, &mut rng);
        l
    }

    #[test]
    fn gradients_match_central_differences_in_training() {
        check_layer(&mut bn(1, 3), &[5, 3], 0.0);
        check_layer(&mut bn(1, 2), &[3, 2, 4], 0.0);
        check_layer(&mut bn(2, 3), &[2, 3, 2, 3], 0.0);
    }

    /// One of two threads that share a batch: their sums meet at a barrier, added in rank order.
    struct Half {
        me: usize,
        slots: &'static std::sync::Mutex<[Vec<f64>; 2]>,
        barrier: &'static std::sync::Barrier,
    }

    impl crate::layers::BatchSum for Half {
        fn sum(&self, values: &mut [f64]) {
            self.slots.lock().unwrap()[self.me] = values.to_vec();
            self.barrier.wait();
            {
                let slots = self.slots.lock().unwrap();
                for (i, v) in values.iter_mut().enumerate() {
                    *v = slots[0][i] + slots[1][i];
                }
            }
            self.barrier.wait();
        }
    }

    /// Forward and backward of rows `rows` of `x` (upstream gradient `g`) as one of two processes
    /// sharing the batch; `(y, ∂L/∂x, ∂L/∂γ, ∂L/∂β, running mean, running var)`.
    fn share_of(
        dims: usize,
        x: &Tensor,
        g: &Tensor,
        rows: Range<usize>,
        sum: &'static Half,
    ) -> [Vec<f32>; 6] {
        let mut l = bn(dims, x.shape()[1]);
        let mode = Mode::Train {
            seed: 0,
            rows: crate::layers::Rows::From(rows.start),
            shares: Shares::across(sum),
        };
        let y = l.forward(x.rows(rows.start, rows.end), mode).unwrap();
        let dx = l.backward(g.rows(rows.start, rows.end)).unwrap();
        [
            y.data().to_vec(),
            dx.data().to_vec(),
            l.weight.grad.data().to_vec(),
            l.bias.grad.data().to_vec(),
            l.running_mean.value.data().to_vec(),
            l.running_var.value.data().to_vec(),
        ]
    }

    #[test]
    fn a_batch_shared_by_two_processes_is_normalised_as_the_whole_batch() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for (dims, shape) in [(2, vec![5, 3, 2, 2]), (1, vec![4, 3])] {
            let x = crate::init::uniform(&shape, -2.0, 3.0, &mut rng);
            let g = crate::init::uniform(&shape, -1.0, 1.0, &mut rng);
            let mut one = bn(dims, shape[1]);
            let y = one.forward(x.clone(), Mode::train(0)).unwrap();
            let dx = one.backward(g.clone()).unwrap();
            let n = shape[0];
            // Uneven shares, and a process whose share is empty (it still meets every sum).
            for cut in [3, n, 0] {
                let slots = Box::leak(Box::new(std::sync::Mutex::new([vec![], vec![]])));
                let barrier = Box::leak(Box::new(std::sync::Barrier::new(2)));
                let half = |me| &*Box::leak(Box::new(Half { me, slots, barrier }));
                let (a, b) = (half(0), half(1));
                let (x, g) = (&x, &g);
                let (p, q) = std::thread::scope(|t| {
                    let p = t.spawn(move || share_of(dims, x, g, 0..cut, a));
                    let q = t.spawn(move || share_of(dims, x, g, cut..n, b));
                    (p.join().unwrap(), q.join().unwrap())
                });
                let close = |got: &[f32], want: &[f32], what: &str| {
                    assert_eq!(got.len(), want.len(), "{what}");
                    for (u, v) in got.iter().zip(want) {
                        assert!(
                            (u - v).abs() <= 1e-6 * (1.0 + v.abs()),
                            "{what}, cut {cut}: {u} against {v}"
                        );
                    }
                };
                close(&[&p[0][..], &q[0]].concat(), y.data(), "y");
                close(&[&p[1][..], &q[1]].concat(), dx.data(), "∂L/∂x");
                // Each process's parameter gradients are its rows' part; the shares add up.
                let add =
                    |i: usize| -> Vec<f32> { p[i].iter().zip(&q[i]).map(|(u, v)| u + v).collect() };
                close(&add(2), one.weight.grad.data(), "∂L/∂γ");
                close(&add(3), one.bias.grad.data(), "∂L/∂β");
                // Both processes keep the whole batch's running statistics, the same bits.
                for (i, (what, want)) in [
                    (4, ("running_mean", &one.running_mean)),
                    (5, ("running_var", &one.running_var)),
                ] {
                    assert_eq!(p[i], q[i], "{what}");
                    close(&p[i], want.value.data(), what);
                }
            }
        }
    }

    #[test]
    fn training_normalises_and_updates_running_statistics_as_pytorch() {
        // x = [[1, 10], [3, 20], [8, 60]]: channel 0 has μ = 4, σ² = 26/3, unbiased 13.
        let mut l = BatchNorm::new(1, 2, 1e-5, 0.1);
        let x = Tensor::new(&[3, 2], vec![1., 10., 3., 20., 8., 60.]).unwrap();
        let y = l.forward(x.clone(), Mode::train(0)).unwrap();
        let want = (1.0 - 4.0) / (26.0f32 / 3.0 + 1e-5).sqrt();
        assert!((y.data()[0] - want).abs() < 1e-6, "{}", y.data()[0]);
        assert!((l.running_mean.value.data()[0] - 0.4).abs() < 1e-6);
        assert!((l.running_var.value.data()[0] - (0.9 + 1.3)).abs() < 1e-5);
        assert_eq!(l.num_batches_tracked.value.data(), &[1.0]);
        // Evaluation uses the running statistics and leaves them alone.
        let y = l.forward(x, Mode::Eval).unwrap();
        let want = (1.0 - 0.4) / (2.2f32 + 1e-5).sqrt();
        assert!((y.data()[0] - want).abs() < 1e-5, "{}", y.data()[0]);
        assert_eq!(l.num_batches_tracked.value.data(), &[1.0]);
    }

    #[test]
    fn one_value_per_channel_in_training_is_pytorchs_error() {
        let mut l = BatchNorm::new(1, 3, 1e-5, 0.1);
        let e = l
            .forward(Tensor::zeros(&[1, 3]), Mode::train(0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "Expected more than 1 value per channel when training, got input size [1, 3]"
            ),
            "{e}"
        );
        assert!(l.forward(Tensor::zeros(&[1, 3]), Mode::Eval).is_ok());
        // One sample of several values per channel is fine, as in PyTorch.
        let mut l = BatchNorm::new(2, 3, 1e-5, 0.1);
        assert!(
            l.forward(Tensor::zeros(&[1, 3, 2, 2]), Mode::train(0))
                .is_ok()
        );
    }

    /// The row passes compiled for wide vectors give the bits of the baseline build of the same
    /// loops (a row of 37: whole vectors and a remainder), with and without a ReLU taken over.
    #[test]
    fn vectorized_row_passes_give_the_bits_of_the_plain_loops() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let x = crate::init::uniform(&[37], -2.0, 2.0, &mut rng);
        let g = crate::init::uniform(&[37], -1.0, 1.0, &mut rng);
        let (a, b) = (x.data(), g.data());
        let sums = || RowSums {
            a,
            b,
            f: |x: f32, g: f32| (g as f64, (x as f64 - 0.3).powi(2) * g as f64),
        };
        let (p, q) = vectorized(sums());
        let (p0, q0) = sums().run();
        assert_eq!((p.to_bits(), q.to_bits()), (p0.to_bits(), q0.to_bits()));
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for relu in [false, true] {
            let mut runs = [(a.to_vec(), vec![0.0; 37]), (a.to_vec(), vec![0.0; 37])];
            for (k, (x, y)) in runs.iter_mut().enumerate() {
                let n = Normalise {
                    x,
                    y,
                    mean: 0.3,
                    inv_std: 1.7,
                    gamma: -0.8,
                    beta: 0.2,
                    relu,
                };
                if k == 0 { vectorized(n) } else { n.run() }
            }
            assert_eq!(bits(&runs[0].0), bits(&runs[1].0), "x̂, relu {relu}");
            assert_eq!(bits(&runs[0].1), bits(&runs[1].1), "y, relu {relu}");
            let mut grads = [b.to_vec(), b.to_vec()];
            for (k, g) in grads.iter_mut().enumerate() {
                let n = InputGrad {
                    g,
                    xhat: a,
                    scale: 1.3,
                    mg: 0.1,
                    mgx: -0.2,
                    gamma: -0.8,
                    beta: 0.2,
                    relu,
                };
                if k == 0 { vectorized(n) } else { n.run() }
            }
            assert_eq!(bits(&grads[0]), bits(&grads[1]), "∂L/∂x, relu {relu}");
        }
    }

    #[test]
    fn shapes_and_repr() {
        let l = BatchNorm::new(2, 4, 1e-5, 0.1);
        assert_eq!(
            l.to_string(),
            "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"
        );
        assert_eq!(l.output_shape(&[3, 5, 5]).unwrap_err(), "[C=4, H, W]");
        let l = BatchNorm::new(1, 3, 1e-3, 0.01);
        assert!(
            l.to_string()
                .starts_with("BatchNorm1d(3, eps=0.001, momentum=0.01,")
        );
        assert!(l.output_shape(&[3]).is_ok() && l.output_shape(&[3, 7]).is_ok());
        assert_eq!(l.output_shape(&[4]).unwrap_err(), "[C=3] or [C=3, L]");
    }
}
