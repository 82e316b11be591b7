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
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding above and below.
    pub ph: usize,
    /// Padding left and right.
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
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
    #[cfg(target_arch = "x86_64")]
    if avx512::takes(g) {
        // SAFETY: AVX-512F is present; the lengths are checked above.
        return unsafe { avx512::im2col(g, x, cols) };
    }
    im2col_scalar(g, x, cols)
}

/// [`im2col`] on any machine, and the twin of its AVX-512 path.
fn im2col_scalar(g: &Geom, x: &[f32], cols: &mut [f32]) {
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

/// The patch matrix of a stride-1 sweep whose output keeps the input's size (`OH = H`,
/// `OW = W`: a 3×3 kernel with padding 1), described instead of written: with positions numbered
/// `t = oy·W + ox` as pixels are, row `(c, i, j)` of `cols` is the image from pixel
/// `off = c·H·W + (i − PH)·W + (j − PW)` on, `cols[(c, i, j), t] = x[off + t]`, except where the
/// window reaches into the padding (`oy + i − PH ∉ [0, H)` or `ox + j − PW ∉ [0, W)`): there 0.
/// The matrix products read it in place (`kernels::gemm::matmul_packed_a_patches`,
/// `matmul_patches_t`), so the patches are never written out. [`Patches::im2col`] writes them
/// where that is not done (by [`im2col`]); its naive twin in the tests below reads them as the
/// products do.
pub struct Patches {
    /// The sweep described.
    g: Geom,
    /// Where each row `(c, i, j)` starts in the image (before it, for rows that begin in the
    /// padding above).
    offs: Vec<isize>,
    /// Per kernel offset `(i, j)`, one bit per position, 16 to a word (bits past `OH·OW` clear):
    /// set where the position reads a pixel of the image.
    masks: Vec<u16>,
    /// `KH·KW`.
    offsets: usize,
    /// Words per kernel offset: `⌈OH·OW/16⌉`.
    words: usize,
    /// `OH·OW`.
    len: usize,
}

impl Patches {
    /// The description of `g`'s patches, if `g` has stride 1 and keeps the size.
    pub fn new(g: &Geom) -> Option<Patches> {
        if (g.sh, g.sw, g.oh, g.ow) != (1, 1, g.h, g.w) {
            return None;
        }
        let (len, offsets) = (g.positions(), g.kh * g.kw);
        let words = len.div_ceil(16);
        let mut masks = vec![0u16; offsets * words];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let m = &mut masks[(i * g.kw + j) * words..][..words];
                for (t, (oy, ox)) in (0..g.oh)
                    .flat_map(|oy| (0..g.ow).map(move |ox| (oy, ox)))
                    .enumerate()
                {
                    if g.source(oy, ox, i, j).is_some() {
                        m[t / 16] |= 1 << (t % 16);
                    }
                }
            }
        }
        let hw = (g.h * g.w) as isize;
        let offs = (0..g.c)
            .flat_map(|c| (0..g.kh).flat_map(move |i| (0..g.kw).map(move |j| (c, i, j))))
            .map(|(c, i, j)| {
                c as isize * hw + (i as isize - g.ph as isize) * g.w as isize + j as isize
                    - g.pw as isize
            })
            .collect();
        Some(Patches {
            g: *g,
            offs,
            masks,
            offsets,
            words,
            len: g.positions(),
        })
    }

    /// Rows: `C·KH·KW`.
    pub fn rows(&self) -> usize {
        self.offs.len()
    }

    /// Columns (positions): `OH·OW`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no positions (never, for a valid geometry).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Floats of the image it reads: `C·H·W`.
    pub fn image(&self) -> usize {
        self.g.c * self.g.h * self.g.w
    }

    /// Kernel offsets `KH·KW`: row `r` is that of kernel offset `r % (KH·KW)`.
    pub fn offsets(&self) -> usize {
        self.offsets
    }

    /// Where each row starts in the image.
    pub fn offs(&self) -> &[isize] {
        &self.offs
    }

    /// The mask words of kernel offset `o` (see [`Patches::row`]).
    pub fn words(&self, o: usize) -> &[u16] {
        &self.masks[o * self.words..][..self.words]
    }

    /// Where row `r` starts in the image, and its mask words: value `t` of the row is
    /// `x[off + t]` where bit `t % 16` of word `t / 16` is set, else 0. Every set bit's value lies
    /// inside the image.
    pub fn row(&self, r: usize) -> (isize, &[u16]) {
        (self.offs[r], self.words(r % self.offsets))
    }

    /// `cols: [C·KH·KW, OH·OW]` written out from `x`, by [`im2col`].
    pub fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        im2col(&self.g, x, cols)
    }
}

#[cfg(test)]
impl Patches {
    /// The naive twin of [`Patches::im2col`]: each row from its offset under its mask, as the
    /// products read it.
    fn im2col_naive(&self, x: &[f32], cols: &mut [f32]) {
        assert_eq!(cols.len(), self.rows() * self.len);
        for (r, row) in cols.chunks_exact_mut(self.len).enumerate() {
            let (off, masks) = self.row(r);
            for (t, v) in row.iter_mut().enumerate() {
                let kept = masks[t / 16] >> (t % 16) & 1 == 1;
                *v = if kept {
                    x[(off + t as isize) as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

/// `grad_x: [C, H, W] = col2im(grad_cols: [C·KH·KW, OH·OW])`, the adjoint of [`im2col`]; every
/// value of `grad_x` is written (what it held does not matter).
pub fn col2im(g: &Geom, grad_cols: &[f32], grad_x: &mut [f32]) {
    assert_eq!(grad_x.len(), g.c * g.h * g.w);
    assert_eq!(grad_cols.len(), g.patch() * g.positions());
    #[cfg(target_arch = "x86_64")]
    if avx512::takes(g) {
        // SAFETY: AVX-512F is present; the lengths are checked above.
        return unsafe { avx512::col2im(g, grad_cols, grad_x) };
    }
    col2im_scalar(g, grad_cols, grad_x)
}

/// [`col2im`] on any machine, and the twin of its AVX-512 path: zeroes, then adds.
fn col2im_scalar(g: &Geom, grad_cols: &[f32], grad_x: &mut [f32]) {
    grad_x.fill(0.0);
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

/// [`im2col`] and [`col2im`] with AVX-512, for column strides 1 and 2 and rows of at most
/// [`avx512::MAX_STEPS`]` · 16` pixels and positions, kernels at most [`avx512::MAX_KW`] wide.
///
/// Everything that depends only on the kernel column `j` and the sixteen-lane step `t` of a row is
/// worked out once per call: which lanes fall inside the image (a mask), where their pixels start,
/// and at stride 2 which lanes to pick from 32 loaded pixels. What is left per row is a masked load,
/// a lane shuffle at stride 2, and a store: `im2col` stores whole vectors wherever `cols` goes on
/// (the lanes past a row are written again by the next store; masked stores are slow), and `col2im`
/// sums each image row of ∂L/∂x in registers over every (i, j) that reaches it, stores it once, and
/// so never reads back a value it has just stored. The additions are the scalar loop's, in its
/// order, so the results are bit for bit its own.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Geom;
    use std::arch::x86_64::*;

    /// The widest kernel the AVX-512 paths take.
    pub(super) const MAX_KW: usize = 8;
    /// The most sixteen-lane steps per row (output positions for `im2col`, pixels for `col2im`).
    pub(super) const MAX_STEPS: usize = 4;

    /// Whether the AVX-512 paths take `g` (and the machine has AVX-512F).
    pub(super) fn takes(g: &Geom) -> bool {
        g.sw <= 2
            && g.kw <= MAX_KW
            && g.ow.max(g.w) <= 16 * MAX_STEPS
            && std::arch::is_x86_feature_detected!("avx512f")
    }

    /// The lanes `a..b` (`a ≤ b ≤ 16`) of a 16-lane mask.
    fn lanes(a: usize, b: usize) -> u16 {
        let below = |n: usize| ((1u32 << n) - 1) as u16;
        below(b) & !below(a)
    }

    /// One sixteen-lane step of a row: lane `q` reads (im2col) or takes (col2im) element
    /// `off + q·s` of the other side's row, for the lanes of `valid`; `pick` says which lane of the
    /// loaded source goes to lane `q`.
    #[derive(Clone, Copy)]
    struct Step {
        off: isize,
        valid: u16,
        /// The source lanes to load: all of them at stride 1, the range the valid lanes read at 2.
        load: u32,
        pick: __m512i,
    }

    /// The steps of every kernel column of `g`, worked out once per call by `steps`.
    #[target_feature(enable = "avx512f")]
    fn per_column(
        g: &Geom,
        steps: impl Fn(&Geom, usize) -> [Step; MAX_STEPS],
    ) -> [[Step; MAX_STEPS]; MAX_KW] {
        let none = Step {
            off: 0,
            valid: 0,
            load: 0,
            pick: _mm512_setzero_si512(),
        };
        let mut by_j = [[none; MAX_STEPS]; MAX_KW];
        for (j, s) in by_j.iter_mut().enumerate().take(g.kw) {
            *s = steps(g, j);
        }
        by_j
    }

    /// `im2col`'s steps for kernel column `j`: window positions `t..t+16` of an output row read the
    /// input row from column `t·SW + j − PW`.
    #[target_feature(enable = "avx512f")]
    fn im2col_steps(g: &Geom, j: usize) -> [Step; MAX_STEPS] {
        let (lo, hi) = g.inside(j);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let mut steps = [Step {
            off: 0,
            valid: 0,
            load: 0,
            pick: even,
        }; MAX_STEPS];
        for (k, step) in steps.iter_mut().enumerate().take(g.ow.div_ceil(16)) {
            let t = 16 * k;
            let n = 16.min(g.ow - t);
            let (a, b) = (lo.clamp(t, t + n) - t, hi.clamp(t, t + n) - t);
            let valid = lanes(a, b);
            // At stride 2, lanes a..b read pixels 2a ..= 2(b − 1) of the 32 from the first.
            let load = if valid == 0 {
                0
            } else if g.sw == 1 {
                valid as u32
            } else {
                let below = |n: usize| ((1u64 << n) - 1) as u32;
                below(2 * b - 1) & !below(2 * a)
            };
            *step = Step {
                off: (t * g.sw + j) as isize - g.pw as isize,
                valid,
                load,
                pick: even,
            };
        }
        steps
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn im2col(g: &Geom, x: &[f32], cols: &mut [f32]) {
        let l = g.positions();
        let by_j = per_column(g, |g, j| im2col_steps(g, j));
        let count = g.ow.div_ceil(16);
        let end = cols.as_mut_ptr_range().end;
        for (c, plane) in x.chunks_exact(g.h * g.w).enumerate() {
            for i in 0..g.kh {
                for (j, steps) in by_j.iter().enumerate().take(g.kw) {
                    // SAFETY: row (c, i, j) of `cols`, whose length the caller checked.
                    let row = unsafe { cols.as_mut_ptr().add(((c * g.kh + i) * g.kw + j) * l) };
                    for oy in 0..g.oh {
                        let y = (oy * g.sh + i).wrapping_sub(g.ph);
                        let inside = y < g.h;
                        for (k, st) in steps.iter().enumerate().take(count) {
                            // Only valid lanes are read, and they lie inside the plane.
                            let src = plane
                                .as_ptr()
                                .wrapping_offset(y.wrapping_mul(g.w) as isize + st.off);
                            let v = if !inside || st.valid == 0 {
                                _mm512_setzero_ps()
                            } else if g.sw == 1 {
                                unsafe { _mm512_maskz_loadu_ps(st.valid, src) }
                            } else {
                                unsafe {
                                    let a = _mm512_maskz_loadu_ps(st.load as u16, src);
                                    let b = _mm512_maskz_loadu_ps(
                                        (st.load >> 16) as u16,
                                        src.wrapping_add(16),
                                    );
                                    _mm512_maskz_permutex2var_ps(st.valid, a, st.pick, b)
                                }
                            };
                            // SAFETY: positions 16k.. of output row oy in row (c, i, j); a whole
                            // vector only where 16 floats remain in `cols`.
                            unsafe {
                                let dst = row.add(oy * g.ow + 16 * k);
                                if dst.wrapping_add(16) <= end {
                                    _mm512_storeu_ps(dst, v);
                                } else {
                                    let n = 16.min(g.ow - 16 * k);
                                    _mm512_mask_storeu_ps(dst, lanes(0, n), v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `col2im`'s steps for kernel column `j`: pixels `x0..x0+16` of an image row take, from the
    /// row of ∂L/∂cols, position `ox` for every pixel `x = ox·SW + j − PW` among them.
    #[target_feature(enable = "avx512f")]
    fn col2im_steps(g: &Geom, j: usize) -> [Step; MAX_STEPS] {
        // SW is 1 or 2 here: a shift and a mask instead of divisions (this runs per image).
        let (shift, odd, ow) = (g.sw as isize - 1, g.sw as isize - 1, g.ow as isize);
        let mut steps = [Step {
            off: 0,
            valid: 0,
            load: 0,
            pick: _mm512_setzero_si512(),
        }; MAX_STEPS];
        for (k, step) in steps.iter_mut().enumerate().take(g.w.div_ceil(16)) {
            let x0 = 16 * k as isize;
            // The first position whose pixel is at x0 or after.
            let first = (x0 + g.pw as isize - j as isize).max(0);
            let first = (first + odd) >> shift;
            let (mut valid, mut pick, mut last) = (0u16, [0i32; 16], first);
            for q in 0..16.min(g.w as isize - x0) {
                let from = x0 + q + g.pw as isize - j as isize;
                if from >= 0 && from & odd == 0 && from >> shift < ow {
                    valid |= 1 << q;
                    pick[q as usize] = ((from >> shift) - first) as i32;
                    last = from >> shift;
                }
            }
            let load = if valid == 0 {
                0
            } else {
                (1u32 << (last - first + 1)) - 1
            };
            // SAFETY: `pick` holds 16 i32.
            let pick = unsafe { _mm512_loadu_si512(pick.as_ptr().cast()) };
            *step = Step {
                off: first,
                valid,
                load,
                pick,
            };
        }
        steps
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn col2im(g: &Geom, grad_cols: &[f32], grad_x: &mut [f32]) {
        let l = g.positions();
        let by_j = per_column(g, |g, j| col2im_steps(g, j));
        let count = g.w.div_ceil(16);
        for (c, plane) in grad_x.chunks_exact_mut(g.h * g.w).enumerate() {
            // y + PH = q·SH + r, kept up to date row by row (a division per row costs more than
            // the row's additions on small images).
            let (mut q, mut r) = (g.ph / g.sh, g.ph % g.sh);
            for (y, dst) in plane.chunks_exact_mut(g.w).enumerate() {
                let mut acc = [_mm512_setzero_ps(); MAX_STEPS];
                // The kernel rows i that reach image row y, in increasing order (the scalar loop's),
                // each from output row oy = (y + PH − i)/SH: from the last output row at or
                // before q down, i going up by SH.
                let mut oy = q.min(g.oh - 1);
                let mut i = y + g.ph - oy * g.sh;
                while i < g.kh {
                    for (j, steps) in by_j.iter().enumerate().take(g.kw) {
                        let row = &grad_cols[((c * g.kh + i) * g.kw + j) * l + oy * g.ow..][..g.ow];
                        for (a, st) in acc.iter_mut().zip(steps).take(count) {
                            if st.valid == 0 {
                                continue;
                            }
                            // SAFETY: the loaded lanes are positions off.. of this output row,
                            // all below OW.
                            unsafe {
                                let v = _mm512_maskz_loadu_ps(
                                    st.load as u16,
                                    row.as_ptr().offset(st.off),
                                );
                                let e = _mm512_permutexvar_ps(st.pick, v);
                                *a = _mm512_mask_add_ps(*a, st.valid, *a, e);
                            }
                        }
                    }
                    if oy == 0 {
                        break;
                    }
                    (oy, i) = (oy - 1, i + g.sh);
                }
                r += 1;
                if r == g.sh {
                    (q, r) = (q + 1, 0);
                }
                for (k, a) in acc.iter().enumerate().take(count) {
                    let n = 16.min(g.w - 16 * k);
                    // SAFETY: pixels 16k..16k+n of this row.
                    unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(16 * k), lanes(0, n), *a) };
                }
            }
        }
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

    /// The AVX-512 paths give the scalar loops' results bit for bit: every case above, plus rows of
    /// 14, 16, 17, 28, 33 and 64 positions and pixels, padding up to 3, kernels 1 to 8 wide; their
    /// outputs are poisoned beforehand, so every value must be written.
    #[test]
    fn avx512_paths_match_the_scalar_twins() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                eprintln!("no AVX-512F on this machine: nothing to compare");
                return;
            }
            let more: &[Case] = &[
                (32, 14, 14, (3, 3), (1, 1), (1, 1)),
                (1, 28, 28, (3, 3), (1, 1), (1, 1)),
                (8, 13, 13, (3, 3), (2, 2), (0, 0)),
                (2, 6, 16, (2, 5), (1, 2), (0, 2)),
                (2, 5, 17, (3, 8), (2, 1), (1, 3)),
                (1, 3, 33, (3, 3), (1, 2), (1, 1)),
                (1, 4, 64, (1, 1), (1, 1), (0, 0)),
                (3, 9, 62, (4, 3), (3, 2), (2, 2)),
            ];
            let mut checked = 0;
            for (n, &(c, h, w, k, s, p)) in CASES.iter().chain(more).enumerate() {
                let g = Geom::new(c, h, w, k, s, p).unwrap();
                if !avx512::takes(&g) {
                    continue;
                }
                checked += 1;
                let x = random(c * h * w, n as u64);
                let (mut fast, mut slow) = (
                    vec![f32::NAN; g.patch() * g.positions()],
                    vec![0.0; g.patch() * g.positions()],
                );
                unsafe { avx512::im2col(&g, &x, &mut fast) };
                im2col_scalar(&g, &x, &mut slow);
                assert_eq!(
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "im2col {g:?}"
                );
                let gc = random(fast.len(), 70 + n as u64);
                // Poisoned: every value must be written.
                let (mut fast, mut slow) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
                unsafe { avx512::col2im(&g, &gc, &mut fast) };
                col2im_scalar(&g, &gc, &mut slow);
                assert_eq!(
                    fast.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    slow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "col2im {g:?}"
                );
            }
            assert!(checked >= 12, "only {checked} cases took the AVX-512 paths");
        }
    }

    /// Patches described (stride 1, size kept) and read as the products read them give what
    /// im2col writes, bit for bit; other geometries have no description.
    #[test]
    fn described_patches_are_im2cols() {
        for (n, &(c, h, w, k, p)) in [
            (2, 7, 9, (3, 3), (1, 1)),
            (3, 28, 28, (3, 3), (1, 1)),
            (1, 5, 6, (5, 3), (2, 1)),
            (2, 4, 17, (1, 1), (0, 0)),
        ]
        .iter()
        .enumerate()
        {
            let g = Geom::new(c, h, w, k, (1, 1), p).unwrap();
            let patches = Patches::new(&g).unwrap();
            assert_eq!((patches.rows(), patches.len()), (g.patch(), g.positions()));
            let x = random(c * h * w, n as u64);
            let (mut want, mut got) = (
                vec![0.0; g.patch() * g.positions()],
                vec![f32::NAN; g.patch() * g.positions()],
            );
            im2col(&g, &x, &mut want);
            patches.im2col_naive(&x, &mut got);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{g:?}"
            );
        }
        for (k, s, p) in [((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (0, 0))] {
            assert!(Patches::new(&Geom::new(2, 8, 8, k, s, p).unwrap()).is_none());
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
