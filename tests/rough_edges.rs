//! Issue 10 on the real binary: resume is the same run, signals as schedulers send them, outputs
//! checked before the work and weights never lost to a failed write, data that cannot be right,
//! eval on the recorded test split, and memory a batch cannot have.

use scratchnet::checkpoint;
use scratchnet::resume::Resume;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

mod common;
use common::{bin, fails, idx_split, labels_npy, ok, run, toy_data};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

const MODEL: &str = "Linear(4,64), ReLU, Linear(64,3)";

/// A long run on toy data (batch 1), with history and plot, into `d`.
fn long_run(d: &Path, data: &str) -> Vec<String> {
    [
        "train",
        "--data",
        data,
        "--model",
        MODEL,
        "--batch-size",
        "1",
        "--epochs",
        "150",
        "--seed",
        "4",
        "--out",
        s(&d.join("run.safetensors")),
        "--history",
        s(&d.join("run.json")),
        "--plot",
        s(&d.join("run.png")),
        "--checkpoint-every",
        "50",
    ]
    .map(String::from)
    .to_vec()
}

/// Reads the child's stdout until a line contains `marker`, then runs `then`; returns all output
/// and the exit code.
fn wait_for(mut child: Child, marker: &str, then: impl FnOnce(u32)) -> (String, Option<i32>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let hit = line.contains(marker);
        seen.push(line);
        if hit {
            then(child.id());
            break;
        }
    }
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (seen.join("\n") + "\n" + &err, status.code())
}

fn spawn(args: &[String], dir: &Path) -> Child {
    bin()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_stops_like_ctrl_c_and_the_resume_line_continues_into_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 2000);
    let (out, code) = wait_for(spawn(&long_run(d, &data), d), "epoch 2/150:", |pid| {
        signal(pid, "-TERM")
    });
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("interrupted in epoch "), "{out}");
    let line = out
        .lines()
        .skip_while(|l| !l.contains("Resume with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume line: {out}"))
        .trim()
        .to_string();
    let ck = d.join("run.safetensors");
    assert_eq!(
        line,
        format!(
            "scratchnet train --resume {ck} --epochs 150 --history {h} --plot {p} --checkpoint-every 50",
            ck = ck.display(),
            h = d.join("run.json").display(),
            p = d.join("run.png").display()
        )
    );
    // Pasted as it is, it finishes the run into the same files.
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    ok(&words);
    let r = Resume::read(&ck).unwrap();
    assert_eq!(r.position.epoch, 150);
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
    assert_eq!(history.len(), 150, "the history goes on in the same file");
    assert!(d.join("run.png").exists());
}

#[test]
fn two_sigints_together_count_as_one_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 2000);
    let (out, code) = wait_for(spawn(&long_run(d, &data), d), "epoch 2/150:", |pid| {
        // As `timeout -s INT` does: one to the process, one to its group, at the same moment.
        signal(pid, "-INT");
        signal(pid, "-INT");
    });
    assert_eq!(code, Some(130), "{out}");
    assert!(!out.contains("second interrupt"), "{out}");
    assert!(out.contains("interrupted in epoch "), "{out}");
    let r = Resume::read(&d.join("run.safetensors")).unwrap();
    assert!(
        r.position.epoch >= 1 && r.position.batch > 0,
        "saved mid-epoch"
    );
}

/// Trains the toy model for `epochs` into `out` with `extra` flags.
fn toy_train(data: &str, out: &Path, epochs: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        data,
        "--model",
        MODEL,
        "--lr",
        "0.1",
        "--batch-size",
        "10",
        "--seed",
        "1",
        "--epochs",
        epochs,
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn resume_refuses_another_run_and_applies_new_optimiser_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 200);
    let ck = d.join("ck.safetensors");
    toy_train(&data, &ck, "3", &[]);

    // Flags that define the run must agree with the checkpoint.
    for (flag, value, saved) in [
        ("--batch-size", "20", "10"),
        ("--seed", "2", "1"),
        ("--optimizer", "adam", "\"sgd\""),
        ("--loss", "mse", "\"cross-entropy\""),
        (
            "--model",
            "Linear(4,3)",
            "\"Linear(4,64),ReLU,Linear(64,3)\"",
        ),
        ("--limit", "100", "None"),
    ] {
        let e = fails(&["train", "--resume", s(&ck), flag, value, "--epochs", "4"]);
        assert!(
            e.contains(&format!(
                "{flag} {} is not what the run being resumed used ({saved})",
                if value.contains('(') || flag == "--optimizer" || flag == "--loss" {
                    format!("\"{}\"", value.replace(' ', ""))
                } else {
                    value.to_string()
                }
            )),
            "{flag}: {e}"
        );
    }
    let other = tempfile::tempdir().unwrap();
    let other_data = toy_data(other.path(), 200);
    let e = fails(&["train", "--resume", s(&ck), "--data", &other_data]);
    assert!(
        e.contains("--data \"") && e.contains("is not what the run being resumed used"),
        "{e}"
    );

    // The original command with --resume added is accepted; a new --lr is applied and said.
    let out = ok(&[
        "train",
        "--data",
        &data,
        "--model",
        MODEL,
        "--lr",
        "0.01",
        "--batch-size",
        "10",
        "--seed",
        "1",
        "--epochs",
        "5",
        "--out",
        s(&ck),
        "--resume",
        s(&ck),
        "--quiet",
    ]);
    assert!(out.contains("lr 0.1 → 0.01 from epoch 4"), "{out}");
    assert!(out.contains("epochs 3 → 5"), "{out}");
    let r = Resume::read(&ck).unwrap();
    assert_eq!(r.position.epoch, 5);
    assert_eq!(
        r.optimizer,
        scratchnet::optim::Config::Sgd {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    );
    // Without --epochs, the recorded total: nothing is left to do.
    let e = fails(&["train", "--resume", s(&ck)]);
    assert!(e.contains("already trained 5 epochs"), "{e}");
}

#[test]
fn every_output_is_checked_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 50);
    let ck = d.join("ck.safetensors");
    toy_train(&data, &ck, "1", &["--quiet"]);
    let missing = d.join("no/such/dir");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--out".into(), s(&missing.join("m.safetensors")).into()],
            format!(
                "--out {}: the directory {} does not exist",
                missing.join("m.safetensors").display(),
                missing.display()
            ),
        ),
        (
            vec!["--out".into(), s(&d.join("m.pt")).into()],
            "the file must end in .safetensors".into(),
        ),
        (vec!["--out".into(), s(d).into()], "is a directory".into()),
        (
            vec!["--history".into(), s(&missing.join("h.json")).into()],
            "--history".to_string() + " " + s(&missing.join("h.json")) + ": the directory",
        ),
        (
            vec!["--history".into(), s(&d.join("h.txt")).into()],
            "the file must end in .json or .csv".into(),
        ),
        (
            vec!["--plot".into(), s(&missing.join("p.png")).into()],
            "--plot".to_string() + " " + s(&missing.join("p.png")) + ": the directory",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["train", "--data", &data, "--model", MODEL, "--epochs", "1"];
        args.extend(flags.iter().map(String::as_str));
        let e = fails(&args);
        assert!(e.contains(&want), "{flags:?}: {e}");
        assert!(!e.contains("epoch 1/1"), "refused before training: {e}");
    }
    let e = fails(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--plot",
        s(&missing.join("c.png")),
    ]);
    assert!(e.contains("--plot") && e.contains("does not exist"), "{e}");
    let e = fails(&[
        "show",
        "--data",
        s(&d.join("idx")),
        "--out",
        s(&d.join("sample.jpg")),
    ]);
    assert!(e.contains("--out") && e.contains("must end in .png"), "{e}");
    let e = fails(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--input",
        s(&d.join("x.npy")),
        "--output",
        s(&missing.join("y.npy")),
    ]);
    assert!(
        e.contains("--output") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn a_save_that_fails_at_the_end_keeps_the_weights_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 2000);
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let args: Vec<String> = [
        "train",
        "--data",
        &data,
        "--model",
        MODEL,
        "--batch-size",
        "1",
        "--epochs",
        "40",
        "--out",
        s(&sub.join("m.safetensors")),
    ]
    .map(String::from)
    .to_vec();
    // The directory vanishes after the checks (as a full disk fails a write).
    let (out, code) = wait_for(spawn(&args, d), "epoch 1/40 ", |_| {
        std::fs::remove_dir_all(&sub).unwrap()
    });
    assert_eq!(code, Some(1), "{out}");
    let rescued = d.join("m.rescued.safetensors");
    assert!(
        out.contains("the trained weights are saved at m.rescued.safetensors instead"),
        "{out}"
    );
    let ck = checkpoint::read(&rescued).unwrap();
    assert_eq!(ck.model_text(), Some(MODEL));
    assert_eq!(Resume::read(&rescued).unwrap().position.epoch, 40);
}

#[test]
fn data_that_cannot_be_right_is_refused_or_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let npy = |name: &str, shape: &[usize], v: Vec<f32>| {
        let p = d.join(name);
        scratchnet::data::npy::write_npy_f32(&p, shape, &v).unwrap();
        p.display().to_string()
    };
    let train = |x: &str, y: &str| {
        run(&[
            "train",
            "--data",
            &format!("{x}:{y}"),
            "--model",
            "Linear(4,2)",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            s(&d.join("m.safetensors")),
        ])
    };
    labels_npy(&d.join("y0.npy"), &[]);
    let x0 = npy("x0.npy", &[0, 4], vec![]);
    let e = fails(&[
        "train",
        "--data",
        &format!("{x0}:{}", d.join("y0.npy").display()),
        "--model",
        "Linear(4,2)",
    ]);
    assert!(e.contains("training data: there are no samples"), "{e}");

    let x1 = npy("x1.npy", &[6], vec![0.5; 6]);
    labels_npy(&d.join("y6.npy"), &[0, 1, 0, 1, 0, 1]);
    let y6 = d.join("y6.npy").display().to_string();
    let e = fails(&[
        "train",
        "--data",
        &format!("{x1}:{y6}"),
        "--model",
        "Linear(1,2)",
    ]);
    assert!(
        e.contains("has shape (6,), one value per sample; inputs need shape (N, features…)")
            && e.contains("as (6, 1)"),
        "{e}"
    );

    let pixels = npy(
        "pixels.npy",
        &[6, 4],
        (0..24).map(|i| (i * 37 % 256) as f32).collect(),
    );
    let out = train(&pixels, &y6);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: training data: the inputs are whole numbers from 0 to ")
            && err.contains("divide by 255"),
        "{err}"
    );
    let scaled = npy(
        "scaled.npy",
        &[6, 4],
        (0..24).map(|i| i as f32 / 24.0).collect(),
    );
    let out = train(&scaled, &y6);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));

    let yf = npy("yf.npy", &[6], vec![0.5; 6]);
    let e = fails(&[
        "train",
        "--data",
        &format!("{scaled}:{yf}"),
        "--model",
        "Linear(4,2)",
    ]);
    assert!(
        e.contains("the targets are floats (for regression targets use --loss mse)"),
        "{e}"
    );

    // predict: a non-finite input names its row; --top 0 and a wrong --classes count are errors.
    let ck = d.join("m.safetensors");
    let mut v: Vec<f32> = (0..20).map(|i| i as f32 / 20.0).collect();
    v[13] = f32::NAN;
    let xn = npy("xn.npy", &[5, 4], v);
    let e = fails(&[
        "predict",
        "--checkpoint",
        s(&ck),
        "--input",
        &xn,
        "--output",
        s(&d.join("y.npy")),
    ]);
    assert!(e.contains("sample 3 of the inputs holds NaN"), "{e}");
    idx_split(&d.join("idx"), "train", 20);
    ok(&[
        "train",
        "--data",
        s(&d.join("idx")),
        "--model",
        "Flatten, Linear(784,10)",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        s(&ck),
    ]);
    let png = d.join("img.png");
    image::GrayImage::from_pixel(2, 2, image::Luma([0u8]))
        .save(&png)
        .unwrap();
    let e = fails(&["predict", "--checkpoint", s(&ck), s(&png), "--top", "0"]);
    assert!(e.contains("--top must be at least 1"), "{e}");
    let e = fails(&[
        "predict",
        "--checkpoint",
        s(&ck),
        s(&png),
        "--classes",
        "cat,dog,bird",
    ]);
    assert!(
        e.contains("--classes cat,dog,bird: 3 names for a model with 10 outputs"),
        "{e}"
    );
}

#[test]
fn eval_defaults_to_the_recorded_test_split_and_warns_on_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    idx_split(&data, "train", 200);
    let ck = d.join("ck.safetensors");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--test-split",
        "0.25",
        "--split-seed",
        "3",
        "--model",
        "Flatten, Linear(784,10)",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        s(&ck),
    ]);
    let out = run(&["eval", "--checkpoint", s(&ck)]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("50 samples  loss "), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");

    for other in [
        vec!["--test-split", "0.25", "--split-seed", "4"],
        vec!["--test-split", "0.5", "--split-seed", "3"],
    ] {
        let mut args = vec!["eval", "--checkpoint", s(&ck), "--data", s(&data)];
        args.extend(other);
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("warning: this test split is not the one the model was trained beside"),
            "{stderr}"
        );
    }
    let e = fails(&["eval", "--checkpoint", s(&ck), "--limit", "10"]);
    assert!(e.contains("--limit does nothing for eval"), "{e}");
    let e = fails(&[
        "eval",
        "--checkpoint",
        s(&ck),
        "--data",
        s(&data),
        "--split-seed",
        "2",
    ]);
    assert!(
        e.contains("--split-seed does nothing without --test-split"),
        "{e}"
    );

    // Trained without a test split: evaluating on the same data says so.
    let toy = toy_data(d, 60);
    let ck2 = d.join("toy.safetensors");
    toy_train(&toy, &ck2, "1", &["--quiet"]);
    let out = run(&["eval", "--checkpoint", s(&ck2)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: these are the samples the model was trained on"),
        "{stderr}"
    );
}

#[test]
fn a_batch_that_cannot_fit_in_memory_is_one_line_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("x.npy");
    scratchnet::data::npy::write_npy_f32(&x, &[256, 1, 50, 50], &vec![0.5; 256 * 2500]).unwrap();
    labels_npy(&d.join("y.npy"), &vec![0; 256]);
    let e = fails(&[
        "train",
        "--data",
        &format!("{}:{}", x.display(), d.join("y.npy").display()),
        "--model",
        "Conv2d(1,65536,1), AvgPool2d(50), Flatten",
        "--batch-size",
        "256",
    ]);
    assert!(
        e.contains("a batch of 256 needs about ")
            && e.contains("the largest is layer 0 (Conv2d(1, 65536, kernel_size=(1, 1), stride=(1, 1))): 156.2 GiB for its output of [65536, 50, 50] per sample")
            && e.ends_with("Lower --batch-size\n"),
        "{e}"
    );
}

#[test]
fn threads_above_the_cores_are_capped_with_a_note() {
    let out = run(&["--threads", "4096", "summary", "--model", "seed-cnn"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: --threads 4096 is more than the ")
            && err.contains(" cores here; using "),
        "{err}"
    );
}

#[test]
fn flags_that_do_nothing_or_do_not_parse_are_one_line() {
    for (args, want) in [
        (
            vec![
                "predict",
                "--checkpoint",
                "m.safetensors",
                "--input",
                "x.npy",
                "--output",
                "y.npy",
                "--top",
                "2",
            ],
            "error: the argument '--input <INPUT>' cannot be used with '--top <TOP>' (see --help)",
        ),
        (
            vec!["train", "--epoch", "3"],
            "error: unexpected argument '--epoch' found; tip: a similar argument exists: '--epochs' (see --help)",
        ),
        (
            vec!["train", "--batch-size", "many"],
            "error: invalid value 'many' for '--batch-size <BATCH_SIZE>': invalid digit found in string (see --help)",
        ),
    ] {
        let out = run(&args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end(), want, "{args:?}");
    }
}
