//! `AdaptiveAvgPool2d(output_size)`: the mean over windows that PyTorch sizes to give `output_size`
//! (`AdaptiveAvgPool2d(1)` is the global average pool).

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// `y[n, c, i, j]` = the mean of `x[n, c]` over rows `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` and columns
/// `⌊j·W/OW⌋ .. ⌈(j+1)·W/OW⌉` (PyTorch's windows: they may overlap and differ in size).
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`.
pub struct AdaptiveAvgPool2d {
    output_size: (usize, usize),
    /// The input shape of the last forward.
    shape: Option<Vec<usize>>,
    spare: Tensor,
}

/// Window `i` of `o` over a length `len`: `⌊i·len/o⌋ .. ⌈(i+1)·len/o⌉`.
pub fn window(i: usize, o: usize, len: usize) -> std::ops::Range<usize> {
    i * len / o..((i + 1) * len).div_ceil(o)
}

impl AdaptiveAvgPool2d {
    /// `(OH, OW)`.
    pub fn output_size(&self) -> (usize, usize) {
        self.output_size
    }

    /// A pool to `output_size = (OH, OW)`.
    pub fn new(output_size: (usize, usize)) -> Self {
        AdaptiveAvgPool2d {
            output_size,
            shape: None,
            spare: Tensor::default(),
        }
    }

    /// Calls `f(y index, x index, 1/window size)` for every input cell of every output cell of one
    /// `H×W` plane.
    fn each(&self, h: usize, w: usize, mut f: impl FnMut(usize, usize, f32)) {
        let (oh, ow) = self.output_size;
        for i in 0..oh {
            let rows = window(i, oh, h);
            for j in 0..ow {
                let cols = window(j, ow, w);
                let scale = 1.0 / (rows.len() * cols.len()) as f32;
                for r in rows.clone() {
                    for c in cols.clone() {
                        f(i * ow + j, r * w + c, scale);
                    }
                }
            }
        }
    }
}

impl fmt::Display for AdaptiveAvgPool2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.output_size {
            (a, b) if a == b => write!(f, "AdaptiveAvgPool2d(output_size={a})"),
            (a, b) => write!(f, "AdaptiveAvgPool2d(output_size=({a}, {b}))"),
        }
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input {
            [c, h, w] if *h > 0 && *w > 0 => Ok(vec![*c, self.output_size.0, self.output_size.1]),
            _ => Err("[C, H, W] with H, W ≥ 1".into()),
        }
    }

    /// Sums each window in a fixed order, then scales by `1/|window|`.
    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let out = self.check("", &x.shape()[1..], "")?;
        let (h, w) = (x.shape()[2], x.shape()[3]);
        let (n, plane) = (x.shape()[0], self.output_size.0 * self.output_size.1);
        let mut y = Tensor::recycle(
            std::mem::take(&mut self.spare),
            &[n, out[0], out[1], out[2]],
        );
        y.data_mut()
            .par_chunks_mut(plane)
            .zip(x.data().par_chunks(h * w))
            .for_each(|(y, x)| {
                let mut sums = vec![0.0f32; plane];
                self.each(h, w, |o, i, _| sums[o] += x[i]);
                self.each(h, w, |o, _, s| y[o] = sums[o] * s);
            });
        self.shape = Some(x.shape().to_vec());
        self.spare = x;
        Ok(y)
    }

    /// ∂L/∂x at p = Σ over the windows that hold p of ∂L/∂y / |window|.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let shape = self.shape.take().ok_or_else(|| no_forward(self))?;
        let (h, w) = (shape[2], shape[3]);
        let plane = self.output_size.0 * self.output_size.1;
        let mut grad_x = Tensor::recycle(std::mem::take(&mut self.spare), &shape);
        grad_x
            .data_mut()
            .par_chunks_mut(h * w)
            .zip(grad_y.data().par_chunks(plane))
            .for_each(|(gx, gy)| self.each(h, w, |o, i, s| gx[i] += gy[o] * s));
        self.spare = grad_y;
        Ok(grad_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut AdaptiveAvgPool2d::new((1, 1)), &[2, 3, 4, 5], 0.0);
        check_layer(&mut AdaptiveAvgPool2d::new((3, 2)), &[2, 2, 5, 7], 0.0);
    }

    #[test]
    fn windows_are_pytorchs() {
        // PyTorch: 5 rows into 3 windows are 0..2, 1..4, 3..5; 7 into 2 are 0..4, 3..7.
        assert_eq!(
            (0..3).map(|i| window(i, 3, 5)).collect::<Vec<_>>(),
            [0..2, 1..4, 3..5]
        );
        assert_eq!(window(1, 2, 7), 3..7);
        let mut p = AdaptiveAvgPool2d::new((1, 1));
        let x = Tensor::new(&[1, 2, 2, 2], vec![1., 2., 3., 4., 0., 0., 0., 8.]).unwrap();
        assert_eq!(p.forward(x, Mode::Eval).unwrap().data(), &[2.5, 2.0]);
        assert_eq!(p.to_string(), "AdaptiveAvgPool2d(output_size=1)");
        assert_eq!(
            AdaptiveAvgPool2d::new((2, 3)).to_string(),
            "AdaptiveAvgPool2d(output_size=(2, 3))"
        );
    }
}
