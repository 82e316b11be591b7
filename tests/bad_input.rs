//! Issue 5, part 1: every kind of bad input is a one-line error with exit code 1, never a panic.
//! Each case runs the real binary and reads the message (see `common::fails`).

use std::path::Path;

mod common;
use common::{fails, idx_bytes, idx_split, npy_bytes, ok, s, toy_data};

/// `train --data DIR` with a small model for 28×28 inputs.
fn train_dir(dir: &Path) -> String {
    let out = dir.join("o.safetensors");
    fails(&[
        "train",
        "--data",
        s(dir),
        "--model",
        "Flatten, Linear(784,10)",
        "--quiet",
        "--out",
        s(&out),
    ])
}

#[test]
fn idx_files() {
    let root = tempfile::tempdir().unwrap();
    let case = |name: &str, edit: &dyn Fn(&Path)| {
        let dir = root.path().join(name);
        idx_split(&dir, "train", 30);
        edit(&dir);
        train_dir(&dir)
    };
    let images = |d: &Path| d.join("train-images-idx3-ubyte");
    let labels = |d: &Path| d.join("train-labels-idx1-ubyte");

    let e = case("magic", &|d| {
        let mut b = std::fs::read(images(d)).unwrap();
        b[2] = 0x0D; // float32 instead of unsigned byte
        std::fs::write(images(d), b).unwrap();
    });
    assert!(e.contains("train-images-idx3-ubyte: expected element type 0x08 (unsigned byte) at byte 2, got 0x0d"), "{e}");

    let e = case("not-idx", &|d| {
        std::fs::write(images(d), b"hello, world").unwrap()
    });
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("byte"),
        "{e}"
    );

    let e = case("truncated", &|d| {
        let b = std::fs::read(images(d)).unwrap();
        std::fs::write(images(d), &b[..b.len() - 100]).unwrap();
    });
    assert!(
        e.contains("data is truncated: dims [30, 28, 28] need 23520 bytes from byte 16, got 23420"),
        "{e}"
    );

    let e = case("dims", &|d| {
        std::fs::write(images(d), idx_bytes(&[30, 28, 28], &[0; 30 * 784 + 5])).unwrap()
    });
    assert!(
        e.contains("5 unexpected bytes after the data"),
        "dims that disagree with the length: {e}"
    );

    let e = case("counts", &|d| {
        std::fs::write(labels(d), idx_bytes(&[20], &[1; 20])).unwrap()
    });
    assert!(e.contains("20 labels for the 30 images"), "{e}");

    let e = case("range", &|d| {
        std::fs::write(labels(d), idx_bytes(&[30], &[12; 30])).unwrap()
    });
    assert!(
        e.contains("label 12 (sample 0) is out of range for a model with 10 outputs"),
        "{e}"
    );

    let e = case("gzip", &|d| {
        std::fs::remove_file(images(d)).unwrap();
        std::fs::write(d.join("train-images-idx3-ubyte.gz"), b"\x1f\x8b\x08garbage").unwrap();
    });
    assert!(
        e.contains("train-images-idx3-ubyte.gz"),
        "a broken .gz names the file: {e}"
    );

    let e = case("one-half", &|d| std::fs::remove_file(labels(d)).unwrap());
    assert!(
        e.contains("has only one of train-images-idx3-ubyte and train-labels-idx1-ubyte"),
        "{e}"
    );

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(train_dir(&empty).contains("no train-images-idx3-ubyte"));

    let e = fails(&[
        "train",
        "--data",
        "mnist",
        "--data-dir",
        s(&empty),
        "--model",
        "mlp",
    ]);
    assert!(
        e.contains("mnist") && (e.contains("scratchnet download") || e.contains("found")),
        "{e}"
    );
}

#[test]
fn npy_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 8);
    let y = data.split_once(':').unwrap().1.to_string();
    let train = |x: &str| {
        let arg = format!("{x}:{y}");
        fails(&[
            "train",
            "--data",
            &arg,
            "--model",
            "Linear(4,3)",
            "--quiet",
            "--out",
            s(&d.join("o.safetensors")),
        ])
    };
    let write = |name: &str, bytes: Vec<u8>| {
        std::fs::write(d.join(name), bytes).unwrap();
        d.join(name).to_str().unwrap().to_string()
    };

    // float16 is read (tests/arrays.rs); complex numbers are not.
    let e = train(&write(
        "c8.npy",
        npy_bytes("<c8", false, &[8, 4], &[0; 256]),
    ));
    assert!(e.contains("unsupported dtype '<c8'"), "{e}");
    let e = train(&write(
        "big-endian.npy",
        npy_bytes(">f4", false, &[8, 4], &[0; 128]),
    ));
    assert!(e.contains("unsupported dtype '>f4'"), "{e}");
    let e = train(&write(
        "fortran.npy",
        npy_bytes("<f4", true, &[8, 4], &[0; 128]),
    ));
    assert!(e.contains("fortran_order is True, expected C order"), "{e}");
    let e = train(&write(
        "truncated.npy",
        npy_bytes("<f4", false, &[8, 4], &[0; 100]),
    ));
    assert!(
        e.contains("data is truncated: shape [8, 4] of '<f4' needs 128 bytes"),
        "{e}"
    );
    let e = train(&write(
        "shape.npy",
        npy_bytes("<f4", false, &[8, 5], &[0; 160]),
    ));
    assert!(e.contains("layer 0 (Linear(in_features=4, out_features=3, bias=True)) expects input […, 4], got [5]"), "{e}");
    let e = train(&write(
        "rows.npy",
        npy_bytes("<f4", false, &[6, 4], &[0; 96]),
    ));
    assert!(
        e.contains('6') && e.contains('8'),
        "inputs and labels of different counts: {e}"
    );
    let e = train(&write("garbage.npy", b"PK\x03\x04 this is a zip".to_vec()));
    assert!(e.contains("garbage.npy") && e.contains("magic"), "{e}");
    let e = train(s(&d.join("missing.npy")));
    assert!(e.contains("missing.npy: No such file"), "{e}");
}

#[test]
fn checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 16);
    let good = d.join("good.safetensors");
    ok(&[
        "train",
        "--data",
        &data,
        "--model",
        "Linear(4,3)",
        "--quiet",
        "--out",
        s(&good),
    ]);
    let x = data.split_once(':').unwrap().0;
    let predict = |ck: &Path| {
        fails(&[
            "predict",
            "--checkpoint",
            s(ck),
            "--input",
            x,
            "--output",
            s(&d.join("y.npy")),
        ])
    };
    let bytes = std::fs::read(&good).unwrap();

    let truncated = d.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    assert!(predict(&truncated).contains("not a valid safetensors file"));

    let corrupt = d.join("corrupt.safetensors");
    let mut c = bytes.clone();
    c[8..16].copy_from_slice(b"########");
    std::fs::write(&corrupt, c).unwrap();
    assert!(predict(&corrupt).contains("not a valid safetensors file"));

    // NaN weights: the same file with the first weight's bytes replaced by a NaN.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut n = bytes.clone();
    n[8 + header_len..8 + header_len + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = d.join("nan.safetensors");
    std::fs::write(&nan, n).unwrap();
    let e = predict(&nan);
    assert!(e.contains("holds a non-finite value (NaN)"), "{e}");

    let e = fails(&[
        "predict",
        "--checkpoint",
        s(&good),
        "--model",
        "Linear(4,5)",
        "--input",
        x,
        "--output",
        s(&d.join("y.npy")),
    ]);
    assert!(
        e.contains("'0.weight' is [3, 4], the model needs [5, 4]"),
        "another model: {e}"
    );
    let e = predict(&d.join("missing.safetensors"));
    assert!(e.contains("missing.safetensors"), "{e}");
}

#[test]
fn model_text_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 8);
    let out = dir.path().join("o.safetensors");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", &data, "--quiet", "--out", s(&out)];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let e = train(&["--model", "Linear(4,8), ReLU, Linear(4,3)"]);
    assert!(e.contains("layer 2 (Linear(in_features=4, out_features=3, bias=True)) expects input […, 4], got [8] from layer 1 (ReLU())"), "{e}");
    let e = train(&["--model", "Linear(4,8),, Linear(8,3)"]);
    assert!(e.contains("column 13"), "{e}");
    assert!(train(&["--model", "Linear(4,8), Swish"]).contains("unknown layer 'Swish'"));
    let e = train(&["--model", "Linear(4, -3)"]);
    assert!(
        e.contains("'out_features' must be a positive integer"),
        "{e}"
    );
    let e = train(&["--model", "Conv2d(1,2,kernel_size=0)"]);
    assert!(
        e.contains("'kernel_size' must be a positive integer"),
        "{e}"
    );
    let e = train(&["--model", "Linear(4,3)", "--lr", "-1"]);
    assert!(e.contains("--lr must be > 0"), "{e}");
    assert!(
        train(&["--model", "Linear(4,3)", "--batch-size", "0"])
            .contains("--batch-size must be at least 1")
    );
    assert!(
        train(&["--model", "Linear(4,3)", "--epochs", "0"]).contains("--epochs must be at least 1")
    );
    assert!(
        train(&["--model", "Linear(4,3)", "--test-split", "0"])
            .contains("--test-split must be between 0 and 1")
    );
    assert!(
        train(&["--model", "Linear(4,3)", "--test-split", "1"])
            .contains("--test-split must be between 0 and 1")
    );
    assert!(train(&["--model", "Linear(4,3)", "--momentum", "-0.5"]).contains("--momentum"));
}

#[test]
fn images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = d.join("m.safetensors");
    idx_split(&d.join("data"), "train", 20);
    ok(&[
        "train",
        "--data",
        s(&d.join("data")),
        "--model",
        "Flatten, Linear(784,10)",
        "--quiet",
        "--out",
        s(&ck),
    ]);
    let text = d.join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let e = fails(&["predict", "--checkpoint", s(&ck), s(&text)]);
    assert!(
        e.contains("notes.png: not a readable PNG, JPEG or PGM image"),
        "{e}"
    );
    let e = fails(&["predict", "--checkpoint", s(&ck), s(&d.join("missing.png"))]);
    assert!(e.contains("missing.png"), "{e}");
}

#[test]
fn batchnorm_and_residual_that_do_not_fit_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 8);
    let out = dir.path().join("o.safetensors");
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", &data, "--quiet", "--out", s(&out)];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let e = train(&["--model", "Linear(4,8), BatchNorm1d(6), Linear(8,3)"]);
    assert!(
        e.contains("layer 1 (BatchNorm1d(6, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)) expects input [C=6] or [C=6, L], got [8] from layer 0"),
        "{e}"
    );
    let e = train(&[
        "--model",
        "Linear(4,8), Residual(Linear(8,5), ReLU), Linear(8,3)",
    ]);
    assert!(
        e.contains("layer 1 (Residual( (0): Linear(in_features=8, out_features=5, bias=True) (1): ReLU() )) expects input layers inside that keep its shape (they give [5]), got [8] from layer 0"),
        "{e}"
    );
    let e = train(&[
        "--model",
        "Linear(4,8), BatchNorm1d(8), Linear(8,3)",
        "--batch-size",
        "1",
    ]);
    assert!(
        e.contains("Expected more than 1 value per channel when training, got input size [1, 8]"),
        "{e}"
    );
    let e = train(&[
        "--model",
        "Linear(4,8), BatchNorm1d(8, momentum=-1), Linear(8,3)",
    ]);
    assert!(
        e.contains("BatchNorm1d: 'momentum' must be between 0 and 1"),
        "{e}"
    );
    let e = train(&["--model", "Linear(4,3)", "--momentum", "-0.5"]);
    assert!(
        e.contains("--momentum and --weight-decay must be ≥ 0, got -0.5"),
        "{e}"
    );
    // BatchNorm2d on a channel count that is not the convolution's (28×28 images).
    idx_split(&dir.path().join("images"), "train", 4);
    let e = fails(&[
        "train",
        "--data",
        s(&dir.path().join("images")),
        "--model",
        "Conv2d(1,4,3), BatchNorm2d(3), Flatten, Linear(2704,10)",
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("layer 1 (BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)) expects input [C=3, H, W], got [4, 26, 26] from layer 0"),
        "{e}"
    );
    assert!(!out.exists());
}
