//! How a [`Sequential`](super::Sequential) runs its layers: the one place that decides which
//! neighbours run fused.
//!
//! A fusion is an execution decision, not part of any layer's meaning: the network is the same
//! layers whichever way it runs (same parameters, same `state_dict`, same summary), and the fused
//! run gives the same outputs and gradients as the layers one by one. The planner looks at the
//! concrete types of neighbours (the [`Layer`] trait knows nothing of fusions), hands the work of a
//! layer to the neighbour that runs it, through a method of that neighbour's own type, and marks
//! the layer as skipped. The fused kernels stay beside the math of the layer that runs them, each
//! with a test below showing it equals the layers one by one.
//!
//! The fusions, decided in this order:
//! 1. `ReLU, MaxPool2d`: the pool applies ReLU to each value as it loads it
//!    ([`MaxPool2d::take_relu`]), saving the ReLU's passes over the batch.
//! 2. `BatchNorm, ReLU`: the normalisation writes `max(0, γ·x̂ + β)` and, in backward, masks ∂L/∂y
//!    within its own passes ([`BatchNorm::take_relu`]): the ReLU's forward and backward passes go.
//! 3. `Conv2d, MaxPool2d` (with the ReLU of 1, if it took one): the convolution pools each image
//!    while it is in cache ([`Conv2d::run_pool`]); the full-size output never goes to memory.

use super::{BatchNorm, Conv2d, Elementwise, Layer, MaxPool2d, ReLU};
use std::any::Any;

/// Per layer, whether it runs itself (`false`: a neighbour does its work, and it is skipped).
/// Configures the neighbours that take work over.
pub(crate) fn plan(layers: &mut [Box<dyn Layer>]) -> Vec<bool> {
    let mut runs = vec![true; layers.len()];
    // 1. ReLU, MaxPool2d.
    for i in 1..layers.len() {
        if is::<Elementwise<ReLU>>(layers[i - 1].as_ref())
            && let Some(pool) = get::<MaxPool2d>(layers[i].as_mut())
        {
            pool.take_relu();
            runs[i - 1] = false;
        }
    }
    // 2. BatchNorm, ReLU (a ReLU still running).
    for i in 1..layers.len() {
        if runs[i]
            && is::<Elementwise<ReLU>>(layers[i].as_ref())
            && let Some(bn) = get::<BatchNorm>(layers[i - 1].as_mut())
        {
            bn.take_relu();
            runs[i] = false;
        }
    }
    // 3. Conv2d, then the next layer that runs, a MaxPool2d.
    for i in 0..layers.len() {
        let next = (i + 1..layers.len()).find(|&j| runs[j]);
        if let Some(j) = next.filter(|_| runs[i])
            && let Some(spec) = get::<MaxPool2d>(layers[j].as_mut()).map(|p| p.spec())
            && let Some(conv) = get::<Conv2d>(layers[i].as_mut())
        {
            conv.run_pool(spec);
            runs[j] = false;
        }
    }
    runs
}

/// Whether `layer` is an `L`.
fn is<L: Layer>(layer: &dyn Layer) -> bool {
    (layer as &dyn Any).is::<L>()
}

/// `layer` as an `L`, if it is one.
fn get<L: Layer>(layer: &mut dyn Layer) -> Option<&mut L> {
    (layer as &mut dyn Any).downcast_mut::<L>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Mode, Sequential};
    use crate::tensor::Tensor;
    use rand::SeedableRng;

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
            assert!(fused.runs[1..].iter().all(|&r| !r), "{:?}", fused.runs);
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
        assert_eq!(net.runs, [true, false]);
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
            assert_eq!(fused.runs, [false, true]);
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

    #[test]
    fn a_relu_taken_over_by_batch_norm_gives_the_same_bits_as_the_two_layers() {
        use crate::layers::BatchNorm;
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let state = |l: &mut dyn Layer| {
            let mut all = Vec::new();
            l.visit_params("", &mut |_, p| {
                all.extend(p.grad.data().iter().map(|v| v.to_bits()))
            });
            l.visit_buffers("", &mut |_, b| {
                all.extend(b.value.data().iter().map(|v| v.to_bits()))
            });
            all
        };
        // γ, β away from 1, 0 (so that γ·x̂ + β is cut in places x̂ is not), over [N, C, H, W]
        // and [N, C]; two training steps, then evaluation.
        for shape in [vec![3, 4, 5, 7], vec![6, 5]] {
            let c = shape[1];
            let make = || {
                let mut bn = BatchNorm::new(
                    shape.len() - 2 + usize::from(shape.len() == 2),
                    c,
                    1e-5,
                    0.1,
                );
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
                bn.visit_params("", &mut |name, p| {
                    let (lo, hi) = if name == "weight" {
                        (-1.5, 1.5)
                    } else {
                        (-0.5, 0.5)
                    };
                    p.value = crate::init::uniform(p.value.shape(), lo, hi, &mut rng);
                });
                bn
            };
            let mut fused =
                Sequential::new(vec![Box::new(make()), Box::new(Elementwise::new(ReLU))]);
            assert_eq!(fused.runs, [true, false]);
            let (mut bn, mut relu) = (make(), Elementwise::new(ReLU));
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shape[0] as u64);
            for mode in [Mode::train(0), Mode::train(1), Mode::Eval] {
                let x = crate::init::uniform(&shape, -2.0, 2.0, &mut rng);
                let want = relu
                    .forward(bn.forward(x.clone(), mode).unwrap(), mode)
                    .unwrap();
                let got = fused.forward(x, mode).unwrap();
                assert_eq!(bits(&got), bits(&want), "{shape:?} {mode:?} forward");
                assert!(got.data().contains(&0.0) && got.data().iter().any(|&v| v > 0.0));
                let gy = crate::init::uniform(&shape, -1.0, 1.0, &mut rng);
                let want = bn.backward(relu.backward(gy.clone()).unwrap()).unwrap();
                let got = fused.backward(gy).unwrap();
                assert_eq!(bits(&got), bits(&want), "{shape:?} {mode:?} ∂L/∂x");
                assert_eq!(
                    state(&mut fused),
                    state(&mut bn),
                    "{shape:?} {mode:?} ∂L/∂θ, buffers"
                );
            }
        }
    }
}
