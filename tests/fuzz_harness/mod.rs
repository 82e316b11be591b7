//! What each fuzz target does with one input, shared by the fuzzers (`fuzz/fuzz_targets/`) and the
//! regression test (`tests/fuzz_regressions.rs`), so that a saved input replays exactly.
//!
//! Each function returns the error message when the library refuses the input, and panics (a
//! finding) when the library panics or its message is not one line.

use rand::SeedableRng;
use scratchnet::data::{idx, npy};
use scratchnet::layers::Layer;
use scratchnet::{Error, Mode, Model, Tensor, checkpoint, spec};
use std::path::Path;

/// The per-sample input shape the model-text target builds for.
pub const INPUT_SHAPE: [usize; 3] = [1, 28, 28];

/// The model the checkpoint target loads into (its parameters: `0.weight`, `0.bias`, `3.weight`,
/// `3.bias`), and its per-sample input shape.
pub const CHECKPOINT_MODEL: (&str, [usize; 3]) =
    ("Conv2d(1,2,3), ReLU, Flatten, Linear(32,3)", [1, 6, 6]);

/// Models at most this large (parameters, multiply-accumulates, values per layer output) also
/// run one forward and backward pass; larger ones would only make the fuzzer slow.
const RUN_LIMIT: usize = 100_000;

/// The message of `e`, checked to be one line.
fn message(e: Error) -> String {
    let msg = e.to_string();
    assert!(
        !msg.contains(['\n', '\r']),
        "error message is not one line: {msg:?}"
    );
    msg
}

/// `idx::parse_idx`, then the dimensions agree with the data.
pub fn idx(data: &[u8]) -> Result<(), String> {
    let idx = idx::parse_idx(data.to_vec(), Path::new("fuzz.idx")).map_err(message)?;
    assert_eq!(idx.dims.iter().product::<usize>(), idx.data.len());
    Ok(())
}

/// `npy::parse_npy`, then the shape agrees with the data.
pub fn npy(data: &[u8]) -> Result<(), String> {
    let a = npy::parse_npy(data, Path::new("fuzz.npy")).map_err(message)?;
    let len = match &a.data {
        npy::NpyData::Float(v) => v.len(),
        npy::NpyData::Int(v) => v.len(),
    };
    assert_eq!(a.shape.iter().product::<usize>(), len);
    Ok(())
}

/// `checkpoint::parse`, then `load_into` the fixed [`CHECKPOINT_MODEL`].
pub fn checkpoint(data: &[u8]) -> Result<(), String> {
    let ck = checkpoint::parse(data, Path::new("fuzz.safetensors")).map_err(message)?;
    let (text, shape) = CHECKPOINT_MODEL;
    let mut model = Model::build(text, &shape, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))
        .expect("the fixed model builds");
    ck.load_into(&mut model).map_err(message)?;
    Ok(())
}

/// `spec::parse` and `Model::build` for [`INPUT_SHAPE`]; a small model then runs one training
/// forward and backward pass on one sample.
pub fn model_text(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    spec::parse(&text).map_err(message)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = Model::build(&text, &INPUT_SHAPE, &mut rng).map_err(message)?;
    let summary = model.summary();
    let small = summary.iter().map(|r| r.params).sum::<usize>() <= RUN_LIMIT
        && model.net_ref().macs(&INPUT_SHAPE) <= RUN_LIMIT
        && summary
            .iter()
            .all(|r| r.output_shape.iter().product::<usize>() <= RUN_LIMIT);
    if small {
        let x: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
        let x = Tensor::new(&[1, 1, 28, 28], x).expect("784 values");
        let y = model.forward(x, Mode::train(1)).map_err(message)?;
        let ones = Tensor::new(y.shape(), vec![1.0; y.len()]).expect("same shape");
        let dx = model.backward(ones).map_err(message)?;
        assert_eq!(dx.shape(), [1, 1, 28, 28]);
    }
    Ok(())
}
