//! The `scratchnet` command line: train, predict, evaluate, look at data, summarise models.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;
use scratchnet::checkpoint;
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::data::source::{self, DataArgs};
use scratchnet::model::Model;
use scratchnet::optim::{Config, Optimizer};
use scratchnet::resume::{self, Resume};
use scratchnet::train::{self, Outcome, Schedule, Trainer};
use scratchnet::{Loss, init::Init};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser)]
#[command(
    name = "scratchnet",
    version,
    about = "Train small neural networks on the CPU, exactly as PyTorch would.",
    long_about = "Train small neural networks on the CPU, exactly as PyTorch would.\n\n\
        Models are written as the text you would put inside PyTorch's nn.Sequential(...), e.g.\n  \
        \"Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,10)\"\n\
        or named by a preset: mlp, seed-cnn, lenet, nielsen. Checkpoints are safetensors files that\n\
        PyTorch loads with load_state_dict(safetensors.torch.load_file(path))."
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and write a checkpoint.
    Train(TrainArgs),
    /// Run a checkpoint on an .npy batch (raw outputs) or on image files (top classes).
    Predict(PredictArgs),
    /// Loss, accuracy, per-class accuracy and confusion matrix of a checkpoint on a dataset.
    Eval(EvalArgs),
    /// Draw one sample of a dataset (and a checkpoint's prediction for it).
    Show(ShowArgs),
    /// Print each layer with its output shape and parameter count.
    Summary(SummaryArgs),
    /// Write a checkpoint as an ONNX model (input `input`, output `output`, batch size free).
    Export(ExportArgs),
    /// Fetch a dataset (fashion-mnist, mnist) from its official mirror into the cache.
    Download(DownloadArgs),
    /// Time training epochs (batch 50, SGD lr 0.1) and a test pass of models on Fashion-MNIST.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Models to time, comma-separated (presets or model text).
    #[arg(long, default_value = "mlp,seed-cnn,lenet")]
    model: String,
    /// Timed epochs per model (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Train on the first N images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Where to look for Fashion-MNIST first.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// One JSON object per model and line, for tools/bench_compare.py.
    #[arg(long)]
    json: bool,
    /// Instead of models, time square single-precision GEMMs of this side (e.g. 2048) on the
    /// --threads cores: the machine's GEMM peak as our kernels reach it.
    #[arg(long, value_name = "SIZE")]
    peak: Option<usize>,
}

#[derive(Args)]
struct TrainArgs {
    /// Model text or preset (mlp, seed-cnn, lenet, nielsen).
    #[arg(long, conflicts_with = "resume")]
    model: Option<String>,
    /// Start from the weights of this checkpoint (ours or PyTorch's safetensors).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Continue the run saved in this checkpoint; --epochs is the total to reach.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// cross-entropy (logits, integer classes), mse (mean over all elements), quadratic (½‖a−y‖² per sample).
    #[arg(long)]
    loss: Option<String>,
    /// sgd or adam.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lr: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    momentum: f32,
    /// SGD dampening.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    dampening: f32,
    /// SGD with Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// L2 penalty added to the gradient (PyTorch's weight_decay).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f32,
    /// Adam β₁.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    beta1: f32,
    /// Adam β₂.
    #[arg(long, default_value_t = 0.999, allow_negative_numbers = true)]
    beta2: f32,
    /// Adam ε.
    #[arg(long, default_value_t = 1e-8, allow_negative_numbers = true)]
    eps: f32,
    /// Initial weights: pytorch (default), nielsen (N(0,1)), normal:STD, uniform:A,B, scaled-normal (N(0, σ=1/(out·in))).
    #[arg(long)]
    initializer: Option<String>,
    /// Epochs to train (with --resume: the total to reach).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Take batches in order (the last one smaller), as DataLoader(shuffle=False).
    #[arg(long)]
    no_shuffle: bool,
    /// Seed for initial weights, shuffling, Dropout and splits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the checkpoint.
    #[arg(long, default_value = "model.safetensors")]
    out: PathBuf,
    /// Also write the checkpoint every N epochs.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Per-epoch figures as .json or .csv.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Loss and accuracy curves as .png or .svg.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print only the per-epoch lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The checkpoint to run.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model text, if the checkpoint does not carry one.
    #[arg(long)]
    model: Option<String>,
    /// A float32 .npy batch (N, …); writes the raw outputs to --output.
    #[arg(long, requires = "output")]
    input: Option<PathBuf>,
    /// Where to write the outputs (float32 .npy).
    #[arg(long, requires = "input")]
    output: Option<PathBuf>,
    /// Image files (PNG, JPEG, PGM) to classify.
    #[arg(conflicts_with = "input")]
    images: Vec<PathBuf>,
    /// The images are dark drawings on a light background.
    #[arg(long)]
    invert: bool,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Class names for the printout: fashion-mnist, mnist, or a comma-separated list (default: the names the checkpoint records).
    #[arg(long)]
    classes: Option<String>,
}

#[derive(Args)]
struct EvalArgs {
    /// The checkpoint to evaluate.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model text, if the checkpoint does not carry one.
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// The loss to report (default: the one the checkpoint was trained with, else cross-entropy).
    #[arg(long)]
    loss: Option<String>,
    /// Confusion matrix as .png or .svg.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct ShowArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Which test sample (or training sample with --train).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Take the sample from the training set.
    #[arg(long)]
    train: bool,
    /// Also show this checkpoint's prediction.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Where to write the enlarged sample (.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SummaryArgs {
    /// Model text or preset.
    #[arg(long)]
    model: String,
    /// Per-sample input shape, e.g. 1,28,28.
    #[arg(long, default_value = "1,28,28")]
    input_shape: String,
}

#[derive(Args)]
struct ExportArgs {
    /// The checkpoint to export.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the ONNX file.
    #[arg(long)]
    output: PathBuf,
    /// ONNX opset (13 to 21).
    #[arg(long, default_value_t = scratchnet::onnx::DEFAULT_OPSET)]
    opset: i64,
    /// Model text, when the checkpoint does not hold it.
    #[arg(long)]
    model: Option<String>,
    /// Per-sample input shape, e.g. 1,28,28, when the checkpoint does not hold it.
    #[arg(long)]
    input_shape: Option<String>,
}

#[derive(Args)]
struct DownloadArgs {
    /// fashion-mnist or mnist.
    name: String,
    /// Where to put the files (default: ~/.cache/scratchnet/NAME, or $SCRATCHNET_DATA/NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Fetch from this base URL instead of the official mirror.
    #[arg(long)]
    mirror: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up threads")?;
    }
    match cli.command {
        Command::Train(a) => train_cmd(a),
        Command::Predict(a) => predict_cmd(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Show(a) => show_cmd(a),
        Command::Summary(a) => summary_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Download(a) => download_cmd(a),
        Command::Bench(a) => bench_cmd(a),
    }
}

fn summary_cmd(a: SummaryArgs) -> Result<()> {
    let shape = parse_shape(&a.input_shape)?;
    let mut model = Model::build(
        &a.model,
        &shape,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )?;
    println!("{}", model.summary_table());
    Ok(())
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = text
        .split(',')
        .map(|d| d.trim().parse().ok().filter(|&d| d > 0))
        .collect();
    match dims {
        Some(d) if !d.is_empty() => Ok(d),
        _ => bail!(
            "--input-shape must be positive integers separated by commas, like 1,28,28; got '{text}'"
        ),
    }
}

/// The model of a checkpoint, built for per-sample inputs of `input_shape`, with its weights.
fn load_model(
    path: &Path,
    text: Option<&str>,
    input_shape: &[usize],
) -> Result<(Model, checkpoint::Checkpoint)> {
    let ck = checkpoint::read(path)?;
    let text = match (text, ck.model_text()) {
        (Some(t), _) => t.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => bail!(
            "{}: the checkpoint has no 'model' metadata; pass --model TEXT",
            path.display()
        ),
    };
    let mut model = Model::build(
        &text,
        input_shape,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )?;
    ck.load_into(&mut model)?;
    Ok((model, ck))
}

fn optimizer_config(a: &TrainArgs) -> Result<Config> {
    let config = match a.optimizer.as_str() {
        "sgd" => Config::Sgd {
            lr: a.lr,
            momentum: a.momentum,
            dampening: a.dampening,
            weight_decay: a.weight_decay,
            nesterov: a.nesterov,
        },
        "adam" => Config::Adam {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
        },
        other => bail!("unknown optimizer '{other}': expected sgd or adam"),
    };
    config.validate()?;
    Ok(config)
}

fn check_train_flags(a: &TrainArgs) -> Result<()> {
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    for (flag, path, exts) in [
        ("--history", &a.history, ["json", "csv"]),
        ("--plot", &a.plot, ["png", "svg"]),
    ] {
        if let Some(p) = path {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !exts.contains(&ext) {
                bail!(
                    "{flag} {}: the file must end in .{} or .{}",
                    p.display(),
                    exts[0],
                    exts[1]
                );
            }
        }
    }
    Ok(())
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    check_train_flags(&a)?;
    // Everything is checked before the first batch: flags, data, model, checkpoint.
    // A resumed run takes its data flags from the checkpoint unless new ones are given.
    let resume = a.resume.as_deref().map(Resume::read).transpose()?;
    let data_args = match &resume {
        Some(r) if !a.data.is_given() => r.data.clone(),
        _ => a.data.clone(),
    };
    let (train, test) = source::load(&data_args)?;
    let mut trainer = match (resume, &a.resume) {
        (Some(r), Some(path)) => {
            let (model, ck) = load_model(path, None, train.sample_shape())?;
            r.into_trainer(model, &ck)?
        }
        _ => {
            let loss: Loss = a.loss.as_deref().unwrap_or("cross-entropy").parse()?;
            let model = match (&a.model, &a.init) {
                (_, Some(init)) => load_model(init, a.model.as_deref(), train.sample_shape())?.0,
                (Some(text), None) => {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
                    let mut m = Model::build(text, train.sample_shape(), &mut rng)?;
                    if let Some(name) = &a.initializer {
                        Init::parse(name)?.apply(m.net(), &mut rng);
                    }
                    m
                }
                (None, None) => bail!(
                    "give --model TEXT (or a preset: mlp, seed-cnn, lenet, nielsen), --init FILE or --resume FILE"
                ),
            };
            let schedule = Schedule {
                batch_size: a.batch_size,
                shuffle: !a.no_shuffle,
                seed: a.seed,
            };
            let optimizer = Optimizer::new(optimizer_config(&a)?)?;
            Trainer::new(model, optimizer, loss, schedule)
        }
    };
    train::check_data(&trainer.model, trainer.loss, &train, "training data")?;
    if let Some(t) = &test {
        train::check_data(&trainer.model, trainer.loss, t, "test data")?;
    }
    if trainer.position.epoch >= a.epochs {
        bail!(
            "the checkpoint has already trained {} epochs; ask for more with --epochs",
            trainer.position.epoch
        );
    }

    if !a.quiet {
        println!("{}", trainer.model.summary_table());
        println!(
            "training on {} samples{}, {} loss, {}, batch {}, epochs {} → {}",
            train.len(),
            test.as_ref()
                .map_or(String::new(), |t| format!(" (testing on {})", t.len())),
            trainer.loss,
            trainer.optimizer.config,
            trainer.schedule.batch_size,
            trainer.position.epoch,
            a.epochs
        );
    }

    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: stopping without saving");
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }

    let save = |trainer: &mut Trainer, path: &Path| -> Result<()> {
        let mut meta = resume::metadata(trainer, &data_args)?;
        if let Some(names) = &train.class_names {
            meta.insert(
                checkpoint::CLASSES_KEY.into(),
                serde_json::to_string(names)?,
            );
        }
        meta.insert(
            checkpoint::PREPROCESSING_KEY.into(),
            source::preprocessing(&data_args).into(),
        );
        checkpoint::save(&mut trainer.model, path, &meta)?;
        Ok(())
    };

    while trainer.position.epoch < a.epochs {
        let epoch = trainer.position.epoch + 1;
        let mut progress = scratchnet::progress::EpochProgress::new(
            epoch,
            a.epochs,
            trainer.schedule.batch_size,
            a.quiet,
        );
        // On a pool thread, each product's two halves start at once (the caller runs one, the other
        // core steals the second) instead of both being sent to the pool from outside.
        let outcome = rayon::scope(|_| {
            trainer.run_epoch(
                &train,
                test.as_ref(),
                Some(&interrupt),
                &mut |done, total, loss| progress.update(done, total, loss),
            )
        });
        progress.finish();
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let kept = if a.out.exists() {
                    format!("; the last good checkpoint is still {}", a.out.display())
                } else {
                    String::new()
                };
                bail!("{e}{kept}");
            }
        };
        match outcome {
            Outcome::Interrupted => {
                save(&mut trainer, &a.out)?;
                println!(
                    "interrupted in epoch {epoch} after batch {}; saved {}. Resume with:\n  scratchnet train --resume {} --epochs {}",
                    trainer.position.batch,
                    a.out.display(),
                    a.out.display(),
                    a.epochs
                );
                std::process::exit(130);
            }
            Outcome::Finished(stats) => {
                println!("{}", scratchnet::report::epoch_line(&stats, a.epochs));
                let last = trainer.position.epoch == a.epochs;
                if last
                    || a.checkpoint_every
                        .is_some_and(|k| trainer.position.epoch % k == 0)
                {
                    save(&mut trainer, &a.out)?;
                }
                if let Some(h) = &a.history {
                    scratchnet::report::write_history(h, &trainer.history)?;
                }
                if let Some(p) = &a.plot {
                    scratchnet::report::plot_history(p, &trainer.history)?;
                }
            }
        }
    }
    println!("saved {}", a.out.display());
    Ok(())
}

fn predict_cmd(a: PredictArgs) -> Result<()> {
    match (&a.input, &a.output) {
        (Some(input), Some(output)) => {
            let x = source::read_inputs(input)?;
            let (mut model, _) = load_model(&a.checkpoint, a.model.as_deref(), &x.shape()[1..])?;
            let y = model.predict(&x, 100)?;
            scratchnet::data::npy::write_npy_f32(output, y.shape(), y.data())?;
            println!(
                "wrote {} outputs of shape {:?} to {}",
                y.shape()[0],
                &y.shape()[1..],
                output.display()
            );
            Ok(())
        }
        _ if a.images.is_empty() => {
            bail!("give --input X.npy --output Y.npy, or image files to classify")
        }
        _ => Ok(scratchnet::report::predict_images(
            &a.checkpoint,
            a.model.as_deref(),
            &a.images,
            a.invert,
            a.top,
            a.classes.as_deref(),
        )?),
    }
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let (train, test) = source::load(&a.data)?;
    let data = test.unwrap_or(train);
    let (mut model, ck) = load_model(&a.checkpoint, a.model.as_deref(), data.sample_shape())?;
    let loss = match &a.loss {
        Some(l) => l.parse()?,
        None => Resume::loss_of(&ck).unwrap_or(Loss::CrossEntropy),
    };
    train::check_data(&model, loss, &data, "evaluation data")?;
    Ok(scratchnet::report::evaluation(
        &mut model,
        loss,
        &data,
        a.plot.as_deref(),
    )?)
}

fn show_cmd(a: ShowArgs) -> Result<()> {
    let (train, test) = source::load(&a.data)?;
    let data: &Dataset = if a.train {
        &train
    } else {
        test.as_ref().unwrap_or(&train)
    };
    if a.index >= data.len() {
        bail!(
            "--index {} is out of range: the set has {} samples",
            a.index,
            data.len()
        );
    }
    let model = match &a.checkpoint {
        Some(p) => Some(load_model(p, None, data.sample_shape())?.0),
        None => None,
    };
    if !matches!(data.y, Labels::Classes(_)) {
        bail!("show draws image datasets with class labels");
    }
    Ok(scratchnet::report::show_sample(
        data,
        a.index,
        model,
        a.out.as_deref(),
    )?)
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    if let Some(size) = a.peak {
        let r = scratchnet::bench::gemm_peak(size, a.repeats);
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "GEMM peak: {size}×{size}×{size} f32 on {} threads: {:.1} GFLOP/s (median of {:?})",
                r.threads,
                r.gflops,
                r.gflops_runs
                    .iter()
                    .map(|g| (g * 10.0).round() / 10.0)
                    .collect::<Vec<_>>()
            );
        }
        return Ok(());
    }
    let args = DataArgs {
        data: Some("fashion-mnist".into()),
        data_dir: a.data_dir,
        limit: a.limit,
        ..DataArgs::default()
    };
    let (train, test) = source::load(&args)?;
    let test = test.context("Fashion-MNIST has a test set")?;
    let models: Vec<&str> = if a.model.contains('(') {
        vec![a.model.as_str()]
    } else {
        a.model.split(',').map(str::trim).collect()
    };
    for m in models {
        let r = scratchnet::bench::bench(m, &train, &test, a.repeats)?;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{m}: {} threads, {} samples: {:.2} s/epoch (median of {:?}), {:.0} samples/s, {:.1} GFLOP/s, test pass {:.2} s, peak RSS {:.0} MiB",
                r.threads,
                r.samples,
                r.median_seconds,
                r.epoch_seconds
                    .iter()
                    .map(|t| (t * 100.0).round() / 100.0)
                    .collect::<Vec<_>>(),
                r.samples_per_second,
                r.gflops,
                r.test_seconds,
                r.peak_rss_mib
            );
        }
    }
    Ok(())
}

fn export_cmd(a: ExportArgs) -> Result<()> {
    let shape = match &a.input_shape {
        Some(s) => parse_shape(s)?,
        None => checkpoint::read(&a.checkpoint)?
            .input_shape()?
            .with_context(|| {
                format!(
                    "{}: the checkpoint does not record its input shape; pass --input-shape, e.g. 1,28,28",
                    a.checkpoint.display()
                )
            })?,
    };
    let (model, ck) = load_model(&a.checkpoint, a.model.as_deref(), &shape)?;
    let metadata = [checkpoint::CLASSES_KEY, checkpoint::PREPROCESSING_KEY]
        .into_iter()
        .filter_map(|k| Some((k.to_string(), ck.metadata.get(k)?.clone())))
        .collect();
    scratchnet::onnx::save(&model, &a.output, a.opset, &metadata)?;
    println!(
        "wrote {} (opset {}, input [batch, {}])",
        a.output.display(),
        a.opset,
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn download_cmd(a: DownloadArgs) -> Result<()> {
    source::download_cmd(&a.name, a.dir.as_deref(), a.mirror.as_deref())?;
    Ok(())
}
