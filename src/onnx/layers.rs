//! Each layer as ONNX nodes: one `impl ToOnnx` per layer type, and one line in [`MAPPINGS`].
//!
//! Adding a layer: write `impl ToOnnx for MyLayer` below (the nodes that compute it, with the
//! PyTorch ⇄ ONNX traps in its doc comment), add `mapping::<MyLayer>` to [`MAPPINGS`], and add the
//! layer to the round-trip cases in `tests/onnx.rs`.

use super::graph::{Attr, Graph, Value};
use super::proto::tensor_proto::DataType;
use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Conv2d, Dropout, Dropout2d, ELU, Elementwise,
    Embedding, Flatten, GELU, Identity, Layer, LeakyReLU, Linear, MaxPool2d, Parallel, ReLU,
    Residual, Select, Sequential, SiLU, Sigmoid, Softmax, Tanh, Window, child_path,
};
use crate::tensor::Tensor;
use std::any::Any;

/// How a layer is written as ONNX nodes.
pub trait ToOnnx {
    /// Adds the nodes that compute this layer (found at `index`, e.g. `"2"` or `"2.0"`) on `x`,
    /// whose per-sample output shape is `y`; returns the name of the output. Parameters become
    /// initializers named by their checkpoint keys (`2.weight`).
    fn write(&self, g: &mut Graph, index: &str, x: &Value, y: &[usize]) -> Result<String>;
}

/// A layer as `L`'s mapping, if it is an `L`.
type Mapping = fn(&dyn Layer) -> Option<&dyn ToOnnx>;

/// Every layer type that can be exported.
pub const MAPPINGS: &[Mapping] = &[
    mapping::<Linear>,
    mapping::<Conv2d>,
    mapping::<MaxPool2d>,
    mapping::<AvgPool2d>,
    mapping::<Flatten>,
    mapping::<Elementwise<ReLU>>,
    mapping::<Elementwise<LeakyReLU>>,
    mapping::<Elementwise<Sigmoid>>,
    mapping::<Elementwise<Tanh>>,
    mapping::<Softmax>,
    mapping::<Elementwise<GELU>>,
    mapping::<Elementwise<SiLU>>,
    mapping::<Elementwise<ELU>>,
    mapping::<Dropout>,
    mapping::<Dropout2d>,
    mapping::<Identity>,
    mapping::<BatchNorm>,
    mapping::<AdaptiveAvgPool2d>,
    mapping::<Embedding>,
    mapping::<Select>,
    mapping::<Sequential>,
    mapping::<Parallel>,
    mapping::<Residual>,
];

fn mapping<L: Layer + ToOnnx>(layer: &dyn Layer) -> Option<&dyn ToOnnx> {
    (layer as &dyn Any)
        .downcast_ref::<L>()
        .map(|l| l as &dyn ToOnnx)
}

fn param(index: &str, name: &str) -> String {
    format!("{index}.{name}")
}

/// The parameter or buffer of `layer` that its checkpoint names `name` (`weight`, `running_var`).
fn stored(layer: &dyn Layer, name: &str) -> Tensor {
    let mut found = None;
    layer.params("", &mut |n, p| {
        if n == name {
            found = Some(p.value.clone())
        }
    });
    layer.buffers("", &mut |n, b| {
        if n == name {
            found = Some(b.value.clone())
        }
    });
    found.unwrap_or_else(|| panic!("{} stores no {name}", crate::layers::one_line(layer)))
}

impl ToOnnx for Linear {
    /// `Gemm(x, W, b, transB=1)` = `x·Wᵀ + b` (W is stored `[out, in]`, as PyTorch). Gemm takes
    /// matrices only, so samples of rank > 1 go through `MatMul(x, Transpose(W)) + b`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let w = g.weight(&param(index, "weight"), self.weight());
        let b = self.bias().map(|b| g.weight(&param(index, "bias"), b));
        if x.shape.len() == 1 {
            let mut inputs = vec![x.name.as_str(), &w];
            inputs.extend(b.as_deref());
            return Ok(g.node(index, "Gemm", &inputs, vec![Attr::Int("transB", 1)]));
        }
        let wt = g.node(index, "Transpose", &[&w], vec![]);
        let y = g.node(index, "MatMul", &[&x.name, &wt], vec![]);
        Ok(match b {
            Some(b) => g.node(index, "Add", &[&y, &b], vec![]),
            None => y,
        })
    }
}

/// `kernel_shape`, `strides` and `pads`; ONNX orders pads `[top, left, bottom, right]`.
fn window_attrs(w: Window) -> Vec<Attr> {
    let (k, s, p) = (w.kernel, w.stride, w.padding);
    vec![
        Attr::Ints("kernel_shape", vec![k.0 as i64, k.1 as i64]),
        Attr::Ints("strides", vec![s.0 as i64, s.1 as i64]),
        Attr::Ints("pads", vec![p.0 as i64, p.1 as i64, p.0 as i64, p.1 as i64]),
    ]
}

impl ToOnnx for Conv2d {
    /// `Conv(x, W, b)` with symmetric padding.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let w = g.weight(&param(index, "weight"), self.weight());
        let b = self.bias().map(|b| g.weight(&param(index, "bias"), b));
        let mut inputs = vec![x.name.as_str(), &w];
        inputs.extend(b.as_deref());
        let (stride, padding) = self.stride_padding();
        let kernel = (self.weight().shape()[2], self.weight().shape()[3]);
        let attrs = window_attrs(Window {
            kernel,
            stride,
            padding,
        });
        Ok(g.node(index, "Conv", &inputs, attrs))
    }
}

impl ToOnnx for MaxPool2d {
    /// `MaxPool`; padding never wins a max, in ONNX as in PyTorch.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        Ok(g.node(index, "MaxPool", &[&x.name], window_attrs(self.window())))
    }
}

impl ToOnnx for AvgPool2d {
    /// `AveragePool` with `count_include_pad=1`: PyTorch's default, not ONNX's.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let mut attrs = window_attrs(self.window());
        attrs.push(Attr::Int("count_include_pad", 1));
        Ok(g.node(index, "AveragePool", &[&x.name], attrs))
    }
}

impl ToOnnx for Flatten {
    /// `Reshape(x, [0, …y])`: 0 keeps the (symbolic) batch size. ONNX's own `Flatten` always
    /// makes a matrix, which `end_dim` other than -1 does not.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, y: &[usize]) -> Result<String> {
        let shape: Vec<i64> = std::iter::once(0)
            .chain(y.iter().map(|&d| d as i64))
            .collect();
        let shape = g.ints(&param(index, "shape"), &shape);
        Ok(g.node(index, "Reshape", &[&x.name, &shape], vec![]))
    }
}

/// An activation that is one ONNX operator without attributes.
macro_rules! plain_activation {
    ($($layer:ty => $op:literal),* $(,)?) => {$(
        impl ToOnnx for Elementwise<$layer> {
            fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
                Ok(g.node(index, $op, &[&x.name], vec![]))
            }
        }
    )*};
}

plain_activation!(ReLU => "Relu", Sigmoid => "Sigmoid", Tanh => "Tanh");

impl ToOnnx for Elementwise<LeakyReLU> {
    /// `LeakyRelu(alpha = negative_slope)`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let alpha = Attr::Float("alpha", self.activation().negative_slope);
        Ok(g.node(index, "LeakyRelu", &[&x.name], vec![alpha]))
    }
}

impl ToOnnx for Softmax {
    /// `Softmax(axis = dim)`; from opset 13 on it normalises along that one axis, as PyTorch.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        Ok(g.node(
            index,
            "Softmax",
            &[&x.name],
            vec![Attr::Int("axis", self.dim())],
        ))
    }
}

impl ToOnnx for Elementwise<GELU> {
    /// `x·Φ(x)`. ONNX has `Gelu(approximate)` only from opset 20; before it, the formula itself:
    /// `0.5·x·(1 + Erf(x·(1/√2)))`, or with `approximate='tanh'`
    /// `0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))))`. Trap: an exporter that writes the tanh
    /// formula for the exact GELU (or `Gelu` without `approximate`) differs by up to ~5e-4.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let tanh = self.activation().tanh;
        if g.opset >= 20 {
            let a = Attr::Str("approximate", if tanh { "tanh" } else { "none" });
            return Ok(g.node(index, "Gelu", &[&x.name], vec![a]));
        }
        let mut constant = |name: &str, v: f64| g.scalar(&param(index, name), v as f32);
        let (half, one) = (constant("half", 0.5), constant("one", 1.0));
        let phi = if tanh {
            let k = constant("sqrt_2_over_pi", (2.0 / std::f64::consts::PI).sqrt());
            let c = constant("cubic", 0.044715);
            let x2 = g.node(index, "Mul", &[&x.name, &x.name], vec![]);
            let x3 = g.node(index, "Mul", &[&x2, &x.name], vec![]);
            let cx3 = g.node(index, "Mul", &[&x3, &c], vec![]);
            let inner = g.node(index, "Add", &[&x.name, &cx3], vec![]);
            let u = g.node(index, "Mul", &[&inner, &k], vec![]);
            g.node(index, "Tanh", &[&u], vec![])
        } else {
            let r = g.scalar(
                &param(index, "one_over_sqrt_2"),
                std::f32::consts::FRAC_1_SQRT_2,
            );
            let u = g.node(index, "Mul", &[&x.name, &r], vec![]);
            g.node(index, "Erf", &[&u], vec![])
        };
        let one_plus = g.node(index, "Add", &[&phi, &one], vec![]);
        let half_x = g.node(index, "Mul", &[&x.name, &half], vec![]);
        Ok(g.node(index, "Mul", &[&half_x, &one_plus], vec![]))
    }
}

impl ToOnnx for Elementwise<SiLU> {
    /// `x·Sigmoid(x)`: ONNX has no SiLU (nor Swish) operator in the opsets we write.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let s = g.node(index, "Sigmoid", &[&x.name], vec![]);
        Ok(g.node(index, "Mul", &[&x.name, &s], vec![]))
    }
}

impl ToOnnx for Elementwise<ELU> {
    /// `Elu(alpha)`; both default α to 1.0, but it is always written.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let alpha = Attr::Float("alpha", self.activation().alpha);
        Ok(g.node(index, "Elu", &[&x.name], vec![alpha]))
    }
}

/// Layers that are the identity in evaluation: an exported model is for inference, so
/// `Dropout` and `Dropout2d` (active only in training) write no node, nor does `Identity`.
macro_rules! identity_in_inference {
    ($($layer:ty),*) => {$(
        impl ToOnnx for $layer {
            fn write(&self, _: &mut Graph, _: &str, x: &Value, _: &[usize]) -> Result<String> {
                Ok(x.name.clone())
            }
        }
    )*};
}

identity_in_inference!(Dropout, Dropout2d, Identity);

impl ToOnnx for BatchNorm {
    /// In evaluation form: `BatchNormalization(x, weight, bias, running_mean, running_var,
    /// epsilon)` = `weight·(x − mean)/√(var + ε) + bias` per channel (axis 1), for `[N, C]`,
    /// `[N, C, L]` and `[N, C, H, W]` alike. Traps: ONNX's `momentum` is `1 −` PyTorch's (unused in
    /// inference, so not written); `training_mode` must stay 0 (the default), or the batch's
    /// statistics are used; `num_batches_tracked` is not part of the graph.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let inputs: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|name| g.weight(&param(index, name), &stored(self, name)))
            .collect();
        let mut inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        inputs.insert(0, &x.name);
        let eps = Attr::Float("epsilon", self.eps());
        Ok(g.node(index, "BatchNormalization", &inputs, vec![eps]))
    }
}

impl ToOnnx for AdaptiveAvgPool2d {
    /// PyTorch's windows `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` may overlap and differ in size; ONNX has no
    /// adaptive pool. Output 1×1: `GlobalAveragePool`. Uniform windows (`OH | H`, `OW | W`):
    /// `AveragePool` with kernel = stride = `(H/OH, W/OW)`. Otherwise each output is a weighted sum
    /// of its window: `Reshape [N, C, H·W]`, `MatMul` by `A: [H·W, OH·OW]` (`A[p, o]` = 1/|window o|
    /// when `p` is in window `o`), `Reshape [N, C, OH, OW]`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, y: &[usize]) -> Result<String> {
        let (oh, ow) = self.output_size();
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2]);
        if (oh, ow) == (1, 1) {
            return Ok(g.node(index, "GlobalAveragePool", &[&x.name], vec![]));
        }
        if h % oh == 0 && w % ow == 0 {
            let k = (h / oh, w / ow);
            let attrs = window_attrs(Window {
                kernel: k,
                stride: k,
                padding: (0, 0),
            });
            return Ok(g.node(index, "AveragePool", &[&x.name], attrs));
        }
        let mut a = Tensor::zeros(&[h * w, oh * ow]);
        self.each(h, w, |o, p, s| a.data_mut()[p * oh * ow + o] = s);
        let a = g.weight(&param(index, "window_means"), &a);
        let flat = g.ints(&param(index, "planes"), &[0, c as i64, (h * w) as i64]);
        let shape: Vec<i64> = std::iter::once(0)
            .chain(y.iter().map(|&d| d as i64))
            .collect();
        let shape = g.ints(&param(index, "shape"), &shape);
        let planes = g.node(index, "Reshape", &[&x.name, &flat], vec![]);
        let means = g.node(index, "MatMul", &[&planes, &a], vec![]);
        Ok(g.node(index, "Reshape", &[&means, &shape], vec![]))
    }
}

impl ToOnnx for Embedding {
    /// `Gather(weight, Cast(x, int64), axis=0)`: the graph's input stays float32, as `predict`'s.
    /// Traps: `Cast` truncates a non-integer id and `Gather` wraps a negative one, where
    /// `scratchnet predict` (and PyTorch) refuse them; ids must be whole numbers in range.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let w = g.weight(&param(index, "weight"), &stored(self, "weight"));
        let to = Attr::Int("to", DataType::Int64 as i64);
        let ids = g.node(index, "Cast", &[&x.name], vec![to]);
        Ok(g.node(index, "Gather", &[&w, &ids], vec![Attr::Int("axis", 0)]))
    }
}

impl ToOnnx for Select {
    /// `Gather(x, index, axis=dim)` with a scalar (rank-0) index, which drops the axis as
    /// `x.select(dim, index)` does; a rank-1 index `[i]` would keep it as size 1. `dim` counts the
    /// batch, as ONNX's axis does; a negative `dim` or `index` is resolved from the known shape.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let (dim, i) = self.dim_index();
        let rank = x.shape.len() as i64 + 1;
        let axis = if dim < 0 { dim + rank } else { dim };
        let size = x.shape[axis as usize - 1] as i64;
        let i = g.int_scalar(&param(index, "index"), if i < 0 { i + size } else { i });
        Ok(g.node(
            index,
            "Gather",
            &[&x.name, &i],
            vec![Attr::Int("axis", axis)],
        ))
    }
}

/// The layers `children` in turn on `x`, the first at `index.0`; returns the last output.
fn in_turn(
    g: &mut Graph,
    index: &str,
    children: Vec<(String, &dyn Layer)>,
    x: &Value,
) -> Result<Value> {
    let mut v = x.clone();
    for (i, (_, layer)) in children.into_iter().enumerate() {
        v = g.layer(&child_path(index, i), layer, &v)?;
    }
    Ok(v)
}

impl ToOnnx for Sequential {
    /// Each layer in turn, including any a fast path runs inside its neighbour: the file holds
    /// the model's meaning, not our execution plan.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        Ok(in_turn(g, index, self.children(), x)?.name)
    }
}

impl ToOnnx for Residual {
    /// `Add(x, f(x))`, `f` the layers inside in turn (named `index.0`, … as in the checkpoint).
    /// Trap: PyTorch has no Residual module, so `torch.onnx` writes whatever the user's wrapper
    /// does; ours is exactly `x + f(x)`, with no projection on the skip.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let fx = in_turn(g, index, self.children(), x)?;
        Ok(g.node(index, "Add", &[&x.name, &fx.name], vec![]))
    }
}

impl ToOnnx for Parallel {
    /// Every branch on `x`, then `Concat(axis=1)`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let mut outputs = Vec::new();
        for (i, (_, branch)) in self.children().into_iter().enumerate() {
            outputs.push(g.layer(&child_path(index, i), branch, x)?.name);
        }
        let inputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        Ok(g.node(index, "Concat", &inputs, vec![Attr::Int("axis", 1)]))
    }
}
