//! `Parallel(...)`: branches that see the same input, outputs concatenated along dimension 1.
//!
//! PyTorch has no such module. Ours behaves as this PyTorch module would, and its parameters are
//! named as PyTorch would name them (`{i}.{branch}.weight`):
//! ```python
//! class Parallel(nn.ModuleList):
//!     def forward(self, x):
//!         return torch.cat([branch(x) for branch in self], dim=1)
//! ```

use super::{Buffer, Layer, Mode, Param, child_path, one_line};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::fmt;

/// `y = concat_1(f_0(x), f_1(x), …)`; backward: `∂L/∂x = Σ_b J_bᵀ(∂L/∂y restricted to branch b)`.
///
/// # Shapes
/// Branch outputs `[N, C_b, …]` must agree in every dimension but 1; the output is `[N, Σ C_b, …]`.
pub struct Parallel {
    branches: Vec<Box<dyn Layer>>,
    /// Per branch, the output's size along dimension 1, and the product of the dimensions after it.
    split: Option<(Vec<usize>, usize)>,
}

impl Parallel {
    /// Branches applied to the same input.
    pub fn new(branches: Vec<Box<dyn Layer>>) -> Self {
        Parallel {
            branches,
            split: None,
        }
    }
}

impl fmt::Display for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Parallel(")?;
        for (i, l) in self.branches.iter().enumerate() {
            writeln!(f, "  ({i}): {}", l.to_string().replace('\n', "\n  "))?;
        }
        write!(f, ")")
    }
}

impl Layer for Parallel {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let mut out: Option<Vec<usize>> = None;
        for b in &self.branches {
            let s = b.output_shape(input)?;
            out = Some(match out {
                None => s,
                Some(mut o) if o.len() == s.len() && !s.is_empty() && o[1..] == s[1..] => {
                    o[0] = o[0].saturating_add(s[0]);
                    o
                }
                Some(_) => return Err("branch outputs that differ only in dimension 1".into()),
            });
        }
        out.ok_or_else(|| "at least one branch".into())
    }

    fn check(&self, index: &str, input: &[usize], from: &str) -> Result<Vec<usize>> {
        for (b, branch) in self.branches.iter().enumerate() {
            branch.check(&child_path(index, b), input, from)?;
        }
        self.output_shape(input).map_err(|expected| Error::Shape {
            index: index.to_string(),
            layer: one_line(self),
            expected,
            got: input.to_vec(),
            after: from.to_string(),
        })
    }

    fn forward(&mut self, x: Tensor, mode: Mode) -> Result<Tensor> {
        let n = x.shape()[0];
        let mut outs = Vec::with_capacity(self.branches.len());
        let last = self.branches.len() - 1;
        let mut x = Some(x);
        for (b, branch) in self.branches.iter_mut().enumerate() {
            let input = if b == last {
                x.take().expect("input kept for the last branch")
            } else {
                x.clone().expect("input")
            };
            outs.push(branch.forward(input, mode.child(b))?);
        }
        let inner: usize = outs[0].shape()[2..].iter().product();
        let channels: Vec<usize> = outs.iter().map(|o| o.shape()[1]).collect();
        let mut shape = outs[0].shape().to_vec();
        shape[1] = channels.iter().sum();
        let mut y = Vec::with_capacity(shape.iter().product());
        for i in 0..n {
            for (o, &c) in outs.iter().zip(&channels) {
                y.extend_from_slice(&o.data()[i * c * inner..][..c * inner]);
            }
        }
        self.split = Some((channels, inner));
        Tensor::new(&shape, y).map_err(|e| Error::invalid(format!("Parallel: {e}")))
    }

    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let (channels, inner) = self
            .split
            .take()
            .ok_or_else(|| Error::NoForward(self.to_string()))?;
        let n = grad_y.shape()[0];
        let total: usize = channels.iter().sum();
        let mut grad_x: Option<Tensor> = None;
        let mut offset = 0;
        for (branch, &c) in self.branches.iter_mut().zip(&channels) {
            let mut part = Vec::with_capacity(n * c * inner);
            for i in 0..n {
                part.extend_from_slice(&grad_y.data()[(i * total + offset) * inner..][..c * inner]);
            }
            offset += c;
            let mut shape = grad_y.shape().to_vec();
            shape[1] = c;
            let g = branch.backward(Tensor::new(&shape, part)?)?;
            grad_x = Some(match grad_x {
                None => g,
                Some(mut acc) => {
                    acc.data_mut()
                        .iter_mut()
                        .zip(g.data())
                        .for_each(|(a, b)| *a += b);
                    acc
                }
            });
        }
        self.split = Some((channels, inner));
        grad_x.ok_or_else(|| Error::invalid("Parallel without branches"))
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, l) in self.branches.iter_mut().enumerate() {
            l.visit_params(&format!("{prefix}{i}."), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Buffer)) {
        for (i, l) in self.branches.iter_mut().enumerate() {
            l.visit_buffers(&format!("{prefix}{i}."), f);
        }
    }

    fn macs(&self, input: &[usize]) -> usize {
        self.branches.iter().map(|b| b.macs(input)).sum()
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.branches
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref()))
            .collect()
    }
}
