//! Issue 16 on the real binary under `mpirun`: R ranks train the weights one process trains, stop
//! together when interrupted and resume exactly, end within seconds when a rank dies, and refuse to
//! start when their flags or data differ. Needs `cargo test --features mpi` and Open MPI.
//!
//! The bound: R ranks and one process differ only in the order of float sums (each rank sums its
//! share of the batch, then the shares are added), about 1 ulp per step. Over the few steps of a
//! golden case that stays within `1e-5 · (largest change of the tensor) + 1e-7`; over 300 steps of
//! SGD with momentum it grows (a ReLU input near 0 may flip) to 2e-4 of a tensor's largest value
//! (measured: 2.0e-4 for --threads 2 against --threads 1 in one process alike), so there the test
//! allows 1e-3 and checks that another seed lands far outside it. With BatchNorm (its statistics
//! summed over the ranks) and Dropout, 300 steps stay within 1e-5 for SGD with momentum and Adam
//! alike (measured on 2 ranks: 1.1e-6 and 4.3e-7), running statistics included.
#![cfg(feature = "mpi")]

use scratchnet::checkpoint::{self, Checkpoint};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{golden, labels_npy, npy_bytes, ok, s, toy_data};

/// `mpirun` with `np` ranks of the binary, each on one thread.
fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &np.to_string(),
    ])
    .arg(env!("CARGO_BIN_EXE_scratchnet"))
    .args(["--threads", "1"]);
    c
}

fn run_ok(np: usize, args: &[&str]) -> String {
    let out = mpirun(np).args(args).output().expect("mpirun runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpirun -np {np} {args:?}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// One rank per argument list (MPMD: `mpirun -np 1 A : -np 1 B`), which must fail.
fn ranks_fail(ranks: &[&[&str]]) -> String {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe"]);
    for (i, args) in ranks.iter().enumerate() {
        if i > 0 {
            c.arg(":");
        }
        c.args([
            "-np",
            "1",
            env!("CARGO_BIN_EXE_scratchnet"),
            "--threads",
            "1",
        ])
        .args(*args);
    }
    let out = c.output().expect("mpirun runs");
    assert!(!out.status.success(), "{ranks:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn read(p: &Path) -> Checkpoint {
    checkpoint::read(p).unwrap_or_else(|e| panic!("{e}"))
}

/// For each tensor: the largest |a − b|, and the largest |a|.
fn gaps(a: &Checkpoint, b: &Checkpoint) -> Vec<(String, f32, f32)> {
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    a.tensors
        .iter()
        .map(|(name, t)| {
            let u = &b.tensors[name];
            let gap = t
                .data()
                .iter()
                .zip(u.data())
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let size = t.data().iter().fold(0f32, |m, x| m.max(x.abs()));
            (name.clone(), gap, size)
        })
        .collect()
}

/// Trains a golden case on 2 and 3 ranks through the CLI contract, each with the whole data and
/// with `--shard` (each rank reads its rows of the .npy files); each must match PyTorch as one
/// process does, and one process within the bound of the module docs.
fn golden_on_ranks(case: &str, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let g = golden(case);
    let data = format!(
        "{}:{}",
        g.join("x.npy").display(),
        g.join("y.npy").display()
    );
    let init = g.join("init.safetensors");
    let out = |n: usize| dir.path().join(format!("r{n}.safetensors"));
    let args = |n: usize| -> Vec<String> {
        let mut a: Vec<String> = ["train", "--init", init.to_str().unwrap(), "--data", &data]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--no-shuffle", "--quiet", "--out"].map(String::from));
        a.push(out(n).to_str().unwrap().into());
        a.extend(flags.iter().map(|s| s.to_string()));
        a
    };
    ok(&strs(&args(1)));
    let (start, torch, one) = (
        read(&init),
        read(&g.join("after.safetensors")),
        read(&out(1)),
    );
    let update = gaps(&start, &torch);
    for (np, shard) in [(2, ""), (3, ""), (2, "--shard"), (3, "--shard")] {
        let mut args = args(np);
        args.extend((!shard.is_empty()).then(|| shard.to_string()));
        run_ok(np, &strs(&args));
        let ranks = read(&out(np));
        let both = gaps(&ranks, &torch).into_iter().zip(gaps(&ranks, &one));
        for ((name, to_torch, _), (_, to_one, _)) in both {
            let (_, update, _) = update.iter().find(|u| u.0 == name).unwrap();
            assert!(
                to_torch <= 1e-3 * update + 1e-7,
                "{case} on {np} ranks {shard}, {name}: {to_torch} from PyTorch, update {update}"
            );
            assert!(
                to_one <= 1e-5 * update + 1e-7,
                "{case} on {np} ranks {shard}, {name}: {to_one} from one process, update {update}"
            );
        }
    }
}

#[test]
fn golden_sgd_momentum_on_ranks_matches_pytorch_and_one_process() {
    let f = "--loss cross-entropy --lr 0.1 --momentum 0.9 --epochs 2 --batch-size 5";
    golden_on_ranks("seed_cnn", &f.split(' ').collect::<Vec<_>>());
}

#[test]
fn golden_nesterov_weight_decay_mse_on_ranks_matches_pytorch_and_one_process() {
    let f = "--loss mse --lr 0.05 --momentum 0.9 --nesterov --weight-decay 0.001 --epochs 2 --batch-size 4";
    golden_on_ranks("conv_stride3_pad2", &f.split(' ').collect::<Vec<_>>());
}

/// `--lr L --momentum M --epochs E --batch-size B` with a loss.
fn sgd(loss: &str, lr: &str, momentum: &str, epochs: &str, batch: &str) -> Vec<String> {
    format!("--loss {loss} --lr {lr} --momentum {momentum} --epochs {epochs} --batch-size {batch}")
        .split(' ')
        .map(String::from)
        .collect()
}

// BatchNorm: every rank normalises with the whole batch's statistics and keeps the running
// statistics one process keeps (they are in the checkpoints compared). The last batch of each
// case (2 rows) leaves a rank of three with no rows, which still meets every sum.

#[test]
fn golden_batchnorm1d_on_ranks_matches_pytorch_and_one_process() {
    golden_on_ranks(
        "bn1d_mlp",
        &strs(&sgd("cross-entropy", "0.1", "0.9", "2", "4")),
    );
    golden_on_ranks("bn1d_sequence", &strs(&sgd("mse", "0.05", "0", "3", "3")));
}

#[test]
fn golden_batchnorm2d_on_ranks_matches_pytorch_and_one_process() {
    golden_on_ranks(
        "bn2d_cnn",
        &strs(&sgd("cross-entropy", "0.05", "0.9", "2", "5")),
    );
}

#[test]
fn golden_residual_batchnorm_adam_on_ranks_matches_pytorch_and_one_process() {
    let f = "--loss cross-entropy --optimizer adam --lr 0.01 --epochs 2 --batch-size 4";
    golden_on_ranks("residual_bn", &f.split(' ').collect::<Vec<_>>());
}

#[test]
fn golden_adam_on_ranks_matches_pytorch_and_one_process() {
    let f = "--loss mse --optimizer adam --lr 0.01 --beta1 0.8 --beta2 0.99 --eps 1e-6 \
             --weight-decay 0.01 --epochs 2 --batch-size 4";
    golden_on_ranks("pools", &f.split_whitespace().collect::<Vec<_>>());
}

/// The model of the real-data runs.
const CONV_DROPOUT: &str = "Conv2d(1,4,3,stride=2), ReLU, Flatten, Dropout(0.3), Linear(676,10)";

/// 300 steps of `model` on Fashion-MNIST, on 1, 2 and 3 ranks, the latter with the whole data and
/// with `--shard`: the weights and buffers within `bound` of each tensor's largest value.
fn real_data(model: &str, optimizer: &[&str], bound: f32) {
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let args = |name: &str, seed: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--model",
            model,
            "--data",
            "fashion-mnist",
            "--limit",
            "4000",
            "--batch-size",
            "40",
            "--epochs",
            "3",
            "--seed",
            seed,
            "--quiet",
            "--out",
        ]
        .map(String::from)
        .to_vec();
        a.push(out(name).to_str().unwrap().into());
        a.extend(optimizer.iter().map(|s| s.to_string()));
        a
    };
    let one_lines = ok(&strs(&args("one", "7")));
    ok(&strs(&args("other_seed", "8")));
    let one = read(&out("one"));
    for (np, shard) in [(2, ""), (3, ""), (2, "--shard"), (3, "--shard")] {
        let name = format!("r{np}{shard}");
        let mut args = args(&name, "7");
        args.extend((!shard.is_empty()).then(|| shard.to_string()));
        let lines = run_ok(np, &strs(&args));
        for (name, gap, size) in gaps(&read(&out(&name)), &one) {
            assert!(
                gap <= bound * size,
                "{np} ranks {shard}, {name}: {gap} of {size}"
            );
        }
        assert_eq!(figures(&lines), figures(&one_lines), "{np} ranks {shard}");
    }
    // The bound is far below what tells two runs apart (BatchNorm's step counts aside).
    let other = gaps(&read(&out("other_seed")), &one);
    assert!(
        other
            .iter()
            .filter(|(name, ..)| !name.ends_with("num_batches_tracked"))
            .all(|(_, gap, size)| *gap > 20.0 * bound * size),
        "{other:?}"
    );
}

#[test]
fn real_data_with_dropout_sgd_momentum_on_ranks_is_one_process() {
    real_data(CONV_DROPOUT, &["--momentum", "0.9"], 1e-3);
}

/// Each rank augments the rows of its share as one process does (`--augment` draws by position).
/// At this model's default lr 0.1 the augmented run is on the edge of stability, and the ranks'
/// other order of float sums (1e-7 after an epoch) grows past the bound: lr 0.02 keeps it stable.
#[test]
fn real_data_with_dropout_and_augment_on_ranks_is_one_process() {
    real_data(
        CONV_DROPOUT,
        &[
            "--lr",
            "0.02",
            "--momentum",
            "0.9",
            "--augment",
            "RandomCrop(28, padding=2), RandomHorizontalFlip(), RandomAffine(10, translate=(0.1, 0.1))",
        ],
        1e-3,
    );
}

#[test]
fn real_data_with_dropout_adam_on_ranks_is_one_process() {
    real_data(
        CONV_DROPOUT,
        &["--optimizer", "adam", "--lr", "0.003"],
        1e-5,
    );
}

/// BatchNorm2d and BatchNorm1d (running statistics compared too) with Dropout between. No bias
/// before a BatchNorm: its true gradient is 0, so its value would follow the rounding noise of the
/// sums, which momentum and Adam amplify (measured with `Linear(676,16)`, 2 ranks against one
/// process: 6e-3 of a tensor's largest value for SGD, 0.4 for that bias under Adam; without the
/// bias: 1.1e-6 and 4.3e-7).
const BATCHNORM_DROPOUT: &str = "Conv2d(1,4,3,stride=2,bias=False), BatchNorm2d(4), ReLU, Flatten, \
     Dropout(0.3), Linear(676,16,bias=False), BatchNorm1d(16), ReLU, Linear(16,10)";

#[test]
fn real_data_with_batchnorm_and_dropout_sgd_momentum_on_ranks_is_one_process() {
    real_data(BATCHNORM_DROPOUT, &["--momentum", "0.9"], 1e-5);
}

#[test]
fn real_data_with_batchnorm_and_dropout_adam_on_ranks_is_one_process() {
    real_data(
        BATCHNORM_DROPOUT,
        &["--optimizer", "adam", "--lr", "0.003"],
        1e-5,
    );
}

#[test]
fn batches_smaller_than_the_ranks_and_one_rank() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 31);
    let out = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let args = |name: &str| -> Vec<String> {
        let model = "Linear(4,16), ReLU, Dropout(0.2), Linear(16,3)";
        let flags = "--batch-size 2 --epochs 3 --momentum 0.9 --quiet";
        let flags: Vec<&str> = flags.split(' ').collect();
        with_out(
            &[&["train", "--data", &data, "--model", model], &flags[..]].concat(),
            &out(name),
        )
    };
    ok(&strs(&args("one")));
    // One rank under mpirun is the plain run, bit for bit.
    run_ok(1, &strs(&args("r1")));
    assert_eq!(read(&out("r1")).tensors, read(&out("one")).tensors);
    // Three ranks, batches of 2 (and a last one of 1): one rank or two idle every step.
    run_ok(3, &strs(&args("r3")));
    for (name, gap, size) in gaps(&read(&out("r3")), &read(&out("one"))) {
        assert!(gap <= 1e-5 * size, "{name}: {gap} of {size}");
    }
}

/// `--shard`: each rank holds its contiguous third of the training pair and of the test pair (it
/// says so, counting the rows it keeps: 4 bytes for each of a row's 4 inputs and 1 label), batches
/// of 2 put each row wherever the shuffle sends it
/// (a rank often computes none of a batch, or all of it), and the weights are one process's.
/// Alone (`-np 1`), `--shard` is the plain run bit for bit; `--resume` continues it bit for bit.
#[test]
fn shard_holds_a_third_and_trains_the_one_process_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 32);
    std::fs::create_dir(dir.path().join("test")).unwrap();
    let test = toy_data(&dir.path().join("test"), 10);
    let out = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let args = |name: &str| -> Vec<String> {
        let model = "Linear(4,16,bias=False), BatchNorm1d(16), ReLU, Dropout(0.2), Linear(16,3)";
        let flags = "--batch-size 2 --epochs 3 --optimizer adam --lr 0.01 --shard";
        let flags: Vec<&str> = flags.split(' ').collect();
        let data = [
            "train",
            "--data",
            &data,
            "--test-data",
            &test,
            "--model",
            model,
        ];
        with_out(&[&data[..], &flags[..]].concat(), &out(name))
    };
    let one = ok(&strs(&args("one")));
    assert!(
        !one.contains(" holds "),
        "one process holds every row: {one}"
    );
    run_ok(1, &strs(&args("r1")));
    assert_eq!(read(&out("r1")).tensors, read(&out("one")).tensors);
    let three = run_ok(3, &strs(&args("r3")));
    for want in [
        "rank 0 of 3 holds training rows 0..11 of 32 (0.2 kB), test rows 0..4 of 10 (0.1 kB)",
        "rank 1 of 3 holds training rows 11..22 of 32 (0.2 kB), test rows 4..7 of 10 (0.1 kB)",
        "rank 2 of 3 holds training rows 22..32 of 32 (0.2 kB), test rows 7..10 of 10 (0.1 kB)",
    ] {
        assert!(three.lines().any(|l| l == want), "{want}: {three}");
    }
    for (name, gap, size) in gaps(&read(&out("r3")), &read(&out("one"))) {
        assert!(gap <= 1e-5 * size, "{name}: {gap} of {size}");
    }
    assert_eq!(figures(&three), figures(&one));
    // Two epochs, then --resume to the third: the 3-epoch run bit for bit.
    let mut two = args("resumed");
    two.iter_mut()
        .filter(|a| *a == "3")
        .for_each(|a| *a = "2".into());
    run_ok(3, &strs(&two));
    let resumed = out("resumed");
    let resume = [
        "train",
        "--resume",
        s(&resumed),
        "--epochs",
        "3",
        "--shard",
        "--quiet",
    ];
    run_ok(3, &resume);
    assert_eq!(read(&out("resumed")).tensors, read(&out("r3")).tensors);
}

/// uint8 pixels on 2 ranks with `--shard` (each reads its rows of the .npy as bytes: 1 byte a
/// pixel, said in its line) and `--augment`: the weights of the same pixels given as float32
/// `byte / 255`, bit for bit.
#[test]
fn sharded_uint8_pixels_train_the_weights_of_the_same_floats() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let n = 24;
    let px: Vec<u8> = (0..n * 64).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(p("u8.npy"), npy_bytes("|u1", false, &[n, 8, 8], &px)).unwrap();
    let f: Vec<f32> = px.iter().map(|&b| b as f32 / 255.0).collect();
    scratchnet::data::npy::write_npy_f32(&p("f32.npy"), &[n, 1, 8, 8], &f).unwrap();
    labels_npy(
        &p("y.npy"),
        &(0..n as i64).map(|k| k % 2).collect::<Vec<_>>(),
    );
    let args = |x: &str| -> Vec<String> {
        let data = format!("{}:{}", s(&p(x)), s(&p("y.npy")));
        let model = "Conv2d(1,2,3), ReLU, Flatten, Linear(72,2)";
        let flags = [
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--augment",
            "RandomHorizontalFlip()",
            "--shard",
        ];
        let run = ["train", "--data", &data, "--model", model];
        with_out(
            &[&run[..], &flags[..]].concat(),
            &p(&format!("{x}.safetensors")),
        )
    };
    let bytes = run_ok(2, &strs(&args("u8.npy")));
    let want = "rank 0 of 2 holds training rows 0..12 of 24 (0.8 kB)";
    assert!(bytes.lines().any(|l| l == want), "{want}: {bytes}");
    let floats = run_ok(2, &strs(&args("f32.npy")));
    assert!(floats.contains("rows 0..12 of 24 (3.1 kB)"), "{floats}");
    assert_eq!(
        read(&p("u8.npy.safetensors")).tensors,
        read(&p("f32.npy.safetensors")).tensors
    );
}

/// The ranks `mpirun` (`pid`) started: `(rank, pid)`, found by parent and environment in /proc.
fn ranks_of(pid: u32, deadline: Instant) -> Vec<(usize, u32)> {
    loop {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(pid) {
                continue;
            }
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let rank = env
                .split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))
                .and_then(|r| r.parse().ok());
            if let Some(r) = rank {
                found.push((r, child));
            }
        }
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `mpirun -np 2` on `args`, its stdout and stderr going to files in `dir`.
fn spawn(dir: &Path, args: &[String]) -> Child {
    let file = |n: &str| std::fs::File::create(dir.join(n)).unwrap();
    mpirun(2)
        .args(args)
        .stdout(Stdio::from(file("stdout")))
        .stderr(Stdio::from(file("stderr")))
        .spawn()
        .unwrap()
}

/// Waits until `dir/name` exists and holds `text`.
fn wait_for(dir: &Path, name: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(dir.join(name)).is_ok_and(|s| s.contains(text)) {
        assert!(Instant::now() < deadline, "no '{text}' in {name}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to end (a run still going after 60 s is a hang): its exit code, and the
/// stdout and stderr it wrote to `dir`.
fn wait_or_hang(child: &mut Child, dir: &Path) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mpirun still running 60 s after the event");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    (status.code(), text("stdout"), text("stderr"))
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `flags` then `--out out`, as owned arguments.
fn with_out(flags: &[&str], out: &Path) -> Vec<String> {
    let mut a: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    a.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
    a
}

/// The epoch lines (4 decimals), apart from the timings.
fn figures(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| l.starts_with("epoch "))
        .map(|l| l.split("|  train ").next().unwrap().to_string())
        .collect()
}

/// Fashion-MNIST flags for a run of a few seconds (1000 steps per epoch).
fn long_run(out: &Path, epochs: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--model",
        "Flatten, Linear(784,32), ReLU, Dropout(0.2), Linear(32,10)",
        "--data",
        "fashion-mnist",
        "--limit",
        "20000",
        "--batch-size",
        "20",
        "--lr",
        "0.01",
        "--momentum",
        "0.9",
        "--seed",
        "2",
        "--checkpoint-every",
        "1",
        "--quiet",
        "--epochs",
    ]
    .map(String::from)
    .to_vec();
    a.extend([
        epochs.to_string(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ]);
    a
}

#[test]
fn sigint_on_one_rank_stops_all_after_one_batch_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (stopped, whole) = (d.join("stopped.safetensors"), d.join("whole.safetensors"));
    let mut child = spawn(d, &long_run(&stopped, "3"));
    wait_for(d, "stdout", "epoch 1/3");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ranks = ranks_of(child.id(), deadline);
    let (_, rank0) = ranks.iter().find(|(r, _)| *r == 0).expect("rank 0");
    signal(*rank0, "-INT");
    let (code, out, err) = wait_or_hang(&mut child, d);
    assert_eq!(code, Some(130), "{err}");
    assert!(out.contains("interrupted in epoch 2 after batch "), "{out}");
    // Resumed under mpirun, it ends where the uninterrupted run ends, bit for bit.
    let resume = [
        "train",
        "--resume",
        stopped.to_str().unwrap(),
        "--epochs",
        "3",
        "--quiet",
    ];
    run_ok(
        2,
        &[&resume[..], &["--out", stopped.to_str().unwrap()]].concat(),
    );
    run_ok(2, &strs(&long_run(&whole, "3")));
    assert_eq!(read(&stopped).tensors, read(&whole).tensors);
}

#[test]
fn ctrl_c_at_mpirun_stops_the_ranks_and_rank_0_saves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("c.safetensors");
    let mut child = spawn(d, &long_run(&out, "20"));
    wait_for(d, "stdout", "epoch 1/20");
    signal(child.id(), "-INT");
    let (_, stdout, err) = wait_or_hang(&mut child, d);
    assert!(stdout.contains("interrupted in epoch "), "{stdout} {err}");
    let r = scratchnet::resume::Resume::read(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.position.epoch >= 1 && r.position.batch > 0,
        "{:?}",
        r.position
    );
}

#[test]
fn a_killed_rank_ends_the_run_naming_it_and_the_last_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("k.safetensors");
    let mut child = spawn(d, &long_run(&out, "20"));
    wait_for(d, "stdout", "epoch 1/20");
    let ranks = ranks_of(child.id(), Instant::now() + Duration::from_secs(10));
    let (_, rank1) = ranks.iter().find(|(r, _)| *r == 1).expect("rank 1");
    signal(*rank1, "-KILL");
    let (code, _, err) = wait_or_hang(&mut child, d);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("process rank 1") && err.contains("signal 9"),
        "{err}"
    );
    // Rank 0's last checkpoint is whole and continues under mpirun.
    let r = scratchnet::resume::Resume::read(&out).unwrap_or_else(|e| panic!("{e}"));
    let next = (r.position.epoch + 1).to_string();
    let resume = [
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--epochs",
        &next,
        "--quiet",
    ];
    let lines = run_ok(2, &resume);
    assert!(lines.contains(&format!("epoch {next}/{next}")), "{lines}");
}

#[test]
fn ranks_started_differently_are_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never-written.safetensors");
    let common = [
        "train",
        "--model",
        "seed-cnn",
        "--data",
        "fashion-mnist",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        never.to_str().unwrap(),
    ];
    let err = ranks_fail(&[
        &[&common[..], &["--limit", "200", "--seed", "3"]].concat(),
        &[&common[..], &["--limit", "200", "--seed", "4"]].concat(),
    ]);
    let want = "error: rank 1 was started with other --seed than rank 0 (4 against 3)";
    assert_eq!(err.matches(want).count(), 1, "said once, by rank 0: {err}");
    // With --shard the ranks hold different rows, and still agree on how many there are.
    for shard in [&[][..], &["--shard"]] {
        let limit = |n| [&common[..], &["--limit", n], shard].concat();
        let err = ranks_fail(&[&limit("200"), &limit("200"), &limit("100")]);
        assert!(
            err.contains(
                "rank 2 was started with other training data than rank 0 (100 samples of shape \
                 [1, 28, 28] against 200 samples"
            ),
            "{shard:?}: {err}"
        );
    }
    let err = ranks_fail(&[
        &[&common[..], &["--limit", "200", "--shard"]].concat(),
        &[&common[..], &["--limit", "200"]].concat(),
    ]);
    assert!(
        err.contains("rank 1 was started with other --shard than rank 0 (false against true)"),
        "{err}"
    );
    // A rank that cannot read its data (a bad file on one machine) ends the run at once.
    let err = ranks_fail(&[
        &[&common[..], &["--limit", "200"]].concat(),
        &[
            "train",
            "--model",
            "seed-cnn",
            "--data",
            "/nope/x.npy:/nope/y.npy",
            "--out",
            never.to_str().unwrap(),
        ],
    ]);
    assert!(
        err.contains("error: rank 1 of 2: /nope/x.npy: No such file"),
        "{err}"
    );
    assert!(!never.exists());
}

/// Early stopping, a learning-rate schedule and gradient clipping decide the same on every rank
/// (the test figures and the gradient are the whole batch's), so 3 ranks stop where one process
/// stops, keeping the same best epoch; with `--shard` too.
#[test]
fn training_controls_decide_alike_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy_data(dir.path(), 300);
    let out = |n: &str| dir.path().join(format!("{n}.safetensors"));
    let args = |name: &str| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--data",
            &data,
            "--test-split",
            "0.3",
            "--model",
            "Linear(4,16), ReLU, Dropout(0.2), Linear(16,3)",
            "--epochs",
            "40",
            "--lr",
            "0.5",
            "--momentum",
            "0.9",
            "--early-stopping",
            "2",
            "--lr-schedule",
            "StepLR(step_size=3, gamma=0.5)",
            "--clip-grad-norm",
            "1.0",
            "--quiet",
            "--out",
        ]
        .map(String::from)
        .to_vec();
        a.push(out(name).to_str().unwrap().into());
        a
    };
    let one = ok(&strs(&args("one")));
    let three = run_ok(3, &strs(&args("three")));
    let last = |s: &str| s.lines().rev().nth(1).unwrap_or_default().to_string();
    assert!(
        last(&one).starts_with("early stopping after epoch "),
        "{one}"
    );
    assert_eq!(last(&three), last(&one));
    for (name, gap, size) in gaps(&read(&out("three")), &read(&out("one"))) {
        assert!(gap <= 1e-5 * size, "{name}: {gap} of {size}");
    }
    // --shard with --test-split: the pair is read whole, split, and each rank keeps its third of
    // both sets; the test figures summed over the ranks decide the same.
    let mut sharded = args("sharded");
    sharded.push("--shard".into());
    let sharded = run_ok(3, &strs(&sharded));
    assert_eq!(last(&sharded), last(&one));
    for (name, gap, size) in gaps(&read(&out("sharded")), &read(&out("one"))) {
        assert!(gap <= 1e-5 * size, "--shard, {name}: {gap} of {size}");
    }
}
