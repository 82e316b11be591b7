//! Every layer, loss and optimiser against PyTorch, on whole small models.
//!
//! Fixtures: `tests/fixtures/golden/<case>/`, made by `python3 tools/make_fixtures.py` (the exact
//! call is in each `case.json`). Per case we check the forward output on all samples, the loss,
//! ∂L/∂x and ∂L/∂θ of the first batch, and the weights after every optimiser step of the run.
//! Cases with BatchNorm, Residual and the newer activations come from
//! `python3 tools/make_layer_fixtures.py`: their running statistics after the run are checked as
//! weights are, and their trained model's evaluation output too.

use rand::SeedableRng;
use scratchnet::checkpoint::{self, Checkpoint};
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::data::npy::{NpyData, read_npy};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::train::{Schedule, Trainer};
use scratchnet::{Layer, Loss, Mode, Model, Tensor};
use std::path::{Path, PathBuf};

#[derive(serde::Deserialize)]
struct Case {
    model: String,
    input_shape: Vec<usize>,
    loss: String,
    optimizer: Config,
    batch_size: usize,
    steps: u64,
    epochs: usize,
    command: String,
}

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(case)
}

fn tensor(path: &Path) -> Tensor {
    let a = read_npy(path).unwrap();
    match a.data {
        NpyData::Float(v) => Tensor::new(&a.shape, v).unwrap(),
        NpyData::Int(v) => {
            Tensor::new(&a.shape, v.into_iter().map(|v| v as f32).collect()).unwrap()
        }
    }
}

/// Targets read as the CLI reads them (int64 `[N, T]` are per-step classes).
fn labels(path: &Path) -> Labels {
    scratchnet::data::source::read_targets(path).unwrap()
}

/// `|a − b| ≤ rel·max(1, |b|)` elementwise.
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= rel * b.abs().max(1.0),
            "{what}[{i}]: ours {a}, PyTorch {b}"
        );
    }
}

fn load(case: &Case, ck: &Checkpoint) -> Model {
    assert_eq!(ck.model_text(), Some(case.model.as_str()));
    let mut model = Model::build(
        &case.model,
        &case.input_shape,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    ck.load_into(&mut model).unwrap();
    model
}

fn check(name: &str) {
    let d = dir(name);
    let case: Case =
        serde_json::from_str(&std::fs::read_to_string(d.join("case.json")).unwrap()).unwrap();
    let ctx = format!("{name} (fixture from `{}`)", case.command);
    let init = checkpoint::read(&d.join("init.safetensors")).unwrap();
    let mut model = load(&case, &init);
    let loss: Loss = case.loss.parse().unwrap();
    let x = tensor(&d.join("x.npy"));
    let data = Dataset::new(x.clone(), labels(&d.join("y.npy"))).unwrap();

    // Forward on every sample.
    let out = model.predict(&x, 1000).unwrap();
    assert_close(
        &format!("{ctx}: forward"),
        out.data(),
        tensor(&d.join("out.npy")).data(),
        1e-4,
    );

    // Loss, ∂L/∂x and ∂L/∂θ of the first batch.
    let b = case.batch_size.min(data.len());
    let first = data.limit(b);
    let y = model
        .forward(first.x.rows(0, first.len()), Mode::train(0))
        .unwrap();
    let mut classes = Vec::new();
    let mut values = Tensor::default();
    let idx: Vec<usize> = (0..b).collect();
    let (l, grad) = loss
        .compute(y, first.targets(&idx, &mut classes, &mut values))
        .unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("loss.json")).unwrap()).unwrap();
    let want = want["loss"].as_f64().unwrap();
    assert!(
        (l - want).abs() <= 1e-4 * want.abs().max(1.0),
        "{ctx}: loss {l} vs {want}"
    );
    let grad_x = model.backward(grad).unwrap();
    assert_close(
        &format!("{ctx}: ∂L/∂x"),
        grad_x.data(),
        tensor(&d.join("grad_x.npy")).data(),
        1e-4,
    );
    if d.join("grads.safetensors").exists() {
        let grads = checkpoint::read(&d.join("grads.safetensors")).unwrap();
        model.net().visit_params("", &mut |n, p| {
            // Gradients are sums over the batch: compare relative to the tensor's largest entry.
            let want = grads.tensors[n].data();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let got: Vec<f32> = p.grad.data().iter().map(|v| v / scale).collect();
            let want: Vec<f32> = want.iter().map(|v| v / scale).collect();
            assert_close(&format!("{ctx}: ∂L/∂{n}"), &got, &want, 1e-4);
        });
    }

    // Weights after the run: the error relative to the update, ‖ours − torch‖ / ‖torch − init‖ ≤ 1e-3
    // per tensor, and every element within 1e-3 of the tensor's largest update. Adam gets 2e-2 for
    // single elements: where a gradient is near ε (here 63% of lenet's 7.weight gradients are 0 and a
    // few are ~1e-8 left over from cancellation), m̂/(√v̂ + ε) turns last-bit differences of the
    // gradient sum into visible differences of the step, as it would between two PyTorch backends.
    let schedule = Schedule {
        batch_size: case.batch_size,
        shuffle: false,
        seed: 0,
    };
    let optimizer = Optimizer::new(case.optimizer.clone()).unwrap();
    let mut trainer = Trainer::new(load(&case, &init), optimizer, loss, schedule);
    while trainer.position.epoch < case.epochs {
        trainer
            .run_epoch(&data, None, None, &mut |_, _, _| {})
            .unwrap();
    }
    assert_eq!(
        trainer.optimizer.steps, case.steps,
        "{ctx}: optimiser steps"
    );
    let elementwise = if matches!(case.optimizer, Config::Adam { .. }) {
        2e-2
    } else {
        1e-3
    };
    let after = checkpoint::read(&d.join("after.safetensors")).unwrap();
    // Parameters, then buffers (BatchNorm's running statistics and num_batches_tracked).
    let mut trained = Vec::new();
    let net = trainer.model.net();
    net.visit_params("", &mut |n, p| {
        trained.push((n.to_string(), p.value.clone()))
    });
    net.visit_buffers("", &mut |n, b| {
        trained.push((n.to_string(), b.value.clone()))
    });
    assert_eq!(trained.len(), after.tensors.len(), "{ctx}: state_dict size");
    for (n, value) in &trained {
        let (start, want) = (init.tensors[n].data(), after.tensors[n].data());
        let update = start
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            .max(1e-7);
        let norm =
            |v: &mut dyn Iterator<Item = f32>| v.map(|x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let err = norm(&mut value.data().iter().zip(want).map(|(a, b)| a - b));
        let moved = norm(&mut start.iter().zip(want).map(|(a, b)| a - b)).max(1e-12);
        assert!(
            err / moved <= 1e-3,
            "{ctx}: {n} after training: ‖ours − PyTorch‖ / ‖update‖ = {}",
            err / moved
        );
        for (i, (a, b)) in value.data().iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= elementwise * update + 1e-7,
                "{ctx}: {n}[{i}] after training: ours {a}, PyTorch {b} (largest update {update})"
            );
        }
    }

    // The trained model in evaluation (BatchNorm on its running statistics), where recorded.
    if d.join("out_after.npy").exists() {
        let out = trainer.model.predict(&x, 1000).unwrap();
        assert_close(
            &format!("{ctx}: forward after training"),
            out.data(),
            tensor(&d.join("out_after.npy")).data(),
            1e-4,
        );
    }
}

#[test]
fn mlp() {
    check("mlp");
}

#[test]
fn seed_cnn() {
    check("seed_cnn");
}

#[test]
fn lenet() {
    check("lenet");
}

#[test]
fn nielsen() {
    check("nielsen");
}

#[test]
fn conv_stride3_pad2() {
    check("conv_stride3_pad2");
}

#[test]
fn pools() {
    check("pools");
}

#[test]
fn leaky_tanh_mlp() {
    check("leaky_tanh_mlp");
}

#[test]
fn parallel() {
    check("parallel");
}

#[test]
fn regression() {
    check("regression");
}

#[test]
fn batchnorm1d_mlp() {
    check("bn1d_mlp");
}

#[test]
fn batchnorm1d_on_sequences_with_eps_and_momentum() {
    check("bn1d_sequence");
}

#[test]
fn batchnorm2d_cnn() {
    check("bn2d_cnn");
}

#[test]
fn residual_blocks_with_batchnorm_and_global_average_pool() {
    check("residual_bn");
}

#[test]
fn gelu_silu_elu_identity() {
    check("activations");
}

#[test]
fn adaptive_average_pool_with_uneven_windows() {
    check("adaptive_pool");
}

#[test]
fn embedding_select() {
    check("embedding_select");
}

#[test]
fn embedding_select_adam() {
    check("embedding_select_adam");
}

/// int64 ids `[N, T]`, a target per step: cross-entropy over all N·T positions.
#[test]
fn embedding_per_step_targets() {
    check("embedding_steps");
}

/// `Embedding(9, 6), LSTM(6, 8), Linear(8, 9)`: the LSTM's whole output sequence into the head,
/// logits `[N, T, C]` against per-step targets, Adam (`python3 tools/make_seq_fixtures.py`).
#[test]
fn embedding_lstm_per_step_targets() {
    check("embedding_lstm_steps");
}

/// `RNN`, `LSTM`, `GRU` (`python3 tools/make_rnn_fixtures.py`): tanh and relu, one and two layers,
/// one and two directions, with and without bias, each followed by `Select` and a `Linear` head.
#[test]
fn recurrent_layers() {
    for case in [
        "rnn_tanh",
        "rnn_relu_bi_2layer",
        "rnn_tanh_bi_embedding",
        "lstm",
        "lstm_bi_2layer",
        "gru_2layer",
        "gru_bi_nobias",
    ] {
        check(case);
    }
}
