//! `Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True)`, as
//! `torch.nn.Conv2d` (cross-correlation, zero padding), computed as im2col + one GEMM per image, the
//! images of a batch split into one contiguous run per core.
//!
//! A convolution of stride 1 that keeps the image's size (3×3 with padding 1, all of resnet's but
//! two) never writes its patches: the products read them from the image itself, as
//! [`Patches`] describes them, in forward and for ∂L/∂W (the same sums, so the same bits, as
//! through im2col). On one core that took resnet's epoch from 3.57 to 3.38 s of CPU samples in
//! the products and im2col (perf record, 2 epochs of 1000 images): im2col's writes go, but the
//! products' loads, shifted by a pixel from row to row, often straddle two cache lines. Its ∂L/∂x
//! is a convolution of the same kind, of ∂L/∂Y by the flipped kernel ([`back_patches`]), so
//! ∂L/∂cols and col2im go too (a further 2–3% of the epoch's CPU samples; the sums are then in
//! another order than through col2im, equal within rounding).
//!
//! Other patches are kept for backward only while they fit in a core's cache
//! ([`KEEP_PATCHES`]); larger ones are built again in backward, one image at a time per core, which
//! is cheaper than reading them back: lenet's second conv would keep 11 MB, its backward took 3.7 ms
//! per batch of 50 on 2 cores reading them and 2.5 ms building them afresh, while seed-cnn's
//! (0.3 and 0.5 MB) are quicker kept (epoch 0.55 vs 0.70 s on 1 core).
//!
//! A max pool right after the layer (with a ReLU between, which the pool takes over) can be run by
//! the layer itself ([`Conv2d::run_pool`], as `layers::plan` decides): each image's output is pooled as soon as it is
//! computed, from a run's room for one image, and in backward each image's gradient is taken back
//! through the pool into that room just before it is used. The full-size output and its gradient
//! (5 MB per batch of 50 for lenet's first conv) then never leave the core's cache.

use super::{Layer, Mode, Param, PoolSpec, no_forward};
use crate::error::{Error, Result};
use crate::init;
use crate::kernels::Op;
use crate::kernels::elementwise::{add, sum};
use crate::kernels::gemm::{
    PackedA, matmul_packed_a, matmul_packed_a_patches, matmul_patches_t, matmul_serial,
};
use crate::kernels::im2col::{Geom, Patches, col2im, im2col, requirement};
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
    /// `[C·KH·KW, OH·OW]` blocks of patches: one per image when they are kept for backward, else one
    /// per run of images for its current image; in backward also ∂L/∂cols.
    cols: Vec<f32>,
    /// Per run of images, partial sums of ∂L/∂W and ∂L/∂b (see `backward_impl`).
    partial: Vec<f32>,
    /// The max pool after this layer, when it runs it (see [`Conv2d::run_pool`]) ...
    pool: Option<PoolSpec>,
    /// ... and per run of images what that needs (empty when there is none).
    pool_runs: Vec<PoolRun>,
    /// `W` (forward) or `Wᵀ` (backward) packed once per batch for every image's product.
    packed_w: PackedA,
    spare: Tensor,
}

/// What one run of images keeps for a max pool the layer runs: room for one image's convolution
/// output (or its gradient), `[OC, OH·OW]`, and the argmax of every pooled output of the run.
#[derive(Default)]
struct PoolRun {
    image: Vec<f32>,
    argmax: Vec<u32>,
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
            pool: None,
            pool_runs: Vec::new(),
            packed_w: PackedA::default(),
            spare: Tensor::default(),
        }
    }

    /// `W: [OC, C, KH, KW]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight.value
    }

    /// `b: [OC]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref().map(|b| &b.value)
    }

    /// `(stride, padding)`, each `(h, w)`.
    pub fn stride_padding(&self) -> ((usize, usize), (usize, usize)) {
        (self.stride, self.padding)
    }

    /// From now on, runs `pool` on its own output, image by image while each is in cache, for the
    /// max pool just after it, which is then skipped (a fusion `layers::plan` decides). Outputs and
    /// gradients are those of the two layers one after the other.
    pub(crate) fn run_pool(&mut self, pool: PoolSpec) {
        self.pool = Some(pool);
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
        let patches = Patches::new(&g);
        let runs = Runs::new(n, &g, patches.is_some());
        let pool = self.pooling(n, &g)?;
        let (oh, ow) = pool.map_or((g.oh, g.ow), |(_, pg)| (pg.oh, pg.ow));
        let out = oc * oh * ow;
        let buf = std::mem::take(&mut self.spare).or_stale(self.x.take().map(|(x, _)| x));
        let mut y = Tensor::reuse(buf, &[n, oc, oh, ow]);
        let (w, bias) = (
            self.weight.value.data(),
            self.bias.as_ref().map(|b| b.value.data()),
        );
        self.cols
            .resize(if runs.keep { n } else { runs.count } * p * l, 0.0);
        runs.size_pool_runs(&mut self.pool_runs, pool.is_some(), oc * l, out);
        self.packed_w.pack(w, Op::N, oc, p);
        let packed_w = &self.packed_w;
        y.data_mut()
            .par_chunks_mut(runs.per * out)
            .zip(x.data().par_chunks(runs.per * g.c * g.h * g.w))
            .zip(self.cols.par_chunks_mut(runs.patch_floats(p * l)))
            .zip(self.pool_runs.par_iter_mut())
            .for_each(|(((ys, xs), run_cols), pr)| {
                let images = ys
                    .chunks_exact_mut(out)
                    .zip(xs.chunks_exact(g.c * g.h * g.w));
                for (k, (yi, img)) in images.enumerate() {
                    let cols = runs.block(run_cols, k, p * l);
                    if patches.is_none() {
                        im2col(&g, img, cols);
                    }
                    // conv_i: [OC, L] = b (broadcast over L) + W: [OC, P] · cols_i: [P, L]
                    let convolve = |conv: &mut [f32]| {
                        if let Some(b) = bias {
                            for (row, &b) in conv.chunks_exact_mut(l).zip(b) {
                                row.fill(b);
                            }
                        }
                        let acc = bias.is_some();
                        match &patches {
                            Some(pt) => matmul_packed_a_patches(conv, packed_w, img, pt, acc),
                            None => matmul_packed_a(conv, packed_w, cols, Op::N, l, acc),
                        }
                    };
                    match &pool {
                        // Into the run's room for one image, then pooled into the output while
                        // it is in cache.
                        Some((spec, pg)) => {
                            convolve(&mut pr.image);
                            let am = &mut pr.argmax[k * out..][..out];
                            spec.forward_image(pg, &mut pr.image, yi, am);
                        }
                        None => convolve(yi),
                    }
                }
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

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&format!("{prefix}weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&format!("{prefix}bias"), b);
        }
    }
}

impl Conv2d {
    /// The max pool this layer runs, if any, with its geometry over an image of this layer's output
    /// for geometry `g`; an error naming it when that output is too small for its window (a
    /// `Sequential` built without the model check).
    fn pooling(&self, n: usize, g: &Geom) -> Result<Option<(PoolSpec, Geom)>> {
        let Some(spec) = self.pool else {
            return Ok(None);
        };
        let oc = self.out_channels;
        let pg = spec.geom(oc, g.oh, g.ow).ok_or_else(|| {
            Error::invalid(format!(
                "MaxPool2d({}) after {self}: cannot take its output {:?}",
                spec.window,
                [n, oc, g.oh, g.ow]
            ))
        })?;
        Ok(Some((spec, pg)))
    }

    /// The backward pass; ∂L/∂x only if `input_grad`.
    ///
    /// One pass per run of images: for each image, its patches again, its share of ∂L/∂W and ∂L/∂b
    /// into the run's partial sums, then ∂L/∂x_i over the image's own input (no longer needed). The
    /// partial sums are added in run order, so a given number of cores always gives the same sums.
    fn backward_impl(&mut self, grad_y: Tensor, input_grad: bool) -> Result<Tensor> {
        let (mut x, g) = self.x.take().ok_or_else(|| no_forward(self))?;
        let n = x.shape()[0];
        let (p, l, oc) = (g.patch(), g.positions(), self.out_channels);
        let img = g.c * g.h * g.w;
        let patches = Patches::new(&g);
        let runs = Runs::new(n, &g, patches.is_some());
        let back = patches.as_ref().and_then(|_| back_patches(&g, oc));
        let pool = self.pooling(n, &g)?;
        let out = pool.map_or(oc * l, |(_, pg)| oc * pg.oh * pg.ow);
        self.partial.resize(runs.count * (oc * p + oc), 0.0);
        let w = self.weight.value.data();
        runs.size_pool_runs(&mut self.pool_runs, pool.is_some(), oc * l, out);
        match (input_grad, &back) {
            (false, _) => {}
            (true, None) => self.packed_w.pack(w, Op::T, p, oc),
            (true, Some(_)) => {
                self.packed_w
                    .pack(&flipped(w, oc, &g), Op::N, g.c, oc * g.kh * g.kw)
            }
        }
        let packed_w = &self.packed_w;
        x.data_mut()
            .par_chunks_mut(runs.per * img)
            .zip(grad_y.data().par_chunks(runs.per * out))
            .zip(self.cols.par_chunks_mut(runs.patch_floats(p * l)))
            .zip(self.partial.par_chunks_mut(oc * p + oc))
            .zip(self.pool_runs.par_iter_mut())
            .for_each(|((((xs, gys), run_cols), part), pr)| {
                part.fill(0.0);
                let (gw, gb) = part.split_at_mut(oc * p);
                let images = xs.chunks_exact_mut(img).zip(gys.chunks_exact(out));
                for (k, (xi, gy_i)) in images.enumerate() {
                    let cols = runs.block(run_cols, k, p * l);
                    if !runs.keep && patches.is_none() {
                        im2col(&g, xi, cols);
                    }
                    // ∂L/∂ of this image's convolution output: the incoming gradient, or that
                    // taken back through the pool.
                    let gy_i = match &pool {
                        Some((spec, pg)) => {
                            let am = &pr.argmax[k * out..][..out];
                            spec.backward_image(pg, gy_i, am, &mut pr.image);
                            &pr.image[..]
                        }
                        None => gy_i,
                    };
                    // grad_W: [OC, P] += grad_Y_i: [OC, L] · cols_iᵀ: [L, P]
                    match &patches {
                        Some(pt) => matmul_patches_t(gw, gy_i, oc, xi, pt, true),
                        None => matmul_serial(gw, gy_i, Op::N, cols, Op::T, oc, l, p, true),
                    }
                    for (b, row) in gb.iter_mut().zip(gy_i.chunks_exact(l)) {
                        *b += sum(row);
                    }
                    match (input_grad, &back) {
                        (false, _) => {}
                        (true, None) => {
                            // grad_cols_i: [P, L] = Wᵀ: [P, OC] · grad_Y_i: [OC, L];
                            // x_i becomes ∂L/∂x_i.
                            matmul_packed_a(cols, packed_w, gy_i, Op::N, l, false);
                            col2im(&g, cols, xi);
                        }
                        // x_i becomes ∂L/∂x_i: [C, H·W] = W′: [C, OC·KH·KW] · patches of grad_Y_i.
                        (true, Some(pb)) => matmul_packed_a_patches(xi, packed_w, gy_i, pb, false),
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
        self.spare = grad_y;
        Ok(x)
    }
}

/// The patches of ∂L/∂Y for ∂L/∂x, when the convolution (geometry `g`, `oc` output channels)
/// has stride 1 and keeps the size: then ∂L/∂x is the same kind of convolution of ∂L/∂Y, with the
/// kernel flipped ([`flipped`]) and padding `KH − 1 − PH` (likewise W), so it too reads its
/// patches in place, and ∂L/∂cols and col2im go:
/// `∂L/∂x[c, y, x] = Σ_{o,i,j} W[o, c, i, j]·∂L/∂Y[o, y + PH − i, x + PW − j]`
/// `= Σ_{o,i′,j′} W′[c, o, i′, j′]·∂L/∂Y[o, y + i′ − (KH − 1 − PH), x + j′ − (KW − 1 − PW)]`.
fn back_patches(g: &Geom, oc: usize) -> Option<Patches> {
    let pad = (g.kh.checked_sub(1 + g.ph)?, g.kw.checked_sub(1 + g.pw)?);
    let gb = Geom::new(oc, g.oh, g.ow, (g.kh, g.kw), (1, 1), pad)?;
    Patches::new(&gb).filter(|_| (gb.oh, gb.ow) == (g.h, g.w))
}

/// `W′: [C, OC, KH, KW]`, `W′[c, o, i, j] = W[o, c, KH − 1 − i, KW − 1 − j]`: the kernel of
/// ∂L/∂x as a convolution of ∂L/∂Y (see [`back_patches`]).
fn flipped(w: &[f32], oc: usize, g: &Geom) -> Vec<f32> {
    let (c, kh, kw) = (g.c, g.kh, g.kw);
    let mut f = vec![0.0; w.len()];
    for o in 0..oc {
        for ch in 0..c {
            for i in 0..kh {
                for j in 0..kw {
                    f[((ch * oc + o) * kh + i) * kw + j] =
                        w[((o * c + ch) * kh + kh - 1 - i) * kw + kw - 1 - j];
                }
            }
        }
    }
    f
}

/// The most bytes of patches a batch keeps from forward to backward: about what stays in one core's
/// L2 cache.
const KEEP_PATCHES: usize = 1 << 20;

/// A batch is cut into this many runs of images (fewer for a batch of fewer images), whatever the
/// number of threads: each run sums its images' ∂L/∂W in turn and the runs' sums are added in order,
/// so the cut, and with it every bit of ∂L/∂W, must not depend on the thread count. Four keeps four
/// cores busy and two evenly loaded (batch 50: runs of 13, 13, 13 and 11 images).
const RUNS: usize = 4;

/// How a batch is cut into [`RUNS`] contiguous runs of images, which the cores take in turn, and
/// where each image's patches go within its run's share of `Conv2d::cols`.
struct Runs {
    /// Images per run (the last run may have fewer).
    per: usize,
    /// How many runs.
    count: usize,
    /// Whether the batch keeps its patches for backward, one block per image; else each run has
    /// one block, for its current image.
    keep: bool,
}

impl Runs {
    /// The runs of a batch of `n` images of geometry `g`, whose products read the patches from
    /// the images (nothing to keep) if `implicit`.
    fn new(n: usize, g: &Geom, implicit: bool) -> Runs {
        let per = n.div_ceil(RUNS).max(1);
        Runs {
            per,
            count: n.div_ceil(per),
            keep: !implicit && n * g.patch() * g.positions() * size_of::<f32>() <= KEEP_PATCHES,
        }
    }

    /// Floats of patches one run holds, for blocks of `block` floats.
    fn patch_floats(&self, block: usize) -> usize {
        let blocks = if self.keep { self.per } else { 1 };
        blocks * block
    }

    /// One [`PoolRun`] per run, each with room for an image of `conv` floats of convolution output
    /// and the argmax of its images' `out` pooled outputs each when `pooling` (else empty).
    fn size_pool_runs(&self, pool_runs: &mut Vec<PoolRun>, pooling: bool, conv: usize, out: usize) {
        pool_runs.resize_with(self.count, PoolRun::default);
        if pooling {
            for r in pool_runs.iter_mut() {
                r.image.resize(conv, 0.0);
                r.argmax.resize(self.per * out, 0);
            }
        }
    }

    /// The block of image `k` of a run, within the run's patches.
    fn block<'a>(&self, run: &'a mut [f32], k: usize, block: usize) -> &'a mut [f32] {
        &mut run[if self.keep { k * block } else { 0 }..][..block]
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
        // Stride 1, size kept: patches read from the image, ∂L/∂x by the flipped kernel.
        for (k, p) in [((3, 3), (1, 1)), ((5, 3), (2, 1))] {
            assert!(back_patches(&Geom::new(2, 5, 6, k, (1, 1), p).unwrap(), 3).is_some());
            check_layer(&mut conv(2, 3, k, (1, 1), p, true), &[2, 2, 5, 6], 0.0);
        }
    }

    #[test]
    fn backward_params_gives_the_same_parameter_gradients() {
        gradcheck::check_backward_params(
            || conv(2, 4, (3, 3), (1, 1), (1, 1), true),
            &[3, 2, 6, 5],
        );
    }

    #[test]
    fn patches_built_again_in_backward_give_what_kept_ones_give() {
        // 12 images of [3, 32, 32] make 1.3 MB of patches, built again in backward; one image
        // alone keeps its 0.1 MB. Same outputs, ∂L/∂x and parameter gradients either way.
        let (n, shape) = (12, [3, 32, 32]);
        let g = Geom::new(3, 32, 32, (3, 3), (1, 1), (1, 1)).unwrap();
        assert!(!Runs::new(n, &g, false).keep && Runs::new(1, &g, false).keep);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let x = init::uniform(&[n, 3, 32, 32], -1.0, 1.0, &mut rng);
        let gy = init::uniform(&[n, 5, 32, 32], -1.0, 1.0, &mut rng);
        let grads = |c: &mut Conv2d| {
            let mut all = Vec::new();
            c.visit_params("", &mut |_, p| all.extend_from_slice(p.grad.data()));
            all
        };
        let mut whole = conv(3, 5, (3, 3), (1, 1), (1, 1), true);
        let y = whole.forward(x.clone(), Mode::train(0)).unwrap();
        let gx = whole.backward(gy.clone()).unwrap();
        let mut one = conv(3, 5, (3, 3), (1, 1), (1, 1), true);
        let (img, out) = (3 * 32 * 32, 5 * 32 * 32);
        for i in 0..n {
            let xi = Tensor::new(&[1, 3, 32, 32], x.data()[i * img..][..img].to_vec()).unwrap();
            let gyi = Tensor::new(&[1, 5, 32, 32], gy.data()[i * out..][..out].to_vec()).unwrap();
            let yi = one.forward(xi, Mode::train(0)).unwrap();
            let gxi = one.backward(gyi).unwrap();
            assert_eq!(yi.data(), &y.data()[i * out..][..out], "y of image {i}");
            assert_eq!(
                gxi.data(),
                &gx.data()[i * img..][..img],
                "∂L/∂x of image {i}"
            );
            assert_eq!(gxi.shape(), &[1, shape[0], shape[1], shape[2]]);
        }
        for (a, b) in grads(&mut whole).iter().zip(grads(&mut one)) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
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
