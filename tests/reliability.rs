//! Issue 5, parts 3–5, on the real binary: Ctrl-C saves a resumable checkpoint, SIGKILL never
//! leaves a torn one, divergence keeps the last good one, and runs are deterministic.

use scratchnet::checkpoint;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

mod common;
use common::{bin, fails, idx_split, ok, s, signal, toy_data};

const MODEL: &str = "Linear(4,64), ReLU, Linear(64,3)";

#[test]
fn sigint_finishes_the_batch_saves_and_resume_matches_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 4000);
    let args = |out: &Path| {
        let mut a: Vec<String> = [
            "train",
            "--data",
            &data,
            "--model",
            MODEL,
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(
            [
                "--batch-size",
                "1",
                "--epochs",
                "150",
                "--seed",
                "3",
                "--out",
                s(out),
            ]
            .map(String::from),
        );
        a
    };
    let one_go = d.join("one-go.safetensors");
    ok(&args(&one_go).iter().map(String::as_str).collect::<Vec<_>>());

    // Interrupt in the middle of epoch 2 (after its first progress line).
    let cut = d.join("cut.safetensors");
    let mut child = bin()
        .args(args(&cut))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("epoch 2/150:");
        seen.push(line);
        if started {
            signal(child.id(), "-INT");
            break;
        }
    }
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let out = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.contains("interrupted in epoch ") && out.contains(" after batch "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Resume with:\n  scratchnet train --resume {} --epochs 150",
            cut.display()
        )),
        "{out}"
    );

    ok(&[
        "train",
        "--resume",
        s(&cut),
        "--epochs",
        "150",
        "--out",
        s(&cut),
        "--quiet",
    ]);
    let (a, b) = (
        checkpoint::read(&one_go).unwrap(),
        checkpoint::read(&cut).unwrap(),
    );
    assert_eq!(
        a.tensors, b.tensors,
        "interrupted + resumed = one go, bit for bit"
    );
}

#[test]
fn sigkill_at_any_moment_leaves_a_whole_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = toy_data(d, 200);
    let out = d.join("ck.safetensors");
    let model = "Linear(4,512), ReLU, Linear(512,512), ReLU, Linear(512,3)"; // 1 MiB checkpoints
    let mut kills_with_a_file = 0;
    for i in 0..25u64 {
        let mut child = bin()
            .args([
                "train",
                "--data",
                &data,
                "--model",
                model,
                "--epochs",
                "100000",
                "--checkpoint-every",
                "1",
            ])
            .args(["--quiet", "--out", s(&out)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + 37 * i % 160));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if out.exists() {
            kills_with_a_file += 1;
            let ck =
                checkpoint::read(&out).unwrap_or_else(|e| panic!("kill {i}: torn checkpoint: {e}"));
            assert_eq!(ck.tensors.len(), 6, "kill {i}: every tensor present");
            assert!(ck.model_text().is_some());
            // It holds the training state, too.
            scratchnet::resume::Resume::read(&out).unwrap_or_else(|e| panic!("kill {i}: {e}"));
        }
    }
    assert!(
        kills_with_a_file >= 20,
        "most kills happened after a first save ({kills_with_a_file})"
    );
}

#[test]
fn divergence_names_epoch_batch_layer_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x: Vec<f32> = (0..800)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 5.0)
        .collect();
    scratchnet::data::npy::write_npy_f32(&d.join("x.npy"), &[200, 4], &x).unwrap();
    let y: Vec<f32> = x.chunks(4).map(|r| r.iter().sum::<f32>().powi(3)).collect();
    scratchnet::data::npy::write_npy_f32(&d.join("y.npy"), &[200, 1], &y).unwrap();
    let data = format!(
        "{}:{}",
        d.join("x.npy").display(),
        d.join("y.npy").display()
    );
    let out = d.join("good.safetensors");
    let train = |lr: &str, extra: &[&str]| {
        let mut a = vec![
            "train",
            "--data",
            &data,
            "--model",
            "Linear(4,16), ReLU, Linear(16,1)",
            "--loss",
            "mse",
        ];
        a.extend_from_slice(&[
            "--lr",
            lr,
            "--no-shuffle",
            "--quiet",
            "--out",
            s(&out),
            "--epochs",
            "2",
        ]);
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = train("1e-9", &[]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let before = std::fs::read(&out).unwrap();

    // The same run from those weights with a huge learning rate blows up.
    let args = train("0.5", &["--init", s(&out)]);
    let e = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("training diverged at epoch 1, batch "), "{e}");
    assert!(
        e.contains("went NaN or infinite; first bad values: output of layer "),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "the last good checkpoint is still {}",
            out.display()
        )),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the checkpoint is untouched"
    );
}

#[test]
fn nan_in_the_data_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut x = vec![0.5f32; 40];
    x[13] = f32::NAN;
    scratchnet::data::npy::write_npy_f32(&d.join("x.npy"), &[10, 4], &x).unwrap();
    common::labels_npy(&d.join("y.npy"), &[0; 10]);
    let data = format!(
        "{}:{}",
        d.join("x.npy").display(),
        d.join("y.npy").display()
    );
    let e = fails(&[
        "train",
        "--data",
        &data,
        "--model",
        "Linear(4,2)",
        "--out",
        s(&d.join("o.safetensors")),
    ]);
    assert!(
        e.contains("training data: sample 3 of the inputs holds NaN"),
        "{e}"
    );
}

/// Networks that take every parallel path: a CNN with Dropout (products cut across the cores), the
/// same without (small enough to train in two halves of each batch), and lenet (convolutions that
/// run their ReLU and max pool image by image, in runs of images), and one with BatchNorm (channel
/// sums), a residual block, Dropout2d, GELU, SiLU and an adaptive pool; an LSTM row by row (past the
/// size that trains in halves: its products are cut across the cores) and a small two-layer
/// bidirectional GRU (trained in halves).
const NETS: [&str; 6] = [
    "Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,64), ReLU, Dropout(0.1), Linear(64,10)",
    "Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,64), ReLU, Linear(64,10)",
    "lenet",
    "Conv2d(1,8,3,stride=2,bias=False), BatchNorm2d(8), ReLU, Residual(Conv2d(8,8,3,padding=1,bias=False), BatchNorm2d(8), GELU), Dropout2d(0.1), AdaptiveAvgPool2d(2), Flatten, Linear(32,16), BatchNorm1d(16), SiLU, Linear(16,10)",
    "Flatten(1, 2), LSTM(28, 128), Select(1, -1), Linear(128, 10)",
    "Flatten(1, 2), GRU(28, 16, num_layers=2, bidirectional=True), Select(1, -1), Linear(32, 10)",
];

/// Trains `model` on 28×28 images with `threads` threads; returns the weights.
fn cnn_weights(
    dir: &Path,
    model: &str,
    threads: &str,
    name: &str,
) -> std::collections::BTreeMap<String, Vec<u32>> {
    let out = dir.join(name);
    ok(&[
        "--threads",
        threads,
        "train",
        "--data",
        s(&dir.join("data")),
        "--model",
        model,
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--momentum",
        "0.9",
        "--seed",
        "7",
        "--quiet",
        "--out",
        s(&out),
    ]);
    checkpoint::read(&out)
        .unwrap()
        .tensors
        .into_iter()
        .map(|(k, t)| (k, t.into_data().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// The real binary on 1, 2, 3 and 4 threads writes the same weights, bit for bit (on a machine with
/// fewer cores, --threads is capped at the cores: the library test below runs 3 and 4 for real).
#[test]
fn one_seed_gives_the_same_bits_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    idx_split(&dir.path().join("data"), "train", 600);
    for model in NETS {
        let one = cnn_weights(dir.path(), model, "1", "one.safetensors");
        for threads in ["2", "3", "4"] {
            let other = cnn_weights(dir.path(), model, threads, "other.safetensors");
            assert!(one == other, "{model}: {threads} threads differ from 1");
        }
    }
}

/// The training loop itself on rayon pools of 1, 2, 3 and 4 threads, whatever the machine's cores.
#[test]
fn the_trainer_gives_the_same_bits_on_pools_of_1_to_4_threads() {
    use rand::{Rng, SeedableRng};
    use scratchnet::data::dataset::{Dataset, Labels};
    use scratchnet::model::Model;
    use scratchnet::optim::{Config, Optimizer};
    use scratchnet::tensor::Tensor;
    use scratchnet::train::{Schedule, Trainer, flat_params};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let n = 230;
    let x: Vec<f32> = (0..n * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
    let y = (0..n).map(|i| (i % 10) as u32).collect();
    let data = Dataset::new(Tensor::new(&[n, 1, 28, 28], x).unwrap(), Labels::Classes(y)).unwrap();
    for model in NETS.iter().chain(&["mlp"]) {
        let weights: Vec<Vec<u32>> = (1..=4)
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
                    let net = Model::build(model, &[1, 28, 28], &mut rng).unwrap();
                    let config = Config::Sgd {
                        lr: 0.05,
                        momentum: 0.9,
                        dampening: 0.0,
                        weight_decay: 0.0,
                        nesterov: false,
                    };
                    let schedule = Schedule {
                        batch_size: 50,
                        shuffle: true,
                        seed: 5,
                    };
                    let mut t = Trainer::new(
                        net,
                        Optimizer::new(config).unwrap(),
                        scratchnet::Loss::CrossEntropy,
                        schedule,
                    );
                    for _ in 0..2 {
                        t.run_epoch(&data, Some(&data), None, &mut |_, _, _| {})
                            .unwrap();
                    }
                    flat_params(&mut t.model)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                })
            })
            .collect();
        for (t, w) in weights.iter().enumerate().skip(1) {
            assert!(*w == weights[0], "{model}: {} threads differ from 1", t + 1);
        }
    }
}
