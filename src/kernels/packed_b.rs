//! Products of a few rows by a right operand packed once: [`PackedB`] and [`matmul_packed_b`].
//!
//! A recurrent layer multiplies the same `W_hh` by a new state of a few rows at every step:
//! `[rows, H] · W_hhᵀ` forward and `[rows, G·H] · W_hh` backward, with `rows` = 25 for a batch of
//! 50 cut in two chunks. [`crate::kernels::matmul`] would pack both operands at every step, and
//! its `12×32` micro-tiles fill 25 rows as 12 + 12 + 1 (25 of 36 rows), or, computed transposed,
//! 25 columns of 32. Here:
//! ```text
//! C[m×n] = (accumulate ? C : 0) + A[m×k] · op(B)[k×n]
//! ```
//! with `op(B)` packed once into panels of 64 columns, depth-major and zero-padded,
//! `pb[panel·64·k + p·64 + j] = op(B)[p, panel·64 + j]`, and `A` read as stored (row-major, each
//! element broadcast straight from memory, nothing packed per product). The micro-tile is 5 rows
//! × 64 columns (20 of the 32 vector registers): per step of depth 4 vector loads of B, 5
//! broadcasts of A and 20 FMAs, so 25 rows are 5 whole tiles. Each element of C is summed over
//! `p = 0..k` in order from zero and then added to C, whatever rows a call holds: a row's bits do
//! not depend on the rows computed with it.

use super::gemm::{Kernel, Line, Op, floats, kernel, matmul_serial};

/// Columns of a packed panel: four 16-lane vectors.
const NR: usize = 64;
/// Rows of a micro-tile.
const MR: usize = 5;

/// `op(B)` packed once for many [`matmul_packed_b`] products: panels of 64 columns where our
/// AVX-512 kernel runs, else a row-major `[k, n]` copy for [`matmul_serial`].
#[derive(Default)]
pub struct PackedB {
    buf: Vec<Line>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs `op(B)`: `b` stored as `[k, n]` (`Op::N`) or `[n, k]` (`Op::T`), reusing the buffer.
    pub fn pack(&mut self, b: &[f32], tb: Op, k: usize, n: usize) {
        assert_eq!(b.len(), k * n, "PackedB: B is not [{k}×{n}]");
        (self.k, self.n) = (k, n);
        let at = |p: usize, j: usize| match tb {
            Op::N => b[p * n + j],
            Op::T => b[j * k + p],
        };
        if kernel() == Kernel::Avx512 {
            let len = n.next_multiple_of(NR) * k;
            // SAFETY: `floats` returns a buffer of at least `len` floats.
            let dst = unsafe { std::slice::from_raw_parts_mut(floats(&mut self.buf, len), len) };
            // B is read in the order it is stored (a large B, gathered panel by panel, would be
            // read a few floats from each row, rows a page apart): row p of a stored [k, n] goes
            // to step p of every panel, row j of a stored [n, k] to column j of its panel.
            let padded = n.next_multiple_of(NR);
            if padded > n {
                for p in 0..k {
                    dst[(padded - NR) * k + p * NR..][..NR].fill(0.0);
                }
            }
            match tb {
                Op::N => {
                    for (p, row) in b.chunks_exact(n.max(1)).enumerate().take(k) {
                        let whole = row.chunks_exact(NR);
                        let rest = whole.remainder();
                        for (panel, part) in whole.enumerate() {
                            // Whole panels as fixed-size copies (a few vector moves, no memcpy call).
                            let to: &mut [f32; NR] = (&mut dst[panel * NR * k + p * NR..][..NR])
                                .try_into()
                                .unwrap();
                            *to = part.try_into().unwrap();
                        }
                        if !rest.is_empty() {
                            dst[(n - rest.len()) * k + p * NR..][..rest.len()]
                                .copy_from_slice(rest);
                        }
                    }
                }
                Op::T => {
                    for (j, col) in b.chunks_exact(k.max(1)).enumerate().take(n) {
                        let panel = &mut dst[(j - j % NR) * k + j % NR..];
                        for (p, &v) in col.iter().enumerate() {
                            panel[p * NR] = v;
                        }
                    }
                }
            }
        } else {
            // SAFETY: `floats` returns a buffer of at least `k·n` floats.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(floats(&mut self.buf, k * n), k * n) };
            for (p, row) in dst.chunks_exact_mut(n.max(1)).enumerate().take(k) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = at(p, j);
                }
            }
        }
    }
}

/// `C[m×n] = (accumulate ? C : 0) + A[m×k] · op(B)` on the calling thread, with `a` stored
/// row-major `[m, k]` and `op(B)` packed by [`PackedB::pack`]; `c` is row-major `[m, n]`.
pub fn matmul_packed_b(c: &mut [f32], a: &[f32], b: &PackedB, m: usize, accumulate: bool) {
    let (k, n) = (b.k, b.n);
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(a.len(), m * k, "matmul: A is not [{m}×{k}]");
    let packed: *const f32 = b.buf.as_ptr().cast();
    match kernel() {
        // SAFETY: AVX-512F is present; the slices are checked above and `b` holds its panels.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512::product(c, a, packed, m, k, n, accumulate) },
        _ => {
            // SAFETY: `b` holds op(B) as a row-major [k, n] (see `PackedB::pack`).
            let b = unsafe { std::slice::from_raw_parts(packed, k * n) };
            matmul_serial(c, a, Op::N, b, Op::N, m, k, n, accumulate)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// [`super::matmul_packed_b`]: panel by panel (it stays in cache while every row passes),
    /// then tiles of [`MR`] rows (the last one narrower).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        c: &mut [f32],
        a: &[f32],
        pb: *const f32,
        m: usize,
        k: usize,
        n: usize,
        acc: bool,
    ) {
        for j0 in (0..n).step_by(NR) {
            let masks: [u16; 4] = std::array::from_fn(|v| {
                let valid = (n - j0).saturating_sub(16 * v).min(16);
                ((1u32 << valid) - 1) as u16
            });
            // SAFETY: panel j0/NR holds NR·k floats; rows and columns stay inside the checked C and A.
            unsafe {
                let bp = pb.add(j0 * k);
                for i0 in (0..m).step_by(MR) {
                    let (ap, cp) = (a.as_ptr().add(i0 * k), c.as_mut_ptr().add(i0 * n + j0));
                    match m - i0 {
                        1 => micro::<1>(k, ap, bp, cp, n, masks, acc),
                        2 => micro::<2>(k, ap, bp, cp, n, masks, acc),
                        3 => micro::<3>(k, ap, bp, cp, n, masks, acc),
                        4 => micro::<4>(k, ap, bp, cp, n, masks, acc),
                        _ => micro::<MR>(k, ap, bp, cp, n, masks, acc),
                    }
                }
            }
        }
    }

    /// `C[R×64] (masked to the valid columns, row stride n) = (acc ? C : 0) + Σ_p A[i, p] ·
    /// pb[p·64 + j]`, with A's rows `k` apart.
    #[target_feature(enable = "avx512f")]
    unsafe fn micro<const R: usize>(
        k: usize,
        a: *const f32,
        bp: *const f32,
        c: *mut f32,
        n: usize,
        masks: [u16; 4],
        acc: bool,
    ) {
        let mut sums = [[_mm512_setzero_ps(); 4]; R];
        for p in 0..k {
            // SAFETY: p < k inside A's R rows and the panel's k steps.
            unsafe {
                let b: [__m512; 4] =
                    std::array::from_fn(|v| _mm512_load_ps(bp.add(p * NR + 16 * v)));
                for (i, row) in sums.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.add(i * k + p));
                    for (s, bv) in row.iter_mut().zip(&b) {
                        *s = _mm512_fmadd_ps(x, *bv, *s);
                    }
                }
            }
        }
        for (i, row) in sums.iter().enumerate() {
            for (v, (&s, &mask)) in row.iter().zip(&masks).enumerate() {
                // SAFETY: the masked lanes are C's valid columns of row i.
                unsafe {
                    let cv = c.add(i * n + 16 * v);
                    let s = if acc {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, cv), s)
                    } else {
                        s
                    };
                    _mm512_mask_storeu_ps(cv, mask, s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::matmul_naive;
    use rand::{Rng, SeedableRng};

    fn random(len: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Odd sizes around the tile (5 rows, 64 columns) and the recurrent layers' shapes.
    #[test]
    fn matches_naive_on_odd_sizes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut packed = PackedB::default();
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 7, 5),
            (4, 17, 63),
            (5, 33, 64),
            (6, 9, 65),
            (13, 40, 130),
            (25, 128, 512),
            (25, 512, 128),
            (7, 0, 3),
        ] {
            for tb in [Op::N, Op::T] {
                let (a, b, c0) = (
                    random(m * k, &mut rng),
                    random(k * n, &mut rng),
                    random(m * n, &mut rng),
                );
                packed.pack(&b, tb, k, n);
                for acc in [false, true] {
                    let (mut fast, mut slow) = (c0.clone(), c0.clone());
                    matmul_packed_b(&mut fast, &a, &packed, m, acc);
                    matmul_naive(&mut slow, &a, Op::N, &b, tb, m, k, n, acc);
                    for (i, (x, y)) in fast.iter().zip(&slow).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-5 * (k as f32).sqrt() * 4.0 + 1e-6,
                            "{m}×{k}×{n} {tb:?} acc={acc} [{i}]: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    /// A row gets the same bits in a product of 1 row as in one of 25 (the stack's chunks rely on it).
    #[test]
    fn a_row_s_bits_do_not_depend_on_the_rows_beside_it() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (m, k, n) = (25, 96, 130);
        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
        let mut packed = PackedB::default();
        packed.pack(&b, Op::T, k, n);
        let mut all = vec![0.0; m * n];
        matmul_packed_b(&mut all, &a, &packed, m, false);
        for i in 0..m {
            let mut one = vec![0.0; n];
            matmul_packed_b(&mut one, &a[i * k..][..k], &packed, 1, false);
            assert!(one == all[i * n..][..n], "row {i}");
        }
    }
}
