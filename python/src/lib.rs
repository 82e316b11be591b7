//! The Python module `scratchnet`: scratchnet's models and training for numpy arrays.
//!
//! This crate only translates: keywords to the library's settings, arrays to tensors and back
//! ([`convert`]), errors to exceptions. Training is the library's `Trainer`, run as
//! `scratchnet train` runs it, so the same seed and data give the CLI's weights bit for bit.
//!
//! ```python
//! import numpy as np, scratchnet
//! m = scratchnet.Model("Linear(4,16), ReLU, Linear(16,3)", input_shape=(4,), seed=0)
//! history = m.fit(X, y, optimizer="adam", lr=0.01, epochs=30, batch_size=16, validation_data=(Xv, yv))
//! P = m.predict(X)
//! ```

mod convert;
mod fit;

use convert::ok;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use scratchnet::checkpoint;
use scratchnet::data::augment::Augment;
use scratchnet::data::dataset::Labels;
use scratchnet::data::input::InputInfo;
use scratchnet::init::Init;
use scratchnet::loss::Loss;
use scratchnet::optim::{Optimizer, Settings};
use scratchnet::rand::SeedableRng;
use scratchnet::resume::Resume;
use scratchnet::schedule::LrSchedule;
use scratchnet::train::{self, EpochStats, Schedule, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// A network built from model text, e.g. `Model("Linear(4,16), ReLU, Linear(16,3)",
/// input_shape=(4,), seed=0)`, or a preset (`mlp`, `seed-cnn`, `lenet`, `nielsen`). The seed draws
/// the initial weights (as `scratchnet train --seed`) and is `fit`'s default seed.
#[pyclass(module = "scratchnet", name = "Model")]
struct Model {
    /// `None` only after a crash inside training took it.
    inner: Mutex<Option<scratchnet::Model>>,
    /// The construction seed: `fit`'s default, as one `--seed` sets both in the CLI.
    seed: u64,
    /// How the training arrays became inputs (recorded into saved files, as the CLI does).
    input: Option<InputInfo>,
    /// The class names a loaded checkpoint recorded (JSON), kept when saving and exporting.
    classes: Option<String>,
    /// The loss of the last `fit` (or the loaded checkpoint's): `evaluate`'s default.
    loss: Option<Loss>,
    /// The finished epochs of the last `fit`.
    history: Vec<EpochStats>,
}

/// The error of a model that a crash inside training took.
fn lost() -> PyErr {
    PyRuntimeError::new_err("the model was lost when training crashed; build or load it again")
}

impl Model {
    /// The model, for a method that needs it.
    fn net(&mut self) -> PyResult<&mut scratchnet::Model> {
        self.inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .ok_or_else(lost)
    }

    /// The model, read-only (for getters).
    fn with<T>(&self, f: impl FnOnce(&scratchnet::Model) -> T) -> PyResult<T> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(guard.as_ref().ok_or_else(lost)?))
    }

    /// The metadata saved files carry beyond the model: the class names and the input record.
    fn metadata(&self, preprocessing: bool) -> BTreeMap<String, String> {
        let mut meta = BTreeMap::new();
        if let Some(c) = &self.classes {
            meta.insert(checkpoint::CLASSES_KEY.to_string(), c.clone());
        }
        if let Some(info) = &self.input {
            meta.extend(info.metadata());
            if preprocessing {
                meta.insert(checkpoint::PREPROCESSING_KEY.into(), info.describe());
            }
        }
        meta
    }
}

/// `loss` with `label_smoothing`, as `--loss` and `--label-smoothing`.
fn loss_of(name: &str, label_smoothing: Option<f32>) -> PyResult<Loss> {
    let loss: Loss = ok(name.parse())?;
    match label_smoothing {
        Some(s) if loss.is_cross_entropy() => ok(Loss::cross_entropy(s)),
        Some(_) => Err(PyValueError::new_err(format!(
            "label_smoothing applies to cross-entropy, not to loss {loss}"
        ))),
        None => Ok(loss),
    }
}

/// A `ValueError` unless `ok`.
fn check(ok: bool, msg: &str) -> PyResult<()> {
    if ok {
        Ok(())
    } else {
        Err(PyValueError::new_err(msg.to_string()))
    }
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (model, input_shape, seed = 0, initializer = None))]
    fn new(
        model: &str,
        input_shape: Vec<usize>,
        seed: u64,
        initializer: Option<&str>,
    ) -> PyResult<Model> {
        check(
            !input_shape.is_empty() && input_shape.iter().all(|&d| d > 0),
            &format!(
                "input_shape must be positive integers, like (1, 28, 28) or (4,); got {input_shape:?}"
            ),
        )?;
        // As `scratchnet train --model TEXT --seed S [--initializer I]`: one generator for both.
        let mut rng = scratchnet::rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut m = ok(scratchnet::Model::build(model, &input_shape, &mut rng))?;
        if let Some(name) = initializer {
            ok(Init::parse(name))?.apply(m.net(), &mut rng);
        }
        Ok(Model {
            inner: Mutex::new(Some(m)),
            seed,
            input: None,
            classes: None,
            loss: None,
            history: Vec::new(),
        })
    }

    /// The model saved in a safetensors checkpoint (by `save` or `scratchnet train`).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        let m = ok(scratchnet::Model::load(&path))?;
        let ck = ok(checkpoint::read(&path))?;
        Ok(Model {
            inner: Mutex::new(Some(m)),
            seed: 0,
            input: ok(InputInfo::of(&ck))?,
            classes: ck.metadata.get(checkpoint::CLASSES_KEY).cloned(),
            loss: Resume::loss_of(&ck),
            history: Vec::new(),
        })
    }

    /// Writes the weights as safetensors (PyTorch loads them; so do `Model.load` and the CLI).
    fn save(&mut self, path: PathBuf) -> PyResult<()> {
        let meta = self.metadata(false);
        ok(checkpoint::save(self.net()?, &path, &meta))
    }

    /// Writes the model as ONNX (input `input` [batch, …input_shape], output `output`).
    #[pyo3(signature = (path, opset = scratchnet::onnx::DEFAULT_OPSET))]
    fn export_onnx(&mut self, path: PathBuf, opset: i64) -> PyResult<()> {
        let meta = self.metadata(true);
        ok(scratchnet::onnx::save(self.net()?, &path, opset, &meta))
    }

    /// The layers with their output shapes and parameter counts, as `scratchnet summary`.
    fn summary(&mut self) -> PyResult<String> {
        Ok(self.net()?.summary_table())
    }

    /// The outputs for `x` ([N, …input_shape], any numeric dtype), as a float32 array, computed
    /// `batch_size` samples at a time in evaluation mode (as `scratchnet predict`).
    #[pyo3(signature = (x, batch_size = 100))]
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, numpy::PyArrayDyn<f32>>> {
        check(batch_size > 0, "batch_size must be at least 1")?;
        let x = convert::inputs(x, "X")?;
        check(x.shape()[0] > 0, "X: holds no samples")?;
        ok(train::check_finite(&x, "X", "inputs"))?;
        let m = self.net()?;
        let y = ok(py.detach(|| m.predict(&x, batch_size)))?;
        convert::array(py, &y)
    }

    /// Loss and accuracy on `x`, `y`: a dict with `loss`, `accuracy` (None for regression
    /// targets), `correct` and `total`. The loss is `loss`, else the last fit's (or the loaded
    /// file's), else cross-entropy for integer labels and mse for float targets.
    #[pyo3(signature = (x, y, loss = None, batch_size = 100))]
    fn evaluate<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        loss: Option<&str>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        check(batch_size > 0, "batch_size must be at least 1")?;
        let data = convert::dataset(x, y, ["X", "y"])?;
        let loss = match (loss, self.loss, &data.y) {
            (Some(name), _, _) => ok(name.parse())?,
            (None, Some(l), _) => l,
            (None, None, Labels::Classes(_) | Labels::Steps { .. }) => Loss::CrossEntropy,
            (None, None, Labels::Values(_)) => Loss::Mse,
        };
        let m = self.net()?;
        ok(train::check_data(m, loss, &data, "data"))?;
        let e = ok(py.detach(|| train::evaluate(m, loss, &data, batch_size)))?;
        let d = PyDict::new(py);
        d.set_item("loss", e.loss)?;
        d.set_item("accuracy", e.accuracy())?;
        d.set_item("correct", e.correct)?;
        d.set_item("total", e.total)?;
        Ok(d)
    }

    /// Trains on `x` ([N, …input_shape]) and `y` (integer class labels, or float targets for mse),
    /// with the options of `scratchnet train` as keywords; returns the per-epoch figures (the
    /// CLI's `--history`), also kept as `Model.history`. Each call starts a new optimiser.
    ///
    /// Ctrl-C stops after the batch under way and raises `KeyboardInterrupt`; the model keeps the
    /// weights reached, `Model.history` the finished epochs.
    #[pyo3(signature = (
        x, y, *, epochs = 10, batch_size = 50, loss = "cross-entropy", optimizer = "sgd", lr = 0.1,
        momentum = 0.0, dampening = 0.0, nesterov = false, weight_decay = None, alpha = 0.99,
        centered = false, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, lr_schedule = None,
        clip_grad_norm = None, label_smoothing = None, augment = None, early_stopping = None,
        shuffle = true,
        seed = None, validation_data = None, threads = None, verbose = 1
    ))]
    #[allow(clippy::too_many_arguments)] // one per keyword, as the CLI has one per flag
    fn fit<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        epochs: usize,
        batch_size: usize,
        loss: &str,
        optimizer: &str,
        lr: f32,
        momentum: f32,
        dampening: f32,
        nesterov: bool,
        weight_decay: Option<f32>,
        alpha: f32,
        centered: bool,
        beta1: f32,
        beta2: f32,
        eps: f32,
        lr_schedule: Option<&str>,
        clip_grad_norm: Option<f32>,
        label_smoothing: Option<f32>,
        augment: Option<&str>,
        early_stopping: Option<usize>,
        shuffle: bool,
        seed: Option<u64>,
        validation_data: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
        threads: Option<usize>,
        verbose: u8,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Everything is checked before the first batch, in the CLI's order.
        check(epochs > 0, "epochs must be at least 1")?;
        check(batch_size > 0, "batch_size must be at least 1")?;
        check(
            clip_grad_norm.is_none_or(|m| m > 0.0 && m.is_finite()),
            "clip_grad_norm must be > 0",
        )?;
        check(
            early_stopping != Some(0),
            "early_stopping needs a patience of at least 1 epoch",
        )?;
        check(threads != Some(0), "threads must be at least 1")?;
        check(
            verbose <= 2,
            "verbose must be 0 (silent), 1 (progress bar) or 2 (a line per epoch)",
        )?;
        check(
            early_stopping.is_none() || validation_data.is_some(),
            "early_stopping watches the validation loss: give validation_data=(X_val, y_val)",
        )?;
        let mut optimizer = ok(Optimizer::new(ok(Settings {
            optimizer: optimizer.into(),
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            alpha,
            centered,
            beta1,
            beta2,
            eps,
        }
        .config())?))?;
        let loss = loss_of(loss, label_smoothing)?;
        let train = convert::dataset(x, y, ["X", "y"])?;
        let test = validation_data
            .map(|(xv, yv)| convert::dataset(&xv, &yv, ["validation X", "validation y"]))
            .transpose()?;
        let lr_schedule = lr_schedule
            .map(|text| {
                let batches = train.len().div_ceil(batch_size);
                ok(LrSchedule::new(
                    text,
                    &mut optimizer.config,
                    epochs,
                    batches,
                ))
            })
            .transpose()?;
        let augment = augment.map(|a| ok(Augment::parse(a))).transpose()?;
        if let Some(a) = &augment {
            ok(a.check(train.sample_shape()))?;
        }
        let m = self.net()?;
        ok(train::check_data(m, loss, &train, "training data"))?;
        if let Some(t) = &test {
            ok(train::check_data(m, loss, t, "validation data"))?;
        }
        ok(m.check_memory(batch_size.min(train.len())))?;
        for w in train::data_warnings(m, &train) {
            convert::warn(py, &format!("training data: {w}"))?;
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.map_or(0, |n| n.min(cores)))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("setting up threads: {e}")))?;

        let model = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let schedule = Schedule {
            batch_size,
            shuffle,
            seed: seed.unwrap_or(self.seed),
        };
        let mut trainer = Trainer::new(
            model.take().expect("checked by net()"),
            optimizer,
            loss,
            schedule,
        );
        trainer.controls.lr_schedule = lr_schedule;
        trainer.controls.clip_grad_norm = clip_grad_norm;
        trainer.controls.augment = augment;
        let run = fit::Run {
            train: &train,
            test: test.as_ref(),
            epochs,
            patience: early_stopping,
            pool,
            verbose,
        };
        let result = fit::fit(py, &mut trainer, &run);
        *model = Some(trainer.model);
        self.history = trainer.history;
        self.loss = Some(loss);
        self.input = Some(InputInfo::for_training(&train, true));
        result?;
        convert::history(py, &self.history)
    }

    /// The per-epoch figures of the last `fit` (a list of dicts, the keys of the CLI's history).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::history(py, &self.history)
    }

    /// The model text (presets expanded).
    #[getter]
    fn text(&self) -> PyResult<String> {
        self.with(|m| m.text().to_string())
    }

    /// The per-sample input shape.
    #[getter]
    fn input_shape(&self) -> PyResult<Vec<usize>> {
        self.with(|m| m.input_shape().to_vec())
    }

    /// The per-sample output shape.
    #[getter]
    fn output_shape(&self) -> PyResult<Vec<usize>> {
        self.with(|m| m.output_shape().to_vec())
    }

    fn __repr__(&self) -> PyResult<String> {
        self.with(|m| {
            format!(
                "scratchnet.Model({:?}, input_shape={:?})",
                m.text(),
                m.input_shape()
            )
        })
    }
}

/// The module.
#[pymodule]
#[pyo3(name = "scratchnet")]
fn scratchnet_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
