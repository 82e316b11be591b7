//! A contiguous, row-major `f32` tensor with a shape. Images are NCHW.
//!
//! Deliberately small: the layers do their own index arithmetic on slices, which keeps every
//! forward and backward readable next to its formula.

use crate::error::{Error, Result};

/// The most values one tensor may hold per sample (a layer's output, a convolution's patch matrix),
/// and the most parameters one model may have: 2^28, 1 GiB of `f32`. Model text that asks for more
/// is refused when the model is built, not left to fail an allocation later.
pub const MAX_VALUES: usize = 1 << 28;

/// A dense row-major tensor of `f32`.
///
/// # Shapes
/// `shape[0]` is the batch dimension wherever a batch is meant; `data.len()` is the product of
/// `shape`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// A tensor from its data; errors when the length does not match the shape.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::invalid(format!(
                "a tensor of shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Reuses the allocation of `buf` for a tensor of `shape`, filled with zeros.
    ///
    /// This is how layers avoid allocating in the steady state of training: a buffer that is done
    /// with (a cached input, an upstream gradient) becomes the next output.
    pub fn recycle(mut buf: Tensor, shape: &[usize]) -> Self {
        let n = shape.iter().product();
        buf.data.clear();
        buf.data.resize(n, 0.0);
        buf.shape.clear();
        buf.shape.extend_from_slice(shape);
        buf
    }

    /// Reuses the allocation of `buf` for a tensor of `shape` that the caller overwrites in full.
    ///
    /// Unlike [`Tensor::recycle`] the values are not zeroed (they are left from before, and zero where
    /// the buffer grows): on a conv layer's output that saves a pass over megabytes of memory.
    pub fn reuse(mut buf: Tensor, shape: &[usize]) -> Self {
        buf.data.resize(shape.iter().product(), 0.0);
        buf.shape.clear();
        buf.shape.extend_from_slice(shape);
        buf
    }

    /// `self`, or else (when `self` is empty) the buffer of `stale`: a layer's spare buffer, or else
    /// the input cached by a forward that no backward followed. In evaluation nothing calls backward
    /// to hand a buffer back, so this is what keeps an inference loop from allocating every batch.
    pub fn or_stale(self, stale: Option<Tensor>) -> Tensor {
        match stale {
            Some(t) if self.data.is_empty() => t,
            _ => self,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values in row-major order, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, consuming the tensor.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(Error::invalid(format!(
                "cannot reshape {:?} ({} values) to {shape:?}",
                self.shape,
                self.data.len()
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Rows `start..end` along the first dimension, copied.
    pub fn rows(&self, start: usize, end: usize) -> Tensor {
        let row: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor {
            shape,
            data: self.data[start * row..end * row].to_vec(),
        }
    }

    /// Whether every value is finite.
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

/// Formats a shape as PyTorch prints one: `[50, 8, 13, 13]`.
pub fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_length() {
        let e = Tensor::new(&[2, 3], vec![0.0; 5]).unwrap_err().to_string();
        assert!(e.contains("[2, 3] needs 6 values, got 5"), "{e}");
    }

    #[test]
    fn recycle_keeps_allocation_and_zeroes() {
        let t = Tensor::new(&[4, 4], vec![1.0; 16]).unwrap();
        let ptr = t.data().as_ptr();
        let r = Tensor::recycle(t, &[2, 8]);
        assert_eq!(r.shape(), &[2, 8]);
        assert!(r.data().iter().all(|&v| v == 0.0));
        assert_eq!(r.data().as_ptr(), ptr);
    }

    #[test]
    fn reuse_keeps_allocation_and_resizes() {
        let t = Tensor::new(&[4, 4], vec![1.0; 16]).unwrap();
        let ptr = t.data().as_ptr();
        let r = Tensor::reuse(t, &[3, 5]);
        assert_eq!((r.shape(), r.len()), (&[3, 5][..], 15));
        assert_eq!(r.data().as_ptr(), ptr);
        assert_eq!(Tensor::reuse(r, &[2, 9]).data()[15..], [0.0; 3]);
    }

    #[test]
    fn or_stale_prefers_a_non_empty_spare() {
        let (spare, stale) = (Tensor::zeros(&[2]), Tensor::zeros(&[3]));
        assert_eq!(spare.clone().or_stale(Some(stale.clone())).len(), 2);
        assert_eq!(Tensor::default().or_stale(Some(stale)).len(), 3);
        assert!(Tensor::default().or_stale(None).is_empty());
    }

    #[test]
    fn reshape_and_rows() {
        let t = Tensor::new(&[3, 2], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        assert_eq!(t.rows(1, 3).data(), &[2., 3., 4., 5.]);
        assert!(t.clone().reshape(&[6]).is_ok());
        assert!(
            t.reshape(&[4])
                .unwrap_err()
                .to_string()
                .contains("cannot reshape")
        );
    }
}
