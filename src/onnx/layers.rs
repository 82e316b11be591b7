//! Each layer as ONNX nodes: one `impl ToOnnx` per layer type, and one line in [`MAPPINGS`].
//!
//! Adding a layer: write `impl ToOnnx for MyLayer` below (the nodes that compute it, with the
//! PyTorch ⇄ ONNX traps in its doc comment), add `mapping::<MyLayer>` to [`MAPPINGS`], and add the
//! layer to the round-trip cases in `tests/onnx.rs`.

use super::graph::{Attr, Graph, Value};
use crate::error::Result;
use crate::layers::{
    AvgPool2d, Conv2d, Dropout, Elementwise, Flatten, Layer, LeakyReLU, Linear, MaxPool2d,
    Parallel, ReLU, Sequential, Sigmoid, Softmax, Tanh, Window, child_path,
};
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
    mapping::<Dropout>,
    mapping::<Sequential>,
    mapping::<Parallel>,
];

fn mapping<L: Layer + ToOnnx>(layer: &dyn Layer) -> Option<&dyn ToOnnx> {
    (layer as &dyn Any)
        .downcast_ref::<L>()
        .map(|l| l as &dyn ToOnnx)
}

fn param(index: &str, name: &str) -> String {
    format!("{index}.{name}")
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

impl ToOnnx for Dropout {
    /// The identity: an exported model is for inference.
    fn write(&self, _: &mut Graph, _: &str, x: &Value, _: &[usize]) -> Result<String> {
        Ok(x.name.clone())
    }
}

impl ToOnnx for Sequential {
    /// Each layer in turn, including any a fast path runs inside its neighbour: the file holds
    /// the model's meaning, not our execution plan.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let mut v = x.clone();
        for (i, layer) in self.layers().iter().enumerate() {
            v = g.layer(&child_path(index, i), layer.as_ref(), &v)?;
        }
        Ok(v.name)
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
