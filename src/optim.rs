//! Optimisers with PyTorch's exact update rules. Their state lives here, keyed by parameter name.

use crate::error::{Error, Result};
use crate::layers::Layer;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which optimiser, with its hyper-parameters (PyTorch's names and defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Config {
    /// `torch.optim.SGD(lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0: plain SGD).
        momentum: f32,
        /// Dampening of the momentum.
        dampening: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)` (L2 added to the gradient).
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the root of the second moment.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`: Adam with the
    /// decay decoupled from the gradient, `θ ← θ·(1 − η·λ)` before the Adam update.
    #[serde(rename = "adamw")]
    AdamW {
        /// Learning rate `η`.
        lr: f32,
        /// `β₁`.
        beta1: f32,
        /// `β₂`.
        beta2: f32,
        /// `ε`.
        eps: f32,
        /// `λ` of the decoupled decay.
        weight_decay: f32,
    },
    /// `torch.optim.RMSprop(lr, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)`.
    #[serde(rename = "rmsprop")]
    RmsProp {
        /// Learning rate `η`.
        lr: f32,
        /// `α`, the smoothing of the squared-gradient average.
        alpha: f32,
        /// `ε`.
        eps: f32,
        /// `λ`, added to the gradient as `λθ`.
        weight_decay: f32,
        /// Momentum of the update buffer (0: none).
        momentum: f32,
        /// Divide by the variance of the gradient rather than its raw second moment.
        centered: bool,
    },
}

/// PyTorch's spelling: `SGD(lr=0.1, momentum=0.9)`, showing only what differs from the defaults.
impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut args = Vec::new();
        let (name, lr) = match *self {
            Config::Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
            } => {
                [
                    ("momentum", momentum),
                    ("dampening", dampening),
                    ("weight_decay", weight_decay),
                ]
                .iter()
                .filter(|(_, v)| *v != 0.0)
                .for_each(|(k, v)| args.push(format!("{k}={v}")));
                if nesterov {
                    args.push("nesterov=True".into());
                }
                ("SGD", lr)
            }
            Config::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Config::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let adamw = matches!(self, Config::AdamW { .. });
                if (beta1, beta2) != (0.9, 0.999) {
                    args.push(format!("betas=({beta1}, {beta2})"));
                }
                if eps != 1e-8 {
                    args.push(format!("eps={eps}"));
                }
                if weight_decay != if adamw { 0.01 } else { 0.0 } {
                    args.push(format!("weight_decay={weight_decay}"));
                }
                (if adamw { "AdamW" } else { "Adam" }, lr)
            }
            Config::RmsProp {
                lr,
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
            } => {
                [
                    ("alpha", alpha, 0.99),
                    ("eps", eps, 1e-8),
                    ("weight_decay", weight_decay, 0.0),
                    ("momentum", momentum, 0.0),
                ]
                .iter()
                .filter(|(_, v, default)| v != default)
                .for_each(|(k, v, _)| args.push(format!("{k}={v}")));
                if centered {
                    args.push("centered=True".into());
                }
                ("RMSprop", lr)
            }
        };
        args.insert(0, format!("lr={lr}"));
        write!(f, "{name}({})", args.join(", "))
    }
}

impl Config {
    /// Plain SGD, `torch.optim.SGD(params, lr)`: no momentum, dampening or weight decay.
    pub fn sgd(lr: f32) -> Config {
        Config::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults, `torch.optim.Adam(params, lr)`: β = (0.9, 0.999), ε = 1e-8,
    /// no weight decay.
    pub fn adam(lr: f32) -> Config {
        Config::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        let (Config::Sgd { lr, .. }
        | Config::Adam { lr, .. }
        | Config::AdamW { lr, .. }
        | Config::RmsProp { lr, .. }) = *self;
        lr
    }

    /// Sets the learning rate (a schedule's step).
    pub fn set_lr(&mut self, value: f32) {
        let (Config::Sgd { lr, .. }
        | Config::Adam { lr, .. }
        | Config::AdamW { lr, .. }
        | Config::RmsProp { lr, .. }) = self;
        *lr = value;
    }

    /// Sets the momentum a one-cycle schedule cycles: SGD's and RMSprop's `momentum`, Adam's β₁
    /// (as PyTorch's `OneCycleLR(cycle_momentum=True)` does).
    pub fn set_momentum(&mut self, value: f32) {
        let (Config::Sgd { momentum, .. }
        | Config::RmsProp { momentum, .. }
        | Config::Adam {
            beta1: momentum, ..
        }
        | Config::AdamW {
            beta1: momentum, ..
        }) = self;
        *momentum = value;
    }

    /// Checks the ranges PyTorch checks, and that `lr > 0`.
    ///
    /// # Errors
    /// A value out of range, named.
    pub fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Error::invalid(format!("--lr must be > 0, got {lr}")));
        }
        match *self {
            Config::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => {
                if !(momentum >= 0.0 && weight_decay >= 0.0 && dampening.is_finite()) {
                    return Err(Error::invalid(format!(
                        "--momentum and --weight-decay must be ≥ 0, got {momentum} and {weight_decay}"
                    )));
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::invalid(
                        "--nesterov needs --momentum > 0 and --dampening 0",
                    ));
                }
            }
            Config::RmsProp {
                alpha,
                eps,
                weight_decay,
                momentum,
                ..
            } => {
                if !(alpha >= 0.0 && eps >= 0.0 && weight_decay >= 0.0 && momentum >= 0.0) {
                    return Err(Error::invalid(format!(
                        "RMSprop: --alpha, --eps, --weight-decay and --momentum must be ≥ 0, got {alpha}, {eps}, {weight_decay}, {momentum}"
                    )));
                }
            }
            Config::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            }
            | Config::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
                    return Err(Error::invalid(format!(
                        "Adam betas must be in [0, 1), got {beta1}, {beta2}"
                    )));
                }
                if !(eps >= 0.0 && weight_decay >= 0.0) {
                    return Err(Error::invalid(format!(
                        "--eps and --weight-decay must be ≥ 0, got {eps}, {weight_decay}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// An optimiser named with all its numbers, as the CLI's flags (`--optimizer adam --lr 0.01
/// --beta1 …`) and the Python keywords give them; each optimiser takes the numbers it has.
/// [`Settings::default`] holds the CLI's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `sgd`, `adam`, `adamw` or `rmsprop`.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f32,
    /// SGD's and RMSprop's momentum.
    pub momentum: f32,
    /// SGD's dampening.
    pub dampening: f32,
    /// SGD with Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay; `None` is PyTorch's default (0.01 for AdamW, else 0).
    pub weight_decay: Option<f32>,
    /// RMSprop's smoothing constant α.
    pub alpha: f32,
    /// RMSprop normalised by the centred second moment.
    pub centered: bool,
    /// Adam's β₁.
    pub beta1: f32,
    /// Adam's β₂.
    pub beta2: f32,
    /// Adam's and RMSprop's ε.
    pub eps: f32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            optimizer: "sgd".into(),
            lr: 0.1,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: None,
            alpha: 0.99,
            centered: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl Settings {
    /// The configuration these settings name, checked ([`Config::validate`]).
    ///
    /// # Errors
    /// An unknown optimiser name; a number out of range.
    pub fn config(&self) -> Result<Config> {
        let weight_decay =
            self.weight_decay
                .unwrap_or(if self.optimizer == "adamw" { 0.01 } else { 0.0 });
        let (lr, beta1, beta2, eps) = (self.lr, self.beta1, self.beta2, self.eps);
        let config = match self.optimizer.as_str() {
            "sgd" => Config::Sgd {
                lr,
                momentum: self.momentum,
                dampening: self.dampening,
                weight_decay,
                nesterov: self.nesterov,
            },
            "adam" => Config::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            },
            "adamw" => Config::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            },
            "rmsprop" => Config::RmsProp {
                lr,
                alpha: self.alpha,
                eps,
                weight_decay,
                momentum: self.momentum,
                centered: self.centered,
            },
            other => {
                return Err(Error::invalid(format!(
                    "unknown optimizer '{other}': expected sgd, adam, adamw or rmsprop"
                )));
            }
        };
        config.validate()?;
        Ok(config)
    }
}

/// An optimiser: its configuration, the number of steps taken, and per-parameter state
/// (`momentum_buffer/{name}` for SGD; `exp_avg/{name}`, `exp_avg_sq/{name}` for Adam).
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// The optimiser and its numbers.
    pub config: Config,
    /// Steps taken (Adam's bias correction).
    pub steps: u64,
    /// Per parameter name, its state (momentum buffer; Adam's two moments).
    pub state: BTreeMap<String, Vec<f32>>,
}

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            steps: 0,
            state: BTreeMap::new(),
        })
    }

    /// One update of every parameter of `model` from its accumulated gradient; then zeroes the
    /// gradients (PyTorch's `step()` followed by `zero_grad()`). Returns the name of the first
    /// parameter that is no longer finite, if any.
    pub fn step(&mut self, model: &mut dyn Layer) -> Option<String> {
        self.steps += 1;
        let mut first_bad = None;
        let t = self.steps as i32;
        let state = &mut self.state;
        let config = &self.config;
        model.visit_params("", &mut |name, p| {
            let (w, g) = (p.value.data_mut(), p.grad.data_mut());
            let bad = match *config {
                Config::Sgd {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                } => {
                    // g ← g + λθ;  b ← g (first step) or μb + (1−τ)g;  d ← g + μb (Nesterov) or b;  θ ← θ − η·d
                    if weight_decay != 0.0 {
                        l2_penalty(g, w, weight_decay);
                    }
                    if momentum != 0.0 {
                        let key = format!("momentum_buffer/{name}");
                        match state.get_mut(&key) {
                            None => {
                                state.insert(key.clone(), g.to_vec());
                            }
                            Some(b) => b
                                .iter_mut()
                                .zip(g.iter())
                                .for_each(|(b, g)| *b = momentum * *b + (1.0 - dampening) * g),
                        }
                        let b = &state[&key];
                        if nesterov {
                            g.iter_mut().zip(b).for_each(|(g, b)| *g += momentum * b);
                        } else {
                            g.copy_from_slice(b);
                        }
                    }
                    descend(w, g, lr)
                }
                Config::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
                | Config::AdamW {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    // Adam: g ← g + λθ.  AdamW: θ ← θ·(1 − ηλ) (the factor a Python float, then f32).
                    // m ← m + (1−β₁)(g − m);  v ← β₂v + (1−β₂)g²;
                    // θ ← θ − (η / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
                    if weight_decay != 0.0 {
                        if matches!(config, Config::AdamW { .. }) {
                            let keep = (1.0 - lr as f64 * weight_decay as f64) as f32;
                            w.iter_mut().for_each(|w| *w *= keep);
                        } else {
                            l2_penalty(g, w, weight_decay);
                        }
                    }
                    let (km, kv) = (format!("exp_avg/{name}"), format!("exp_avg_sq/{name}"));
                    for key in [&km, &kv] {
                        if !state.contains_key(key) {
                            state.insert(key.clone(), vec![0.0; g.len()]);
                        }
                    }
                    if let Some(m) = state.get_mut(&km) {
                        m.iter_mut()
                            .zip(g.iter())
                            .for_each(|(m, g)| *m += (1.0 - beta1) * (g - *m));
                    }
                    if let Some(v) = state.get_mut(&kv) {
                        v.iter_mut()
                            .zip(g.iter())
                            .for_each(|(v, g)| *v = *v * beta2 + (1.0 - beta2) * g * g);
                    }
                    let (m, v) = (&state[&km], &state[&kv]);
                    // The bias corrections are Python floats (f64) in PyTorch.
                    let bc1 = 1.0 - (beta1 as f64).powi(t);
                    let bc2_sqrt = (1.0 - (beta2 as f64).powi(t)).sqrt();
                    let step_size = (lr as f64 / bc1) as f32;
                    for ((w, m), v) in w.iter_mut().zip(m).zip(v) {
                        let denom = v.sqrt() / bc2_sqrt as f32 + eps;
                        *w += -step_size * (m / denom);
                    }
                    g.fill(0.0);
                    w.iter().fold(false, |acc, &v| acc | non_finite(v))
                }
                Config::RmsProp {
                    lr,
                    alpha,
                    eps,
                    weight_decay,
                    momentum,
                    centered,
                } => {
                    // g ← g + λθ;  s ← αs + (1−α)g²;  centered: ḡ ← ḡ + (1−α)(g − ḡ), s̃ = s − ḡ²;
                    // d = √s̃ + ε;  momentum: b ← μb + g/d, θ ← θ − ηb;  else θ ← θ − η·g/d
                    if weight_decay != 0.0 {
                        l2_penalty(g, w, weight_decay);
                    }
                    let len = g.len();
                    let buffer = |state: &mut BTreeMap<String, Vec<f32>>, key: String| {
                        state.remove(&key).unwrap_or_else(|| vec![0.0; len])
                    };
                    let mut square_avg = buffer(state, format!("square_avg/{name}"));
                    for (s, g) in square_avg.iter_mut().zip(g.iter()) {
                        *s = *s * alpha + (1.0 - alpha) * g * g;
                    }
                    let mut denom: Vec<f32> = if centered {
                        let mut grad_avg = buffer(state, format!("grad_avg/{name}"));
                        for (a, g) in grad_avg.iter_mut().zip(g.iter()) {
                            *a += (1.0 - alpha) * (g - *a);
                        }
                        let d = square_avg
                            .iter()
                            .zip(&grad_avg)
                            .map(|(s, a)| (s + -1.0 * a * a).sqrt())
                            .collect();
                        state.insert(format!("grad_avg/{name}"), grad_avg);
                        d
                    } else {
                        square_avg.iter().map(|s| s.sqrt()).collect()
                    };
                    denom.iter_mut().for_each(|d| *d += eps);
                    state.insert(format!("square_avg/{name}"), square_avg);
                    if momentum > 0.0 {
                        let mut b = buffer(state, format!("momentum_buffer/{name}"));
                        for ((b, g), d) in b.iter_mut().zip(g.iter()).zip(&denom) {
                            *b = *b * momentum + g / d;
                        }
                        for (w, b) in w.iter_mut().zip(&b) {
                            *w += -lr * b;
                        }
                        state.insert(format!("momentum_buffer/{name}"), b);
                    } else {
                        for ((w, g), d) in w.iter_mut().zip(g.iter()).zip(&denom) {
                            *w += -lr * (g / d);
                        }
                    }
                    g.fill(0.0);
                    w.iter().fold(false, |acc, &v| acc | non_finite(v))
                }
            };
            if first_bad.is_none() && bad {
                first_bad = Some(name.to_string());
            }
        });
        first_bad
    }
}

/// PyTorch's coupled weight decay (SGD, Adam, RMSprop): `g ← g + λθ`.
fn l2_penalty(g: &mut [f32], w: &[f32], weight_decay: f32) {
    g.iter_mut()
        .zip(w)
        .for_each(|(g, w)| *g += weight_decay * w);
}

/// NaN or ±inf: every exponent bit set. Folding this with `|` (no early exit) vectorises, where
/// `all(is_finite)` does not.
fn non_finite(v: f32) -> bool {
    const EXP: u32 = 0x7f80_0000;
    v.to_bits() & EXP == EXP
}

/// The last pass of an SGD step, fused: `θ ← θ − η·d`, `g ← 0`, and whether any θ went NaN or
/// infinite. The pass is memory-bound, so large tensors are split across the cores.
fn descend(w: &mut [f32], g: &mut [f32], lr: f32) -> bool {
    const CHUNK: usize = 1 << 15;
    w.par_chunks_mut(CHUNK)
        .zip(g.par_chunks_mut(CHUNK))
        .map(|(w, g)| {
            let mut bad = false;
            for (w, g) in w.iter_mut().zip(g.iter_mut()) {
                *w += -lr * *g;
                *g = 0.0;
                bad |= non_finite(*w);
            }
            bad
        })
        .reduce(|| false, |a, b| a | b)
}

/// Zeroes every parameter gradient of `model`.
pub fn zero_grad(model: &mut dyn Layer) {
    model.visit_params("", &mut |_, p| p.grad.data_mut().fill(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Mode, Param};
    use crate::tensor::Tensor;
    use std::fmt;

    /// One scalar parameter with a gradient we set by hand.
    struct Scalar(Param);
    impl fmt::Display for Scalar {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Scalar")
        }
    }
    impl Layer for Scalar {
        fn output_shape(&self, i: &[usize]) -> std::result::Result<Vec<usize>, String> {
            Ok(i.to_vec())
        }
        fn forward(&mut self, x: Tensor, _: Mode) -> Result<Tensor> {
            Ok(x)
        }
        fn backward(&mut self, g: Tensor) -> Result<Tensor> {
            Ok(g)
        }
        fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
            f(&format!("{prefix}w"), &mut self.0)
        }
    }

    fn run(config: Config, grads: &[f32]) -> f32 {
        let mut p = Scalar(Param::new(Tensor::new(&[1], vec![1.0]).unwrap()));
        let mut opt = Optimizer::new(config).unwrap();
        for &g in grads {
            p.0.grad.data_mut()[0] = g;
            opt.step(&mut p);
            assert_eq!(p.0.grad.data()[0], 0.0, "step zeroes the gradient");
        }
        p.0.value.data()[0]
    }

    fn sgd(momentum: f32, dampening: f32, nesterov: bool, weight_decay: f32) -> Config {
        Config::Sgd {
            lr: 0.1,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        }
    }

    #[test]
    fn sgd_rules_by_hand() {
        // Plain: 1 − 0.1·(0.5 + 0.25) = 0.925.
        assert!((run(sgd(0.0, 0.0, false, 0.0), &[0.5, 0.25]) - 0.925).abs() < 1e-6);
        // Momentum 0.9: b₁ = 0.5, b₂ = 0.45 + 0.25 = 0.7: 1 − 0.1·1.2 = 0.88.
        assert!((run(sgd(0.9, 0.0, false, 0.0), &[0.5, 0.25]) - 0.88).abs() < 1e-6);
        // Dampening 0.5: b₂ = 0.45 + 0.125 = 0.575: 1 − 0.1·1.075.
        assert!((run(sgd(0.9, 0.5, false, 0.0), &[0.5, 0.25]) - (1.0 - 0.1075)).abs() < 1e-6);
        // Nesterov: d₁ = 0.5 + 0.45 = 0.95; d₂ = 0.25 + 0.9·0.7 = 0.88: 1 − 0.1·1.83.
        assert!((run(sgd(0.9, 0.0, true, 0.0), &[0.5, 0.25]) - (1.0 - 0.183)).abs() < 1e-6);
        // Weight decay 0.1 on θ = 1: g = 0.5 + 0.1 = 0.6.
        assert!((run(sgd(0.0, 0.0, false, 0.1), &[0.5]) - 0.94).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // After one step m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr.
        let c = Config::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert!((run(c.clone(), &[3.0]) - 0.99).abs() < 1e-6);
        assert!((run(c, &[-0.001]) - 1.01).abs() < 1e-6);
    }

    #[test]
    fn display_reads_like_pytorch() {
        assert_eq!(Config::sgd(0.1).to_string(), "SGD(lr=0.1)");
        assert_eq!(
            sgd(0.9, 0.0, true, 0.0).to_string(),
            "SGD(lr=0.1, momentum=0.9, nesterov=True)"
        );
        let adam = Config::Adam {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert_eq!(adam.to_string(), "Adam(lr=0.001, betas=(0.9, 0.99))");
    }

    #[test]
    fn bad_hyperparameters_are_refused() {
        for (c, want) in [
            (
                Config::Sgd {
                    lr: 0.0,
                    momentum: 0.0,
                    dampening: 0.0,
                    weight_decay: 0.0,
                    nesterov: false,
                },
                "--lr must be > 0",
            ),
            (
                Config::Sgd {
                    lr: 0.1,
                    momentum: -1.0,
                    dampening: 0.0,
                    weight_decay: 0.0,
                    nesterov: false,
                },
                "must be ≥ 0",
            ),
            (
                Config::Sgd {
                    lr: 0.1,
                    momentum: 0.0,
                    dampening: 0.0,
                    weight_decay: 0.0,
                    nesterov: true,
                },
                "--nesterov needs",
            ),
            (
                Config::Adam {
                    lr: 0.1,
                    beta1: 1.0,
                    beta2: 0.9,
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                "betas must be in [0, 1)",
            ),
        ] {
            let e = Optimizer::new(c).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
