//! Arrays as people have them, through the real binary: Keras' `mnist.npz` layout (uint8 images
//! `(N, H, W)`, uint8 labels), channels-last float16 images, and `--test-data`.

use std::io::Write;
use std::path::Path;

mod common;
use common::{bin, fails, npy_bytes, ok};

/// A zip of `.npy` members, as `np.savez_compressed` writes.
fn npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file(format!("{name}.npy"), options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

/// `n` uint8 images `(n, 12, 12)`: class 0 a bright left half, class 1 a bright right half.
fn halves(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let class = (i % 2) as u8;
        for _row in 0..12 {
            for col in 0..12 {
                let lit = (col < 6) == (class == 0);
                x.push(if lit {
                    200 + (i % 50) as u8
                } else {
                    (i % 30) as u8
                });
            }
        }
        y.push(class);
    }
    (x, y)
}

#[test]
fn a_keras_style_npz_trains_without_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (xtr, ytr) = halves(60);
    let (xte, yte) = halves(20);
    let data = d.join("mnist.npz");
    npz(
        &data,
        &[
            ("x_train", npy_bytes("|u1", false, &[60, 12, 12], &xtr)),
            ("y_train", npy_bytes("|u1", false, &[60], &ytr)),
            ("x_test", npy_bytes("|u1", false, &[20, 12, 12], &xte)),
            ("y_test", npy_bytes("|u1", false, &[20], &yte)),
        ],
    );
    let ck = d.join("m.safetensors");
    // A convolution first: the (N, H, W) images must have become (N, 1, H, W), scaled to [0, 1].
    let out = ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "Conv2d(1,2,3), ReLU, Flatten, Linear(200,2)",
        "--epochs",
        "5",
        "--batch-size",
        "10",
        "--out",
        ck.to_str().unwrap(),
    ]);
    assert!(
        out.contains("training on 60 samples (testing on 20)"),
        "{out}"
    );
    let last = out.lines().rev().find(|l| l.starts_with("epoch")).unwrap();
    assert!(last.contains("accuracy 20/20"), "{last}");
    let e = ok(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(e.contains("accuracy 20/20"), "{e}");
}

/// Keras' `cifar10.load_data()` gives labels as one column, `(N, 1)`: the same classes as `(N,)`,
/// trained to the same bits.
#[test]
fn labels_in_one_column_are_one_class_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = halves(40);
    let xs = d.join("x.npy");
    std::fs::write(&xs, npy_bytes("|u1", false, &[40, 12, 12], &x)).unwrap();
    let mut weights = Vec::new();
    for shape in [vec![40], vec![40, 1]] {
        let ys = d.join("y.npy");
        std::fs::write(&ys, npy_bytes("|u1", false, &shape, &y)).unwrap();
        let ck = d.join(format!("m{}.safetensors", shape.len()));
        let out = ok(&[
            "train",
            "--data",
            &format!("{}:{}", xs.display(), ys.display()),
            "--model",
            "Flatten, Linear(144,2)",
            "--epochs",
            "2",
            "--out",
            ck.to_str().unwrap(),
        ]);
        assert!(!out.contains("steps per sample"), "{out}");
        let tensors = scratchnet::checkpoint::read(&ck).unwrap().tensors;
        weights.push(
            tensors
                .into_iter()
                .map(|(k, t)| (k, t.data().to_vec()))
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        weights[0] == weights[1],
        "(N, 1) labels trained differently from (N,)"
    );
}

#[test]
fn channels_last_float16_images_are_moved_to_nchw_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, h, w, c) = (6, 5, 7, 3);
    // Value v at (i, y, x, ch) in channels-last order.
    let value =
        |i: usize, y: usize, x: usize, ch: usize| ((i + 2 * y + 3 * x + 5 * ch) % 11) as f32 / 8.0;
    let mut nhwc = Vec::new();
    let mut nchw = vec![0f32; n * c * h * w];
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = value(i, y, x, ch);
                    nhwc.extend_from_slice(&half(v).to_le_bytes());
                    nchw[((i * c + ch) * h + y) * w + x] = v;
                }
            }
        }
    }
    let last = d.join("last.npy");
    std::fs::write(&last, npy_bytes("<f2", false, &[n, h, w, c], &nhwc)).unwrap();
    let first = d.join("first.npy");
    scratchnet::data::npy::write_npy_f32(&first, &[n, c, h, w], &nchw).unwrap();
    // The library reads it as the NCHW array …
    let x = scratchnet::data::source::read_inputs(&last, false).unwrap();
    assert_eq!(x.shape(), [n, c, h, w]);
    assert_eq!(x.rows(0, n).data(), nchw.as_slice());
    // … and the binary says it once and trains on it.
    let y: Vec<u8> = (0..n as i64).flat_map(|i| (i % 2).to_le_bytes()).collect();
    let labels = d.join("y.npy");
    std::fs::write(&labels, npy_bytes("<i8", false, &[n], &y)).unwrap();
    let out = bin()
        .args([
            "train",
            "--data",
            &format!("{}:{}", last.display(), labels.display()),
        ])
        .args([
            "--model",
            "Conv2d(3,2,3), Flatten, Linear(30,2)",
            "--epochs",
            "1",
        ])
        .args([
            "--out",
            d.join("m.safetensors").to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches(
            "taken as channels-last (N, H, W, C) images, moved to (N, C, H, W) = [6, 3, 5, 7]"
        )
        .count(),
        1,
        "{err}"
    );
}

/// IEEE half precision of `v` (exact for the multiples of 1/8 used here).
fn half(v: f32) -> u16 {
    let bits = v.to_bits();
    if v == 0.0 {
        return 0;
    }
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    ((bits >> 16) & 0x8000) as u16 | ((exp as u16) << 10) | ((bits >> 13) & 0x3ff) as u16
}

#[test]
fn npz_and_array_errors_say_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |data: &Path| {
        fails(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--model",
            "Flatten, Linear(4,2)",
            "--epochs",
            "1",
            "--out",
            d.join("m.safetensors").to_str().unwrap(),
        ])
    };
    let f = |n: usize| npy_bytes("<f4", false, &[n, 4], &vec![0u8; 16 * n]);
    let wrong = d.join("wrong.npz");
    npz(&wrong, &[("images", f(2)), ("labels", f(2))]);
    assert!(train(&wrong).contains(
        "wrong.npz: expected the arrays x and y, or x_train, y_train, x_test and y_test"
    ),);
    let half_pair = d.join("half.npz");
    npz(&half_pair, &[("x_train", f(2))]);
    assert!(
        train(&half_pair)
            .contains("half.npz: holds only one of the arrays 'x_train' and 'y_train'")
    );
    let ints = d.join("ints.npz");
    npz(
        &ints,
        &[
            ("x", npy_bytes("<i4", false, &[2, 2, 2], &[0u8; 32])),
            ("y", npy_bytes("|u1", false, &[2], &[0, 1])),
        ],
    );
    let e = train(&ints);
    assert!(
        e.contains("ints.npz[x.npy]: has dtype <i4; inputs must be floats, uint8 pixels or integer token ids (N, T)"),
        "{e}"
    );
    let junk = d.join("junk.npz");
    std::fs::write(&junk, "hello").unwrap();
    assert!(train(&junk).contains("junk.npz: not an .npz archive (a zip of .npy files)"));
}
