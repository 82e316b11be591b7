//! The window that both pooling layers slide over each channel plane.

use crate::error::{Error, Result};
use crate::kernels::im2col::{Geom, requirement};
use crate::tensor::Tensor;
use std::fmt;

/// A pooling window: kernel, stride and padding, each `(h, w)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`.
    pub stride: (usize, usize),
    /// `(ph, pw)`, zeros (or −∞ for a max) on each side.
    pub padding: (usize, usize),
}

impl Window {
    /// The geometry for a per-sample input `[C, H, W]`, if the window fits.
    pub fn geom(&self, input: &[usize]) -> Option<Geom> {
        match *input {
            [c, h, w] => Geom::new(c, h, w, self.kernel, self.stride, self.padding),
            _ => None,
        }
    }

    /// The geometry for a batch `x` of `layer`, or an error naming the layer.
    pub fn batch_geom(&self, layer: &impl fmt::Display, x: &Tensor) -> Result<Geom> {
        self.geom(&x.shape()[1..])
            .ok_or_else(|| Error::invalid(format!("{layer}: cannot take input {:?}", x.shape())))
    }

    /// `[C, OH, OW]`, or what the layer expects.
    pub fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        self.geom(input)
            .map(|g| vec![g.c, g.oh, g.ow])
            .ok_or_else(|| format!("[C, {}]", requirement(input, self.kernel, self.padding)))
    }
}

/// `kernel_size=2, stride=2, padding=0`, as PyTorch prints a pooling layer's window.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, s, p) = (Pair(self.kernel), Pair(self.stride), Pair(self.padding));
        write!(f, "kernel_size={k}, stride={s}, padding={p}")
    }
}

/// `2` for `(2, 2)`, `(2, 3)` otherwise: how PyTorch prints what it was given as an int or a pair.
pub struct Pair(pub (usize, usize));

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.0;
        if a == b {
            write!(f, "{a}")
        } else {
            write!(f, "({a}, {b})")
        }
    }
}
