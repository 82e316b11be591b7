//! Elementwise kernels and reductions on slices, each with its naive twin.

/// Lanes of [`sum`]: 16 independent partial sums, which the compiler keeps in one AVX-512 register
/// (or two AVX2 ones) instead of a chain of dependent scalar adds, one every 4 cycles.
const LANES: usize = 16;

/// `Σ x`, in `LANES` interleaved partial sums added at the end (so not in PyTorch's order, but
/// within f32 rounding of it).
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// The naive twin of [`sum`]: left to right, in `f64`.
pub fn sum_naive(x: &[f32]) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// `dst += src`, elementwise.
pub fn add(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn sum_matches_naive_on_odd_lengths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [0, 1, 15, 16, 17, 196, 784, 1001] {
            let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let (fast, slow) = (sum(&x), sum_naive(&x));
            assert!(
                (fast - slow).abs() <= 1e-6 * (n as f32 + 1.0),
                "{n}: {fast} vs {slow}"
            );
        }
    }

    #[test]
    fn add_adds() {
        let mut d = vec![1.0, 2.0, 3.0];
        add(&mut d, &[0.5, -2.0, 1.0]);
        assert_eq!(d, [1.5, 0.0, 4.0]);
    }
}
