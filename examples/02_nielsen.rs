//! Tutorial 2, Nielsen's "Neural Networks and Deep Learning", chapter 1: the network
//! `[784, 30, 10]` with sigmoid neurons, weights and biases drawn from N(0, 1), the quadratic cost
//! `C = (1/n) Σ ½‖y − a‖²` against one-hot digits, and mini-batch SGD (batch 10, η = 3.0) for 30
//! epochs, printing after each epoch how many test digits it classifies correctly.
//!
//! ```text
//! cargo run --release --example 02_nielsen -- --data ../shared/datasets/mnist --test-split 0.2
//! cargo run --release --example 02_nielsen -- --data mnist    # after `scratchnet download mnist`
//! ```
//! Nielsen trains on 50,000 of the 60,000 MNIST training digits and counts on the 10,000 test
//! digits. `../shared/datasets/mnist` holds only the 10,000 test digits, so there is no 50k/10k
//! split to make: `--test-split 0.2` splits them (seeded by `--split-seed`) into 8,000 to train on
//! and 2,000 to count on. With the full MNIST the official train/test split is used.

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::SeedableRng;
use scratchnet::data::source::{self, DataArgs};
use scratchnet::init::Init;
use scratchnet::optim::{Config, Optimizer};
use scratchnet::train::{Outcome, Schedule, Trainer, check_data};
use scratchnet::{Loss, Model};

#[derive(Parser)]
struct Args {
    /// Epochs (Nielsen: 30).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Mini-batch size (Nielsen: 10).
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// Learning rate η (Nielsen: 3.0).
    #[arg(long, default_value_t = 3.0)]
    lr: f32,
    /// Seed of the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset (default mnist).
    #[command(flatten)]
    data: DataArgs,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    args.data.data.get_or_insert_with(|| "mnist".into());
    let (train, test) = source::load(&args.data)?;
    let test = test.context("the dataset has no test set; give --test-split 0.2")?;

    // The `nielsen` preset: Flatten, Linear(784,30), Sigmoid, Linear(30,10), Sigmoid.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut model = Model::build("nielsen", train.sample_shape(), &mut rng)?;
    Init::Normal { std: 1.0 }.apply(model.net(), &mut rng);
    // Loss::Quadratic takes class labels as one-hot rows and averages over the batch, so plain SGD
    // with η is Nielsen's update w ← w − (η/m) Σₓ ∇Cₓ.
    let mut trainer = Trainer::new(
        model,
        Optimizer::new(Config::sgd(args.lr))?,
        Loss::Quadratic,
        Schedule {
            batch_size: args.batch_size,
            shuffle: true,
            seed: args.seed,
        },
    );
    check_data(&trainer.model, trainer.loss, &train, "training data")?;
    check_data(&trainer.model, trainer.loss, &test, "test data")?;
    println!(
        "training on {} digits, counting on {}",
        train.len(),
        test.len()
    );
    for e in 1..=args.epochs {
        if let Outcome::Finished(s) =
            trainer.run_epoch(&train, Some(&test), None, &mut |_, _, _| {})?
        {
            println!(
                "Epoch {e} / {}, correctly classified: {}/{}",
                args.epochs, s.test_correct, s.test_total
            );
        }
    }
    Ok(())
}
