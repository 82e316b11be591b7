//! `Linear(in_features, out_features, bias=True)`: `y = x·Wᵀ + b`, as `torch.nn.Linear`.

use super::{Layer, Mode, Param, no_forward};
use crate::error::Result;
use crate::init;
use crate::kernels::{Op, matmul};
use crate::tensor::Tensor;
use rand::Rng;
use std::fmt;

/// A fully connected layer.
///
/// # Shapes
/// - input `[N, …, in_features]`, output `[N, …, out_features]` (leading dimensions are rows)
/// - `weight: [out_features, in_features]` (PyTorch's layout), `bias: [out_features]`
///
/// Initialised as PyTorch's `reset_parameters`: `W, b ~ U(−1/√in, 1/√in)`.
pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Option<Param>,
    /// The input of the last forward, for ∂L/∂W.
    x: Option<Tensor>,
    /// A buffer that is free to become the next output.
    spare: Tensor,
}

impl Linear {
    /// A new layer with PyTorch's default initialisation drawn from `rng`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Self {
        let bound = init::pytorch_bound(in_features);
        let weight = Param::new(init::uniform(
            &[out_features, in_features],
            -bound,
            bound,
            rng,
        ));
        let bias = bias.then(|| Param::new(init::uniform(&[out_features], -bound, bound, rng)));
        Linear {
            in_features,
            out_features,
            weight,
            bias,
            x: None,
            spare: Tensor::default(),
        }
    }

    /// `W: [out_features, in_features]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight.value
    }

    /// `b: [out_features]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref().map(|b| &b.value)
    }
}

impl fmt::Display for Linear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Linear(in_features={}, out_features={}, bias={})",
            self.in_features,
            self.out_features,
            if self.bias.is_some() { "True" } else { "False" }
        )
    }
}

impl Layer for Linear {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input.last() {
            Some(&f) if f == self.in_features => {
                let mut out = input.to_vec();
                *out.last_mut().unwrap() = self.out_features;
                Ok(out)
            }
            _ => Err(format!("[…, {}]", self.in_features)),
        }
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let rows = x.len() / self.in_features;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().unwrap() = self.out_features;
        let buf = std::mem::take(&mut self.spare).or_stale(self.x.take());
        let mut y = Tensor::reuse(buf, &shape);
        let (i, o) = (self.in_features, self.out_features);
        // Each row starts as the bias, and the product adds onto it: one pass over y, not two.
        if let Some(b) = &self.bias {
            for row in y.data_mut().chunks_exact_mut(o) {
                row.copy_from_slice(b.value.data());
            }
        }
        // y: [rows, out] (+)= x: [rows, in] · Wᵀ: [in, out]
        matmul(
            y.data_mut(),
            x.data(),
            Op::N,
            self.weight.value.data(),
            Op::T,
            rows,
            i,
            o,
            self.bias.is_some(),
        );
        self.x = Some(x);
        Ok(y)
    }

    /// ∂L/∂W += (∂L/∂y)ᵀ·x,  ∂L/∂b += Σ_rows ∂L/∂y,  ∂L/∂x = ∂L/∂y·W.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, true)
    }

    /// ∂L/∂W and ∂L/∂b only; the cached input's buffer comes back as it is.
    fn backward_params(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, false)
    }

    fn macs(&self, input: &[usize]) -> usize {
        input.iter().product::<usize>() / self.in_features * self.in_features * self.out_features
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&format!("{prefix}weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }
}

impl Linear {
    /// The backward pass; ∂L/∂x only if `input_grad`.
    fn backward_impl(&mut self, grad_y: Tensor, input_grad: bool) -> Result<Tensor> {
        let x = self.x.take().ok_or_else(|| no_forward(self))?;
        let (i, o) = (self.in_features, self.out_features);
        let rows = x.len() / i;

        // Parameter gradients.
        // grad_W: [out, in] += grad_yᵀ: [out, rows] · x: [rows, in]
        matmul(
            self.weight.grad.data_mut(),
            grad_y.data(),
            Op::T,
            x.data(),
            Op::N,
            o,
            rows,
            i,
            true,
        );
        if let Some(b) = &mut self.bias {
            for row in grad_y.data().chunks_exact(o) {
                b.grad
                    .data_mut()
                    .iter_mut()
                    .zip(row)
                    .for_each(|(g, v)| *g += v);
            }
        }

        // Input gradient, written into the cached input's buffer.
        // grad_x: [rows, in] = grad_y: [rows, out] · W: [out, in]
        self.spare = grad_y;
        if !input_grad {
            return Ok(x);
        }
        let shape = x.shape().to_vec();
        let mut grad_x = Tensor::reuse(x, &shape);
        let grad_y = &self.spare;
        matmul(
            grad_x.data_mut(),
            grad_y.data(),
            Op::N,
            self.weight.value.data(),
            Op::N,
            rows,
            o,
            i,
            false,
        );
        Ok(grad_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{self, check_layer};
    use rand::SeedableRng;

    #[test]
    fn gradients_match_central_differences() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        check_layer(&mut Linear::new(7, 5, true, &mut rng), &[4, 7], 0.0);
        check_layer(&mut Linear::new(3, 2, false, &mut rng), &[2, 3, 3], 0.0);
    }

    #[test]
    fn shape_and_repr() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let l = Linear::new(784, 10, true, &mut rng);
        assert_eq!(
            l.to_string(),
            "Linear(in_features=784, out_features=10, bias=True)"
        );
        assert_eq!(l.output_shape(&[784]).unwrap(), vec![10]);
        assert_eq!(l.output_shape(&[288]).unwrap_err(), "[…, 784]");
    }

    #[test]
    fn default_init_is_within_pytorch_bound() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut l = Linear::new(100, 50, true, &mut rng);
        let bound = 0.1;
        l.visit_params("", &mut |_, p| {
            assert!(p.value.data().iter().all(|v| v.abs() <= bound));
            let max = p.value.data().iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                max > 0.9 * bound,
                "spread should reach the bound, max {max}"
            );
        });
    }

    #[test]
    fn backward_params_gives_the_same_parameter_gradients() {
        let make = || Linear::new(7, 3, true, &mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
        gradcheck::check_backward_params(make, &[5, 7]);
    }

    #[test]
    fn backward_before_forward_is_an_error() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut l = Linear::new(2, 2, true, &mut rng);
        let e = l.backward(Tensor::zeros(&[1, 2])).unwrap_err().to_string();
        assert!(e.contains("backward called before forward"), "{e}");
    }
}
