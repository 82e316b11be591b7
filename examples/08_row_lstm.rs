//! Tutorial 8, a recurrent classifier: Fashion-MNIST read row by row. The `row-lstm` preset,
//! `Flatten(1, 2), LSTM(28, 128), Select(1, -1), Linear(128, 10)`, turns each 28×28 image into 28
//! steps of 28 pixels (top row first), runs an LSTM over them and classifies the hidden state
//! after the last row. Adam (lr 0.002), batch 50, cross-entropy, 3 epochs; after each epoch it
//! prints the test accuracy as `right/total (%)` and how long the epoch took.
//!
//! ```text
//! cargo run --release --example 08_row_lstm                          # 3 epochs, ≈ 30 s each on 2 cores
//! cargo run --release --example 08_row_lstm -- --epochs 1 --limit 5000
//! ```
//! The same run from the command line is
//! `scratchnet train --data fashion-mnist --model row-lstm --optimizer adam --lr 0.002 --epochs 3`
//! (same seed, same order, same numbers). Fashion-MNIST is found as `scratchnet train --data
//! fashion-mnist` finds it; without it the run stops with the library's message saying how to get it.

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::SeedableRng;
use scratchnet::data::source::{self, DataArgs};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::report::epoch_line;
use scratchnet::train::{Outcome, Schedule, Trainer, check_data};
use scratchnet::{Loss, Model};

#[derive(Parser)]
struct Args {
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.002)]
    lr: f32,
    /// Images per batch.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Seed of the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset (default fashion-mnist); `--limit N` trains on the first N images.
    #[command(flatten)]
    data: DataArgs,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    args.data.data.get_or_insert_with(|| "fashion-mnist".into());
    let (train, test) = source::load(&args.data)?;
    let test = test.context("the dataset has no test set; give --test-split 0.2")?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut model = Model::build("row-lstm", train.sample_shape(), &mut rng)?;
    println!("{}", model.summary_table());
    let mut trainer = Trainer::new(
        model,
        Optimizer::new(Config::adam(args.lr))?,
        Loss::CrossEntropy,
        Schedule {
            batch_size: args.batch_size,
            shuffle: true,
            seed: args.seed,
        },
    );
    check_data(&trainer.model, trainer.loss, &train, "training data")?;
    check_data(&trainer.model, trainer.loss, &test, "test data")?;
    println!(
        "training on {} images (28 rows of 28 pixels each), testing on {}",
        train.len(),
        test.len()
    );
    for _ in 0..args.epochs {
        if let Outcome::Finished(s) =
            trainer.run_epoch(&train, Some(&test), None, &mut |_, _, _| {})?
        {
            println!("{}", epoch_line(&s, args.epochs));
        }
    }
    Ok(())
}
