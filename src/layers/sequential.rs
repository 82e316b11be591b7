//! `Sequential(...)`: layers applied in order, as `torch.nn.Sequential` (the tutorials' Series).

use super::{Buffer, Layer, Mode, Param, child_path, one_line};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// `y = f_k(… f_1(f_0(x)))`; backward runs the chain rule in reverse.
///
/// Parameters are named `{i}.weight`, `{i}.bias` with `i` counting every layer, activations too,
/// exactly as `nn.Sequential.state_dict()`.
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    /// The index of the first layer with parameters (`layers.len()` if none): in
    /// [`Layer::backward_params`] no layer up to and including it needs to compute ∂L/∂x.
    first_with_params: usize,
    /// Per layer, whether a neighbour does its work (a ReLU that a max pool took over, a max pool
    /// that the convolution before it runs: [`Layer::absorb_relu`], [`Layer::absorb_pool`]):
    /// forward and backward pass it by.
    absorbed: Vec<bool>,
}

impl Sequential {
    /// A chain of layers (not yet checked: see [`Sequential::check`]). Every ReLU followed by a
    /// layer that can take it over is handed to that layer, then every max pool that the layer
    /// before it can run (see [`Layer::absorb_pool`]).
    pub fn new(mut layers: Vec<Box<dyn Layer>>) -> Self {
        let first_with_params = layers
            .iter_mut()
            .position(|l| super::param_count(l.as_mut()) > 0)
            .unwrap_or(layers.len());
        let mut absorbed = vec![false; layers.len()];
        for i in 1..layers.len() {
            absorbed[i - 1] = layers[i - 1].is_relu() && layers[i].absorb_relu();
        }
        // Then every max pool (with its ReLU) that the layer running before it can take over.
        for i in 0..layers.len() {
            let next = (i + 1..layers.len()).find(|&j| !absorbed[j]);
            if let Some(j) = next.filter(|_| !absorbed[i])
                && let Some(pool) = layers[j].as_max_pool()
            {
                absorbed[j] = layers[i].absorb_pool(pool);
            }
        }
        Sequential {
            layers,
            first_with_params,
            absorbed,
        }
    }

    /// The layers that run, with their indices: all but the absorbed ones.
    fn running(&mut self) -> impl DoubleEndedIterator<Item = (usize, &mut Box<dyn Layer>)> {
        let absorbed = &self.absorbed;
        self.layers
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| !absorbed[*i])
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, in order, mutable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// The output of every layer that runs (a layer another one took over has none: see
    /// [`Layer::absorb_relu`]) for `x` in evaluation mode, with its index, for layer statistics.
    pub fn outputs(&mut self, mut x: Tensor) -> Result<Vec<(usize, String, Tensor)>> {
        let mut out = Vec::new();
        for (i, l) in self.running() {
            x = l.forward(x, Mode::Eval)?;
            out.push((i, super::one_line(l.as_ref()), x.clone()));
        }
        Ok(out)
    }

    /// Runs the forward pass layer by layer and returns the index and name of the first layer whose
    /// output is not finite, if any: the diagnosis for a diverged training step.
    pub fn first_non_finite(&mut self, mut x: Tensor) -> Result<Option<String>> {
        for (i, l) in self.running() {
            x = l.forward(x, Mode::Eval)?;
            if !x.all_finite() {
                return Ok(Some(format!("output of layer {i} ({l})")));
            }
        }
        Ok(None)
    }
}

impl Sequential {
    /// The per-sample output shape for `input`; an error naming the first layer that does not fit,
    /// the shape it expects, the shape it got and the layer that produced it.
    pub fn check_input(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check("", input, " from the input")
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sequential(")?;
        for (i, l) in self.layers.iter().enumerate() {
            writeln!(f, "  ({i}): {}", l.to_string().replace('\n', "\n  "))?;
        }
        write!(f, ")")
    }
}

impl Layer for Sequential {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let mut shape = input.to_vec();
        for l in &self.layers {
            shape = l.output_shape(&shape)?;
        }
        Ok(shape)
    }

    fn check(&self, index: &str, input: &[usize], from: &str) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        let mut from = from.to_string();
        for (i, l) in self.layers.iter().enumerate() {
            let path = child_path(index, i);
            shape = l.check(&path, &shape, &from)?;
            from = format!(" from layer {path} ({})", one_line(l.as_ref()));
        }
        Ok(shape)
    }

    fn forward(&mut self, mut x: Tensor, mode: Mode) -> Result<Tensor> {
        for (i, l) in self.running() {
            x = l.forward(x, mode.child(i))?;
        }
        Ok(x)
    }

    /// ∂L/∂x = J_0ᵀ(… J_kᵀ(∂L/∂y)): each layer's backward in reverse order.
    fn backward(&mut self, mut grad: Tensor) -> Result<Tensor> {
        for (_, l) in self.running().rev() {
            grad = l.backward(grad)?;
        }
        Ok(grad)
    }

    /// As [`Layer::backward`], except that the layers up to the first one with parameters skip ∂L/∂x.
    fn backward_params(&mut self, mut grad: Tensor) -> Result<Tensor> {
        let first_with_params = self.first_with_params;
        for (i, l) in self.running().rev() {
            grad = if i <= first_with_params {
                l.backward_params(grad)?
            } else {
                l.backward(grad)?
            };
        }
        Ok(grad)
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit_params(&format!("{prefix}{i}."), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Buffer)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit_buffers(&format!("{prefix}{i}."), f);
        }
    }

    fn macs(&self, input: &[usize]) -> usize {
        let mut shape = input.to_vec();
        let mut total = 0;
        for l in &self.layers {
            total += l.macs(&shape);
            shape = l.output_shape(&shape).unwrap_or_default();
        }
        total
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck;
    use crate::layers::{Elementwise, Flatten, Linear, ReLU};
    use rand::SeedableRng;

    #[test]
    fn backward_params_gives_the_same_parameter_gradients() {
        let make = || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
            let net = Sequential::new(vec![
                Box::new(Flatten::default()),
                Box::new(Linear::new(6, 4, true, &mut rng)),
                Box::new(Elementwise::new(ReLU)),
                Box::new(Linear::new(4, 2, true, &mut rng)),
            ]);
            assert_eq!(net.first_with_params, 1);
            net
        };
        gradcheck::check_backward_params(make, &[3, 2, 3]);
    }

    #[test]
    fn a_max_pool_run_by_the_convolution_before_it_gives_what_the_layers_give() {
        use crate::layers::{Conv2d, MaxPool2d, Window};
        let conv = || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
            Conv2d::new(2, 3, (3, 3), (1, 1), (1, 1), true, &mut rng)
        };
        let pool = |k| {
            MaxPool2d::new(Window {
                kernel: (k, k),
                stride: (k, k),
                padding: (0, 0),
            })
        };
        // 2×2 windows over 8×12 (tiling: ∂L/∂x written whole) and over 7×9 (an edge no window
        // covers), and 3×3 windows; with the ReLU between (taken over) and without; 5 images, so
        // that the runs of images differ in length.
        for ((h, w), k, relu) in [((8, 12), 2, true), ((7, 9), 2, true), ((8, 12), 3, false)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(h as u64);
            let x = crate::init::uniform(&[5, 2, h, w], -1.0, 1.0, &mut rng);
            let mut layers: Vec<Box<dyn Layer>> = vec![Box::new(conv())];
            if relu {
                layers.push(Box::new(Elementwise::new(ReLU)));
            }
            layers.push(Box::new(pool(k)));
            let mut fused = Sequential::new(layers);
            assert!(
                fused.absorbed[1..].iter().all(|&a| a),
                "{:?}",
                fused.absorbed
            );
            let (mut c, mut r, mut p) = (conv(), Elementwise::new(ReLU), pool(k));
            let mut want = c.forward(x.clone(), Mode::Eval).unwrap();
            if relu {
                want = r.forward(want, Mode::Eval).unwrap();
            }
            let want = p.forward(want, Mode::Eval).unwrap();
            let got = fused.forward(x.clone(), Mode::Eval).unwrap();
            assert_eq!(got.shape(), want.shape());
            assert_eq!(got.data(), want.data(), "{h}×{w}, {k}×{k} forward");
            let gy: Vec<f32> = (0..got.len()).map(|i| (i % 7) as f32 - 3.0).collect();
            let gy = Tensor::new(got.shape(), gy).unwrap();
            let mut want = p.backward(gy.clone()).unwrap();
            if relu {
                want = r.backward(want).unwrap();
            }
            let want = c.backward(want).unwrap();
            let got = fused.backward(gy).unwrap();
            // Equal values (the layers one by one multiply cut gradients by 0, which may leave −0).
            assert!(
                got.data().iter().zip(want.data()).all(|(a, b)| a == b),
                "{h}×{w} ∂L/∂x"
            );
            let grads = |l: &mut dyn Layer| {
                let mut all = Vec::new();
                l.visit_params("", &mut |_, p| all.extend_from_slice(p.grad.data()));
                all
            };
            assert_eq!(
                grads(&mut fused),
                grads(&mut c),
                "{h}×{w} parameter gradients"
            );
        }
    }

    #[test]
    fn a_pool_run_by_a_convolution_refuses_an_input_too_small_with_an_error() {
        use crate::layers::{Conv2d, MaxPool2d, Window};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let pool = MaxPool2d::new(Window {
            kernel: (4, 4),
            stride: (4, 4),
            padding: (0, 0),
        });
        let conv = Conv2d::new(1, 2, (3, 3), (1, 1), (0, 0), true, &mut rng);
        let mut net = Sequential::new(vec![Box::new(conv), Box::new(pool)]);
        assert_eq!(net.absorbed, [false, true]);
        // A 5×5 image leaves 3×3 for a 4×4 window (the model was never checked).
        let err = net
            .forward(Tensor::zeros(&[2, 1, 5, 5]), Mode::Eval)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MaxPool2d(kernel_size=4") && err.contains("[2, 2, 3, 3]"),
            "{err}"
        );
    }

    #[test]
    fn a_relu_taken_over_by_max_pooling_gives_what_the_two_layers_give() {
        use crate::layers::{MaxPool2d, Window};
        let pool = |k| {
            MaxPool2d::new(Window {
                kernel: (k, k),
                stride: (k, k),
                padding: (0, 0),
            })
        };
        // 2×2 windows (the AVX-512 path where present) and 3×3 (the general one), over values with
        // negatives, zeros of both signs, ties, an all-negative window and NaN.
        for k in [2, 3] {
            let (n, c, h, w) = (3, 2, 6, 38);
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| match i % 23 {
                    5 => f32::NAN,
                    7 => -0.0,
                    11 => 0.0,
                    _ => ((i * 31) % 17) as f32 - 9.0,
                })
                .collect();
            let x = Tensor::new(&[n, c, h, w], x).unwrap();
            let mut fused =
                Sequential::new(vec![Box::new(Elementwise::new(ReLU)), Box::new(pool(k))]);
            assert_eq!(fused.absorbed, [true, false]);
            let (mut relu, mut alone) = (Elementwise::new(ReLU), pool(k));
            let want = alone
                .forward(relu.forward(x.clone(), Mode::Eval).unwrap(), Mode::Eval)
                .unwrap();
            let got = fused.forward(x, Mode::Eval).unwrap();
            assert_eq!(
                got.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{k}×{k} forward"
            );
            let gy: Vec<f32> = (0..got.len()).map(|i| (i % 7) as f32 - 3.0).collect();
            let gy = Tensor::new(got.shape(), gy).unwrap();
            let want = relu.backward(alone.backward(gy.clone()).unwrap()).unwrap();
            let got = fused.backward(gy).unwrap();
            // Equal values (the pair multiplies cut gradients by 0, which may leave −0).
            assert!(
                got.data().iter().zip(want.data()).all(|(a, b)| a == b),
                "{k}×{k} backward"
            );
            assert!(got.data().iter().any(|&v| v != 0.0));
        }
    }
}
