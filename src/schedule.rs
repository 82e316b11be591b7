//! Learning-rate schedules, written as PyTorch's constructor call (`"StepLR(step_size=2,
//! gamma=0.5)"`) and stepped as PyTorch's examples step them: the epoch schedules once after each
//! epoch's last optimiser step, `OneCycleLR` after every optimiser step.
//!
//! The learning rate is kept as PyTorch keeps it, a Python float (f64) updated by the same
//! recursions (`StepLR` multiplies the current rate by γ, `CosineAnnealingLR` uses its recursive
//! form), and handed to the optimiser as f32 at each step, as PyTorch's kernels take it.

use crate::error::{Error, Result};
use crate::optim::Config;
use crate::spec::{self, Bound, Value};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Which schedule, with PyTorch's arguments and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Kind {
    /// `StepLR(step_size, gamma=0.1)`: `η ← γη` every `step_size` epochs.
    StepLR {
        /// Epochs between decays.
        step_size: usize,
        /// The decay factor `γ`.
        gamma: f64,
    },
    /// `MultiStepLR(milestones, gamma=0.1)`: `η ← γη` at each milestone epoch.
    MultiStepLR {
        /// The epochs at which the rate decays.
        milestones: Vec<usize>,
        /// The decay factor `γ`.
        gamma: f64,
    },
    /// `ExponentialLR(gamma)`: `η ← γη` every epoch.
    ExponentialLR {
        /// The decay factor `γ`.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min=0)`:
    /// `η_t = η_min + (η₀ − η_min)(1 + cos(πt/T_max))/2`, by PyTorch's recursion.
    CosineAnnealingLR {
        /// `T_max`, epochs of the half cosine.
        t_max: usize,
        /// `η_min`, the lowest rate.
        eta_min: f64,
    },
    /// `OneCycleLR(max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
    /// anneal_strategy='cos', cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
    /// div_factor=25, final_div_factor=1e4, three_phase=False)`, stepped every batch.
    OneCycleLR {
        /// The peak learning rate.
        max_lr: f64,
        /// Steps of the cycle, if given (else epochs × batches per epoch).
        total_steps: Option<usize>,
        /// Fraction of the steps spent increasing the rate.
        pct_start: f64,
        /// `anneal_strategy='cos'` (else linear).
        cos: bool,
        /// Cycle the momentum (SGD) or β₁ (Adam) inversely to the rate.
        cycle_momentum: bool,
        /// The lowest momentum.
        base_momentum: f64,
        /// The highest momentum.
        max_momentum: f64,
        /// Initial rate = `max_lr / div_factor`.
        div_factor: f64,
        /// Final rate = initial rate / `final_div_factor`.
        final_div_factor: f64,
        /// Three phases (up, down, annihilate) instead of two.
        three_phase: bool,
    },
}

/// A schedule and where it stands: PyTorch's `last_epoch` (epochs for the epoch schedules,
/// optimiser steps for `OneCycleLR`), the base rate and the current rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Which schedule.
    pub kind: Kind,
    /// The constructor call as the user wrote it.
    pub text: String,
    /// PyTorch's `last_epoch`: epochs (or steps for `OneCycleLR`) taken.
    pub last: usize,
    /// The optimiser's learning rate before the schedule.
    pub base_lr: f64,
    /// The current learning rate.
    pub lr: f64,
    /// `OneCycleLR`: the steps it runs for (`epochs × batches per epoch` unless given).
    pub total_steps: usize,
}

impl LrSchedule {
    /// Parses `text` for a run of `epochs` epochs of `batches` batches each, whose optimiser starts
    /// at `config`; sets the optimiser's first learning rate (and momentum) as PyTorch's
    /// constructor does.
    ///
    /// # Errors
    /// Text that does not parse, an unknown schedule or argument, a value out of range,
    /// `OneCycleLR` without room for its steps.
    pub fn new(text: &str, config: &mut Config, epochs: usize, batches: usize) -> Result<Self> {
        Self::parse(text, config, epochs, batches).map_err(|e| match e {
            Error::Syntax { .. } => spec::flag_error("--lr-schedule", e),
            other => other,
        })
    }

    /// [`LrSchedule::new`], with the parser's errors as they come.
    fn parse(text: &str, config: &mut Config, epochs: usize, batches: usize) -> Result<Self> {
        let calls = spec::parse(text)?;
        let [call] = calls.as_slice() else {
            return Err(Error::invalid(format!(
                "--lr-schedule \"{text}\": give one schedule"
            )));
        };
        let bind = |params: Vec<(&'static str, Option<Value>)>| Bound::new(call, text, params);
        let f = |v: f64| Some(Value::Float(v));
        let kind = match call.name.as_str() {
            "StepLR" => {
                let b = bind(vec![("step_size", None), ("gamma", f(0.1))])?;
                Kind::StepLR {
                    step_size: b.positive("step_size")?,
                    gamma: b.float("gamma")?,
                }
            }
            "MultiStepLR" => {
                let b = bind(vec![("milestones", None), ("gamma", f(0.1))])?;
                let milestones = match b.get("milestones") {
                    (Value::Tuple(items), _) => items
                        .iter()
                        .map(|v| match v {
                            Value::Int(i) if *i > 0 => Ok(*i as usize),
                            _ => Err(Error::invalid(format!(
                                "--lr-schedule \"{text}\": milestones must be positive epochs, like [3, 6]"
                            ))),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    _ => {
                        return Err(Error::invalid(format!(
                            "--lr-schedule \"{text}\": milestones must be a list, like [3, 6]"
                        )));
                    }
                };
                Kind::MultiStepLR {
                    milestones,
                    gamma: b.float("gamma")?,
                }
            }
            "ExponentialLR" => {
                let b = bind(vec![("gamma", None)])?;
                Kind::ExponentialLR {
                    gamma: b.float("gamma")?,
                }
            }
            "CosineAnnealingLR" => {
                let b = bind(vec![("T_max", None), ("eta_min", f(0.0))])?;
                Kind::CosineAnnealingLR {
                    t_max: b.positive("T_max")?,
                    eta_min: b.float("eta_min")?,
                }
            }
            "OneCycleLR" => {
                let b = bind(vec![
                    ("max_lr", None),
                    ("total_steps", Some(Value::None)),
                    ("epochs", Some(Value::None)),
                    ("steps_per_epoch", Some(Value::None)),
                    ("pct_start", f(0.3)),
                    ("anneal_strategy", Some(Value::Str("cos".into()))),
                    ("cycle_momentum", Some(Value::Bool(true))),
                    ("base_momentum", f(0.85)),
                    ("max_momentum", f(0.95)),
                    ("div_factor", f(25.0)),
                    ("final_div_factor", f(1e4)),
                    ("three_phase", Some(Value::Bool(false))),
                ])?;
                let opt = |name: &str| -> Result<Option<usize>> {
                    match b.get(name).0 {
                        Value::None => Ok(None),
                        _ => b.positive(name).map(Some),
                    }
                };
                let total_steps =
                    match (opt("total_steps")?, opt("epochs")?, opt("steps_per_epoch")?) {
                        (Some(t), _, _) => Some(t),
                        (None, Some(e), Some(s)) => Some(e * s),
                        _ => None,
                    };
                let cos = match b.get("anneal_strategy").0 {
                    Value::Str(s) if s == "cos" => true,
                    Value::Str(s) if s == "linear" => false,
                    _ => {
                        return Err(Error::invalid(format!(
                            "--lr-schedule \"{text}\": anneal_strategy must be 'cos' or 'linear'"
                        )));
                    }
                };
                Kind::OneCycleLR {
                    max_lr: b.float("max_lr")?,
                    total_steps,
                    pct_start: b.float("pct_start")?,
                    cos,
                    cycle_momentum: b.flag("cycle_momentum")?,
                    base_momentum: b.float("base_momentum")?,
                    max_momentum: b.float("max_momentum")?,
                    div_factor: b.float("div_factor")?,
                    final_div_factor: b.float("final_div_factor")?,
                    three_phase: b.flag("three_phase")?,
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "--lr-schedule: unknown schedule '{other}': expected StepLR, MultiStepLR, \
                     ExponentialLR, CosineAnnealingLR or OneCycleLR"
                )));
            }
        };
        // The rate as the user wrote it (the shortest decimal of the f32), as PyTorch's Python float.
        let lr: f64 = config
            .lr()
            .to_string()
            .parse()
            .unwrap_or(config.lr() as f64);
        let mut s = LrSchedule {
            kind,
            text: text.to_string(),
            last: 0,
            base_lr: lr,
            lr,
            total_steps: 0,
        };
        s.check(epochs * batches)?;
        if let Kind::OneCycleLR {
            max_lr,
            div_factor,
            cycle_momentum,
            max_momentum,
            ..
        } = s.kind
        {
            // As the constructor: lr = initial_lr = max_lr / div_factor, momentum = max_momentum.
            s.base_lr = max_lr / div_factor;
            s.lr = s.base_lr;
            if cycle_momentum {
                config.set_momentum(max_momentum as f32);
            }
        }
        config.set_lr(s.lr as f32);
        Ok(s)
    }

    /// Ranges, and room for a one-cycle run of `steps` optimiser steps.
    fn check(&mut self, steps: usize) -> Result<()> {
        let err = |msg: String| {
            Err(Error::invalid(format!(
                "--lr-schedule \"{}\": {msg}",
                self.text
            )))
        };
        match &self.kind {
            Kind::StepLR { gamma, .. }
            | Kind::MultiStepLR { gamma, .. }
            | Kind::ExponentialLR { gamma }
                if gamma.is_nan() || *gamma <= 0.0 =>
            {
                return err(format!("gamma must be > 0, got {gamma}"));
            }
            Kind::CosineAnnealingLR { eta_min, .. } if *eta_min < 0.0 => {
                return err(format!("eta_min must be ≥ 0, got {eta_min}"));
            }
            Kind::OneCycleLR {
                max_lr,
                total_steps,
                pct_start,
                cycle_momentum,
                base_momentum,
                max_momentum,
                ..
            } => {
                if max_lr.is_nan() || *max_lr <= 0.0 {
                    return err(format!("max_lr must be > 0, got {max_lr}"));
                }
                if !(0.0..=1.0).contains(pct_start) {
                    return err(format!("pct_start must be in [0, 1], got {pct_start}"));
                }
                if *cycle_momentum && !(*base_momentum > 0.0 && *max_momentum > 0.0) {
                    return err(format!(
                        "cycling momentum needs base_momentum and max_momentum > 0, got {base_momentum} and {max_momentum}"
                    ));
                }
                let total = total_steps.unwrap_or(steps);
                if total < steps {
                    return err(format!(
                        "total_steps {total} leaves no room for the run's {steps} optimiser steps"
                    ));
                }
                if (pct_start * total as f64) - 1.0 <= 0.0 || total < 2 {
                    return err(format!(
                        "{total} steps leave no room for the warm-up phase (pct_start {pct_start}); train for more steps"
                    ));
                }
                self.total_steps = total;
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the schedule steps after every batch (else after every epoch).
    pub fn per_batch(&self) -> bool {
        matches!(self.kind, Kind::OneCycleLR { .. })
    }

    /// One step of the schedule (`scheduler.step()`): the next learning rate (and momentum) into
    /// `config`.
    pub fn step(&mut self, config: &mut Config) {
        self.last += 1;
        let t = self.last;
        let lr = self.lr;
        self.lr = match &self.kind {
            Kind::StepLR { step_size, gamma } => {
                if t.is_multiple_of(*step_size) {
                    lr * gamma
                } else {
                    lr
                }
            }
            Kind::MultiStepLR { milestones, gamma } => {
                let hits = milestones.iter().filter(|&&m| m == t).count() as i32;
                lr * gamma.powi(hits)
            }
            Kind::ExponentialLR { gamma } => lr * gamma,
            Kind::CosineAnnealingLR { t_max, eta_min } => {
                let (t, t_max, base) = (t as f64, *t_max as f64, self.base_lr);
                if ((t - 1.0 - t_max) / (2.0 * t_max)).fract() == 0.0 && t - 1.0 - t_max >= 0.0 {
                    lr + (base - eta_min) * (1.0 - (PI / t_max).cos()) / 2.0
                } else {
                    (1.0 + (PI * t / t_max).cos()) / (1.0 + (PI * (t - 1.0) / t_max).cos())
                        * (lr - eta_min)
                        + eta_min
                }
            }
            Kind::OneCycleLR { .. } => {
                let (lr, momentum) = self.one_cycle(t);
                if let Some(m) = momentum {
                    config.set_momentum(m as f32);
                }
                lr
            }
        };
        config.set_lr(self.lr as f32);
    }

    /// PyTorch's `OneCycleLR.get_lr()` at step `t`: the phase it is in, and the annealing from the
    /// phase's start to its end.
    fn one_cycle(&self, t: usize) -> (f64, Option<f64>) {
        let Kind::OneCycleLR {
            max_lr,
            pct_start,
            cos,
            cycle_momentum,
            base_momentum,
            max_momentum,
            div_factor,
            final_div_factor,
            three_phase,
            ..
        } = self.kind
        else {
            unreachable!("one_cycle on another schedule")
        };
        let total = self.total_steps as f64;
        let initial = max_lr / div_factor;
        let min_lr = initial / final_div_factor;
        // (end step, start lr, end lr, start momentum, end momentum)
        let phases: Vec<(f64, f64, f64, f64, f64)> = if three_phase {
            vec![
                (
                    pct_start * total - 1.0,
                    initial,
                    max_lr,
                    max_momentum,
                    base_momentum,
                ),
                (
                    2.0 * pct_start * total - 2.0,
                    max_lr,
                    initial,
                    base_momentum,
                    max_momentum,
                ),
                (total - 1.0, initial, min_lr, max_momentum, max_momentum),
            ]
        } else {
            vec![
                (
                    pct_start * total - 1.0,
                    initial,
                    max_lr,
                    max_momentum,
                    base_momentum,
                ),
                (total - 1.0, max_lr, min_lr, base_momentum, max_momentum),
            ]
        };
        let anneal = |start: f64, end: f64, pct: f64| {
            if cos {
                end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
            } else {
                (end - start) * pct + start
            }
        };
        let step = t as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, lr0, lr1, m0, m1)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let pct = (step - start_step) / (end_step - start_step);
                return (
                    anneal(lr0, lr1, pct),
                    cycle_momentum.then(|| anneal(m0, m1, pct)),
                );
            }
            start_step = end_step;
        }
        unreachable!("the last phase takes every step")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lrs(text: &str, epochs: usize, batches: usize) -> Vec<f64> {
        let mut c = Config::sgd(0.1);
        let mut s = LrSchedule::new(text, &mut c, epochs, batches).unwrap();
        let mut out = vec![s.lr];
        let steps = if s.per_batch() {
            epochs * batches
        } else {
            epochs
        };
        for _ in 1..steps {
            s.step(&mut c);
            out.push(s.lr);
        }
        out
    }

    #[test]
    fn closed_forms_by_hand() {
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(
            &lrs("StepLR(step_size=2, gamma=0.5)", 5, 1),
            &[0.1, 0.1, 0.05, 0.05, 0.025]
        ));
        assert!(close(
            &lrs("MultiStepLR(milestones=[1, 3], gamma=0.1)", 4, 1),
            &[0.1, 0.01, 0.01, 0.001]
        ));
        assert!(close(&lrs("ExponentialLR(0.5)", 3, 1), &[0.1, 0.05, 0.025]));
        // Cosine over T_max = 4 from 0.1 to 0: 0.1·(1 + cos(πt/4))/2.
        let want: Vec<f64> = (0..5)
            .map(|t| 0.05 * (1.0 + (PI * t as f64 / 4.0).cos()))
            .collect();
        assert!(close(&lrs("CosineAnnealingLR(T_max=4)", 5, 1), &want));
        // One cycle over 10 steps: starts at max/25, peaks at step 2 (0.3·10 − 1), ends at max/25e4.
        let one = lrs("OneCycleLR(max_lr=1.0)", 2, 5);
        assert!((one[0] - 0.04).abs() < 1e-12 && (one[2] - 1.0).abs() < 1e-12);
        assert!((one[9] - 0.04 / 1e4).abs() < 1e-12, "{one:?}");
    }

    #[test]
    fn bad_schedules_are_one_line_errors() {
        for (text, want) in [
            (
                "StepLR(step_size=2",
                "--lr-schedule, column 19: expected ',' or ')' in the arguments of StepLR",
            ),
            (
                "StepLR(step_size=0)",
                "--lr-schedule, column 8: StepLR: 'step_size' must be a positive integer",
            ),
            ("StepLR(gamma=0.5)", "missing its argument 'step_size'"),
            ("StepLR(step_size=2, gama=0.5)", "has no argument 'gama'"),
            ("WarmupLR(3)", "unknown schedule 'WarmupLR'"),
            ("MultiStepLR(milestones=3)", "milestones must be a list"),
            (
                "OneCycleLR(max_lr=0.1, total_steps=5)",
                "leaves no room for the run's 20",
            ),
            (
                "OneCycleLR(max_lr=0.1, base_momentum=0)",
                "needs base_momentum and max_momentum > 0",
            ),
            ("ExponentialLR(gamma=-1)", "gamma must be > 0"),
        ] {
            let e = LrSchedule::new(text, &mut Config::sgd(0.1), 4, 5)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        let e = LrSchedule::new("OneCycleLR(max_lr=0.1)", &mut Config::sgd(0.1), 1, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("leave no room for the warm-up phase"), "{e}");
    }
}
