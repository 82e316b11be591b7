//! `predict` on images as people make them, for a model that is not 28×28: the checkpoint records the
//! input shape and what the training images looked like, and a canvas export or a photo of paper
//! is prepared to match.

use scratchnet::checkpoint;
use scratchnet::data::input::{Background, Fit, InputInfo};
use scratchnet::data::npy::write_npy_f32;
use std::path::Path;

mod common;
use common::{labels_npy, ok};

/// `n` 14×14 light-on-black bars, vertical (class 0) or horizontal (class 1), 10 pixels long, at
/// varying places: `--data` for them.
fn bars(dir: &Path, n: usize) -> String {
    let mut x = vec![0f32; n * 196];
    let mut y = Vec::new();
    for i in 0..n {
        let (class, at) = (i % 2, 3 + (i / 2) % 8);
        for k in 2..12 {
            let (r, c) = if class == 0 { (k, at) } else { (at, k) };
            x[i * 196 + r * 14 + c] = 1.0;
        }
        y.push(class as i64);
    }
    write_npy_f32(&dir.join("x.npy"), &[n, 1, 14, 14], &x).unwrap();
    labels_npy(&dir.join("y.npy"), &y);
    format!(
        "{}:{}",
        dir.join("x.npy").display(),
        dir.join("y.npy").display()
    )
}

#[test]
fn a_14x14_model_predicts_a_canvas_export_and_a_photo_of_paper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = d.join("bars.safetensors");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ok(&[
        "train",
        "--data",
        &bars(d, 200),
        "--model",
        "Flatten, Linear(196,2)",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "10",
        "--out",
        &s(&ck),
        "--quiet",
    ]);
    let info = InputInfo::of(&checkpoint::read(&ck).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(info.shape, [1, 14, 14]);
    let style = info.image.unwrap();
    assert_eq!(style.background, Some(Background::Dark));
    assert!(
        matches!(style.fit, Fit::Digit { extent } if (extent - 10.0 / 14.0).abs() < 1e-6),
        "{style:?}"
    );

    // A canvas export: 150×100, transparent, a dark vertical stroke off to the left.
    let canvas = image::RgbaImage::from_fn(150, 100, |x, y| {
        let on = (30..38).contains(&x) && (15..85).contains(&y);
        image::Rgba([0, 0, 0, if on { 255 } else { 0 }])
    });
    let canvas_path = d.join("canvas.png");
    canvas.save(&canvas_path).unwrap();
    // A photo of paper: greyish white, a dark horizontal stroke, 80×120.
    let paper = image::RgbImage::from_fn(80, 120, |x, y| {
        let on = (10..70).contains(&x) && (70..78).contains(&y);
        image::Rgb(if on { [40, 35, 30] } else { [210, 205, 200] })
    });
    let paper_path = d.join("paper.jpg");
    paper.save(&paper_path).unwrap();
    let out = ok(&[
        "predict",
        "--checkpoint",
        &s(&ck),
        "--classes",
        "vertical,horizontal",
        "--top",
        "1",
        &s(&canvas_path),
        &s(&paper_path),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("canvas.png: vertical "), "{out}");
    assert!(lines[1].contains("paper.jpg: horizontal "), "{out}");
}
