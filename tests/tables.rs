//! CSV tables through the real binary: class names and numeric targets, standardisation recorded in
//! the checkpoint and applied by eval and predict, and one-line errors naming file, line and column.

use scratchnet::checkpoint;
use scratchnet::data::input::InputInfo;
use scratchnet::data::npy::read_npy;
use std::fmt::Write;
use std::path::Path;

mod common;
use common::{fails, ok};

/// `n` rows of three features on very different scales (thousands, thousandths, ones) and a class
/// name that depends on the first two: a network sees the second only once it is standardised.
fn flowers(n: usize, seed: u64) -> String {
    let mut s = String::from("size_mm,weight_t,noise,species\n");
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f64 / (1u64 << 24) as f64
    };
    for _ in 0..n {
        let (size, weight, noise) = (3000.0 * uniform(), 0.003 * uniform(), uniform());
        let species = match (size < 1500.0, weight < 0.0015) {
            (false, _) => "tulip",
            (true, true) => "iris",
            (true, false) => "rose",
        };
        writeln!(s, "{size:.1},{weight:.6},{noise:.3},{species}").unwrap();
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The test accuracy in percent of the last epoch line.
fn last_accuracy(out: &str) -> f64 {
    let line = out.lines().rev().find(|l| l.starts_with("epoch")).unwrap();
    let acc = line.rsplit("accuracy ").next().unwrap();
    acc.split('(')
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const MLP: &str = "Linear(3,32), ReLU, Linear(32,3)";

fn train_flowers(dir: &Path, data: &str, extra: &[&str]) -> String {
    let out = dir.join("m.safetensors");
    let mut args = vec![
        "train",
        "--data",
        data,
        "--model",
        MLP,
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "16",
        "--epochs",
        "30",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn a_table_trains_with_standardised_features_and_predicts_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = write(d, "flowers.csv", &flowers(400, 1));
    let ck = d.join("m.safetensors");

    // Without standardisation the thousandths column is invisible next to the thousands.
    let raw = last_accuracy(&train_flowers(
        d,
        &data,
        &["--test-split", "0.25", "--no-standardize"],
    ));
    let split = ["--test-split", "0.25"];
    let standardised = last_accuracy(&train_flowers(d, &data, &split));
    assert!(
        standardised >= 93.0 && standardised > raw + 5.0,
        "standardised {standardised}%, raw {raw}%"
    );

    // The checkpoint records the columns, the classes and the training split's statistics.
    let c = checkpoint::read(&ck).unwrap();
    let info = InputInfo::of(&c).unwrap().unwrap();
    let table = info.table.as_ref().unwrap();
    assert_eq!(table.features, ["size_mm", "weight_t", "noise"]);
    assert_eq!(table.targets, ["species"]);
    let st = info.standardize.as_ref().unwrap();
    assert!((st.mean[0] - 1500.0).abs() < 200.0 && (st.std[1] - 0.00087).abs() < 0.0002);
    assert_eq!(c.metadata["classes"], r#"["iris","rose","tulip"]"#);

    // A separate test table, its columns in another order, is read like the training table.
    let mut other = String::from("species,noise,weight_t,size_mm\n");
    for row in flowers(100, 2).lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        writeln!(other, "{},{},{},{}", f[3], f[2], f[1], f[0]).unwrap();
    }
    let test_data = write(d, "other.csv", &other);
    let on_other = train_flowers(d, &data, &["--test-data", &test_data]);
    assert!(
        on_other.contains("test loss") && last_accuracy(&on_other) >= 90.0,
        "{on_other}"
    );
    let e = ok(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        &test_data,
    ]);
    assert!(e.contains("100 samples"), "{e}");
    train_flowers(d, &data, &split);

    // eval applies them and names the classes.
    let e = ok(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        &data,
        "--test-split",
        "0.25",
    ]);
    assert!(e.contains("accuracy") && e.contains("tulip"), "{e}");
    let acc: f64 = e
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .unwrap()
        .split('(')
        .nth(1)
        .unwrap()
        .trim_end_matches("%)")
        .parse()
        .unwrap();
    assert_eq!(
        acc, standardised,
        "eval sees the same test split as training"
    );

    // predict reads rows by column name (other order, no target, an extra column) ...
    let rows = write(
        d,
        "rows.csv",
        "noise,id,weight_t,size_mm\n0.5,a,0.0001,2900\n0.5,b,0.0001,100\n0.5,c,0.0029,100\n",
    );
    let out = d.join("y.npy");
    let p = ok(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--input",
        &rows,
        "--output",
        out.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = p.lines().collect();
    assert!(lines[0].starts_with("line 2: tulip "), "{p}");
    assert!(lines[1].starts_with("line 3: iris "), "{p}");
    assert!(lines[2].starts_with("line 4: rose "), "{p}");
    assert_eq!(read_npy(&out).unwrap().shape, [3, 3]);

    // ... and names what it misses.
    let bad = write(d, "bad_rows.csv", "size_mm,noise\n1,2\n");
    let e = fails(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--input",
        &bad,
    ]);
    assert!(
        e.contains("bad_rows.csv: line 1: the model's input column 'weight_t' is not a column of the header (size_mm, noise)"),
        "{e}"
    );
    // eval on a table with a class the model never saw.
    let daisy = write(
        d,
        "daisy.csv",
        "size_mm,weight_t,noise,species\n1,0.001,0.5,daisy\n",
    );
    let e = fails(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--data",
        &daisy,
    ]);
    assert!(
        e.contains("daisy.csv: line 2: column 4 ('species'): class 'daisy' is not among the training data's classes (iris, rose, tulip)"),
        "{e}"
    );
}

#[test]
fn several_numeric_targets_are_fitted_with_mse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = String::from("a,b,sum,diff\n");
    for i in 0..200 {
        let (a, b) = ((i % 17) as f32 * 10.0, (i % 13) as f32 * 0.1);
        writeln!(text, "{a},{b},{},{}", a / 100.0 + b, a / 100.0 - b).unwrap();
    }
    let data = write(d, "sums.csv", &text);
    let ck = d.join("r.safetensors");
    let out = ok(&[
        "train",
        "--data",
        &data,
        "--target",
        "sum",
        "--target",
        "diff",
        "--loss",
        "mse",
        "--model",
        "Linear(2,2)",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--epochs",
        "40",
        "--batch-size",
        "10",
        "--out",
        ck.to_str().unwrap(),
        "--quiet",
    ]);
    let last = out.lines().rev().find(|l| l.starts_with("epoch")).unwrap();
    let loss: f64 = last.split("train loss ").nth(1).unwrap()[..6]
        .parse()
        .unwrap();
    assert!(loss < 1e-3, "{last}");
    let rows = write(d, "q.csv", "a,b\n100,0.5\n");
    let p = ok(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--input",
        &rows,
    ]);
    let v: Vec<f64> = p
        .trim()
        .strip_prefix("line 2: ")
        .unwrap()
        .split(", ")
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        (v[0] - 1.5).abs() < 0.05 && (v[1] - 0.5).abs() < 0.05,
        "{p}"
    );
}

#[test]
fn table_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |data: &str, extra: &[&str]| {
        let out = d.join("e.safetensors");
        let mut args = vec![
            "train",
            "--data",
            data,
            "--model",
            "Linear(2,2)",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let cases = [
        (
            "empty.csv",
            "",
            vec![],
            "empty.csv: is empty; a CSV table needs a header row",
        ),
        (
            "ragged.csv",
            "a,b,y\n1,2,x\n3,4\n",
            vec![],
            "ragged.csv: line 3: has 2 fields, the header has 3",
        ),
        (
            "text.csv",
            "a,b,y\n1,2,x\n3,four,y\n",
            vec![],
            "text.csv: line 3: column 2 ('b'): 'four' is not a number",
        ),
        (
            "target.csv",
            "a,b,y\n1,2,x\n",
            vec!["--target", "label"],
            "target.csv: line 1: the --target 'label' is not a column of the header (a, b, y)",
        ),
    ];
    for (name, text, extra, want) in cases {
        let data = write(d, name, text);
        let e = train(&data, &extra);
        assert!(e.contains(want), "{name}: {e}");
    }
    // A class that only the test split has (one 'z' row among 'x' and 'y' rows).
    let mut text = String::from("a,b,y\n");
    for i in 0..20 {
        writeln!(text, "{i},{i},{}", if i % 2 == 0 { "x" } else { "y" }).unwrap();
    }
    text += "5,5,z\n";
    let data = write(d, "rare.csv", &text);
    let seed = (0..)
        .find(|&s| {
            let (_, test) = scratchnet::data::dataset::split_indices(21, 0.5, s).unwrap();
            test.contains(&20)
        })
        .unwrap()
        .to_string();
    let e = train(&data, &["--test-split", "0.5", "--split-seed", &seed]);
    assert!(
        e.contains("rare.csv: line 22: class 'z' falls in the test split")
            && e.contains("never in the training split"),
        "{e}"
    );
    // ... or that only a separate test table has.
    let test = write(d, "unseen.csv", "a,b,y\n1,1,x\n2,2,w\n");
    let e = train(
        &write(d, "xy.csv", "a,b,y\n1,1,x\n2,2,y\n"),
        &["--test-data", &test],
    );
    assert!(
        e.contains("unseen.csv: line 3: column 3 ('y'): class 'w' is not among the training data's classes (x, y)"),
        "{e}"
    );
    // --target on data that is not a table; a table for a model trained on images.
    let e = train("fashion-mnist", &["--target", "y"]);
    assert!(e.contains("--target names a column of a CSV table"), "{e}");
    let g = common::golden("mlp");
    let e = fails(&[
        "predict",
        "--checkpoint",
        g.join("init.safetensors").to_str().unwrap(),
        "--input",
        &write(d, "rows.csv", "a\n1\n"),
    ]);
    assert!(e.contains("was not trained on a CSV table"), "{e}");
}
