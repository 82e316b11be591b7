//! `σ(x)` and `tanh(x)` in plain arithmetic, so that a loop calling them vectorizes (see
//! [`crate::kernels::simd::vectorized`]) instead of calling libm's `expf`/`tanhf` one value at a
//! time; `f32::exp` and `f32::tanh` are their naive twins.
//!
//! # The math
//! Both need `e^y` for `y ≤ 0` only, which never overflows. It is taken apart as `e^y = 2ⁿ·(1 + q)`:
//! ```text
//! n = round(y·log₂e)     r = y − n·ln2 ∈ [−ln2/2, ln2/2]     q = e^r − 1 ≈ r + r²/2! + … + r⁷/7!
//! ```
//! `n·ln2` is subtracted in two parts (Cody–Waite: `ln2_hi` has its low 12 bits zero, so `n·ln2_hi` is
//! exact), `q` is a Horner polynomial whose first omitted term, `r⁸/8!`, is below 5.2·10⁻⁹, and `2ⁿ`
//! is built from its exponent bits. Under `y = −126·ln2` (`e^y` below the least normal float) `2ⁿ` is 0.
//! - `σ(x)`, with `e = e^−|x| = 2ⁿ + 2ⁿ·q` and `s = 1/(1 + e)`: `s` for `x ≥ 0`, `e·s` for `x < 0`.
//! - `tanh(x) = sign(x)·(−m/(2 + m))` with `m = e^−2|x| − 1 = (2ⁿ − 1) + 2ⁿ·q`: near 0, `m = q` keeps
//!   its relative precision (no `1 − e` cancellation); for large `|x|`, `m = −1` and `tanh = ±1`.
//!
//! NaN gives NaN, ±∞ gives σ = 1 or 0 and tanh = ±1, and ±0 gives 0.5 and ±0. Measured against
//! `f64` over `[−100, 100]` (test below): σ within 3 ulp, tanh within 4 ulp (σ's results below the
//! least normal float, `x < −87.3`, within 1.2·10⁻³⁸ absolutely).

use std::f32::consts::LOG2_E;

/// `ln 2` rounded to 12 fewer bits (0x3F317200), so that `n·LN2_HI` is exact for `|n| < 2¹²`.
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// `ln f32::MIN_POSITIVE = −126·ln2`: below it `e^y` is under the least normal float, taken as 0.
const MIN_EXP: f32 = -87.336_54;

/// `(2ⁿ, q)` with `e^y = 2ⁿ·(1 + q)`, for `y ≤ 0` (see the module docs).
#[inline(always)]
fn exp_parts(y: f32) -> (f32, f32) {
    // Clamped by a comparison, which keeps NaN (f32::max would turn it into MIN_EXP).
    let yc = if y < MIN_EXP { MIN_EXP } else { y };
    let n = (yc * LOG2_E).round_ties_even();
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, yc));
    let p = r.mul_add(1.0 / 5040.0, 1.0 / 720.0);
    let p = r.mul_add(p, 1.0 / 120.0);
    let p = r.mul_add(p, 1.0 / 24.0);
    let p = r.mul_add(p, 1.0 / 6.0);
    let p = r.mul_add(p, 0.5);
    let q = r * r.mul_add(p, 1.0);
    // 2ⁿ from its exponent bits: n + 127 ∈ [1, 127] is an integer, so 2²³ + 127 + n holds it in
    // its low mantissa bits, and shifting them up into the exponent field makes 2ⁿ (the bits of
    // 2²³ itself shift out). Only bit operations, which vectorize. (NaN: q is NaN too.)
    let two_n = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    (if y < MIN_EXP { 0.0 } else { two_n }, q)
}

/// `σ(x) = 1/(1 + e^−x)`, within 3 ulp (see the module docs).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let (two_n, q) = exp_parts(-x.abs());
    let e = two_n.mul_add(q, two_n);
    let s = 1.0 / (1.0 + e);
    if x < 0.0 { e * s } else { s }
}

/// `tanh(x)`, within 4 ulp (see the module docs).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let (two_n, q) = exp_parts(-2.0 * x.abs());
    let m = two_n.mul_add(q, two_n - 1.0);
    (-m / (2.0 + m)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{Loop, vectorized};

    /// Distance from `got` to the exact `want` in units of the last place of `want` as an f32.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.abs().to_bits() + 1) - w.abs()) as f64;
        (got as f64 - want).abs() / ulp
    }

    /// Every 1/4096 of [−100, 100], plus values near 0 down to the subnormals.
    fn points() -> Vec<f32> {
        let mut x: Vec<f32> = (-409_600..=409_600).map(|i| i as f32 / 4096.0).collect();
        for e in -149..0 {
            let v = 2f32.powi(e) * 1.37;
            x.extend([v, -v]);
        }
        x
    }

    #[test]
    fn sigmoid_is_within_3_ulp_of_f64() {
        let mut worst = 0.0f64;
        for x in points() {
            let want = 1.0 / (1.0 + (-x as f64).exp());
            let got = sigmoid(x);
            if want < f32::MIN_POSITIVE as f64 {
                assert!(
                    (got as f64 - want).abs() <= 1.2e-38,
                    "σ({x}) = {got}, want {want}"
                );
            } else {
                worst = worst.max(ulps(got, want));
            }
        }
        assert!(worst <= 3.0, "σ: {worst} ulp");
    }

    #[test]
    fn tanh_is_within_4_ulp_of_f64() {
        let mut worst = 0.0f64;
        for x in points() {
            worst = worst.max(ulps(tanh(x), (x as f64).tanh()));
        }
        assert!(worst <= 4.0, "tanh: {worst} ulp");
    }

    #[test]
    fn edges_nan_infinities_and_zeros() {
        assert!(sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(30.0), 1.0);
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn naive_twins_agree_to_a_few_ulp() {
        // f32::exp and f32::tanh, as the cells used them before.
        for x in points().into_iter().step_by(97) {
            let naive = 1.0 / (1.0 + (-x).exp());
            let tol = 4.0 * f32::EPSILON * naive + 1.2e-38;
            assert!((sigmoid(x) - naive).abs() <= tol, "σ({x})");
            let naive = x.tanh();
            assert!(
                (tanh(x) - naive).abs() <= 5.0 * f32::EPSILON * naive.abs(),
                "tanh({x})"
            );
        }
    }

    #[test]
    fn vectorized_loops_give_the_same_bits_as_scalar_calls() {
        struct Both<'a>(&'a [f32], &'a mut [f32], &'a mut [f32]);
        impl Loop for Both<'_> {
            type Output = ();
            #[inline(always)]
            fn run(self) {
                for ((s, t), &x) in self.1.iter_mut().zip(self.2.iter_mut()).zip(self.0) {
                    *s = sigmoid(x);
                    *t = tanh(x);
                }
            }
        }
        let x = points();
        let (mut s, mut t) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        vectorized(Both(&x, &mut s, &mut t));
        for (i, &x) in x.iter().enumerate() {
            assert_eq!(s[i].to_bits(), sigmoid(x).to_bits(), "σ({x})");
            assert_eq!(t[i].to_bits(), tanh(x).to_bits(), "tanh({x})");
        }
    }
}
