//! scratchnet as a library: a model from text, a layer of your own, training with the `Trainer`,
//! a checkpoint loaded back, and an ONNX file. Runs with `default-features = false`.

use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::layers::{Elementwise, Layer, Linear, Mode, Param, ReLU};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::rand::SeedableRng;
use scratchnet::train::{Outcome, Schedule, Trainer};
use scratchnet::{Loss, Model, Tensor, checkpoint, onnx};
use std::fmt;

/// A layer of our own: `y[n, i] = s[i] · x[n, i]`, a learnable scale per feature.
struct Scale {
    s: Param,
    x: Option<Tensor>,
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scale({})", self.s.value.len())
    }
}

impl Layer for Scale {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [n] if *n == self.s.value.len() => Ok(input.to_vec()),
            _ => Err(format!("[{}]", self.s.value.len())),
        }
    }

    fn forward(&mut self, x: Tensor, _: Mode) -> scratchnet::Result<Tensor> {
        let s = self.s.value.data();
        let y = x
            .data()
            .chunks(s.len())
            .flat_map(|row| row.iter().zip(s).map(|(x, s)| x * s));
        let y = Tensor::new(x.shape(), y.collect())?;
        self.x = Some(x);
        Ok(y)
    }

    /// ∂L/∂s[i] += Σ_n ∂L/∂y[n, i] · x[n, i];  ∂L/∂x[n, i] = ∂L/∂y[n, i] · s[i].
    fn backward(&mut self, grad_y: Tensor) -> scratchnet::Result<Tensor> {
        let x = self
            .x
            .take()
            .ok_or_else(|| scratchnet::Error::NoForward(self.to_string()))?;
        let k = self.s.value.len();
        for (g, x) in grad_y.data().chunks(k).zip(x.data().chunks(k)) {
            for ((gs, g), x) in self.s.grad.data_mut().iter_mut().zip(g).zip(x) {
                *gs += g * x;
            }
        }
        let s = self.s.value.data();
        let gx = grad_y
            .data()
            .chunks(k)
            .flat_map(|g| g.iter().zip(s).map(|(g, s)| g * s));
        Tensor::new(grad_y.shape(), gx.collect())
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.s);
    }

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&format!("{prefix}weight"), &self.s);
    }
}

/// Three classes in the plane: which third of the circle a point lies in.
fn data(n: usize) -> scratchnet::Result<Dataset> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let angle = i as f32 * 2.399; // golden angle: points spread evenly
        let radius = 0.2 + (i % 7) as f32 / 7.0;
        x.extend([radius * angle.cos(), radius * angle.sin()]);
        let turn = angle.rem_euclid(std::f32::consts::TAU) / std::f32::consts::TAU;
        y.push((turn * 3.0) as u32 % 3);
    }
    Dataset::new(Tensor::new(&[n, 2], x)?, Labels::Classes(y))
}

/// Trains `model` for `epochs` with Adam and returns the last epoch's training accuracy.
fn train(model: Model, data: &Dataset, epochs: usize) -> scratchnet::Result<(Model, f64)> {
    let adam = Config::adam(0.02);
    let schedule = Schedule {
        batch_size: 32,
        shuffle: true,
        seed: 0,
    };
    let mut trainer = Trainer::new(model, Optimizer::new(adam)?, Loss::CrossEntropy, schedule);
    let mut accuracy = 0.0;
    for _ in 0..epochs {
        if let Outcome::Finished(stats) = trainer.run_epoch(data, None, None, &mut |_, _, _| {})? {
            accuracy = stats.train_accuracy.unwrap_or(0.0);
        }
    }
    Ok((trainer.model, accuracy))
}

fn main() -> scratchnet::Result<()> {
    let data = data(600)?;
    let dir = std::env::temp_dir().join(format!("scratchnet-library-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| scratchnet::Error::io(&dir, e))?;

    // A model from text, seeded: the same seed gives the same weights as `scratchnet train --seed`.
    let model = Model::new("Linear(2,32), ReLU, Linear(32,3)", &[2], 0)?;
    let (model, accuracy) = train(model, &data, 40)?;
    println!("from text: training accuracy {:.1}%", 100.0 * accuracy);
    assert!(accuracy > 0.9, "accuracy {accuracy}");

    // A checkpoint holds the text and the input shape: Model::load gives the model back, ready.
    let path = dir.join("model.safetensors");
    checkpoint::save(&model, &path, &Default::default())?;
    let mut loaded = Model::load(&path)?;
    let mut model = model;
    assert_eq!(model.predict(&data.x, 100)?, loaded.predict(&data.x, 100)?);
    onnx::save(
        &loaded,
        &dir.join("model.onnx"),
        onnx::DEFAULT_OPSET,
        &Default::default(),
    )?;
    println!("saved {} and model.onnx", path.display());

    // A layer of our own in a model, trained by the same Trainer.
    let mut rng = scratchnet::rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let scale = Scale {
        s: Param::new(Tensor::new(&[2], vec![1.0, 1.0])?),
        x: None,
    };
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(scale),
        Box::new(Linear::new(2, 32, true, &mut rng)),
        Box::new(Elementwise::new(ReLU)),
        Box::new(Linear::new(32, 3, true, &mut rng)),
    ];
    let custom = Model::from_layers(layers, &[2])?;
    let (custom, accuracy) = train(custom, &data, 40)?;
    println!(
        "{}: training accuracy {:.1}%",
        custom.text(),
        100.0 * accuracy
    );
    assert!(accuracy > 0.9, "accuracy {accuracy}");
    checkpoint::save(
        &custom,
        &dir.join("custom.safetensors"),
        &Default::default(),
    )?;
    std::fs::remove_dir_all(&dir).map_err(|e| scratchnet::Error::io(&dir, e))?;
    Ok(())
}
