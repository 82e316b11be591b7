//! `MaxPool2d(kernel_size, stride=kernel_size, padding=0)`, as `torch.nn.MaxPool2d`.

use super::pool::Window;
use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::kernels::im2col::Geom;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// `y[n, c, oy, ox] = max` of the window of `x[n, c]` at `(oy, ox)`; padding never wins.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`, `OH = ⌊(H + 2·PH − KH)/SH⌋ + 1`.
pub struct MaxPool2d {
    window: Window,
    /// The input shape of the last forward and, per output, the flat index in its plane of the max.
    argmax: Option<(Vec<usize>, Vec<u32>)>,
    spare: Tensor,
}

impl MaxPool2d {
    /// A max pool; `stride` is usually the kernel size.
    pub fn new(window: Window) -> Self {
        MaxPool2d {
            window,
            argmax: None,
            spare: Tensor::default(),
        }
    }
}

impl fmt::Display for MaxPool2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaxPool2d({}, dilation=1, ceil_mode=False)", self.window)
    }
}

impl Layer for MaxPool2d {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        self.window.output_shape(input)
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let n = x.shape()[0];
        let g = self.window.batch_geom(self, &x)?;
        let (plane, out) = (g.h * g.w, g.oh * g.ow);
        let mut y = Tensor::reuse(std::mem::take(&mut self.spare), &[n, g.c, g.oh, g.ow]);
        let mut argmax = match self.argmax.take() {
            Some((_, a)) => a,
            None => Vec::new(),
        };
        argmax.resize(n * g.c * out, 0);
        // One task per channel plane. The first maximum wins ties; NaN wins, as in PyTorch.
        y.data_mut()
            .par_chunks_mut(out)
            .zip(argmax.par_chunks_mut(out))
            .zip(x.data().par_chunks(plane))
            .for_each(|((y, am), xp)| pool_plane(&g, xp, y, am));
        self.argmax = Some((x.shape().to_vec(), argmax));
        self.spare = x;
        Ok(y)
    }

    /// ∂L/∂x[argmax of each window] += ∂L/∂y of that window; 0 elsewhere.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let (shape, argmax) = self.argmax.take().ok_or_else(|| no_forward(self))?;
        let plane = shape[2] * shape[3];
        let out = grad_y.len() / (shape[0] * shape[1]);
        let mut grad_x = Tensor::recycle(std::mem::take(&mut self.spare), &shape);
        grad_x
            .data_mut()
            .par_chunks_mut(plane)
            .zip(grad_y.data().par_chunks(out))
            .zip(argmax.par_chunks(out))
            .for_each(|((gx, gy), am)| gy.iter().zip(am).for_each(|(g, &i)| gx[i as usize] += g));
        self.argmax = Some((shape, argmax));
        self.spare = grad_y;
        Ok(grad_x)
    }
}

/// Max and flat argmax of every window of one channel plane `xp: [H, W]` into `y`, `am: [OH, OW]`.
///
/// 2×2 windows at stride 2 without padding (every pool of the presets) take a fast path: four loads
/// and three selects, no bounds arithmetic; a window holding a NaN goes to [`window_max`], its twin.
fn pool_plane(g: &Geom, xp: &[f32], y: &mut [f32], am: &mut [u32]) {
    let fast = (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (2, 2, 2, 2, 0, 0);
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (best, at) = if fast {
                let r = 2 * oy * g.w + 2 * ox;
                let idx = [r, r + 1, r + g.w, r + g.w + 1];
                let (mut best, mut at) = (xp[r], r);
                let mut nan = best.is_nan();
                for &k in &idx[1..] {
                    let v = xp[k];
                    nan |= v.is_nan();
                    // Selects, not a branch: on real data `v > best` is a coin toss.
                    let larger = v > best;
                    best = if larger { v } else { best };
                    at = if larger { k } else { at };
                }
                if nan {
                    window_max(g, xp, oy, ox)
                } else {
                    (best, at)
                }
            } else {
                window_max(g, xp, oy, ox)
            };
            y[oy * g.ow + ox] = best;
            am[oy * g.ow + ox] = at as u32;
        }
    }
}

/// The max of window `(oy, ox)` of plane `xp` and its flat index: the first maximum wins ties, the
/// first NaN wins outright (as in PyTorch), padding never wins.
fn window_max(g: &Geom, xp: &[f32], oy: usize, ox: usize) -> (f32, usize) {
    let (mut best, mut at) = (f32::NEG_INFINITY, usize::MAX);
    for i in 0..g.kh {
        for j in 0..g.kw {
            if let Some((yy, xx)) = g.source(oy, ox, i, j) {
                let v = xp[yy * g.w + xx];
                if v > best || v.is_nan() || at == usize::MAX {
                    (best, at) = (v, yy * g.w + xx);
                    if v.is_nan() {
                        return (best, at);
                    }
                }
            }
        }
    }
    (best, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::check_layer;

    fn pool(k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> MaxPool2d {
        MaxPool2d::new(Window {
            kernel: k,
            stride: s,
            padding: p,
        })
    }

    #[test]
    fn gradients_match_central_differences() {
        // Random inputs in ±[0.3, 1]: ties within ε are unlikely at these sizes.
        check_layer(&mut pool((2, 2), (2, 2), (0, 0)), &[2, 2, 4, 4], 0.3);
        check_layer(&mut pool((3, 2), (2, 1), (1, 1)), &[1, 2, 5, 4], 0.3);
    }

    #[test]
    fn values_shapes_and_repr() {
        let mut p = pool((2, 2), (2, 2), (0, 0));
        let x = Tensor::new(&[1, 1, 2, 4], vec![1., 5., 2., 2., 3., 4., 8., 0.]).unwrap();
        let y = p.forward(x, Mode::Eval).unwrap();
        assert_eq!(y.data(), &[5., 8.]);
        let gx = p
            .backward(Tensor::new(&[1, 1, 1, 2], vec![1., 2.]).unwrap())
            .unwrap();
        assert_eq!(gx.data(), &[0., 1., 0., 0., 0., 0., 2., 0.]);
        assert_eq!(p.output_shape(&[32, 28, 28]).unwrap(), vec![32, 14, 14]);
        assert_eq!(p.output_shape(&[784]).unwrap_err(), "[C, H ≥ 2, W ≥ 2]");
        assert_eq!(
            p.to_string(),
            "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
        );
    }

    #[test]
    fn fast_2x2_path_matches_the_general_window() {
        let g = Geom::new(1, 6, 8, (2, 2), (2, 2), (0, 0)).unwrap();
        let mut xp: Vec<f32> = (0..48).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        xp[9] = f32::NAN;
        xp[20] = f32::NEG_INFINITY;
        let (mut y, mut am) = (vec![0.0; 12], vec![0; 12]);
        pool_plane(&g, &xp, &mut y, &mut am);
        for (o, (v, a)) in y.iter().zip(&am).enumerate() {
            let (want, at) = window_max(&g, &xp, o / 4, o % 4);
            assert!(
                v.to_bits() == want.to_bits() && *a as usize == at,
                "window {o}"
            );
        }
    }

    #[test]
    fn ties_go_to_the_first_maximum() {
        let mut p = pool((2, 2), (2, 2), (0, 0));
        p.forward(
            Tensor::new(&[1, 1, 2, 2], vec![3., 3., 3., 3.]).unwrap(),
            Mode::Eval,
        )
        .unwrap();
        let gx = p
            .backward(Tensor::new(&[1, 1, 1, 1], vec![1.]).unwrap())
            .unwrap();
        assert_eq!(gx.data(), &[1., 0., 0., 0.]);
    }
}
