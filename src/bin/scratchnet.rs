//! The `scratchnet` command line: train, predict, evaluate, look at data, summarise models.

#[path = "scratchnet/bench.rs"]
mod bench;
#[path = "scratchnet/progress.rs"]
mod progress;

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rand::SeedableRng;
use scratchnet::checkpoint;
use scratchnet::data::augment::Augment;
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::data::input::{self, InputInfo};
use scratchnet::data::shard::{self, Part};
use scratchnet::data::source::{self, DataArgs};
use scratchnet::data::text;
use scratchnet::dist::{self, Held};
use scratchnet::model::Model;
use scratchnet::optim::{self, Config, Optimizer};
use scratchnet::resume::{self, Resume};
use scratchnet::schedule::LrSchedule;
use scratchnet::train::{self, Outcome, Schedule, Trainer};
use scratchnet::{Loss, init::Init};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "scratchnet",
    version,
    about = "Train small neural networks on the CPU, exactly as PyTorch would.",
    long_about = format!("Train small neural networks on the CPU, exactly as PyTorch would.\n\n\
        Models are written as the text you would put inside PyTorch's nn.Sequential(...), e.g.\n  \
        \"Conv2d(1,8,3,stride=2), ReLU, Conv2d(8,8,3,stride=2), ReLU, Flatten, Linear(288,10)\"\n\
        or named by a preset: {}.\nCheckpoints are safetensors files that \
        PyTorch loads with load_state_dict(safetensors.torch.load_file(path)).",
        scratchnet::spec::preset_names())
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
    Train(Box<TrainArgs>),
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
    /// Serve a checkpoint over HTTP: a page to draw on (GET /) and POST /predict.
    Serve(ServeArgs),
    /// Train small networks on 2-D toy data in the browser (TensorFlow Playground's datasets),
    /// on this machine with scratchnet's own training loop.
    Playground(PlaygroundArgs),
    /// Check every layer's backward (and the loss's) against central differences; exit 1 on a failure.
    Gradcheck(GradcheckArgs),
    /// Run a checkpoint layer by layer here and in torch.nn (needs PyTorch) and print the differences.
    Compare(CompareArgs),
    /// Sample text from a model trained on --data text:FILE, streaming characters to stdout.
    Generate(GenerateArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// A checkpoint trained on text:FILE data.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Text to start from (default: the vocabulary's first character, a newline in most texts).
    #[arg(long)]
    prime: Option<String>,
    /// Characters to generate (0: the prime alone).
    #[arg(long, default_value_t = 500, allow_negative_numbers = true)]
    length: usize,
    /// Softmax temperature (> 0): lower is more conservative.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    temperature: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct CompareArgs {
    /// The checkpoint to compare.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model text, if the checkpoint does not carry one.
    #[arg(long)]
    model: Option<String>,
    /// A float32 .npy batch (N, …) to run through both.
    #[arg(long)]
    input: PathBuf,
}

#[derive(Args)]
struct GradcheckArgs {
    /// Model text or preset.
    #[arg(long)]
    model: String,
    /// Per-sample input shape, e.g. 1,28,28.
    #[arg(long)]
    input_shape: String,
    /// Also check this loss on the model's output: cross-entropy, mse, quadratic.
    #[arg(long)]
    loss: Option<String>,
    /// Samples in the random batch.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Entries compared per gradient at most (evenly spread over larger ones).
    #[arg(long, default_value_t = 200)]
    limit: usize,
    /// Seed of the weights, the batch and the upstream gradients.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct ServeArgs {
    /// The checkpoint to serve.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model text, if the checkpoint does not carry one.
    #[arg(long)]
    model: Option<String>,
    /// Per-sample input shape (default: 1,28,28, else 784, else the first Linear's in_features).
    #[arg(long)]
    input_shape: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Longest request body in bytes; longer ones get 413.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Threads answering requests, each with its own copy of the model.
    #[arg(long, default_value_t = 4)]
    workers: usize,
}

#[derive(Args)]
struct PlaygroundArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Threads answering requests (each trains one run at a time).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Args)]
struct BenchArgs {
    /// Models to time, comma-separated (presets or model text; also row-lstm, and char-lstm on
    /// --text).
    #[arg(long, default_value = "mlp,seed-cnn,lenet,resnet")]
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
    /// The text of the char-lstm model (cut into sequences of 64 characters; test pass over the
    /// same sequences).
    #[arg(long, default_value = "/usr/share/dict/words")]
    text: PathBuf,
    /// One JSON object per model and line, for tools/bench_compare.py.
    #[arg(long)]
    json: bool,
    /// Instead of models, time square single-precision GEMMs of this side (e.g. 2048) on the
    /// --threads cores: the machine's GEMM peak as our kernels reach it.
    #[arg(long, value_name = "SIZE")]
    peak: Option<usize>,
    /// Also time, after each epoch, one with these --augment transforms (its cost, side by side).
    #[arg(long, value_name = "TRANSFORMS")]
    augment: Option<String>,
}

#[derive(Args, Clone)]
struct TrainArgs {
    #[arg(long, help = model_help())]
    model: Option<String>,
    /// Start from the weights of this checkpoint (ours or PyTorch's safetensors).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (the flags that define the run, if given, must
    /// agree with it; --lr and the other optimiser numbers may change); --epochs is the total to
    /// reach. Writes back into it unless --out says otherwise.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// cross-entropy (logits, integer classes), mse (mean over all elements), quadratic (½‖a−y‖² per sample).
    #[arg(long)]
    loss: Option<String>,
    /// sgd, adam, adamw or rmsprop.
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
    /// Weight decay: an L2 penalty added to the gradient (sgd, adam, rmsprop; default 0), or
    /// decoupled, θ ← θ·(1 − lr·λ) (adamw; default 0.01), as PyTorch.
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// RMSprop's smoothing constant α.
    #[arg(long, default_value_t = 0.99, allow_negative_numbers = true)]
    alpha: f32,
    /// RMSprop: normalise by the centred second moment (an estimate of the variance).
    #[arg(long)]
    centered: bool,
    /// A learning-rate schedule, as PyTorch's constructor call: "StepLR(step_size=2, gamma=0.5)",
    /// "MultiStepLR(milestones=[3, 6], gamma=0.1)", "ExponentialLR(gamma=0.9)",
    /// "CosineAnnealingLR(T_max=10, eta_min=0)" (stepped after each epoch), "OneCycleLR(max_lr=0.1)"
    /// (stepped after each batch).
    #[arg(long)]
    lr_schedule: Option<String>,
    /// Clip the global L2 norm of the gradients to MAX before each step (clip_grad_norm_).
    #[arg(long, value_name = "MAX")]
    clip_grad_norm: Option<f32>,
    /// Cross-entropy label smoothing ε (nn.CrossEntropyLoss(label_smoothing=ε)).
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// Random transforms of every training batch, as torchvision's: "RandomCrop(28, padding=4),
    /// RandomHorizontalFlip(), RandomAffine(degrees=10, translate=(0.1, 0.1))" (also
    /// RandomVerticalFlip, and RandomAffine's scale, shear, interpolation, fill, center). Images
    /// only; drawn from --seed per sample; never applied to the test pass, eval or predict.
    #[arg(long, value_name = "TRANSFORMS")]
    augment: Option<String>,
    /// Stop when the test loss has not improved for PATIENCE epochs; the checkpoint is then the
    /// best epoch's.
    #[arg(long, value_name = "PATIENCE")]
    early_stopping: Option<usize>,
    /// Keep the best epoch's weights (lowest test loss) at --out while training goes on.
    #[arg(long)]
    save_best: bool,
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
    /// Under mpirun: each rank loads only its contiguous 1/R of the training and test rows
    /// (X.npy:Y.npy pairs are read at those rows only; other forms are read whole, then the rest
    /// is dropped). The run is the same.
    #[arg(long)]
    shard: bool,
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
    /// Write TensorBoard event files into DIR: losses, accuracies and lr per epoch, the running
    /// loss every few batches, weight histograms per epoch (`tensorboard --logdir DIR`).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Per parameter tensor, every --stats-every batches: weight and gradient mean/std and the
    /// update-to-weight ratio, as CSV.
    #[arg(long, value_name = "FILE.csv")]
    layer_stats: Option<PathBuf>,
    /// Batches between two --layer-stats samples (each costs a few passes over the weights).
    #[arg(long, default_value_t = 100)]
    stats_every: usize,
    /// Follow the run in a browser at http://127.0.0.1:PORT/ (default 8080; 0: a free port):
    /// loss and accuracy curves, learning rate, layer statistics every --stats-every batches,
    /// test samples with their predictions. The server stops when training ends.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8080")]
    dashboard: Option<u16>,
    /// With --dashboard: keep serving the finished run's page until Ctrl-C.
    #[arg(long, requires = "dashboard")]
    dashboard_keep: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The checkpoint to run.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Model text, if the checkpoint does not carry one.
    #[arg(long)]
    model: Option<String>,
    /// A float32 .npy batch (N, …), whose raw outputs go to --output; or a CSV table with the
    /// columns the model was trained on, whose rows are predicted one per line.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Where to write the outputs (float32 .npy).
    #[arg(long, requires = "input")]
    output: Option<PathBuf>,
    /// Image files (PNG, JPEG, PGM) or folders of them (searched with their subfolders) to classify.
    #[arg(conflicts_with = "input")]
    images: Vec<PathBuf>,
    /// Invert the images (1 − v) whatever their background; by default they are inverted when
    /// their background (the outer ring of pixels) is light and the training images' was dark,
    /// or the other way round.
    #[arg(long, conflicts_with = "input")]
    invert: bool,
    /// Never invert the images.
    #[arg(long, conflicts_with_all = ["input", "invert"])]
    no_invert: bool,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3, conflicts_with = "input")]
    top: usize,
    /// Class names for the printout: fashion-mnist, mnist, or a comma-separated list (default: the names the checkpoint records).
    #[arg(long, conflicts_with = "input")]
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

/// The help of `--model`: the preset names too.
fn model_help() -> String {
    format!(
        "Model text or preset ({})",
        scratchnet::spec::preset_names()
    )
}

#[derive(Args)]
struct SummaryArgs {
    #[arg(long, help = model_help())]
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

/// The flags of the subcommand that were given on the command line (by clap id), as opposed to
/// those left at their defaults: a resumed run compares only what the user said.
struct Given(BTreeSet<String>);

impl Given {
    fn of(matches: &ArgMatches) -> Given {
        let sub = matches.subcommand().map_or(matches, |(_, m)| m);
        Given(
            sub.ids()
                .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// A flag the parser refuses, on one line: the error and its tip, without the usage block (help and
/// version print as usual).
fn flag_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    eprintln!("{} (see --help)", said.join("; "));
    std::process::exit(2)
}

fn main() {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| flag_error(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli, &Given::of(&matches)) {
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

fn run(cli: Cli, given: &Given) -> Result<()> {
    if let Some(mut n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > cores {
            eprintln!(
                "note: --threads {n} is more than the {cores} cores here; using {cores} (the result is the same on any thread count)"
            );
            n = cores;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up threads")?;
    }
    match cli.command {
        Command::Train(a) => train_cmd(*a, given),
        Command::Predict(a) => predict_cmd(a),
        Command::Eval(a) => eval_cmd(a, given),
        Command::Show(a) => show_cmd(a, given),
        Command::Summary(a) => summary_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Download(a) => download_cmd(a),
        Command::Bench(a) => bench_cmd(a),
        Command::Serve(a) => serve_cmd(a),
        Command::Playground(a) => {
            let server = scratchnet::serve::playground::start(&a.host, a.port, a.workers)?;
            println!("playground on http://{}/", server.addr());
            std::io::Write::flush(&mut std::io::stdout())?;
            server.wait();
            Ok(())
        }
        Command::Gradcheck(a) => gradcheck_cmd(a),
        Command::Generate(a) => generate_cmd(a),
        Command::Compare(a) => {
            // An unreadable checkpoint is compare's to report (after it has checked PyTorch).
            let ids =
                checkpoint::read(&a.checkpoint).is_ok_and(|ck| reads_ids(&ck, a.model.as_deref()));
            let x = source::read_inputs(&a.input, ids)?;
            Ok(scratchnet::compare::compare(
                &a.checkpoint,
                a.model.as_deref(),
                &x.rows(0, x.shape()[0]),
            )?)
        }
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
    Ok((model_from(&ck, text, input_shape)?, ck))
}

/// Whether the model of a checkpoint (or the `--model` text given for it) reads token ids.
fn reads_ids(ck: &checkpoint::Checkpoint, text: Option<&str>) -> bool {
    text.or(ck.model_text())
        .is_some_and(scratchnet::spec::takes_token_ids)
}

/// The model of a checkpoint already read (see [`load_model`]).
fn model_from(
    ck: &checkpoint::Checkpoint,
    text: Option<&str>,
    input_shape: &[usize],
) -> Result<Model> {
    let path = &ck.path;
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
    Ok(model)
}

fn optimizer_config(a: &TrainArgs) -> Result<Config> {
    Ok(optim::Settings {
        optimizer: a.optimizer.clone(),
        lr: a.lr,
        momentum: a.momentum,
        dampening: a.dampening,
        nesterov: a.nesterov,
        weight_decay: a.weight_decay,
        alpha: a.alpha,
        centered: a.centered,
        beta1: a.beta1,
        beta2: a.beta2,
        eps: a.eps,
    }
    .config()?)
}

/// The loss of `--loss` (default cross-entropy) with `--label-smoothing`.
fn run_loss(a: &TrainArgs) -> Result<Loss> {
    let loss: Loss = a.loss.as_deref().unwrap_or("cross-entropy").parse()?;
    match a.label_smoothing {
        Some(s) if loss.is_cross_entropy() => Ok(Loss::cross_entropy(s)?),
        Some(_) => bail!("--label-smoothing applies to cross-entropy, not to --loss {loss}"),
        None => Ok(loss),
    }
}

fn check_train_flags(a: &TrainArgs) -> Result<()> {
    if a.clip_grad_norm
        .is_some_and(|m| !(m > 0.0 && m.is_finite()))
    {
        bail!("--clip-grad-norm must be > 0");
    }
    if a.early_stopping == Some(0) {
        bail!("--early-stopping needs a patience of at least 1 epoch");
    }
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    Ok(())
}

/// Checks, before any work, that `path` can be written: a known extension, an existing directory
/// that takes a new file, and not a directory itself.
fn check_output(flag: &str, path: &Path, exts: &[&str]) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        bail!("{flag} {shown}: is a directory; give a file name");
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !exts.contains(&ext) {
        let known: Vec<String> = exts.iter().map(|e| format!(".{e}")).collect();
        bail!(
            "{flag} {shown}: the file must end in {}",
            known.join(" or ")
        );
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{flag} {shown}: the directory {} does not exist",
            dir.display()
        );
    }
    let probe = dir.join(format!(".scratchnet-probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .with_context(|| format!("{flag} {shown}: cannot write in {}", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// Refuses data flags that would do nothing: a `--split-seed` without `--test-split`.
fn check_data_flags(data: &DataArgs, given: &Given) -> Result<()> {
    if given.has("split_seed") && data.test_split.is_none() {
        bail!("--split-seed does nothing without --test-split");
    }
    Ok(())
}

/// The model text as it is compared: presets expanded, white space removed.
fn model_key(text: &str) -> String {
    scratchnet::spec::expand(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// `--resume` continues one run: each flag that defines it, when given, must say what the
/// checkpoint recorded; a different value is an error naming the flag and both values.
fn check_same_run(a: &TrainArgs, given: &Given, r: &Resume, model: Option<&str>) -> Result<()> {
    let quote = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let loss_of = |l: &str| l.parse::<Loss>().map(|l| l.to_string()).ok();
    let kind = serde_json::to_value(&r.optimizer)?["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let checks: Vec<(&str, &str, String, String)> = vec![
        (
            "model",
            "--model",
            quote(&a.model.as_deref().map(model_key)),
            quote(&model.map(model_key)),
        ),
        (
            "init",
            "--init",
            quote(&a.init.as_ref().map(|p| p.display().to_string())),
            quote(&r.origin.init),
        ),
        (
            "initializer",
            "--initializer",
            quote(&a.initializer),
            quote(&r.origin.initializer),
        ),
        ("data", "--data", quote(&a.data.data), quote(&r.data.data)),
        (
            "data_dir",
            "--data-dir",
            quote(&a.data.data_dir),
            quote(&r.data.data_dir),
        ),
        (
            "test_split",
            "--test-split",
            quote(&a.data.test_split),
            quote(&r.data.test_split),
        ),
        (
            "split_seed",
            "--split-seed",
            quote(&a.data.split_seed),
            quote(&r.data.split_seed),
        ),
        (
            "limit",
            "--limit",
            quote(&a.data.limit),
            quote(&r.data.limit),
        ),
        ("seed", "--seed", quote(&a.seed), quote(&r.schedule.seed)),
        (
            "batch_size",
            "--batch-size",
            quote(&a.batch_size),
            quote(&r.schedule.batch_size),
        ),
        (
            "no_shuffle",
            "--no-shuffle",
            quote(&a.no_shuffle),
            quote(&!r.schedule.shuffle),
        ),
        (
            "loss",
            "--loss",
            quote(&a.loss.as_deref().and_then(loss_of)),
            quote(&loss_of(&r.loss).map(|l| l.split('(').next().unwrap_or_default().to_string())),
        ),
        (
            "label_smoothing",
            "--label-smoothing",
            quote(&run_loss(a).ok().map(|l| l.to_string())),
            quote(&loss_of(&r.loss)),
        ),
        (
            "lr_schedule",
            "--lr-schedule",
            quote(&a.lr_schedule),
            quote(&r.controls.lr_schedule.as_ref().map(|s| s.text.clone())),
        ),
        (
            "optimizer",
            "--optimizer",
            quote(&a.optimizer),
            quote(&kind),
        ),
        (
            "augment",
            "--augment",
            quote(&a.augment.as_deref().map(str::trim)),
            quote(&r.controls.augment.as_ref().map(|t| t.to_string())),
        ),
    ];
    for (id, flag, got, saved) in checks {
        if given.has(id) && got != saved {
            let show = |v: &str| {
                v.trim_start_matches("Some(")
                    .trim_end_matches(')')
                    .to_string()
            };
            bail!(
                "{flag} {} is not what the run being resumed used ({}): --resume continues the same run; to change {flag}, start a new run from its weights with --init",
                show(&got),
                show(&saved)
            );
        }
    }
    Ok(())
}

/// Applies to a resumed run the optimiser numbers given on the command line (`--lr`, `--momentum`,
/// …: each flag is the field of the same name); returns a line for each that changed.
fn retune(trainer: &mut Trainer, a: &TrainArgs, given: &Given) -> Result<Vec<String>> {
    let mut saved = serde_json::to_value(&trainer.optimizer.config)?;
    let kind = saved["kind"].as_str().unwrap_or_default().to_string();
    let asked = serde_json::to_value(optimizer_config(&TrainArgs {
        optimizer: kind,
        ..a.clone()
    })?)?;
    let p = &trainer.position;
    let from = if p.batch > 0 {
        format!("from epoch {}, batch {}", p.epoch + 1, p.batch + 1)
    } else {
        format!("from epoch {}", p.epoch + 1)
    };
    let mut changes = Vec::new();
    if let Some(fields) = saved.as_object_mut() {
        for (name, value) in fields.iter_mut() {
            if given.has(name) && asked[name.as_str()] != *value {
                // The numbers are f32: shown as f32, not as the f64 JSON widened them to.
                let show = |v: &serde_json::Value| {
                    v.as_f64().map_or(v.to_string(), |f| (f as f32).to_string())
                };
                changes.push(format!(
                    "{name} {} → {} {from}",
                    show(value),
                    show(&asked[name.as_str()])
                ));
                *value = asked[name.as_str()].clone();
            }
        }
    }
    if trainer.controls.lr_schedule.is_some() && changes.iter().any(|c| c.starts_with("lr ")) {
        bail!("--lr cannot change on resume: the run's --lr-schedule sets it");
    }
    trainer.optimizer.config = serde_json::from_value(saved)?;
    trainer.optimizer.config.validate()?;
    Ok(changes)
}

/// A path as a shell word: quoted when it holds anything but plain characters.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Saves the checkpoint at `path`; when that fails (a full disk, a vanished directory), saves it
/// under a name that says so next to it, else in the working or temporary directory, and fails
/// with a message that says where the weights are.
fn save_or_rescue(
    trainer: &mut Trainer,
    path: &Path,
    meta: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let Err(e) = checkpoint::save(&trainer.model, path, meta) else {
        return Ok(());
    };
    let stem = path
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().to_string());
    let name = format!("{stem}.rescued.safetensors");
    let places = [
        path.with_file_name(&name),
        PathBuf::from(&name),
        std::env::temp_dir().join(format!("{stem}.rescued-{}.safetensors", std::process::id())),
    ];
    for place in places {
        if checkpoint::save(&trainer.model, &place, meta).is_ok() {
            bail!(
                "{e}; the trained weights are saved at {} instead",
                place.display()
            );
        }
    }
    bail!("{e}; no other place could be written either, the weights of this run are lost")
}

/// Writes `--history` and `--plot` after an epoch.
fn write_reports(a: &TrainArgs, history: &[scratchnet::train::EpochStats]) -> Result<()> {
    if let Some(h) = &a.history {
        scratchnet::report::write_history(h, history)?;
    }
    if let Some(p) = &a.plot {
        scratchnet::report::plot_history(p, history)?;
    }
    Ok(())
}

/// The command that continues an interrupted run into the same files.
fn resume_command(a: &TrainArgs, out: &Path) -> String {
    let mut cmd = format!(
        "scratchnet train --resume {} --epochs {}",
        shell_word(out),
        a.epochs
    );
    for (flag, path) in [("--history", &a.history), ("--plot", &a.plot)] {
        if let Some(p) = path {
            cmd += &format!(" {flag} {}", shell_word(p));
        }
    }
    if let Some(k) = a.checkpoint_every {
        cmd += &format!(" --checkpoint-every {k}");
    }
    if a.quiet {
        cmd += " --quiet";
    }
    if a.shard {
        cmd += " --shard";
    }
    cmd
}

/// Installs the handler of Ctrl-C and SIGTERM (what Slurm, Kubernetes and systemd send): the first
/// sets `flag` (training stops after the batch and saves); another one more than a second later
/// stops at once without saving. Signals within the second count as one (`timeout -s INT` sends
/// one to the process and one to its group).
fn on_interrupt(flag: Arc<AtomicBool>) -> Result<()> {
    let first: Mutex<Option<Instant>> = Mutex::new(None);
    ctrlc::set_handler(move || {
        let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
        match *first {
            None => {
                *first = Some(Instant::now());
                flag.store(true, Ordering::SeqCst);
            }
            Some(t) if t.elapsed() > Duration::from_secs(1) => {
                eprintln!("\nsecond interrupt: stopping without saving");
                std::process::exit(130);
            }
            Some(_) => {}
        }
    })
    .context("installing the interrupt handler")
}

/// An error every rank of a data-parallel run meets at the same point (so they stop together).
#[derive(Debug)]
struct AllRanks(anyhow::Error);

impl std::fmt::Display for AllRanks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for AllRanks {}

/// `train` as one rank of the run `mpirun` started (or alone). An error that only this rank meets
/// aborts the others, which would wait for it; one that all meet ends each normally, and only rank
/// 0 reports it.
fn train_cmd(a: TrainArgs, given: &Given) -> Result<()> {
    let group = dist::launch()?;
    if group.size() == 1 {
        let code = train_run(a, given, &*group).map_err(|e| match e.downcast::<AllRanks>() {
            Ok(AllRanks(e)) => e,
            Err(e) => e,
        })?;
        if code != 0 {
            std::process::exit(code);
        }
        return Ok(());
    }
    dist::install(&group);
    // A panic on one rank would leave the others waiting in a collective: end this process, so
    // that mpirun ends the run.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let (rank, size) = (group.rank(), group.size());
    let code = match train_run(a, given, &*group) {
        Ok(code) => code,
        // Said by rank 0 before MPI_Finalize, which waits for every rank: a rank that left first
        // would have mpirun end the job before rank 0's line got out.
        Err(e) if e.is::<AllRanks>() => {
            if rank == 0 {
                eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            }
            1
        }
        Err(e) => {
            eprintln!(
                "error: rank {rank} of {size}: {}",
                format!("{e:#}").replace('\n', " ")
            );
            // mpirun forwards a rank's stderr on its own schedule; give it the line before
            // MPI_Abort tears the job down.
            std::thread::sleep(Duration::from_millis(500));
            group.abort(1)
        }
    };
    // Finalises MPI on every rank before leaving.
    drop(group);
    std::process::exit(code)
}

/// Trains as one rank of `group`; the exit code (0, or 130 when interrupted and saved). Only rank
/// 0 prints and writes files; checkpoints are read by rank 0 and sent to the others.
fn train_run(mut a: TrainArgs, given: &Given, group: &dyn dist::Group) -> Result<i32> {
    let lead = group.rank() == 0;
    check_train_flags(&a)?;
    check_data_flags(&a.data, given)?;
    // Everything is checked before the first batch: flags, output paths, data, model, checkpoint.
    // A resumed run writes back into the checkpoint it continues unless told otherwise.
    let out = match &a.resume {
        Some(r) if !given.has("out") => r.clone(),
        _ => a.out.clone(),
    };
    check_output("--out", &out, &["safetensors"])?;
    if let Some(h) = &a.history {
        check_output("--history", h, &["json", "csv"])?;
    }
    if let Some(p) = &a.plot {
        check_output("--plot", p, &["png", "svg"])?;
    }
    let resumed = match &a.resume {
        Some(path) => {
            let ck = dist::read_checkpoint(group, path)?;
            let r = Resume::of(&ck)?;
            // `--model char-lstm`: its V is the size of the vocabulary the run recorded.
            if let (Some(m), Some(vocab)) = (&a.model, source::Expect::of(&ck)?.classes) {
                a.model = Some(scratchnet::spec::with_vocabulary(m, vocab.len()));
            }
            check_same_run(&a, given, &r, ck.model_text())?;
            // --epochs: the recorded total unless a new one is given.
            match r.origin.epochs {
                Some(e) if !given.has("epochs") => a.epochs = e,
                Some(e) if e != a.epochs && lead => println!("epochs {e} → {}", a.epochs),
                _ => {}
            }
            Some((ck, r))
        }
        None => None,
    };
    // A resumed run reads the data it was trained on (the flags given agree with it).
    let data_args = resumed
        .as_ref()
        .map_or_else(|| a.data.clone(), |(_, r)| r.data.clone());
    let loss_name = resumed
        .as_ref()
        .map_or_else(|| a.loss.clone(), |(_, r)| Some(r.loss.clone()));
    // Read before the data: a model that starts with Embedding reads uint8 inputs as token ids.
    let init = match (&a.init, &resumed) {
        (Some(path), None) => Some(dist::read_checkpoint(group, path)?),
        _ => None,
    };
    let model_named = a
        .model
        .as_deref()
        .or(resumed.as_ref().and_then(|(ck, _)| ck.model_text()))
        .or(init.as_ref().and_then(|ck| ck.model_text()));
    let expect = source::Expect {
        regression: matches!(loss_name.as_deref(), Some("mse" | "quadratic")),
        token_ids: model_named.is_some_and(scratchnet::spec::takes_token_ids),
        ..source::Expect::default()
    };
    // --shard: each rank holds its part of the data (see scratchnet::data::shard).
    let (rank, size) = (group.rank(), group.size());
    let sharded = a.shard && size > 1;
    let (mut train, mut test) = if sharded {
        shard::load_part(&data_args, &expect, rank, size)?
    } else {
        let (train, test) = source::load_for(&data_args, &expect)?;
        (Part::whole(train), test.map(Part::whole))
    };
    if train.data.len() < train.total && data_args.normalize.as_deref() == Some("auto") {
        bail!(
            "--normalize auto takes the mean and std of the whole training set, and with --shard \
             this rank read only its rows of it: give the numbers (--normalize MEAN,STD)"
        );
    }
    // A table's features are standardised with the training split's statistics, recorded in the
    // checkpoint for eval and predict.
    let mut input = InputInfo::for_training(&train.data, !data_args.no_standardize);
    if let Some(spec) = &data_args.normalize {
        input.standardize = Some(scratchnet::data::input::Standardize::parse(
            spec,
            &train.data.x,
        )?);
    }
    input.prepare(&mut train.data.x)?;
    if let Some(t) = &mut test {
        input.prepare(&mut t.data.x)?;
    }
    // Data read whole is cut now, its inputs prepared from the whole set.
    let (train, test) = match sharded {
        true => (train.keep(rank, size), test.map(|t| t.keep(rank, size))),
        false => (train, test),
    };
    fn held(p: &Part, sharded: bool) -> Held<'_> {
        if sharded {
            p.held()
        } else {
            Held::Whole(&p.data)
        }
    }
    // `{V}` in the model text (the `char-lstm` preset) is the vocabulary size of text data.
    let text_data = data_args
        .data
        .as_deref()
        .is_some_and(|d| d.starts_with("text:"));
    let model_text = match (&a.model, &train.data.class_names) {
        (Some(t), Some(vocab)) if text_data => {
            Some(scratchnet::spec::with_vocabulary(t, vocab.len()))
        }
        (t, _) => t.clone(),
    };
    let (mut trainer, origin) = match resumed {
        Some((ck, r)) => {
            let origin = resume::Origin {
                epochs: Some(a.epochs),
                ..r.origin.clone()
            };
            let model = model_from(&ck, None, train.data.sample_shape())?;
            let mut trainer = r.into_trainer(model, &ck)?;
            for change in retune(&mut trainer, &a, given)? {
                if lead {
                    println!("{change}");
                }
            }
            if given.has("clip_grad_norm") && a.clip_grad_norm != trainer.controls.clip_grad_norm {
                if lead {
                    println!(
                        "clip_grad_norm {:?} → {:?} from epoch {}",
                        trainer.controls.clip_grad_norm,
                        a.clip_grad_norm,
                        trainer.position.epoch + 1
                    );
                }
                trainer.controls.clip_grad_norm = a.clip_grad_norm;
            }
            (trainer, origin)
        }
        None => {
            let loss = run_loss(&a)?;
            let model = match (&model_text, &init) {
                (_, Some(ck)) => model_from(ck, model_text.as_deref(), train.data.sample_shape())?,
                (Some(text), None) => {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
                    let mut m = Model::build(text, train.data.sample_shape(), &mut rng)?;
                    if let Some(name) = &a.initializer {
                        Init::parse(name)?.apply(m.net(), &mut rng);
                    }
                    m
                }
                (None, None) => bail!(
                    "give --model TEXT (or a preset: {}), --init FILE or --resume FILE",
                    scratchnet::spec::preset_names()
                ),
            };
            let schedule = Schedule {
                batch_size: a.batch_size,
                shuffle: !a.no_shuffle,
                seed: a.seed,
            };
            let optimizer = Optimizer::new(optimizer_config(&a)?)?;
            let origin = resume::Origin {
                init: a.init.as_ref().map(|p| p.display().to_string()),
                initializer: a.initializer.clone(),
                epochs: Some(a.epochs),
            };
            let mut trainer = Trainer::new(model, optimizer, loss, schedule);
            if let Some(text) = &a.lr_schedule {
                let batches = train.total.div_ceil(a.batch_size);
                trainer.controls.lr_schedule = Some(LrSchedule::new(
                    text,
                    &mut trainer.optimizer.config,
                    a.epochs,
                    batches,
                )?);
            }
            trainer.controls.clip_grad_norm = a.clip_grad_norm;
            trainer.controls.augment = a.augment.as_deref().map(Augment::parse).transpose()?;
            (trainer, origin)
        }
    };
    // Fill values go through --normalize as the inputs did.
    if let Some(aug) = trainer.controls.augment.take() {
        let aug = aug.normalized(input.standardize.as_ref());
        aug.check(train.data.sample_shape())?;
        trainer.controls.augment = Some(aug);
    }
    // A rank may hold no rows of a small set (the others check theirs).
    for (p, what) in [
        (Some(&train), "training data"),
        (test.as_ref(), "test data"),
    ] {
        if let Some(p) = p.filter(|p| !p.data.is_empty() || p.total == 0) {
            train::check_data(&trainer.model, trainer.loss, &p.data, what)?;
        }
    }
    for w in train::data_warnings(&trainer.model, &train.data)
        .into_iter()
        .filter(|_| lead)
    {
        eprintln!("warning: training data: {w}");
    }
    trainer
        .model
        .check_memory(trainer.schedule.batch_size.min(train.total))?;
    if let Some(s) = &trainer.controls.lr_schedule
        && s.per_batch()
        && a.epochs * train.total.div_ceil(trainer.schedule.batch_size) > s.total_steps
    {
        bail!(
            "--epochs {}: the run's OneCycleLR was planned for {} steps, fewer than {} epochs take; start a new run with --init",
            a.epochs,
            s.total_steps,
            a.epochs
        );
    }
    let keep_best = a.save_best || a.early_stopping.is_some();
    if keep_best && test.is_none() {
        bail!(
            "--early-stopping and --save-best watch the test loss, and this data has no test split: add --test-split 0.1"
        );
    }
    if trainer.position.epoch >= a.epochs {
        bail!(
            "the checkpoint has already trained {} epochs; ask for more with --epochs",
            trainer.position.epoch
        );
    }
    if group.size() > 1 {
        dist::agree(group, &run_facts(&trainer, &train, test.as_ref(), &a))
            .map_err(|e| AllRanks(e.into()))?;
        dist::broadcast_params(group, &mut trainer.model);
        if sharded {
            let test = test.as_ref().map(|t| held(t, true));
            let lines = dist::held_lines(group, held(&train, true), test);
            if lead && !a.quiet {
                println!("{}", lines.join("\n"));
            }
        }
    }

    if !a.quiet && lead {
        println!("{}", trainer.model.summary_table());
        println!(
            "training on {} samples{}, {} loss, {}, batch {}, epochs {} → {}",
            train.total,
            test.as_ref()
                .map_or(String::new(), |t| format!(" (testing on {})", t.total)),
            trainer.loss,
            trainer.optimizer.config,
            trainer.schedule.batch_size,
            trainer.position.epoch,
            a.epochs
        );
    }

    let interrupt = Arc::new(AtomicBool::new(false));
    on_interrupt(interrupt.clone())?;

    let save = |trainer: &mut Trainer| -> Result<()> {
        let mut meta = resume::metadata(trainer, &data_args, &origin)?;
        meta.extend(input.metadata());
        if let Some(names) = &train.data.class_names {
            meta.insert(
                checkpoint::CLASSES_KEY.into(),
                serde_json::to_string(names)?,
            );
        }
        if text_data {
            meta.insert(
                text::KEY.into(),
                serde_json::json!({ "seq_len": train.data.sample_shape()[0] }).to_string(),
            );
        }
        save_or_rescue(trainer, &out, &meta)
    };

    let batches = train.total.div_ceil(trainer.schedule.batch_size);
    let mut observers: Vec<Box<dyn train::Observer>> = Vec::new();
    let board = match a.tensorboard.as_deref().filter(|_| lead) {
        Some(dir) => {
            let board = Arc::new(std::sync::Mutex::new(
                scratchnet::tensorboard::EventWriter::create(dir)?,
            ));
            observers.push(Box::new(scratchnet::tensorboard::GradientLog {
                board: board.clone(),
                every: batches.div_ceil(20),
                batches_per_epoch: batches,
            }));
            Some(board)
        }
        None => None,
    };
    let layer_stats = match a.layer_stats.as_deref().filter(|_| lead) {
        Some(path) => {
            let s = Arc::new(std::sync::Mutex::new(
                scratchnet::layer_stats::LayerStats::create(
                    path,
                    a.stats_every,
                    batches,
                    train.data.x.rows(0, train.data.len().min(64)),
                )?,
            ));
            observers.push(Box::new(s.clone()));
            Some(s)
        }
        None => None,
    };
    let dashboard = match a.dashboard.filter(|_| lead) {
        Some(port) => {
            let every = scratchnet::serve::dashboard::Every {
                curve: batches.div_ceil(50),
                stats: a.stats_every,
            };
            let d = scratchnet::serve::dashboard::Dashboard::start(
                "127.0.0.1",
                port,
                &trainer,
                &train.data,
                test.as_ref().map(|t| &t.data),
                a.epochs,
                every,
            )?;
            println!("dashboard on http://{}/", d.addr());
            std::io::Write::flush(&mut std::io::stdout())?;
            let d = Arc::new(std::sync::Mutex::new(d));
            observers.push(Box::new(d.clone()));
            Some(d)
        }
        None => None,
    };
    let dash = |status: &str, model: &mut Model| {
        if let Some(Ok(mut d)) = dashboard.as_ref().map(|d| d.lock()) {
            d.finish(model, status);
        }
    };
    if !observers.is_empty() {
        trainer.observer = Some(Box::new(observers));
    }
    while trainer.position.epoch < a.epochs {
        let epoch = trainer.position.epoch + 1;
        let first_step = (trainer.position.epoch * batches) as u64;
        let mut progress = progress::EpochProgress::new(
            epoch,
            a.epochs,
            trainer.schedule.batch_size,
            a.quiet || !lead,
        );
        // On a pool thread, each product's two halves start at once (the caller runs one, the other
        // core steals the second) instead of both being sent to the pool from outside.
        let outcome = rayon::scope(|_| {
            trainer.run_epoch_held(
                group,
                held(&train, sharded),
                test.as_ref().map(|t| held(t, sharded)),
                Some(&interrupt),
                &mut |done, total, loss| {
                    progress.update(done, total, loss);
                    // The running loss about 20 times an epoch (a failed write surfaces at the
                    // epoch's flush).
                    if let Some(Ok(mut b)) = board.as_ref().map(|b| b.lock())
                        && done % total.div_ceil(20) == 0
                    {
                        let _ =
                            b.scalars(first_step + done as u64, &[("train/running_loss", loss)]);
                    }
                },
            )
        });
        progress.finish();
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                dash(&format!("failed: {e}"), &mut trainer.model);
                let kept = if out.exists() {
                    format!("; the last good checkpoint is still {}", out.display())
                } else {
                    String::new()
                };
                return Err(AllRanks(anyhow::anyhow!("{e}{kept}")).into());
            }
        };
        match outcome {
            Outcome::Interrupted if !lead => return Ok(130),
            Outcome::Interrupted => {
                dash("interrupted", &mut trainer.model);
                save(&mut trainer)?;
                println!(
                    "interrupted in epoch {epoch} after batch {}; saved {}. Resume with:\n  {}",
                    trainer.position.batch,
                    out.display(),
                    resume_command(&a, &out)
                );
                return Ok(130);
            }
            // Every rank decides early stopping from the same (reduced) history.
            Outcome::Finished(stats) if !lead => {
                if early_stop(&a, &trainer.history, stats.epoch).is_some() {
                    break;
                }
            }
            Outcome::Finished(stats) => {
                println!("{}", scratchnet::report::epoch_line(&stats, a.epochs));
                if let Some(Ok(mut d)) = dashboard.as_ref().map(|d| d.lock()) {
                    d.epoch(&stats);
                }
                if let Some(Ok(mut s)) = layer_stats.as_ref().map(|s| s.lock()) {
                    s.flush()?;
                }
                if let Some(Ok(mut b)) = board.as_ref().map(|b| b.lock()) {
                    tensorboard_epoch(&mut b, &mut trainer, &stats, first_step + batches as u64)?;
                }
                let best = train::best_epoch(&trainer.history);
                // Keeping the best: --out is written when the test loss improves, and only then.
                let due = if keep_best {
                    best.is_some_and(|(e, _)| e == stats.epoch)
                } else {
                    trainer.position.epoch == a.epochs
                        || a.checkpoint_every
                            .is_some_and(|k| trainer.position.epoch % k == 0)
                };
                let reports = write_reports(&a, &trainer.history);
                // A report that cannot be written does not lose the epoch's weights.
                if due || (reports.is_err() && !keep_best) {
                    save(&mut trainer)?;
                }
                reports.with_context(|| {
                    format!(
                        "after epoch {epoch} (the checkpoint is saved at {})",
                        out.display()
                    )
                })?;
                if let Some(why) = early_stop(&a, &trainer.history, stats.epoch) {
                    println!("{why}");
                    break;
                }
            }
        }
    }
    if lead {
        match train::best_epoch(&trainer.history).filter(|_| keep_best) {
            Some((b, loss)) => println!(
                "saved {} (epoch {b}, the lowest test loss: {loss:.4})",
                out.display()
            ),
            None => println!("saved {}", out.display()),
        }
    }
    dash("finished", &mut trainer.model);
    if let Some(d) = dashboard.filter(|_| a.dashboard_keep) {
        let addr = d.lock().map(|d| d.addr());
        if let Ok(addr) = addr {
            println!("training finished; the dashboard stays at http://{addr}/ until Ctrl-C");
            std::io::Write::flush(&mut std::io::stdout())?;
        }
        while !interrupt.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(0)
}

/// With `--early-stopping`, after epoch `epoch`: why the run stops (see [`train::early_stop`]).
fn early_stop(
    a: &TrainArgs,
    history: &[scratchnet::train::EpochStats],
    epoch: usize,
) -> Option<String> {
    train::early_stop(a.early_stopping?, history, epoch)
}

/// What every rank of a run must agree on: its data, model, loss, optimiser, schedule and position.
/// With `--shard` each rank holds other rows, so their checksums are not compared: only the
/// number of rows and their shape.
fn run_facts(
    t: &Trainer,
    train: &Part,
    test: Option<&Part>,
    a: &TrainArgs,
) -> Vec<(&'static str, String)> {
    let data = |d: Option<&Part>| {
        d.map_or("none".into(), |d| {
            format!("{} samples of shape {:?}", d.total, d.data.sample_shape())
        })
    };
    let sum = |d: Option<&Part>| match d {
        Some(_) if a.shard => "not compared (--shard)".into(),
        d => d.map_or(0, |d| dist::checksum(&d.data)).to_string(),
    };
    vec![
        ("--shard", a.shard.to_string()),
        ("training data", data(Some(train))),
        ("training data (checksum)", sum(Some(train))),
        ("test data", data(test)),
        ("test data (checksum)", sum(test)),
        ("model", t.model.text().to_string()),
        ("loss", t.loss.to_string()),
        ("optimizer", t.optimizer.config.to_string()),
        ("--seed", t.schedule.seed.to_string()),
        ("--batch-size", t.schedule.batch_size.to_string()),
        ("shuffling", t.schedule.shuffle.to_string()),
        ("--epochs", a.epochs.to_string()),
        ("--early-stopping", format!("{:?}", a.early_stopping)),
        (
            "controls (--lr-schedule, --clip-grad-norm)",
            serde_json::to_string(&t.controls).unwrap_or_default(),
        ),
        (
            "starting point (epoch, batch, step)",
            format!(
                "{}, {}, {}",
                t.position.epoch, t.position.batch, t.optimizer.steps
            ),
        ),
    ]
}

/// The per-epoch TensorBoard events: figures of the epoch, lr (and the mean gradient norm with
/// --clip-grad-norm), and a histogram of every parameter.
fn tensorboard_epoch(
    b: &mut scratchnet::tensorboard::EventWriter,
    trainer: &mut Trainer,
    s: &train::EpochStats,
    step: u64,
) -> Result<()> {
    use scratchnet::Layer;
    let mut scalars = vec![
        ("train/loss", s.train_loss),
        ("lr", s.lr.unwrap_or(trainer.optimizer.config.lr() as f64)),
        ("epoch_seconds", s.train_seconds),
    ];
    let optional = [
        ("grad_norm", s.grad_norm),
        ("train/accuracy", s.train_accuracy),
        ("test/loss", s.test_loss),
        ("test/accuracy", s.test_accuracy),
    ];
    scalars.extend(optional.iter().filter_map(|(t, v)| v.map(|v| (*t, v))));
    b.scalars(step, &scalars)?;
    let mut params = Vec::new();
    trainer.model.net().visit_params("", &mut |name, p| {
        params.push((format!("weights/{name}"), p.value.clone()))
    });
    for (tag, value) in params {
        b.histogram(step, &tag, value.data())?;
    }
    Ok(b.flush()?)
}

/// `generate`: the prime, then sampled characters as they come.
fn generate_cmd(a: GenerateArgs) -> Result<()> {
    use std::io::Write;
    let ck = checkpoint::read(&a.checkpoint)?;
    let (Some(meta), Some(classes)) = (
        ck.metadata.get(text::KEY),
        ck.metadata.get(checkpoint::CLASSES_KEY),
    ) else {
        bail!(
            "{}: the checkpoint has no character vocabulary; generate needs a model trained on --data text:FILE",
            a.checkpoint.display()
        );
    };
    let seq_len = serde_json::from_str::<serde_json::Value>(meta)?["seq_len"]
        .as_u64()
        .with_context(|| format!("{}: bad {} record", a.checkpoint.display(), text::KEY))?
        as usize;
    let classes: Vec<String> = serde_json::from_str(classes)?;
    let vocab: Vec<char> = classes.iter().filter_map(|c| c.chars().next()).collect();
    if vocab.is_empty() || classes.iter().any(|c| c.chars().count() != 1) {
        bail!(
            "{}: the checkpoint's classes are not a character vocabulary",
            a.checkpoint.display()
        );
    }
    let mut model = model_from(&ck, None, &[seq_len])?;
    let prime = a.prime.unwrap_or_else(|| vocab[0].to_string());
    let s = scratchnet::generate::Sampling {
        length: a.length,
        temperature: a.temperature,
        seed: a.seed,
        context: seq_len,
    };
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4];
    scratchnet::generate::generate(&mut model, &vocab, &prime, &s, &mut |c| {
        // Streamed: a failed write (a closed pipe) ends the output, not the program with a panic.
        let _ = out
            .write_all(c.encode_utf8(&mut buf).as_bytes())
            .and_then(|_| out.flush());
    })?;
    writeln!(out)?;
    Ok(())
}

fn predict_cmd(a: PredictArgs) -> Result<()> {
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    match (&a.input, &a.output) {
        (Some(input), output) if source::is_csv(input) => Ok(scratchnet::report::predict_table(
            &a.checkpoint,
            a.model.as_deref(),
            input,
            output.as_deref(),
        )?),
        (Some(_), None) => bail!("give --output Y.npy for the outputs of an .npy batch"),
        (Some(input), Some(output)) => {
            check_output("--output", output, &["npy"])?;
            let ck = checkpoint::read(&a.checkpoint)?;
            let mut x = source::read_inputs(input, reads_ids(&ck, a.model.as_deref()))?;
            if x.shape()[0] == 0 {
                bail!("{}: holds no samples", input.display());
            }
            train::check_finite(&x, &input.display().to_string(), "inputs")?;
            // As training prepared its inputs (--normalize, a table's standardisation).
            if let Some(info) = InputInfo::of(&ck)? {
                info.prepare(&mut x)?;
            }
            let mut model = model_from(&ck, a.model.as_deref(), &x.shape()[1..])?;
            train::check_token_ids(&model, &x, &input.display().to_string())?;
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
            (a.invert || a.no_invert).then_some(a.invert),
            a.top,
            a.classes.as_deref(),
        )?),
    }
}

fn eval_cmd(a: EvalArgs, given: &Given) -> Result<()> {
    check_data_flags(&a.data, given)?;
    if given.has("limit") {
        bail!("--limit does nothing for eval: it evaluates every sample of the test set");
    }
    if let Some(p) = &a.plot {
        check_output("--plot", p, &["png", "svg"])?;
    }
    let ck = checkpoint::read(&a.checkpoint)?;
    let trained = Resume::of(&ck).ok().map(|r| r.data);
    // Without --data: the test split of the data the checkpoint was trained on.
    let args = match (&a.data.data, &trained) {
        (Some(_), _) => a.data.clone(),
        (None, Some(t)) => DataArgs {
            limit: None,
            ..t.clone()
        },
        (None, None) => bail!(
            "{}: the checkpoint does not record its training data; give --data",
            a.checkpoint.display()
        ),
    };
    // Data is read and prepared as the checkpoint's model was trained on it.
    let (train, test) = source::load_for(&args, &source::Expect::of(&ck)?)?;
    let on_test = test.is_some();
    let mut data = test.unwrap_or(train);
    if let Some(info) = InputInfo::of(&ck)? {
        info.prepare(&mut data.x)?;
    }
    if let Some(t) = &trained
        && let Some(why) = overlap(t, &args, on_test)
    {
        eprintln!("warning: {why}: the accuracy is not a test accuracy");
    }
    let model = model_from(&ck, a.model.as_deref(), data.sample_shape())?;
    let mut model = model;
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

/// Why evaluating on `eval` (its test split when `on_test`, else all of it) would reuse samples the
/// model was trained on with `trained`, if it would.
fn overlap(trained: &DataArgs, eval: &DataArgs, on_test: bool) -> Option<String> {
    if trained.data != eval.data {
        return None;
    }
    if !on_test {
        return Some(
            "these are the samples the model was trained on (the data has no test split)".into(),
        );
    }
    match (trained.test_split, eval.test_split) {
        (None, None) => None,
        (Some(a), Some(b)) if a == b && trained.split_seed == eval.split_seed => None,
        _ => Some(
            "this test split is not the one the model was trained beside, and overlaps its training samples"
                .into(),
        ),
    }
}

fn show_cmd(a: ShowArgs, given: &Given) -> Result<()> {
    check_data_flags(&a.data, given)?;
    if let Some(p) = &a.out {
        check_output("--out", p, &["png"])?;
    }
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
        let r = bench::gemm_peak(size, a.repeats);
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
    let models: Vec<&str> = if a.model.contains('(') {
        vec![a.model.as_str()]
    } else {
        a.model.split(',').map(str::trim).collect()
    };
    // Fashion-MNIST, loaded once when a model needs it; char-lstm reads --text instead.
    let mut images = None;
    let augment = a.augment.as_deref().map(Augment::parse).transpose()?;
    for m in models {
        let r = if m == "char-lstm" {
            let (text, seqs) = bench::char_lstm_data(&a.text, a.limit)?;
            let r = bench::bench(&text, &seqs, &seqs, a.repeats, augment.as_ref())?;
            bench::BenchResult {
                model: m.to_string(),
                ..r
            }
        } else {
            if images.is_none() {
                let args = DataArgs {
                    data: Some("fashion-mnist".into()),
                    data_dir: a.data_dir.clone(),
                    limit: a.limit,
                    ..DataArgs::default()
                };
                let (train, test) = source::load(&args)?;
                images = Some((train, test.context("Fashion-MNIST has a test set")?));
            }
            let (train, test) = images.as_ref().expect("loaded above");
            bench::bench(m, train, test, a.repeats, augment.as_ref())?
        };
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
            if let (Some(t), Some(all)) = (r.augment_median_seconds, &r.augment_epoch_seconds) {
                println!(
                    "{m} with --augment: {t:.2} s/epoch (median of {:?}), {:+.1}% against the epochs without",
                    all.iter()
                        .map(|t| (t * 100.0).round() / 100.0)
                        .collect::<Vec<_>>(),
                    100.0 * (t / r.median_seconds - 1.0)
                );
            }
        }
    }
    Ok(())
}

fn gradcheck_cmd(a: GradcheckArgs) -> Result<()> {
    let shape = parse_shape(&a.input_shape)?;
    let loss: Option<Loss> = a.loss.as_deref().map(str::parse).transpose()?;
    if a.batch == 0 || a.limit == 0 {
        bail!("--batch and --limit must be at least 1");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    // The model as a whole first, for its errors (layers that do not chain); then each top-level
    // layer built on its own, so that no layer runs fused with its neighbour.
    let model = Model::build(&a.model, &shape, &mut rng)?;
    let calls = scratchnet::spec::parse(model.text())?;
    let mut budget = usize::MAX;
    let mut layers = calls
        .iter()
        .map(|c| scratchnet::spec::build(c, model.text(), &mut budget, &mut rng))
        .collect::<scratchnet::Result<Vec<_>>>()?;
    let rows = scratchnet::layers::gradcheck::check_layers(
        &mut layers,
        &shape,
        a.batch,
        loss,
        a.limit,
        a.seed,
    )?;
    println!("{}", scratchnet::layers::gradcheck::table(&rows));
    let failed = rows
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| !c.pass)
        .count();
    if failed > 0 {
        bail!("{failed} gradient(s) disagree with central differences");
    }
    println!("every gradient agrees with central differences");
    Ok(())
}

fn serve_cmd(a: ServeArgs) -> Result<()> {
    let shape = a.input_shape.as_deref().map(parse_shape).transpose()?;
    let config = scratchnet::serve::Config {
        host: a.host,
        port: a.port,
        max_body: a.max_body,
        workers: a.workers,
        ..Default::default()
    };
    let server =
        scratchnet::serve::start(&a.checkpoint, a.model.as_deref(), shape.as_deref(), &config)?;
    println!(
        "serving {} on http://{}/",
        a.checkpoint.display(),
        server.addr()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    server.wait();
    Ok(())
}

fn export_cmd(a: ExportArgs) -> Result<()> {
    check_output("--output", &a.output, &["onnx"])?;
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
    let mut metadata: std::collections::BTreeMap<String, String> =
        [checkpoint::CLASSES_KEY, input::KEY]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), ck.metadata.get(k)?.clone())))
            .collect();
    if let Some(info) = InputInfo::of(&ck)? {
        metadata.insert(checkpoint::PREPROCESSING_KEY.into(), info.describe());
    }
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
