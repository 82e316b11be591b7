//! Pixels held as `u8` (issue 13: image folders, IDX images and uint8 arrays are kept in memory as
//! bytes and become `f32` a batch at a time): the data is held at one byte a pixel, every batch is
//! bit for bit what the same values given as float32 give, so training on either ends with the
//! same weights (any `--threads`, with `--augment`, `--normalize auto`), and `predict` on a
//! training image's file gives the input the training batch held.

use scratchnet::checkpoint;
use scratchnet::data::inputs::Samples;
use scratchnet::data::npy::write_npy_f32;
use scratchnet::data::source::{self, DataArgs};
use scratchnet::tensor::Tensor;
use std::path::Path;

mod common;
use common::{idx_bytes, labels_npy, npy_bytes, ok, s};

/// `n` gray `8 × 8` images of 2 classes (a bright left or right half, with noise), as bytes.
fn pixels(n: usize) -> Vec<u8> {
    (0..n * 64)
        .map(|i| {
            let (k, col) = (i / 64, i % 8);
            let bright = (col < 4) == (k % 2 == 0);
            (u8::from(bright) * 150).wrapping_add((i * 7919 % 101) as u8)
        })
        .collect()
}

/// The same images as a uint8 `(N, 8, 8)` array and as float32 `(N, 1, 8, 8)` of `byte / 255`,
/// with labels `k % 2`: the two `X.npy:Y.npy` arguments.
fn pair(dir: &Path, n: usize) -> (String, String) {
    let px = pixels(n);
    std::fs::write(dir.join("u8.npy"), npy_bytes("|u1", false, &[n, 8, 8], &px)).unwrap();
    let f: Vec<f32> = px.iter().map(|&b| b as f32 / 255.0).collect();
    write_npy_f32(&dir.join("f32.npy"), &[n, 1, 8, 8], &f).unwrap();
    labels_npy(
        &dir.join("y.npy"),
        &(0..n as i64).map(|k| k % 2).collect::<Vec<_>>(),
    );
    let y = s(&dir.join("y.npy")).to_string();
    (
        format!("{}:{y}", s(&dir.join("u8.npy"))),
        format!("{}:{y}", s(&dir.join("f32.npy"))),
    )
}

fn load(data: &str) -> scratchnet::data::dataset::Dataset {
    source::load(&DataArgs {
        data: Some(data.into()),
        ..DataArgs::default()
    })
    .unwrap()
    .0
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn uint8_arrays_idx_and_image_folders_are_held_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (u8s, f32s) = pair(dir.path(), 12);
    let (a, b) = (load(&u8s), load(&f32s));
    assert!(a.x.is_u8() && !b.x.is_u8());
    assert_eq!(a.x.shape(), [12, 1, 8, 8]);
    assert_eq!((a.x.bytes(), b.x.bytes()), (12 * 64, 4 * 12 * 64));
    // Every batch, in any order, is the float32 array's, bit for bit.
    let idx = [11, 0, 5, 5, 3];
    let (mut x, mut y) = (Tensor::default(), Tensor::default());
    a.x.gather(&idx, &mut x);
    b.x.gather(&idx, &mut y);
    assert_eq!(x.shape(), [5, 1, 8, 8]);
    assert_eq!(bits(&x), bits(&y));
    // Splits and --limit keep the bytes.
    let (train, test) = a.split(0.25, 1).unwrap();
    assert!(train.x.is_u8() && test.x.is_u8() && a.limit(4).x.is_u8());

    // uint8 token ids for a model that starts with Embedding stay ids, not pixels.
    std::fs::write(
        dir.path().join("ids.npy"),
        npy_bytes("|u1", false, &[2, 3], &[0, 7, 200, 1, 2, 3]),
    )
    .unwrap();
    let ids = source::read_inputs(&dir.path().join("ids.npy"), true).unwrap();
    assert!(!ids.is_u8());
    assert_eq!(ids.rows(0, 2).data(), [0.0, 7.0, 200.0, 1.0, 2.0, 3.0]);
    let scaled = source::read_inputs(&dir.path().join("ids.npy"), false).unwrap();
    assert!(scaled.is_u8());

    // IDX images: the bytes of the file.
    let idx_dir = dir.path().join("idx");
    std::fs::create_dir(&idx_dir).unwrap();
    let px = pixels(12);
    std::fs::write(
        idx_dir.join("train-images-idx3-ubyte"),
        idx_bytes(&[12, 8, 8], &px),
    )
    .unwrap();
    let labels: Vec<u8> = (0..12).map(|k| k % 2).collect();
    std::fs::write(
        idx_dir.join("train-labels-idx1-ubyte"),
        idx_bytes(&[12], &labels),
    )
    .unwrap();
    let d = load(s(&idx_dir));
    assert!(d.x.is_u8());
    assert_eq!(d.x.bytes(), 12 * 64);
    assert_eq!(bits(&d.x.rows(0, 12)), bits(&b.x.rows(0, 12)));

    // An image folder of colour PNGs: 3 bytes a pixel.
    let folder = dir.path().join("folder");
    for (k, class) in ["a", "b"].iter().enumerate() {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..3u8 {
            image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, i]))
                .save(folder.join(class).join(format!("{k}{i}.png")))
                .unwrap();
        }
    }
    let d = load(s(&folder));
    assert!(d.x.is_u8());
    assert_eq!(d.x.shape(), [6, 3, 4, 5]);
    assert_eq!(d.x.bytes(), 6 * 3 * 4 * 5);
    assert_eq!(
        d.x.rows(0, 1).data()[1],
        40.0 / 255.0,
        "byte / 255, row 0 col 1"
    );
}

fn weights(path: &Path) -> Vec<(String, Vec<u32>)> {
    let ck = checkpoint::read(path).unwrap();
    ck.tensors
        .iter()
        .map(|(k, t)| (k.clone(), bits(t)))
        .collect()
}

/// Trains on `data` with `extra` flags and returns the weights' bits.
fn trained(data: &str, out: &Path, threads: &str, extra: &[&str]) -> Vec<(String, Vec<u32>)> {
    let model = "Conv2d(1,4,3,padding=1), ReLU, MaxPool2d(2), Flatten, Linear(64,2)";
    let base = [
        "--threads",
        threads,
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
        "--epochs",
        "2",
        "--test-split",
        "0.25",
        "--out",
        s(out),
    ];
    ok(&[&base[..], extra].concat());
    weights(out)
}

#[test]
fn training_on_bytes_gives_the_weights_of_the_same_floats() {
    let dir = tempfile::tempdir().unwrap();
    let (u8s, f32s) = pair(dir.path(), 40);
    let out = dir.path().join("m.safetensors");
    for extra in [
        &[][..],
        &[
            "--augment",
            "RandomCrop(8, padding=2), RandomHorizontalFlip()",
        ],
        &["--normalize", "auto"],
        &["--normalize", "auto", "--augment", "RandomHorizontalFlip()"],
    ] {
        let want = trained(&f32s, &out, "1", extra);
        for threads in ["1", "2"] {
            let got = trained(&u8s, &out, threads, extra);
            assert_eq!(got, want, "{extra:?}, --threads {threads}");
        }
    }
    // Not vacuous: other data gives other weights.
    let other = trained(&u8s, &out, "1", &["--normalize", "0.5,0.25"]);
    assert_ne!(other, trained(&u8s, &out, "1", &[]));
}

#[test]
fn predict_prepares_a_training_image_as_the_training_batch_held_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    // Colour and gray, several sizes (resized to the first's, 6 × 8), one with transparency.
    let files = [
        (
            "cat",
            "a.png",
            image::DynamicImage::from(image::RgbImage::from_fn(8, 6, |x, y| {
                image::Rgb([x as u8 * 30, y as u8 * 40, 90])
            })),
        ),
        (
            "cat",
            "b.png",
            image::DynamicImage::from(image::RgbImage::from_fn(13, 7, |x, y| {
                image::Rgb([(x * y) as u8 * 3, 200 - x as u8 * 9, y as u8 * 31])
            })),
        ),
        (
            "dog",
            "c.png",
            image::DynamicImage::from(image::GrayImage::from_fn(5, 9, |x, y| {
                image::Luma([(x * 50 + y * 7) as u8])
            })),
        ),
        (
            "dog",
            "d.png",
            image::DynamicImage::from(image::RgbaImage::from_fn(10, 10, |x, y| {
                image::Rgba([250, x as u8 * 20, 0, (y * 25) as u8])
            })),
        ),
    ];
    for (class, name, img) in &files {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        img.save(folder.join(class).join(name)).unwrap();
    }
    let d = load(s(&folder));
    let info = scratchnet::data::input::InputInfo::for_training(&d, true);
    let style = info.image.expect("an image style");
    assert_eq!(style.fit, scratchnet::data::input::Fit::Folder);
    for (i, (class, name, _)) in files.iter().enumerate() {
        let p = scratchnet::image_io::load_for_model(
            &folder.join(class).join(name),
            [3, 6, 8],
            style,
            None,
        )
        .unwrap();
        let want = d.x.rows(i, i + 1);
        let p = Tensor::new(&[1, 3, 6, 8], p).unwrap();
        assert_eq!(bits(&p), bits(&want), "{name}");
    }
    // The gap this closes: predict's own fitting (f32 resize) of the resized picture differs.
    let whole = scratchnet::data::input::ImageStyle {
        background: None,
        fit: scratchnet::data::input::Fit::Whole,
    };
    let p = scratchnet::image_io::load_for_model(&folder.join("cat/b.png"), [3, 6, 8], whole, None);
    assert_ne!(p.unwrap(), d.x.rows(1, 2).data());
}
