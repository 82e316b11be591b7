//! Folders of images through the real binary: one subfolder per class (or train/ and test/),
//! colour and gray, PNG and JPEG, sizes fitted, class names stored, predict on a folder, and the
//! one-line errors.

use scratchnet::checkpoint;
use scratchnet::data::input::InputInfo;
use std::path::Path;

mod common;
use common::{fails, ok, s};

/// A colour picture: a square of `colour` on a dark ground, `w × h`, the square placed by `i`.
fn picture(colour: [u8; 3], w: u32, h: u32, i: u32) -> image::RgbImage {
    let (x0, y0) = (i % 4, (i / 4) % 4);
    image::RgbImage::from_fn(w, h, |x, y| {
        let on = x >= x0 && x < x0 + w / 2 && y >= y0 && y < y0 + h / 2;
        image::Rgb(if on { colour } else { [10, 10, 10] })
    })
}

/// `root/<class>/` with `n` pictures each: red squares and blue squares, PNG and JPEG, most 12×12
/// and some 24×16 (fitted to 12×12 keeping the aspect ratio).
fn colour_folder(root: &Path, n: u32) {
    for (class, colour) in [("blue", [20, 40, 230]), ("red", [230, 30, 20])] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            let (w, h, ext) = match i % 5 {
                3 => (24, 16, "png"),
                1 => (12, 12, "jpg"),
                _ => (12, 12, "png"),
            };
            picture(colour, w, h, i)
                .save(root.join(class).join(format!("{i:03}.{ext}")))
                .unwrap();
        }
    }
}

const MLP: &str = "Flatten, Linear(432,2)";

fn train(data: &str, model: &str, ck: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        data,
        "--model",
        model,
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--epochs",
        "3",
        "--seed",
        "1",
        "--out",
        s(ck),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn a_colour_folder_trains_and_predict_names_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_folder(&d.join("shapes"), 30);
    let ck = d.join("m.safetensors");
    let out = train(s(&d.join("shapes")), MLP, &ck, &["--test-split", "0.2"]);
    assert!(out.contains("accuracy"), "{out}");
    let ckf = checkpoint::read(&ck).unwrap();
    assert_eq!(
        ckf.metadata.get(checkpoint::CLASSES_KEY).unwrap(),
        r#"["blue","red"]"#
    );
    let info = InputInfo::of(&ckf).unwrap().unwrap();
    assert_eq!(info.shape, [3, 12, 12], "the first image's size, colour");

    // New pictures in a folder with a subfolder and a stray text file.
    let new = d.join("new");
    std::fs::create_dir_all(new.join("more")).unwrap();
    picture([240, 20, 30], 12, 12, 5)
        .save(new.join("a_red.png"))
        .unwrap();
    picture([20, 30, 240], 36, 24, 2)
        .save(new.join("more/b_blue.jpg"))
        .unwrap();
    std::fs::write(new.join("readme.txt"), "not a picture").unwrap();
    let out = ok(&["predict", "--checkpoint", s(&ck), "--top", "1", s(&new)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("a_red.png: red "), "{out}");
    assert!(lines[1].contains("b_blue.jpg: blue "), "{out}");

    // eval reads a folder at the checkpoint's size and classes.
    let out = ok(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&d.join("shapes")),
        "--test-split",
        "0.2",
    ]);
    assert!(out.contains("accuracy"), "{out}");
}

#[test]
fn train_and_test_subfolders_are_the_two_splits_and_options_apply() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_folder(&d.join("two/train"), 10);
    colour_folder(&d.join("two/test"), 5);
    let ck = d.join("m.safetensors");
    let out = train(
        s(&d.join("two")),
        "Flatten, Linear(48,2)",
        &ck,
        &["--image-size", "6,8", "--channels", "1"],
    );
    assert!(out.contains("accuracy"), "{out}");
    let info = InputInfo::of(&checkpoint::read(&ck).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(info.shape, [1, 6, 8]);
}

#[test]
fn a_gray_folder_gets_one_channel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (class, v) in [("dark", 30u8), ("light", 220u8)] {
        std::fs::create_dir_all(d.join("g").join(class)).unwrap();
        for i in 0..8u8 {
            image::GrayImage::from_fn(5, 4, |x, _| image::Luma([v.wrapping_add(i + x as u8)]))
                .save(d.join("g").join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let ck = d.join("m.safetensors");
    train(
        s(&d.join("g")),
        "Flatten, Linear(20,2)",
        &ck,
        &["--test-split", "0.25"],
    );
    let info = InputInfo::of(&checkpoint::read(&ck).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(info.shape, [1, 4, 5]);
}

#[test]
fn a_file_that_is_not_an_image_is_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_folder(&d.join("f"), 6);
    std::fs::write(d.join("f/red/notes.txt"), "hello").unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "train".to_string(),
            "--data".into(),
            s(&d.join("f")).into(),
            "--model".into(),
            MLP.into(),
            "--epochs".into(),
            "1".into(),
            "--test-split".into(),
            "0.25".into(),
            "--out".into(),
            s(&d.join("m.safetensors")).into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let a = args(&[]);
    let e = fails(&a.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    assert!(
        e.contains("red/notes.txt") && e.contains("not an image") && e.contains("--skip-bad"),
        "{e}"
    );
    let a = args(&["--skip-bad"]);
    let out = common::run(&a.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: skipped 1 file(s)") && err.contains("notes.txt"),
        "{err}"
    );
}

#[test]
fn folder_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train_args = |data: &Path, extra: &[&str]| -> String {
        let mut a = vec!["train", "--data", s(data), "--model", MLP, "--epochs", "1"];
        a.extend_from_slice(extra);
        fails(&a)
    };
    // Class folders without files.
    std::fs::create_dir_all(d.join("empty/a")).unwrap();
    let e = train_args(&d.join("empty"), &[]);
    assert!(e.contains("the class folders hold no files"), "{e}");
    // Different classes in train/ and test/.
    colour_folder(&d.join("mix/train"), 2);
    std::fs::create_dir_all(d.join("mix/test/green")).unwrap();
    let e = train_args(&d.join("mix"), &[]);
    assert!(
        e.contains("train/ has the classes") && e.contains("\"green\""),
        "{e}"
    );
    // Only files that are not images, skipped.
    std::fs::create_dir_all(d.join("junk/a")).unwrap();
    std::fs::write(d.join("junk/a/x.txt"), "x").unwrap();
    let e = train_args(&d.join("junk"), &["--skip-bad"]);
    assert!(e.contains("none of the files is a readable image"), "{e}");
    // A bad --image-size.
    colour_folder(&d.join("ok"), 2);
    for bad in ["0,3", "a,b", "1,2,3"] {
        let e = train_args(&d.join("ok"), &["--image-size", bad]);
        assert!(
            e.contains("--image-size") && e.contains("expected H,W"),
            "{e}"
        );
    }
    // An empty folder for predict.
    std::fs::create_dir_all(d.join("nothing")).unwrap();
    let ck = d.join("m.safetensors");
    train(s(&d.join("ok")), MLP, &ck, &[]);
    let e = fails(&["predict", "--checkpoint", s(&ck), s(&d.join("nothing"))]);
    assert!(e.contains("no .png, .jpg"), "{e}");
    // eval on a folder with a class the model never saw.
    colour_folder(&d.join("other"), 2);
    std::fs::rename(d.join("other/red"), d.join("other/purple")).unwrap();
    let e = fails(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&d.join("other")),
    ]);
    assert!(
        e.contains("class 'purple' is not one the model was trained on (blue, red)"),
        "{e}"
    );
}

#[test]
fn normalize_is_recorded_per_channel_and_applied_by_predict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_folder(&d.join("shapes"), 20);
    let ck = d.join("m.safetensors");
    train(
        s(&d.join("shapes")),
        MLP,
        &ck,
        &["--test-split", "0.2", "--normalize", "auto"],
    );
    let info = InputInfo::of(&checkpoint::read(&ck).unwrap())
        .unwrap()
        .unwrap();
    let n = info.standardize.unwrap();
    assert_eq!(n.mean.len(), 3, "one mean per channel");
    // Red pictures and blue pictures: the red and blue planes have the same mean, green less.
    assert!(
        (n.mean[0] - n.mean[2]).abs() < 0.02 && n.mean[1] < n.mean[0],
        "{n:?}"
    );
    picture([240, 20, 30], 12, 12, 6)
        .save(d.join("r.png"))
        .unwrap();
    let out = ok(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--top",
        "1",
        s(&d.join("r.png")),
    ]);
    assert!(out.contains("r.png: red "), "{out}");

    let e = fails(&[
        "train",
        "--data",
        s(&d.join("shapes")),
        "--model",
        MLP,
        "--normalize",
        "0.5,0.2,0.1",
    ]);
    assert!(
        e.contains("--normalize 0.5,0.2,0.1: 3 numbers for inputs with 3 channels"),
        "{e}"
    );
}
