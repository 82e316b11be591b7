//! `--shard`: one rank's part of the data, rows [`share`]`(N, rank, R)` of each set (a contiguous
//! 1/R of it), for data-parallel training where no rank holds the whole dataset (see `dist`).
//!
//! An `X.npy:Y.npy` pair (training set, and a `--test-data` pair) and a raw IDX directory are read
//! at those rows only: the header gives `N`, the rows are read at their offset, so a rank's memory
//! holds its part and never the file. Gzipped IDX (`fashion-mnist`, `mnist`) is decompressed as a
//! stream that keeps the rank's rows: the whole file is read, never held. Every other form
//! (`.npz`, CSV, text, image folders, and `--test-split`, which draws from the whole set) is read
//! whole and cut with [`Part::keep`]: what a rank keeps for training is its part, but the read
//! itself once held the whole file.

use crate::data::dataset::Dataset;
use crate::data::find::{dataset_info, find_dataset};
use crate::data::npy::read_npy_rows;
use crate::data::source::{self, DataArgs, Expect, inputs, targets};
use crate::dist::{Held, share};
use crate::error::{Error, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The rows a rank reads of a set of `n`: [`share`]`(min(n, limit), rank, size)`.
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    /// This rank.
    pub rank: usize,
    /// The ranks.
    pub size: usize,
    /// Only the first rows of the set count (`--limit`).
    pub limit: Option<usize>,
}

impl Cut {
    /// The rows of the whole set: `min(n, limit)`.
    pub fn total(&self, n: usize) -> usize {
        self.limit.map_or(n, |l| l.min(n))
    }

    /// This rank's rows of a set of `n`.
    pub fn rows(&self, n: usize) -> Range<usize> {
        share(self.total(n), self.rank, self.size)
    }
}

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
    let whole = || -> Result<(Part, Option<Part>)> {
        let (train, test) = source::load_for(args, expect)?;
        Ok((Part::whole(train), test.map(Part::whole)))
    };
    let Some(spec) = args.data.as_deref() else {
        return whole();
    };
    if args.test_split.is_some() || args.limit == Some(0) {
        return whole();
    }
    let train_cut = Cut {
        rank,
        size,
        limit: args.limit,
    };
    let test_cut = Cut {
        limit: None,
        ..train_cut
    };
    let (train, test) = if let Some((x, y)) = npy_pair(spec) {
        (read_pair(x, y, train_cut)?, None)
    } else if let Some(dir) = idx_dir(spec, args)? {
        let (train, test) = source::read_idx_dir(&dir, Some((train_cut, test_cut)))?;
        let Some(train) = train else {
            return whole();
        };
        let names = dataset_info(spec).and_then(|i| source::class_names(i.name));
        let named = |p: Part| Part {
            data: Dataset {
                class_names: names.clone(),
                ..p.data
            },
            ..p
        };
        (named(train), test.map(named))
    } else {
        return whole();
    };
    let test = match args.test_data.as_deref() {
        None => test,
        Some(spec) => Some(match npy_pair(spec) {
            Some((x, y)) => read_pair(x, y, test_cut)?,
            None => Part::whole(source::load_test(spec, args, expect, &train.data)?),
        }),
    };
    Ok((train, test))
}

/// The directory of IDX files that `spec` names (a known dataset's, found as `load` finds it, or a
/// directory holding a `train-*` pair); `None` for other forms.
fn idx_dir(spec: &str, args: &DataArgs) -> Result<Option<PathBuf>> {
    if let Some(info) = dataset_info(spec) {
        return find_dataset(info.name, args.data_dir.as_deref()).map(Some);
    }
    let dir = Path::new(spec);
    let idx = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
        .iter()
        .all(|f| crate::data::find::dataset_file(dir, f).is_some());
    Ok((dir.is_dir() && idx).then(|| dir.to_path_buf()))
}

/// `X.npy:Y.npy` as two paths, when `spec` names such a pair (and is not itself a file).
fn npy_pair(spec: &str) -> Option<(&Path, &Path)> {
    let npy = |p: &str| p.to_ascii_lowercase().ends_with(".npy");
    spec.split_once(':')
        .filter(|(x, y)| npy(x) && npy(y) && !Path::new(spec).exists())
        .map(|(x, y)| (Path::new(x), Path::new(y)))
}

/// The rows `cut` gives of the pair.
fn read_pair(x: &Path, y: &Path, cut: Cut) -> Result<Part> {
    let (xa, nx) = read_npy_rows(x, |n| cut.rows(n))?;
    let (first, total) = (cut.rows(nx).start, cut.total(nx));
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
        let x: Vec<f32> = (0..n * 3)
            .map(|v| (v / 3) as f32 + (v % 3) as f32 / 4.0)
            .collect();
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

    /// An IDX file of unsigned bytes with dimensions `dims`, gzipped when `gz`.
    fn idx(path: &Path, dims: &[u32], gz: bool) {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        let n: u32 = dims.iter().product();
        bytes.extend((0..n).map(|v| (v * 7 % 10) as u8));
        if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            bytes = e.finish().unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn each_rank_reads_its_rows_of_an_idx_directory_raw_or_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        idx(&d.join("train-images-idx3-ubyte"), &[7, 2, 3], false);
        idx(&d.join("train-labels-idx1-ubyte"), &[7], false);
        idx(&d.join("t10k-images-idx3-ubyte.gz"), &[5, 2, 3], true);
        idx(&d.join("t10k-labels-idx1-ubyte.gz"), &[5], true);
        let args = DataArgs {
            data: Some(d.display().to_string()),
            limit: Some(6),
            ..DataArgs::default()
        };
        let (train, test) = source::load(&args).unwrap();
        let test = test.unwrap();
        let (p, t) = load_part(&args, &Expect::default(), 1, 2).unwrap();
        let t = t.unwrap();
        assert_eq!((p.first, p.data.len(), p.total), (3, 3, 6));
        assert_eq!((t.first, t.data.len(), t.total), (3, 2, 5));
        assert_eq!(p.data.x, train.select(&[3, 4, 5]).x);
        assert_eq!(p.data.y, train.select(&[3, 4, 5]).y);
        assert_eq!(t.data.x, test.select(&[3, 4]).x);
        assert_eq!(t.data.y, test.select(&[3, 4]).y);
        // Labels that do not match the images are named as in a whole read.
        idx(&d.join("train-labels-idx1-ubyte"), &[8], false);
        let e = load_part(&args, &Expect::default(), 1, 2).err().unwrap();
        assert!(
            e.to_string().contains("8 labels for the 7 images of"),
            "{e}"
        );
    }
}
