//! `Model.fit`: the library's `Trainer` run on a worker thread with the GIL released, while the
//! calling (main) thread, holding the GIL only for moments, shows progress and checks for Ctrl-C
//! (`Python::check_signals` works on the main thread only).
//!
//! Ctrl-C sets the trainer's interrupt flag: the batch under way finishes, the model keeps its
//! weights, and `fit` raises `KeyboardInterrupt` (the history so far is in `Model.history`).

use crate::convert;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use scratchnet::data::dataset::Dataset;
use scratchnet::tensor::Tensor;
use scratchnet::train::{self, EpochStats, Outcome, Trainer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often the main thread looks for signals, and the fastest the progress bar is redrawn.
const TICK: Duration = Duration::from_millis(50);

/// What the worker tells the main thread.
enum Event {
    /// `done` of `total` batches of `epoch` (from 1), with the mean loss so far.
    Batch {
        epoch: usize,
        done: usize,
        total: usize,
        loss: f64,
    },
    /// A finished epoch.
    Epoch(EpochStats),
    /// A line to show (early stopping).
    Line(String),
}

/// How a run ended, when it did not fail.
pub enum Ending {
    /// Every epoch asked for, or early stopping.
    Finished,
    /// Stopped by Ctrl-C after batch `batch` of epoch `epoch` (from 1; batch 0: between epochs).
    Interrupted { epoch: usize, batch: usize },
}

/// What `fit` asked for beyond the trainer itself.
pub struct Run<'a> {
    /// The training set.
    pub train: &'a Dataset,
    /// The validation set.
    pub test: Option<&'a Dataset>,
    /// Epochs to train.
    pub epochs: usize,
    /// Early stopping's patience; the model then ends with the best epoch's weights, as the CLI's
    /// checkpoint does.
    pub patience: Option<usize>,
    /// The worker pool (its size is `threads`; the result does not depend on it).
    pub pool: rayon::ThreadPool,
    /// 0: silent; 1: a progress bar and a line per epoch; 2: a line per epoch.
    pub verbose: u8,
}

/// Trains `t` as `run` says: the worker trains, this thread (the caller's, holding the GIL)
/// releases the GIL and wakes every [`TICK`] or event to check signals and show progress.
///
/// # Errors
/// The trainer's (a diverged step); `KeyboardInterrupt` after Ctrl-C, or the exception of another
/// signal handler.
pub fn fit(py: Python<'_>, t: &mut Trainer, run: &Run<'_>) -> PyResult<()> {
    let interrupt = &AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let trainer = &mut *t;
    let (ending, signal) = py.detach(move || {
        std::thread::scope(move |s| {
            let worker =
                s.spawn(move || run.pool.install(|| train_loop(trainer, run, interrupt, tx)));
            let signal = watch(&rx, interrupt, run);
            match worker.join() {
                Ok(ending) => (ending, signal),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    });
    let ending = convert::ok(ending)?;
    match (signal, ending) {
        (Some(e), _) if !e.is_instance_of::<PyKeyboardInterrupt>(py) => Err(e),
        (Some(_), Ending::Interrupted { epoch, batch }) => {
            Err(PyKeyboardInterrupt::new_err(format!(
                "training stopped in epoch {epoch} after batch {batch}; the model keeps the weights of that batch, and Model.history the {} finished epochs",
                t.history.len()
            )))
        }
        (Some(_), Ending::Finished) => Err(PyKeyboardInterrupt::new_err(
            "training had finished when the interrupt came; the model and Model.history are complete",
        )),
        (None, _) => Ok(()),
    }
}

/// The worker: epochs until done, interrupted or stopped early, reporting on `tx`; with early
/// stopping, puts back the best epoch's weights at the end.
fn train_loop(
    t: &mut Trainer,
    run: &Run<'_>,
    interrupt: &AtomicBool,
    tx: Sender<Event>,
) -> scratchnet::Result<Ending> {
    let mut best: Option<Vec<Tensor>> = None;
    while t.position.epoch < run.epochs {
        let epoch = t.position.epoch + 1;
        if interrupt.load(Ordering::SeqCst) {
            return Ok(Ending::Interrupted { epoch, batch: 0 });
        }
        let mut shown: Option<Instant> = None;
        let outcome = t.run_epoch(
            run.train,
            run.test,
            Some(interrupt),
            &mut |done, total, loss| {
                if done == total || shown.is_none_or(|s| s.elapsed() >= TICK) {
                    shown = Some(Instant::now());
                    let _ = tx.send(Event::Batch {
                        epoch,
                        done,
                        total,
                        loss,
                    });
                }
            },
        )?;
        let stats = match outcome {
            Outcome::Interrupted => {
                return Ok(Ending::Interrupted {
                    epoch,
                    batch: t.position.batch,
                });
            }
            Outcome::Finished(stats) => stats,
        };
        let _ = tx.send(Event::Epoch(stats.clone()));
        let Some(patience) = run.patience else {
            continue;
        };
        if train::best_epoch(&t.history).is_some_and(|(e, _)| e == stats.epoch) {
            best = Some(t.model.snapshot());
        }
        if let Some(why) = train::early_stop(patience, &t.history, stats.epoch) {
            let _ = tx.send(Event::Line(why));
            break;
        }
    }
    if let Some(best) = best {
        t.model.restore(&best)?;
    }
    Ok(Ending::Finished)
}

/// The main thread while the worker trains: every [`TICK`] or event, takes the GIL to check for
/// signals (the first one sets `interrupt` and is returned) and to show what happened.
fn watch(rx: &Receiver<Event>, interrupt: &AtomicBool, run: &Run<'_>) -> Option<PyErr> {
    let mut signal = None;
    let mut bar = Bar::default();
    loop {
        let event = rx.recv_timeout(TICK);
        let over = matches!(event, Err(RecvTimeoutError::Disconnected));
        Python::attach(|py| {
            if signal.is_none()
                && let Err(e) = py.check_signals()
            {
                interrupt.store(true, Ordering::SeqCst);
                signal = Some(e);
            }
            if let Ok(event) = event {
                bar.show(py, event, run);
            }
        });
        if over {
            return signal;
        }
    }
}

/// The progress display, written to Python's `sys.stdout` (so that it shows in notebooks): a bar
/// redrawn in place with `\r`, replaced by the CLI's epoch line when the epoch ends.
#[derive(Default)]
struct Bar {
    /// The width of what is on the current line.
    width: usize,
}

impl Bar {
    fn show(&mut self, py: Python<'_>, event: Event, run: &Run<'_>) {
        let line = match event {
            Event::Batch { .. } if run.verbose != 1 => return,
            Event::Batch {
                epoch,
                done,
                total,
                loss,
            } => {
                let filled = 30 * done / total.max(1);
                let text = format!(
                    "epoch {epoch}/{}  [{}{}]  {done}/{total}  loss {loss:.4}",
                    run.epochs,
                    "=".repeat(filled),
                    " ".repeat(30 - filled)
                );
                self.write(py, &text, false);
                return;
            }
            _ if run.verbose == 0 => return,
            Event::Epoch(stats) => train::epoch_line(&stats, run.epochs),
            Event::Line(text) => text,
        };
        self.write(py, &line, true);
    }

    /// Writes `text` over the current line, ending it when `end`.
    fn write(&mut self, py: Python<'_>, text: &str, end: bool) {
        let pad = " ".repeat(self.width.saturating_sub(text.chars().count()));
        let out = format!("\r{text}{pad}{}", if end { "\n" } else { "" });
        self.width = if end { 0 } else { text.chars().count() };
        // A closed or replaced stdout does not stop training.
        let _ = py.import("sys").and_then(|sys| {
            let stdout = sys.getattr("stdout")?;
            stdout.call_method1("write", (out,))?;
            stdout.call_method0("flush")
        });
    }
}
