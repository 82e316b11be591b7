//! `MaxPool2d(kernel_size, stride=kernel_size, padding=0)`, as `torch.nn.MaxPool2d`.

use super::pool::Window;
use super::{Activation, Layer, Mode, ReLU, no_forward};
use crate::error::Result;
use crate::kernels::im2col::Geom;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::fmt;

/// `y[n, c, oy, ox] = max` of the window of `x[n, c]` at `(oy, ox)`; padding never wins.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, OH, OW]`, `OH = ⌊(H + 2·PH − KH)/SH⌋ + 1`.
///
/// A ReLU just before it can be taken over ([`MaxPool2d::take_relu`]): every value then goes through
/// `ReLU` as it is loaded (in registers on the AVX-512 2×2 path, plane by plane in place elsewhere),
/// and a window whose max is not above 0 passes no gradient back (ReLU's derivative there is 0).
/// That is `MaxPool2d(ReLU(x))` and its gradient, without the ReLU's own two passes over the batch.
///
/// A convolution just before it can in turn run it image by image (`Conv2d::run_pool`,
/// [`PoolSpec`]); this layer is then skipped. Which of these happen, `layers::plan` decides.
pub struct MaxPool2d {
    window: Window,
    /// Whether the input goes through `ReLU` first (a ReLU taken over from the layer before).
    relu: bool,
    /// The input shape of the last forward and, per output, the flat index in its plane of the max.
    argmax: Option<(Vec<usize>, Vec<u32>)>,
    spare: Tensor,
}

impl MaxPool2d {
    /// A max pool; `stride` is usually the kernel size.
    pub fn new(window: Window) -> Self {
        MaxPool2d {
            window,
            relu: false,
            argmax: None,
            spare: Tensor::default(),
        }
    }

    /// The window it slides.
    pub fn window(&self) -> Window {
        self.window
    }

    /// From now on, runs `MaxPool2d(ReLU(x))` and its gradient for the ReLU just before it, which
    /// is then skipped (a fusion `layers::plan` decides).
    pub(crate) fn take_relu(&mut self) {
        self.relu = true;
    }

    /// The pool as the layer before it can run it, with the ReLU it took over if any.
    pub(crate) fn spec(&self) -> PoolSpec {
        PoolSpec {
            window: self.window,
            relu: self.relu,
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

    fn forward(&mut self, mut x: Tensor, _mode: Mode) -> Result<Tensor> {
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
        let relu = self.relu;
        y.data_mut()
            .par_chunks_mut(out)
            .zip(argmax.par_chunks_mut(out))
            .zip(x.data_mut().par_chunks_mut(plane))
            .for_each(|((y, am), xp)| pool_plane(&g, xp, y, am, relu));
        self.argmax = Some((x.shape().to_vec(), argmax));
        self.spare = x;
        Ok(y)
    }

    /// ∂L/∂x[argmax of each window] += ∂L/∂y of that window (unless its max was cut to 0 by a
    /// ReLU taken over); 0 elsewhere.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let (shape, argmax) = self.argmax.take().ok_or_else(|| no_forward(self))?;
        let g = self
            .window
            .geom(&shape[1..])
            .expect("the shape of a forward");
        let (plane, out) = (g.h * g.w, g.oh * g.ow);
        let tiles = tiles(&g);
        // Every plane is written whole (see `unpool_plane`).
        let mut grad_x = Tensor::reuse(std::mem::take(&mut self.spare), &shape);
        grad_x
            .data_mut()
            .par_chunks_mut(plane)
            .zip(grad_y.data().par_chunks(out))
            .zip(argmax.par_chunks(out))
            .for_each(|((gx, gy), am)| unpool_plane(&g, gy, am, gx, tiles));
        self.argmax = Some((shape, argmax));
        self.spare = grad_y;
        Ok(grad_x)
    }
}

/// A max pool as the layer before it runs it for its own output (see `Conv2d::run_pool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// The pool's window.
    pub window: Window,
    /// Whether its input goes through `ReLU` first (a ReLU it took over).
    pub relu: bool,
}

impl PoolSpec {
    /// The geometry of the pool over one image `[C, H, W]`, if the window fits.
    pub fn geom(&self, c: usize, h: usize, w: usize) -> Option<Geom> {
        self.window.geom(&[c, h, w])
    }

    /// The pooled image `y: [C, OH, OW]` and its argmax from one image `x: [C, H, W]` (which may
    /// be overwritten), as [`MaxPool2d::forward`] does for each of its images.
    pub fn forward_image(&self, g: &Geom, x: &mut [f32], y: &mut [f32], am: &mut [u32]) {
        let (plane, out) = (g.h * g.w, g.oh * g.ow);
        let planes = x.chunks_exact_mut(plane).zip(y.chunks_exact_mut(out));
        for ((xp, yp), ap) in planes.zip(am.chunks_exact_mut(out)) {
            pool_plane(g, xp, yp, ap, self.relu);
        }
    }

    /// `gx: [C, H, W]`, all of it, from the gradient `gy` of one pooled image and its argmax, as
    /// [`MaxPool2d::backward`] does for each of its images.
    pub fn backward_image(&self, g: &Geom, gy: &[f32], am: &[u32], gx: &mut [f32]) {
        let (plane, out) = (g.h * g.w, g.oh * g.ow);
        let tiles = tiles(g);
        let planes = gx.chunks_exact_mut(plane).zip(gy.chunks_exact(out));
        for ((gxp, gyp), ap) in planes.zip(am.chunks_exact(out)) {
            unpool_plane(g, gyp, ap, gxp, tiles);
        }
    }
}

/// Whether the windows of `g` tile each plane and this machine has the AVX-512 path that writes a
/// whole plane of ∂L/∂x from them (with no zeroing first).
fn tiles(g: &Geom) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        two_by_two(g)
            && (g.h, g.w) == (2 * g.oh, 2 * g.ow)
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = g;
        false
    }
}

/// All of ∂L/∂x of one plane from its windows' gradients (what `gx` held does not matter): written
/// window by window where the windows `tiles` (see [`tiles`]), else zeroed and added into.
fn unpool_plane(g: &Geom, gy: &[f32], am: &[u32], gx: &mut [f32], tiles: bool) {
    #[cfg(target_arch = "x86_64")]
    if tiles {
        // SAFETY: `tiles` saw AVX-512F; the kernel checks its slice bounds.
        return unsafe { avx512::unpool_2x2(g, gy, am, gx) };
    }
    let _ = (g, tiles);
    gx.fill(0.0);
    unpool(gy, am, gx)
}

/// Whether `g` is a 2×2 window at stride 2 without padding (every pool of the presets), which has
/// fast paths.
fn two_by_two(g: &Geom) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (2, 2, 2, 2, 0, 0)
}

/// `gx[argmax of each window] += gy of that window`, into a zeroed plane `gx`; a window cut by a
/// ReLU taken over adds 0.
fn unpool(gy: &[f32], am: &[u32], gx: &mut [f32]) {
    for (&g, &i) in gy.iter().zip(am) {
        // Selects, not a branch (a cut max is a coin toss).
        let cut = i & NO_GRADIENT != 0;
        gx[(i & !NO_GRADIENT) as usize] += if cut { 0.0 } else { g };
    }
}

/// The bit set on the argmax of a window that passes no gradient back (its max was cut to 0 by a
/// ReLU); plane indices stay below 2^28.
const NO_GRADIENT: u32 = 1 << 31;

/// Max and flat argmax of every window of one channel plane `xp: [H, W]` into `y`, `am: [OH, OW]`.
///
/// 2×2 windows at stride 2 without padding (every pool of the presets) take a fast path: four loads
/// and three selects, no bounds arithmetic, sixteen windows per step where AVX-512 is present; a
/// window holding a NaN goes to [`window_max`], its twin.
///
/// With `relu`, the windows are those of `ReLU(xp)` (`xp` may be overwritten with it), and a window
/// whose max is not above 0 gets [`NO_GRADIENT`] set on its argmax.
fn pool_plane(g: &Geom, xp: &mut [f32], y: &mut [f32], am: &mut [u32], relu: bool) {
    windows(g, xp, y, am, relu);
    if relu {
        // ReLU′ is 0 at the window's max: no gradient goes back through it. (A select, not a
        // branch: whether a max is 0 is a coin toss on real data.)
        for (v, a) in y.iter().zip(am.iter_mut()) {
            *a |= if *v > 0.0 { 0 } else { NO_GRADIENT };
        }
    }
}

/// The max and argmax of every window of `xp` (of `ReLU(xp)` with `relu`), as [`pool_plane`].
fn windows(g: &Geom, xp: &mut [f32], y: &mut [f32], am: &mut [u32], relu: bool) {
    let two_by_two = two_by_two(g);
    #[cfg(target_arch = "x86_64")]
    if two_by_two && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present; the kernel checks its slice bounds.
        return unsafe { avx512::pool_2x2(g, xp, y, am, relu) };
    }
    if relu {
        xp.iter_mut().for_each(|v| *v = ReLU.f(*v));
    }
    let window = if two_by_two { window_2x2 } else { window_max };
    for o in 0..g.oh * g.ow {
        let (best, at) = window(g, xp, o / g.ow, o % g.ow);
        (y[o], am[o]) = (best, at as u32);
    }
}

/// Window `(oy, ox)` of a 2×2, stride-2 pool: the first of `x[r], x[r+1], x[r+W], x[r+W+1]` that is
/// larger than all before it.
fn window_2x2(g: &Geom, xp: &[f32], oy: usize, ox: usize) -> (f32, usize) {
    let r = 2 * oy * g.w + 2 * ox;
    let (mut best, mut at) = (xp[r], r);
    let mut nan = best.is_nan();
    for k in [r + 1, r + g.w, r + g.w + 1] {
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
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Geom, window_max};
    use std::arch::x86_64::*;

    /// [`super::window_2x2`] for sixteen windows at a time: the top and bottom input rows of the
    /// windows are loaded as two 16-float halves `a`, `b` each and split into even and odd columns,
    /// then the max of the four and the first of them equal to it are taken lane-wise. A step is
    /// sixteen windows of one output row (`b` continues `a`), or, when rows are at most 8 windows
    /// wide, one row in lanes 0..8 and the next in lanes 8..16 (`b` is two input rows on), packed
    /// together before the stores. Steps with a NaN go to [`window_max`] window by window.
    ///
    /// With `relu`, each loaded vector goes through `max(v, 0)`, which is `ReLU::f` lane by lane (0
    /// for NaN and for either zero), so no NaN is left to find.
    #[target_feature(enable = "avx512f")]
    pub(super) fn pool_2x2(g: &Geom, xp: &[f32], y: &mut [f32], am: &mut [u32], relu: bool) {
        assert!(2 * g.oh * g.w <= xp.len() && g.oh * g.ow <= y.len().min(am.len()));
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let zero = _mm512_setzero_ps();
        let below = |n: usize| ((1u32 << n) - 1) as u16;
        let pair = g.ow <= 8;
        for oy in (0..g.oh).step_by(if pair { 2 } else { 1 }) {
            let r0 = 2 * oy * g.w;
            for ox in (0..g.ow).step_by(16) {
                // Where a and b start, the floats each holds, the valid lanes, and how many
                // windows the step has.
                let (a0, b0, fa, fb, valid, n) = if pair {
                    let next = usize::from(oy + 1 < g.oh);
                    let (rows, n) = (below(g.ow), g.ow * (1 + next));
                    let valid = rows | if next == 1 { rows << 8 } else { 0 };
                    (r0, r0 + 2 * g.w, 2 * g.ow, 2 * g.ow * next, valid, n)
                } else {
                    let n = 16.min(g.ow - ox);
                    let two = 2 * n;
                    (
                        r0 + 2 * ox,
                        r0 + 2 * ox + 16,
                        two.min(16),
                        two.saturating_sub(16),
                        below(n),
                        n,
                    )
                };
                let split = |row: usize| {
                    // SAFETY: whole loads only where 16 floats remain in the plane, else the masks
                    // keep them within the windows' columns (checked above).
                    let load = |at: usize, floats: usize| unsafe {
                        if at + 16 <= xp.len() {
                            _mm512_loadu_ps(xp.as_ptr().add(at))
                        } else {
                            _mm512_maskz_loadu_ps(below(floats), xp.as_ptr().add(at))
                        }
                    };
                    let (a, b) = (load(a0 + row, fa), load(b0 + row, fb));
                    let (a, b) = if relu {
                        (_mm512_max_ps(a, zero), _mm512_max_ps(b, zero))
                    } else {
                        (a, b)
                    };
                    (
                        _mm512_permutex2var_ps(a, even, b),
                        _mm512_permutex2var_ps(a, odd, b),
                    )
                };
                let (v0, v1) = split(0);
                let (v2, v3) = split(g.w);
                let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v1)
                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v2, v3);
                let out = oy * g.ow + ox;
                if nan & valid != 0 {
                    for o in out..out + n {
                        let (best, at) = window_max(g, xp, o / g.ow, o % g.ow);
                        (y[o], am[o]) = (best, at as u32);
                    }
                    continue;
                }
                // The max of the four (no NaN here), then the first of them equal to it, picked
                // last to first: a tree and independent compares rather than a chain of selects.
                let top = _mm512_max_ps(_mm512_max_ps(v0, v1), _mm512_max_ps(v2, v3));
                let (mut best, mut off) = (v3, _mm512_set1_epi32(g.w as i32 + 1));
                for (v, k) in [(v2, g.w as i32), (v1, 1), (v0, 0)] {
                    let first = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, top);
                    best = _mm512_mask_mov_ps(best, first, v);
                    off = _mm512_mask_mov_epi32(off, first, _mm512_set1_epi32(k));
                }
                // at = a0 + 2·lane (lanes 0..8), b0 + 2·(lane − 8) (lanes 8..16), + off
                let base =
                    _mm512_add_epi32(_mm512_set1_epi32(a0 as i32), _mm512_slli_epi32::<1>(lanes));
                let base = _mm512_mask_add_epi32(
                    base,
                    0xFF00,
                    base,
                    _mm512_set1_epi32(b0 as i32 - a0 as i32 - 16),
                );
                let mut at = _mm512_add_epi32(base, off);
                if pair {
                    // The next row's windows follow this row's in the output.
                    best = _mm512_maskz_compress_ps(valid, best);
                    at = _mm512_maskz_compress_epi32(valid, at);
                }
                // SAFETY: `out + n ≤ OH·OW`, within both outputs (checked above); whole vectors
                // only where all 16 lanes are. Lanes past the step's `n` land on windows that
                // later steps write again (masked stores are slow).
                unsafe {
                    let (yp, ap) = (y.as_mut_ptr().add(out), am.as_mut_ptr().add(out).cast());
                    if out + 16 <= g.oh * g.ow {
                        _mm512_storeu_ps(yp, best);
                        _mm512_storeu_epi32(ap, at);
                    } else {
                        _mm512_mask_storeu_ps(yp, below(n), best);
                        _mm512_mask_storeu_epi32(ap, below(n), at);
                    }
                }
            }
        }
    }

    /// [`super::unpool`] for 2×2 windows that tile the plane (`H = 2·OH`, `W = 2·OW`), writing all
    /// of `gx` (no zeroing first): for sixteen windows of an output row, each of the four pixels
    /// of a window takes the window's gradient where it is the argmax and 0 elsewhere, and the
    /// pixels are interleaved back into the two input rows. A cut window matches no pixel.
    #[target_feature(enable = "avx512f")]
    pub(super) fn unpool_2x2(g: &Geom, gy: &[f32], am: &[u32], gx: &mut [f32]) {
        let out = g.oh * g.ow;
        assert!(gy.len() >= out && am.len() >= out && gx.len() == 4 * out);
        assert!((g.h, g.w) == (2 * g.oh, 2 * g.ow));
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Lanes 0..8 (8..16) of the top-left and top-right pixels, alternating: the first (second)
        // 16 floats of the row.
        let first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
        let end = gx.as_mut_ptr_range().end;
        for oy in 0..g.oh {
            let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
            for ox in (0..g.ow).step_by(16) {
                let n = 16.min(g.ow - ox);
                let m = ((1u32 << n) - 1) as u16;
                // SAFETY: windows ox..ox+n of output row oy, inside both (checked above).
                let (v, at) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(m, gy.as_ptr().add(oy * g.ow + ox)),
                        _mm512_maskz_loadu_epi32(m, am.as_ptr().add(oy * g.ow + ox).cast()),
                    )
                };
                let top_left = _mm512_add_epi32(
                    _mm512_set1_epi32((r0 + 2 * ox) as i32),
                    _mm512_slli_epi32::<1>(lanes),
                );
                let pixel = |k: i32| {
                    let here = _mm512_add_epi32(top_left, _mm512_set1_epi32(k));
                    _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, here), v)
                };
                let w = g.w as i32;
                for (row, (a, b), spill_ok) in [
                    // The top row may spill only into the bottom row, written next.
                    (r0, (pixel(0), pixel(1)), n == 16 || ox == 0),
                    // The bottom row spills into the next output row's rows, written later.
                    (r1, (pixel(w), pixel(w + 1)), true),
                ] {
                    let lo = _mm512_permutex2var_ps(a, first, b);
                    let hi = _mm512_permutex2var_ps(a, second, b);
                    // SAFETY: pixels 2·ox.. of input row `row`; whole vectors only where 32
                    // floats remain in the plane and what they spill over is written later.
                    unsafe {
                        let dst = gx.as_mut_ptr().add(row + 2 * ox);
                        if spill_ok && dst.wrapping_add(32) <= end {
                            _mm512_storeu_ps(dst, lo);
                            _mm512_storeu_ps(dst.add(16), hi);
                        } else {
                            let both = (1u64 << (2 * n)) - 1;
                            _mm512_mask_storeu_ps(dst, both as u16, lo);
                            _mm512_mask_storeu_ps(dst.add(16), (both >> 16) as u16, hi);
                        }
                    }
                }
            }
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
        // Odd width 37 (the last column is dropped), 18 windows per row: one full vector block and
        // a partial one; and rows of 7, 8 and 3 windows, two rows per step, an odd number of rows
        // (a last step of one row) and odd sizes, so that whole-vector stores spill over the next
        // rows. NaNs and ties in some blocks, none in others.
        for (h, w) in [(7, 37), (14, 14), (16, 16), (9, 17), (6, 6)] {
            let g = Geom::new(1, h, w, (2, 2), (2, 2), (0, 0)).unwrap();
            let mut xp: Vec<f32> = (0..h * w)
                .map(|i| ((i * 37) % 11 / 3) as f32 - 2.0)
                .collect();
            xp[9] = f32::NAN;
            xp[20] = f32::NEG_INFINITY;
            xp[2 * w + 35 % w] = f32::NAN;
            let out = g.oh * g.ow;
            // Poisoned outputs: every window must be written.
            let (mut y, mut am) = (vec![f32::INFINITY; out], vec![u32::MAX; out]);
            pool_plane(&g, &mut xp.clone(), &mut y, &mut am, false);
            for (o, (v, a)) in y.iter().zip(&am).enumerate() {
                let (want, at) = window_max(&g, &xp, o / g.ow, o % g.ow);
                assert!(
                    v.to_bits() == want.to_bits() && *a as usize == at,
                    "{h}×{w}, window {o}: {v} at {a}, want {want} at {at}"
                );
                // The scalar path too, which machines without AVX-512 take.
                let (v, a) = window_2x2(&g, &xp, o / g.ow, o % g.ow);
                assert!(
                    v.to_bits() == want.to_bits() && a == at,
                    "{h}×{w}, window {o}"
                );
            }
            // With a ReLU taken over: the windows of ReLU(x), and no gradient where the max is 0.
            let relu: Vec<f32> = xp.iter().map(|&v| ReLU.f(v)).collect();
            let (mut y, mut am) = (vec![f32::INFINITY; out], vec![0; out]);
            pool_plane(&g, &mut xp.clone(), &mut y, &mut am, true);
            for (o, (v, a)) in y.iter().zip(&am).enumerate() {
                let (want, at) = window_max(&g, &relu, o / g.ow, o % g.ow);
                let at = at as u32 | if want > 0.0 { 0 } else { NO_GRADIENT };
                assert!(
                    v.to_bits() == want.to_bits() && *a == at,
                    "{h}×{w} after ReLU, window {o}: {v} at {a}, want {want} at {at}"
                );
            }
        }
    }

    #[test]
    fn whole_plane_unpooling_matches_the_scatter() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                eprintln!("no AVX-512F on this machine: nothing to compare");
                return;
            }
            // One step per row (7, 14 windows), one full and one partial (20), two full (32), and a
            // single row of windows; with and without a ReLU taken over (cut windows).
            for (h, w) in [(14, 14), (28, 28), (4, 40), (6, 64), (2, 6)] {
                for relu in [false, true] {
                    let g = Geom::new(1, h, w, (2, 2), (2, 2), (0, 0)).unwrap();
                    let mut xp: Vec<f32> =
                        (0..h * w).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
                    let out = g.oh * g.ow;
                    let (mut y, mut am) = (vec![0.0; out], vec![0; out]);
                    pool_plane(&g, &mut xp, &mut y, &mut am, relu);
                    let gy: Vec<f32> = (0..out).map(|i| i as f32 + 1.0).collect();
                    let mut want = vec![0.0; h * w];
                    unpool(&gy, &am, &mut want);
                    // Poisoned: every pixel must be written.
                    let mut got = vec![f32::NAN; h * w];
                    unsafe { avx512::unpool_2x2(&g, &gy, &am, &mut got) };
                    assert_eq!(got, want, "{h}×{w}, relu {relu}");
                }
            }
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
