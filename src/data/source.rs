//! Where training data comes from: `--data fashion-mnist|mnist|DIR|X.npy:Y.npy|FILE.csv`, with
//! `--data-dir`, `--test-split`, `--limit`, and a table's `--target`.

use crate::checkpoint::{self, Checkpoint};
use crate::data::dataset::{Dataset, Labels, split_indices};
use crate::data::find::{dataset_file, dataset_info, find_dataset};
use crate::data::idx::{read_images, read_images_rows, read_labels, read_labels_rows};
use crate::data::input::{InputInfo, TableInfo};
use crate::data::inputs::Inputs;
use crate::data::npy::{Npy, NpyData, read_npy};
use crate::data::npz::read_npz;
use crate::data::shard::{Cut, Part};
use crate::data::{table, text};
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
    /// fashion-mnist, mnist, a directory of IDX files, X.npy:Y.npy, FILE.npz (x/y or
    /// x_train/y_train/x_test/y_test), a CSV table (FILE.csv), or text:FILE (UTF-8 text cut into
    /// sequences of --seq-len characters with next-character targets).
    #[cfg_attr(feature = "cli", arg(long))]
    pub data: Option<String>,
    /// CSV: the target column (default: the last); repeat for several numbers to fit (--loss mse).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub target: Vec<String>,
    /// CSV: keep the feature columns as they are instead of standardising them with the training
    /// split's mean and standard deviation.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub no_standardize: bool,
    /// Look for named datasets here first.
    #[cfg_attr(feature = "cli", arg(long))]
    pub data_dir: Option<PathBuf>,
    /// A separate test set, in any of the forms of --data (a table's classes and columns are
    /// matched to the training data's).
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "test_split"))]
    #[serde(default)]
    pub test_data: Option<String>,
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
    /// train: normalise the inputs per channel, x ← (x − mean) / std, as torchvision's Normalize:
    /// MEAN,STD for every channel, M1,…,MC,S1,…,SC, or auto (the training split's); recorded in
    /// the checkpoint and applied by eval and predict.
    #[cfg_attr(feature = "cli", arg(long, value_name = "MEAN,STD|auto"))]
    #[serde(default)]
    pub normalize: Option<String>,
    /// A folder of images: the size `H,W` every image is fitted to (default: the first image's;
    /// others are scaled keeping their aspect ratio and padded with black).
    #[cfg_attr(feature = "cli", arg(long, value_name = "H,W"))]
    #[serde(default)]
    pub image_size: Option<String>,
    /// A folder of images: 1 (gray) or 3 (RGB) channels (default: 3 when any image is in colour).
    #[cfg_attr(feature = "cli", arg(long, value_parser = ["1", "3"]))]
    #[serde(default)]
    pub channels: Option<String>,
    /// A folder of images: skip files that are not images (with a warning and a count) instead of
    /// stopping at the first.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub skip_bad: bool,
    /// text:FILE: characters per sequence (default 64; for a trained model, its training length).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default)]
    pub seq_len: Option<usize>,
}

impl DataArgs {
    /// Whether any data flag was given.
    pub fn is_given(&self) -> bool {
        self.data.is_some()
    }
}

/// What loaded data must agree with: the kind of loss (a regression reads a table's targets as
/// numbers) and, for data a trained model is run on, the columns and classes it was trained with.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// The targets are numbers to fit (`--loss mse`), not classes.
    pub regression: bool,
    /// The table columns a trained model expects.
    pub table: Option<TableInfo>,
    /// The class names a trained model knows.
    pub classes: Option<Vec<String>>,
    /// The per-sample input shape a trained model takes (`[C, H, W]` for images).
    pub shape: Option<Vec<usize>>,
    /// The model reads token ids (it starts with Embedding): uint8 `(N, T)` inputs are ids too.
    pub token_ids: bool,
}

impl Expect {
    /// What a checkpoint's model was trained on.
    ///
    /// # Errors
    /// An unreadable record of the inputs.
    pub fn of(ck: &Checkpoint) -> Result<Expect> {
        let table = InputInfo::of(ck)?.and_then(|i| i.table);
        let shape = InputInfo::of(ck)?.map(|i| i.shape);
        Ok(Expect {
            shape,
            token_ids: ck.model_text().is_some_and(crate::spec::takes_token_ids),
            regression: table.as_ref().is_some_and(|t| t.regression),
            table,
            classes: ck
                .metadata
                .get(checkpoint::CLASSES_KEY)
                .and_then(|j| serde_json::from_str(j).ok()),
        })
    }
}

/// Whether `path` names a CSV table.
pub fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// The training set and, when there is one, the test set.
///
/// # Errors
/// As [`load_for`].
pub fn load(args: &DataArgs) -> Result<(Dataset, Option<Dataset>)> {
    load_for(args, &Expect::default())
}

/// The training set and, when there is one, the test set, read as `expect` says.
///
/// # Errors
/// No `--data`; a dataset that cannot be found (with how to get it); files that do not parse; a
/// split out of range; `--limit 0`; `--target` for data that is not a table; a class in the test
/// split of a table that the training split never had.
pub fn load_for(args: &DataArgs, expect: &Expect) -> Result<(Dataset, Option<Dataset>)> {
    let spec = args.data.as_deref().ok_or_else(|| {
        Error::invalid(
            "give --data: fashion-mnist, mnist, a directory of IDX files, X.npy:Y.npy, or FILE.csv",
        )
    })?;
    let csv = is_csv(Path::new(spec));
    if !csv && !args.target.is_empty() {
        return Err(Error::invalid(format!(
            "--target names a column of a CSV table; --data {spec} is not a .csv file"
        )));
    }
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
    if args.seq_len.is_some() && !spec.starts_with("text:") {
        return Err(Error::invalid(format!(
            "--seq-len cuts text:FILE data into sequences; --data {spec} is not text"
        )));
    }
    let (train, test) = if let Some(file) = spec.strip_prefix("text:") {
        // A trained model's text is cut as its training text was: sequences of its input length.
        let seq_len = args
            .seq_len
            .or_else(|| expect.shape.as_ref().filter(|s| s.len() == 1).map(|s| s[0]))
            .unwrap_or(text::DEFAULT_SEQ_LEN);
        let vocab = match &expect.classes {
            Some(c) if c.iter().all(|s| s.chars().count() == 1) => {
                Some(c.iter().filter_map(|s| s.chars().next()).collect())
            }
            Some(_) => {
                return Err(Error::invalid(format!(
                    "--data {spec}: the model's classes are not characters; it was not trained on text"
                )));
            }
            None => None,
        };
        (Some(text::read(Path::new(file), seq_len, vocab)?.0), None)
    } else if csv {
        (Some(read_csv(Path::new(spec), args, expect)?), None)
    } else if Path::new(spec)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
    {
        read_npz_sets(Path::new(spec), expect.token_ids)?
    } else if let Some((x, y)) = spec.split_once(':').filter(|_| !Path::new(spec).exists()) {
        (
            Some(Dataset::new(
                read_inputs(Path::new(x), expect.token_ids)?,
                read_targets(Path::new(y))?,
            )?),
            None,
        )
    } else if let Some(info) = dataset_info(spec) {
        let dir = find_dataset(info.name, args.data_dir.as_deref())?;
        let (train, test) = read_idx_dir(&dir, None)?;
        let (train, test) = (train.map(|p| p.data), test.map(|p| p.data));
        let names = class_names(info.name);
        let named = |d: Dataset| Dataset {
            class_names: names.clone(),
            ..d
        };
        (train.map(named), test.map(named))
    } else if Path::new(spec).is_dir() && is_image_folder(Path::new(spec)) {
        read_image_folder(Path::new(spec), args, expect)?
    } else if Path::new(spec).is_dir() {
        let (train, test) = read_idx_dir(Path::new(spec), None)?;
        (train.map(|p| p.data), test.map(|p| p.data))
    } else {
        return Err(Error::invalid(format!(
            "--data '{spec}' is not a dataset name (fashion-mnist, mnist), a directory of IDX files, X.npy:Y.npy, an .npz, or a .csv table"
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
    let test = match &args.test_data {
        Some(spec) => Some(load_test(spec, args, expect, &train)?),
        None => test,
    };
    let train = match args.limit {
        Some(n) => train.limit(n),
        None => train,
    };
    Ok((train, test))
}

/// `--test-data`: read as the training data was, a table with the training columns and classes.
pub(crate) fn load_test(
    spec: &str,
    args: &DataArgs,
    expect: &Expect,
    train: &Dataset,
) -> Result<Dataset> {
    let test_args = DataArgs {
        data: Some(spec.to_string()),
        data_dir: args.data_dir.clone(),
        target: args.target.clone(),
        seq_len: args.seq_len,
        ..DataArgs::default()
    };
    let like_train = Expect {
        regression: expect.regression,
        table: train.table.clone(),
        classes: train.class_names.clone(),
        shape: Some(train.sample_shape().to_vec()),
        token_ids: expect.token_ids,
    };
    let (a, b) = load_for(&test_args, &like_train)?;
    // A directory with both splits gives its test split.
    Ok(b.unwrap_or(a))
}

/// A CSV table as a dataset. With `--test-split`, first checks that every class of the test split
/// is in the training split, naming the line of the first that is not.
fn read_csv(path: &Path, args: &DataArgs, expect: &Expect) -> Result<Dataset> {
    let targets = match &expect.table {
        Some(t) if args.target.is_empty() => t.targets.clone(),
        _ => args.target.clone(),
    };
    let t = table::read(
        path,
        &table::Request {
            targets: &targets,
            regression: expect.regression,
            features: expect.table.as_ref().map(|t| t.features.as_slice()),
            classes: expect.classes.as_deref(),
            need_targets: true,
        },
    )?;
    let y = t.y.expect("targets were asked for");
    if let (Some(f), Labels::Classes(c)) = (args.test_split, &y) {
        let (train, test) = split_indices(c.len(), f, args.split_seed)?;
        let seen: std::collections::BTreeSet<u32> = train.iter().map(|&i| c[i]).collect();
        if let Some(&i) = test
            .iter()
            .filter(|&&i| !seen.contains(&c[i]))
            .min_by_key(|&&i| t.lines[i])
        {
            let class = t
                .class_names
                .as_ref()
                .map_or(c[i].to_string(), |n| n[c[i] as usize].clone());
            return Err(Error::format(
                path,
                format!(
                    "line {}: class '{}' falls in the test split (--test-split {f}, --split-seed {}) but never in the training split; give the class more rows, or another --split-seed",
                    t.lines[i],
                    class.escape_debug(),
                    args.split_seed
                ),
            ));
        }
    }
    let mut d = Dataset::new(t.x, y)?;
    d.class_names = t.class_names;
    d.table = Some(t.info);
    Ok(d)
}

/// Whether `dir` is laid out as a folder of images by class: it has subfolders and no IDX files.
fn is_image_folder(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut subdirs = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("-idx") {
            return false;
        }
        subdirs |= e.path().is_dir() && !name.starts_with('.');
    }
    subdirs
}

/// A folder of images by class, read with `--image-size`, `--channels` and `--skip-bad`, at the
/// shape and with the classes a trained model expects.
#[cfg(feature = "cli")]
fn read_image_folder(
    dir: &Path,
    args: &DataArgs,
    expect: &Expect,
) -> Result<(Option<Dataset>, Option<Dataset>)> {
    use crate::data::image_folder::{FolderOptions, read};
    let size = match args.image_size.as_deref() {
        Some(s) => Some(parse_size(s)?),
        None => expect
            .shape
            .as_deref()
            .and_then(|s| (s.len() == 3).then(|| [s[1], s[2]])),
    };
    let channels = match args.channels.as_deref() {
        Some(c) => Some(
            c.parse()
                .map_err(|_| Error::invalid("--channels is 1 or 3"))?,
        ),
        None => expect
            .shape
            .as_deref()
            .and_then(|s| (s.len() == 3).then(|| s[0])),
    };
    read(
        dir,
        &FolderOptions {
            size,
            channels,
            skip_bad: args.skip_bad,
            classes: expect.classes.clone(),
        },
    )
}

#[cfg(not(feature = "cli"))]
fn read_image_folder(
    dir: &Path,
    _: &DataArgs,
    _: &Expect,
) -> Result<(Option<Dataset>, Option<Dataset>)> {
    Err(Error::invalid(format!(
        "{}: folders of images need the 'cli' feature (the image decoders)",
        dir.display()
    )))
}

/// `--image-size H,W` (or `N` for `N,N`).
#[cfg(feature = "cli")]
fn parse_size(s: &str) -> Result<[usize; 2]> {
    let bad = || {
        Error::invalid(format!(
            "--image-size {s}: expected H,W (e.g. 28,28) or N, each at least 1"
        ))
    };
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match v[..] {
        [n] if n > 0 => Ok([n, n]),
        [h, w] if h > 0 && w > 0 => Ok([h, w]),
        _ => Err(bad()),
    }
}

/// Reads the standard four files of an MNIST-style directory: the train pair, the test pair, or both;
/// with `cuts`, only the rows they give of each (training, test; see [`Cut`]).
pub(crate) fn read_idx_dir(
    dir: &Path,
    cuts: Option<(Cut, Cut)>,
) -> Result<(Option<Part>, Option<Part>)> {
    let pair = |prefix: &str| -> Result<Option<Part>> {
        let images = dataset_file(dir, &format!("{prefix}-images-idx3-ubyte.gz"));
        let labels = dataset_file(dir, &format!("{prefix}-labels-idx1-ubyte.gz"));
        let cut = cuts.map(|(train, test)| if prefix == "train" { train } else { test });
        match (images, labels) {
            (Some(i), Some(l)) => read_idx_pair(&i, &l, cut).map(Some),
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

/// Images as `[N, 1, rows, cols]` held as pixel bytes (values in [0, 1], see [`Inputs`]), with
/// their labels; with `cut`, only its rows
/// of them (read at their offset, see [`crate::data::idx::read_idx_rows`]).
fn read_idx_pair(images: &Path, labels: &Path, cut: Option<Cut>) -> Result<Part> {
    let mismatch = |n_labels: usize, n: usize| {
        Error::format(
            labels,
            format!(
                "{n_labels} labels for the {n} images of {}",
                images.display()
            ),
        )
    };
    let (rows, cols, pixels, y, first, total) = match cut {
        None => {
            let (n, rows, cols, pixels) = read_images(images)?;
            let y = read_labels(labels)?;
            if y.len() != n {
                return Err(mismatch(y.len(), n));
            }
            (rows, cols, pixels, y, 0, n)
        }
        Some(cut) => {
            let (n, rows, cols, pixels) = read_images_rows(images, |n| cut.rows(n))?;
            let held = cut.rows(n);
            let pick = |l| if l == n { held.clone() } else { 0..0 };
            let (y, n_labels) = read_labels_rows(labels, pick)?;
            if n_labels != n {
                return Err(mismatch(n_labels, n));
            }
            (rows, cols, pixels, y, held.start, cut.total(n))
        }
    };
    let x = Inputs::pixels(&[y.len(), 1, rows, cols], pixels)?;
    let data = Dataset::new(x, Labels::Classes(y.into_iter().map(u32::from).collect()))?;
    Ok(Part { data, first, total })
}

/// Model inputs from .npy: see [`inputs`]. A conversion of the layout is said on stderr.
///
/// # Errors
/// As [`inputs`], and a file that does not parse.
pub fn read_inputs(path: &Path, ids: bool) -> Result<Inputs> {
    let mut note = None;
    let x = inputs(read_npy(path)?, path, ids, &mut note)?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(x)
}

/// Model inputs `[N, …]` from an array as people have them: floats (16, 32 or 64 bit) as they
/// are (a float `(N, T, F)` or `(N, C, L)` is a sequence, kept), uint8 pixels held as bytes that
/// stand for `byte / 255` in [0, 1] as IDX pixels are (a uint8 `(N, H, W)` given one channel), and
/// channels-last `(N, H, W, C)` images (C of 1, 3 or 4, H and W above 4) moved to NCHW, which `note`
/// then says. Other integers (int64, int32, …) of shape `(N, T)` are token ids, kept as they are;
/// uint8 ones too when `ids` (the model starts with Embedding: [`crate::spec::takes_token_ids`]).
///
/// # Errors
/// A 0-d array; integers other than uint8 not of shape (N, T).
pub fn inputs(a: Npy, path: &Path, ids: bool, note: &mut Option<String>) -> Result<Inputs> {
    // The shape held, and `[H, W, C]` when the values move from channels-last.
    let (shape, hwc) = match a.shape[..] {
        [] => {
            return Err(Error::format(
                path,
                "is a 0-d array; inputs need shape (N, …)",
            ));
        }
        [n, h, w] if matches!(a.data, NpyData::Int(_)) => (vec![n, 1, h, w], None),
        [n, h, w, c] if [1, 3, 4].contains(&c) && h > 4 && w > 4 && ![1, 3, 4].contains(&h) => {
            note.get_or_insert_with(|| {
                format!(
                    "{}: {:?} taken as channels-last (N, H, W, C) images, moved to (N, C, H, W) = {:?}",
                    path.display(),
                    a.shape,
                    [n, c, h, w]
                )
            });
            (vec![n, c, h, w], Some([h, w, c]))
        }
        _ => (a.shape.clone(), None),
    };
    match a.data {
        NpyData::Float(_) if a.shape.len() == 1 => Err(Error::format(
            path,
            format!(
                "has shape ({},), one value per sample; inputs need shape (N, features…), one row \
                 per sample: save one feature per sample as ({}, 1)",
                a.shape[0], a.shape[0]
            ),
        )),
        NpyData::Float(v) => Ok(Tensor::new(&shape, to_nchw(v, hwc))?.into()),
        NpyData::Int(v) if a.dtype.ends_with("u1") && !(ids && a.shape.len() == 2) => {
            let bytes = v.into_iter().map(|p| p as u8).collect();
            Inputs::pixels(&shape, to_nchw(bytes, hwc))
        }
        // Token ids `[N, T]` for a model that starts with Embedding, kept as whole numbers.
        NpyData::Int(v) if a.shape.len() == 2 => {
            Ok(Tensor::new(&shape, v.into_iter().map(|i| i as f32).collect())?.into())
        }
        NpyData::Int(_) => Err(Error::format(
            path,
            format!(
                "has dtype {}; inputs must be floats, uint8 pixels or integer token ids (N, T)",
                a.dtype
            ),
        )),
    }
}

/// Samples of `[H, W, C]` values moved to `[C, H, W]` (with `hwc`; else `v` as it is).
fn to_nchw<T: Copy + Default>(v: Vec<T>, hwc: Option<[usize; 3]>) -> Vec<T> {
    let Some([h, w, c]) = hwc else { return v };
    let mut out = vec![T::default(); v.len()];
    for (i, sample) in v.chunks_exact(h * w * c).enumerate() {
        for (p, pixel) in sample.chunks_exact(c).enumerate() {
            for (ch, &value) in pixel.iter().enumerate() {
                out[(i * c + ch) * h * w + p] = value;
            }
        }
    }
    out
}

/// Targets from .npy: see [`targets`].
///
/// # Errors
/// As [`targets`], and a file that does not parse.
pub fn read_targets(path: &Path) -> Result<Labels> {
    targets(read_npy(path)?, path)
}

/// Targets: integers are class indices, floats are values.
///
/// # Errors
/// A negative class index, integer labels not of shape (N,), (N, 1) or (N, T), or a 0-d array.
pub fn targets(a: Npy, path: &Path) -> Result<Labels> {
    if a.shape.is_empty() {
        return Err(Error::format(
            path,
            "is a 0-d array; targets need shape (N, …)",
        ));
    }
    match a.data {
        NpyData::Float(v) => Ok(Labels::Values(Tensor::new(&a.shape, v)?)),
        NpyData::Int(v) => {
            if a.shape.len() > 2 {
                return Err(Error::format(
                    path,
                    format!(
                        "integer class labels must have shape (N,) or (N, T) (one per step), got {:?}",
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
                .map(|classes| match a.shape[..] {
                    // One column, as Keras' `cifar10.load_data()` gives them: a class per sample
                    // (the same loss and accuracy as one step of per-step targets).
                    [_, steps] if steps > 1 => Labels::Steps { classes, steps },
                    _ => Labels::Classes(classes),
                })
        }
    }
}

/// The arrays of an .npz as `(train, test)`: `x`/`y` (one set), or `x_train`/`y_train` and
/// `x_test`/`y_test` as Keras' `mnist.npz` holds them.
///
/// # Errors
/// Other array names; arrays that are not inputs or targets.
fn read_npz_sets(path: &Path, ids: bool) -> Result<(Option<Dataset>, Option<Dataset>)> {
    let mut arrays = read_npz(path)?;
    let mut note = None;
    let mut pair = |x: &str, y: &str| -> Result<Option<Dataset>> {
        match (arrays.remove(x), arrays.remove(y)) {
            (Some(xa), Some(ya)) => {
                let member = |k: &str| PathBuf::from(format!("{}[{k}.npy]", path.display()));
                let inputs = inputs(xa, &member(x), ids, &mut note)?;
                Dataset::new(inputs, targets(ya, &member(y))?).map(Some)
            }
            (None, None) => Ok(None),
            _ => Err(Error::format(
                path,
                format!("holds only one of the arrays '{x}' and '{y}'"),
            )),
        }
    };
    let sets = match (
        pair("x", "y")?,
        pair("x_train", "y_train")?,
        pair("x_test", "y_test")?,
    ) {
        (Some(d), None, None) => (Some(d), None),
        (None, train, test) if train.is_some() || test.is_some() => (train, test),
        _ => {
            return Err(Error::format(
                path,
                "expected the arrays x and y, or x_train, y_train, x_test and y_test",
            ));
        }
    };
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(sets)
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
