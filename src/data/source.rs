//! Where training data comes from: `--data fashion-mnist|mnist|DIR|X.npy:Y.npy`, with `--data-dir`,
//! `--test-split` and `--limit`.

use crate::data::dataset::{Dataset, Labels};
use crate::data::find::{dataset_file, dataset_info, find_dataset};
use crate::data::idx::{read_images, read_labels};
use crate::data::npy::{NpyData, read_npy};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The class names of a known dataset.
pub fn class_names(name: &str) -> Option<Vec<String>> {
    match name {
        "fashion-mnist" => Some(
            FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        "mnist" => Some((0..10).map(|d| d.to_string()).collect()),
        _ => None,
    }
}

/// The data flags shared by `train`, `eval` and `show`.
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataArgs {
    /// fashion-mnist, mnist, a directory of IDX files, or X.npy:Y.npy.
    #[cfg_attr(feature = "cli", arg(long))]
    pub data: Option<String>,
    /// Look for named datasets here first.
    #[cfg_attr(feature = "cli", arg(long))]
    pub data_dir: Option<PathBuf>,
    /// Split this fraction off as the test set (seeded by --split-seed); needed when a directory
    /// holds only a test split.
    #[cfg_attr(feature = "cli", arg(long))]
    pub test_split: Option<f64>,
    /// Seed of --test-split.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub split_seed: u64,
    /// Train on the first N training samples only.
    #[cfg_attr(feature = "cli", arg(long))]
    pub limit: Option<usize>,
}

impl DataArgs {
    /// Whether any data flag was given.
    pub fn is_given(&self) -> bool {
        self.data.is_some()
    }
}

/// `X.npy:Y.npy` of `--data`, split, unless a file or directory has that very name.
fn npy_pair(spec: &str) -> Option<(&str, &str)> {
    spec.split_once(':').filter(|_| !Path::new(spec).exists())
}

/// How [`load`] turns the files of `--data` into model inputs, in words (it goes into checkpoints
/// and exported models, so that whoever runs them feeds the same).
pub fn preprocessing(args: &DataArgs) -> &'static str {
    match args.data.as_deref().and_then(npy_pair) {
        Some(_) => "none: the float32 arrays of the .npy file, as they are",
        None => "x = pixel / 255: grayscale images as float32 [N, 1, H, W] in [0, 1]",
    }
}

/// The training set and, when there is one, the test set.
///
/// # Errors
/// No `--data`; a dataset that cannot be found (with how to get it); files that do not parse; a
/// split out of range; `--limit 0`.
pub fn load(args: &DataArgs) -> Result<(Dataset, Option<Dataset>)> {
    let spec = args.data.as_deref().ok_or_else(|| {
        Error::invalid(
            "give --data: fashion-mnist, mnist, a directory of IDX files, or X.npy:Y.npy",
        )
    })?;
    if args.limit == Some(0) {
        return Err(Error::invalid("--limit must be at least 1"));
    }
    if let Some(f) = args.test_split
        && !(f > 0.0 && f < 1.0)
    {
        return Err(Error::invalid(format!(
            "--test-split must be between 0 and 1 (exclusive), got {f}"
        )));
    }
    let (train, test) = if let Some((x, y)) = npy_pair(spec) {
        (
            Some(Dataset::new(
                read_inputs(Path::new(x))?,
                read_targets(Path::new(y))?,
            )?),
            None,
        )
    } else if let Some(info) = dataset_info(spec) {
        let dir = find_dataset(info.name, args.data_dir.as_deref())?;
        let (train, test) = read_idx_dir(&dir)?;
        let names = class_names(info.name);
        let named = |d: Dataset| Dataset {
            class_names: names.clone(),
            ..d
        };
        (train.map(named), test.map(named))
    } else if Path::new(spec).is_dir() {
        read_idx_dir(Path::new(spec))?
    } else {
        return Err(Error::invalid(format!(
            "--data '{spec}' is not a dataset name (fashion-mnist, mnist), a directory of IDX files, or X.npy:Y.npy"
        )));
    };
    let (train, test) = match (args.test_split, train, test) {
        (Some(f), Some(pool), _) | (Some(f), None, Some(pool)) => {
            let (a, b) = pool.split(f, args.split_seed)?;
            (a, Some(b))
        }
        (None, Some(train), test) => (train, test),
        (None, None, _) => {
            return Err(Error::invalid(format!(
                "--data {spec}: the directory holds only a test split (t10k-*); split it with --test-split 0.2"
            )));
        }
        (Some(_), None, None) => unreachable!("a dataset has a train or a test set"),
    };
    let train = match args.limit {
        Some(n) => train.limit(n),
        None => train,
    };
    Ok((train, test))
}

/// Reads the standard four files of an MNIST-style directory: the train pair, the test pair, or both.
fn read_idx_dir(dir: &Path) -> Result<(Option<Dataset>, Option<Dataset>)> {
    let pair = |prefix: &str| -> Result<Option<Dataset>> {
        let images = dataset_file(dir, &format!("{prefix}-images-idx3-ubyte.gz"));
        let labels = dataset_file(dir, &format!("{prefix}-labels-idx1-ubyte.gz"));
        match (images, labels) {
            (Some(i), Some(l)) => read_idx_pair(&i, &l).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) | (None, Some(_)) => Err(Error::invalid(format!(
                "{}: has only one of {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte",
                dir.display()
            ))),
        }
    };
    match (pair("train")?, pair("t10k")?) {
        (None, None) => Err(Error::invalid(format!(
            "{}: no train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] or t10k-* pair here",
            dir.display()
        ))),
        found => Ok(found),
    }
}

/// Images as `[N, 1, rows, cols]` scaled to [0, 1], with their labels.
fn read_idx_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let (n, rows, cols, pixels) = read_images(images)?;
    let y = read_labels(labels)?;
    if y.len() != n {
        return Err(Error::format(
            labels,
            format!(
                "{} labels for the {n} images of {}",
                y.len(),
                images.display()
            ),
        ));
    }
    let x = Tensor::new(
        &[n, 1, rows, cols],
        pixels.iter().map(|&p| p as f32 / 255.0).collect(),
    )?;
    Dataset::new(x, Labels::Classes(y.into_iter().map(u32::from).collect()))
}

/// A float array `(N, …)` from .npy.
///
/// # Errors
/// An integer array, a 0-d array, or a file that does not parse.
pub fn read_inputs(path: &Path) -> Result<Tensor> {
    let a = read_npy(path)?;
    match a.data {
        NpyData::Float(_) if a.shape.len() == 1 => Err(Error::format(
            path,
            format!(
                "has shape ({},), one value per sample; inputs need shape (N, features…), one row \
                 per sample: save one feature per sample as ({}, 1)",
                a.shape[0], a.shape[0]
            ),
        )),
        NpyData::Float(v) if !a.shape.is_empty() => Tensor::new(&a.shape, v),
        NpyData::Float(_) => Err(Error::format(
            path,
            "is a 0-d array; inputs need shape (N, …)",
        )),
        NpyData::Int(_) => Err(Error::format(
            path,
            format!("has dtype {}; inputs must be float32 or float64", a.dtype),
        )),
    }
}

/// Targets from .npy: integers are class indices, floats are values.
///
/// # Errors
/// A negative class index, a 0-d array, or a file that does not parse.
pub fn read_targets(path: &Path) -> Result<Labels> {
    let a = read_npy(path)?;
    if a.shape.is_empty() {
        return Err(Error::format(
            path,
            "is a 0-d array; targets need shape (N, …)",
        ));
    }
    match a.data {
        NpyData::Float(v) => Ok(Labels::Values(Tensor::new(&a.shape, v)?)),
        NpyData::Int(v) => {
            if a.shape.len() != 1 {
                return Err(Error::format(
                    path,
                    format!(
                        "integer class labels must have shape (N,), got {:?}",
                        a.shape
                    ),
                ));
            }
            v.iter()
                .enumerate()
                .map(|(i, &c)| {
                    u32::try_from(c).map_err(|_| {
                        Error::format(
                            path,
                            format!("label {c} at index {i} is not a class index (0, 1, 2, …)"),
                        )
                    })
                })
                .collect::<Result<Vec<u32>>>()
                .map(Labels::Classes)
        }
    }
}

#[cfg(feature = "cli")]
/// `scratchnet download NAME`: fetches the four files into `dir` (default: the cache).
pub fn download_cmd(name: &str, dir: Option<&Path>, mirror: Option<&str>) -> Result<PathBuf> {
    let info = dataset_info(name).ok_or_else(|| {
        Error::invalid(format!(
            "unknown dataset '{name}': expected fashion-mnist or mnist"
        ))
    })?;
    let dest = dir.map_or_else(
        || crate::data::find::cache_dir(info.name),
        Path::to_path_buf,
    );
    crate::data::download::download(info, mirror.unwrap_or(info.mirror), &dest, true)?;
    println!("{} is in {}", info.name, dest.display());
    Ok(dest)
}
