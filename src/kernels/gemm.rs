//! Matrix products: one entry point over the `gemm` crate, and its naive twin for tests.
//!
//! At batch 50 the matrices are small, and neither `gemm`'s nor `matrixmultiply`'s own threading
//! pays (measured: 50×784×512 runs at 65–85 GFLOP/s on one thread, no faster on two). What pays is
//! to cut the output in two halves and give each core one single-threaded product: the halves share
//! nothing, and every output element is still reduced over `k` in the same order.

use gemm::Parallelism;

/// How a stored matrix is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// As stored, row-major.
    N,
    /// Transposed: stored row-major as `[cols, rows]` of the operand it stands for.
    T,
}

/// Products smaller than this many multiply-adds run on one core: splitting costs more than it saves.
const SPLIT_MIN_WORK: usize = 1 << 16;

/// `C[m×n] = (accumulate ? C : 0) + op(A)[m×k] · op(B)[k×n]`, all row-major.
///
/// `a` holds `op(A)` stored as `[m, k]` (`Op::N`) or `[k, m]` (`Op::T`); likewise `b` as `[k, n]` or
/// `[n, k]`. Splits across two rayon tasks when the product is large enough and the pool has threads.
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
    assert_eq!(c.len(), m * n, "matmul: C is not [{m}×{n}]");
    assert_eq!(a.len(), m * k, "matmul: A is not [{m}×{k}]");
    assert_eq!(b.len(), k * n, "matmul: B is not [{k}×{n}]");
    if m == 0 || n == 0 {
        return;
    }
    let a = Strided::new(a.as_ptr(), ta, m, k);
    let b = Strided::new(b.as_ptr(), tb, k, n);
    let c = SendPtr(c.as_mut_ptr());
    let split = m * n * k >= SPLIT_MIN_WORK && rayon::current_num_threads() > 1;
    // SAFETY: the slices were checked to hold the matrices; the two halves write disjoint parts of C.
    unsafe {
        if !split {
            kernel(c, a, b, m, k, n, n, accumulate);
        } else if m >= n {
            let h = m / 2;
            rayon::join(
                || kernel(c, a, b, h, k, n, n, accumulate),
                || kernel(c.add(h * n), a.rows_from(h), b, m - h, k, n, n, accumulate),
            );
        } else {
            let h = n / 2;
            rayon::join(
                || kernel(c, a, b, m, k, h, n, accumulate),
                || kernel(c.add(h), a, b.cols_from(h), m, k, n - h, n, accumulate),
            );
        }
    }
}

/// A raw pointer that may cross to another rayon task; the caller guarantees disjoint writes.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    unsafe fn add(self, off: usize) -> Self {
        SendPtr(unsafe { self.0.add(off) })
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
}

/// One single-threaded product into `c` with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    c: SendPtr,
    a: Strided,
    b: Strided,
    m: usize,
    k: usize,
    n: usize,
    ldc: usize,
    accumulate: bool,
) {
    // gemm computes dst = alpha·dst + beta·lhs·rhs, reading dst only when asked to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            1,
            ldc as isize,
            accumulate,
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

    fn check(m: usize, k: usize, n: usize, ta: Op, tb: Op, accumulate: bool) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * 31 + k * 7 + n) as u64);
        let mut r = |len: usize| {
            (0..len)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect::<Vec<f32>>()
        };
        let (a, b, c0) = (r(m * k), r(k * n), r(m * n));
        let (mut fast, mut slow) = (c0.clone(), c0);
        matmul(&mut fast, &a, ta, &b, tb, m, k, n, accumulate);
        matmul_naive(&mut slow, &a, ta, &b, tb, m, k, n, accumulate);
        for (i, (x, y)) in fast.iter().zip(&slow).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (k as f32).sqrt() * 4.0,
                "{m}×{k}×{n} {ta:?}{tb:?} [{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn matches_naive_on_odd_sizes_and_every_transpose() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 9),
            (50, 37, 129),
            (130, 61, 45),
            (7, 300, 2),
        ] {
            for ta in [Op::N, Op::T] {
                for tb in [Op::N, Op::T] {
                    check(m, k, n, ta, tb, false);
                    check(m, k, n, ta, tb, true);
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
            check(100, 80, 30, Op::N, Op::T, false); // m ≥ n: split rows
            check(30, 80, 101, Op::T, Op::N, true); // n > m: split columns
        });
    }
}
