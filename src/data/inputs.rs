//! A dataset's inputs as they are held in memory: `f32` values, or `u8` pixels (IDX images, image
//! folders, uint8 arrays) that stand for `byte / 255`, a quarter of the memory (60,000 28×28 images:
//! 47 MB instead of 188 MB). They become `f32` a batch at a time, when a batch is gathered; a pass
//! over the whole set (checks, statistics, evaluation) goes chunk by chunk, never holding the whole
//! set as `f32`.
//!
//! ```text
//! batch[k] = standardize(value(held[idx[k]]))     value(b: u8) = b as f32 / 255,  value(v: f32) = v
//! ```
//!
//! `standardize` is `--normalize` (or a table's standardisation), `(x − mean) / std` per channel,
//! applied to each gathered batch: the same values, bit for bit, as standardising the whole set once.

use crate::data::input::Standardize;
use crate::error::Result;
use crate::tensor::Tensor;

/// A pixel byte as a model input in [0, 1], as IDX pixels always were.
pub fn unit(b: u8) -> f32 {
    b as f32 / 255.0
}

/// Samples `[N, …]` that can be read as `f32` rows: a [`Tensor`], or [`Inputs`] as a dataset holds
/// them.
pub trait Samples {
    /// `[N, …sample shape]`.
    fn shape(&self) -> &[usize];

    /// Rows `idx` as `f32`, in that order, into `dst` (reusing its buffer): `dst[k] = self[idx[k]]`.
    fn gather(&self, idx: &[usize], dst: &mut Tensor);

    /// Standardises every sample, `x ← (x − mean) / std` per group (see [`Standardize::apply`]).
    ///
    /// # Errors
    /// The samples do not have `s.mean.len()` groups each.
    fn standardize(&mut self, s: &Standardize) -> Result<()>;

    /// Calls `f(first, rows)` on consecutive chunks of rows `first..first + rows.shape()[0]` (about a
    /// megabyte of `f32` each), in order, stopping at the first error: a pass over every sample
    /// without holding them all as `f32`.
    ///
    /// # Errors
    /// The first of `f`'s.
    fn chunks(&self, mut f: impl FnMut(usize, &Tensor) -> Result<()>) -> Result<()>
    where
        Self: Sized,
    {
        let n = self.shape().first().copied().unwrap_or(0);
        let row: usize = self.shape().iter().skip(1).product();
        let step = ((1 << 18) / row.max(1)).max(1);
        let mut buf = Tensor::default();
        for first in (0..n).step_by(step) {
            let idx: Vec<usize> = (first..(first + step).min(n)).collect();
            self.gather(&idx, &mut buf);
            f(first, &buf)?;
        }
        Ok(())
    }
}

/// `dst[k] = value(src[idx[k]])` for rows of `row` values: the one gather of every input type.
fn gather_rows<T: Copy>(
    src: &[T],
    shape: &[usize],
    idx: &[usize],
    dst: &mut Tensor,
    value: impl Fn(T) -> f32,
) {
    let row: usize = shape[1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape[0] = idx.len();
    *dst = Tensor::reuse(std::mem::take(dst), &out_shape);
    for (out, &i) in dst.data_mut().chunks_exact_mut(row.max(1)).zip(idx) {
        for (o, &v) in out.iter_mut().zip(&src[i * row..][..row]) {
            *o = value(v);
        }
    }
}

impl Samples for Tensor {
    fn shape(&self) -> &[usize] {
        Tensor::shape(self)
    }

    fn gather(&self, idx: &[usize], dst: &mut Tensor) {
        gather_rows(self.data(), Tensor::shape(self), idx, dst, |v| v);
    }

    fn standardize(&mut self, s: &Standardize) -> Result<()> {
        s.apply(self)
    }
}

/// The values held: `f32` as they are, or bytes standing for `byte / 255` ([`unit`]).
#[derive(Clone, Debug, PartialEq)]
enum Store {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

/// A dataset's inputs `[N, …]`, held as `f32` or as `u8` pixels, with the standardisation that
/// every gathered batch gets (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    shape: Vec<usize>,
    held: Store,
    standardize: Option<Standardize>,
}

impl From<Tensor> for Inputs {
    fn from(t: Tensor) -> Inputs {
        let shape = t.shape().to_vec();
        Inputs {
            shape,
            held: Store::F32(t.into_data()),
            standardize: None,
        }
    }
}

impl Inputs {
    /// Pixels `[N, …]` held as bytes, each standing for `byte / 255`.
    ///
    /// # Errors
    /// The length does not match the shape.
    pub fn pixels(shape: &[usize], bytes: Vec<u8>) -> Result<Inputs> {
        let n: usize = shape.iter().product();
        if n != bytes.len() {
            return Err(crate::error::Error::invalid(format!(
                "pixels of shape {shape:?} need {n} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Inputs {
            shape: shape.to_vec(),
            held: Store::U8(bytes),
            standardize: None,
        })
    }

    /// `[N, …sample shape]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of values (`N` times the sample size).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the values are held as `u8` pixels.
    pub fn is_u8(&self) -> bool {
        matches!(self.held, Store::U8(_))
    }

    /// The bytes the values take in memory: 1 a pixel, 4 an `f32`.
    pub fn bytes(&self) -> usize {
        match &self.held {
            Store::F32(v) => 4 * v.len(),
            Store::U8(v) => v.len(),
        }
    }

    /// Rows `start..end`, copied as `f32` (standardised).
    pub fn rows(&self, start: usize, end: usize) -> Tensor {
        let mut t = Tensor::default();
        self.gather(&(start..end).collect::<Vec<_>>(), &mut t);
        t
    }

    /// Rows `idx`, held as these are (pixels stay bytes), with the same standardisation.
    pub fn select(&self, idx: &[usize]) -> Inputs {
        fn pick<T: Copy>(v: &[T], row: usize, idx: &[usize]) -> Vec<T> {
            idx.iter()
                .flat_map(|&i| &v[i * row..(i + 1) * row])
                .copied()
                .collect()
        }
        let row: usize = self.shape[1..].iter().product();
        let held = match &self.held {
            Store::F32(v) => Store::F32(pick(v, row, idx)),
            Store::U8(v) => Store::U8(pick(v, row, idx)),
        };
        let mut shape = self.shape.clone();
        shape[0] = idx.len();
        Inputs {
            shape,
            held,
            standardize: self.standardize.clone(),
        }
    }
}

impl Samples for Inputs {
    fn shape(&self) -> &[usize] {
        Inputs::shape(self)
    }

    fn gather(&self, idx: &[usize], dst: &mut Tensor) {
        match &self.held {
            Store::F32(v) => gather_rows(v, &self.shape, idx, dst, |v| v),
            Store::U8(v) => gather_rows(v, &self.shape, idx, dst, unit),
        }
        if let Some(s) = &self.standardize {
            s.apply(dst).expect("checked when it was set");
        }
    }

    /// From now on every gathered batch is standardised (after any earlier standardisation).
    fn standardize(&mut self, s: &Standardize) -> Result<()> {
        s.groups_of(self.shape.iter().skip(1).product())?;
        self.standardize = match self.standardize.take() {
            None => Some(s.clone()),
            Some(_) => {
                return Err(crate::error::Error::invalid(
                    "the inputs are standardised already",
                ));
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes() -> Inputs {
        Inputs::pixels(&[3, 1, 2], vec![0, 255, 1, 128, 7, 254]).unwrap()
    }

    #[test]
    fn pixels_gather_as_byte_over_255_and_take_a_quarter_of_the_memory() {
        let x = bytes();
        let f32s = Tensor::new(
            &[3, 1, 2],
            [0u8, 255, 1, 128, 7, 254]
                .iter()
                .map(|&b| b as f32 / 255.0)
                .collect(),
        )
        .unwrap();
        assert!(x.is_u8() && !Inputs::from(f32s.clone()).is_u8());
        assert_eq!((x.bytes(), Inputs::from(f32s.clone()).bytes()), (6, 24));
        let (mut a, mut b) = (Tensor::default(), Tensor::default());
        x.gather(&[2, 0, 2], &mut a);
        f32s.gather(&[2, 0, 2], &mut b);
        assert_eq!(a.shape(), [3, 1, 2]);
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(x.rows(1, 3), f32s.rows(1, 3));
        let picked = x.select(&[2, 1]);
        assert!(picked.is_u8());
        assert_eq!(picked.rows(0, 1), f32s.rows(2, 3));
        assert_eq!(picked.rows(1, 2), f32s.rows(1, 2));
    }

    #[test]
    fn standardised_batches_equal_the_standardised_whole() {
        let s = Standardize {
            mean: vec![0.3],
            std: vec![0.7],
        };
        let mut x = bytes();
        let mut whole = x.rows(0, 3);
        x.standardize(&s).unwrap();
        whole.standardize(&s).unwrap();
        let mut seen = Vec::new();
        x.chunks(|first, t| {
            assert_eq!(first, seen.len() / 2);
            seen.extend_from_slice(t.data());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, whole.data());
        assert_eq!(x.select(&[1]).rows(0, 1), whole.rows(1, 2));
        let e = x.standardize(&s).unwrap_err().to_string();
        assert!(e.contains("standardised already"), "{e}");
        let two = Standardize {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        };
        let e = bytes().standardize(&two).unwrap_err().to_string();
        assert!(e.contains("standardises 3 features"), "{e}");
    }

    #[test]
    fn chunks_cover_every_row_in_order() {
        // 3 chunks: 2^18 values a chunk, rows of 100,000 values → 2 rows a chunk.
        let n = 5;
        let t = Tensor::new(&[n, 100_000], (0..n * 100_000).map(|v| v as f32).collect()).unwrap();
        let mut firsts = Vec::new();
        t.chunks(|first, c| {
            assert_eq!(c.data()[0], (first * 100_000) as f32);
            firsts.push(first);
            Ok(())
        })
        .unwrap();
        assert_eq!(firsts, [0, 2, 4]);
        let e = Inputs::pixels(&[2, 2], vec![0; 3]).unwrap_err().to_string();
        assert!(e.contains("need 4 bytes, got 3"), "{e}");
    }
}
