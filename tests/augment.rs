//! `--augment` through the real binary: resume continues the same augmentation stream, the result
//! does not depend on `--threads`, the test pass and `eval` see the images untransformed, and
//! non-image data is refused in one line.

use scratchnet::checkpoint;
use scratchnet::data::npy::write_npy_f32;
use std::path::Path;

mod common;
use common::{fails, labels_npy, ok, s, toy_data};

const AUGMENT: &str = "RandomCrop(8, padding=2), RandomHorizontalFlip(), RandomAffine(degrees=10, translate=(0.1, 0.1))";

/// 60 images `[1, 8, 8]` of 2 classes (a bright left or right half, with noise) as `X.npy:Y.npy`.
fn images(dir: &Path) -> String {
    let n = 60;
    let x: Vec<f32> = (0..n * 64)
        .map(|i| {
            let (k, col) = (i / 64, i % 8);
            let bright = (col < 4) == (k % 2 == 0);
            f32::from(u8::from(bright)) * 0.7 + ((i * 7919 % 101) as f32 / 404.0)
        })
        .collect();
    write_npy_f32(&dir.join("x.npy"), &[n, 1, 8, 8], &x).unwrap();
    labels_npy(
        &dir.join("y.npy"),
        &(0..n as i64).map(|k| k % 2).collect::<Vec<_>>(),
    );
    format!("{}:{}", s(&dir.join("x.npy")), s(&dir.join("y.npy")))
}

/// The `train` arguments of these runs, then `extra`.
fn args<'a>(data: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let model = "Conv2d(1,4,3,padding=1), ReLU, Flatten, Linear(256,2)";
    let base = [
        "train",
        "--data",
        data,
        "--model",
        model,
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--lr",
        "0.05",
        "--test-split",
        "0.25",
        "--out",
        s(out),
    ];
    [&base[..], extra].concat()
}

fn train(data: &str, out: &Path, extra: &[&str]) -> String {
    ok(&args(data, out, extra))
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = checkpoint::read(path).unwrap();
    ck.tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.data().to_vec()))
        .collect()
}

#[test]
fn resume_continues_the_same_augmentation_and_threads_do_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path());
    let p = |n: &str| dir.path().join(n);
    train(
        &data,
        &p("two.safetensors"),
        &["--epochs", "2", "--augment", AUGMENT],
    );
    train(
        &data,
        &p("one.safetensors"),
        &["--epochs", "1", "--augment", AUGMENT],
    );
    // The flag comes back from the checkpoint; giving it again (the same) is accepted.
    ok(&[
        "train",
        "--resume",
        s(&p("one.safetensors")),
        "--epochs",
        "2",
        "--augment",
        AUGMENT,
        "--out",
        s(&p("resumed.safetensors")),
    ]);
    assert_eq!(
        weights(&p("two.safetensors")),
        weights(&p("resumed.safetensors"))
    );
    // The same run on one thread.
    let one_thread = p("threads1.safetensors");
    let run = args(&data, &one_thread, &["--epochs", "2", "--augment", AUGMENT]);
    ok(&[&["--threads", "1"][..], &run].concat());
    assert_eq!(
        weights(&p("two.safetensors")),
        weights(&p("threads1.safetensors"))
    );
    // Augmentation changed the run.
    train(&data, &p("plain.safetensors"), &["--epochs", "2"]);
    assert_ne!(
        weights(&p("two.safetensors")),
        weights(&p("plain.safetensors"))
    );
    // Another --augment is another run.
    let e = fails(&[
        "train",
        "--resume",
        s(&p("one.safetensors")),
        "--epochs",
        "2",
        "--augment",
        "RandomHorizontalFlip()",
    ]);
    assert!(
        e.contains("--augment \"RandomHorizontalFlip()\" is not what the run being resumed used"),
        "{e}"
    );
}

#[test]
fn test_pass_and_eval_see_the_images_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path());
    let out = dir.path().join("m.safetensors");
    let history = dir.path().join("h.json");
    train(
        &data,
        &out,
        &[
            "--epochs",
            "1",
            "--augment",
            "RandomAffine(180)",
            "--history",
            s(&history),
        ],
    );
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    let recorded = h[0]["test_loss"].as_f64().unwrap();
    let e = ok(&[
        "eval",
        "--checkpoint",
        s(&out),
        "--data",
        &data,
        "--test-split",
        "0.25",
    ]);
    assert!(
        e.contains(&format!("loss {recorded:.4}")),
        "{e} vs {recorded}"
    );
}

#[test]
fn bad_augment_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let table = toy_data(dir.path(), 20);
    let e = fails(&[
        "train",
        "--data",
        &table,
        "--model",
        "Linear(4,3)",
        "--epochs",
        "1",
        "--augment",
        "RandomHorizontalFlip()",
    ]);
    assert!(
        e.contains("its transforms take images [C, H, W]; these samples are [4]"),
        "{e}"
    );
    let data = images(dir.path());
    let out = dir.path().join("m.safetensors");
    for (augment, says) in [
        ("RandomCrop(6)", "would make 6×6 images from 8×8 ones"),
        (
            "RandomFlip()",
            "unknown transform 'RandomFlip' (known: RandomCrop,",
        ),
        (
            "RandomAffine(10, rotate=3)",
            "RandomAffine has no argument 'rotate'",
        ),
    ] {
        let model = "Flatten, Linear(64,2)";
        let e = fails(&[
            "train",
            "--data",
            &data,
            "--model",
            model,
            "--epochs",
            "1",
            "--augment",
            augment,
            "--out",
            s(&out),
        ]);
        assert!(e.contains(says), "{e}");
    }
    assert!(!out.exists());
}
