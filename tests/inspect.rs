//! `scratchnet gradcheck` and `scratchnet compare`, run as a user runs them.

mod common;
use common::{fails, ok};

#[test]
fn gradcheck_prints_every_layer_and_the_loss_and_passes_a_correct_model() {
    let out = ok(&[
        "gradcheck",
        "--model",
        "Conv2d(1,4,3), Tanh, MaxPool2d(2), Flatten, Linear(36,5), Sigmoid",
        "--input-shape",
        "1,8,8",
        "--loss",
        "cross-entropy",
    ]);
    for layer in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "loss "] {
        assert!(out.lines().any(|l| l.starts_with(layer)), "{layer}: {out}");
    }
    for grad in ["∂L/∂x", "∂L/∂weight", "∂L/∂bias", "∂L/∂prediction"] {
        assert!(out.contains(grad), "{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(
        out.ends_with("every gradient agrees with central differences\n"),
        "{out}"
    );
}

#[test]
fn gradcheck_refuses_bad_models_and_flags_in_one_line() {
    for (model, flag, value, want) in [
        ("Linear(3,4), Linear(5,2)", "--batch", "2", "layer 1"),
        ("Linear(3,4)", "--loss", "hinge", "hinge"),
        ("Linear(3,4)", "--batch", "0", "--batch"),
    ] {
        let e = fails(&[
            "gradcheck",
            "--model",
            model,
            "--input-shape",
            "3",
            flag,
            value,
        ]);
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn compare_without_pytorch_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    scratchnet::data::npy::write_npy_f32(&x, &[1, 2], &[0.5, -1.0]).unwrap();
    // An interpreter that is missing, and one that cannot import torch.
    for python in ["/nonexistent/python3", "false"] {
        let out = common::bin()
            .env("SCRATCHNET_PYTHON", python)
            .args([
                "compare",
                "--checkpoint",
                "any.safetensors",
                "--input",
                x.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("pip install torch numpy safetensors"), "{err}");
    }
}

#[test]
fn train_writes_tensorboard_events_that_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::toy_data(dir.path(), 60);
    let logs = dir.path().join("tb");
    ok(&[
        "train",
        "--model",
        "Linear(4,8), ReLU, Linear(8,3)",
        "--data",
        &data,
        "--batch-size",
        "4",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--out",
        dir.path().join("m.safetensors").to_str().unwrap(),
        "--tensorboard",
        logs.to_str().unwrap(),
        "--quiet",
    ]);
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let events = scratchnet::tensorboard::read::events(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(events[0].file_version, "brain.Event:2");
    let scalar = |tag: &str| -> Vec<(i64, f32)> {
        events
            .iter()
            .flat_map(|e| {
                e.scalars
                    .iter()
                    .filter(|s| s.0 == tag)
                    .map(move |s| (e.step, s.1))
            })
            .collect()
    };
    // 60 samples in batches of 4: 15 batches an epoch, the running loss every batch.
    let epoch_loss = scalar("train/loss");
    assert_eq!(
        epoch_loss.iter().map(|s| s.0).collect::<Vec<_>>(),
        [15, 30, 45]
    );
    assert!(epoch_loss[2].1 < epoch_loss[0].1, "{epoch_loss:?}");
    assert_eq!(scalar("train/running_loss").len(), 45);
    assert_eq!(scalar("lr"), [(15, 0.05), (30, 0.05), (45, 0.05)]);
    assert_eq!(scalar("train/accuracy").len(), 3);
    let histograms: Vec<(&str, f64)> = events
        .iter()
        .flat_map(|e| e.histograms.iter().map(|h| (h.0.as_str(), h.1)))
        .collect();
    // Per epoch: 4 weight and 4 gradient histograms.
    assert_eq!(histograms.len(), 3 * 8);
    assert!(
        histograms.contains(&("gradients/2.weight", 24.0)),
        "{histograms:?}"
    );
    // The gradient norm every batch (15 an epoch, every ceil(15/20) = 1), all positive.
    let norms = scalar("grad_norm/batch");
    assert_eq!(norms.len(), 45);
    assert!(
        norms.iter().all(|n| n.1 > 0.0 && n.1.is_finite()),
        "{norms:?}"
    );
    assert!(
        histograms.contains(&("weights/0.weight", 32.0)),
        "{histograms:?}"
    );
    assert!(
        histograms.contains(&("weights/2.bias", 3.0)),
        "{histograms:?}"
    );
}

#[test]
fn layer_stats_sample_weights_gradients_and_the_update_actually_taken() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::toy_data(dir.path(), 60);
    let csv = dir.path().join("stats.csv");
    ok(&[
        "train",
        "--model",
        "Linear(4,8), Tanh, Linear(8,3)",
        "--data",
        &data,
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--out",
        dir.path().join("m.safetensors").to_str().unwrap(),
        "--layer-stats",
        csv.to_str().unwrap(),
        "--stats-every",
        "5",
        "--quiet",
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(scratchnet::layer_stats::HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 10), "{text}");
    let params: Vec<&Vec<&str>> = rows.iter().filter(|r| r[2] == "param").collect();
    let acts: Vec<&Vec<&str>> = rows.iter().filter(|r| r[2] == "activation").collect();
    // 15 batches an epoch, sampled at batches 1, 6, 11; 4 parameter tensors and 3 layers; 2 epochs.
    assert_eq!((params.len(), acts.len()), (3 * 4 * 2, 3 * 3 * 2));
    assert_eq!(&params[4][..4], ["1", "6", "param", "0.weight"]);
    for r in &params {
        let v: Vec<f64> = r[4..9].iter().map(|x| x.parse().unwrap()).collect();
        let (wm, ws, gm, gs, ratio) = (v[0], v[1], v[2], v[3], v[4]);
        // Plain SGD steps by lr·g, so the update ratio is lr·‖g‖/‖w‖ (RMS over the tensor).
        let want = 0.05 * (gm * gm + gs * gs).sqrt() / (wm * wm + ws * ws).sqrt();
        assert!(
            (ratio - want).abs() <= 1e-3 * want + 1e-9,
            "{r:?}: {ratio} vs {want}"
        );
    }
    // The Tanh layer's output: a spread in (-1, 1) and a saturated fraction in [0, 1].
    let tanh = acts.iter().find(|r| r[3].starts_with("1 Tanh")).unwrap();
    let std: f64 = tanh[5].parse().unwrap();
    let saturated: f64 = tanh[9].parse().unwrap();
    assert!(
        std > 0.0 && std < 1.0 && (0.0..=1.0).contains(&saturated),
        "{tanh:?}"
    );
    assert!(
        acts.iter()
            .filter(|r| r[3].starts_with("0 Linear"))
            .all(|r| r[9].is_empty())
    );
}
