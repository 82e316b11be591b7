//! Layers: the [`Layer`] contract, and one file per layer.
//!
//! # The contract
//! - [`Layer::output_shape`] maps a per-sample input shape to the per-sample output shape, without
//!   touching data; a [`Sequential`] uses it to refuse, at construction, layers that do not chain.
//! - [`Layer::forward`] takes the batch `x` by value, computes `y`, and keeps what `backward` needs
//!   (often `x` itself: moving it costs nothing).
//! - [`Layer::backward`] takes ∂L/∂y by value, **adds** ∂L/∂θ into each parameter's `grad`, and
//!   returns ∂L/∂x. Buffers that are done with (the cached input, the upstream gradient) become the
//!   next outputs, so a training loop in its steady state does not allocate.
//! - Parameters are visited in a fixed order under PyTorch's names (`weight`, `bias`); containers
//!   prefix the child's index, so names are `nn.Sequential.state_dict()` keys.

mod activation;
mod adaptive_avgpool;
mod avgpool;
mod batch_sum;
mod batchnorm;
mod conv2d;
mod dropout;
mod dropout2d;
mod elu;
mod flatten;
mod gelu;
mod identity;
mod leaky_relu;
mod linear;
mod maxpool;
mod parallel;
mod plan;
mod pool;
mod recurrent;
mod relu;
mod residual;
mod rows;
mod sequential;
mod sigmoid;
mod silu;
mod softmax;
mod tanh;

pub use activation::{Activation, Elementwise};
pub use adaptive_avgpool::{AdaptiveAvgPool2d, window as adaptive_window};
pub use avgpool::AvgPool2d;
pub use batch_sum::{BatchSum, Shares};
pub use batchnorm::BatchNorm;
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use dropout2d::Dropout2d;
pub use elu::ELU;
pub use flatten::Flatten;
pub use gelu::GELU;
pub use identity::Identity;
pub use leaky_relu::LeakyReLU;
pub use linear::Linear;
pub use maxpool::{MaxPool2d, PoolSpec};
pub use parallel::Parallel;
pub use pool::Window;
pub use recurrent::{Cell, Embedding, Nonlinearity, Recurrent, Select};
pub use relu::ReLU;
pub use residual::Residual;
pub use rows::Rows;
pub use sequential::Sequential;
pub use sigmoid::Sigmoid;
pub use silu::SiLU;
pub use softmax::Softmax;
pub use tanh::Tanh;

use crate::error::{Error, Result};
use crate::tensor::{MAX_VALUES, Tensor};
use std::fmt;

/// A learnable tensor and the gradient accumulated for it.
#[derive(Clone, Debug)]
pub struct Param {
    /// The value.
    pub value: Tensor,
    /// ∂L/∂value, accumulated by `backward` until the optimiser step zeroes it.
    pub grad: Tensor,
}

impl Param {
    /// A parameter with a zero gradient of the same shape.
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad }
    }
}

/// State a layer updates itself rather than by gradient (BatchNorm's running statistics): saved
/// and loaded with the parameters under its `state_dict` name, never seen by optimisers.
#[derive(Clone, Debug)]
pub struct Buffer {
    /// The state itself.
    pub value: Tensor,
    /// Whether a checkpoint stores it as int64 (PyTorch's `num_batches_tracked`).
    pub int: bool,
}

/// Whether a forward pass is for training (Dropout active, seeded per batch) or for evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Evaluation: Dropout is the identity.
    Eval,
    /// Training: Dropout draws its masks from `seed`. `rows`: where the rows of this forward sit
    /// within the whole batch (all of it unless the batch is split across processes, see `dist`),
    /// so that each row draws what its row of the whole batch would; `shares`: how BatchNorm sums
    /// its statistics over the whole batch when processes share it.
    Train {
        /// The seed of this batch (see [`Mode::child`]).
        seed: u64,
        /// The rows' places in the whole batch.
        rows: Rows<'a>,
        /// The processes holding the rest of the batch ([`Shares::WHOLE`]: none).
        shares: Shares,
    },
}

impl Mode<'static> {
    /// Training with Dropout seeded by `seed`, on a whole batch.
    pub const fn train(seed: u64) -> Mode<'static> {
        Mode::Train {
            seed,
            rows: Rows::From(0),
            shares: Shares::WHOLE,
        }
    }
}

impl<'a> Mode<'a> {
    /// The mode for child `i` of a container: in training, its own seed mixed from the parent's
    /// and the position, so two Dropouts in one network draw different masks, and a rebuilt
    /// network (a resumed run) draws the same ones.
    pub fn child(self, i: usize) -> Mode<'a> {
        match self {
            Mode::Eval => Mode::Eval,
            Mode::Train { seed, rows, shares } => Mode::Train {
                seed: mix(seed, i as u64 + 1, 0x5eed),
                rows,
                shares,
            },
        }
    }
}

/// A 64-bit mix of three numbers (SplitMix64 steps), for Dropout seeds.
pub fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A network layer with an explicit forward and backward. See the module docs for the contract.
///
/// `Display` prints like PyTorch's `repr`, e.g. `Linear(in_features=784, out_features=10, bias=True)`.
pub trait Layer: fmt::Display + Send + std::any::Any {
    /// The per-sample output shape for a per-sample input shape, or what the layer expects instead
    /// (e.g. `"[C=3, H, W]"`), which the caller turns into an error naming the layer.
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String>;

    /// [`Layer::output_shape`] with a full error: it names this layer by its `index` path, what it
    /// expects, what it got, and `from` where that came from. Containers check child by child, so the
    /// error names the innermost layer that refuses.
    /// The output must hold at most [`MAX_VALUES`] values per sample.
    fn check(&self, index: &str, input: &[usize], from: &str) -> Result<Vec<usize>> {
        let output = self.output_shape(input).map_err(|expected| Error::Shape {
            index: index.to_string(),
            layer: one_line(self),
            expected,
            got: input.to_vec(),
            after: from.to_string(),
        })?;
        let values = output.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if values.is_none_or(|n| n > MAX_VALUES) {
            return Err(Error::invalid(format!(
                "layer {index} ({}) would output {output:?} per sample for input {input:?}{from}: \
                 more than {MAX_VALUES} values (2^28, the limit)",
                one_line(self)
            )));
        }
        Ok(output)
    }

    /// `y = f(x)` for a batch `x: [N, …]`; keeps what `backward` needs.
    fn forward(&mut self, x: Tensor, mode: Mode) -> Result<Tensor>;

    /// ∂L/∂x from ∂L/∂y; adds ∂L/∂θ into the parameters' gradients. Errors if no forward came first.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor>;

    /// [`Layer::backward`] for a caller that has no use for ∂L/∂x (the first layers of a network, as
    /// PyTorch skips the input gradient of a tensor that does not require one): adds ∂L/∂θ the same
    /// way, and may skip ∂L/∂x. Returns a free buffer of the input's shape whose values are unspecified.
    fn backward_params(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward(grad_y)
    }

    /// Visits every parameter with its name under `prefix` (e.g. `"0."`), in PyTorch's order.
    fn visit_params(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Param)) {}

    /// Visits every buffer (see [`Buffer`]) with its name under `prefix`, in PyTorch's order.
    fn visit_buffers(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Buffer)) {}

    /// Every buffer with its name under `prefix`, read-only, as [`Layer::visit_buffers`] names and
    /// orders them. The default visits the [`Layer::children`]; a layer holding buffers overrides it.
    fn buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Buffer)) {
        for (name, child) in self.children() {
            child.buffers(&format!("{prefix}{name}."), f);
        }
    }
    /// Every parameter with its name under `prefix`, read-only, as [`Layer::visit_params`] names and
    /// orders them (for saving a shared model). The default visits the [`Layer::children`]; a layer
    /// that holds parameters itself overrides it (a model missing some is refused by
    /// `checkpoint::save`, never saved without them).
    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        for (name, child) in self.children() {
            child.params(&format!("{prefix}{name}."), f);
        }
    }

    /// Multiply-accumulates of one sample's forward pass (for FLOP counts in benchmarks); 0 for
    /// layers whose cost is not a product.
    fn macs(&self, _input: &[usize]) -> usize {
        0
    }

    /// The children of a container, with their names, for summaries; empty for a plain layer.
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        Vec::new()
    }

    /// Whether a training forward must see the whole batch at once: it draws random numbers row
    /// after row (Dropout), or couples the rows (BatchNorm's batch statistics), or a container
    /// holds such a layer. Splitting the batch (`replica`) would then change the result.
    fn needs_whole_batch(&self) -> bool {
        self.children().iter().any(|(_, c)| c.needs_whole_batch())
    }
}

/// The number of learnable values in a layer.
pub fn param_count(layer: &mut dyn Layer) -> usize {
    let mut n = 0;
    layer.visit_params("", &mut |_, p| n += p.value.len());
    n
}

/// A layer's `Display` on one line (containers print several).
pub fn one_line(layer: &(impl Layer + ?Sized)) -> String {
    layer
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The path of child `name` inside the container at `index` (`"2"`, `"2.0"`).
pub(crate) fn child_path(index: &str, name: usize) -> String {
    if index.is_empty() {
        name.to_string()
    } else {
        format!("{index}.{name}")
    }
}

/// The error for a backward that came before its forward.
fn no_forward(layer: &dyn fmt::Display) -> Error {
    Error::NoForward(layer.to_string())
}

pub mod gradcheck;
