//! The command line, run as a user runs it: the training contract against PyTorch's numbers, resume,
//! and one-line errors with a non-zero exit for bad input.

use scratchnet::checkpoint;
use scratchnet::data::npy::{NpyData, read_npy, write_npy_f32};
use std::path::Path;

mod common;
use common::{fails, golden, labels_npy, ok, toy_data};

fn floats(path: &Path) -> Vec<f32> {
    match read_npy(path).unwrap().data {
        NpyData::Float(v) => v,
        NpyData::Int(_) => panic!("{} holds integers", path.display()),
    }
}

/// Trains a golden case through the CLI contract and compares the weights with PyTorch's.
fn train_like_pytorch(case: &str, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let g = golden(case);
    let out = dir.path().join("out.safetensors");
    let data = format!(
        "{}:{}",
        g.join("x.npy").display(),
        g.join("y.npy").display()
    );
    let init = g.join("init.safetensors");
    let mut args = vec![
        "train",
        "--init",
        init.to_str().unwrap(),
        "--data",
        &data,
        "--no-shuffle",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(flags);
    ok(&args);
    let ours = checkpoint::read(&out).unwrap();
    let (start, torch) = (
        checkpoint::read(&init).unwrap(),
        checkpoint::read(&g.join("after.safetensors")).unwrap(),
    );
    assert_eq!(ours.model_text(), start.model_text());
    for (name, want) in &torch.tensors {
        let update = start.tensors[name]
            .data()
            .iter()
            .zip(want.data())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        for (a, b) in ours.tensors[name].data().iter().zip(want.data()) {
            assert!(
                (a - b).abs() <= 1e-3 * update + 1e-7,
                "{case} {name}: ours {a}, PyTorch {b}, update {update}"
            );
        }
    }
    // PyTorch's strict load_state_dict wants exactly the state_dict keys.
    assert_eq!(
        ours.tensors.keys().collect::<Vec<_>>(),
        torch.tensors.keys().collect::<Vec<_>>()
    );
    // The trained model's predictions in evaluation (BatchNorm on its running statistics).
    if g.join("out_after.npy").exists() {
        let pred = dir.path().join("pred.npy");
        ok(&[
            "predict",
            "--checkpoint",
            out.to_str().unwrap(),
            "--input",
            g.join("x.npy").to_str().unwrap(),
            "--output",
            pred.to_str().unwrap(),
        ]);
        for (a, b) in floats(&pred).iter().zip(&floats(&g.join("out_after.npy"))) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{case} after training: {a} vs {b}"
            );
        }
    }
}

#[test]
fn train_matches_pytorch_batchnorm_residual_and_new_layers() {
    let sgd = |lr, momentum, epochs, batch| {
        let flags = [
            "--lr",
            lr,
            "--momentum",
            momentum,
            "--epochs",
            epochs,
            "--batch-size",
            batch,
        ];
        flags.to_vec()
    };
    let ce = ["--loss", "cross-entropy"];
    let mse = ["--loss", "mse"];
    for (case, loss, flags) in [
        ("bn1d_mlp", ce, sgd("0.1", "0.9", "2", "4")),
        ("bn1d_sequence", mse, sgd("0.05", "0", "3", "3")),
        ("bn2d_cnn", ce, sgd("0.05", "0.9", "2", "5")),
        ("activations", mse, sgd("0.1", "0", "2", "5")),
        ("adaptive_pool", mse, sgd("0.1", "0", "2", "4")),
        (
            "residual_bn",
            ce,
            vec![
                "--optimizer",
                "adam",
                "--lr",
                "0.01",
                "--epochs",
                "2",
                "--batch-size",
                "4",
            ],
        ),
    ] {
        train_like_pytorch(case, &[&loss[..], &flags].concat());
    }
}

#[test]
fn train_matches_pytorch_sgd_momentum_cross_entropy() {
    train_like_pytorch(
        "seed_cnn",
        &[
            "--loss",
            "cross-entropy",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--momentum",
            "0.9",
            "--epochs",
            "2",
            "--batch-size",
            "5",
        ],
    );
}

#[test]
fn train_matches_pytorch_nesterov_weight_decay_mse_strided_padded_conv() {
    train_like_pytorch(
        "conv_stride3_pad2",
        &[
            "--loss",
            "mse",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
            "--nesterov",
            "--weight-decay",
            "0.001",
            "--epochs",
            "2",
            "--batch-size",
            "4",
        ],
    );
}

#[test]
fn train_matches_pytorch_quadratic_cost() {
    train_like_pytorch(
        "nielsen",
        &[
            "--loss",
            "quadratic",
            "--lr",
            "3.0",
            "--epochs",
            "1",
            "--batch-size",
            "10",
        ],
    );
}

#[test]
fn train_matches_pytorch_adam_mse_pools_softmax() {
    train_like_pytorch(
        "pools",
        &[
            "--loss",
            "mse",
            "--optimizer",
            "adam",
            "--lr",
            "0.01",
            "--beta1",
            "0.8",
            "--beta2",
            "0.99",
            "--eps",
            "1e-6",
            "--weight-decay",
            "0.01",
            "--epochs",
            "2",
            "--batch-size",
            "4",
        ],
    );
}

#[test]
fn predict_writes_pytorch_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // The per-step cases: int64 ids [N, T] in, logits [N, T, C] out.
    for case in [
        "lenet",
        "parallel",
        "regression",
        "embedding_steps",
        "embedding_lstm_steps",
    ] {
        let g = golden(case);
        let out = dir.path().join(format!("{case}.npy"));
        ok(&[
            "predict",
            "--checkpoint",
            g.join("init.safetensors").to_str().unwrap(),
            "--input",
            g.join("x.npy").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        let (got, want) = (floats(&out), floats(&g.join("out.npy")));
        assert_eq!(
            read_npy(&out).unwrap().shape,
            read_npy(&g.join("out.npy")).unwrap().shape
        );
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{case}: {a} vs {b}"
            );
        }
    }
}

/// Small classification data in `dir`: `x.npy` (n, 4) float32 and `y.npy` (n,) int64 with 3 classes.
#[test]
fn resume_equals_one_go_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 90);
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let common = [
        "--data",
        &data,
        "--model",
        "Linear(4,16), BatchNorm1d(16), ReLU, Dropout(0.2), Linear(16,3)",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "8",
        "--seed",
        "5",
        "--quiet",
    ];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [&["train"][..], common, extra].concat()
    }
    let (one, half) = (p("one.safetensors"), p("half.safetensors"));
    ok(&with(&common, &["--epochs", "4", "--out", &one]));
    ok(&with(&common, &["--epochs", "2", "--out", &half]));
    // The data flags come from the checkpoint.
    ok(&[
        "train",
        "--resume",
        &p("half.safetensors"),
        "--epochs",
        "4",
        "--out",
        &p("resumed.safetensors"),
        "--quiet",
    ]);
    let (a, b) = (
        checkpoint::read(Path::new(&p("one.safetensors"))).unwrap(),
        checkpoint::read(Path::new(&p("resumed.safetensors"))).unwrap(),
    );
    assert_eq!(a.tensors, b.tensors);
    // BatchNorm's running statistics went through the checkpoint too.
    assert_eq!(a.tensors["1.num_batches_tracked"].data(), &[48.0]);
}

#[test]
fn summary_prints_shapes_and_parameters() {
    let s = ok(&["summary", "--model", "lenet", "--input-shape", "1,28,28"]);
    assert!(
        s.contains("MaxPool2d(kernel_size=2, stride=2")
            && s.contains("[64, 7, 7]")
            && s.contains("total parameters: 421642"),
        "{s}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 20);
    let d = dir.path();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let train = |extra: &[&str]| {
        fails(
            &[
                &[
                    "train",
                    "--data",
                    &data,
                    "--quiet",
                    "--out",
                    &p("o.safetensors"),
                ][..],
                extra,
            ]
            .concat(),
        )
    };

    let e = train(&["--model", "Linear(4,8), ReLU, Linear(9,3)"]);
    assert!(e.contains("layer 2 (Linear(in_features=9, out_features=3, bias=True)) expects input […, 9], got [8] from layer 1 (ReLU())"), "{e}");
    assert!(train(&["--model", "Linear(4,8), ReLU("]).contains("column"));
    assert!(train(&["--model", "Linear(4,8), Gelu"]).contains("unknown layer 'Gelu'"));
    assert!(train(&["--model", "Linear(4,3)", "--lr", "0"]).contains("--lr must be > 0"));
    assert!(
        train(&["--model", "Linear(4,3)", "--batch-size", "0"])
            .contains("--batch-size must be at least 1")
    );
    assert!(
        train(&["--model", "Linear(4,3)", "--epochs", "0"]).contains("--epochs must be at least 1")
    );
    assert!(train(&["--model", "Linear(4,2)"]).contains("out of range for a model with 2 outputs"));
    assert!(train(&["--model", "Linear(4,3)", "--loss", "hinge"]).contains("unknown loss 'hinge'"));
    assert!(
        train(&["--model", "Linear(4,3)", "--test-split", "1.5"])
            .contains("--test-split must be between 0 and 1")
    );

    // An .npy of the wrong dtype or shape.
    write_npy_f32(&d.join("y_float.npy"), &[20], &[0.0; 20]).unwrap();
    let e = fails(&[
        "train",
        "--data",
        &format!("{}:{}", p("x.npy"), p("y_float.npy")),
        "--model",
        "Linear(4,3)",
        "--out",
        &p("o.safetensors"),
    ]);
    assert!(
        e.contains("cross-entropy needs integer class labels"),
        "{e}"
    );
    let e = fails(&[
        "train",
        "--data",
        &format!("{}:{}", p("y.npy"), p("y.npy")),
        "--model",
        "Linear(4,3)",
        "--out",
        &p("o.safetensors"),
    ]);
    assert!(
        e.contains("has dtype <i8; inputs must be floats, uint8 pixels or integer token ids"),
        "{e}"
    );
    let e = fails(&[
        "train",
        "--data",
        &format!("{}:{}", p("x.npy"), p("y.npy")),
        "--model",
        "Conv2d(1,2,3)",
        "--out",
        &p("o.safetensors"),
    ]);
    assert!(
        e.contains("layer 0 (Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))) expects input [C=1"),
        "{e}"
    );
    let e = fails(&[
        "train",
        "--data",
        &format!("{}:{}", p("nope.npy"), p("y.npy")),
        "--model",
        "Linear(4,3)",
    ]);
    assert!(e.contains("nope.npy: No such file"), "{e}");

    // A checkpoint for another model.
    let ck = golden("seed_cnn").join("init.safetensors");
    let e = fails(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--model",
        "Conv2d(1,4,3), Flatten, Linear(2704,10)",
        "--input",
        golden("seed_cnn").join("x.npy").to_str().unwrap(),
        "--output",
        &p("y.npy"),
    ]);
    assert!(
        e.contains("does not fit the model")
            && e.contains("'0.weight' is [8, 1, 3, 3], the model needs [4, 1, 3, 3]"),
        "{e}"
    );
    // A PyTorch state dict cannot be resumed: it has no training state.
    assert!(
        fails(&["train", "--resume", ck.to_str().unwrap(), "--data", &data])
            .contains("holds no training state to resume")
    );
    let e = fails(&["summary", "--model", "mlp", "--input-shape", "1,x"]);
    assert!(e.contains("--input-shape must be positive integers"), "{e}");
}

/// A binary built without the `mpi` feature, started as one of several MPI ranks, says so rather
/// than training R independent copies that all write the same file.
#[cfg(not(feature = "mpi"))]
#[test]
fn several_mpi_ranks_need_the_mpi_feature() {
    let out = common::bin()
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .args(["train", "--model", "seed-cnn", "--data", "fashion-mnist"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("started as one of 2 MPI ranks, but this scratchnet was built without MPI"),
        "{err}"
    );
}

/// Token ids (as floats, `[N, T]`) through `Embedding, Select, Linear`: train, predict, and an id
/// out of range is a one-line error naming its row and step.
#[test]
fn embedding_model_trains_and_predicts_on_id_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let ids: Vec<f32> = (0..40).map(|i| ((i * 7) % 10) as f32).collect();
    write_npy_f32(Path::new(&p("x.npy")), &[8, 5], &ids).unwrap();
    let labels: Vec<i64> = (0..8).map(|n| ids[n * 5 + 4] as i64 % 3).collect();
    labels_npy(&dir.path().join("y.npy"), &labels);
    let data = format!("{}:{}", p("x.npy"), p("y.npy"));
    let model = "Embedding(10, 4, padding_idx=0), Select(1, -1), Linear(4, 3)";
    let (ckpt, out) = (p("m.safetensors"), p("out.npy"));
    ok(&[
        "train", "--model", model, "--data", &data, "--epochs", "2", "--quiet", "--out", &ckpt,
    ]);
    ok(&[
        "predict",
        "--checkpoint",
        &ckpt,
        "--input",
        &p("x.npy"),
        "--output",
        &out,
    ]);
    assert_eq!(read_npy(Path::new(&out)).unwrap().shape, vec![8, 3]);

    let mut bad = ids.clone();
    bad[2 * 5 + 3] = 10.0;
    write_npy_f32(Path::new(&p("bad.npy")), &[8, 5], &bad).unwrap();
    let err = fails(&[
        "predict",
        "--checkpoint",
        &ckpt,
        "--input",
        &p("bad.npy"),
        "--output",
        &out,
    ]);
    assert!(err.contains("id 10 at row 2, step 3"), "{err}");
}

/// int64 ids `[N, T]` and one target per step (tools/make_seq_fixtures.py): weights after training
/// as PyTorch's (predictions `[N, T, C]`: `predict_writes_pytorch_outputs`).
#[test]
fn train_matches_pytorch_embedding_per_step() {
    train_like_pytorch(
        "embedding_steps",
        &[
            "--loss",
            "cross-entropy",
            "--optimizer",
            "sgd",
            "--lr",
            "0.5",
            "--momentum",
            "0.9",
            "--epochs",
            "2",
            "--batch-size",
            "4",
        ],
    );
}

/// The recurrent golden cases through `train` and `predict`, with the flags `case.json` records.
#[test]
fn train_matches_pytorch_recurrent_layers() {
    let sgd = |lr| vec!["--optimizer", "sgd", "--lr", lr, "--momentum", "0.9"];
    let adam = vec!["--optimizer", "adam", "--lr", "0.01"];
    for (case, batch, optimizer) in [
        ("rnn_tanh", "4", sgd("0.1")),
        ("rnn_relu_bi_2layer", "4", adam.clone()),
        ("rnn_tanh_bi_embedding", "4", sgd("0.05")),
        ("lstm", "4", sgd("0.1")),
        ("lstm_bi_2layer", "3", adam.clone()),
        ("gru_2layer", "4", sgd("0.1")),
        ("gru_bi_nobias", "4", adam.clone()),
        // Embedding → LSTM → Linear on every step (char-lstm in small), per-step targets.
        ("embedding_lstm_steps", "4", adam.clone()),
    ] {
        let common = [
            "--loss",
            "cross-entropy",
            "--epochs",
            "2",
            "--batch-size",
            batch,
        ];
        train_like_pytorch(case, &[&common[..], &optimizer].concat());
    }
}

#[test]
fn train_matches_pytorch_embedding_select() {
    train_like_pytorch(
        "embedding_select",
        &[
            "--loss",
            "cross-entropy",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--momentum",
            "0.9",
            "--epochs",
            "2",
            "--batch-size",
            "4",
        ],
    );
}

/// Recurrent layers' bad input: a sequence of the wrong rank or width (in train and predict),
/// `batch_first=False` and an unknown `nonlinearity` are one-line errors.
#[test]
fn recurrent_bad_input_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let flat = toy_data(dir.path(), 6); // x.npy: [6, 4], y.npy: 3 classes
    let train = |model: &str, data: &str| {
        let out = p("m.safetensors");
        fails(&[
            "train", "--model", model, "--data", data, "--quiet", "--out", &out,
        ])
    };
    let e = train("LSTM(4, 3), Select(1, -1), Linear(3, 3)", &flat);
    assert!(
        e.contains("layer 0 (LSTM(4, 3, batch_first=True)) expects input [T, 4] (batch first: [N, T, features]), got [4]"),
        "{e}"
    );
    let seq: Vec<f32> = (0..6 * 5 * 4).map(|i| (i % 7) as f32 / 7.0).collect();
    write_npy_f32(Path::new(&p("seq.npy")), &[6, 5, 4], &seq).unwrap();
    let data = format!("{}:{}", p("seq.npy"), dir.path().join("y.npy").display());
    let e = train("LSTM(4, 3, batch_first=False)", &data);
    assert!(
        e.contains("'batch_first' must be True: scratchnet is always batch-first"),
        "{e}"
    );
    let e = train("RNN(4, 3, nonlinearity='sigmoid')", &data);
    assert!(e.contains("'nonlinearity' must be 'tanh' or 'relu'"), "{e}");

    let model = p("gru.safetensors");
    ok(&[
        "train",
        "--model",
        "GRU(4, 3), Select(1, -1), Linear(3, 3)",
        "--data",
        &data,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        &model,
    ]);
    let wide: Vec<f32> = vec![0.5; 6 * 5 * 3];
    write_npy_f32(Path::new(&p("wide.npy")), &[6, 5, 3], &wide).unwrap();
    for (input, got) in [("x.npy", "got [4]"), ("wide.npy", "got [5, 3]")] {
        let e = fails(&[
            "predict",
            "--checkpoint",
            &model,
            "--input",
            &p(input),
            "--output",
            &p("pred.npy"),
        ]);
        assert!(
            e.contains("(GRU(4, 3, batch_first=True)) expects input [T, 4]") && e.contains(got),
            "{e}"
        );
    }
}
