//! `scratchnet playground`: TensorFlow Playground's two-input classification, trained on the
//! server by scratchnet's own [`Trainer`], the decision boundary redrawn in the browser.
//!
//! - `GET /` — one self-contained page (no CDN).
//! - `POST /api/runs` with `{"dataset", "noise", "samples", "model", "optimizer", "lr",
//!   "batch_size", "seed"}` (all optional) → a new run: its id, its points (`[x, y, class]`, the
//!   first 80 % for training, the rest for testing) and its [state](`state`) at epoch 0.
//! - `POST /api/runs/ID/step` with `{"epochs": k}` (1 to 100, default 1) → trains k epochs and
//!   returns the state: epoch, losses, accuracies, and the probability of class 1 on a
//!   [`GRID`]×[`GRID`] grid over [−6, 6]² (row by row from the top).
//! - `GET /api/runs/ID` → the state without training; `GET /health`.
//!
//! Bad requests get a 4xx and `{"error": "…"}`; the server stays up. At most [`MAX_RUNS`] runs are
//! kept (the oldest forgotten first) and each is small (at most [`MAX_SAMPLES`] points,
//! [`MAX_PARAMETERS`] parameters), so memory stays bounded. A run is trained by one worker at a
//! time (its own mutex); different runs train at once on different workers.

use super::http::{self, Request, Response, Server};
use crate::data::dataset::{Dataset, Labels};
use crate::data::toy2d;
use crate::error::{Error, Result};
use crate::layers::{Mode, param_count};
use crate::loss::Loss;
use crate::model::Model;
use crate::optim::{Config, Optimizer};
use crate::report::probabilities;
use crate::tensor::Tensor;
use crate::train::{Schedule, Trainer};
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The page served at `/`.
const PAGE: &str = include_str!("playground.html");

/// Runs kept at once.
pub const MAX_RUNS: usize = 32;
/// The most points a run may ask for.
pub const MAX_SAMPLES: usize = 2000;
/// The most parameters a run's model may have.
pub const MAX_PARAMETERS: usize = 100_000;
/// Points per side of the probability grid.
pub const GRID: usize = 50;
/// The grid and the datasets span [−EXTENT, EXTENT]².
const EXTENT: f32 = 6.0;

/// What `POST /api/runs` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NewRun {
    dataset: String,
    noise: f32,
    samples: usize,
    model: String,
    optimizer: String,
    lr: f32,
    batch_size: usize,
    seed: u64,
}

impl Default for NewRun {
    fn default() -> Self {
        NewRun {
            dataset: "circle".into(),
            noise: 0.0,
            samples: 400,
            model: "Linear(2,8), Tanh, Linear(8,8), Tanh, Linear(8,2)".into(),
            optimizer: "adam".into(),
            lr: 0.03,
            batch_size: 10,
            seed: 0,
        }
    }
}

/// A run being trained.
struct Run {
    id: u64,
    trainer: Trainer,
    train: Dataset,
    test: Dataset,
}

/// The runs, newest last.
#[derive(Default)]
struct Runs {
    next: u64,
    runs: VecDeque<(u64, Arc<Mutex<Run>>)>,
}

type Shared = Arc<Mutex<Runs>>;

/// Binds `host:port` (0: a free port) and serves the playground with `workers` threads.
///
/// # Errors
/// The address cannot be bound.
pub fn start(host: &str, port: u16, workers: usize) -> Result<Server> {
    if workers == 0 {
        return Err(Error::invalid("--workers must be at least 1"));
    }
    let listener = std::net::TcpListener::bind((host, port))
        .map_err(|e| Error::invalid(format!("cannot listen on {host}:{port}: {e}")))?;
    let runs = Shared::default();
    http::serve(listener, vec![runs; workers], 16 << 10, respond)
        .map_err(|e| Error::invalid(format!("cannot serve: {e}")))
}

fn respond(runs: &mut Shared, req: &Request) -> Response {
    let path = req.path.as_str();
    let run_id = path
        .strip_prefix("/api/runs/")
        .map(|rest| rest.split_once('/').unwrap_or((rest, "")));
    match (req.method.as_str(), path, run_id) {
        ("GET", "/", _) => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: super::page(PAGE).into_bytes(),
        },
        ("GET", "/health", _) => Response::json(200, &json!({ "status": "ok" })),
        ("POST", "/api/runs", _) => match create(runs, &req.body) {
            Ok(v) => Response::json(200, &v),
            Err(e) => Response::error(400, e),
        },
        (method, _, Some((id, action))) => {
            let Ok(id) = id.parse::<u64>() else {
                return Response::error(404, format!("no run '{id}': run ids are numbers"));
            };
            let Some(run) = find(runs, id) else {
                return Response::error(
                    404,
                    format!(
                        "no run {id} (the server keeps the {MAX_RUNS} newest runs): start one with POST /api/runs"
                    ),
                );
            };
            let Ok(mut run) = run.lock() else {
                return Response::error(500, format!("run {id} failed earlier"));
            };
            match (method, action) {
                ("GET", "") => Response::json(200, &state(&mut run)),
                ("POST", "step") => match step(&mut run, &req.body) {
                    Ok(v) => Response::json(200, &v),
                    Err((status, e)) => Response::error(status, e),
                },
                (_, "" | "step") => Response::error(
                    405,
                    format!(
                        "{method} {path} is not served; GET /api/runs/{id}, POST /api/runs/{id}/step"
                    ),
                ),
                _ => Response::error(404, format!("no page {path}")),
            }
        }
        (_, "/" | "/health" | "/api/runs", _) => Response::error(
            405,
            format!(
                "{} {path} is not served; GET /, /health; POST /api/runs",
                req.method
            ),
        ),
        _ => Response::error(
            404,
            format!("no page {path}; GET /, /health; POST /api/runs, /api/runs/ID/step"),
        ),
    }
}

fn find(runs: &Shared, id: u64) -> Option<Arc<Mutex<Run>>> {
    let r = runs.lock().ok()?;
    r.runs
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, r)| r.clone())
}

/// A JSON body, `{}` when empty.
fn body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> std::result::Result<T, String> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| format!("bad JSON body: {e}"))
}

/// Checks a new run's settings, builds its data, model and trainer, and keeps it.
fn create(runs: &Shared, bytes: &[u8]) -> std::result::Result<Value, String> {
    let r: NewRun = body(bytes)?;
    if !(10..=MAX_SAMPLES).contains(&r.samples) {
        return Err(format!(
            "samples {}: expected 10 to {MAX_SAMPLES}",
            r.samples
        ));
    }
    if !(r.lr.is_finite() && r.lr > 0.0 && r.lr <= 10.0) {
        return Err(format!("lr {}: expected a number in (0, 10]", r.lr));
    }
    if r.noise > 3.0 {
        return Err(format!("noise {}: expected 0 to 3", r.noise));
    }
    let all = toy2d::generate(&r.dataset, r.samples, r.noise, r.seed).map_err(|e| e.to_string())?;
    let split = r.samples * 4 / 5;
    let train = all.select(&(0..split).collect::<Vec<_>>());
    let test = all.select(&(split..r.samples).collect::<Vec<_>>());
    if !(1..=split).contains(&r.batch_size) {
        return Err(format!(
            "batch_size {}: expected 1 to {split} (the training points)",
            r.batch_size
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(r.seed);
    let mut model = Model::build(&r.model, &[2], &mut rng).map_err(|e| format!("model: {e}"))?;
    if model.output_shape() != [2] {
        return Err(format!(
            "the model outputs {:?}; it must output 2 values, one per class (end with Linear(…, 2))",
            model.output_shape()
        ));
    }
    let parameters = param_count(model.net());
    if parameters > MAX_PARAMETERS {
        return Err(format!(
            "the model has {parameters} parameters; the playground takes at most {MAX_PARAMETERS}"
        ));
    }
    let config = match r.optimizer.as_str() {
        "sgd" => Config::Sgd {
            lr: r.lr,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        },
        "adam" => Config::adam(r.lr),
        other => return Err(format!("optimizer '{other}': expected sgd or adam")),
    };
    let optimizer = Optimizer::new(config).map_err(|e| e.to_string())?;
    let schedule = Schedule {
        batch_size: r.batch_size,
        shuffle: true,
        seed: r.seed,
    };
    let points = |d: &Dataset| -> Vec<Value> {
        let Labels::Classes(y) = &d.y else {
            return vec![];
        };
        d.x.rows(0, d.len())
            .data()
            .chunks(2)
            .zip(y)
            .map(|(p, c)| json!([p[0], p[1], c]))
            .collect()
    };
    let (train_points, test_points) = (points(&train), points(&test));
    let mut shared = runs
        .lock()
        .map_err(|_| "the run list is poisoned".to_string())?;
    shared.next += 1;
    let mut run = Run {
        id: shared.next,
        trainer: Trainer::new(model, optimizer, Loss::CrossEntropy, schedule),
        train,
        test,
    };
    let mut v = state(&mut run);
    v["train"] = json!(train_points);
    v["test"] = json!(test_points);
    v["parameters"] = json!(parameters);
    v["model"] = json!(run.trainer.model.text());
    shared.runs.push_back((run.id, Arc::new(Mutex::new(run))));
    if shared.runs.len() > MAX_RUNS {
        shared.runs.pop_front();
    }
    Ok(v)
}

/// What `POST /api/runs/ID/step` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default = "one")]
    epochs: usize,
}

fn one() -> usize {
    1
}

/// Trains the run for the epochs asked, then its state.
fn step(run: &mut Run, bytes: &[u8]) -> std::result::Result<Value, (u16, String)> {
    let s: Step = body(bytes).map_err(|e| (400, e))?;
    if !(1..=100).contains(&s.epochs) {
        return Err((400, format!("epochs {}: expected 1 to 100", s.epochs)));
    }
    for _ in 0..s.epochs {
        match run
            .trainer
            .run_epoch(&run.train, Some(&run.test), None, &mut |_, _, _| {})
        {
            // No interrupt flag is given: every epoch finishes.
            Ok(_) => {}
            // A diverged run (too high a learning rate): the client's settings, not the server.
            Err(e) => return Err((422, e.to_string())),
        }
    }
    Ok(state(run))
}

/// The run's epoch, last figures and the probability of class 1 over the grid.
fn state(run: &mut Run) -> Value {
    let last = run.trainer.history.last();
    let mut grid = Vec::with_capacity(2 * GRID * GRID);
    let at = |i: usize| -EXTENT + 2.0 * EXTENT * (i as f32 + 0.5) / GRID as f32;
    for row in 0..GRID {
        for col in 0..GRID {
            // Row 0 is the top of the picture: the largest y.
            grid.extend([at(col), -at(row)]);
        }
    }
    let p: Vec<f64> = Tensor::new(&[GRID * GRID, 2], grid)
        .and_then(|x| run.trainer.model.forward(x, Mode::Eval))
        .map(|y| {
            y.data()
                .chunks(2)
                .map(|o| (probabilities(o)[1] as f64 * 1000.0).round() / 1000.0)
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": run.id,
        "epoch": run.trainer.position.epoch,
        "train_loss": last.map(|s| s.train_loss),
        "train_accuracy": last.and_then(|s| s.train_accuracy),
        "test_loss": last.and_then(|s| s.test_loss),
        "test_accuracy": last.and_then(|s| s.test_accuracy),
        "grid": { "size": GRID, "extent": EXTENT, "p": p },
    })
}
