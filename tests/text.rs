//! Text through the command line: the `char-lstm` preset on `--data text:FILE`, `eval` and
//! `generate` on its checkpoint, and one-line errors for bad text input.

use scratchnet::checkpoint;
use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, run, s, toy_data};

const TEXT: &str = "the quick brown fox jumps over the lazy dog. ";

/// A small text file (its vocabulary: 28 distinct characters: 26 letters, '.' included).
fn text_file(dir: &Path) -> PathBuf {
    let p = dir.join("t.txt");
    std::fs::write(&p, TEXT.repeat(8)).unwrap();
    p
}

/// Trains `char-lstm` for one epoch on the text; returns the checkpoint.
fn train_char_lstm(dir: &Path) -> PathBuf {
    let (text, out) = (text_file(dir), dir.join("c.safetensors"));
    let data = format!("text:{}", s(&text));
    let log = ok(&[
        "train",
        "--model",
        "char-lstm",
        "--data",
        &data,
        "--seq-len",
        "8",
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(
        log.contains("Embedding(28, 64)")
            && log.contains("Linear(in_features=256, out_features=28"),
        "{log}"
    );
    out
}

/// `char-lstm` takes V from the text's vocabulary; the checkpoint records the filled-in text, and
/// `--resume` with `--model char-lstm` continues it.
#[test]
fn char_lstm_preset_trains_on_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = train_char_lstm(dir.path());
    // Resuming with the preset named again is the same run.
    ok(&[
        "train",
        "--resume",
        s(&path),
        "--model",
        "char-lstm",
        "--epochs",
        "2",
        "--quiet",
    ]);
    let ck = checkpoint::read(&path).unwrap();
    assert_eq!(
        ck.model_text(),
        Some("Embedding(28, 64), LSTM(64, 256), Linear(256, 28)")
    );
    assert_eq!(ck.tensors["2.weight"].shape(), &[28, 256]);
}

/// `char-lstm` on data that is not text says what it needs; the help and the no-model error
/// list it with the other presets.
#[test]
fn char_lstm_needs_text_data_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 6);
    let out = dir.path().join("m.safetensors");
    let e = fails(&[
        "train",
        "--model",
        "char-lstm",
        "--data",
        &data,
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("preset char-lstm needs --data text:FILE: its vocabulary size V is the number of distinct characters of the text"),
        "{e}"
    );
    let e = fails(&["summary", "--model", "char-lstm"]);
    assert!(e.contains("preset char-lstm needs --data text:FILE"), "{e}");
    let e = fails(&["train", "--data", &data, "--out", s(&out)]);
    assert!(
        e.contains("a preset: mlp, seed-cnn, lenet, nielsen, row-lstm, char-lstm, resnet"),
        "{e}"
    );
    for help in [
        &["--help"][..],
        &["train", "--help"],
        &["summary", "--help"],
    ] {
        let h = String::from_utf8(run(help).stdout).unwrap();
        assert!(h.contains("row-lstm, char-lstm, resnet"), "{help:?}: {h}");
    }
}

/// `eval` on a text checkpoint scores every step: the accuracy over N·T characters (the text cut
/// at the checkpoint's --seq-len 8), per character (quoted when blank), whose counts add up to it.
#[test]
fn eval_of_a_text_model_scores_each_character() {
    let dir = tempfile::tempdir().unwrap();
    let ck = train_char_lstm(dir.path());
    let data = format!("text:{}", s(&dir.path().join("t.txt")));
    let out = ok(&["eval", "--checkpoint", s(&ck), "--data", &data]);
    // 360 characters: ⌊359 / 8⌋ = 44 sequences of 8 steps.
    assert!(out.starts_with("44 samples  loss "), "{out}");
    let line = out.lines().find(|l| l.starts_with("accuracy ")).unwrap();
    assert!(
        line.ends_with("(8 steps per sample, each scored)"),
        "{line}"
    );
    let count = |s: &str| -> (usize, usize) {
        let (a, b) = s.split_once('/').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let (correct, total) = count(line.split(' ').nth(1).unwrap());
    assert_eq!(total, 44 * 8);
    let per_class: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "per class:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(per_class.len(), 28, "{out}");
    assert!(per_class[0].trim_start().starts_with("\" \""), "{out}");
    let sums = per_class
        .iter()
        .map(|l| {
            count(
                l.split_whitespace()
                    .nth(l.split_whitespace().count() - 2)
                    .unwrap(),
            )
        })
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert_eq!(sums, (correct, total));
    assert!(
        out.contains("confusion matrix: 28 classes, too many to print (--plot FILE draws it)"),
        "{out}"
    );
}

/// Token ids are whole numbers by nature: the "raw pixels, divide by 255" warning is not given
/// for a model that starts with Embedding (text, or ids in .npy), and still is for one that does not.
#[test]
fn token_ids_are_not_warned_about_as_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let stderr = |model: &str, data: &str| {
        let r = run(&[
            "train",
            "--model",
            model,
            "--data",
            data,
            "--epochs",
            "1",
            "--quiet",
            "--out",
            s(&out),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        String::from_utf8(r.stderr).unwrap()
    };
    let text = format!("text:{}", s(&text_file(dir.path())));
    let e = stderr("char-lstm", &text);
    assert!(!e.contains("raw pixels"), "{e}");

    let ids: Vec<i64> = (0..6 * 5).map(|i| (i * 7) % 10).collect();
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    let x = dir.path().join("ids.npy");
    std::fs::write(&x, common::npy_bytes("<i8", false, &[6, 5], &bytes)).unwrap();
    common::labels_npy(&dir.path().join("y.npy"), &[0, 1, 2, 0, 1, 2]);
    let data = format!("{}:{}", s(&x), s(&dir.path().join("y.npy")));
    let e = stderr("Embedding(10, 4), Select(1, -1), Linear(4, 3)", &data);
    assert!(!e.contains("raw pixels"), "{e}");
    let e = stderr("Linear(5, 3)", &data);
    assert!(
        e.contains(
            "warning: training data: the inputs are whole numbers from 0 to 9, like raw pixels"
        ),
        "{e}"
    );
}
