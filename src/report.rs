//! What the CLI shows people: epoch lines, history files, evaluation tables, samples, predictions.

use crate::data::atomic::atomic_write;
use crate::data::dataset::{Dataset, Labels};
use crate::data::input::{ImageStyle, InputInfo};
use crate::data::source::Expect;
use crate::data::table;
use crate::error::{Error, Result};
use crate::image_io;
use crate::loss::Loss;
use crate::model::Model;
use crate::plot::{self, Curves};
use crate::tensor::Tensor;
use crate::train::{EpochStats, evaluate};
use crate::{Mode, checkpoint};
use rand::SeedableRng;
use std::path::Path;

pub use crate::train::epoch_line;
use crate::train::fraction;

/// Writes the per-epoch figures as JSON (an array of objects) or CSV (same columns), by extension.
pub fn write_history(path: &Path, history: &[EpochStats]) -> Result<()> {
    let text = if path.extension().is_some_and(|e| e == "csv") {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let mut s = String::from(
            "epoch,train_loss,train_accuracy,test_loss,test_accuracy,train_seconds,test_seconds,train_correct,train_total,test_correct,test_total,lr,grad_norm\n",
        );
        for h in history {
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                h.epoch,
                h.train_loss,
                opt(h.train_accuracy),
                opt(h.test_loss),
                opt(h.test_accuracy),
                h.train_seconds,
                h.test_seconds,
                h.train_correct,
                h.train_total,
                h.test_correct,
                h.test_total,
                opt(h.lr),
                opt(h.grad_norm)
            );
        }
        s
    } else {
        serde_json::to_string_pretty(history).map_err(|e| Error::invalid(e.to_string()))?
    };
    atomic_write(path, text.as_bytes())
}

/// Loss and accuracy curves, train against test.
pub fn plot_history(path: &Path, history: &[EpochStats]) -> Result<()> {
    let col =
        |f: &dyn Fn(&EpochStats) -> Option<f64>| history.iter().filter_map(f).collect::<Vec<f64>>();
    let epochs = col(&|h| Some(h.epoch as f64));
    let (train_loss, test_loss) = (col(&|h| Some(h.train_loss)), col(&|h| h.test_loss));
    let (train_acc, test_acc) = (col(&|h| h.train_accuracy), col(&|h| h.test_accuracy));
    plot::plot_curves(
        path,
        &epochs,
        &Curves {
            train_loss: &train_loss,
            test_loss: &test_loss,
            train_accuracy: &train_acc,
            test_accuracy: &test_acc,
        },
    )
}

/// Class probabilities from a model's outputs: softmax of logits, or the outputs themselves when
/// they already lie in [0, 1] (a Softmax or Sigmoid last layer), normalised to sum to 1.
pub fn probabilities(outputs: &[f32]) -> Vec<f32> {
    if outputs.iter().all(|v| (0.0..=1.0).contains(v)) {
        let sum: f32 = outputs.iter().sum::<f32>().max(f32::MIN_POSITIVE);
        return outputs.iter().map(|v| v / sum).collect();
    }
    let m = outputs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = outputs.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Indices of the `k` largest values, best first.
pub fn top_k(p: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    idx.truncate(k);
    idx
}

/// A class's name; quoted when it would not show (a text's characters: `" "`, `"\n"`).
fn name(names: &Option<Vec<String>>, class: usize) -> String {
    match names.as_ref().and_then(|n| n.get(class)) {
        Some(n) if n.trim() != n || n.is_empty() || n.chars().any(char::is_control) => {
            format!("{n:?}")
        }
        Some(n) => n.clone(),
        None => format!("class {class}"),
    }
}

/// The widest confusion matrix printed (a text's vocabulary is larger; `--plot` draws it).
const MAX_PRINTED_CLASSES: usize = 20;

/// Prints loss, accuracy, per-class accuracy and the confusion matrix; optionally plots the matrix.
/// With per-step targets (a text) every step counts as one prediction.
pub fn evaluation(
    model: &mut Model,
    loss: Loss,
    data: &Dataset,
    plot_path: Option<&Path>,
) -> Result<()> {
    let eval = evaluate(model, loss, data, 100)?;
    println!("{} samples  loss {:.4}", data.len(), eval.loss);
    let (Labels::Classes(truth) | Labels::Steps { classes: truth, .. }) = &data.y else {
        return Ok(());
    };
    let per = data.y.per_sample();
    let steps = match per {
        1 => String::new(),
        t => format!(" ({t} steps per sample, each scored)"),
    };
    println!("accuracy {}{steps}", fraction(eval.correct, eval.total));
    let k = model.output_shape().iter().product::<usize>() / per;
    let mut matrix = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(&eval.predictions) {
        matrix[t as usize][p as usize] += 1;
    }
    let names: Vec<String> = (0..k).map(|c| name(&data.class_names, c)).collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("\nper class:");
    for (c, row) in matrix.iter().enumerate() {
        let total: usize = row.iter().sum();
        println!("  {:<width$}  {}", names[c], fraction(row[c], total));
    }
    if k > MAX_PRINTED_CLASSES {
        println!("\nconfusion matrix: {k} classes, too many to print (--plot FILE draws it)");
    } else {
        print_confusion(&matrix, &names);
    }
    if let Some(p) = plot_path {
        plot::plot_confusion(p, &matrix, &names)?;
        println!("\nwrote {}", p.display());
    }
    Ok(())
}

/// The confusion matrix as a table, rows the true classes.
fn print_confusion(matrix: &[Vec<usize>], names: &[String]) {
    let k = names.len();
    println!("\nconfusion matrix (rows: true class, columns: predicted):");
    let cell = matrix
        .iter()
        .flatten()
        .max()
        .map_or(1, |m| m.to_string().len())
        .max(3);
    let labels: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    print!("  {:<width$} ", "");
    (0..k).for_each(|c| print!(" {c:>cell$}"));
    println!();
    for (row, label) in matrix.iter().zip(&labels) {
        print!("  {label:<width$} ");
        row.iter().for_each(|v| print!(" {v:>cell$}"));
        println!();
    }
}

/// Loads a checkpoint for image inputs: of the per-sample shape it records (else `[1, 28, 28]`, or
/// `[784]` for a model without Flatten), with the look of its training images (else
/// [`image_io::default_style`]) and the class names it was trained on, if it records them.
fn image_model(path: &Path, text: Option<&str>) -> Result<ImageModel> {
    let ck = checkpoint::read(path)?;
    let text = text.or(ck.model_text()).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: "the checkpoint has no 'model' metadata; pass --model TEXT".into(),
    })?;
    let info = InputInfo::of(&ck)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = match &info {
        Some(i) => Model::build(text, &i.shape, &mut rng)?,
        None => Model::build(text, &[1, 28, 28], &mut rng)
            .or_else(|e| Model::build(text, &[784], &mut rng).map_err(|_| e))?,
    };
    ck.load_into(&mut model)?;
    let shape = image_io::image_shape(model.input_shape()).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!(
            "the model takes inputs of shape {:?}, which are not images ([1 or 3, H, W])",
            model.input_shape()
        ),
    })?;
    let style = image_io::recorded_style(info.as_ref(), shape);
    let names = ck
        .metadata
        .get(checkpoint::CLASSES_KEY)
        .and_then(|j| serde_json::from_str(j).ok());
    Ok(ImageModel {
        model,
        shape,
        style,
        names,
        info,
    })
}

/// A model that takes images, with how to prepare them and its class names.
struct ImageModel {
    model: Model,
    shape: [usize; 3],
    style: ImageStyle,
    names: Option<Vec<String>>,
    /// The recorded input preparation (`--normalize`), applied after loading.
    info: Option<InputInfo>,
}

/// Classifies image files and prints the top classes of each with probabilities. Each image is
/// prepared as the training images were ([`image_io::load_for_model`]); `invert` overrides the
/// guess of whether it must be inverted.
pub fn predict_images(
    checkpoint: &Path,
    text: Option<&str>,
    images: &[std::path::PathBuf],
    invert: Option<bool>,
    top: usize,
    classes: Option<&str>,
) -> Result<()> {
    let ImageModel {
        mut model,
        shape,
        style,
        names: recorded,
        info,
    } = image_model(checkpoint, text)?;
    let names = classes
        .map(|c| {
            crate::data::source::class_names(c)
                .unwrap_or_else(|| c.split(',').map(|s| s.trim().to_string()).collect())
        })
        .or(recorded);
    let outputs: usize = model.output_shape().iter().product();
    if let (Some(c), Some(names)) = (classes, &names)
        && names.len() != outputs
    {
        return Err(Error::invalid(format!(
            "--classes {c}: {} names for a model with {outputs} outputs",
            names.len()
        )));
    }
    let images = &expand_folders(images)?;
    // Load every image first, so that a bad file fails before any output.
    let pixels = images
        .iter()
        .map(|p| image_io::load_for_model(p, shape, style, invert))
        .collect::<Result<Vec<_>>>()?;
    for (path, px) in images.iter().zip(pixels) {
        let mut batch = vec![1];
        batch.extend_from_slice(model.input_shape());
        let mut x = Tensor::new(&batch, px)?;
        info.as_ref().map_or(Ok(()), |i| i.prepare(&mut x))?;
        let y = model.forward(x, Mode::Eval)?;
        let p = probabilities(y.data());
        let best: Vec<String> = top_k(&p, top.max(1))
            .iter()
            .map(|&c| format!("{} {:.1}%", name(&names, c), 100.0 * p[c]))
            .collect();
        println!("{}: {}", path.display(), best.join(", "));
    }
    Ok(())
}

/// The image files of `paths`: a file as it is, a folder as the images (.png, .jpg, .jpeg, .pgm,
/// .ppm, .pnm) in it and its subfolders, sorted by path.
///
/// # Errors
/// An unreadable folder, or one without images.
fn expand_folders(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let p = e.map_err(|e| Error::io(dir, e))?.path();
            let image = p.extension().is_some_and(|x| {
                ["png", "jpg", "jpeg", "pgm", "ppm", "pnm"]
                    .iter()
                    .any(|k| x.eq_ignore_ascii_case(k))
            });
            if p.is_dir() {
                walk(&p, out)?;
            } else if image {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            if found.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: no .png, .jpg, .jpeg, .pgm, .ppm or .pnm images in this folder",
                    p.display()
                )));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Predicts every row of a CSV table with the columns and standardisation the checkpoint records:
/// prints one line per row (the class and its probability, or the fitted numbers) and, with
/// `output`, writes the raw outputs `[N, …]` as float32 .npy.
///
/// # Errors
/// A checkpoint not trained on a table; a table without the columns it was trained on.
pub fn predict_table(
    checkpoint: &Path,
    text: Option<&str>,
    input: &Path,
    output: Option<&Path>,
) -> Result<()> {
    let ck = checkpoint::read(checkpoint)?;
    let info = InputInfo::of(&ck)?;
    let Some(t) = info.as_ref().and_then(|i| i.table.as_ref()) else {
        return Err(Error::Checkpoint {
            path: checkpoint.to_path_buf(),
            msg: format!(
                "was not trained on a CSV table, so it cannot read {}; give it an .npy batch or images",
                input.display()
            ),
        });
    };
    let mut table = table::read(
        input,
        &table::Request {
            features: Some(&t.features),
            ..table::Request::default()
        },
    )?;
    info.as_ref().map_or(Ok(()), |i| i.prepare(&mut table.x))?;
    let names = Expect::of(&ck)?.classes;
    let text = text.or(ck.model_text()).ok_or_else(|| Error::Checkpoint {
        path: checkpoint.to_path_buf(),
        msg: "the checkpoint has no 'model' metadata; pass --model TEXT".into(),
    })?;
    let mut model = Model::build(
        text,
        &table.x.shape()[1..],
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
    )?;
    ck.load_into(&mut model)?;
    let y = model.predict(&table.x, 100)?;
    let k = y.len() / y.shape()[0].max(1);
    for (row, line) in y.data().chunks_exact(k.max(1)).zip(&table.lines) {
        let shown = if t.regression {
            row.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            let p = probabilities(row);
            let best = top_k(&p, 1)[0];
            format!("{} {:.1}%", name(&names, best), 100.0 * p[best])
        };
        println!("line {line}: {shown}");
    }
    if let Some(out) = output {
        crate::data::npy::write_npy_f32(out, y.shape(), y.data())?;
        println!("wrote {} outputs to {}", y.shape()[0], out.display());
    }
    Ok(())
}

/// Prints a sample in the terminal with its label (and a model's prediction), and saves it enlarged.
pub fn show_sample(
    data: &Dataset,
    index: usize,
    model: Option<Model>,
    out: Option<&Path>,
) -> Result<()> {
    let shape = data.sample_shape();
    let (h, w) = match shape {
        [1, h, w] | [h, w] => (*h, *w),
        _ => {
            return Err(Error::invalid(format!(
                "show draws grayscale images ([1, H, W]); the samples are {shape:?}"
            )));
        }
    };
    let x = data.select(&[index]);
    let pixels = x.x.rows(0, 1);
    let Labels::Classes(c) = &x.y else {
        return Err(Error::invalid("show needs class labels"));
    };
    let mut caption = format!(
        "#{index}  label: {}",
        name(&data.class_names, c[0] as usize)
    );
    if let Some(mut m) = model {
        let y = m.forward(pixels.clone(), Mode::Eval)?;
        let p = probabilities(y.data());
        let best = top_k(&p, 1)[0];
        caption += &format!(
            "   predicted: {} ({:.1}%)",
            name(&data.class_names, best),
            100.0 * p[best]
        );
    }
    println!("{}", image_io::terminal_image(pixels.data(), h, w));
    println!("{caption}");
    if let Some(path) = out {
        plot::plot_sample(path, pixels.data(), h, w, 10, &caption)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> EpochStats {
        EpochStats {
            epoch: 2,
            train_loss: 0.5,
            train_accuracy: Some(0.75),
            train_correct: 1500,
            train_total: 2000,
            test_loss: Some(0.25),
            test_accuracy: Some(0.8),
            test_correct: 8000,
            test_total: 10000,
            train_seconds: 1.5,
            test_seconds: 0.25,
            lr: None,
            grad_norm: None,
        }
    }

    #[test]
    fn epoch_line_shows_right_over_total_and_phase_times() {
        assert_eq!(
            epoch_line(&stats(), 10),
            "epoch 2/10  train loss 0.5000  accuracy 1500/2000 (75.00%)  |  test loss 0.2500  accuracy 8000/10000 (80.00%)  |  train 1.50 s  test 0.25 s"
        );
    }

    #[test]
    fn history_json_and_csv_have_the_documented_columns() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("h.json");
        write_history(&j, &[stats()]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        for key in [
            "epoch",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "train_seconds",
            "test_seconds",
        ] {
            assert!(v[0].get(key).is_some(), "{key}");
        }
        assert_eq!(v[0]["test_accuracy"], 0.8);
        let c = dir.path().join("h.csv");
        write_history(&c, &[stats()]).unwrap();
        let text = std::fs::read_to_string(&c).unwrap();
        assert!(text.starts_with(
            "epoch,train_loss,train_accuracy,test_loss,test_accuracy,train_seconds,test_seconds"
        ));
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("2,0.5,0.75,0.25,0.8,1.5,0.25")
        );
    }

    #[test]
    fn probabilities_of_logits_and_of_sigmoid_outputs() {
        let p = probabilities(&[0.0, 0.0, 3.0_f32.ln() + 0.0]);
        assert!((p[2] - 0.6).abs() < 1e-6);
        let p = probabilities(&[0.2, 0.6]);
        assert!((p[1] - 0.75).abs() < 1e-6);
        assert_eq!(top_k(&[0.1, 0.7, 0.2], 2), [1, 2]);
    }
}
