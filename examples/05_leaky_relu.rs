//! Tutorial 5, backpropagation through LeakyReLU: a small network of Linear layers with
//! LeakyReLU(0.1) between them, every weight and bias drawn from N(0, σ²) with σ = 1/(out·in) of its
//! layer, trained by full-batch gradient descent to output zeros for a batch of random inputs under
//! the mean squared error. It prints the loss before training, every few steps, and after.
//!
//! ```text
//! cargo run --release --example 05_leaky_relu
//! cargo run --release --example 05_leaky_relu -- --steps 200 --lr 0.5
//! ```
//! The loop is written out (forward, loss, backward, step) rather than left to `Trainer`, as the
//! tutorial writes it.

use anyhow::{Result, bail};
use clap::Parser;
use rand::SeedableRng;
use scratchnet::init::{Init, normal};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::{Loss, Mode, Model, Targets};

#[derive(Parser)]
struct Args {
    /// Gradient-descent steps on the whole batch.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Inputs in the batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed of the inputs and the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.batch == 0 {
        bail!("--steps and --batch must be at least 1");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut model = Model::build(
        "Linear(4,8), LeakyReLU(0.1), Linear(8,8), LeakyReLU(0.1), Linear(8,3)",
        &[4],
        &mut rng,
    )?;
    Init::ScaledNormal.apply(model.net(), &mut rng);
    println!("{}", model.summary_table());
    let x = normal(&[args.batch, 4], 1.0, &mut rng);
    let zeros = vec![0.0; args.batch * 3];
    let mut opt = Optimizer::new(Config::sgd(args.lr))?;

    let (before, _) = Loss::Mse.compute(
        model.forward(x.clone(), Mode::Eval)?,
        Targets::Values(&zeros),
    )?;
    println!("loss before training: {before:.6e}");
    let every = (args.steps / 10).max(1);
    for step in 1..=args.steps {
        let y = model.forward(x.clone(), Mode::train(0))?;
        let (loss, grad) = Loss::Mse.compute(y, Targets::Values(&zeros))?;
        model.backward(grad)?;
        if let Some(bad) = opt.step(model.net()) {
            bail!("step {step}: {bad} is no longer finite; lower --lr");
        }
        if step % every == 0 {
            println!("step {step:>5}  loss {loss:.6e}");
        }
    }
    let (after, _) = Loss::Mse.compute(model.forward(x, Mode::Eval)?, Targets::Values(&zeros))?;
    println!(
        "loss after {} steps: {after:.6e} ({:.1e} of the loss before)",
        args.steps,
        after / before
    );
    Ok(())
}
