//! `--shard`: one rank's part of the data, rows [`share`]`(N, rank, R)` of each set (a contiguous
//! 1/R of it), for data-parallel training where no rank holds the whole dataset (see `dist`).
//!
//! An `X.npy:Y.npy` pair (training set, and a `--test-data` pair) is read at those rows only: the
//! header gives `N`, the rows are read at their offset, so a rank's memory holds its part and
//! never the file. Every other form (IDX, `.npz`, CSV, text, image folders, and `--test-split`,
//! which draws from the whole set) is read whole and cut with [`Part::keep`]: what a rank keeps
//! for training is its part, but the read itself once held the whole file.

use crate::data::dataset::Dataset;
use crate::data::npy::read_npy_rows;
use crate::data::source::{self, DataArgs, Expect, inputs, targets};
use crate::dist::{Held, share};
use crate::error::{Error, Result};
use std::path::Path;

/// Rows `first .. first + data.len()` of a dataset of `total` rows.
pub struct Part {
    /// The rows held.
    pub data: Dataset,
    /// The index of the first in the whole dataset.
    pub first: usize,
    /// The rows of the whole dataset.
    pub total: usize,
}

impl Part {
    /// All rows of `data`.
    pub fn whole(data: Dataset) -> Part {
        let total = data.len();
        Part {
            data,
            first: 0,
            total,
        }
    }

    /// Only rows [`share`]`(total, rank, size)`: cuts a whole set, keeps a part already read as
    /// one (the rest is dropped).
    pub fn keep(self, rank: usize, size: usize) -> Part {
        let rows = share(self.total, rank, size);
        if self.first == rows.start && self.data.len() == rows.len() {
            return self;
        }
        Part {
            data: self.data.select(&rows.clone().collect::<Vec<_>>()),
            first: rows.start,
            total: self.total,
        }
    }

    /// The rows held, as training and evaluation take them.
    pub fn held(&self) -> Held<'_> {
        Held::Part {
            data: &self.data,
            first: self.first,
            total: self.total,
        }
    }
}

/// The training set and the test set of `args` as rank `rank` of `size` needs them: `X.npy:Y.npy`
/// pairs read at its rows only (see the module docs), other forms whole (to be cut with
/// [`Part::keep`] once the inputs are prepared from the whole set).
///
/// # Errors
/// As [`source::load_for`]; a pair whose files disagree on the number of rows.
pub fn load_part(
    args: &DataArgs,
    expect: &Expect,
    rank: usize,
    size: usize,
) -> Result<(Part, Option<Part>)> {
    let pair = args.data.as_deref().and_then(npy_pair);
    let Some((x, y)) = pair.filter(|_| args.test_split.is_none() && args.limit != Some(0)) else {
        let (train, test) = source::load_for(args, expect)?;
        return Ok((Part::whole(train), test.map(Part::whole)));
    };
    let train = read_pair(x, y, args.limit, rank, size)?;
    let test = match args.test_data.as_deref() {
        None => None,
        Some(spec) => Some(match npy_pair(spec) {
            Some((x, y)) => read_pair(x, y, None, rank, size)?,
            None => Part::whole(source::load_test(spec, args, expect, &train.data)?),
        }),
    };
    Ok((train, test))
}

/// `X.npy:Y.npy` as two paths, when `spec` names such a pair (and is not itself a file).
fn npy_pair(spec: &str) -> Option<(&Path, &Path)> {
    let npy = |p: &str| p.to_ascii_lowercase().ends_with(".npy");
    spec.split_once(':')
        .filter(|(x, y)| npy(x) && npy(y) && !Path::new(spec).exists())
        .map(|(x, y)| (Path::new(x), Path::new(y)))
}

/// Rows [`share`]`(N, rank, size)` of the pair, `N` its rows (at most `limit`).
fn read_pair(
    x: &Path,
    y: &Path,
    limit: Option<usize>,
    rank: usize,
    size: usize,
) -> Result<Part> {
    let mut total = 0;
    let mut pick = |n: usize| {
        total = limit.map_or(n, |l| l.min(n));
        share(total, rank, size)
    };
    let (xa, nx) = read_npy_rows(x, &mut pick)?;
    let first = share(total, rank, size).start;
    let rows = first..first + xa.shape[0];
    let (ya, ny) = read_npy_rows(y, |n| if n == nx { rows } else { 0..0 })?;
    if nx != ny {
        return Err(Error::invalid(format!(
            "{} has {nx} rows and {} has {ny}; inputs and targets need one row per sample",
            x.display(),
            y.display()
        )));
    }
    let mut note = None;
    let data = Dataset::new(inputs(xa, x, &mut note)?, targets(ya, y)?)?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(Part { data, first, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_npy_f32;

    /// `n` rows of 3 inputs (row i holds i, i+0.25, i+0.5) and float targets i.
    fn pair(dir: &Path, n: usize) -> DataArgs {
        let x: Vec<f32> = (0..n * 3).map(|v| (v / 3) as f32 + (v % 3) as f32 / 4.0).collect();
        let y: Vec<f32> = (0..n).map(|v| v as f32).collect();
        write_npy_f32(&dir.join("x.npy"), &[n, 3], &x).unwrap();
        write_npy_f32(&dir.join("y.npy"), &[n, 1], &y).unwrap();
        DataArgs {
            data: Some(format!(
                "{}:{}",
                dir.join("x.npy").display(),
                dir.join("y.npy").display()
            )),
            ..DataArgs::default()
        }
    }

    #[test]
    fn each_rank_reads_its_rows_of_a_pair_and_the_parts_make_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let args = pair(dir.path(), 10);
        let (whole, _) = source::load(&args).unwrap();
        let mut next = 0;
        for rank in 0..3 {
            let (p, test) = load_part(&args, &Expect::default(), rank, 3).unwrap();
            assert!(test.is_none());
            assert_eq!((p.first, p.total), (next, 10));
            let rows: Vec<usize> = (p.first..p.first + p.data.len()).collect();
            assert_eq!(p.data.x, whole.select(&rows).x, "rank {rank}");
            assert_eq!(p.data.y, whole.select(&rows).y, "rank {rank}");
            next += p.data.len();
        }
        assert_eq!(next, 10);
        // --limit 5: a part of the first 5 rows.
        let limited = DataArgs {
            limit: Some(5),
            ..args.clone()
        };
        let (p, _) = load_part(&limited, &Expect::default(), 1, 2).unwrap();
        assert_eq!((p.first, p.data.len(), p.total), (3, 2, 5));
    }

    #[test]
    fn other_forms_are_read_whole_then_cut() {
        let dir = tempfile::tempdir().unwrap();
        let args = DataArgs {
            test_split: Some(0.3),
            ..pair(dir.path(), 10)
        };
        let (train, test) = load_part(&args, &Expect::default(), 1, 2).unwrap();
        assert_eq!((train.data.len(), train.total), (7, 7));
        let test = test.unwrap().keep(1, 2);
        assert_eq!((test.first, test.data.len(), test.total), (2, 1, 3));
        let train = train.keep(1, 2);
        assert_eq!((train.first, train.data.len()), (4, 3));
    }

    #[test]
    fn a_pair_of_different_lengths_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let args = pair(dir.path(), 10);
        write_npy_f32(&dir.path().join("y.npy"), &[9, 1], &[0.0; 9]).unwrap();
        let e = load_part(&args, &Expect::default(), 0, 2).err().unwrap();
        assert!(e.to_string().contains("x.npy has 10 rows and "), "{e}");
    }
}
