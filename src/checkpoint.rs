//! Checkpoints in safetensors, interchangeable with PyTorch.
//!
//! Tensor names are `nn.Sequential(...).state_dict()` keys (`0.weight`, `2.bias`, …) and the model text
//! is the metadata key `model`, so `safetensors.torch.save_file(seq.state_dict(), path,
//! metadata={"model": text})` writes a file we load, and `seq.load_state_dict(load_file(path))` loads
//! ours. Anything else we keep (training state for resuming) goes into further metadata keys, never
//! into tensors, so that PyTorch's strict loading still accepts the file.

use crate::data::atomic::atomic_write;
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::model::Model;
use crate::tensor::Tensor;
use safetensors::{Dtype, SafeTensorError, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The metadata key that holds the class names of the training data (a JSON array), when known.
pub const CLASSES_KEY: &str = "classes";

/// The metadata key that holds the model text.
pub const MODEL_KEY: &str = "model";

/// The metadata key that holds the per-sample input shape the model was built for (a JSON array).
pub const INPUT_SHAPE_KEY: &str = "input_shape";

/// The metadata key that says, in words, how the training data became model inputs.
pub const PREPROCESSING_KEY: &str = "preprocessing";

/// The contents of a checkpoint file.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The tensors by name (`0.weight`, …), converted to f32.
    pub tensors: BTreeMap<String, Tensor>,
    /// The string metadata (`model`, `input_shape`, `classes`, training state).
    pub metadata: HashMap<String, String>,
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Writes the model's parameters and `metadata` (plus the model text under `model` and the input
/// shape under `input_shape`), atomically.
///
/// # Errors
/// The file cannot be written; a layer of the user's own that holds parameters but does not show
/// them through [`Layer::params`] (named, rather than saved without them).
pub fn save(model: &Model, path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut shown: Vec<String> = Vec::new();
    let mut tensors: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    let mut push = |name: &str, t: &Tensor, int: bool| {
        let (dtype, bytes) = if int {
            let ints = t.data().iter().flat_map(|&v| (v as i64).to_le_bytes());
            (Dtype::I64, ints.collect())
        } else {
            let floats = t.data().iter().flat_map(|v| v.to_le_bytes());
            (Dtype::F32, floats.collect())
        };
        tensors.push((name.to_string(), t.shape().to_vec(), dtype, bytes));
    };
    model.net_ref().params("", &mut |name, p| {
        shown.push(name.to_string());
        push(name, &p.value, false);
    });
    model
        .net_ref()
        .buffers("", &mut |name, b| push(name, &b.value, b.int));
    if shown != model.param_names() {
        let hidden: Vec<&String> = model
            .param_names()
            .iter()
            .filter(|n| !shown.contains(n))
            .collect();
        return Err(err(
            path,
            format!(
                "cannot save: parameters {hidden:?} are not shown by Layer::params (a layer that holds parameters must implement it)"
            ),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map_err(|e| err(path, e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    meta.insert(MODEL_KEY.into(), model.text().to_string());
    meta.insert(INPUT_SHAPE_KEY.into(), format!("{:?}", model.input_shape()));
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| err(path, e.to_string()))?;
    atomic_write(path, &bytes)
}

/// Visits every tensor of a `state_dict`: the parameters, then the buffers (running statistics),
/// with whether the file stores it as int64.
fn each_tensor(net: &mut dyn Layer, f: &mut dyn FnMut(&str, &mut Tensor, bool)) {
    net.visit_params("", &mut |name, p| f(name, &mut p.value, false));
    net.visit_buffers("", &mut |name, b| f(name, &mut b.value, b.int));
}

/// Reads a safetensors file (F32, F64, F16 or BF16 tensors, and I64 ones such as BatchNorm's
/// `num_batches_tracked`, converted to f32).
///
/// # Errors
/// A missing file; a corrupt or truncated file; a dtype we cannot use; a non-finite weight.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path)
}

/// Parses the bytes of a safetensors file as [`read`] does; `path` (usually where they came from)
/// goes into error messages and [`Checkpoint::path`].
///
/// # Errors
/// As [`read`], except a missing file.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    // Text from the file (quoted in the parser's errors, tensor names) is escaped: it may hold a
    // newline, and the message must stay one line.
    let invalid = |e: SafeTensorError| {
        let e = e.to_string();
        err(
            path,
            format!("not a valid safetensors file ({})", e.escape_debug()),
        )
    };
    let st = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shown = name.escape_debug();
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            other => {
                return Err(err(
                    path,
                    format!(
                        "tensor '{shown}' has dtype {other:?}; expected F32, F64, F16, BF16 or I64"
                    ),
                ));
            }
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(err(
                path,
                format!(
                    "tensor '{shown}' holds a non-finite value ({}) at index {i}",
                    data[i]
                ),
            ));
        }
        tensors.insert(name.clone(), Tensor::new(view.shape(), data)?);
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// IEEE half to single precision (also read by the .npy reader).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

impl Checkpoint {
    /// The model text stored in the file, if any.
    pub fn model_text(&self) -> Option<&str> {
        self.metadata.get(MODEL_KEY).map(String::as_str)
    }

    /// The per-sample input shape stored in the file, if any.
    ///
    /// # Errors
    /// A value that is not a list of positive integers like `[1, 28, 28]`.
    pub fn input_shape(&self) -> Result<Option<Vec<usize>>> {
        let Some(text) = self.metadata.get(INPUT_SHAPE_KEY) else {
            return Ok(None);
        };
        match serde_json::from_str::<Vec<usize>>(text) {
            Ok(shape) if !shape.is_empty() && !shape.contains(&0) => Ok(Some(shape)),
            _ => Err(err(
                &self.path,
                format!(
                    "metadata '{INPUT_SHAPE_KEY}' is \"{}\"; expected positive integers like [1, 28, 28]",
                    text.escape_debug()
                ),
            )),
        }
    }

    /// Copies the tensors into `model`'s parameters and buffers.
    ///
    /// # Errors
    /// Lists every missing, unexpected and mis-shaped tensor; nothing is changed then.
    pub fn load_into(&self, model: &mut Model) -> Result<()> {
        let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
        each_tensor(model.net(), &mut |name, t, _| {
            expected.push((name.to_string(), t.shape().to_vec()))
        });
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match self.tensors.get(name) {
                None => problems.push(format!("missing '{name}' {shape:?}")),
                Some(t) if t.shape() != shape.as_slice() => problems.push(format!(
                    "'{name}' is {:?}, the model needs {shape:?}",
                    t.shape()
                )),
                Some(_) => {}
            }
        }
        for name in self.tensors.keys() {
            if !expected.iter().any(|(n, _)| n == name) {
                problems.push(format!("unexpected '{}'", name.escape_debug()));
            }
        }
        if !problems.is_empty() {
            return Err(err(
                &self.path,
                format!(
                    "does not fit the model \"{}\": {}",
                    model.text(),
                    problems.join("; ")
                ),
            ));
        }
        each_tensor(model.net(), &mut |name, t, _| {
            t.clone_from(&self.tensors[name])
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Mode;
    use rand::SeedableRng;

    fn model(text: &str, seed: u64) -> Model {
        Model::build(
            text,
            &[1, 6, 6],
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        )
        .unwrap()
    }

    const TEXT: &str = "Conv2d(1,2,3), ReLU, Flatten, Linear(32,3)";

    #[test]
    fn round_trip_restores_every_parameter_and_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut a = model(TEXT, 1);
        save(
            &a,
            &p,
            &BTreeMap::from([("note".to_string(), "hi".to_string())]),
        )
        .unwrap();
        let ck = read(&p).unwrap();
        assert_eq!(ck.model_text(), Some(TEXT));
        assert_eq!(ck.input_shape().unwrap(), Some(vec![1, 6, 6]));
        assert_eq!(ck.metadata["note"], "hi");
        assert_eq!(
            ck.tensors.keys().collect::<Vec<_>>(),
            ["0.bias", "0.weight", "3.bias", "3.weight"]
        );
        let mut b = model(TEXT, 2);
        ck.load_into(&mut b).unwrap();
        let x = Tensor::new(&[1, 1, 6, 6], (0..36).map(|v| v as f32 / 36.0).collect()).unwrap();
        assert_eq!(
            a.forward(x.clone(), Mode::Eval).unwrap(),
            b.forward(x, Mode::Eval).unwrap()
        );
    }

    #[test]
    fn batchnorm_running_statistics_are_saved_and_loaded_beside_the_parameters() {
        let text = "Conv2d(1,2,3), BatchNorm2d(2), ReLU, Flatten, Linear(32,3), BatchNorm1d(3)";
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut a = model(text, 1);
        let x = Tensor::new(&[4, 1, 6, 6], (0..144).map(|v| (v % 7) as f32).collect()).unwrap();
        for _ in 0..3 {
            a.forward(x.clone(), Mode::train(0)).unwrap();
        }
        save(&a, &p, &BTreeMap::new()).unwrap();
        // As PyTorch writes them: num_batches_tracked is an int64 scalar.
        let bytes = std::fs::read(&p).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let nbt = st.tensor("1.num_batches_tracked").unwrap();
        assert_eq!((nbt.dtype(), nbt.shape()), (Dtype::I64, &[][..]));
        assert_eq!(nbt.data(), 3i64.to_le_bytes());
        let ck = read(&p).unwrap();
        assert_eq!(
            ck.tensors.keys().collect::<Vec<_>>(),
            [
                "0.bias",
                "0.weight",
                "1.bias",
                "1.num_batches_tracked",
                "1.running_mean",
                "1.running_var",
                "1.weight",
                "4.bias",
                "4.weight",
                "5.bias",
                "5.num_batches_tracked",
                "5.running_mean",
                "5.running_var",
                "5.weight"
            ]
        );
        let mut b = model(text, 2);
        ck.load_into(&mut b).unwrap();
        assert_eq!(
            a.forward(x.clone(), Mode::Eval).unwrap(),
            b.forward(x, Mode::Eval).unwrap()
        );
        // The running statistics are buffers: optimisers, which visit parameters, never see them.
        let mut names = Vec::new();
        b.net()
            .visit_params("", &mut |n, _| names.push(n.to_string()));
        assert!(
            !names
                .iter()
                .any(|n| n.contains("running") || n.contains("tracked"))
        );
    }

    #[test]
    fn another_models_checkpoint_lists_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        save(&model(TEXT, 1), &p, &BTreeMap::new()).unwrap();
        let mut other = model("Conv2d(1,4,3), Flatten, Linear(64,3), ReLU, Linear(3,2)", 1);
        let e = read(&p)
            .unwrap()
            .load_into(&mut other)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'0.weight' is [2, 1, 3, 3], the model needs [4, 1, 3, 3]"),
            "{e}"
        );
        assert!(
            e.contains("missing '2.weight' [3, 64]") && e.contains("unexpected '3.weight'"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_truncated_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        save(&model(TEXT, 1), &p, &BTreeMap::new()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(
            read(&p)
                .unwrap_err()
                .to_string()
                .contains("not a valid safetensors file")
        );
        let e = read(&dir.path().join("none.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.safetensors: No such file"), "{e}");
    }

    #[test]
    fn nan_weights_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut m = model(TEXT, 1);
        m.net().visit_params("", &mut |n, p| {
            if n == "3.bias" {
                p.value.data_mut()[1] = f32::NAN
            }
        });
        save(&m, &p, &BTreeMap::new()).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("tensor '3.bias' holds a non-finite value (NaN) at index 1"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_input_shape_is_an_error_and_none_is_none() {
        let mut ck = Checkpoint {
            path: "m.safetensors".into(),
            tensors: BTreeMap::new(),
            metadata: HashMap::new(),
        };
        assert_eq!(ck.input_shape().unwrap(), None);
        for bad in ["[1, 0]", "[]", "1,28,28", "[-1]"] {
            ck.metadata.insert(INPUT_SHAPE_KEY.into(), bad.into());
            let e = ck.input_shape().unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "checkpoint m.safetensors: metadata 'input_shape' is \"{bad}\"; expected positive integers like [1, 28, 28]"
                )
            );
        }
    }

    #[test]
    fn half_precision_converts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
