//! Matrix products: [`matmul`] (and [`matmul_serial`] for callers that spread their own work over
//! the cores), over an AVX-512 kernel of our own, or the `gemm` crate where AVX-512 is missing; and
//! the naive twin for tests.
//!
//! Why our own kernel: `gemm` 0.19 on stable Rust only has AVX2 micro-kernels (its AVX-512 ones need
//! the `nightly` feature), so on an AVX-512 machine it leaves half of every FMA unused. Measured side
//! by side on one core (`cargo bench --bench gemm`, noisy shared machine, criterion medians):
//! 50×784×512 (mlp fc1 forward) 77 vs 54 GFLOP/s, 512×50×784 (its ∂W) 120 vs 80, 1024³ 89 vs 54.
//!
//! The kernel is the classic packed one (Goto/BLIS): `op(B)` is copied into panels of `NR = 32`
//! columns and `op(A)` into panels of `MR = 12` rows, both `k`-major, so that the micro-kernel streams
//! both with unit stride and keeps a `12×32` tile of C in 24 of the 32 vector registers. An operand
//! stored the other way round is packed through 16×16 transposes in registers. Two shapes leave
//! the packed loops: a small C over a long depth with both operands contiguous along it (`A·Bᵀ`,
//! a first conv's ∂L/∂W) is computed as dot products with nothing packed, and a narrow C as its
//! transpose. [`PackedA`] packs an `A` once for many products (a conv's weights, one per image).
//!
//! Threads: at batch 50 the matrices are small, and cutting one product in many pieces costs more than
//! it saves. What pays is to cut the output in two halves (along whichever of `m`, `n` is longer,
//! on tile boundaries) and give each core one single-threaded product: the halves share nothing.
//! The thread count must never change a bit of the result. Our kernel picks its path (dot products,
//! packed, or a narrow C computed transposed) for the whole product, and each path sums every
//! element in the same order however C is cut, so it cuts only when a second thread can take the
//! half. The `gemm` crate picks its block sizes from the shape it is given, so a half is summed in
//! another order than the whole: with it, a product is cut by its size alone, even on one thread.

use super::im2col::Patches;
use gemm::Parallelism;
use std::cell::RefCell;

/// How a stored matrix is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// As stored, row-major.
    N,
    /// Transposed: stored row-major as `[cols, rows]` of the operand it stands for.
    T,
}

/// Products smaller than this many multiply-adds run on one core: splitting costs more than it saves.
const SPLIT_MIN_WORK: usize = 1 << 17;

/// `C[m×n] = (accumulate ? C : 0) + op(A)[m×k] · op(B)[k×n]`, all row-major.
///
/// `a` holds `op(A)` stored as `[m, k]` (`Op::N`) or `[k, m]` (`Op::T`); likewise `b` as `[k, n]` or
/// `[n, k]`. Cuts the product in two rayon tasks when it is large enough (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    let split = m * n * k >= SPLIT_MIN_WORK;
    product(c, a, ta, b, tb, m, k, n, accumulate, split, kernel());
}

/// [`matmul`] on the calling thread only: for callers that already run one product per core.
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    product(c, a, ta, b, tb, m, k, n, accumulate, false, kernel());
}

/// `op(A)` packed once for many products that share it (a convolution's weights, one product per
/// image): [`matmul_packed_a`] skips packing it each time. Holds the packed panels where our kernel
/// runs, else a plain copy for the `gemm` crate.
#[derive(Default)]
pub struct PackedA {
    buf: Vec<Line>,
    m: usize,
    k: usize,
}

impl PackedA {
    /// Packs `op(A)`: `a` stored as `[m, k]` (`Op::N`) or `[k, m]` (`Op::T`), reusing the buffer.
    pub fn pack(&mut self, a: &[f32], ta: Op, m: usize, k: usize) {
        assert_eq!(a.len(), m * k, "PackedA: A is not [{m}×{k}]");
        (self.m, self.k) = (m, k);
        let dst = floats(&mut self.buf, m * k);
        match kernel() {
            // SAFETY: AVX-512F is present; `dst` holds m·k floats, `a` is checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe {
                avx512::pack_all_a(dst, Strided::new(a.as_ptr(), ta, m, k), m, k)
            },
            // The gemm crate packs for itself: keep op(A) as a row-major [m, k].
            _ => {
                // SAFETY: `dst` holds m·k floats.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst, m * k) };
                for (i, row) in dst.chunks_exact_mut(k.max(1)).enumerate().take(m) {
                    for (l, v) in row.iter_mut().enumerate() {
                        *v = match ta {
                            Op::N => a[i * k + l],
                            Op::T => a[l * m + i],
                        };
                    }
                }
            }
        }
    }
}

/// [`matmul_serial`] with `op(A)` packed beforehand: `C[m×n] = (accumulate ? C : 0) + A·op(B)`.
pub fn matmul_packed_a(c: &mut [f32], a: &PackedA, b: &[f32], tb: Op, n: usize, accumulate: bool) {
    let (m, k) = (a.m, a.k);
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(b.len(), k * n, "matmul: B is not [{k}×{n}]");
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let packed: *const f32 = a.buf.as_ptr().cast();
    match kernel() {
        // SAFETY: AVX-512F is present; the slices are checked above, `a` holds m·k packed floats.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe {
            let b = Strided::new(b.as_ptr(), tb, k, n);
            // B as stored is read in place (see `avx512::Rhs::InPlace`); transposed, it is packed.
            let b = match tb {
                Op::N => avx512::Rhs::InPlace(b),
                Op::T => avx512::Rhs::Raw(b),
            };
            avx512::packed(
                c.as_mut_ptr(),
                n,
                avx512::Lhs::Packed(packed),
                b,
                m,
                k,
                n,
                accumulate,
            )
        },
        _ => {
            // SAFETY: `a` holds op(A) as a row-major [m, k] (see `PackedA::pack`).
            let a = unsafe { std::slice::from_raw_parts(packed, m * k) };
            matmul_serial(c, a, Op::N, b, tb, m, k, n, accumulate)
        }
    }
}

thread_local! {
    /// Patches written out, where our AVX-512 kernel is missing (see [`written`]).
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f(cols)` with the patches of image `x` written out, where the kernel cannot read them in
/// place.
fn written(x: &[f32], patches: &Patches, f: impl FnOnce(&[f32])) {
    COLS.with_borrow_mut(|cols| {
        cols.resize(patches.rows() * patches.len(), 0.0);
        patches.im2col(x, cols);
        f(cols)
    })
}

/// [`matmul_packed_a`] with B a convolution's patches of image `x`, read from the image as
/// `patches` describes them (never written out): `C[m×L] = (accumulate ? C : 0) + A·cols`.
pub fn matmul_packed_a_patches(
    c: &mut [f32],
    a: &PackedA,
    x: &[f32],
    patches: &Patches,
    accumulate: bool,
) {
    let (m, k, n) = (a.m, a.k, patches.len());
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(
        k,
        patches.rows(),
        "matmul: A is not [{m}×{}]",
        patches.rows()
    );
    assert_eq!(
        x.len(),
        patches.image(),
        "matmul: the image is not the patches'"
    );
    match kernel() {
        // SAFETY: AVX-512F is present; C is checked above, A holds m·k packed floats, and the
        // description's masks keep only values inside the image, which is checked.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if m > 0 && n > 0 && k > 0 => unsafe {
            let a = avx512::Lhs::Packed(a.buf.as_ptr().cast());
            let b = avx512::Rhs::Patches(x.as_ptr(), patches);
            avx512::packed(c.as_mut_ptr(), n, a, b, m, k, n, accumulate)
        },
        _ => written(x, patches, |cols| {
            matmul_packed_a(c, a, cols, Op::N, n, accumulate)
        }),
    }
}

/// `C[m×P] = (accumulate ? C : 0) + A·colsᵀ`, `A: [m, L]` row-major and `cols: [P, L]` the
/// patches of image `x` read from it as `patches` describes them: a convolution's ∂L/∂W from
/// ∂L/∂Y. By dot products, as [`matmul_serial`] takes `A·colsᵀ` written out when its depth `L`
/// is long enough; else (and where our AVX-512 kernel is missing) the patches are written out
/// for [`matmul_serial`].
pub fn matmul_patches_t(
    c: &mut [f32],
    a: &[f32],
    m: usize,
    x: &[f32],
    patches: &Patches,
    accumulate: bool,
) {
    let (k, n) = (patches.len(), patches.rows());
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(a.len(), m * k, "matmul: A is not [{m}×{k}]");
    assert_eq!(
        x.len(),
        patches.image(),
        "matmul: the image is not the patches'"
    );
    #[cfg(target_arch = "x86_64")]
    if kernel() == Kernel::Avx512 && m > 0 && n > 0 {
        let a = Strided::new(a.as_ptr(), Op::N, m, k);
        let cols_t = Strided::new(std::ptr::null(), Op::T, k, n);
        if avx512::path(a, cols_t, m, k, n) == avx512::Path::Dots {
            let b = avx512::PatchRows {
                x: x.as_ptr(),
                patches,
            };
            // SAFETY: AVX-512F is present; C and A are checked above, and the description's
            // masks keep only values inside the image, which is checked.
            return unsafe { avx512::dots(c.as_mut_ptr(), n, a, b, m, k, n, accumulate) };
        }
    }
    written(x, patches, |cols| {
        matmul_serial(c, a, Op::N, cols, Op::T, m, k, n, accumulate)
    })
}

/// Which single-threaded kernel computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Ours, packed, AVX-512 (x86-64 with `avx512f` only).
    Avx512,
    /// The `gemm` crate with `Parallelism::None`.
    GemmCrate,
}

/// The kernel [`matmul`] uses on this machine.
pub fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return Kernel::Avx512;
    }
    Kernel::GemmCrate
}

/// [`matmul`] with the kernel and the two-way split chosen by the caller (for benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    kernel: Kernel,
    split: bool,
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    product(c, a, ta, b, tb, m, k, n, accumulate, split, kernel);
}

#[allow(clippy::too_many_arguments)]
fn product(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    split: bool,
    kernel: Kernel,
) {
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(a.len(), m * k, "matmul: A is not [{m}×{k}]");
    assert_eq!(b.len(), k * n, "matmul: B is not [{k}×{n}]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    assert!(kernel == Kernel::GemmCrate || std::arch::is_x86_feature_detected!("avx512f"));
    let a = Strided::new(a.as_ptr(), ta, m, k);
    let b = Strided::new(b.as_ptr(), tb, k, n);
    let c = SendPtr(c.as_mut_ptr(), n);
    // Our kernel's path is that of the whole product, whichever part of it a call computes.
    #[cfg(target_arch = "x86_64")]
    let path = avx512::path(a, b, m, k, n);
    let split = split
        && match kernel {
            Kernel::GemmCrate => true,
            Kernel::Avx512 => rayon::current_num_threads() > 1,
        };
    let one = move |c: SendPtr, a: Strided, b: Strided, m: usize, n: usize| {
        // SAFETY: the caller hands each call a disjoint block of C inside the checked slices.
        unsafe {
            match kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => avx512::product(path, c.0, c.1, a, b, m, k, n, accumulate),
                _ => gemm_crate(c, a, b, m, k, n, accumulate),
            }
        }
    };
    // SAFETY: the two halves write disjoint parts of C; pointers stay inside the checked slices.
    unsafe {
        if !split {
            one(c, a, b, m, n);
        } else if n >= m && n >= 2 * NR {
            let h = (n / 2).next_multiple_of(NR).min(n);
            rayon::join(
                || one(c, a, b, m, h),
                || one(c.add(h), a, b.cols_from(h), m, n - h),
            );
        } else if m >= 2 * MR {
            let h = (m / 2).next_multiple_of(MR).min(m);
            rayon::join(
                || one(c, a, b, h, n),
                || one(c.add(h * n), a.rows_from(h), b, m - h, n),
            );
        } else {
            one(c, a, b, m, n);
        }
    }
}

/// Rows of a micro-tile.
const MR: usize = 12;
/// Columns of a micro-tile: two 16-lane vectors.
const NR: usize = 32;

/// A raw pointer into C and C's row stride (the split halves keep the full row length); it may cross to another rayon task because the caller
/// guarantees disjoint writes.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32, usize);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    unsafe fn add(self, off: usize) -> Self {
        SendPtr(unsafe { self.0.add(off) }, self.1)
    }
}

/// A read-only matrix as a pointer with row and column strides.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}
unsafe impl Send for Strided {}
unsafe impl Sync for Strided {}

impl Strided {
    fn new(ptr: *const f32, op: Op, rows: usize, cols: usize) -> Self {
        match op {
            Op::N => Strided {
                ptr,
                rs: cols as isize,
                cs: 1,
            },
            Op::T => Strided {
                ptr,
                rs: 1,
                cs: rows as isize,
            },
        }
    }
    unsafe fn rows_from(self, r: usize) -> Self {
        Strided {
            ptr: unsafe { self.ptr.offset(self.rs * r as isize) },
            ..self
        }
    }
    unsafe fn cols_from(self, c: usize) -> Self {
        Strided {
            ptr: unsafe { self.ptr.offset(self.cs * c as isize) },
            ..self
        }
    }
    /// The transpose: the same storage read with row and column strides swapped.
    fn t(self) -> Self {
        Strided {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// One single-threaded product by the `gemm` crate into `c` (row stride `c.1`).
unsafe fn gemm_crate(c: SendPtr, a: Strided, b: Strided, m: usize, k: usize, n: usize, acc: bool) {
    // gemm computes dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            1,
            c.1 as isize,
            acc,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// A 64-byte aligned line of 16 floats, the unit of the packing buffers.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line([f32; 16]);

thread_local! {
    /// Packed panels of A and B, reused by every product on this thread.
    static PACKED: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A buffer of at least `len` floats, 64-byte aligned.
pub(super) fn floats(buf: &mut Vec<Line>, len: usize) -> *mut f32 {
    let lines = len.div_ceil(16);
    if buf.len() < lines {
        buf.resize(lines, Line([0.0; 16]));
    }
    buf.as_mut_ptr().cast()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR, PACKED, Patches, Strided, floats};
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    /// Depth of one packed block: a `KC×NR` panel of B (32 KiB) stays in L1 while the tiles of a
    /// block of A stream past it.
    const KC: usize = 256;
    /// Rows of A packed at once (`MC×KC` floats, 96 KiB, stay in L2).
    const MC: usize = 96;
    /// Columns of B packed at once (`KC×NC` floats, 1 MiB, in L2).
    const NC: usize = 1024;

    /// How [`product`] computes a product.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Path {
        /// Dot products of contiguous rows ([`dots`]).
        Dots,
        /// The packed loops ([`packed`]).
        Packed,
        /// `Cᵀ = Bᵀ·Aᵀ` by the packed loops, added back transposed.
        Transposed,
    }

    /// The path for the product `A[m×k]·B[k×n]`: dot products over a long depth with both
    /// operands contiguous along it, when C is small or B stays in L2 (it is read once per four
    /// rows of A); transposed when that fills the micro-tiles much
    /// better (a convolution's `∂L/∂W: [32, 9]` fills 9 of the 32 columns of every tile, its
    /// transpose 9 of the 12 rows and all 32 columns); else packed. Each sums every element of C
    /// in the same order whichever block of C it is asked for.
    pub(super) fn path(a: Strided, b: Strided, m: usize, k: usize, n: usize) -> Path {
        if a.cs == 1 && b.rs == 1 && k >= DOTS_MIN_K && (m * n <= DOTS_MAX_C || n * k <= DOTS_MAX_B)
        {
            return Path::Dots;
        }
        let fill = |x: usize, tile: usize| x as f32 / x.next_multiple_of(tile) as f32;
        if k < 32 || 2.0 * fill(m, MR) * fill(n, NR) > fill(n, MR) * fill(m, NR) {
            Path::Packed
        } else {
            Path::Transposed
        }
    }

    /// `C[m×n] (row stride ldc) = (acc ? C : 0) + A·B` on this thread, by `path` (see [`path`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn product(
        path: Path,
        c: *mut f32,
        ldc: usize,
        a: Strided,
        b: Strided,
        m: usize,
        k: usize,
        n: usize,
        acc: bool,
    ) {
        match path {
            Path::Dots => return unsafe { dots(c, ldc, a, b, m, k, n, acc) },
            Path::Packed => {
                return unsafe { packed(c, ldc, Lhs::Raw(a), Rhs::Raw(b), m, k, n, acc) };
            }
            Path::Transposed => {}
        }
        TRANSPOSED.with_borrow_mut(|t| {
            t.resize(m * n, 0.0);
            // SAFETY: t holds n·m floats; the caller vouches for c, a and b.
            unsafe {
                packed(
                    t.as_mut_ptr(),
                    m,
                    Lhs::Raw(b.t()),
                    Rhs::Raw(a.t()),
                    n,
                    k,
                    m,
                    false,
                )
            };
            for (j, col) in t.chunks_exact(m).enumerate() {
                for (i, &v) in col.iter().enumerate() {
                    // SAFETY: (i, j) is inside the caller's m×n block of C.
                    let cij = unsafe { &mut *c.add(i * ldc + j) };
                    *cij = if acc { *cij + v } else { v };
                }
            }
        })
    }

    /// [`dots`] takes products at least this deep, ...
    const DOTS_MIN_K: usize = 64;
    /// ... whose C has at most this many elements.
    const DOTS_MAX_C: usize = 2048;
    /// ... or whose B has at most this many elements (512 KiB, half a core's L2): a
    /// convolution's `∂L/∂W = ∂L/∂Y·colsᵀ` over the positions of one image, `[16, 144]` over 784
    /// or `[32, 288]` over 196, where packing both operands cost a third of the product (resnet
    /// epoch 7% faster on one core).
    const DOTS_MAX_B: usize = 1 << 17;

    /// `C[m×n] (row stride ldc) = (acc ? C : 0) + A·B` where both operands run along the depth with
    /// unit stride (A stored `[m, k]`, B stored `[n, k]`): each element is one dot product of two
    /// contiguous rows. Four rows of A by four of B at a time (16 accumulators; per 16 floats of
    /// depth 8 loads and 16 FMAs), the lanes summed at the end; nothing is packed. For a small C
    /// over a long depth — a first conv's `∂L/∂W: [32, 9]` over 784 positions, a 10-class head —
    /// packing both operands costs several times the multiplications.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dots<B: DotRows>(
        c: *mut f32,
        ldc: usize,
        a: Strided,
        b: B,
        m: usize,
        k: usize,
        n: usize,
        acc: bool,
    ) {
        let tail = ((1u32 << (k % 16)) - 1) as u16;
        for i0 in (0..m).step_by(4) {
            for j0 in (0..n).step_by(4) {
                // Rows past the edge repeat the last one; their sums are not stored.
                let rows: [*const f32; 4] = std::array::from_fn(|r| unsafe {
                    a.ptr.offset((i0 + r).min(m - 1) as isize * a.rs)
                });
                let cols: [(*const f32, *const u16); 4] =
                    std::array::from_fn(|r| unsafe { b.row((j0 + r).min(n - 1)) });
                let mut sums = [[_mm512_setzero_ps(); 4]; 4];
                let mut step = |p: usize, mask: u16| {
                    let av = rows.map(|r| unsafe { _mm512_maskz_loadu_ps(mask, r.add(p)) });
                    let bv = cols.map(|(r, words)| unsafe {
                        let mask = if B::MASKED {
                            mask & *words.add(p / 16)
                        } else {
                            mask
                        };
                        _mm512_maskz_loadu_ps(mask, r.wrapping_add(p))
                    });
                    for (row, x) in sums.iter_mut().zip(av) {
                        for (s, y) in row.iter_mut().zip(bv) {
                            *s = _mm512_fmadd_ps(x, y, *s);
                        }
                    }
                };
                for p in (0..k - k % 16).step_by(16) {
                    step(p, 0xFFFF);
                }
                if tail != 0 {
                    step(k - k % 16, tail);
                }
                for (i, row) in sums.iter().enumerate().take(m - i0) {
                    for (j, s) in row.iter().enumerate().take(n - j0) {
                        // SAFETY: (i0 + i, j0 + j) is inside the caller's m×n block of C.
                        let cij = unsafe { &mut *c.add((i0 + i) * ldc + j0 + j) };
                        let v = _mm512_reduce_add_ps(*s);
                        *cij = if acc { *cij + v } else { v };
                    }
                }
            }
        }
    }

    /// Where [`dots`] finds row `j` of B (a column of the product's B: B stored `[n, k]`): its
    /// first value and, if `MASKED`, one mask word per 16 values (the values to read).
    pub(super) trait DotRows: Copy {
        const MASKED: bool;
        unsafe fn row(self, j: usize) -> (*const f32, *const u16);
    }

    impl DotRows for Strided {
        const MASKED: bool = false;
        #[inline(always)]
        unsafe fn row(self, j: usize) -> (*const f32, *const u16) {
            (
                self.ptr.wrapping_offset(j as isize * self.cs),
                std::ptr::null(),
            )
        }
    }

    /// A convolution's patches read from its image (`∂L/∂W = ∂L/∂Y·colsᵀ`: B = colsᵀ, whose
    /// columns are the rows of cols).
    #[derive(Clone, Copy)]
    pub(super) struct PatchRows {
        pub(super) x: *const f32,
        pub(super) patches: *const Patches,
    }

    impl DotRows for PatchRows {
        const MASKED: bool = true;
        #[inline(always)]
        unsafe fn row(self, j: usize) -> (*const f32, *const u16) {
            // SAFETY: the caller vouches for the description.
            let (off, words) = unsafe { (*self.patches).row(j) };
            (self.x.wrapping_offset(off), words.as_ptr())
        }
    }

    thread_local! {
        /// `Cᵀ` of the products [`product`] computes transposed.
        static TRANSPOSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    /// The left operand of [`packed`]: as stored, or already packed whole.
    #[derive(Clone, Copy)]
    pub(super) enum Lhs {
        Raw(Strided),
        /// All of A as [`pack_all_a`] lays it out.
        Packed(*const f32),
    }

    /// The right operand of [`packed`]: packed block by block, or read where it lies.
    #[derive(Clone, Copy)]
    pub(super) enum Rhs {
        Raw(Strided),
        /// Rows contiguous (`cs = 1`): the micro-kernel reads its `NR` columns of each row of a
        /// block in place, `rs` apart, instead of a copy packed `NR` apart. Worth it when few
        /// micro-tiles share each panel (a convolution's `W·cols` with 16 to 64 rows of `W` reads
        /// each panel 2 to 6 times): packing would read and write all of B once more.
        InPlace(Strided),
        /// A convolution's patches read from its image `x` (rows: kernel offsets, columns:
        /// positions), as in place, each row from its own offset under its own mask.
        Patches(*const f32, *const Patches),
    }

    /// [`product`] as it stands: the packed loops.
    ///
    /// Loops, outer to inner: columns of B by `NC`, depth by `KC` (pack B, unless read in place),
    /// rows of A by `MC` (pack A, unless it came packed), then `NR`-column and `MR`-row
    /// micro-tiles. Every element of C is summed in the same order whichever way A and B come.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn packed(
        c: *mut f32,
        ldc: usize,
        a: Lhs,
        b: Rhs,
        m: usize,
        k: usize,
        n: usize,
        acc: bool,
    ) {
        PACKED.with_borrow_mut(|(pa_buf, pb_buf)| {
            let pb = floats(pb_buf, KC * NC.min(n.next_multiple_of(NR)));
            let pa = floats(pa_buf, KC * MC.min(m.next_multiple_of(MR)));
            for j0 in (0..n).step_by(NC) {
                let nc = NC.min(n - j0);
                for p0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - p0);
                    let first = p0 == 0;
                    // SAFETY: the buffers hold KC·NC and KC·MC floats (rounded up to whole panels).
                    if let Rhs::Raw(b) = b {
                        unsafe { pack_b(pb, b, p0, kc, j0, nc) };
                    }
                    for i0 in (0..m).step_by(MC) {
                        let mc = MC.min(m - i0);
                        let pa = match a {
                            Lhs::Packed(all) => unsafe { all.add(p0 * m + i0 * kc) },
                            Lhs::Raw(a) => {
                                unsafe { pack_a(pa, a, i0, mc, p0, kc) };
                                pa.cast_const()
                            }
                        };
                        for jr in (0..nc).step_by(NR) {
                            let w = NR.min(nc - jr);
                            let cp = unsafe { c.add(i0 * ldc + j0 + jr) };
                            let tiles =
                                |b| unsafe { panel(b, mc, kc, pa, cp, ldc, w, acc || !first) };
                            match b {
                                Rhs::Raw(_) => tiles(Panel {
                                    ptr: unsafe { pb.add(jr * kc) },
                                    ld: NR,
                                }),
                                Rhs::InPlace(b) => tiles(Panel {
                                    ptr: unsafe { b.ptr.offset(p0 as isize * b.rs).add(j0 + jr) },
                                    ld: b.rs as usize,
                                }),
                                Rhs::Patches(x, patches) => {
                                    // SAFETY: the caller vouches for the description.
                                    let patches = unsafe { &*patches };
                                    // Row p's mask words over this panel's 32 positions
                                    // depend on p's kernel offset only: worked out once per
                                    // offset, then repeated.
                                    let (kk, word) = (patches.offsets(), (j0 + jr) / 16);
                                    let mut masks = [0u32; KC];
                                    for q in 0..kc {
                                        masks[q] = if q < kk {
                                            let w = patches.words((p0 + q) % kk);
                                            let hi = w.get(word + 1).copied().unwrap_or(0);
                                            w[word] as u32 | (hi as u32) << 16
                                        } else {
                                            masks[q - kk]
                                        };
                                    }
                                    let offs = patches.offs()[p0..].as_ptr();
                                    unsafe {
                                        let b = Gathered {
                                            base: x.wrapping_add(j0 + jr),
                                            offs,
                                            masks: masks.as_ptr(),
                                        };
                                        panel(b, mc, kc, pa, cp, ldc, w, acc || !first)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        })
    }

    /// The micro-tiles of one panel `b` of B (`w` columns, depth `kc`) against `mc` rows of A
    /// packed at `pa`, into C from `c` (row stride `ldc`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn panel<B: BRows>(
        b: B,
        mc: usize,
        kc: usize,
        pa: *const f32,
        c: *mut f32,
        ldc: usize,
        w: usize,
        load: bool,
    ) {
        for ir in (0..mc).step_by(MR) {
            let r = MR.min(mc - ir);
            // SAFETY: rows ir..ir+r of the block of A, and of C.
            unsafe { tile(r, kc, pa.add(ir * kc), b, c.add(ir * ldc), ldc, w, load) };
        }
    }

    /// All of A packed as [`packed`] reads it block by block: for each depth block `p0` (of `kc`
    /// rows), each row block `i0` at `dst + p0·m + i0·kc`, as [`pack_a`] lays one out.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_all_a(dst: *mut f32, a: Strided, m: usize, k: usize) {
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            for i0 in (0..m).step_by(MC) {
                // SAFETY: block (p0, i0) holds MC.min(m − i0)·kc floats inside m·k.
                unsafe { pack_a(dst.add(p0 * m + i0 * kc), a, i0, MC.min(m - i0), p0, kc) };
            }
        }
    }

    /// Packs rows `i0..i0+mc`, depth `p0..p0+kc` of A into panels of `MR` rows (the last one of
    /// `r < MR` rows is packed `r` wide): `pa[panel·MR·kc + p·r + i] = A[i0 + panel·MR + i, p0 + p]`.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_a(pa: *mut f32, a: Strided, i0: usize, mc: usize, p0: usize, kc: usize) {
        for ir in (0..mc).step_by(MR) {
            let r = MR.min(mc - ir);
            let dst = unsafe { pa.add(ir * kc) };
            if a.cs == 1 {
                // Each row is contiguous in depth (A as stored, row-major): 16-deep blocks of the
                // panel's rows, transposed in registers, `r` lanes stored per step of depth.
                let (mr, _) = masks(r);
                for q0 in (0..kc).step_by(16) {
                    let depth = 16.min(kc - q0);
                    let (mq, _) = masks(depth);
                    let mut rows = [_mm512_setzero_ps(); 16];
                    for (i, v) in rows.iter_mut().enumerate().take(r) {
                        let row = (i0 + ir + i) as isize * a.rs + (p0 + q0) as isize;
                        *v = unsafe { _mm512_maskz_loadu_ps(mq, a.ptr.offset(row)) };
                    }
                    for (q, v) in transpose16(rows).iter().enumerate().take(depth) {
                        unsafe { _mm512_mask_storeu_ps(dst.add((q0 + q) * r), mr, *v) };
                    }
                }
            } else {
                // Each column is contiguous (A = Wᵀ of a row-major W): `r` floats per step of depth.
                let (mr, _) = masks(r);
                for p in 0..kc {
                    unsafe {
                        let src = a.ptr.offset((p0 + p) as isize * a.cs).add(i0 + ir);
                        _mm512_mask_storeu_ps(dst.add(p * r), mr, _mm512_maskz_loadu_ps(mr, src));
                    }
                }
            }
        }
    }

    /// Packs depth `p0..p0+kc`, columns `j0..j0+nc` of B into panels of `NR` columns, zero-padded:
    /// `pb[panel·NR·kc + p·NR + j] = B[p0 + p, j0 + panel·NR + j]`.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack_b(pb: *mut f32, b: Strided, p0: usize, kc: usize, j0: usize, nc: usize) {
        for jr in (0..nc).step_by(NR) {
            let w = NR.min(nc - jr);
            let dst = unsafe { pb.add(jr * kc) };
            if b.cs == 1 {
                // Each row of the panel is contiguous in B: two masked vector copies.
                let (m0, m1) = masks(w);
                for p in 0..kc {
                    unsafe {
                        let src = b.ptr.offset((p0 + p) as isize * b.rs).add(j0 + jr);
                        _mm512_store_ps(dst.add(p * NR), _mm512_maskz_loadu_ps(m0, src));
                        let v1 = _mm512_maskz_loadu_ps(m1, src.add(16));
                        _mm512_store_ps(dst.add(p * NR + 16), v1);
                    }
                }
            } else {
                // Each column is contiguous (B = Wᵀ of a row-major W): 16×16 blocks, transposed in
                // registers.
                for half in 0..2 {
                    let cols = w.saturating_sub(16 * half).min(16);
                    if cols == 0 {
                        // A panel of at most 16 columns: its second half is all padding.
                        for q in 0..kc {
                            unsafe { _mm512_store_ps(dst.add(q * NR + 16), _mm512_setzero_ps()) };
                        }
                        continue;
                    }
                    for q0 in (0..kc).step_by(16) {
                        let depth = 16.min(kc - q0);
                        let (mq, _) = masks(depth);
                        let mut r = [_mm512_setzero_ps(); 16];
                        for (j, rj) in r.iter_mut().enumerate().take(cols) {
                            let col = (j0 + jr + 16 * half + j) as isize;
                            let src = unsafe { b.ptr.offset(col * b.cs + (p0 + q0) as isize) };
                            *rj = unsafe { _mm512_maskz_loadu_ps(mq, src) };
                        }
                        for (q, v) in transpose16(r).iter().enumerate().take(depth) {
                            unsafe { _mm512_store_ps(dst.add((q0 + q) * NR + 16 * half), *v) };
                        }
                    }
                }
            }
        }
    }

    /// The 16×16 transpose of `r` (rows as vectors): `out[q][j] = r[j][q]`.
    ///
    /// Three rounds: interleave pairs of rows within 128-bit lanes, then pairs of pairs, then move
    /// 128-bit lanes across groups of four rows.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        let z = _mm512_setzero_ps();
        let mut t = [z; 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4i + e], 128-bit lane L: rows 4i..4i+3 at column 4L + e.
        let mut u = [z; 16];
        for i in 0..4 {
            u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        let mut out = [z; 16];
        for e in 0..4 {
            let v = _mm512_shuffle_f32x4::<0x88>(u[e], u[4 + e]);
            let v_ = _mm512_shuffle_f32x4::<0xDD>(u[e], u[4 + e]);
            let w = _mm512_shuffle_f32x4::<0x88>(u[8 + e], u[12 + e]);
            let w_ = _mm512_shuffle_f32x4::<0xDD>(u[8 + e], u[12 + e]);
            out[e] = _mm512_shuffle_f32x4::<0x88>(v, w);
            out[4 + e] = _mm512_shuffle_f32x4::<0x88>(v_, w_);
            out[8 + e] = _mm512_shuffle_f32x4::<0xDD>(v, w);
            out[12 + e] = _mm512_shuffle_f32x4::<0xDD>(v_, w_);
        }
        out
    }

    /// Lane masks of the two 16-lane halves of a row of `w ≤ 32` valid values.
    fn masks(w: usize) -> (u16, u16) {
        let half = |v: usize| {
            if v >= 16 {
                0xFFFF
            } else {
                ((1u32 << v) - 1) as u16
            }
        };
        (half(w.min(16)), half(w.saturating_sub(16)))
    }

    /// One micro-tile of `r ≤ MR` rows and `w ≤ NR` columns, dispatched to its row count and to
    /// one vector per row when `w ≤ 16` (the last panel of a product 36 or 196 wide).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile<B: BRows>(
        r: usize,
        kc: usize,
        ap: *const f32,
        b: B,
        c: *mut f32,
        ldc: usize,
        w: usize,
        load: bool,
    ) {
        let m = masks(w);
        unsafe {
            if w <= 16 {
                tile_v::<1, B>(r, kc, ap, b, c, ldc, m, load)
            } else {
                tile_v::<2, B>(r, kc, ap, b, c, ldc, m, load)
            }
        }
    }

    /// [`tile`] with `V` vectors per row.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile_v<const V: usize, B: BRows>(
        r: usize,
        kc: usize,
        ap: *const f32,
        b: B,
        c: *mut f32,
        ldc: usize,
        m: (u16, u16),
        load: bool,
    ) {
        unsafe {
            match r {
                12 => micro::<12, V, B>(kc, ap, b, c, ldc, m, load),
                11 => micro::<11, V, B>(kc, ap, b, c, ldc, m, load),
                10 => micro::<10, V, B>(kc, ap, b, c, ldc, m, load),
                9 => micro::<9, V, B>(kc, ap, b, c, ldc, m, load),
                8 => micro::<8, V, B>(kc, ap, b, c, ldc, m, load),
                7 => micro::<7, V, B>(kc, ap, b, c, ldc, m, load),
                6 => micro::<6, V, B>(kc, ap, b, c, ldc, m, load),
                5 => micro::<5, V, B>(kc, ap, b, c, ldc, m, load),
                4 => micro::<4, V, B>(kc, ap, b, c, ldc, m, load),
                3 => micro::<3, V, B>(kc, ap, b, c, ldc, m, load),
                2 => micro::<2, V, B>(kc, ap, b, c, ldc, m, load),
                _ => micro::<1, V, B>(kc, ap, b, c, ldc, m, load),
            }
        }
    }

    /// Where a micro-tile finds row `p` of its panel of B: its first value, and a mask of the
    /// `NR` values to read (0 for the others).
    trait BRows: Copy {
        unsafe fn row(self, p: usize) -> (*const f32, u32);
    }

    /// Rows `ld` apart, all read: a packed panel (`ld = NR`) or B in place (`ld` its row stride).
    #[derive(Clone, Copy)]
    struct Panel {
        ptr: *const f32,
        ld: usize,
    }

    impl BRows for Panel {
        #[inline(always)]
        unsafe fn row(self, p: usize) -> (*const f32, u32) {
            (self.ptr.wrapping_add(p * self.ld), u32::MAX)
        }
    }

    /// Rows from a base at offsets of their own, each with its mask: a panel of a convolution's
    /// [`Patches`], read from the image.
    #[derive(Clone, Copy)]
    struct Gathered {
        base: *const f32,
        offs: *const isize,
        masks: *const u32,
    }

    impl BRows for Gathered {
        #[inline(always)]
        unsafe fn row(self, p: usize) -> (*const f32, u32) {
            // SAFETY: the caller's arrays hold a value per row of the panel.
            unsafe {
                let off = *self.offs.add(p);
                (self.base.wrapping_offset(off), *self.masks.add(p))
            }
        }
    }

    /// `C[R×16V] (masked to the valid columns) = (load ? C : 0) + Σ_p a[p·R + i] · b_p[j]`, `b_p`
    /// row `p` of the panel `b` (0 where its mask is clear).
    ///
    /// Per step of `p`: `V` vector loads of B (masked to the valid columns, and to the row's own
    /// mask: a row read in place may end there, a row of patches reach into the padding), `R`
    /// broadcasts of A, `V·R` FMAs into registers.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const R: usize, const V: usize, B: BRows>(
        kc: usize,
        mut ap: *const f32,
        b: B,
        c: *mut f32,
        ldc: usize,
        (m0, m1): (u16, u16),
        load: bool,
    ) {
        let masks = [m0, m1];
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for p in 0..kc {
            unsafe {
                let (bp, mask) = b.row(p);
                let mut bs = [_mm512_setzero_ps(); V];
                for (v, bv) in bs.iter_mut().enumerate() {
                    let m = masks[v] & (mask >> (16 * v)) as u16;
                    *bv = _mm512_maskz_loadu_ps(m, bp.wrapping_add(16 * v));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*ap.add(i));
                    for (x, bv) in row.iter_mut().zip(&bs) {
                        *x = _mm512_fmadd_ps(a, *bv, *x);
                    }
                }
                ap = ap.add(R);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                unsafe {
                    let cv = c.add(i * ldc + 16 * v);
                    let x = if load {
                        _mm512_add_ps(x, _mm512_maskz_loadu_ps(masks[v], cv))
                    } else {
                        x
                    };
                    _mm512_mask_storeu_ps(cv, masks[v], x);
                }
            }
        }
    }
}

/// The naive twin of [`matmul`]: three loops, the sum over `k` accumulated in `f64`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_naive(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    let at = |i: usize, l: usize| match ta {
        Op::N => a[i * k + l],
        Op::T => a[l * m + i],
    };
    let bt = |l: usize, j: usize| match tb {
        Op::N => b[l * n + j],
        Op::T => b[j * k + l],
    };
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|l| at(i, l) as f64 * bt(l, j) as f64).sum();
            let old = if accumulate { c[i * n + j] } else { 0.0 };
            c[i * n + j] = old + s as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn check(
        kernel: Kernel,
        split: bool,
        (m, k, n): (usize, usize, usize),
        ta: Op,
        tb: Op,
        acc: bool,
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * 31 + k * 7 + n) as u64);
        let mut r = |len: usize| {
            (0..len)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect::<Vec<f32>>()
        };
        let (a, b, c0) = (r(m * k), r(k * n), r(m * n));
        let (mut fast, mut slow) = (c0.clone(), c0);
        matmul_with(kernel, split, &mut fast, &a, ta, &b, tb, m, k, n, acc);
        matmul_naive(&mut slow, &a, ta, &b, tb, m, k, n, acc);
        for (i, (x, y)) in fast.iter().zip(&slow).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (k as f32).sqrt() * 4.0,
                "{kernel:?} {m}×{k}×{n} {ta:?}{tb:?} [{i}]: {x} vs {y}"
            );
        }
    }

    /// Odd sizes around the tile (12×32) and block (256, 96, 1024) edges, and narrow ones.
    const SIZES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (50, 37, 129),
        (130, 61, 45),
        (7, 300, 2),
        (13, 257, 33),
        (97, 20, 1025),
        // Narrow C computed transposed, or (A·Bᵀ, deep) as dot products: a conv ∂L/∂W [32, 9],
        // a 10-class head [50, 10], and depths with and without a partial last vector.
        (32, 300, 9),
        (50, 128, 10),
        (5, 64, 3),
        (33, 65, 31),
        // Dot products for a larger C whose B stays in L2: resnet's first-stage ∂L/∂W.
        (16, 784, 144),
        (0, 3, 4),
        (4, 0, 3),
    ];

    #[test]
    fn matches_naive_on_odd_sizes_and_every_transpose() {
        let mut kernels = vec![Kernel::GemmCrate];
        if kernel() != Kernel::GemmCrate {
            kernels.push(kernel());
        }
        for &kernel in &kernels {
            for &size in SIZES {
                for ta in [Op::N, Op::T] {
                    for tb in [Op::N, Op::T] {
                        check(kernel, false, size, ta, tb, false);
                        check(kernel, false, size, ta, tb, true);
                    }
                }
            }
        }
    }

    #[test]
    fn products_with_a_packed_beforehand_match_naive() {
        let mut packed = PackedA::default();
        // Around the block edges (KC = 256, MC = 96) and the shapes of lenet's second conv.
        for &(m, k, n) in &[
            (64, 288, 196),
            (288, 64, 196),
            (97, 300, 33),
            (5, 7, 3),
            (13, 257, 40),
        ] {
            for ta in [Op::N, Op::T] {
                for tb in [Op::N, Op::T] {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m + k + n) as u64);
                    let mut r = |len: usize| {
                        (0..len)
                            .map(|_| rng.gen_range(-1.0..1.0))
                            .collect::<Vec<f32>>()
                    };
                    let (a, b, c0) = (r(m * k), r(k * n), r(m * n));
                    packed.pack(&a, ta, m, k);
                    for acc in [false, true] {
                        let (mut fast, mut slow) = (c0.clone(), c0.clone());
                        matmul_packed_a(&mut fast, &packed, &b, tb, n, acc);
                        matmul_naive(&mut slow, &a, ta, &b, tb, m, k, n, acc);
                        for (x, y) in fast.iter().zip(&slow) {
                            assert!(
                                (x - y).abs() <= 1e-5 * (k as f32).sqrt() * 4.0,
                                "{m}×{k}×{n} {ta:?}{tb:?}: {x} vs {y}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// B read in place by the micro-kernel gives the bits of B packed first: the same sums in the
    /// same order (partial last panels of 1, 4 and 17 columns, depths over one `KC` block).
    #[test]
    fn b_read_in_place_gives_the_bits_of_b_packed() {
        #[cfg(target_arch = "x86_64")]
        {
            if kernel() != Kernel::Avx512 {
                eprintln!("no AVX-512F on this machine: nothing to compare");
                return;
            }
            let mut packed = PackedA::default();
            for &(m, k, n) in &[(16, 144, 784), (32, 288, 196), (64, 576, 49), (13, 300, 33)] {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * k + n) as u64);
                let mut r = |len: usize| {
                    (0..len)
                        .map(|_| rng.gen_range(-1.0..1.0))
                        .collect::<Vec<f32>>()
                };
                let (a, b, c0) = (r(m * k), r(k * n), r(m * n));
                packed.pack(&a, Op::N, m, k);
                for acc in [false, true] {
                    let (mut in_place, mut copied) = (c0.clone(), c0.clone());
                    matmul_packed_a(&mut in_place, &packed, &b, Op::N, n, acc);
                    let b = Strided::new(b.as_ptr(), Op::N, k, n);
                    let a = avx512::Lhs::Packed(packed.buf.as_ptr().cast());
                    // SAFETY: AVX-512F is present; C, A and B hold m·n, m·k and k·n floats.
                    unsafe {
                        let c = copied.as_mut_ptr();
                        avx512::packed(c, n, a, avx512::Rhs::Raw(b), m, k, n, acc)
                    };
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert!(bits(&in_place) == bits(&copied), "{m}×{k}×{n} acc={acc}");
                }
            }
        }
    }

    /// Products reading a convolution's patches from the image give the bits of the same products
    /// over the patches written out by im2col: forward (`W·cols`) and ∂L/∂W (`∂L/∂Y·colsᵀ`, by
    /// dot products over 784 and 100 positions, written out over 35), on kernels 3×3 and 5×3,
    /// with positions that are not whole vectors.
    #[test]
    fn products_over_patches_read_from_the_image_give_the_bits_of_im2col() {
        use crate::kernels::im2col::{Geom, Patches, im2col};
        for (c, h, w, k, pad, oc) in [
            (16, 28, 28, (3, 3), (1, 1), 16),
            (3, 10, 10, (3, 3), (1, 1), 13),
            (2, 5, 7, (5, 3), (2, 1), 5),
        ] {
            let g = Geom::new(c, h, w, k, (1, 1), pad).unwrap();
            let patches = Patches::new(&g).unwrap();
            let (p, l) = (g.patch(), g.positions());
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((c * h * w) as u64);
            let mut r = |len: usize| {
                (0..len)
                    .map(|_| rng.gen_range(-1.0..1.0))
                    .collect::<Vec<f32>>()
            };
            let (x, wt, gy, c0) = (r(c * h * w), r(oc * p), r(oc * l), r(oc * p.max(l)));
            let mut cols = vec![0.0; p * l];
            im2col(&g, &x, &mut cols);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut packed = PackedA::default();
            packed.pack(&wt, Op::N, oc, p);
            for acc in [false, true] {
                let (mut read, mut written) = (c0[..oc * l].to_vec(), c0[..oc * l].to_vec());
                matmul_packed_a_patches(&mut read, &packed, &x, &patches, acc);
                matmul_packed_a(&mut written, &packed, &cols, Op::N, l, acc);
                assert!(bits(&read) == bits(&written), "W·cols {g:?} acc={acc}");
                let (mut read, mut written) = (c0[..oc * p].to_vec(), c0[..oc * p].to_vec());
                matmul_patches_t(&mut read, &gy, oc, &x, &patches, acc);
                matmul_serial(&mut written, &gy, Op::N, &cols, Op::T, oc, l, p, acc);
                assert!(bits(&read) == bits(&written), "∂L/∂Y·colsᵀ {g:?} acc={acc}");
            }
        }
    }

    /// Products of every shape class (dot products, narrow C computed transposed, packed, cut in
    /// two or not) give the same bits on pools of 1, 2, 3 and 4 threads, with either kernel; ours
    /// also gives them uncut.
    #[test]
    fn the_thread_count_never_changes_a_bit() {
        let shapes = [
            (10, 64, 400),
            (400, 64, 10),
            (30, 300, 70),
            (70, 300, 30),
            (50, 784, 512),
            (512, 50, 784),
            (64, 288, 196),
            (16, 1000, 40),
            (16, 784, 144),
            (100, 80, 30),
            (5, 7, 3),
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let pools: Vec<_> = (1..=4)
            .map(|t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            })
            .collect();
        let mut kernels = vec![Kernel::GemmCrate];
        if kernel() != Kernel::GemmCrate {
            kernels.push(kernel());
        }
        for &kernel in &kernels {
            for &(m, k, n) in &shapes {
                for (ta, tb) in [
                    (Op::N, Op::N),
                    (Op::N, Op::T),
                    (Op::T, Op::N),
                    (Op::T, Op::T),
                ] {
                    for acc in [false, true] {
                        let mut r = |len: usize| {
                            (0..len)
                                .map(|_| rng.gen_range(-1.0..1.0))
                                .collect::<Vec<f32>>()
                        };
                        let (a, b, c0) = (r(m * k), r(k * n), r(m * n));
                        let split = m * n * k >= SPLIT_MIN_WORK;
                        let bits = |pool: &rayon::ThreadPool, split: bool| {
                            let mut c = c0.clone();
                            pool.install(|| {
                                matmul_with(kernel, split, &mut c, &a, ta, &b, tb, m, k, n, acc)
                            });
                            c.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
                        };
                        let one = bits(&pools[0], split);
                        for (t, pool) in pools.iter().enumerate().skip(1) {
                            assert!(
                                bits(pool, split) == one,
                                "{kernel:?} {m}×{k}×{n} {ta:?}{tb:?} acc={acc}: {} threads",
                                t + 1
                            );
                        }
                        if kernel != Kernel::GemmCrate {
                            assert!(bits(&pools[1], false) == one, "{m}×{k}×{n} uncut");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn splits_on_a_two_thread_pool_give_the_same_answer() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            for split in [(100, 80, 30), (30, 80, 101), (50, 784, 512), (512, 50, 784)] {
                check(kernel(), true, split, Op::N, Op::T, false);
                check(kernel(), true, split, Op::T, Op::N, true);
                check(Kernel::GemmCrate, true, split, Op::N, Op::N, true);
            }
        });
    }
}
