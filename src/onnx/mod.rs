//! ONNX export: a model as a file that ONNX Runtime, tract or a browser runs.
//!
//! The graph takes `input: [batch, …input_shape]` (float32, the batch size symbolic) and gives
//! `output: [batch, …output_shape]`. Weights are initializers named by their checkpoint keys
//! (`0.weight`); the model text, the input shape (under the checkpoint's metadata keys) and whatever metadata the caller gives (class
//! names, preprocessing) go into `metadata_props`. Each layer's nodes are written by its entry
//! in [`layers`]: a layer without one is refused by name, never exported wrong.
//!
//! ```
//! use scratchnet::{Model, onnx};
//! let model = Model::new("Linear(4,8), ReLU, Linear(8,3)", &[4], 0)?;
//! let bytes = onnx::to_bytes(&model, onnx::DEFAULT_OPSET, &Default::default())?;
//! assert!(bytes.len() > 4 * (4 * 8 + 8 + 8 * 3 + 3));
//! # Ok::<(), scratchnet::Error>(())
//! ```

mod graph;
pub mod layers;
#[allow(missing_docs, clippy::all)]
mod proto;

pub use graph::{Attr, Graph, Value};

use crate::checkpoint::{INPUT_SHAPE_KEY, MODEL_KEY};
use crate::data::atomic::atomic_write;
use crate::error::{Error, Result};
use crate::model::Model;
use prost::Message;
use proto::tensor_shape_proto::{Dimension, dimension};
use proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_proto::DataType, type_proto,
};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

/// The opset written unless asked otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// The opsets we write: from 13 (`Softmax` along one axis, as PyTorch) to 21.
pub const OPSETS: RangeInclusive<i64> = 13..=21;

/// The name of the symbolic batch dimension.
const BATCH: &str = "batch";

/// The ONNX file of `model` for `opset`, with `metadata` added to its `metadata_props`.
///
/// # Errors
/// An opset outside [`OPSETS`]; a layer that has no ONNX mapping (a user's own layer), named by
/// its index.
pub fn to_bytes(model: &Model, opset: i64, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    if !OPSETS.contains(&opset) {
        return Err(Error::invalid(format!(
            "ONNX opset {opset} is not supported: scratchnet writes opsets {} to {}",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let input = Value {
        name: "input".into(),
        shape: model.input_shape().to_vec(),
    };
    let mut g = Graph::default();
    let y = g.layer("", model.net_ref(), &input)?;
    name_output(&mut g.nodes, &y.name);
    let mut props = metadata.clone();
    props.insert(MODEL_KEY.into(), model.text().to_string());
    props.insert(INPUT_SHAPE_KEY.into(), format!("{:?}", model.input_shape()));
    let proto = ModelProto {
        ir_version: Some(ir_version(opset)),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("scratchnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(model.text().to_string()),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some("scratchnet".into()),
            initializer: g.initializers,
            input: vec![value_info("input", model.input_shape())],
            output: vec![value_info("output", model.output_shape())],
            ..Default::default()
        }),
        metadata_props: props
            .into_iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key),
                value: Some(value),
            })
            .collect(),
        ..Default::default()
    };
    Ok(proto.encode_to_vec())
}

/// Writes [`to_bytes`] to `path`, atomically.
///
/// # Errors
/// As [`to_bytes`]; the file cannot be written.
pub fn save(
    model: &Model,
    path: &Path,
    opset: i64,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    atomic_write(path, &to_bytes(model, opset, metadata)?)
}

/// The IR version that goes with an opset (the oldest that has it, for the widest set of runtimes).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// Makes the node that computes `last` write `output` instead; when no node does (a model of
/// Dropouts only), an `Identity` node copies the input to it.
fn name_output(nodes: &mut Vec<NodeProto>, last: &str) {
    let producer = nodes
        .iter_mut()
        .flat_map(|n| n.output.iter_mut())
        .find(|o| *o == last);
    match producer {
        Some(o) => *o = "output".into(),
        None => nodes.push(NodeProto {
            input: vec![last.to_string()],
            output: vec!["output".into()],
            name: Some("/Identity".into()),
            op_type: Some("Identity".into()),
            ..Default::default()
        }),
    }
}

/// A float32 tensor of shape `[batch, …shape]`.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    let dims = std::iter::once(dim(dimension::Value::DimParam(BATCH.into())))
        .chain(
            shape
                .iter()
                .map(|&d| dim(dimension::Value::DimValue(d as i64))),
        )
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
