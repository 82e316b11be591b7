//! Issue 3 end to end on the real Fashion-MNIST (installed by the README's set-up: Debian's
//! `dataset-fashion-mnist`): a short training that must reach a real accuracy, then history,
//! curves, evaluation, a sample shown and a PNG classified — all through the binary.
//!
//! The bar: the small CNN on the first 10,000 images for 2 epochs reached 74.9–78.8% test
//! accuracy over seeds 0–4 (measured 2026-11-23); chance is 10%. We ask for 72%.

use std::path::Path;

mod common;
use common::{ok, s};

#[test]
fn short_training_on_fashion_mnist_then_eval_show_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ck, history, plot) = (
        d.join("m.safetensors"),
        d.join("h.json"),
        d.join("curves.png"),
    );
    let out = ok(&[
        "train",
        "--data",
        "fashion-mnist",
        "--model",
        "seed-cnn",
        "--limit",
        "10000",
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--lr",
        "0.1",
        "--seed",
        "0",
        "--out",
        s(&ck),
        "--history",
        s(&history),
        "--plot",
        s(&plot),
    ]);
    assert!(
        out.contains("total parameters: 3554"),
        "the model is summarised first: {out}"
    );
    assert!(
        out.contains("accuracy ") && out.contains("/10000 ("),
        "{out}"
    );

    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    let rows = h.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let acc = rows[1]["test_accuracy"].as_f64().unwrap();
    assert!(
        acc >= 0.72,
        "test accuracy after 2 epochs on 10,000 images: {acc}"
    );
    assert!(rows[1]["train_loss"].as_f64().unwrap() < rows[0]["train_loss"].as_f64().unwrap());
    for key in [
        "epoch",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "train_seconds",
        "test_seconds",
    ] {
        assert!(rows[0].get(key).is_some(), "history has {key}");
    }
    let curves = image::open(&plot).unwrap();
    assert!(curves.width() > 500, "a real picture");

    // eval agrees with the history's last test accuracy and names the classes.
    let confusion = d.join("confusion.png");
    let e = ok(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--data",
        "fashion-mnist",
        "--plot",
        s(&confusion),
    ]);
    let right = (acc * 10000.0).round() as usize;
    assert!(e.contains(&format!("accuracy {right}/10000")), "{e}");
    assert!(
        e.contains("T-shirt/top") && e.contains("Ankle boot") && e.contains("confusion matrix"),
        "{e}"
    );
    assert!(confusion.exists());

    // The first test image, shown with its label and the prediction ...
    let sample = d.join("sample.png");
    let shown = ok(&[
        "show",
        "--data",
        "fashion-mnist",
        "--index",
        "0",
        "--checkpoint",
        s(&ck),
        "--out",
        s(&sample),
    ]);
    assert!(
        shown.contains("label: Ankle boot") && shown.contains("predicted: "),
        "{shown}"
    );
    assert!(shown.contains('█'), "drawn in the terminal");
    let predicted = shown
        .split("predicted: ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .to_string();

    // ... and the same image as a PNG of another size gives the same top class.
    let data = scratchnet::data::source::load(&scratchnet::data::source::DataArgs {
        data: Some("fashion-mnist".into()),
        ..Default::default()
    })
    .unwrap();
    let x = data.1.unwrap().x.rows(0, 1);
    let px: Vec<u8> = x.data()[..784]
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let img = image::GrayImage::from_raw(28, 28, px).unwrap();
    let big = d.join("boot.png");
    image::imageops::resize(&img, 112, 112, image::imageops::FilterType::Nearest)
        .save(&big)
        .unwrap();
    let p = ok(&["predict", "--checkpoint", s(&ck), s(&big)]);
    let top = p.split(": ").nth(1).unwrap();
    assert!(top.starts_with(&predicted), "predict {p} vs show {shown}");

    // Drawings made for the README (dark strokes on white, so --invert), of other sizes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let drawn = ok(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--invert",
        s(&root.join("trouser.png")),
        s(&root.join("bag.png")),
    ]);
    assert!(
        drawn.contains("trouser.png: Trouser ") && drawn.contains("bag.png: Bag "),
        "{drawn}"
    );
}
