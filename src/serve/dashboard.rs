//! `train --dashboard [PORT]`: a page that follows a training run live.
//!
//! The [`Dashboard`] is a training [`Observer`]. After every step it may add a point to the
//! curve: the mean loss and accuracy of the batches since the last point (from the epoch's running
//! sums, so nothing is recomputed) and the learning rate, one point every `curve_every` batches.
//! Every `stats_every` batches it takes a [`layer_stats::Sample`] (the same statistics as
//! `--layer-stats`: weights, gradients, update-to-weight ratios, activations and saturation on a
//! fixed probe batch) and predicts a few fixed test samples. What it measured sits in a [`Board`]
//! behind a mutex, which two HTTP workers read:
//!
//! - `GET /` — one self-contained page (no CDN), polling `/api/state` twice a second;
//! - `GET /api/run` — what does not change: model, optimiser, epochs, the test samples' inputs;
//! - `GET /api/state` — status (`training`, `finished`, `interrupted`, `failed: …`), the curve,
//!   the finished epochs' figures, the latest layer statistics, the update-ratio history and the
//!   test samples' current predictions;
//! - `GET /health`.
//!
//! The curve and the ratio history keep at most [`MAX_POINTS`] points: when full, every other
//! point is dropped, so memory stays bounded and the whole run stays in view.

use super::http::{self, Request, Response, Server};
use crate::data::dataset::{Dataset, Labels};
use crate::error::{Error, Result};
use crate::layer_stats::{Sample, Sampler};
use crate::layers::Mode;
use crate::model::Model;
use crate::report::{probabilities, top_k};
use crate::tensor::Tensor;
use crate::train::{EpochStats, Observer, Position, Trainer};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The page served at `/`.
const PAGE: &str = include_str!("dashboard.html");

/// The most points a curve keeps.
pub const MAX_POINTS: usize = 2000;

/// One point of the curve: the batches since the previous point.
#[derive(Clone, Debug, Serialize)]
struct Point {
    /// Batches done in the run.
    step: usize,
    /// Mean training loss of those batches.
    loss: f64,
    /// Their training accuracy (class targets only).
    accuracy: Option<f64>,
    /// The learning rate of the last step.
    lr: f64,
}

/// Update-to-weight ratios of every parameter tensor at one sampled step.
#[derive(Clone, Debug, Serialize)]
struct Ratios {
    step: usize,
    values: Vec<f64>,
}

/// A test sample's current prediction.
#[derive(Clone, Debug, Serialize)]
struct Prediction {
    /// The predicted class (or the outputs, for regression).
    predicted: String,
    /// Its probability (classes only).
    probability: Option<f32>,
    /// Whether it is the label (classes only).
    correct: Option<bool>,
}

/// What the page shows, shared by the training thread and the HTTP workers.
#[derive(Debug, Serialize)]
struct Board {
    status: String,
    /// Batches done in the run.
    step: usize,
    epoch: usize,
    lr: f64,
    curve: Vec<Point>,
    epochs: Vec<EpochStats>,
    layers: Option<Sample>,
    ratios: Vec<Ratios>,
    predictions: Vec<Prediction>,
    /// `GET /api/run`, made once.
    #[serde(skip)]
    run: String,
}

/// Halves `v` (keeps every other element, the last included) once it holds more than `max`.
fn thin<T>(v: &mut Vec<T>, max: usize) {
    if v.len() > max {
        let last = v.len() - 1;
        let mut i = 0;
        v.retain(|_| {
            i += 1;
            (i - 1) % 2 == last % 2
        });
    }
}

/// What the dashboard is told about the run at its start.
struct RunInfo {
    model: String,
    optimizer: String,
    loss: String,
    epochs: usize,
    first_epoch: usize,
    batches_per_epoch: usize,
    /// Class names (empty for regression targets).
    classes: Vec<String>,
    /// A few test samples, `[n, …sample shape]`.
    samples: Tensor,
    /// The samples' labels, as printed.
    labels: Vec<String>,
    /// The samples' class indices (classes only).
    label_classes: Vec<usize>,
    /// Training samples whose layer outputs are measured (see [`Sampler`]).
    probe: Tensor,
}

/// Test samples shown with their predictions.
const SHOWN: usize = 8;
/// Training samples whose layer outputs are measured.
const PROBE: usize = 64;

impl RunInfo {
    /// The run of `trainer` on `train` (the shown samples from `test`, else from `train`) up to
    /// epoch `epochs`.
    fn of(trainer: &Trainer, train: &Dataset, test: Option<&Dataset>, epochs: usize) -> RunInfo {
        let shown = test.unwrap_or(train);
        let n = shown.len().min(SHOWN);
        let outputs: usize = trainer.model.output_shape().iter().product();
        let (classes, labels, label_classes) = match &shown.y {
            Labels::Classes(c) => {
                let names: Vec<String> = match &train.class_names {
                    Some(names) if names.len() == outputs => names.clone(),
                    _ => (0..outputs).map(|c| c.to_string()).collect(),
                };
                let idx: Vec<usize> = c[..n].iter().map(|c| *c as usize).collect();
                let labels = idx
                    .iter()
                    .map(|c| names.get(*c).cloned().unwrap_or(c.to_string()))
                    .collect();
                (names, labels, idx)
            }
            Labels::Steps { classes, steps } => {
                // A class per step (a sequence): shown as its first steps' classes.
                let labels = classes[..n * steps]
                    .chunks((*steps).max(1))
                    .map(|c| {
                        let v: Vec<f32> = c.iter().map(|&k| k as f32).collect();
                        first_values(&v)
                    })
                    .collect();
                (Vec::new(), labels, Vec::new())
            }
            Labels::Values(v) => {
                let per = v.len() / v.shape()[0].max(1);
                let labels = v.data()[..n * per]
                    .chunks(per.max(1))
                    .map(first_values)
                    .collect();
                (Vec::new(), labels, Vec::new())
            }
        };
        RunInfo {
            model: trainer.model.text().to_string(),
            optimizer: trainer.optimizer.config.to_string(),
            loss: trainer.loss.to_string(),
            epochs,
            first_epoch: trainer.position.epoch,
            batches_per_epoch: train.len().div_ceil(trainer.schedule.batch_size),
            classes,
            samples: shown.x.rows(0, n),
            labels,
            label_classes,
            probe: train.x.rows(0, train.len().min(PROBE)),
        }
    }
}

/// The first few values of `row`, printed.
fn first_values(row: &[f32]) -> String {
    let v: Vec<String> = row.iter().take(6).map(|v| format!("{v:.3}")).collect();
    v.join(", ") + if row.len() > 6 { ", …" } else { "" }
}

/// How often the dashboard measures.
#[derive(Clone, Copy, Debug)]
pub struct Every {
    /// Batches between two points of the curve.
    pub curve: usize,
    /// Batches between two layer samples and test predictions.
    pub stats: usize,
}

/// The live dashboard of a run: an [`Observer`] and the server that shows what it saw.
pub struct Dashboard {
    board: Arc<Mutex<Board>>,
    server: Option<Server>,
    sampler: Sampler,
    every: Every,
    batches_per_epoch: usize,
    samples: Tensor,
    classes: Vec<String>,
    label_classes: Vec<usize>,
    /// The epoch's running sums at the last point: `(batch, loss_sum, correct, seen)`.
    last: (usize, f64, usize, usize),
}

/// The `(height, width)` of a sample shown as a grayscale image: `[1, h, w]`, or `[n]` with `n`
/// a square of at least 16.
fn image_size(shape: &[usize]) -> Option<(usize, usize)> {
    match *shape {
        [1, h, w] => Some((h, w)),
        [n] if n >= 16 && n.isqrt() * n.isqrt() == n => Some((n.isqrt(), n.isqrt())),
        _ => None,
    }
}

impl Dashboard {
    /// Binds `host:port` (0: a free port) and starts serving the run of `trainer` on `train`
    /// (with `test`, if any) up to epoch `epochs`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn start(
        host: &str,
        port: u16,
        trainer: &Trainer,
        train: &Dataset,
        test: Option<&Dataset>,
        epochs: usize,
        every: Every,
    ) -> Result<Dashboard> {
        let info = RunInfo::of(trainer, train, test, epochs);
        let shape = &info.samples.shape()[1..];
        let per: usize = shape.iter().product();
        let image = image_size(shape);
        let inputs: Vec<Value> = info
            .samples
            .data()
            .chunks(per.max(1))
            .map(|x| match image {
                Some(_) => json!(x),
                None => json!(first_values(x)),
            })
            .collect();
        let run = json!({
            "model": info.model,
            "optimizer": info.optimizer,
            "loss": info.loss,
            "epochs": info.epochs,
            "first_epoch": info.first_epoch,
            "batches_per_epoch": info.batches_per_epoch,
            "curve_every": every.curve,
            "stats_every": every.stats,
            "classes": info.classes,
            "image": image.map(|(h, w)| json!({ "height": h, "width": w })),
            "samples": inputs,
            "labels": info.labels,
        })
        .to_string();
        let board = Arc::new(Mutex::new(Board {
            status: "training".into(),
            step: info.first_epoch * info.batches_per_epoch,
            epoch: info.first_epoch,
            lr: 0.0,
            curve: Vec::new(),
            epochs: Vec::new(),
            layers: None,
            ratios: Vec::new(),
            predictions: Vec::new(),
            run,
        }));
        let listener = std::net::TcpListener::bind((host, port)).map_err(|e| {
            Error::invalid(format!("--dashboard: cannot listen on {host}:{port}: {e}"))
        })?;
        let server = http::serve(
            listener,
            vec![board.clone(), board.clone()],
            4 << 10,
            respond,
        )
        .map_err(|e| Error::invalid(format!("--dashboard: cannot serve: {e}")))?;
        Ok(Dashboard {
            board,
            server: Some(server),
            sampler: Sampler::new(every.stats, info.batches_per_epoch, info.probe),
            every: Every {
                curve: every.curve.max(1),
                stats: every.stats.max(1),
            },
            batches_per_epoch: info.batches_per_epoch,
            samples: info.samples,
            classes: info.classes,
            label_classes: info.label_classes,
            last: (0, 0.0, 0, 0),
        })
    }

    /// The address the page is served on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().map_or_else(
            || std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            Server::addr,
        )
    }

    /// Records a finished epoch's figures.
    pub fn epoch(&mut self, stats: &EpochStats) {
        if let Ok(mut b) = self.board.lock() {
            b.epochs.push(stats.clone());
            b.epoch = stats.epoch;
        }
        self.last = (0, 0.0, 0, 0);
    }

    /// Marks the run `status` (`finished`, `interrupted`, `failed: …`), with the test samples
    /// predicted by the final model.
    pub fn finish(&mut self, model: &mut Model, status: &str) {
        let predictions = self.predict(model);
        if let Ok(mut b) = self.board.lock() {
            b.status = status.to_string();
            b.predictions = predictions;
        }
    }

    /// Stops the server (the page then says the run's process has ended).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }

    /// The test samples' predictions by `model` now.
    fn predict(&self, model: &mut Model) -> Vec<Prediction> {
        let Ok(y) = model.forward(self.samples.clone(), Mode::Eval) else {
            return Vec::new();
        };
        let n = y.shape()[0].max(1);
        y.data()
            .chunks(y.len() / n)
            .enumerate()
            .map(|(i, out)| {
                if self.classes.is_empty() {
                    return Prediction {
                        predicted: first_values(out),
                        probability: None,
                        correct: None,
                    };
                }
                let p = probabilities(out);
                let c = top_k(&p, 1)[0];
                Prediction {
                    predicted: self.classes.get(c).cloned().unwrap_or(c.to_string()),
                    probability: Some(p[c]),
                    correct: self.label_classes.get(i).map(|l| *l == c),
                }
            })
            .collect()
    }
}

impl Observer for Dashboard {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        // A probe that cannot run through the model would have failed the first step already.
        let Ok(Some(sample)) = self.sampler.before_step(model, epoch, batch) else {
            return;
        };
        let step = sample.epoch * self.batches_per_epoch + sample.batch + 1;
        if let Ok(mut b) = self.board.lock() {
            b.ratios.push(Ratios {
                step,
                values: sample.params.iter().map(|p| p.update_ratio).collect(),
            });
            thin(&mut b.ratios, MAX_POINTS);
            b.layers = Some(sample);
        }
    }

    fn after_step(&mut self, model: &mut Model, p: &Position) {
        let done = p.batch;
        let end = done == self.batches_per_epoch;
        let predictions =
            (done % self.every.stats == 1 || self.every.stats == 1).then(|| self.predict(model));
        if !done.is_multiple_of(self.every.curve) && !end && predictions.is_none() {
            return;
        }
        let step = p.epoch * self.batches_per_epoch + done;
        let Ok(mut b) = self.board.lock() else { return };
        b.step = step;
        b.lr = p.lr;
        if let Some(pr) = predictions {
            b.predictions = pr;
        }
        if done.is_multiple_of(self.every.curve) || end {
            let (_, loss0, right0, seen0) = self.last;
            let seen = (p.seen - seen0).max(1) as f64;
            b.curve.push(Point {
                step,
                loss: (p.loss_sum - loss0) / seen,
                accuracy: (!self.classes.is_empty()).then(|| (p.correct - right0) as f64 / seen),
                lr: p.lr,
            });
            thin(&mut b.curve, MAX_POINTS);
            self.last = (done, p.loss_sum, p.correct, p.seen);
        }
    }
}

fn respond(board: &mut Arc<Mutex<Board>>, req: &Request) -> Response {
    let Ok(b) = board.lock() else {
        return Response::error(500, "the dashboard's state is poisoned");
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: super::page(PAGE).into_bytes(),
        },
        ("GET", "/health") => Response::json(200, &json!({ "status": "ok" })),
        ("GET", "/api/run") => Response {
            status: 200,
            content_type: "application/json",
            body: b.run.clone().into_bytes(),
        },
        ("GET", "/api/state") => match serde_json::to_vec(&*b) {
            Ok(body) => Response {
                status: 200,
                content_type: "application/json",
                body,
            },
            Err(e) => Response::error(500, e.to_string()),
        },
        (m, p @ ("/" | "/health" | "/api/run" | "/api/state")) => Response::error(
            405,
            format!("{m} {p} is not served; GET /, /health, /api/run, /api/state"),
        ),
        (_, p) => Response::error(
            404,
            format!("no page {p}; GET /, /health, /api/run, /api/state"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_last_point_and_halves() {
        let mut v: Vec<usize> = (0..9).collect();
        thin(&mut v, 8);
        assert_eq!(v, [0, 2, 4, 6, 8]);
        let mut v: Vec<usize> = (0..10).collect();
        thin(&mut v, 8);
        assert_eq!(v, [1, 3, 5, 7, 9]);
        let mut v: Vec<usize> = (0..8).collect();
        thin(&mut v, 8);
        assert_eq!(v.len(), 8);
    }
}
