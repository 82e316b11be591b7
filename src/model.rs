//! A model: its text, the per-sample input shape it was built for, and the layers.

use crate::checkpoint;
use crate::data::inputs::Samples;
use crate::error::{Error, Result};
use crate::layers::{Layer, Mode, Sequential, param_count};
use crate::spec;
use crate::tensor::{MAX_VALUES, Tensor, shape_str};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// A network built from model text for one per-sample input shape.
///
/// # Shapes
/// `forward` takes `[N, …input_shape]` and gives `[N, …output_shape]`.
pub struct Model {
    text: String,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    net: Sequential,
    /// The parameter names, as [`Layer::visit_params`] gives them at construction.
    param_names: Vec<String>,
    /// Whether building `text` again gives these very layers (not so for [`Model::from_layers`]).
    from_text: bool,
}

/// The memory the system can still give (Linux's `MemAvailable`), if it says.
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A byte count in binary units: `1.5 GiB`.
fn human_bytes(b: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// One line of a model summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// The layer's index.
    pub index: usize,
    /// The layer as PyTorch prints it, on one line.
    pub layer: String,
    /// Its per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Its number of learnable values.
    pub params: usize,
}

impl Model {
    /// Parses `text` (or a preset name), builds the layers with initial weights from `rng`, and checks
    /// that they chain for `input_shape`.
    ///
    /// # Errors
    /// A syntax error (with column), an unknown layer or argument, or layers that do not fit together
    /// (naming the layer, the shape it expects, the shape it got and where that came from); a model
    /// larger than [`MAX_VALUES`] parameters, or a layer whose output or window sweep would exceed
    /// [`MAX_VALUES`] values per sample, refused before its weights are allocated.
    pub fn build(text: &str, input_shape: &[usize], rng: &mut impl Rng) -> Result<Model> {
        let text = spec::expand(text).trim().to_string();
        let calls = spec::parse(&text)?;
        let mut budget = MAX_VALUES;
        let layers = calls
            .iter()
            .map(|c| spec::build(c, &text, &mut budget, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            text,
            from_text: true,
            ..Model::from_layers(layers, input_shape)?
        })
    }

    /// A model of layers built in code, a user's own [`Layer`]s among them, for samples of
    /// `input_shape`. Its text is the layers' `Display`, one after the other; a checkpoint of it
    /// loads back through [`checkpoint::Checkpoint::load_into`] into the same layers built again.
    ///
    /// # Errors
    /// Layers that do not fit together, as [`Model::build`].
    pub fn from_layers(layers: Vec<Box<dyn Layer>>, input_shape: &[usize]) -> Result<Model> {
        let text = layers
            .iter()
            .map(|l| crate::layers::one_line(l.as_ref()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut net = Sequential::new(layers);
        let output_shape = net.check_input(input_shape)?;
        let mut param_names = Vec::new();
        net.visit_params("", &mut |name, _| param_names.push(name.to_string()));
        Ok(Model {
            text,
            input_shape: input_shape.to_vec(),
            output_shape,
            net,
            param_names,
            from_text: false,
        })
    }

    /// [`Model::build`] with initial weights drawn from a generator seeded with `seed`: the CLI's
    /// `--seed` (without `--initializer`), so the same seed gives the same model here and there.
    ///
    /// # Errors
    /// As [`Model::build`].
    pub fn new(text: &str, input_shape: &[usize], seed: u64) -> Result<Model> {
        Model::build(
            text,
            input_shape,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        )
    }

    /// The model saved in a checkpoint with its weights, ready to predict or to train on: its text
    /// and input shape come from the file's metadata.
    ///
    /// # Errors
    /// As [`checkpoint::read`]; a file that does not record the model text or the input shape
    /// (one saved by PyTorch: then build the model with [`Model::build`] and load the weights with
    /// [`checkpoint::Checkpoint::load_into`]); weights that do not fit the model.
    pub fn load(path: &Path) -> Result<Model> {
        let ck = checkpoint::read(path)?;
        let missing = |key: &str| Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!(
                "has no '{key}' metadata (not saved by scratchnet?): build the model with Model::build and load the weights with Checkpoint::load_into"
            ),
        };
        let text = ck
            .model_text()
            .ok_or_else(|| missing(checkpoint::MODEL_KEY))?;
        let shape = ck
            .input_shape()?
            .ok_or_else(|| missing(checkpoint::INPUT_SHAPE_KEY))?;
        let mut model = Model::new(text, &shape, 0)?;
        ck.load_into(&mut model)?;
        Ok(model)
    }

    /// The model text (presets expanded).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The per-sample input shape the model was built for.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The layers.
    pub fn net(&mut self) -> &mut Sequential {
        &mut self.net
    }

    /// The layers, read-only.
    pub fn net_ref(&self) -> &Sequential {
        &self.net
    }

    /// The parameter names, in order (`0.weight`, `0.bias`, …).
    pub fn param_names(&self) -> &[String] {
        &self.param_names
    }

    /// Whether [`Model::build`] made it from its text, so that building the text again gives the
    /// same layers (with other weights).
    pub fn is_from_text(&self) -> bool {
        self.from_text
    }

    /// A copy of every parameter and buffer (running statistics), in visiting order, to put back
    /// with [`Model::restore`] (keeping the best epoch's weights while training goes on).
    pub fn snapshot(&self) -> Vec<Tensor> {
        let mut saved = Vec::new();
        self.net.params("", &mut |_, p| saved.push(p.value.clone()));
        self.net
            .buffers("", &mut |_, b| saved.push(b.value.clone()));
        saved
    }

    /// Puts back the values of a [`Model::snapshot`] of this model.
    ///
    /// # Errors
    /// A snapshot of another model (a different count or shape of tensors).
    pub fn restore(&mut self, saved: &[Tensor]) -> Result<()> {
        let mut values = saved.iter();
        let mut fits = true;
        let mut put = |t: &mut Tensor| match values.next() {
            Some(v) if v.shape() == t.shape() => t.data_mut().copy_from_slice(v.data()),
            _ => fits = false,
        };
        self.net.visit_params("", &mut |_, p| put(&mut p.value));
        self.net.visit_buffers("", &mut |_, b| put(&mut b.value));
        if !fits || values.next().is_some() {
            return Err(Error::invalid(
                "the snapshot does not fit this model: restore takes a snapshot of the same model",
            ));
        }
        Ok(())
    }

    /// Checks that a batch of shape `[N, …]` fits the model.
    pub fn check_batch(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != self.input_shape.len() + 1 || shape[1..] != self.input_shape[..] {
            return Err(Error::invalid(format!(
                "input of shape {} does not fit a model built for samples of shape {}",
                shape_str(shape),
                shape_str(&self.input_shape)
            )));
        }
        Ok(())
    }

    /// `y = model(x)` for a batch `x: [N, …input_shape]`.
    pub fn forward(&mut self, x: Tensor, mode: Mode) -> Result<Tensor> {
        self.check_batch(x.shape())?;
        self.net.forward(x, mode)
    }

    /// ∂L/∂x from ∂L/∂y; accumulates every parameter gradient.
    pub fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.net.backward(grad_y)
    }

    /// Accumulates every parameter gradient from ∂L/∂y without computing ∂L/∂x (what training needs);
    /// returns a free buffer of the input's shape, with unspecified values.
    pub fn backward_params(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.net.backward_params(grad_y)
    }

    /// The outputs for all of `x` (a tensor, or a dataset's inputs), computed in evaluation mode
    /// `batch` samples at a time.
    pub fn predict(&mut self, x: &impl Samples, batch: usize) -> Result<Tensor> {
        self.check_batch(x.shape())?;
        let n = x.shape()[0];
        let mut shape = vec![n];
        shape.extend_from_slice(&self.output_shape);
        let mut out = Vec::with_capacity(shape.iter().product());
        let mut rows = Tensor::default();
        for start in (0..n).step_by(batch.max(1)) {
            let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
            x.gather(&idx, &mut rows);
            let y = self.net.forward(std::mem::take(&mut rows), Mode::Eval)?;
            out.extend_from_slice(y.data());
        }
        Tensor::new(&shape, out)
    }

    /// Checks, before anything is allocated, that training on batches of `batch` samples can fit in
    /// memory: each layer keeps its output for backward and passes back a gradient of that size, so
    /// a batch needs about twice the sum of the layers' outputs. Refused when the largest output
    /// alone cannot be allocated, or the whole would not fit in the memory the machine has free.
    ///
    /// # Errors
    /// Names the sizes, the largest layer and its output shape, and says to lower `--batch-size`.
    pub fn check_memory(&mut self, batch: usize) -> Result<()> {
        let rows = self.summary();
        let bytes = |shape: &[usize]| {
            shape
                .iter()
                .fold(batch.saturating_mul(4), |b, &d| b.saturating_mul(d))
        };
        let Some(largest) = rows.iter().rev().max_by_key(|r| bytes(&r.output_shape)) else {
            return Ok(());
        };
        let total = rows
            .iter()
            .fold(0usize, |t, r| t.saturating_add(bytes(&r.output_shape)))
            .saturating_mul(2);
        let one = bytes(&largest.output_shape);
        let allocates = Vec::<f32>::new().try_reserve_exact(one / 4).is_ok();
        let free = available_memory();
        if allocates && free.is_none_or(|f| total <= f) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "a batch of {batch} needs about {} for the layers' outputs and gradients, more than \
             the {} this machine can give; the largest is layer {} ({}): {} for its output of {} \
             per sample. Lower --batch-size",
            human_bytes(total),
            free.map_or("memory".into(), |f| format!("{} free", human_bytes(f))),
            largest.index,
            largest.layer,
            human_bytes(one),
            shape_str(&largest.output_shape)
        )))
    }

    /// Each top-level layer with its output shape and parameter count.
    pub fn summary(&mut self) -> Vec<SummaryRow> {
        let mut shape = self.input_shape.clone();
        let mut rows = Vec::new();
        for (index, layer) in self.net.layers_mut().iter_mut().enumerate() {
            shape = layer.output_shape(&shape).expect("checked at construction");
            rows.push(SummaryRow {
                index,
                layer: crate::layers::one_line(layer.as_ref()),
                output_shape: shape.clone(),
                params: param_count(layer.as_mut()),
            });
        }
        rows
    }

    /// The summary as a table, with the total parameter count. A container (`Parallel`,
    /// `Sequential`) gets a row of its own, then one indented row per child (`2.0`, `2.1`).
    pub fn summary_table(&mut self) -> String {
        // (index, layer, output shape, params) as printed.
        let mut lines: Vec<(String, String, String, usize)> = Vec::new();
        for (r, layer) in self
            .summary()
            .into_iter()
            .zip(self.net.layers_mut().iter_mut())
        {
            let children: Vec<(String, String)> = layer
                .children()
                .iter()
                .map(|(name, l)| (name.clone(), crate::layers::one_line(*l)))
                .collect();
            if children.is_empty() {
                lines.push((
                    r.index.to_string(),
                    r.layer,
                    shape_str(&r.output_shape),
                    r.params,
                ));
                continue;
            }
            let mut per_child = std::collections::HashMap::<String, usize>::new();
            layer.visit_params("", &mut |name, p| {
                let child = name.split('.').next().unwrap_or_default().to_string();
                *per_child.entry(child).or_default() += p.value.len();
            });
            let kind = r.layer.split('(').next().unwrap_or_default().to_string();
            lines.push((
                r.index.to_string(),
                kind,
                shape_str(&r.output_shape),
                r.params,
            ));
            for (name, text) in children {
                let params = per_child.get(&name).copied().unwrap_or(0);
                lines.push((
                    format!("{}.{name}", r.index),
                    format!("  {text}"),
                    String::new(),
                    params,
                ));
            }
        }
        let width = lines
            .iter()
            .map(|l| l.1.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let iw = lines.iter().map(|l| l.0.len()).max().unwrap_or(1).max(3);
        let mut s = format!(
            "{:<iw$}  {:<width$}  {:<18}  {:>10}\n",
            "#", "layer", "output shape", "params"
        );
        s += &format!(
            "{:<iw$}  {:<width$}  {:<18}\n",
            "",
            "input",
            shape_str(&self.input_shape)
        );
        for (index, layer, shape, params) in &lines {
            s += &format!("{index:<iw$}  {layer:<width$}  {shape:<18}  {params:>10}\n");
        }
        let total: usize = lines
            .iter()
            .filter(|l| !l.0.contains('.'))
            .map(|l| l.3)
            .sum();
        s += &format!("total parameters: {total}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(0)
    }

    #[test]
    fn summary_table_lists_container_children_with_their_parameters() {
        let text = "Conv2d(1,8,3,stride=2), Parallel(Conv2d(8,4,3,padding=1), Conv2d(8,4,1)), Flatten, Linear(1352,10)";
        let t = Model::build(text, &[1, 28, 28], &mut rng())
            .unwrap()
            .summary_table();
        let line = |start: &str| {
            t.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{t}"))
        };
        assert!(
            line("1 ").contains("Parallel")
                && line("1 ").contains("[8, 13, 13]")
                && line("1 ").ends_with(" 328"),
            "{t}"
        );
        assert!(
            line("1.0").contains("Conv2d(8, 4, kernel_size=(3, 3)")
                && line("1.0").ends_with(" 292"),
            "{t}"
        );
        assert!(line("1.1").ends_with(" 36"), "{t}");
        assert!(
            t.ends_with("total parameters: 13938"),
            "children are not counted twice: {t}"
        );
    }

    #[test]
    fn presets_build_with_their_pytorch_parameter_counts() {
        for (name, shape, params) in [
            ("mlp", vec![1, 28, 28], 669_706),
            ("seed-cnn", vec![1, 28, 28], 80 + 584 + 2890),
            ("lenet", vec![1, 28, 28], 320 + 18_496 + 401_536 + 1290),
            ("nielsen", vec![784], 23_860),
        ] {
            let mut m = Model::build(name, &shape, &mut rng()).unwrap();
            assert_eq!(
                m.summary().iter().map(|r| r.params).sum::<usize>(),
                params,
                "{name}"
            );
            assert_eq!(m.output_shape(), &[10]);
        }
    }

    #[test]
    fn a_model_that_does_not_fit_names_both_layers_and_shapes() {
        let e = Model::build(
            "Conv2d(1,8,3,stride=2), ReLU, Flatten, Linear(288,10)",
            &[1, 28, 28],
            &mut rng(),
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            e,
            "layer 3 (Linear(in_features=288, out_features=10, bias=True)) expects input […, 288], got [1352] \
             from layer 2 (Flatten(start_dim=1, end_dim=-1))"
        );
        let e = Model::build("Conv2d(3,8,3)", &[1, 28, 28], &mut rng())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(
                "layer 0 (Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))) expects input [C=3"
            ),
            "{e}"
        );
        assert!(e.ends_with("got [1, 28, 28] from the input"), "{e}");
    }

    #[test]
    fn nested_containers_name_the_inner_layer() {
        let e = Model::build(
            "Parallel(Linear(4,2), Sequential(Linear(4,3), Linear(2,1)))",
            &[4],
            &mut rng(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with("layer 0.1.1 (Linear(in_features=2, out_features=1, bias=True)) expects input […, 2], got [3] from layer 0.1.0"), "{e}");
        let e = Model::build("Parallel(Linear(4,2), Flatten(0))", &[4], &mut rng())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("layer 0.1 (Flatten"), "{e}");
    }

    #[test]
    fn parallel_concatenates_and_names_params_like_pytorch() {
        let mut m = Model::build(
            "Parallel(Linear(4,2), Sequential(Linear(4,3), ReLU)), Linear(5,1)",
            &[4],
            &mut rng(),
        )
        .unwrap();
        assert_eq!(m.output_shape(), &[1]);
        let mut names = Vec::new();
        m.net()
            .visit_params("", &mut |n, _| names.push(n.to_string()));
        assert_eq!(
            names,
            [
                "0.0.weight",
                "0.0.bias",
                "0.1.0.weight",
                "0.1.0.bias",
                "1.weight",
                "1.bias"
            ]
        );
        let y = m.forward(Tensor::zeros(&[3, 4]), Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[3, 1]);
    }

    #[test]
    fn load_gives_the_saved_model_ready_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let mut a = Model::new("Conv2d(1,2,3), ReLU, Flatten, Linear(8,3)", &[1, 4, 4], 3).unwrap();
        checkpoint::save(&a, &p, &Default::default()).unwrap();
        let mut b = Model::load(&p).unwrap();
        assert_eq!((b.text(), b.input_shape()), (a.text(), a.input_shape()));
        let x = Tensor::new(&[2, 1, 4, 4], (0..32).map(|v| v as f32 / 9.0).collect()).unwrap();
        assert_eq!(a.predict(&x, 2).unwrap(), b.predict(&x, 2).unwrap());
        // A checkpoint without the input shape (as PyTorch writes them) says what to do instead.
        let golden = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/golden/lenet/init.safetensors"
        );
        let e = Model::load(golden.as_ref()).err().unwrap().to_string();
        assert!(
            e.ends_with("has no 'input_shape' metadata (not saved by scratchnet?): build the model with Model::build and load the weights with Checkpoint::load_into"),
            "{e}"
        );
    }

    #[test]
    fn restore_puts_back_a_snapshot_and_refuses_another_models() {
        let mut m = Model::new("Linear(3,4), BatchNorm1d(4), Linear(4,2)", &[3], 1).unwrap();
        let saved = m.snapshot();
        let x = Tensor::new(&[2, 3], vec![0.5, -1.0, 2.0, 1.0, 0.0, -0.5]).unwrap();
        let before = m.predict(&x, 2).unwrap();
        m.net()
            .visit_params("", &mut |_, p| p.value.data_mut().fill(0.25));
        m.forward(x.clone(), Mode::train(0)).unwrap(); // moves the running statistics
        assert_ne!(m.predict(&x, 2).unwrap(), before);
        m.restore(&saved).unwrap();
        assert_eq!(m.predict(&x, 2).unwrap(), before);
        let other = Model::new("Linear(3,2)", &[3], 1).unwrap().snapshot();
        assert!(
            m.restore(&other)
                .unwrap_err()
                .to_string()
                .starts_with("the snapshot does not fit this model")
        );
    }

    #[test]
    fn wrong_batch_shape_is_an_error() {
        let mut m = Model::build("mlp", &[1, 28, 28], &mut rng()).unwrap();
        let e = m
            .forward(Tensor::zeros(&[2, 784]), Mode::Eval)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "input of shape [2, 784] does not fit a model built for samples of shape [1, 28, 28]"
        );
    }

    #[test]
    fn summary_lists_layers_shapes_and_total() {
        let mut m = Model::build("seed-cnn", &[1, 28, 28], &mut rng()).unwrap();
        let t = m.summary_table();
        assert!(
            t.contains("[8, 13, 13]")
                && t.contains("[288]")
                && t.ends_with("total parameters: 3554"),
            "{t}"
        );
    }
}
