//! Tutorial 3, regression: learn f(x, y) = (x + 4)³ + 4y from 10,000 noisy samples with a
//! (2, 7, 7, 3, 1) ReLU network and the mean squared error, printing the loss after every epoch and
//! drawing the loss curve.
//!
//! ```text
//! cargo run --release --example 03_regression
//! cargo run --release --example 03_regression -- --epochs 20 --plot runs/regression.png
//! ```
//! The samples are x ~ U(−7, −1) (so the cube is taken of x + 4 ∈ [−3, 3]), y ~ U(−3, 3), and the
//! target is f(x, y) + ε with ε ~ N(0, 1); 20 % are held out. Inputs and targets are standardised
//! with the training set's mean and standard deviation, so the learning rate does not depend on
//! f's scale (measured: on the raw targets, lr 0.01 kills the ReLUs in the first epoch and the
//! network predicts a constant, MSE ≈ the variance; lr 0.001 works there). Losses are printed in
//! f's units (the standardised MSE times the target variance), so they compare directly with the
//! variance of the targets (what predicting the mean scores) and with the noise variance 1 (the
//! best any model can do).

use anyhow::{Result, bail};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::train::{Outcome, Schedule, Trainer};
use scratchnet::{Loss, Model, Tensor};
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Epochs.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// SGD learning rate (momentum 0.9).
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Samples per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of the data, the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to draw the loss curve (.png or .svg).
    #[arg(long, default_value = "runs/regression.png")]
    plot: PathBuf,
}

/// The tutorial's function.
fn f(x: f32, y: f32) -> f32 {
    (x + 4.0).powi(3) + 4.0 * y
}

/// Mean and standard deviation of each column of a row-major `[n, cols]` slice.
fn column_stats(v: &[f32], cols: usize) -> Vec<(f32, f32)> {
    (0..cols)
        .map(|c| {
            let col: Vec<f64> = v.iter().skip(c).step_by(cols).map(|&a| a as f64).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / col.len() as f64;
            (mean as f32, var.sqrt() as f32)
        })
        .collect()
}

/// `(v − mean) / std` per column, in place.
fn standardise(v: &mut [f32], stats: &[(f32, f32)]) {
    for row in v.chunks_exact_mut(stats.len()) {
        for (a, (mean, std)) in row.iter_mut().zip(stats) {
            *a = (*a - mean) / std;
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let n = 10_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let noise = Normal::new(0.0f32, 1.0)?;
    let (mut xs, mut ts) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for _ in 0..n {
        let (x, y) = (rng.gen_range(-7.0f32..-1.0), rng.gen_range(-3.0f32..3.0));
        xs.extend([x, y]);
        ts.push(f(x, y) + noise.sample(&mut rng));
    }
    let all = Dataset::new(
        Tensor::new(&[n, 2], xs)?,
        Labels::Values(Tensor::new(&[n, 1], ts)?),
    )?;
    let (mut train, mut test) = all.split(0.2, args.seed)?;

    let x_stats = column_stats(train.x.rows(0, train.len()).data(), 2);
    let Labels::Values(t) = &train.y else {
        unreachable!("built with values")
    };
    let t_stats = column_stats(t.data(), 1);
    let target_var = (t_stats[0].1 as f64).powi(2);
    for d in [&mut train, &mut test] {
        let mut x = d.x.rows(0, d.len());
        standardise(x.data_mut(), &x_stats);
        d.x = x.into();
        if let Labels::Values(t) = &mut d.y {
            standardise(t.data_mut(), &t_stats);
        }
    }
    println!(
        "{} training and {} test points; target mean {:.2}, variance {target_var:.2}; noise variance 1",
        train.len(),
        test.len(),
        t_stats[0].0
    );

    let model = Model::build(
        "Linear(2,7), ReLU, Linear(7,7), ReLU, Linear(7,3), ReLU, Linear(3,1)",
        &[2],
        &mut rng,
    )?;
    let mut trainer = Trainer::new(
        model,
        Optimizer::new(Config::Sgd {
            lr: args.lr,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        })?,
        Loss::Mse,
        Schedule {
            batch_size: args.batch_size,
            shuffle: true,
            seed: args.seed,
        },
    );
    let before = scratchnet::train::evaluate(&mut trainer.model, Loss::Mse, &test, 1000)?;
    println!("before training: test MSE {:.3}", before.loss * target_var);
    for _ in 0..args.epochs {
        if let Outcome::Finished(s) =
            trainer.run_epoch(&train, Some(&test), None, &mut |_, _, _| {})?
        {
            println!(
                "epoch {}/{}  train MSE {:.3}  test MSE {:.3}",
                s.epoch,
                args.epochs,
                s.train_loss * target_var,
                s.test_loss.unwrap_or(f64::NAN) * target_var
            );
        }
    }

    // The curve in f's units, like the printout.
    let mut history = trainer.history.clone();
    for h in &mut history {
        h.train_loss *= target_var;
        h.test_loss = h.test_loss.map(|l| l * target_var);
    }
    if let Some(dir) = args.plot.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    scratchnet::report::plot_history(&args.plot, &history)?;
    let last = history.last().and_then(|h| h.test_loss).unwrap_or(f64::NAN);
    println!(
        "final test MSE {last:.3} = {:.2}% of the target variance {target_var:.2} (noise floor 1)",
        100.0 * last / target_var
    );
    println!("wrote {}", args.plot.display());
    Ok(())
}
