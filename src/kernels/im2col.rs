//! im2col / col2im: a convolution as one matrix product, and the direct convolution as its twin.
//!
//! For one image `x: [C, H, W]`, `im2col` writes `cols: [C·KH·KW, OH·OW]` with
//! `cols[(c·KH + i)·KW + j, oy·OW + ox] = x[c, oy·SH + i − PH, ox·SW + j − PW]` (0 outside the image),
//! so that `y = W · cols` with `W: [OC, C·KH·KW]`. One kernel offset per row makes every row a run of
//! copies of image rows (plain slice copies at stride 1), and each image's block stays contiguous.
//! `col2im` is its adjoint: it adds every entry back onto the pixel it came from, which is exactly
//! ∂L/∂x given ∂L/∂cols.

use crate::tensor::MAX_VALUES;

/// The sizes of one 2-D convolution (or pooling) window sweep over one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// The geometry, or `None` when the (padded) input is smaller than the kernel, a stride is 0,
    /// or the patch matrix (C·KH·KW rows, OH·OW columns) would hold more than [`MAX_VALUES`] values.
    /// `OH = ⌊(H + 2·PH − KH) / SH⌋ + 1`, likewise `OW`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c: usize,
        h: usize,
        w: usize,
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize),
    ) -> Option<Geom> {
        let (kh, kw) = k;
        let (sh, sw) = s;
        let (ph, pw) = p;
        let out = |size: usize, k: usize, s: usize, p: usize| {
            let swept = p.checked_mul(2)?.checked_add(size)?.checked_sub(k)?;
            Some(swept.checked_div(s)? + 1)
        };
        let (oh, ow) = (out(h, kh, sh, ph)?, out(w, kw, sw, pw)?);
        [c, kh, kw, oh, ow]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_VALUES)?;
        Some(Geom {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oh,
            ow,
        })
    }

    /// Rows of `cols`: `C·KH·KW`.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of `cols`: `OH·OW`.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// The input pixel `(y, x)` that window position `(oy, ox)` reads at kernel offset `(i, j)`, if
    /// it is inside the image.
    #[inline]
    pub fn source(&self, oy: usize, ox: usize, i: usize, j: usize) -> Option<(usize, usize)> {
        let y = (oy * self.sh + i).checked_sub(self.ph)?;
        let x = (ox * self.sw + j).checked_sub(self.pw)?;
        (y < self.h && x < self.w).then_some((y, x))
    }

    /// The window columns `lo..hi` whose kernel column `j` falls inside the image (not in padding):
    /// `0 ≤ ox·SW + j − PW < W`.
    pub fn inside(&self, j: usize) -> (usize, usize) {
        let lo = self.pw.saturating_sub(j).div_ceil(self.sw).min(self.ow);
        let hi = (self.w + self.pw)
            .saturating_sub(j)
            .div_ceil(self.sw)
            .clamp(lo, self.ow);
        (lo, hi)
    }
}

/// What a sweep with kernel `k` and padding `p` needs of a per-sample input `[C, H, W]`, for
/// messages: `H ≥ …, W ≥ …`, and the size limit too when `input` is that large but still refused.
pub fn requirement(input: &[usize], k: (usize, usize), p: (usize, usize)) -> String {
    let least = |k: usize, p: usize| k.saturating_sub(p.saturating_mul(2)).max(1);
    let (h, w) = (least(k.0, p.0), least(k.1, p.1));
    match *input {
        [_, ih, iw] if ih >= h && iw >= w => {
            format!("H ≥ {h}, W ≥ {w}, and at most {MAX_VALUES} values under its windows")
        }
        _ => format!("H ≥ {h}, W ≥ {w}"),
    }
}

/// `cols: [C·KH·KW, OH·OW] ← x: [C, H, W]`; row `(c·KH + i)·KW + j` holds, for every window
/// position, the pixel under kernel offset `(c, i, j)`.
pub fn im2col(g: &Geom, x: &[f32], cols: &mut [f32]) {
    assert_eq!(x.len(), g.c * g.h * g.w);
    assert_eq!(cols.len(), g.patch() * g.positions());
    if (g.ph, g.pw) == (0, 0) {
        // No padding: every window lies inside the image, and row (c, i, j) is plane c read from
        // (i, j) on, SH rows and SW columns apart; no bounds to work out per row.
        let mut rows = cols.chunks_exact_mut(g.positions());
        for plane in x.chunks_exact(g.h * g.w) {
            for off in (0..g.kh).flat_map(|i| (0..g.kw).map(move |j| i * g.w + j)) {
                let row = rows.next().expect("one row per kernel offset");
                for (oy, dst) in row.chunks_exact_mut(g.ow).enumerate() {
                    let s = &plane[off + oy * g.sh * g.w..];
                    for (ox, d) in dst.iter_mut().enumerate() {
                        *d = s[ox * g.sw];
                    }
                }
            }
        }
        return;
    }
    let mut rows = cols.chunks_exact_mut(g.positions());
    for plane in x.chunks_exact(g.h * g.w) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = rows.next().expect("one row per kernel offset");
                let (lo, hi) = g.inside(j);
                for (oy, dst) in row.chunks_exact_mut(g.ow).enumerate() {
                    let y = (oy * g.sh + i).wrapping_sub(g.ph);
                    if y >= g.h || lo == hi {
                        dst.fill(0.0);
                        continue;
                    }
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    gather(
                        &mut dst[lo..hi],
                        &plane[y * g.w + lo * g.sw + j - g.pw..],
                        g.sw,
                    );
                }
            }
        }
    }
}

/// `grad_x: [C, H, W] += col2im(grad_cols: [C·KH·KW, OH·OW])`, the adjoint of [`im2col`].
pub fn col2im(g: &Geom, grad_cols: &[f32], grad_x: &mut [f32]) {
    assert_eq!(grad_x.len(), g.c * g.h * g.w);
    assert_eq!(grad_cols.len(), g.patch() * g.positions());
    let mut rows = grad_cols.chunks_exact(g.positions());
    if (g.ph, g.pw) == (0, 0) {
        // No padding: as in `im2col`, row (c, i, j) goes back onto plane c from (i, j) on.
        for plane in grad_x.chunks_exact_mut(g.h * g.w) {
            for off in (0..g.kh).flat_map(|i| (0..g.kw).map(move |j| i * g.w + j)) {
                let row = rows.next().expect("one row per kernel offset");
                for (oy, src) in row.chunks_exact(g.ow).enumerate() {
                    let d = &mut plane[off + oy * g.sh * g.w..];
                    for (ox, s) in src.iter().enumerate() {
                        d[ox * g.sw] += s;
                    }
                }
            }
        }
        return;
    }
    for plane in grad_x.chunks_exact_mut(g.h * g.w) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = rows.next().expect("one row per kernel offset");
                let (lo, hi) = g.inside(j);
                for (oy, src) in row.chunks_exact(g.ow).enumerate() {
                    let y = (oy * g.sh + i).wrapping_sub(g.ph);
                    if y >= g.h || lo == hi {
                        continue;
                    }
                    scatter_add(
                        &mut plane[y * g.w + lo * g.sw + j - g.pw..],
                        &src[lo..hi],
                        g.sw,
                    );
                }
            }
        }
    }
}

/// `dst[i] = src[i·stride]` for every `i` of `dst`: one row of window positions.
fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
    if stride == 1 {
        dst.copy_from_slice(&src[..dst.len()]);
    } else {
        dst.iter_mut()
            .zip(src.iter().step_by(stride))
            .for_each(|(d, s)| *d = *s);
    }
}

/// `dst[i·stride] += src[i]` for every `i` of `src`: the adjoint of [`gather`].
fn scatter_add(dst: &mut [f32], src: &[f32], stride: usize) {
    if stride == 1 {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
    } else {
        dst.iter_mut()
            .step_by(stride)
            .zip(src)
            .for_each(|(d, s)| *d += s);
    }
}

/// The naive twin: `y[o, oy, ox] = Σ_{c,i,j} w[o, c, i, j] · x[c, oy·SH+i−PH, ox·SW+j−PW]`, without bias.
pub fn conv2d_direct(g: &Geom, x: &[f32], w: &[f32], out_channels: usize) -> Vec<f32> {
    let mut y = vec![0.0; out_channels * g.positions()];
    for o in 0..out_channels {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut s = 0.0f64;
                for c in 0..g.c {
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            if let Some((yy, xx)) = g.source(oy, ox, i, j) {
                                s += w[((o * g.c + c) * g.kh + i) * g.kw + j] as f64
                                    * x[(c * g.h + yy) * g.w + xx] as f64;
                            }
                        }
                    }
                }
                y[(o * g.oh + oy) * g.ow + ox] = s as f32;
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Op, matmul};
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// (channels, height, width, kernel, stride, padding)
    type Case = (
        usize,
        usize,
        usize,
        (usize, usize),
        (usize, usize),
        (usize, usize),
    );
    const CASES: &[Case] = &[
        (1, 5, 5, (3, 3), (1, 1), (0, 0)),
        (2, 7, 9, (3, 2), (2, 3), (1, 2)),
        (3, 11, 6, (5, 3), (3, 1), (2, 1)),
        (4, 8, 8, (1, 1), (2, 2), (0, 0)),
        (2, 4, 4, (4, 4), (1, 1), (3, 3)),
        // Stride 2: seed-cnn's first conv, and rows of 19 and 20 positions.
        (1, 28, 28, (3, 3), (2, 2), (0, 0)),
        (2, 5, 40, (3, 3), (2, 2), (1, 1)),
        (1, 4, 41, (2, 3), (2, 2), (0, 0)),
    ];

    #[test]
    fn im2col_then_gemm_equals_direct_convolution() {
        for (n, &(c, h, w, k, s, p)) in CASES.iter().enumerate() {
            let g = Geom::new(c, h, w, k, s, p).unwrap();
            let oc = 3;
            let x = random(c * h * w, n as u64);
            let wt = random(oc * g.patch(), 100 + n as u64);
            let mut cols = vec![0.0; g.patch() * g.positions()];
            im2col(&g, &x, &mut cols);
            let mut y = vec![0.0; oc * g.positions()];
            matmul(
                &mut y,
                &wt,
                Op::N,
                &cols,
                Op::N,
                oc,
                g.patch(),
                g.positions(),
                false,
            );
            let direct = conv2d_direct(&g, &x, &wt, oc);
            for (a, b) in y.iter().zip(&direct) {
                assert!((a - b).abs() < 1e-5, "{g:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for all x, c.
        for (n, &(c, h, w, k, s, p)) in CASES.iter().enumerate() {
            let g = Geom::new(c, h, w, k, s, p).unwrap();
            let x = random(c * h * w, n as u64);
            let gc = random(g.patch() * g.positions(), 50 + n as u64);
            let mut cols = vec![0.0; gc.len()];
            im2col(&g, &x, &mut cols);
            let mut gx = vec![0.0; x.len()];
            col2im(&g, &gc, &mut gx);
            let lhs: f64 = cols
                .iter()
                .zip(&gc)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&gx)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!((lhs - rhs).abs() < 1e-4, "{g:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn geometry_follows_pytorch_formula() {
        let g = Geom::new(1, 28, 28, (3, 3), (2, 2), (0, 0)).unwrap();
        assert_eq!((g.oh, g.ow), (13, 13));
        let g = Geom::new(1, 10, 7, (3, 2), (3, 3), (2, 2)).unwrap();
        assert_eq!((g.oh, g.ow), (4, 4));
        assert!(Geom::new(1, 2, 2, (3, 3), (1, 1), (0, 0)).is_none());
    }
}
