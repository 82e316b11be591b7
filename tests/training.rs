//! Issue 12, items 2–4, through the command line: AdamW, RMSprop, every learning-rate schedule,
//! gradient clipping and label smoothing against PyTorch's runs (fixtures made by
//! `python3 tools/make_training_fixtures.py`), resume through a schedule, early stopping and
//! --save-best, and one-line errors.

use scratchnet::checkpoint;
use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, s, toy_data};

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/training")
        .join(name)
}

/// Runs a case's flags through `scratchnet train --init … --no-shuffle`; compares the weights with
/// PyTorch's within 1e-3 of the update size and each epoch's learning rate with PyTorch's.
fn like_pytorch(name: &str) {
    let g = case_dir(name);
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(g.join("case.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, history) = (
        dir.path().join("out.safetensors"),
        dir.path().join("h.json"),
    );
    let data = format!(
        "{}:{}",
        g.join("x.npy").display(),
        g.join("y.npy").display()
    );
    let init = g.join("init.safetensors");
    let mut args: Vec<String> = [
        "train",
        "--init",
        s(&init),
        "--data",
        &data,
        "--no-shuffle",
        "--quiet",
        "--out",
        s(&out),
        "--history",
        s(&history),
    ]
    .map(String::from)
    .to_vec();
    args.extend(
        case["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string()),
    );
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (start, ours, torch) = (
        checkpoint::read(&init).unwrap(),
        checkpoint::read(&out).unwrap(),
        checkpoint::read(&g.join("after.safetensors")).unwrap(),
    );
    for (key, want) in &torch.tensors {
        let update = start.tensors[key]
            .data()
            .iter()
            .zip(want.data())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(update > 0.0, "{name} {key}: PyTorch moved it");
        for (a, b) in ours.tensors[key].data().iter().zip(want.data()) {
            assert!(
                (a - b).abs() <= 1e-3 * update + 1e-7,
                "{name} {key}: ours {a}, PyTorch {b}, update {update}"
            );
        }
    }
    let h: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    for (epoch, (row, want)) in h.iter().zip(case["lrs"].as_array().unwrap()).enumerate() {
        let (got, want) = (row["lr"].as_f64().unwrap(), want.as_f64().unwrap());
        assert!(
            (got - want).abs() <= 1e-6 * want.abs(),
            "{name} epoch {}: lr {got}, PyTorch {want}",
            epoch + 1
        );
    }
}

#[test]
fn optimisers_match_pytorch() {
    for name in [
        "adamw",
        "adamw_default_decay",
        "rmsprop",
        "rmsprop_centered_momentum",
    ] {
        like_pytorch(name);
    }
}

#[test]
fn schedules_match_pytorch() {
    for name in [
        "steplr",
        "multisteplr",
        "exponentiallr",
        "cosine",
        "onecycle_adam",
        "onecycle_sgd",
    ] {
        like_pytorch(name);
    }
}

#[test]
fn clipping_and_label_smoothing_match_pytorch() {
    like_pytorch("clip");
    like_pytorch("label_smoothing");
}

/// Trains the toy problem with `flags` into `out`.
fn toy(data: &str, out: &Path, flags: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        data,
        "--model",
        "Linear(4,16), ReLU, Linear(16,3)",
        "--batch-size",
        "20",
        "--seed",
        "2",
        "--out",
        s(out),
    ];
    args.extend_from_slice(flags);
    ok(&args)
}

#[test]
fn an_interrupted_schedule_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 200);
    let flags = [
        "--optimizer",
        "adam",
        "--lr-schedule",
        "StepLR(step_size=2, gamma=0.5)",
        "--clip-grad-norm",
        "1.0",
        "--quiet",
    ];
    let one = d.join("one.safetensors");
    toy(&data, &one, &[&flags[..], &["--epochs", "6"]].concat());
    let two = d.join("two.safetensors");
    toy(&data, &two, &[&flags[..], &["--epochs", "3"]].concat());
    ok(&["train", "--resume", s(&two), "--epochs", "6", "--quiet"]);
    let (a, b) = (
        checkpoint::read(&one).unwrap(),
        checkpoint::read(&two).unwrap(),
    );
    assert_eq!(
        a.tensors, b.tensors,
        "3 + 3 epochs = 6 in one go, bit for bit"
    );
    // A one-cycle run is planned over its epochs: more of them on resume are refused.
    let cycle = d.join("cycle.safetensors");
    toy(
        &data,
        &cycle,
        &[
            "--lr-schedule",
            "OneCycleLR(max_lr=0.1)",
            "--epochs",
            "2",
            "--quiet",
        ],
    );
    let e = fails(&["train", "--resume", s(&cycle), "--epochs", "4"]);
    assert!(e.contains("OneCycleLR was planned for 20 steps"), "{e}");
    let e = fails(&[
        "train",
        "--resume",
        s(&two),
        "--epochs",
        "8",
        "--lr-schedule",
        "StepLR(2)",
    ]);
    assert!(
        e.contains("--lr-schedule \"StepLR(2)\" is not what the run being resumed used"),
        "{e}"
    );
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 200);
    let out = d.join("m.safetensors");
    let h = d.join("h.json");
    // A learning rate that overshoots: the test loss stops improving after a few epochs.
    let log = toy(
        &data,
        &out,
        &[
            "--lr",
            "3",
            "--epochs",
            "40",
            "--test-split",
            "0.3",
            "--early-stopping",
            "2",
            "--history",
            s(&h),
        ],
    );
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&h).unwrap()).unwrap();
    let losses: Vec<f64> = history
        .iter()
        .map(|r| r["test_loss"].as_f64().unwrap())
        .collect();
    let best = (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
    assert!(losses.len() < 40, "stopped early: {log}");
    assert_eq!(
        losses.len(),
        best + 1 + 2,
        "stopped 2 epochs after the best: {losses:?}"
    );
    assert!(
        log.contains(&format!(
            "the test loss has not improved for 2 epochs since epoch {}",
            best + 1
        )),
        "{log}"
    );
    let r = scratchnet::resume::Resume::read(&out).unwrap();
    assert_eq!(
        r.position.epoch,
        best + 1,
        "the checkpoint is the best epoch's"
    );

    // --save-best: all epochs run, the checkpoint holds the best one.
    let log = toy(
        &data,
        &out,
        &[
            "--lr",
            "3",
            "--epochs",
            "8",
            "--test-split",
            "0.3",
            "--save-best",
            "--history",
            s(&h),
        ],
    );
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&h).unwrap()).unwrap();
    let losses: Vec<f64> = history
        .iter()
        .map(|r| r["test_loss"].as_f64().unwrap())
        .collect();
    let best = (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
    assert_eq!(losses.len(), 8);
    assert!(
        log.contains(&format!("(epoch {}, the lowest test loss", best + 1)),
        "{log}"
    );
    let r = scratchnet::resume::Resume::read(&out).unwrap();
    assert_eq!(r.position.epoch, best + 1, "{losses:?}");
}

#[test]
fn bad_controls_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 40);
    let base = [
        "train",
        "--data",
        &data,
        "--model",
        "Linear(4,3)",
        "--out",
        "/tmp/never.safetensors",
    ];
    for (extra, want) in [
        (
            vec!["--lr-schedule", "StepLR(step_size=2"],
            "--lr-schedule, column 19: expected ',' or ')'",
        ),
        (
            vec!["--lr-schedule", "StepLR(2, gama=0.5)"],
            "has no argument 'gama'",
        ),
        (
            vec!["--lr-schedule", "Warmup(3)"],
            "unknown schedule 'Warmup'",
        ),
        (
            vec!["--lr-schedule", "OneCycleLR(max_lr=0.1, total_steps=3)"],
            "leaves no room for the run's",
        ),
        (
            vec!["--lr-schedule", "OneCycleLR(max_lr=0.1, max_momentum=0)"],
            "needs base_momentum and max_momentum > 0",
        ),
        (
            vec!["--optimizer", "rmsprop", "--momentum", "-0.5"],
            "must be ≥ 0",
        ),
        (
            vec!["--optimizer", "lamb"],
            "expected sgd, adam, adamw or rmsprop",
        ),
        (
            vec!["--clip-grad-norm", "0"],
            "--clip-grad-norm must be > 0",
        ),
        (
            vec!["--label-smoothing", "1.5"],
            "--label-smoothing must be in [0, 1]",
        ),
        (
            vec!["--loss", "mse", "--label-smoothing", "0.1"],
            "--label-smoothing applies to cross-entropy",
        ),
        (
            vec!["--early-stopping", "3"],
            "watch the test loss, and this data has no test split",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let e = fails(&args);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
}
