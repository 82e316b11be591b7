//! Tutorial 1, the Fashion-MNIST run: an MLP (784-512-512-10) and a small CNN (Conv 1→8 k3 s2,
//! Conv 8→8 k3 s2, Linear 288→10) trained with SGD (lr 0.1), batch 50 and cross-entropy for
//! 10 epochs, first on the first 2,000 training images and then on all 60,000. After each epoch it
//! prints the test accuracy as `right/total` and how long the training and the test pass took.
//!
//! ```text
//! cargo run --release --example 01_fashion_mnist                      # the whole tutorial
//! cargo run --release --example 01_fashion_mnist -- --epochs 2 --limit 2000 --models seed-cnn
//! ```
//! Fashion-MNIST is found as `scratchnet train --data fashion-mnist` finds it (`--data-dir`,
//! `$SCRATCHNET_DATA`, `/usr/share/datasets`, `~/.cache/scratchnet`); without it the run stops with
//! the library's message saying how to get it.

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::SeedableRng;
use scratchnet::data::dataset::Dataset;
use scratchnet::data::source::{self, DataArgs};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::report::epoch_line;
use scratchnet::train::{Outcome, Schedule, Trainer};
use scratchnet::{Loss, Model};

#[derive(Parser)]
struct Args {
    /// Presets or model text to train, comma-separated (mlp, seed-cnn).
    #[arg(long, default_value = "mlp,seed-cnn")]
    models: String,
    /// Epochs per run.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset (default fashion-mnist); `--limit N` runs only the N-image subset instead of both
    /// the 2,000-image subset and the full set.
    #[command(flatten)]
    data: DataArgs,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    args.data.data.get_or_insert_with(|| "fashion-mnist".into());
    // Load the full training set once; each run takes its first N images.
    let limits = match args.data.limit.take() {
        Some(n) => vec![Some(n)],
        None => vec![Some(2000), None],
    };
    let (full, test) = source::load(&args.data)?;
    let test = test.context("the dataset has no test set; give --test-split 0.2")?;
    for limit in limits {
        let train = limit.map_or_else(|| full.clone(), |n| full.limit(n));
        for model in args.models.split(',').map(str::trim) {
            run(model, &train, &test, &args)?;
        }
    }
    Ok(())
}

/// Trains one model on `train` for `args.epochs`, testing after every epoch.
fn run(text: &str, train: &Dataset, test: &Dataset, args: &Args) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut model = Model::build(text, train.sample_shape(), &mut rng)?;
    println!(
        "\n{text} on {} training images, testing on {}",
        train.len(),
        test.len()
    );
    println!("{}", model.summary_table());
    let mut trainer = Trainer::new(
        model,
        Optimizer::new(Config::sgd(0.1))?,
        Loss::CrossEntropy,
        Schedule {
            batch_size: 50,
            shuffle: true,
            seed: args.seed,
        },
    );
    scratchnet::train::check_data(&trainer.model, trainer.loss, train, "training data")?;
    for _ in 0..args.epochs {
        if let Outcome::Finished(stats) =
            trainer.run_epoch(train, Some(test), None, &mut |_, _, _| {})?
        {
            println!("{}", epoch_line(&stats, args.epochs));
        }
    }
    Ok(())
}
