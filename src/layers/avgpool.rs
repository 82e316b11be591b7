//! `AvgPool2d(kernel_size, stride=kernel_size, padding=0)`, as `torch.nn.AvgPool2d` with
//! `count_include_pad=True` (padding counts as zeros in the mean).

use super::pool::Window;
use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// `y[n, c, oy, ox] = (1 / KH·KW) · Σ` of the window of `x[n, c]` at `(oy, ox)`.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`, `OH = ⌊(H + 2·PH − KH)/SH⌋ + 1`.
pub struct AvgPool2d {
    window: Window,
    /// The input shape of the last forward.
    shape: Option<Vec<usize>>,
    spare: Tensor,
}

impl AvgPool2d {
    /// An average pool; `stride` is usually the kernel size.
    pub fn new(window: Window) -> Self {
        AvgPool2d {
            window,
            shape: None,
            spare: Tensor::default(),
        }
    }

    /// The window it slides.
    pub fn window(&self) -> Window {
        self.window
    }
}

impl fmt::Display for AvgPool2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AvgPool2d({})", self.window)
    }
}

impl Layer for AvgPool2d {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        self.window.output_shape(input)
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let n = x.shape()[0];
        let g = self.window.batch_geom(self, &x)?;
        let scale = 1.0 / (g.kh * g.kw) as f32;
        let mut y = Tensor::recycle(std::mem::take(&mut self.spare), &[n, g.c, g.oh, g.ow]);
        y.data_mut()
            .par_chunks_mut(g.oh * g.ow)
            .zip(x.data().par_chunks(g.h * g.w))
            .for_each(|(y, xp)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut s = 0.0;
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let Some((yy, xx)) = g.source(oy, ox, i, j) {
                                    s += xp[yy * g.w + xx];
                                }
                            }
                        }
                        y[oy * g.ow + ox] = s * scale;
                    }
                }
            });
        self.shape = Some(x.shape().to_vec());
        self.spare = x;
        Ok(y)
    }

    /// ∂L/∂x at p = Σ over the windows that hold p of ∂L/∂y / (KH·KW).
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let shape = self.shape.take().ok_or_else(|| no_forward(self))?;
        let g = self
            .window
            .geom(&shape[1..])
            .expect("shape was accepted by forward");
        let scale = 1.0 / (g.kh * g.kw) as f32;
        let mut grad_x = Tensor::recycle(std::mem::take(&mut self.spare), &shape);
        grad_x
            .data_mut()
            .par_chunks_mut(g.h * g.w)
            .zip(grad_y.data().par_chunks(g.oh * g.ow))
            .for_each(|(gx, gy)| {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let v = gy[oy * g.ow + ox] * scale;
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                if let Some((yy, xx)) = g.source(oy, ox, i, j) {
                                    gx[yy * g.w + xx] += v;
                                }
                            }
                        }
                    }
                }
            });
        self.spare = grad_y;
        Ok(grad_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    fn pool(k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> AvgPool2d {
        AvgPool2d::new(Window {
            kernel: k,
            stride: s,
            padding: p,
        })
    }

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut pool((2, 2), (2, 2), (0, 0)), &[2, 2, 4, 5], 0.0);
        check_layer(&mut pool((3, 2), (1, 2), (1, 1)), &[1, 2, 5, 4], 0.0);
    }

    #[test]
    fn padding_counts_as_zero() {
        let mut p = pool((2, 2), (2, 2), (1, 1));
        let y = p
            .forward(
                Tensor::new(&[1, 1, 2, 2], vec![4.0; 4]).unwrap(),
                Mode::Eval,
            )
            .unwrap();
        assert_eq!(y.data(), &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            p.to_string(),
            "AvgPool2d(kernel_size=2, stride=2, padding=1)"
        );
    }
}
