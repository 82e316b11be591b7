//! The training and evaluation loop, shared by the CLI, the examples and the tests.
//!
//! Everything random comes from the seed: epoch `e` is shuffled by `ChaCha8(seed, stream 1 + e)` and
//! batch `b` of it gets the Dropout seed `mix(seed, e, b)`. Resuming therefore needs only the seed,
//! the position (epoch, batch) and the optimiser state, and gives bit-for-bit the same run.

use crate::data::augment::Augment;
use crate::data::dataset::{Dataset, Labels};
use crate::data::inputs::Samples;
use crate::dist::{Group, Held, Reducer, Single, check_same_weights, evaluate_in};
use crate::error::{Error, Result};
use crate::layers::{Embedding, Layer, Mode};
use crate::loss::{Loss, Targets};
use crate::model::Model;
use crate::optim::Optimizer;
use crate::replica::Replica;
use crate::schedule::LrSchedule;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How batches are drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Samples per batch (the last may be smaller).
    pub batch_size: usize,
    /// Whether each epoch draws a new order.
    pub shuffle: bool,
    /// The seed of the order and of Dropout.
    pub seed: u64,
}

/// Where a run is: epochs finished, and within the current epoch the next batch and running sums.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Epochs finished.
    pub epoch: usize,
    /// The next batch of the current epoch.
    pub batch: usize,
    /// Sum of the batch losses so far, each times its size.
    pub loss_sum: f64,
    /// Samples classified right so far.
    pub correct: usize,
    /// Samples trained on so far in this epoch.
    pub seen: usize,
    /// The learning rate of the last step taken.
    #[serde(default)]
    pub lr: f64,
    /// The sum of the pre-clip gradient norms of the epoch's batches so far.
    #[serde(default)]
    pub grad_norm_sum: f64,
}

/// The figures of one finished epoch. Accuracies are fractions; `None` for regression targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch (from 1).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_accuracy: Option<f64>,
    /// Training samples classified right.
    pub train_correct: usize,
    /// Training samples.
    pub train_total: usize,
    /// Test loss, with a test set.
    pub test_loss: Option<f64>,
    /// Test accuracy.
    pub test_accuracy: Option<f64>,
    /// Test samples classified right.
    pub test_correct: usize,
    /// Test samples.
    pub test_total: usize,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Seconds spent testing.
    pub test_seconds: f64,
    /// The learning rate of the epoch's last optimiser step.
    #[serde(default)]
    pub lr: Option<f64>,
    /// With gradient clipping: the mean over the epoch's batches of the gradient norm before
    /// clipping.
    #[serde(default)]
    pub grad_norm: Option<f64>,
}

/// What shapes the updates beyond the optimiser: a learning-rate schedule, and a bound on the
/// global gradient norm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    /// The learning-rate schedule, if any.
    pub lr_schedule: Option<LrSchedule>,
    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)` before every step.
    pub clip_grad_norm: Option<f32>,
    /// `--augment`: random transforms of every training batch.
    #[serde(default)]
    pub augment: Option<Augment>,
}

/// Loss and accuracy of a model over a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Samples classified right.
    pub correct: usize,
    /// Samples.
    pub total: usize,
    /// `predictions[i]` is the arg-max class of sample `i` (empty for regression targets).
    pub predictions: Vec<u32>,
}

impl Evaluation {
    /// `correct / total`, or `None` without class targets.
    pub fn accuracy(&self) -> Option<f64> {
        (!self.predictions.is_empty()).then(|| self.correct as f64 / self.total.max(1) as f64)
    }
}

/// Why a call to [`Trainer::run_epoch`] returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The epoch finished.
    Finished(EpochStats),
    /// The interrupt flag was seen; the position is saved mid-epoch.
    Interrupted,
}

/// Looks at the model after each batch's backward, before gradient clipping and the optimiser
/// step: the one moment the summed gradients are there (for TensorBoard, layer statistics).
/// It must not change the model.
pub trait Observer: Send {
    /// `batch` counts from 0 within epoch `epoch` (0-based).
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize);

    /// After the step: `position` holds the epoch's running sums and the learning rate used.
    fn after_step(&mut self, _model: &mut Model, _position: &Position) {}
}

/// Several observers, in order.
impl Observer for Vec<Box<dyn Observer>> {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        self.iter_mut()
            .for_each(|o| o.before_step(model, epoch, batch));
    }

    fn after_step(&mut self, model: &mut Model, position: &Position) {
        self.iter_mut().for_each(|o| o.after_step(model, position));
    }
}

/// An observer the caller keeps a handle on (to flush it, read it).
impl<T: Observer> Observer for std::sync::Arc<std::sync::Mutex<T>> {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        if let Ok(mut o) = self.lock() {
            o.before_step(model, epoch, batch);
        }
    }

    fn after_step(&mut self, model: &mut Model, position: &Position) {
        if let Ok(mut o) = self.lock() {
            o.after_step(model, position);
        }
    }
}

/// A model, its optimiser and loss, and where training stands.
pub struct Trainer {
    /// The model being trained.
    pub model: Model,
    /// The optimiser and its state.
    pub optimizer: Optimizer,
    /// The loss.
    pub loss: Loss,
    /// How batches are drawn.
    pub schedule: Schedule,
    /// Where the run is.
    pub position: Position,
    /// The finished epochs' figures.
    pub history: Vec<EpochStats>,
    /// Schedule and clipping.
    pub controls: Controls,
    /// Sees the gradients of every batch (see [`Observer`]).
    pub observer: Option<Box<dyn Observer>>,
}

/// Scales every gradient of `model` by `min(1, max_norm / (‖g‖ + 1e-6))`, `‖g‖` the L2 norm of all of
/// them together, as `torch.nn.utils.clip_grad_norm_`; returns `‖g‖` before clipping. The norm is
/// that of the per-tensor norms, each summed in f64 in parameter order (a fixed order: the same bits
/// on any thread count).
pub fn clip_grad_norm(model: &mut dyn Layer, max_norm: f32) -> f64 {
    let mut squares = 0.0f64;
    model.visit_params("", &mut |_, p| {
        let norm = p
            .grad
            .data()
            .iter()
            .map(|&g| g as f64 * g as f64)
            .sum::<f64>()
            .sqrt() as f32;
        squares += norm as f64 * norm as f64;
    });
    let total = squares.sqrt() as f32;
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    if coef < 1.0 {
        model.visit_params("", &mut |_, p| {
            p.grad.data_mut().iter_mut().for_each(|g| *g *= coef);
        });
    }
    total as f64
}

/// The arg-max of each of the `rows` rows of `y` (`[N, C]`, or `[N, T, C]` with `rows = N·T`).
fn argmax_rows(y: &Tensor, rows: usize) -> impl Iterator<Item = u32> + '_ {
    let c = y.len() / rows.max(1);
    y.data().chunks_exact(c.max(1)).map(|row| {
        let mut best = 0;
        for (i, v) in row.iter().enumerate() {
            if *v > row[best] {
                best = i;
            }
        }
        best as u32
    })
}

/// The buffers that a pass over a batch reuses from batch to batch (training and evaluation).
#[derive(Default)]
pub struct Scratch {
    x: Tensor,
    classes: Vec<u32>,
    values: Tensor,
}

/// Forward and backward of `model` over samples `idx` of `train` (Dropout seeded by `seed`), with
/// ∂L/∂y scaled by `scale`, the share of the batch that `idx` is (every loss is a mean over rows):
/// `(mean loss over idx, right answers)`. A non-finite loss returns before backward.
pub fn pass(
    model: &mut Model,
    loss: Loss,
    train: &Dataset,
    idx: &[usize],
    seed: u64,
    scale: f32,
    s: &mut Scratch,
) -> Result<(f64, usize)> {
    pass_at(model, loss, train, idx, Mode::train(seed), scale, s)
}

/// [`pass`] in a given training `mode` (a share of a batch names where its rows start).
pub fn pass_at(
    model: &mut Model,
    loss: Loss,
    train: &Dataset,
    idx: &[usize],
    mode: Mode,
    scale: f32,
    s: &mut Scratch,
) -> Result<(f64, usize)> {
    train.x.gather(idx, &mut s.x);
    let y = model.forward(std::mem::take(&mut s.x), mode)?;
    let targets = train.targets(idx, &mut s.classes, &mut s.values);
    let right = match targets {
        Targets::Classes(c) => argmax_rows(&y, c.len())
            .zip(c)
            .filter(|(p, c)| p == *c)
            .count(),
        Targets::Values(_) => 0,
    };
    let (l, mut grad) = loss.compute(y, targets)?;
    // A shared batch runs backward whatever the loss: its collectives must be met on every rank.
    let shared = matches!(mode, Mode::Train { shares, .. } if shares.is_shared());
    if l.is_finite() || shared {
        if scale != 1.0 {
            grad.data_mut().iter_mut().for_each(|g| *g *= scale);
        }
        s.x = model.backward_params(grad)?;
    }
    Ok((l, right))
}

/// The sample order of epoch `epoch`.
pub fn epoch_order(n: usize, schedule: &Schedule, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if schedule.shuffle {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(schedule.seed);
        rng.set_stream(1 + epoch as u64);
        idx.shuffle(&mut rng);
    }
    idx
}

/// Checks that every value of `t: [N, …]` is finite (a chunk of samples at a time).
///
/// # Errors
/// `"{what}: sample i of the {name} holds NaN"`, naming the first bad sample (row).
pub fn check_finite(t: &impl Samples, what: &str, name: &str) -> Result<()> {
    t.chunks(|first, c| {
        let per = c.len() / c.shape()[0].max(1);
        match c.data().iter().position(|v| !v.is_finite()) {
            Some(i) => Err(Error::invalid(format!(
                "{what}: sample {} of the {name} holds {}",
                first + i / per.max(1),
                c.data()[i]
            ))),
            None => Ok(()),
        }
    })
}

/// Token ids `x: [N, T]` for a model that starts with Embedding: whole numbers in
/// `0..num_embeddings`, checked on the whole data before any batch (a chunk of samples at a time),
/// so that an error names the sample's row in the data (Embedding's own check, batch by batch,
/// names the row in its batch).
///
/// # Errors
/// The first id that is not, naming its row and step.
pub fn check_token_ids(model: &Model, x: &impl Samples, what: &str) -> Result<()> {
    let first = model.net_ref().layers().first();
    let embedding = first.and_then(|l| (&**l as &dyn std::any::Any).downcast_ref::<Embedding>());
    match embedding {
        Some(embedding) if x.shape().len() == 2 => x.chunks(|row, c| {
            embedding
                .ids(c, row)
                .map(drop)
                .map_err(|e| Error::invalid(format!("{what}: {e}")))
        }),
        _ => Ok(()),
    }
}

/// Checks that the data fits the model and the loss before any work is done.
///
/// # Errors
/// No samples, input shape, class range, target shape that does not fit, float targets for
/// cross-entropy, a NaN/infinite input or target, or a token id out of range.
pub fn check_data(model: &Model, loss: Loss, data: &Dataset, what: &str) -> Result<()> {
    if data.is_empty() {
        return Err(Error::invalid(format!("{what}: there are no samples")));
    }
    model
        .check_batch(data.x.shape())
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    check_finite(&data.x, what, "inputs")?;
    check_token_ids(model, &data.x, what)?;
    if let Labels::Values(v) = &data.y {
        check_finite(v, what, "targets")?;
    }
    let outputs: usize = model.output_shape().iter().product();
    match (&data.y, loss) {
        (Labels::Classes(c), _) => crate::loss::check_classes(c, outputs)
            .map_err(|e| Error::invalid(format!("{what}: {e}"))),
        (Labels::Steps { classes, steps }, _) => {
            let out = model.output_shape();
            if out.len() < 2 || out[0] != *steps {
                return Err(Error::invalid(format!(
                    "{what}: targets have {steps} steps per sample, the model outputs {out:?} \
                     (per-step targets need outputs [T, classes])"
                )));
            }
            crate::loss::check_classes(classes, outputs / steps)
                .map_err(|e| Error::invalid(format!("{what}: {e}")))
        }
        (Labels::Values(_), l) if l.is_cross_entropy() => Err(Error::invalid(format!(
            "{what}: cross-entropy needs integer class labels, the targets are floats \
             (for regression targets use --loss mse)"
        ))),
        (Labels::Values(v), _) => {
            let per: usize = v.shape()[1..].iter().product();
            if per != outputs {
                return Err(Error::invalid(format!(
                    "{what}: targets have {per} values per sample ({:?}), the model outputs {outputs} ({:?})",
                    &v.shape()[1..],
                    model.output_shape()
                )));
            }
            Ok(())
        }
    }
}

/// What looks wrong with data that is not certainly wrong: float inputs that look like raw 0–255
/// pixels (integers up to 255, some above 1), where the model expects them scaled to [0, 1] (not
/// token ids, which a model starting with Embedding takes).
pub fn data_warnings(model: &Model, data: &Dataset) -> Vec<String> {
    if crate::spec::takes_token_ids(model.text()) {
        return Vec::new();
    }
    let (mut max, mut whole) = (f32::MIN, true);
    data.x
        .chunks(|_, c| {
            max = c.data().iter().copied().fold(max, f32::max);
            whole &= c.data().iter().all(|&v| v >= 0.0 && v.fract() == 0.0);
            Ok(())
        })
        .expect("nothing fails");
    let pixels = max > 1.0 && max <= 255.0 && whole;
    if pixels {
        vec![format!(
            "the inputs are whole numbers from 0 to {max}, like raw pixels; image data is expected \
             scaled to [0, 1] (divide by 255), as IDX and uint8 pixels are"
        )]
    } else {
        Vec::new()
    }
}

/// Evaluates `model` on `data` in batches of `batch` samples.
pub fn evaluate(model: &mut Model, loss: Loss, data: &Dataset, batch: usize) -> Result<Evaluation> {
    let mut eval = eval_sum(model, loss, data, 0..data.len(), batch)?;
    eval.loss /= data.len().max(1) as f64;
    Ok(eval)
}

/// [`evaluate`] over samples `rows` of `data`, with `loss` the sum of the per-sample losses (not
/// yet divided by their number) and `total` the number of samples.
pub fn eval_sum(
    model: &mut Model,
    loss: Loss,
    data: &Dataset,
    rows: std::ops::Range<usize>,
    batch: usize,
) -> Result<Evaluation> {
    let mut s = Scratch::default();
    let mut eval = Evaluation {
        loss: 0.0,
        correct: 0,
        total: rows.len() * data.y.per_sample().max(1),
        predictions: Vec::new(),
    };
    let end = rows.end;
    for start in rows.step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(end)).collect();
        data.x.gather(&idx, &mut s.x);
        let y = model.forward(std::mem::take(&mut s.x), Mode::Eval)?;
        let targets = data.targets(&idx, &mut s.classes, &mut s.values);
        if let Targets::Classes(c) = targets {
            for (p, &c) in argmax_rows(&y, c.len()).zip(c) {
                eval.correct += (p == c) as usize;
                eval.predictions.push(p);
            }
        }
        let (l, buf) = loss.compute(y, targets)?;
        eval.loss += l * idx.len() as f64;
        s.x = buf;
    }
    Ok(eval)
}

/// A batch as `--augment` transforms it: the rows of batch `idx` this process computes (all of
/// them alone; under MPI its share of the batch, or with `--shard` the rows it holds), copied in
/// batch order with their positions in the epoch (the augmentation draws by position), and the
/// batch as indices into the copy (a row another rank computes points past the copy's end).
struct BatchCopy {
    data: Dataset,
    idx: Vec<usize>,
}

impl BatchCopy {
    /// `first`: the epoch position of the batch's first row; `split`: the batch is shared by ranks;
    /// `augment(x, positions)` transforms the copied inputs.
    fn new(
        group: &dyn Group,
        train: Held,
        idx: &[usize],
        split: bool,
        first: usize,
        augment: impl FnOnce(&mut Tensor, &[usize]),
    ) -> Self {
        let places: Vec<usize> = match train {
            Held::Whole(_) if split => {
                crate::dist::share(idx.len(), group.rank(), group.size()).collect()
            }
            _ => (0..idx.len())
                .filter(|&p| train.local(idx[p]).is_some())
                .collect(),
        };
        let rows: Vec<usize> = places.iter().filter_map(|&p| train.local(idx[p])).collect();
        let mut batch: Vec<usize> = (0..idx.len()).map(|p| rows.len() + p).collect();
        for (k, &p) in places.iter().enumerate() {
            batch[p] = k;
        }
        let positions: Vec<usize> = places.iter().map(|p| first + p).collect();
        BatchCopy {
            data: train.data().gathered(&rows, |x| augment(x, &positions)),
            idx: batch,
        }
    }
}

impl Trainer {
    /// A trainer at the start of a run: epoch 0, no history.
    pub fn new(model: Model, optimizer: Optimizer, loss: Loss, schedule: Schedule) -> Trainer {
        Trainer {
            model,
            optimizer,
            loss,
            schedule,
            position: Position::default(),
            history: Vec::new(),
            controls: Controls::default(),
            observer: None,
        }
    }

    /// Trains until the end of the current epoch (or until `interrupt` is set), then evaluates on
    /// `test` if given. `on_batch(done, total, mean loss so far)` is called after every batch.
    ///
    /// # Errors
    /// A non-finite loss or weight: names the epoch, the batch and the first layer that went bad.
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        interrupt: Option<&AtomicBool>,
        on_batch: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Outcome> {
        self.run_epoch_in(&Single, train, test, interrupt, on_batch)
    }

    /// [`Trainer::run_epoch`] as one rank of `group`: each batch split across the ranks and its
    /// gradient summed over them (see [`crate::dist`]), the test set likewise; every rank ends
    /// with the same weights and figures. An interrupt on any rank stops all after the same batch.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`]; ranks whose weights came apart.
    pub fn run_epoch_in(
        &mut self,
        group: &dyn Group,
        train: &Dataset,
        test: Option<&Dataset>,
        interrupt: Option<&AtomicBool>,
        on_batch: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Outcome> {
        let test = test.map(Held::Whole);
        self.run_epoch_held(group, Held::Whole(train), test, interrupt, on_batch)
    }

    /// [`Trainer::run_epoch_in`] with the rows of the data this rank holds (`--shard`: a part of
    /// each set, see [`crate::dist`]): the same batches and the same weights as when every rank
    /// holds every row.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch_in`]; a part of the data on one process.
    pub fn run_epoch_held(
        &mut self,
        group: &dyn Group,
        train: Held,
        test: Option<Held>,
        interrupt: Option<&AtomicBool>,
        on_batch: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<Outcome> {
        let n = train.total();
        let data = train.data();
        if group.size() == 1 && data.len() != n {
            return Err(Error::invalid(format!(
                "one process holds {} of the {n} training rows; alone it needs all of them",
                data.len()
            )));
        }
        let bs = self.schedule.batch_size;
        let batches = n.div_ceil(bs);
        let order = epoch_order(n, &self.schedule, self.position.epoch);
        let mut scratch = Scratch::default();
        let mut ranks = (group.size() > 1).then(Reducer::default);
        let mut replica = match ranks {
            None => Replica::for_model(&mut self.model, bs),
            Some(_) => None,
        };
        if let Some(a) = &self.controls.augment {
            a.check(data.sample_shape())?;
        }
        let started = Instant::now();
        while self.position.batch < batches {
            let b = self.position.batch;
            let idx = &order[b * bs..((b + 1) * bs).min(n)];
            let copy;
            let (train, data, idx) = match &self.controls.augment {
                Some(a) => {
                    let split = ranks.is_some();
                    let (seed, epoch) = (self.schedule.seed, self.position.epoch);
                    copy = BatchCopy::new(group, train, idx, split, b * bs, |x, positions| {
                        a.apply(x, positions, seed, epoch)
                    });
                    let held = match split {
                        false => Held::Whole(&copy.data),
                        true => Held::Part {
                            data: &copy.data,
                            first: 0,
                            total: idx.len(),
                        },
                    };
                    (held, &copy.data, &copy.idx[..])
                }
                None => (train, data, idx),
            };
            let seed = crate::layers::mix(self.schedule.seed, self.position.epoch as u64, b as u64);
            let stop = interrupt.is_some_and(|f| f.load(Ordering::SeqCst));
            let (loss, right, stop) = match (&mut ranks, &mut replica) {
                (Some(r), _) => {
                    let s = r.pass(group, &mut self.model, self.loss, train, idx, seed, stop)?;
                    (s.loss, s.right, s.stop)
                }
                (None, Some(r)) if idx.len() >= 2 => {
                    let (l, right) = r.pass(&mut self.model, self.loss, data, idx, seed)?;
                    (l, right, stop)
                }
                _ => {
                    let (l, right) = pass(
                        &mut self.model,
                        self.loss,
                        data,
                        idx,
                        seed,
                        1.0,
                        &mut scratch,
                    )?;
                    (l, right, stop)
                }
            };
            self.position.correct += right;
            if !loss.is_finite() {
                return Err(self.diverged(train, idx, b, "the loss"));
            }
            if let Some(o) = &mut self.observer {
                o.before_step(&mut self.model, self.position.epoch, b);
            }
            if let Some(max) = self.controls.clip_grad_norm {
                self.position.grad_norm_sum += clip_grad_norm(self.model.net(), max);
            }
            let lr = self.optimizer.config.lr();
            if let Some(bad) = self.optimizer.step(self.model.net()) {
                return Err(self.diverged(
                    train,
                    idx,
                    b,
                    &format!("parameter {bad} after the update"),
                ));
            }
            // OneCycleLR: stepped after every optimiser step but the run's last (PyTorch errors
            // on a step past total_steps).
            if let Some(s) = &mut self.controls.lr_schedule
                && s.per_batch()
                && s.last + 1 < s.total_steps
            {
                s.step(&mut self.optimizer.config);
            }
            self.position.lr = lr as f64;
            self.position.loss_sum += loss * idx.len() as f64;
            self.position.seen += idx.len();
            self.position.batch += 1;
            if let Some(o) = &mut self.observer {
                o.after_step(&mut self.model, &self.position);
            }
            on_batch(
                b + 1,
                batches,
                self.position.loss_sum / self.position.seen as f64,
            );
            if stop && self.position.batch < batches {
                return Ok(Outcome::Interrupted);
            }
        }
        if let Some(s) = &mut self.controls.lr_schedule
            && !s.per_batch()
        {
            s.step(&mut self.optimizer.config);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let eval = test
            .map(|t| evaluate_in(group, &mut self.model, self.loss, t, bs.max(100)))
            .transpose()?;
        check_same_weights(group, &mut self.model, self.position.epoch + 1)?;
        let p = std::mem::take(&mut self.position);
        // Per-step targets count every position.
        let per = data.y.per_sample();
        let classes = per > 0;
        let stats = EpochStats {
            epoch: p.epoch + 1,
            train_loss: p.loss_sum / p.seen.max(1) as f64,
            train_accuracy: classes.then(|| p.correct as f64 / (p.seen * per).max(1) as f64),
            train_correct: p.correct,
            train_total: p.seen * per,
            test_loss: eval.as_ref().map(|e| e.loss),
            // From the labels: a rank's share of the predictions may be empty.
            test_accuracy: eval
                .as_ref()
                .filter(|_| classes)
                .map(|e| e.correct as f64 / e.total.max(1) as f64),
            test_correct: eval.as_ref().map_or(0, |e| e.correct),
            test_total: eval.as_ref().map_or(0, |e| e.total),
            train_seconds,
            test_seconds: if test.is_some() {
                started.elapsed().as_secs_f64()
            } else {
                0.0
            },
            lr: Some(p.lr),
            grad_norm: self
                .controls
                .clip_grad_norm
                .map(|_| p.grad_norm_sum / batches.max(1) as f64),
        };
        self.position.epoch = p.epoch + 1;
        self.history.push(stats.clone());
        Ok(Outcome::Finished(stats))
    }

    /// The error for a diverged step, with the first layer whose output is not finite (in the
    /// rows of batch `idx` that this rank holds).
    fn diverged(&mut self, train: Held, idx: &[usize], batch: usize, what: &str) -> Error {
        let mut x = Tensor::default();
        let held: Vec<usize> = idx.iter().filter_map(|&row| train.local(row)).collect();
        train.data().x.gather(&held, &mut x);
        let layer = match self.model.net().first_non_finite(x) {
            Ok(Some(l)) => l,
            _ => "every layer output is finite; the loss or update overflowed".into(),
        };
        Error::NonFinite {
            epoch: self.position.epoch + 1,
            batch: batch + 1,
            what: what.into(),
            layer,
        }
    }
}

/// The epoch with the lowest test loss so far (the first of equals), and that loss.
pub fn best_epoch(history: &[EpochStats]) -> Option<(usize, f64)> {
    history
        .iter()
        .filter_map(|h| h.test_loss.filter(|l| l.is_finite()).map(|l| (h.epoch, l)))
        .fold(None, |best, (e, l)| match best {
            Some((_, b)) if b <= l => best,
            _ => Some((e, l)),
        })
}

/// Early stopping with `patience`, after epoch `epoch`: why the run stops, when the test loss has
/// not improved for `patience` epochs since the best epoch.
pub fn early_stop(patience: usize, history: &[EpochStats], epoch: usize) -> Option<String> {
    let (b, loss) = best_epoch(history)?;
    (epoch - b >= patience).then(|| {
        format!(
            "early stopping after epoch {epoch}: the test loss has not improved for {patience} epochs since epoch {b} ({loss:.4})"
        )
    })
}

/// `right/total (xx.xx%)`.
pub fn fraction(right: usize, total: usize) -> String {
    format!(
        "{right}/{total} ({:.2}%)",
        100.0 * right as f64 / total.max(1) as f64
    )
}

/// One line per finished epoch: losses, accuracies as `right/total`, and the time of each phase.
pub fn epoch_line(s: &EpochStats, epochs: usize) -> String {
    let mut line = format!("epoch {}/{epochs}  train loss {:.4}", s.epoch, s.train_loss);
    if s.train_accuracy.is_some() {
        line += &format!("  accuracy {}", fraction(s.train_correct, s.train_total));
    }
    if let Some(l) = s.test_loss {
        line += &format!("  |  test loss {l:.4}");
        if s.test_accuracy.is_some() {
            line += &format!("  accuracy {}", fraction(s.test_correct, s.test_total));
        }
    }
    line += &format!(
        "  |  train {:.2} s  test {:.2} s",
        s.train_seconds, s.test_seconds
    );
    if let Some(lr) = s.lr {
        line += &format!("  |  lr {}", lr as f32);
    }
    if let Some(n) = s.grad_norm {
        line += &format!("  grad norm {n:.4}");
    }
    line
}

/// Parameter values in visiting order, for comparisons in tests and determinism checks.
pub fn flat_params(model: &mut Model) -> Vec<f32> {
    let mut v = Vec::new();
    model
        .net()
        .visit_params("", &mut |_, p| v.extend_from_slice(p.value.data()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Config;

    fn toy(n: usize) -> Dataset {
        // Two bands either side of the diagonal: class = [x0 > x1].
        let x: Vec<f32> = (0..n)
            .flat_map(|i| {
                let t = i as f32 / n as f32;
                if i % 2 == 0 {
                    [t, t + 0.3]
                } else {
                    [t + 0.3, t]
                }
            })
            .collect();
        let y = (0..n).map(|i| (i % 2) as u32).collect();
        Dataset::new(Tensor::new(&[n, 2], x).unwrap(), Labels::Classes(y)).unwrap()
    }

    fn trainer(seed: u64, shuffle: bool) -> Trainer {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Trainer {
            model: Model::build(
                "Linear(2,8), ReLU, Dropout(0.1), Linear(8,2)",
                &[2],
                &mut rng,
            )
            .unwrap(),
            optimizer: Optimizer::new(Config::Sgd {
                lr: 0.2,
                momentum: 0.9,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            })
            .unwrap(),
            loss: Loss::CrossEntropy,
            schedule: Schedule {
                batch_size: 8,
                shuffle,
                seed,
            },
            position: Position::default(),
            history: Vec::new(),
            controls: Controls::default(),
            observer: None,
        }
    }

    fn run(t: &mut Trainer, data: &Dataset, epochs: usize) {
        while t.position.epoch < epochs {
            t.run_epoch(data, Some(data), None, &mut |_, _, _| {})
                .unwrap();
        }
    }

    #[test]
    fn learns_a_separable_problem() {
        let data = toy(60);
        let mut t = trainer(1, true);
        run(&mut t, &data, 15);
        let last = t.history.last().unwrap();
        assert!(last.test_accuracy.unwrap() > 0.95, "{last:?}");
        assert!(last.train_loss < t.history[0].train_loss);
        assert_eq!((last.train_total, last.test_total), (60, 60));
    }

    #[test]
    fn same_seed_gives_identical_weights_and_interrupt_resumes_exactly() {
        let data = toy(50);
        let mut a = trainer(3, true);
        run(&mut a, &data, 3);
        let mut b = trainer(3, true);
        run(&mut b, &data, 3);
        assert_eq!(flat_params(&mut a.model), flat_params(&mut b.model));

        // Interrupt after the first batch of each epoch, continue: same weights and history.
        let mut c = trainer(3, true);
        let stop = AtomicBool::new(true);
        while c.position.epoch < 3 {
            if c.run_epoch(&data, Some(&data), Some(&stop), &mut |_, _, _| {})
                .unwrap()
                == Outcome::Interrupted
            {
                assert!(c.position.batch > 0);
            }
        }
        assert_eq!(flat_params(&mut a.model), flat_params(&mut c.model));
        assert_eq!(
            a.history.iter().map(|h| h.train_loss).collect::<Vec<_>>(),
            c.history.iter().map(|h| h.train_loss).collect::<Vec<_>>()
        );
    }

    /// The test pass sees the images as they are: its loss is `evaluate`'s, while training saw
    /// them transformed (a run without `--augment` ends elsewhere).
    #[test]
    fn augmentation_trains_on_transformed_batches_and_never_tests_on_them() {
        let n = 40;
        let x = crate::init::uniform(
            &[n, 1, 6, 6],
            0.0,
            1.0,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
        );
        let data =
            Dataset::new(x, Labels::Classes((0..n as u32).map(|i| i % 2).collect())).unwrap();
        let make = |augment: Option<&str>| {
            let mut t = trainer(2, true);
            t.model = Model::new("Flatten, Linear(36, 2)", &[1, 6, 6], 2).unwrap();
            t.controls.augment = augment.map(|a| Augment::parse(a).unwrap());
            t
        };
        let mut a = make(Some("RandomCrop(6, padding=2), RandomAffine(30)"));
        let Outcome::Finished(stats) = a
            .run_epoch(&data, Some(&data), None, &mut |_, _, _| {})
            .unwrap()
        else {
            panic!()
        };
        let e = evaluate(&mut a.model, a.loss, &data, 100).unwrap();
        assert_eq!(stats.test_loss, Some(e.loss));
        let mut b = make(None);
        b.run_epoch(&data, Some(&data), None, &mut |_, _, _| {})
            .unwrap();
        assert_ne!(flat_params(&mut a.model), flat_params(&mut b.model));
        // Non-image data is refused before the first batch.
        let mut t = trainer(0, false);
        t.controls.augment = Some(Augment::parse("RandomHorizontalFlip()").unwrap());
        let e = t
            .run_epoch(&toy(8), None, None, &mut |_, _, _| {})
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("its transforms take images [C, H, W]"),
            "{e}"
        );
        assert_eq!(t.position, Position::default());
    }

    #[test]
    fn divergence_names_epoch_batch_and_layer() {
        let data = toy(16);
        let mut t = trainer(0, false);
        t.optimizer = Optimizer::new(Config::Sgd {
            lr: 1e30,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        })
        .unwrap();
        let mut err = None;
        for _ in 0..5 {
            if let Err(e) = t.run_epoch(&data, None, None, &mut |_, _, _| {}) {
                err = Some(e.to_string());
                break;
            }
        }
        let e = err.expect("lr 1e30 diverges");
        assert!(e.starts_with("training diverged at epoch 1, batch "), "{e}");
        assert!(
            e.contains("went NaN or infinite; first bad values: "),
            "{e}"
        );
    }

    #[test]
    fn data_checks_name_the_problem() {
        let t = trainer(0, false);
        let e = check_data(
            &t.model,
            Loss::CrossEntropy,
            &Dataset::new(Tensor::zeros(&[2, 3]), Labels::Classes(vec![0, 1])).unwrap(),
            "train data",
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .starts_with("train data: input of shape [2, 3] does not fit")
        );
        let e = check_data(
            &t.model,
            Loss::CrossEntropy,
            &Dataset::new(Tensor::zeros(&[2, 2]), Labels::Classes(vec![0, 7])).unwrap(),
            "train data",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "train data: label 7 (sample 1) is out of range for a model with 2 outputs"
        );
        let e = check_data(
            &t.model,
            Loss::Mse,
            &Dataset::new(
                Tensor::zeros(&[2, 2]),
                Labels::Values(Tensor::zeros(&[2, 3])),
            )
            .unwrap(),
            "train data",
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("targets have 3 values per sample")
        );
    }
}
