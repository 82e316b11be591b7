//! An in-memory dataset: inputs `[N, …]` and one target per sample, with seeded splits and batches.

use crate::data::input::TableInfo;
use crate::data::inputs::{Inputs, Samples};
use crate::error::{Error, Result};
use crate::loss::Targets;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Targets for every sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// A class index per sample.
    Classes(Vec<u32>),
    /// A class index per step of each sample's sequence, `[N, T]` flat (row-major).
    Steps {
        /// `classes[n·steps + t]` is the class of step `t` of sample `n`.
        classes: Vec<u32>,
        /// `T`, the steps per sample.
        steps: usize,
    },
    /// A row of values per sample, `[N, …]`.
    Values(Tensor),
}

impl Labels {
    /// The class targets per sample: 1, `T` for per-step targets, 0 for values.
    pub fn per_sample(&self) -> usize {
        match self {
            Labels::Classes(_) => 1,
            Labels::Steps { steps, .. } => *steps,
            Labels::Values(_) => 0,
        }
    }

    /// The class targets of samples `idx`, in order (`per_sample` of them each).
    fn gather_classes(&self, idx: &[usize], out: &mut Vec<u32>) {
        let (c, k) = match self {
            Labels::Classes(c) => (c, 1),
            Labels::Steps { classes, steps } => (classes, *steps),
            Labels::Values(_) => return,
        };
        out.extend(idx.iter().flat_map(|&i| &c[i * k..(i + 1) * k]));
    }

    /// Every class target (none for values).
    pub fn classes(&self) -> &[u32] {
        match self {
            Labels::Classes(c) | Labels::Steps { classes: c, .. } => c,
            Labels::Values(_) => &[],
        }
    }
}

/// Inputs and targets, sample `i` being row `i` of both.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Inputs `[N, …sample shape]`, as `f32` or as `u8` pixels (see [`Inputs`]).
    pub x: Inputs,
    /// Targets, one per sample.
    pub y: Labels,
    /// Class names, when known (Fashion-MNIST's, MNIST's digits, a table's target names).
    pub class_names: Option<Vec<String>>,
    /// The columns, when the samples are rows of a table.
    pub table: Option<TableInfo>,
    /// The samples are a folder of images, read by [`crate::data::image_folder`] (so `predict`
    /// reads a new image file the same way).
    pub image_folder: bool,
}

impl Dataset {
    /// Pairs inputs with targets.
    ///
    /// # Errors
    /// Different sample counts.
    pub fn new(x: impl Into<Inputs>, y: Labels) -> Result<Self> {
        let x = x.into();
        let n = x.shape().first().copied().unwrap_or(0);
        let m = match &y {
            Labels::Classes(c) => c.len(),
            Labels::Steps { classes, steps } => classes.len() / steps.max(&1),
            Labels::Values(v) => v.shape().first().copied().unwrap_or(0),
        };
        if n != m {
            return Err(Error::invalid(format!(
                "{n} inputs but {m} targets: each input needs one target"
            )));
        }
        Ok(Dataset {
            x,
            y,
            class_names: None,
            table: None,
            image_folder: false,
        })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.x.shape()[0]
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The per-sample input shape.
    pub fn sample_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    /// The samples at `idx`, in that order, held as these are (pixels stay bytes).
    pub fn select(&self, idx: &[usize]) -> Dataset {
        self.with_inputs(self.x.select(idx), idx)
    }

    /// The samples at `idx`, in that order, with their inputs gathered as `f32` (standardised) and
    /// then transformed by `f`: a batch to augment.
    pub fn gathered(&self, idx: &[usize], f: impl FnOnce(&mut Tensor)) -> Dataset {
        let mut x = Tensor::default();
        self.x.gather(idx, &mut x);
        f(&mut x);
        self.with_inputs(x.into(), idx)
    }

    /// `x` with the targets of samples `idx` and the rest of `self`.
    fn with_inputs(&self, x: Inputs, idx: &[usize]) -> Dataset {
        let y = match &self.y {
            Labels::Classes(_) | Labels::Steps { .. } => {
                let mut classes = Vec::new();
                self.y.gather_classes(idx, &mut classes);
                match self.y {
                    Labels::Steps { steps, .. } => Labels::Steps { classes, steps },
                    _ => Labels::Classes(classes),
                }
            }
            Labels::Values(v) => {
                let mut t = Tensor::default();
                v.gather(idx, &mut t);
                Labels::Values(t)
            }
        };
        Dataset {
            x,
            y,
            class_names: self.class_names.clone(),
            table: self.table.clone(),
            image_folder: self.image_folder,
        }
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn limit(&self, n: usize) -> Dataset {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// A seeded shuffle split into `(train, test)` with `round(fraction·N)` test samples.
    ///
    /// # Errors
    /// A fraction outside (0, 1), or a split that leaves either side empty.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        let (train, test) = split_indices(self.len(), fraction, seed)?;
        Ok((self.select(&train), self.select(&test)))
    }

    /// The targets of the samples at `idx` (class targets borrow a scratch buffer).
    pub fn targets<'a>(
        &'a self,
        idx: &[usize],
        classes: &'a mut Vec<u32>,
        values: &'a mut Tensor,
    ) -> Targets<'a> {
        match &self.y {
            Labels::Classes(_) | Labels::Steps { .. } => {
                classes.clear();
                self.y.gather_classes(idx, classes);
                Targets::Classes(classes)
            }
            Labels::Values(v) => {
                v.gather(idx, values);
                Targets::Values(values.data())
            }
        }
    }
}

/// The sample indices `(train, test)` of [`Dataset::split`].
///
/// # Errors
/// As [`Dataset::split`].
pub fn split_indices(n: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::invalid(format!(
            "--test-split must be between 0 and 1 (exclusive), got {fraction}"
        )));
    }
    let n_test = (fraction * n as f64).round() as usize;
    if n_test == 0 || n_test == n {
        return Err(Error::invalid(format!(
            "--test-split {fraction} of {n} samples leaves one side empty"
        )));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let train = idx.split_off(n_test);
    Ok((train, idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Dataset {
        let x = Tensor::new(&[n, 2], (0..2 * n).map(|v| v as f32).collect()).unwrap();
        Dataset::new(x, Labels::Classes((0..n as u32).collect())).unwrap()
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let d = data(10);
        let (train, test) = d.split(0.2, 7).unwrap();
        assert_eq!((train.len(), test.len()), (8, 2));
        let (train2, _) = d.split(0.2, 7).unwrap();
        assert_eq!(train.y, train2.y);
        let (Labels::Classes(a), Labels::Classes(b)) = (&train.y, &test.y) else {
            panic!()
        };
        let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<u32>>());
        // Inputs travel with their labels.
        assert_eq!(test.x.rows(0, 1).data()[0], 2.0 * b[0] as f32);
    }

    #[test]
    fn split_and_count_errors() {
        for f in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            assert!(
                data(10)
                    .split(f, 0)
                    .unwrap_err()
                    .to_string()
                    .contains("--test-split must be between 0 and 1")
            );
        }
        assert!(
            data(3)
                .split(0.01, 0)
                .unwrap_err()
                .to_string()
                .contains("leaves one side empty")
        );
        let e = Dataset::new(Tensor::zeros(&[3, 2]), Labels::Classes(vec![0; 2])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "3 inputs but 2 targets: each input needs one target"
        );
    }

    #[test]
    fn limit_takes_the_first() {
        assert_eq!(data(10).limit(3).y, Labels::Classes(vec![0, 1, 2]));
        assert_eq!(data(2).limit(5).len(), 2);
    }
}
