//! `Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True)`, as
//! `torch.nn.Conv2d` (cross-correlation, zero padding), computed as im2col + one GEMM per image, the images of a batch spread over the cores.

use super::{Layer, Mode, Param, no_forward};
use crate::error::{Error, Result};
use crate::init;
use crate::kernels::Op;
use crate::kernels::elementwise::{add, sum};
use crate::kernels::gemm::matmul_serial;
use crate::kernels::im2col::{Geom, col2im, im2col, requirement};
use crate::tensor::Tensor;
use rand::Rng;
use rayon::prelude::*;
use std::fmt;

/// A 2-D convolution: `y[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, c]`.
///
/// # Shapes
/// - input `[N, C, H, W]`, output `[N, OC, OH, OW]` with `OH = ⌊(H + 2·PH − KH)/SH⌋ + 1` (likewise OW)
/// - `weight: [OC, C, KH, KW]`, `bias: [OC]`
///
/// Initialised as PyTorch: `W, b ~ U(−1/√fan_in, 1/√fan_in)`, `fan_in = C·KH·KW`.
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    weight: Param,
    bias: Option<Param>,
    /// The input of the last forward and its geometry.
    x: Option<(Tensor, Geom)>,
    /// Patches of the whole batch, `N × [C·KH·KW, OH·OW]`; reused for ∂L/∂cols in backward.
    cols: Vec<f32>,
    /// Per run of images, partial sums of ∂L/∂W and ∂L/∂b (see `backward_impl`).
    partial: Vec<f32>,
    spare: Tensor,
}

impl Conv2d {
    /// A new layer with PyTorch's default initialisation drawn from `rng`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        bias: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let fan_in = in_channels * kernel.0 * kernel.1;
        let b = init::pytorch_bound(fan_in);
        let weight = Param::new(init::uniform(
            &[out_channels, in_channels, kernel.0, kernel.1],
            -b,
            b,
            rng,
        ));
        let bias = bias.then(|| Param::new(init::uniform(&[out_channels], -b, b, rng)));
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            weight,
            bias,
            x: None,
            cols: Vec::new(),
            partial: Vec::new(),
            spare: Tensor::default(),
        }
    }

    fn geom(&self, input: &[usize]) -> Option<Geom> {
        match *input {
            [c, h, w] if c == self.in_channels => {
                Geom::new(c, h, w, self.kernel, self.stride, self.padding)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Conv2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        write!(
            f,
            "Conv2d({}, {}, kernel_size=({}, {}), stride=({}, {})",
            self.in_channels, self.out_channels, k.0, k.1, s.0, s.1
        )?;
        if p != (0, 0) {
            write!(f, ", padding=({}, {})", p.0, p.1)?;
        }
        if self.bias.is_none() {
            write!(f, ", bias=False")?;
        }
        write!(f, ")")
    }
}

impl Layer for Conv2d {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        self.geom(input)
            .map(|g| vec![self.out_channels, g.oh, g.ow])
            .ok_or_else(|| {
                format!(
                    "[C={}, {}]",
                    self.in_channels,
                    // The size limit is news only when the channels are right.
                    requirement(
                        if input.first() == Some(&self.in_channels) {
                            input
                        } else {
                            &[]
                        },
                        self.kernel,
                        self.padding
                    )
                )
            })
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let n = x.shape()[0];
        let g = self
            .geom(&x.shape()[1..])
            .ok_or_else(|| Error::invalid(format!("{self}: cannot take input {:?}", x.shape())))?;
        let (p, l, oc) = (g.patch(), g.positions(), self.out_channels);
        let buf = std::mem::take(&mut self.spare).or_stale(self.x.take().map(|(x, _)| x));
        let mut y = Tensor::reuse(buf, &[n, oc, g.oh, g.ow]);
        let (w, bias) = (
            self.weight.value.data(),
            self.bias.as_ref().map(|b| b.value.data()),
        );

        // One task per image: its patches, then its product, while the patches are still in cache.
        // cols: N blocks of [P, L], one per image; kept for ∂L/∂W.
        self.cols.resize(n * l * p, 0.0);
        y.data_mut()
            .par_chunks_mut(oc * l)
            .zip(self.cols.par_chunks_mut(l * p))
            .zip(x.data().par_chunks(g.c * g.h * g.w))
            .for_each(|((yi, cols), img)| {
                im2col(&g, img, cols);
                // y_i: [OC, L] = b (broadcast over L) + W: [OC, P] · cols_i: [P, L]
                if let Some(b) = bias {
                    for (row, &b) in yi.chunks_exact_mut(l).zip(b) {
                        row.fill(b);
                    }
                }
                matmul_serial(yi, w, Op::N, cols, Op::N, oc, p, l, bias.is_some());
            });
        self.x = Some((x, g));
        Ok(y)
    }

    /// ∂L/∂W += Σ_n ∂L/∂Y_n · cols_nᵀ,  ∂L/∂b += Σ_{n,l} ∂L/∂y,  ∂L/∂x_n = col2im(Wᵀ · ∂L/∂Y_n).
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, true)
    }

    /// ∂L/∂W and ∂L/∂b only; the cached input's buffer comes back as it is.
    fn backward_params(&mut self, grad_y: Tensor) -> Result<Tensor> {
        self.backward_impl(grad_y, false)
    }

    fn macs(&self, input: &[usize]) -> usize {
        self.geom(input)
            .map_or(0, |g| self.out_channels * g.patch() * g.positions())
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }
}

impl Conv2d {
    /// The backward pass; ∂L/∂x only if `input_grad`.
    fn backward_impl(&mut self, grad_y: Tensor, input_grad: bool) -> Result<Tensor> {
        let (x, g) = self.x.take().ok_or_else(|| no_forward(self))?;
        let n = x.shape()[0];
        let (p, l, oc) = (g.patch(), g.positions(), self.out_channels);
        let gy = grad_y.data();

        // Parameter gradients, over contiguous runs of images, one partial sum per core, added in
        // a fixed order: [∂L/∂W: OC·P | ∂L/∂b: OC] per run.
        let runs = rayon::current_num_threads().clamp(1, n.max(1));
        let per = n.div_ceil(runs);
        self.partial.resize(runs * (oc * p + oc), 0.0);
        let cols = &self.cols;
        self.partial
            .par_chunks_mut(oc * p + oc)
            .enumerate()
            .for_each(|(r, part)| {
                part.fill(0.0);
                let (gw, gb) = part.split_at_mut(oc * p);
                for i in r * per..((r + 1) * per).min(n) {
                    let gy_i = &gy[i * oc * l..][..oc * l];
                    // grad_W: [OC, P] += grad_Y_i: [OC, L] · cols_iᵀ: [L, P]
                    let cols_i = &cols[i * l * p..][..l * p];
                    matmul_serial(gw, gy_i, Op::N, cols_i, Op::T, oc, l, p, true);
                    for (b, row) in gb.iter_mut().zip(gy_i.chunks_exact(l)) {
                        *b += sum(row);
                    }
                }
            });
        for part in self.partial.chunks_exact(oc * p + oc) {
            let (gw, gb) = part.split_at(oc * p);
            add(self.weight.grad.data_mut(), gw);
            if let Some(b) = &mut self.bias {
                add(b.grad.data_mut(), gb);
            }
        }

        // Input gradient, one task per image.
        // grad_cols_i: [P, L] = Wᵀ: [P, OC] · grad_Y_i: [OC, L], over cols_i (no longer needed)
        self.spare = grad_y;
        if !input_grad {
            return Ok(x);
        }
        let shape = x.shape().to_vec();
        let mut grad_x = Tensor::recycle(x, &shape);
        let (gy, w) = (self.spare.data(), self.weight.value.data());
        grad_x
            .data_mut()
            .par_chunks_mut(g.c * g.h * g.w)
            .zip(self.cols.par_chunks_mut(l * p))
            .zip(gy.par_chunks(oc * l))
            .for_each(|((gx, gc), gy_i)| {
                matmul_serial(gc, w, Op::T, gy_i, Op::N, p, oc, l, false);
                col2im(&g, gc, gx);
            });
        Ok(grad_x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::im2col::conv2d_direct;
    use crate::layers::gradcheck::{self, check_layer};
    use rand::SeedableRng;

    fn conv(
        c: usize,
        o: usize,
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize),
        bias: bool,
    ) -> Conv2d {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        Conv2d::new(c, o, k, s, p, bias, &mut rng)
    }

    #[test]
    fn gradients_match_central_differences() {
        check_layer(
            &mut conv(2, 3, (3, 3), (1, 1), (0, 0), true),
            &[2, 2, 5, 5],
            0.0,
        );
        check_layer(
            &mut conv(2, 3, (3, 3), (2, 2), (1, 1), true),
            &[2, 2, 6, 7],
            0.0,
        );
        check_layer(
            &mut conv(1, 2, (2, 3), (3, 3), (2, 2), false),
            &[1, 1, 7, 5],
            0.0,
        );
        check_layer(
            &mut conv(3, 2, (3, 1), (1, 2), (0, 1), true),
            &[2, 3, 4, 6],
            0.0,
        );
    }

    #[test]
    fn backward_params_gives_the_same_parameter_gradients() {
        gradcheck::check_backward_params(
            || conv(2, 4, (3, 3), (1, 1), (1, 1), true),
            &[3, 2, 6, 5],
        );
    }

    #[test]
    fn forward_matches_direct_convolution_per_sample() {
        let mut c = conv(2, 4, (3, 2), (2, 1), (1, 0), true);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x = init::uniform(&[3, 2, 7, 6], -1.0, 1.0, &mut rng);
        let y = c.forward(x.clone(), Mode::Eval).unwrap();
        let g = c.geom(&[2, 7, 6]).unwrap();
        assert_eq!(y.shape(), &[3, 4, g.oh, g.ow]);
        let (mut w, mut b) = (Vec::new(), Vec::new());
        c.visit_params("", &mut |name, p| {
            if name == "weight" {
                w = p.value.data().to_vec()
            } else {
                b = p.value.data().to_vec()
            }
        });
        for i in 0..3 {
            let direct = conv2d_direct(&g, &x.data()[i * 84..][..84], &w, 4);
            for (j, d) in direct.iter().enumerate() {
                let got = y.data()[i * direct.len() + j];
                assert!(
                    (got - d - b[j / g.positions()]).abs() < 1e-5,
                    "{got} vs {d}"
                );
            }
        }
    }

    #[test]
    fn shapes_and_repr() {
        let c = conv(1, 8, (3, 3), (2, 2), (0, 0), true);
        assert_eq!(
            c.to_string(),
            "Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2))"
        );
        assert_eq!(c.output_shape(&[1, 28, 28]).unwrap(), vec![8, 13, 13]);
        assert_eq!(
            c.output_shape(&[3, 28, 28]).unwrap_err(),
            "[C=1, H ≥ 3, W ≥ 3]"
        );
        assert!(c.output_shape(&[1, 2, 28]).is_err());
        let c = conv(3, 5, (3, 2), (3, 3), (2, 2), false);
        assert_eq!(
            c.to_string(),
            "Conv2d(3, 5, kernel_size=(3, 2), stride=(3, 3), padding=(2, 2), bias=False)"
        );
        assert_eq!(c.output_shape(&[3, 10, 7]).unwrap(), vec![5, 4, 4]);
    }
}
