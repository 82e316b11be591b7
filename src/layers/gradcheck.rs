//! Gradient check by central differences, for every layer's tests.
//!
//! With a random upstream gradient `r`, the scalar `L(x, θ) = Σ r ⊙ f(x; θ)` (summed in f64) has
//! ∂L/∂x and ∂L/∂θ equal to what `backward(r)` returns and accumulates. Each is compared with
//! `(L(v + ε) − L(v − ε)) / 2ε`.

use super::{Layer, Mode};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};

const EPS: f64 = 1e-2;
const MODE: Mode = Mode::train(7);

fn scalar(layer: &mut dyn Layer, x: &Tensor, r: &Tensor) -> f64 {
    let y = layer.forward(x.clone(), MODE).unwrap();
    y.data()
        .iter()
        .zip(r.data())
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum()
}

fn close(analytic: f64, numeric: f64, what: &str) {
    let tol = 2e-3 + 2e-2 * numeric.abs().max(analytic.abs());
    assert!(
        (analytic - numeric).abs() <= tol,
        "{what}: backward {analytic} vs central difference {numeric}"
    );
}

/// Checks ∂L/∂x and every ∂L/∂θ of `layer` at a random input of shape `shape`.
///
/// Inputs are drawn from ±[margin, 1] so that a kink at 0 (ReLU) is never within ε.
pub fn check_layer(layer: &mut dyn Layer, shape: &[usize], margin: f32) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let n: usize = shape.iter().product();
    let mut sample = |n: usize| {
        (0..n)
            .map(|_| {
                let v: f32 = rng.gen_range(margin..1.0);
                if rng.r#gen::<bool>() { v } else { -v }
            })
            .collect::<Vec<f32>>()
    };
    let x = Tensor::new(shape, sample(n)).unwrap();
    let y = layer.forward(x.clone(), MODE).unwrap();
    let r = Tensor::new(y.shape(), sample(y.len())).unwrap();
    layer.visit_params("", &mut |_, p| p.grad.data_mut().fill(0.0));
    let grad_x = layer.backward(r.clone()).unwrap();
    assert_eq!(
        grad_x.shape(),
        x.shape(),
        "{layer}: ∂L/∂x has the shape of x"
    );

    for i in 0..n {
        let mut xp = x.clone();
        xp.data_mut()[i] += EPS as f32;
        let mut xm = x.clone();
        xm.data_mut()[i] -= EPS as f32;
        let numeric = (scalar(layer, &xp, &r) - scalar(layer, &xm, &r)) / (2.0 * EPS);
        close(
            grad_x.data()[i] as f64,
            numeric,
            &format!("{layer} ∂L/∂x[{i}]"),
        );
    }

    let mut grads = Vec::new();
    layer.visit_params("", &mut |name, p| {
        grads.push((name.to_string(), p.grad.clone()))
    });
    for (name, grad) in grads {
        for i in 0..grad.len() {
            let nudge = |layer: &mut dyn Layer, d: f32| {
                layer.visit_params("", &mut |n, p| {
                    if n == name {
                        p.value.data_mut()[i] += d
                    }
                })
            };
            nudge(layer, EPS as f32);
            let up = scalar(layer, &x, &r);
            nudge(layer, -2.0 * EPS as f32);
            let down = scalar(layer, &x, &r);
            nudge(layer, EPS as f32);
            close(
                grad.data()[i] as f64,
                (up - down) / (2.0 * EPS),
                &format!("{layer} ∂L/∂{name}[{i}]"),
            );
        }
    }
}

/// Checks that `backward_params` (for a first layer, whose input gradient nobody needs) adds the
/// same parameter gradients as `backward` and returns a buffer of the input's shape. `make`
/// builds the layer afresh, identically each time.
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
