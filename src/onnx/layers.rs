//! Each layer as ONNX nodes: one `impl ToOnnx` per layer type, and one line in [`MAPPINGS`].
//!
//! Adding a layer: write `impl ToOnnx for MyLayer` below (the nodes that compute it, with the
//! PyTorch ⇄ ONNX traps in its doc comment), add `mapping::<MyLayer>` to [`MAPPINGS`], and add the
//! layer to the round-trip cases in `tests/onnx.rs`.

use super::graph::{Attr, Graph, Value};
use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, Buffer, Cell, Conv2d, Dropout, Dropout2d, ELU,
    Elementwise, Embedding, Flatten, GELU, Identity, Layer, LeakyReLU, Linear, MaxPool2d,
    Nonlinearity, Parallel, Param, ReLU, Recurrent, Residual, Select, Sequential, SiLU, Sigmoid,
    Softmax, Tanh, Window, adaptive_window, child_path,
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
    mapping::<Dropout>,
    mapping::<Sequential>,
    mapping::<Parallel>,
    mapping::<BatchNorm>,
    mapping::<Residual>,
    mapping::<Elementwise<GELU>>,
    mapping::<Elementwise<SiLU>>,
    mapping::<Elementwise<ELU>>,
    mapping::<Dropout2d>,
    mapping::<Identity>,
    mapping::<AdaptiveAvgPool2d>,
    mapping::<Embedding>,
    mapping::<Select>,
    mapping::<Recurrent>,
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

/// Layers that are the identity in an exported model (which is for inference): no node at all.
macro_rules! no_node {
    ($($layer:ty),* $(,)?) => {$(
        impl ToOnnx for $layer {
            fn write(&self, _: &mut Graph, _: &str, x: &Value, _: &[usize]) -> Result<String> {
                Ok(x.name.clone())
            }
        }
    )*};
}

no_node!(Dropout, Dropout2d, Identity);

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

/// The layer's own tensor called `name` among its parameters and buffers (`weight`, `running_var`).
fn own_tensor(layer: &dyn Layer, name: &str) -> Tensor {
    let mut found = None;
    layer.params("", &mut |n: &str, p: &Param| {
        if n == name {
            found = Some(p.value.clone());
        }
    });
    layer.buffers("", &mut |n: &str, b: &Buffer| {
        if n == name {
            found = Some(b.value.clone());
        }
    });
    found.expect("the layer names this tensor")
}

impl ToOnnx for BatchNorm {
    /// Evaluation form: `BatchNormalization(x, weight, bias, running_mean, running_var, epsilon)`,
    /// the channel axis 1 as in PyTorch (`[N, C]`, `[N, C, L]`, `[N, C, H, W]`). ONNX's default
    /// `epsilon` is PyTorch's 1e-5, but a layer built with another is written with its own.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let names = ["weight", "bias", "running_mean", "running_var"];
        let inputs: Vec<String> = names
            .iter()
            .map(|n| g.weight(&param(index, n), &own_tensor(self, n)))
            .collect();
        let mut all = vec![x.name.as_str()];
        all.extend(inputs.iter().map(String::as_str));
        let eps = Attr::Float("epsilon", self.eps());
        Ok(g.node(index, "BatchNormalization", &all, vec![eps]))
    }
}

impl ToOnnx for Residual {
    /// The layers inside in turn (named `index.0`, `index.1`, … as their checkpoint keys), then
    /// `Add(x, f(x))`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let mut v = x.clone();
        for (i, (_, layer)) in self.children().into_iter().enumerate() {
            v = g.layer(&child_path(index, i), layer, &v)?;
        }
        Ok(g.node(index, "Add", &[&x.name, &v.name], vec![]))
    }
}

impl ToOnnx for Elementwise<GELU> {
    /// Written out, since ONNX's own `Gelu` exists only from opset 20:
    /// `0.5·x·(1 + Erf(x/√2))`, or with `approximate='tanh'`
    /// `0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let c = |g: &mut Graph, name: &str, v: f64| g.float_scalar(&param(index, name), v as f32);
        let inner = if self.activation().tanh {
            let k = c(g, "gelu_k", (2.0 / std::f64::consts::PI).sqrt());
            let a = c(g, "gelu_a", 0.044715);
            let x2 = g.node(index, "Mul", &[&x.name, &x.name], vec![]);
            let x3 = g.node(index, "Mul", &[&x2, &x.name], vec![]);
            let ax3 = g.node(index, "Mul", &[&x3, &a], vec![]);
            let u = g.node(index, "Add", &[&x.name, &ax3], vec![]);
            let ku = g.node(index, "Mul", &[&u, &k], vec![]);
            g.node(index, "Tanh", &[&ku], vec![])
        } else {
            let r = c(g, "gelu_rsqrt2", std::f64::consts::FRAC_1_SQRT_2);
            let xr = g.node(index, "Mul", &[&x.name, &r], vec![]);
            g.node(index, "Erf", &[&xr], vec![])
        };
        let one = c(g, "gelu_one", 1.0);
        let half = c(g, "gelu_half", 0.5);
        let sum = g.node(index, "Add", &[&inner, &one], vec![]);
        let xs = g.node(index, "Mul", &[&x.name, &sum], vec![]);
        Ok(g.node(index, "Mul", &[&xs, &half], vec![]))
    }
}

impl ToOnnx for Elementwise<SiLU> {
    /// `x·Sigmoid(x)` (`Swish` is not an ONNX operator before opset 24).
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let s = g.node(index, "Sigmoid", &[&x.name], vec![]);
        Ok(g.node(index, "Mul", &[&x.name, &s], vec![]))
    }
}

impl ToOnnx for Elementwise<ELU> {
    /// `Elu(alpha)`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let alpha = Attr::Float("alpha", self.activation().alpha);
        Ok(g.node(index, "Elu", &[&x.name], vec![alpha]))
    }
}

impl ToOnnx for AdaptiveAvgPool2d {
    /// Output 1×1: `GlobalAveragePool`. Windows that tile the input (`H` a multiple of `OH`, `W`
    /// of `OW`): `AveragePool` with kernel = stride = `(H/OH, W/OW)`. PyTorch's other windows
    /// overlap and differ in size, which no single ONNX pool expresses: each output cell is then
    /// the `AveragePool` of its own `Slice`, and the cells are put back together with `Concat`
    /// (along the width, then the height).
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let (oh, ow) = self.output_size();
        let (h, w) = (x.shape[1], x.shape[2]);
        if (oh, ow) == (1, 1) {
            return Ok(g.node(index, "GlobalAveragePool", &[&x.name], vec![]));
        }
        let pool = |g: &mut Graph, input: &str, kernel: (usize, usize)| {
            let attrs = window_attrs(Window {
                kernel,
                stride: kernel,
                padding: (0, 0),
            });
            g.node(index, "AveragePool", &[input], attrs)
        };
        if h % oh == 0 && w % ow == 0 {
            return Ok(pool(g, &x.name, (h / oh, w / ow)));
        }
        let axes = g.ints(&param(index, "axes"), &[2, 3]);
        let mut rows = Vec::new();
        for i in 0..oh {
            let r = adaptive_window(i, oh, h);
            let mut cells = Vec::new();
            for j in 0..ow {
                let c = adaptive_window(j, ow, w);
                let at = |what: &str| param(index, &format!("{what}_{i}_{j}"));
                let starts = g.ints(&at("starts"), &[r.start as i64, c.start as i64]);
                let ends = g.ints(&at("ends"), &[r.end as i64, c.end as i64]);
                let cell = g.node(index, "Slice", &[&x.name, &starts, &ends, &axes], vec![]);
                cells.push(pool(g, &cell, (r.len(), c.len())));
            }
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            rows.push(g.node(index, "Concat", &cells, vec![Attr::Int("axis", 3)]));
        }
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        Ok(g.node(index, "Concat", &rows, vec![Attr::Int("axis", 2)]))
    }
}

impl ToOnnx for Embedding {
    /// The input stays float32 like every scratchnet input (ids as whole numbers), so
    /// `Gather(weight, Cast(x, to=int64), axis=0)`: `[N, T]` → `[N, T, E]`.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let w = g.weight(&param(index, "weight"), &own_tensor(self, "weight"));
        let int64 = super::proto::tensor_proto::DataType::Int64 as i64;
        let ids = g.node(index, "Cast", &[&x.name], vec![Attr::Int("to", int64)]);
        Ok(g.node(index, "Gather", &[&w, &ids], vec![Attr::Int("axis", 0)]))
    }
}

impl ToOnnx for Select {
    /// `Gather(x, index, axis=dim)` with a scalar index, which drops the axis as `x.select` does;
    /// negative `dim` and `index` are resolved against the shape first.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let (dim, at) = self.dim_index();
        let rank = x.shape.len() as i64 + 1;
        let axis = if dim < 0 { dim + rank } else { dim };
        let size = x.shape[axis as usize - 1] as i64;
        let at = if at < 0 { at + size } else { at };
        let i = g.int_scalar(&param(index, "index"), at);
        Ok(g.node(
            index,
            "Gather",
            &[&x.name, &i],
            vec![Attr::Int("axis", axis)],
        ))
    }
}

impl ToOnnx for Recurrent {
    /// One ONNX `RNN` / `LSTM` / `GRU` node per layer, each with both directions
    /// (`direction="bidirectional"`). The traps:
    /// - ONNX runs sequence-major, `X: [T, N, F]` → `Y: [T, D, N, H]`: the input is transposed
    ///   once, each layer's `Y` becomes the next layer's `[T, N, D·H]` by `Transpose` + `Reshape`,
    ///   and the last one is transposed back to batch-first `[N, T, D·H]`.
    /// - Gate order: ONNX's LSTM rows are i, o, f, c (PyTorch's i, f, g, o), its GRU's z, r, h
    ///   (PyTorch's r, z, n), so the blocks of rows are permuted; the GRU needs
    ///   `linear_before_reset=1`, PyTorch's `r ⊙ (W_hn h + b_hn)`.
    /// - `W: [D, G·H, in]`, `R: [D, G·H, H]`, `B: [D, 2·G·H] = [b_ih | b_hh]` (zeros without bias),
    ///   stacked over the directions; RNN's `activations` says Tanh or Relu per direction.
    fn write(&self, g: &mut Graph, index: &str, x: &Value, _: &[usize]) -> Result<String> {
        let (hid, dirs) = (self.hidden_size(), if self.bidirectional() { 2 } else { 1 });
        let (op, order): (_, &[usize]) = match self.cell() {
            Cell::Rnn(_) => ("RNN", &[0]),
            Cell::Lstm => ("LSTM", &[0, 3, 1, 2]),
            Cell::Gru => ("GRU", &[1, 0, 2]),
        };
        let attrs = || {
            let direction = if dirs == 2 {
                "bidirectional"
            } else {
                "forward"
            };
            let mut attrs = vec![
                Attr::Int("hidden_size", hid as i64),
                Attr::Str("direction", direction),
            ];
            match self.cell() {
                Cell::Rnn(Nonlinearity::Tanh) => {
                    attrs.push(Attr::Strs("activations", vec!["Tanh"; dirs]))
                }
                Cell::Rnn(Nonlinearity::Relu) => {
                    attrs.push(Attr::Strs("activations", vec!["Relu"; dirs]))
                }
                Cell::Gru => attrs.push(Attr::Int("linear_before_reset", 1)),
                Cell::Lstm => {}
            }
            attrs
        };
        // PyTorch's gate blocks of `[G·H, …]` rows in ONNX's order.
        let onnx_rows = |t: &Tensor| -> Vec<f32> {
            let block = hid * t.len() / t.shape()[0];
            order
                .iter()
                .flat_map(|&b| &t.data()[b * block..(b + 1) * block])
                .copied()
                .collect()
        };
        let gh = order.len() * hid;
        let shape = g.ints(&param(index, "shape"), &[0, 0, (dirs * hid) as i64]);
        let mut v = g.node(
            index,
            "Transpose",
            &[&x.name],
            vec![Attr::Ints("perm", vec![1, 0, 2])],
        );
        // The zero initial state `[D, N, H]`, given explicitly: tract builds its own only for a
        // batch size known when the file is loaded, and ours is symbolic. Expand broadcasts
        // zeros `[D, 1, H]` to `[1, N, 1]` taken from the input's shape.
        let zeros = g.weight(&param(index, "zeros"), &Tensor::zeros(&[dirs, 1, hid]));
        let shape_of_x = g.node(index, "Shape", &[&v], vec![]);
        let at = g.ints(&param(index, "batch_axis"), &[1]);
        let batch = g.node(index, "Gather", &[&shape_of_x, &at], vec![]);
        let one = g.ints(&param(index, "one"), &[1]);
        let target = g.node(
            index,
            "Concat",
            &[&one, &batch, &one],
            vec![Attr::Int("axis", 0)],
        );
        let h0 = g.node(index, "Expand", &[&zeros, &target], vec![]);
        for k in 0..self.num_layers() {
            let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
            for d in 0..dirs {
                let at =
                    |name: &str| format!("{name}_l{k}{}", if d == 1 { "_reverse" } else { "" });
                w.extend(onnx_rows(&own_tensor(self, &at("weight_ih"))));
                r.extend(onnx_rows(&own_tensor(self, &at("weight_hh"))));
                for bias in ["bias_ih", "bias_hh"] {
                    let mut found = None;
                    self.params("", &mut |n, p| {
                        if n == at(bias) {
                            found = Some(onnx_rows(&p.value));
                        }
                    });
                    b.extend(found.unwrap_or_else(|| vec![0.0; gh]));
                }
            }
            let inputs = w.len() / (dirs * gh);
            let mut tensor = |name: &str, shape: &[usize], data: Vec<f32>| {
                let t = Tensor::new(shape, data).expect("stacked weights fit their shape");
                g.weight(&param(index, &format!("{name}_l{k}")), &t)
            };
            let w = tensor("W", &[dirs, gh, inputs], w);
            let r = tensor("R", &[dirs, gh, hid], r);
            let b = tensor("B", &[dirs, 2 * gh], b);
            let mut inputs = vec![v.as_str(), &w, &r, &b, "", &h0];
            if op == "LSTM" {
                inputs.push(&h0);
            }
            let y = g.node(index, op, &inputs, attrs());
            let y = g.node(
                index,
                "Transpose",
                &[&y],
                vec![Attr::Ints("perm", vec![0, 2, 1, 3])],
            );
            v = g.node(index, "Reshape", &[&y, &shape], vec![]);
        }
        Ok(g.node(
            index,
            "Transpose",
            &[&v],
            vec![Attr::Ints("perm", vec![1, 0, 2])],
        ))
    }
}
