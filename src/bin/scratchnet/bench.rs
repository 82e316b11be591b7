//! `scratchnet bench`: training-epoch and test-pass timings of a model on in-memory data, in the
//! same units as `tools/bench_pytorch.py`, so the two can be compared side by side.

use rand::SeedableRng;
use scratchnet::data::augment::Augment;
use scratchnet::data::dataset::Dataset;
use scratchnet::error::Result;
use scratchnet::kernels::{Op, matmul};
use scratchnet::layers::Layer;
use scratchnet::layers::Recurrent;
use scratchnet::loss::Loss;
use scratchnet::model::Model;
use scratchnet::optim::{Config, Optimizer};
use scratchnet::train::{Schedule, Trainer, evaluate};
use serde::Serialize;
use std::any::Any;
use std::path::Path;
use std::time::Instant;

/// One model's measurements.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub version: &'static str,
    pub model: String,
    pub threads: usize,
    pub samples: usize,
    pub epoch_seconds: Vec<f64>,
    pub median_seconds: f64,
    pub samples_per_second: f64,
    pub gflop_per_epoch: f64,
    pub gflops: f64,
    pub test_seconds: f64,
    pub peak_rss_mib: f64,
    pub final_loss: f64,
    /// With `--augment`: the epochs with it, each run right after one of `epoch_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment_epoch_seconds: Option<Vec<f64>>,
    /// Their median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment_median_seconds: Option<f64>,
}

/// Training FLOPs of one sample: forward, weight gradient and input gradient of every product
/// (2 FLOPs per multiply-accumulate), less the input gradient of the first layer, which nobody
/// needs unless a layer before it learns (an Embedding).
pub fn train_flops_per_sample(model: &Model) -> f64 {
    let net = model.net_ref();
    let total = net.macs(model.input_shape());
    // The first layer that learns or computes, at the shape that reaches it (a Flatten may come first).
    let mut shape = model.input_shape().to_vec();
    let mut unneeded = 0;
    for l in net.layers() {
        let mut learns = false;
        l.params("", &mut |_, _| learns = true);
        if learns || l.macs(&shape) > 0 {
            unneeded = input_grad_macs(l.as_ref(), &shape);
            break;
        }
        shape = l.output_shape(&shape).unwrap_or_default();
    }
    (6 * total - 2 * unneeded) as f64
}

/// The MACs of a layer's input gradient for one sample `[…]`: a Linear's or a convolution's whole
/// product; a recurrent layer's input projection only, `T·dirs·gates·H·F` (its products through
/// time are needed for its own weights whatever comes before); an Embedding's none.
fn input_grad_macs(layer: &dyn Layer, shape: &[usize]) -> usize {
    match (layer as &dyn Any).downcast_ref::<Recurrent>() {
        Some(r) => {
            let dirs = if r.bidirectional() { 2 } else { 1 };
            shape.iter().product::<usize>() * dirs * r.cell().gates() * r.hidden_size()
        }
        None => layer.macs(shape),
    }
}

/// The process's peak resident set size in MiB (Linux `VmHWM`), or 0 where unknown.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Times `repeats` training epochs (batch 50, SGD lr 0.1, cross-entropy, shuffled) after a warm-up,
/// and one test pass. With `augment`, every timed epoch is followed by one with it (side by side,
/// alternating, in one process).
pub fn bench(
    model_text: &str,
    train: &Dataset,
    test: &Dataset,
    repeats: usize,
    augment: Option<&Augment>,
) -> Result<BenchResult> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = Model::build(model_text, train.sample_shape(), &mut rng)?;
    let flops = train_flops_per_sample(&model) * train.len() as f64;
    let schedule = Schedule {
        batch_size: 50,
        shuffle: true,
        seed: 0,
    };
    let optimizer = Optimizer::new(Config::sgd(0.1))?;
    let mut trainer = Trainer::new(model, optimizer, Loss::CrossEntropy, schedule);
    // Warm-up: 20 batches, so that every buffer has its size before the clock starts.
    let warm = train.limit(1000);
    trainer.run_epoch(&warm, None, None, &mut |_, _, _| {})?;
    let mut times = Vec::new();
    let mut augmented = Vec::new();
    let mut final_loss = f64::NAN;
    for _ in 0..repeats.max(1) {
        for with in [None, augment]
            .into_iter()
            .take(1 + usize::from(augment.is_some()))
        {
            trainer.controls.augment = with.cloned();
            let t = Instant::now();
            // On a pool thread, a product's two halves start at once: the caller runs one and the
            // other core steals the second, instead of both being sent to the pool from outside.
            rayon::scope(|_| trainer.run_epoch(train, None, None, &mut |_, _, l| final_loss = l))?;
            let took = t.elapsed().as_secs_f64();
            match with {
                None => times.push(took),
                Some(_) => augmented.push(took),
            }
        }
    }
    let t = Instant::now();
    evaluate(&mut trainer.model, Loss::CrossEntropy, test, 100)?;
    let test_seconds = t.elapsed().as_secs_f64();
    let m = median(&times);
    Ok(BenchResult {
        implementation: "scratchnet",
        version: env!("CARGO_PKG_VERSION"),
        model: model_text.to_string(),
        threads: rayon::current_num_threads(),
        samples: train.len(),
        epoch_seconds: times,
        median_seconds: m,
        samples_per_second: train.len() as f64 / m,
        gflop_per_epoch: flops / 1e9,
        gflops: flops / 1e9 / m,
        test_seconds,
        peak_rss_mib: peak_rss_mib(),
        final_loss,
        augment_median_seconds: augment.map(|_| median(&augmented)),
        augment_epoch_seconds: augment.map(|_| augmented),
    })
}

/// The `char-lstm` benchmark's data and model text: the UTF-8 text at `path` cut as
/// `--data text:FILE` cuts it (sequences of 64 characters, next-character targets, the text's
/// sorted character vocabulary), its first `limit` sequences; the model is
/// `Embedding(V, 64), LSTM(64, 256), Linear(256, V)` for that vocabulary's V.
pub fn char_lstm_data(path: &Path, limit: Option<usize>) -> Result<(String, Dataset)> {
    let (data, vocab) = scratchnet::data::text::read(path, 64, None)?;
    let data = match limit {
        Some(n) => data.limit(n),
        None => data,
    };
    Ok((
        scratchnet::spec::with_vocabulary("char-lstm", vocab.len()),
        data,
    ))
}

/// The GEMM peak of this machine as our kernels reach it: `C = A·B` on square `size×size` matrices,
/// on the current rayon pool (one thread, or the two-way split on two), median of `repeats` runs.
#[derive(Clone, Debug, Serialize)]
pub struct PeakResult {
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    pub kind: &'static str,
    pub threads: usize,
    pub size: usize,
    pub gflops_runs: Vec<f64>,
    pub gflops: f64,
}

/// Times `repeats` square products of side `size` (after one warm-up) and reports GFLOP/s
/// (`2·size³` FLOPs per product).
pub fn gemm_peak(size: usize, repeats: usize) -> PeakResult {
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..size * size).map(|i| (i % 5) as f32 * 0.5).collect();
    let mut c = vec![0.0f32; size * size];
    let flops = 2.0 * (size as f64).powi(3);
    let mut run = || {
        let t = Instant::now();
        matmul(&mut c, &a, Op::N, &b, Op::N, size, size, size, false);
        flops / t.elapsed().as_secs_f64() / 1e9
    };
    run();
    let runs: Vec<f64> = (0..repeats.max(1)).map(|_| run()).collect();
    PeakResult {
        implementation: "scratchnet",
        kind: "gemm-peak",
        threads: rayon::current_num_threads(),
        size,
        gflops: median(&runs),
        gflops_runs: runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts_match_the_reference_figures() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        // As tools/bench_pytorch.py counts them. row-lstm: 28 steps of 4·128·(28 + 128) MACs in
        // the LSTM after a Flatten, whose input gradient (its projection, 28·4·128·28) nobody
        // needs, and 128·10 in the Linear. char-lstm: the LSTM's input gradient is needed by the
        // Embedding before it: nothing is left out.
        for (name, shape, gflop) in [
            ("mlp", vec![1, 28, 28], 192.6),
            ("seed-cnn", vec![1, 28, 28], 11.4),
            ("row-lstm", vec![1, 28, 28], 757.4),
            (
                "Embedding(70,64), LSTM(64,256), Linear(256,70)",
                vec![64],
                7962.6,
            ),
        ] {
            let m = Model::build(name, &shape, &mut rng).unwrap();
            let got = train_flops_per_sample(&m) * 60_000.0 / 1e9;
            assert!((got - gflop).abs() < 0.1, "{name}: {got}");
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
