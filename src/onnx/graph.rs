//! The graph being written: nodes in execution order, weights as initializers, fresh value names.

use super::layers::MAPPINGS;
use super::proto::tensor_proto::DataType;
use super::proto::{AttributeProto, NodeProto, TensorProto, attribute_proto::AttributeType};
use crate::error::{Error, Result};
use crate::layers::{Layer, one_line};
use crate::tensor::Tensor;

/// A value flowing through the graph: its name and its per-sample shape (the batch is symbolic).
#[derive(Clone, Debug)]
pub struct Value {
    /// The name nodes refer to it by.
    pub name: String,
    /// The shape of one sample, without the batch dimension.
    pub shape: Vec<usize>,
}

/// An attribute of a node: `(name, value)`.
pub enum Attr {
    /// An integer.
    Int(&'static str, i64),
    /// A list of integers.
    Ints(&'static str, Vec<i64>),
    /// A float.
    Float(&'static str, f32),
    /// A string.
    Str(&'static str, &'static str),
    /// A list of strings.
    Strs(&'static str, Vec<&'static str>),
}

/// The nodes and initializers written so far.
#[derive(Default)]
pub struct Graph {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
}

impl Graph {
    /// Writes `layer`, found at `index` (`"2"`, `"2.0"`), applied to `x`: the first mapping that
    /// knows the layer's type writes its nodes. Returns the layer's output.
    ///
    /// # Errors
    /// A layer no mapping knows (a user's own layer, or one whose mapping is still missing), naming
    /// it by index.
    pub fn layer(&mut self, index: &str, layer: &dyn Layer, x: &Value) -> Result<Value> {
        let shape = layer
            .output_shape(&x.shape)
            .map_err(|expected| Error::Shape {
                index: index.to_string(),
                layer: one_line(layer),
                expected,
                got: x.shape.clone(),
                after: String::new(),
            })?;
        let name = MAPPINGS
            .iter()
            .find_map(|mapping| mapping(layer))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "layer {index} ({}) cannot be exported to ONNX: no mapping for it",
                    one_line(layer)
                ))
            })?
            .write(self, index, x, &shape)?;
        Ok(Value { name, shape })
    }

    /// Adds a node `op(inputs)` with `attrs`, named after the layer at `index`; returns its output.
    pub fn node(&mut self, index: &str, op: &str, inputs: &[&str], attrs: Vec<Attr>) -> String {
        let name = format!("/{}/{op}_{}", index.replace('.', "/"), self.nodes.len());
        let output = format!("{name}_output");
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs.into_iter().map(attribute).collect(),
            ..Default::default()
        });
        output
    }

    /// Adds a float initializer named `name` (a checkpoint key, e.g. `0.weight`); returns the name.
    pub fn weight(&mut self, name: &str, t: &Tensor) -> String {
        self.initializers.push(TensorProto {
            dims: t.shape().iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.to_string()),
            raw_data: Some(t.data().iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a scalar (rank 0) int64 initializer named `name`; returns the name.
    pub fn int_scalar(&mut self, name: &str, value: i64) -> String {
        self.initializers.push(TensorProto {
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.to_string()),
            int64_data: vec![value],
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a scalar float initializer named `name`; returns the name.
    pub fn float_scalar(&mut self, name: &str, value: f32) -> String {
        self.initializers.push(TensorProto {
            data_type: Some(DataType::Float as i32),
            name: Some(name.to_string()),
            float_data: vec![value],
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds an int64 initializer (a shape for `Reshape`) named `name`; returns the name.
    pub fn ints(&mut self, name: &str, values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.to_string()),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name.to_string()
    }
}

fn attribute(a: Attr) -> AttributeProto {
    let (name, mut proto) = match a {
        Attr::Int(name, i) => (
            name,
            AttributeProto {
                i: Some(i),
                r#type: Some(AttributeType::Int as i32),
                ..Default::default()
            },
        ),
        Attr::Ints(name, ints) => (
            name,
            AttributeProto {
                ints,
                r#type: Some(AttributeType::Ints as i32),
                ..Default::default()
            },
        ),
        Attr::Float(name, f) => (
            name,
            AttributeProto {
                f: Some(f),
                r#type: Some(AttributeType::Float as i32),
                ..Default::default()
            },
        ),
        Attr::Str(name, text) => (
            name,
            AttributeProto {
                s: Some(text.as_bytes().to_vec()),
                r#type: Some(AttributeType::String as i32),
                ..Default::default()
            },
        ),
        Attr::Strs(name, texts) => (
            name,
            AttributeProto {
                strings: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
                r#type: Some(AttributeType::Strings as i32),
                ..Default::default()
            },
        ),
    };
    proto.name = Some(name.to_string());
    proto
}
