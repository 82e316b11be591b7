//! The window that both pooling layers slide over each channel plane.

use crate::kernels::im2col::{Geom, requirement};
use std::fmt;

/// A pooling window: kernel, stride and padding, each `(h, w)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
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

    /// `[C, OH, OW]`, or what the layer expects.
    pub fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        self.geom(input)
            .map(|g| vec![g.c, g.oh, g.ow])
            .ok_or_else(|| format!("[C, {}]", requirement(input, self.kernel, self.padding)))
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
