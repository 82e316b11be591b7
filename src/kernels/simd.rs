//! [`vectorized`]: runs a loop compiled for the widest vector instructions this CPU has.
//!
//! The binary is built for baseline x86-64 (SSE2, no FMA), so an elementwise loop such as an LSTM
//! cell's is vectorized four lanes wide at most, and every `f32::mul_add` in it is a call into libm.
//! Run through [`vectorized`], the loop is compiled a second and third time inside functions that
//! enable AVX-512F (16 lanes) or AVX2 + FMA (8 lanes), and the CPU's best one runs, picked at run
//! time as [`crate::kernels::gemm::kernel`] picks its GEMM. The arithmetic is the same in every
//! version (Rust never fuses `a·b + c` on its own; only `mul_add` is an FMA, and it is exact
//! everywhere), so the three give the same bits.

/// A loop for [`vectorized`]. Its `run` must be `#[inline(always)]`: that is what compiles it
/// inside the functions with the wider target features (a closure would be compiled once, on its
/// own, for the baseline).
pub trait Loop {
    /// What the loop returns.
    type Output;
    /// The loop.
    fn run(self) -> Self::Output;
}

/// Runs `l`, compiled for AVX-512F or AVX2 + FMA when the CPU has them.
pub fn vectorized<L: Loop>(l: L) -> L::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { avx512(l) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { avx2(l) };
        }
    }
    l.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<L: Loop>(l: L) -> L::Output {
    l.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<L: Loop>(l: L) -> L::Output {
    l.run()
}

/// Lanes of the widest vectors [`vectorized`] uses (AVX-512, `f32`): the block of `in_lanes!`.
pub const LANES: usize = 16;

/// `in_lanes!(len, |r| body)` runs `body` with `r` bound to each block of `0..len`: whole blocks of
/// [`LANES`], then the rest, if any. Inside a [`Loop`], a loop over one whole block has a constant
/// trip count and becomes plain vector operations, while a loop over all of `0..len` is compiled
/// with a scalar tail of up to a whole vector, run even when `len` is a multiple of 16 (measured:
/// the LSTM cell at H = 128 spent more than half its time in that tail of 16 columns). A macro,
/// not a function taking a closure, so that the body is compiled inside the [`Loop`].
macro_rules! in_lanes {
    ($len:expr, |$r:ident| $body:expr) => {{
        let len: usize = $len;
        let whole = len - len % $crate::kernels::simd::LANES;
        let mut start = 0;
        while start < whole {
            let $r = start..start + $crate::kernels::simd::LANES;
            $body;
            start += $crate::kernels::simd::LANES;
        }
        if whole < len {
            let $r = whole..len;
            $body;
        }
    }};
}
pub(crate) use in_lanes;
