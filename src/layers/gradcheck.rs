//! Gradient check by central differences: every layer's tests, and `scratchnet gradcheck`.
//!
//! With a random upstream gradient `r`, the scalar `L(x, θ) = Σ r ⊙ f(x; θ)` (summed in f64) has
//! ∂L/∂x and ∂L/∂θ equal to what `backward(r)` returns and accumulates. Each is compared with
//! `(L(v + ε) − L(v − ε)) / 2ε`; an entry passes if `|a − n| ≤ 2·10⁻³ + 2·10⁻²·max(|a|, |n|)`.
//!
//! An entry within ε of a kink (two inputs of one max-pool window within ε of each other, a ReLU
//! input within ε of 0) has no derivative to compare with; it shows as one-sided differences
//! `(L(v + ε) − L(v)) / ε` and `(L(v) − L(v − ε)) / ε` that disagree by more than curvature
//! explains, and is counted as skipped rather than failed.

use super::{Layer, Mode};
use crate::error::{Error, Result};
use crate::loss::{Loss, Targets};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};

const EPS: f64 = 1e-2;
const MODE: Mode = Mode::train(7);

/// How one gradient (∂L/∂x, or ∂L/∂ of one parameter) compares with central differences.
#[derive(Clone, Debug)]
pub struct Check {
    /// `x` or the parameter's name.
    pub of: String,
    /// Entries compared, of `total`; `skipped` of them sat on a kink.
    pub checked: usize,
    /// Entries left out because they sat on a kink.
    pub skipped: usize,
    /// Entries in the gradient.
    pub total: usize,
    /// The largest `|a − n| / max(|a|, |n|, 0.1)` (the floor keeps near-zero entries meaningful).
    pub max_relative: f64,
    /// The worst entry against the tolerance: `(index, analytic, numeric)`.
    pub worst: (usize, f64, f64),
    /// Whether `max_relative` is within the tolerance.
    pub pass: bool,
}

/// Folds entry `i` into `c`: its analytic derivative and `L` at `v + ε`, `v`, `v − ε`.
fn compare(c: &mut Check, i: usize, analytic: f64, up: f64, at: f64, down: f64) {
    let (right, left) = ((up - at) / EPS, (at - down) / EPS);
    if (right - left).abs() > 0.01 + 0.05 * right.abs().max(left.abs()) {
        c.skipped += 1;
        c.checked += 1;
        return;
    }
    let numeric = (up - down) / (2.0 * EPS);
    let big = numeric.abs().max(analytic.abs());
    let diff = (analytic - numeric).abs();
    let rel = diff / big.max(0.1);
    let excess = diff / (2e-3 + 2e-2 * big);
    let worst =
        (c.worst.1 - c.worst.2).abs() / (2e-3 + 2e-2 * c.worst.1.abs().max(c.worst.2.abs()));
    if c.checked == c.skipped || excess > worst {
        c.worst = (i, analytic, numeric);
    }
    c.max_relative = c.max_relative.max(rel);
    c.pass &= excess <= 1.0;
    c.checked += 1;
}

fn new_check(of: &str, total: usize) -> Check {
    Check {
        of: of.to_string(),
        checked: 0,
        skipped: 0,
        total,
        max_relative: 0.0,
        worst: (0, 0.0, 0.0),
        pass: true,
    }
}

/// At most `limit` indices of `0..n`, evenly spread.
fn sample(n: usize, limit: usize) -> Vec<usize> {
    if n <= limit {
        (0..n).collect()
    } else {
        (0..limit).map(|k| k * n / limit).collect()
    }
}

/// `n` values from ±[margin, 1], so that a kink at 0 (ReLU) is never within ε.
fn away_from_zero(n: usize, margin: f32, rng: &mut impl Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = rng.gen_range(margin..1.0);
            if rng.r#gen::<bool>() { v } else { -v }
        })
        .collect()
}

/// `n` values `±(margin + 3ε·k)` for `k` a permutation of `0..n`: any two differ by more than 2ε,
/// so that a max pool's winner never changes under a nudge.
fn spread(n: usize, margin: f32, rng: &mut impl Rng) -> Vec<f32> {
    use rand::seq::SliceRandom;
    let mut k: Vec<usize> = (0..n).collect();
    k.shuffle(rng);
    k.into_iter()
        .map(|k| {
            let v = margin + 3.0 * EPS as f32 * k as f32;
            if rng.r#gen::<bool>() { v } else { -v }
        })
        .collect()
}

fn scalar(layer: &mut dyn Layer, x: &Tensor, r: &Tensor) -> Result<f64> {
    let y = layer.forward(x.clone(), MODE)?;
    Ok(y.data()
        .iter()
        .zip(r.data())
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum())
}

/// Compares ∂L/∂x and every ∂L/∂θ of `layer` at a random batch of shape `shape` (values from
/// ±[margin, 1]; for a max pool, [`spread`] values) with central differences, on at most `limit` entries of each.
///
/// # Errors
/// The layer's forward or backward fails, or ∂L/∂x does not have the shape of x.
pub fn check(
    layer: &mut dyn Layer,
    shape: &[usize],
    margin: f32,
    limit: usize,
    seed: u64,
) -> Result<Vec<Check>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values = if layer.as_max_pool().is_some() {
        spread(n, margin, &mut rng)
    } else {
        away_from_zero(n, margin, &mut rng)
    };
    let x = Tensor::new(shape, values)?;
    let y = layer.forward(x.clone(), MODE)?;
    let r = Tensor::new(y.shape(), away_from_zero(y.len(), margin, &mut rng))?;
    layer.visit_params("", &mut |_, p| p.grad.data_mut().fill(0.0));
    let grad_x = layer.backward(r.clone())?;
    if grad_x.shape() != x.shape() {
        return Err(Error::invalid(format!(
            "{layer}: ∂L/∂x has shape {:?}, x has {:?}",
            grad_x.shape(),
            x.shape()
        )));
    }

    let at = scalar(layer, &x, &r)?;
    let mut checks = vec![new_check("x", n)];
    for i in sample(n, limit) {
        let mut xp = x.clone();
        xp.data_mut()[i] += EPS as f32;
        let mut xm = x.clone();
        xm.data_mut()[i] -= EPS as f32;
        let (up, down) = (scalar(layer, &xp, &r)?, scalar(layer, &xm, &r)?);
        compare(&mut checks[0], i, grad_x.data()[i] as f64, up, at, down);
    }

    let mut grads = Vec::new();
    layer.visit_params("", &mut |name, p| {
        grads.push((name.to_string(), p.grad.clone()))
    });
    for (name, grad) in grads {
        let mut c = new_check(&name, grad.len());
        for i in sample(grad.len(), limit) {
            let nudge = |layer: &mut dyn Layer, d: f32| {
                layer.visit_params("", &mut |n, p| {
                    if n == name {
                        p.value.data_mut()[i] += d
                    }
                })
            };
            nudge(layer, EPS as f32);
            let up = scalar(layer, &x, &r)?;
            nudge(layer, -2.0 * EPS as f32);
            let down = scalar(layer, &x, &r)?;
            nudge(layer, EPS as f32);
            compare(&mut c, i, grad.data()[i] as f64, up, at, down);
        }
        checks.push(c);
    }
    Ok(checks)
}

/// Compares ∂L/∂pred of `loss` at a random prediction of shape `shape` (values in ±2) with central
/// differences.
///
/// # Errors
/// Targets that do not fit the prediction.
pub fn check_loss(loss: Loss, shape: &[usize], targets: Targets<'_>, seed: u64) -> Result<Check> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let x = Tensor::new(shape, (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect())?;
    let (_, grad) = loss.compute(x.clone(), targets)?;
    let mut c = new_check("prediction", n);
    for i in 0..n {
        let at = |d: f64| {
            let mut t = x.clone();
            t.data_mut()[i] += d as f32;
            loss.compute(t, targets).map(|l| l.0)
        };
        compare(
            &mut c,
            i,
            grad.data()[i] as f64,
            at(EPS)?,
            at(0.0)?,
            at(-EPS)?,
        );
    }
    Ok(c)
}

/// One row of `scratchnet gradcheck`: a layer (or the loss) and its checks.
pub struct Row {
    /// Where the layer sits, e.g. `2`.
    pub index: String,
    /// The layer, in one line.
    pub layer: String,
    /// One check per gradient: the input and each parameter.
    pub checks: Vec<Check>,
}

/// Checks each of `layers` on its own, fed a batch of `batch` samples of the shape the layer before
/// it outputs (starting from `input`), at most `limit` entries per gradient; then `loss` (if given)
/// on the last output, with random class targets for cross-entropy and random values otherwise.
///
/// # Errors
/// A layer that does not take the shape it is given, or whose forward or backward fails.
pub fn check_layers(
    layers: &mut [Box<dyn Layer>],
    input: &[usize],
    batch: usize,
    loss: Option<Loss>,
    limit: usize,
    seed: u64,
) -> Result<Vec<Row>> {
    let mut shape = input.to_vec();
    let mut rows = Vec::new();
    for (i, layer) in layers.iter_mut().enumerate() {
        let mut batch_shape = vec![batch];
        batch_shape.extend_from_slice(&shape);
        rows.push(Row {
            index: i.to_string(),
            layer: super::one_line(layer.as_ref()),
            checks: check(
                layer.as_mut(),
                &batch_shape,
                0.05,
                limit,
                crate::layers::mix(seed, i as u64, 0),
            )?,
        });
        shape = layer.check(&i.to_string(), &shape, "")?;
    }
    if let Some(loss) = loss {
        let d: usize = shape.iter().product();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let classes: Vec<u32> = (0..batch).map(|_| rng.gen_range(0..d as u32)).collect();
        let values: Vec<f32> = (0..batch * d).map(|_| rng.r#gen::<f32>()).collect();
        let targets = match loss {
            Loss::CrossEntropy => Targets::Classes(&classes),
            _ => Targets::Values(&values),
        };
        rows.push(Row {
            index: "loss".into(),
            layer: loss.to_string(),
            checks: vec![check_loss(loss, &[batch, d], targets, seed)?],
        });
    }
    Ok(rows)
}

/// The rows as a table: one line per gradient, with the worst entry of a failing one.
pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.layer.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = format!(
        "{:<4}  {:<width$}  {:<14}  {:>22}  {:>14}  result\n",
        "#", "layer", "gradient", "checked", "max rel error"
    );
    for r in rows {
        for (k, c) in r.checks.iter().enumerate() {
            let (index, layer) = if k == 0 {
                (r.index.as_str(), r.layer.as_str())
            } else {
                ("", "")
            };
            let result = if c.pass {
                "pass".to_string()
            } else {
                let (i, a, n) = c.worst;
                format!("FAIL ([{i}]: backward {a:.6}, central difference {n:.6})")
            };
            s += &format!(
                "{index:<4}  {layer:<width$}  {:<14}  {:>22}  {:>14.3e}  {result}\n",
                format!("∂L/∂{}", c.of),
                if c.skipped > 0 {
                    format!(
                        "{}/{} ({} at kinks)",
                        c.checked - c.skipped,
                        c.total,
                        c.skipped
                    )
                } else {
                    format!("{}/{}", c.checked, c.total)
                },
                c.max_relative
            );
        }
    }
    s.pop();
    s
}

/// Asserts that every gradient of `layer` at a random input of shape `shape` passes (for tests).
#[cfg(test)]
pub fn check_layer(layer: &mut dyn Layer, shape: &[usize], margin: f32) {
    let checks = check(layer, shape, margin, usize::MAX, 42).unwrap();
    for c in checks {
        let (i, a, n) = c.worst;
        assert!(
            c.pass,
            "{layer} ∂L/∂{}[{i}]: backward {a} vs central difference {n}",
            c.of
        );
    }
}

/// Checks that `backward_params` (for a first layer, whose input gradient nobody needs) adds the
/// same parameter gradients as `backward` and returns a buffer of the input's shape. `make`
/// builds the layer afresh, identically each time.
#[cfg(test)]
pub fn check_backward_params<L: Layer>(make: impl Fn() -> L, shape: &[usize]) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x = crate::init::uniform(shape, -1.0, 1.0, &mut rng);
    let grads = |params_only: bool| {
        let mut layer = make();
        let y = layer.forward(x.clone(), MODE).unwrap();
        let gy = crate::init::uniform(
            y.shape(),
            -1.0,
            1.0,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        );
        let gx = if params_only {
            layer.backward_params(gy)
        } else {
            layer.backward(gy)
        };
        assert_eq!(gx.unwrap().shape(), x.shape());
        let mut g = Vec::new();
        layer.visit_params("", &mut |_, p| g.extend_from_slice(p.grad.data()));
        g
    };
    assert_eq!(grads(true), grads(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Elementwise, Linear, Tanh};
    use std::fmt;

    /// `y = x²` with a backward that forgets the factor 2: broken on purpose.
    struct BrokenSquare(Option<Tensor>);

    impl fmt::Display for BrokenSquare {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "BrokenSquare()")
        }
    }

    impl Layer for BrokenSquare {
        fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
            Ok(input.to_vec())
        }
        fn forward(&mut self, x: Tensor, _: Mode) -> Result<Tensor> {
            let y = Tensor::new(x.shape(), x.data().iter().map(|v| v * v).collect())?;
            self.0 = Some(x);
            Ok(y)
        }
        fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
            let x = self
                .0
                .take()
                .ok_or_else(|| super::super::no_forward(self))?;
            // ∂L/∂x = ∂L/∂y · x, missing the 2 of 2x.
            Tensor::new(
                x.shape(),
                x.data()
                    .iter()
                    .zip(grad_y.data())
                    .map(|(x, g)| x * g)
                    .collect(),
            )
        }
    }

    fn layers(broken: bool) -> Vec<Box<dyn Layer>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let middle: Box<dyn Layer> = if broken {
            Box::new(BrokenSquare(None))
        } else {
            Box::new(Elementwise::new(Tanh))
        };
        vec![
            Box::new(Linear::new(3, 4, true, &mut rng)),
            middle,
            Box::new(Linear::new(4, 2, true, &mut rng)),
        ]
    }

    #[test]
    fn a_broken_backward_fails_and_only_it() {
        let rows = check_layers(
            &mut layers(true),
            &[3],
            2,
            Some(Loss::CrossEntropy),
            1000,
            1,
        )
        .unwrap();
        let pass: Vec<bool> = rows
            .iter()
            .map(|r| r.checks.iter().all(|c| c.pass))
            .collect();
        assert_eq!(pass, [true, false, true, true]);
        assert!(
            rows[1].checks[0].max_relative > 0.3,
            "{}",
            rows[1].checks[0].max_relative
        );
        let t = table(&rows);
        assert!(
            t.lines()
                .any(|l| l.contains("BrokenSquare()") && l.contains("FAIL ([")),
            "{t}"
        );
        assert_eq!(t.matches("pass").count(), 3 + 3 + 1, "{t}");
    }

    #[test]
    fn a_correct_network_passes_every_gradient_with_small_errors() {
        let rows = check_layers(&mut layers(false), &[3], 2, Some(Loss::Mse), 1000, 1).unwrap();
        let names: Vec<&str> = rows
            .iter()
            .flat_map(|r| &r.checks)
            .map(|c| c.of.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "x",
                "weight",
                "bias",
                "x",
                "x",
                "weight",
                "bias",
                "prediction"
            ]
        );
        for c in rows.iter().flat_map(|r| &r.checks) {
            assert!(c.pass && c.max_relative < 1e-2, "{c:?}");
            assert_eq!(c.checked, c.total);
        }
    }

    #[test]
    fn large_gradients_are_sampled() {
        let rows = check_layers(&mut layers(false), &[3], 2, None, 4, 1).unwrap();
        assert_eq!(
            (rows[0].checks[1].checked, rows[0].checks[1].total),
            (4, 12)
        );
    }
}
