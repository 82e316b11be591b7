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

/// Character ids are whole numbers from 0 to V − 1: no warning that they look like raw pixels
/// (tests/rough_edges.rs shows that warning for pixels).
#[test]
fn token_ids_are_not_taken_for_raw_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("text:{}", s(&text_file(dir.path())));
    let out = dir.path().join("m.safetensors");
    let o = run(&[
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
        "--quiet",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("raw pixels"), "{err}");
}
