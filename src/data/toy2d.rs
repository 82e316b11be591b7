//! The classic two-input datasets of TensorFlow Playground: points in the plane, two classes.
//!
//! All live in the square [−6, 6]² (the playground's view):
//! - `circle`: class 1 inside radius 2, class 0 on the ring 3.5 ≤ r ≤ 5;
//! - `xor`: uniform in [−5, 5]², class 1 where x·y > 0 (points kept 0.3 away from the axes);
//! - `gauss`: two Gaussians of σ = 1 around (2, 2) (class 1) and (−2, −2) (class 0);
//! - `spiral`: two interleaved arms, r = 5·t, angle 3.5π·t (+π for class 0), t ∈ [0, 1).
//!
//! `noise` is the standard deviation of a Gaussian added to each coordinate. The classes
//! alternate sample by sample and everything comes from `seed`.

use crate::data::dataset::{Dataset, Labels};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::f32::consts::PI;

/// The dataset names [`generate`] knows.
pub const NAMES: [&str; 4] = ["circle", "xor", "gauss", "spiral"];

/// `n` points of dataset `name` with Gaussian noise of standard deviation `noise`:
/// `x: [n, 2]`, classes 0 and 1.
///
/// # Errors
/// An unknown name, or a noise that is negative or not finite.
pub fn generate(name: &str, n: usize, noise: f32, seed: u64) -> Result<Dataset> {
    if !NAMES.contains(&name) {
        return Err(Error::invalid(format!(
            "unknown dataset '{name}': expected one of {}",
            NAMES.join(", ")
        )));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(Error::invalid(format!(
            "noise {noise}: expected a finite number ≥ 0"
        )));
    }
    let jitter = Normal::new(0.0f32, noise).expect("checked above");
    let unit = Normal::new(0.0f32, 1.0).expect("σ = 1 is valid");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as u32;
        let (a, b) = match name {
            "circle" => {
                let r = if class == 1 {
                    rng.gen_range(0.0..2.0)
                } else {
                    rng.gen_range(3.5..5.0)
                };
                let angle = rng.gen_range(0.0..2.0 * PI);
                (r * angle.cos(), r * angle.sin())
            }
            "xor" => {
                // A side of the axis for each coordinate, chosen so that the signs give the class.
                let sx: f32 = if rng.r#gen() { 1.0 } else { -1.0 };
                let sy = if class == 1 { sx } else { -sx };
                (sx * rng.gen_range(0.3..5.0), sy * rng.gen_range(0.3..5.0))
            }
            "gauss" => {
                let c = if class == 1 { 2.0 } else { -2.0 };
                (c + unit.sample(&mut rng), c + unit.sample(&mut rng))
            }
            _ => {
                let t: f32 = rng.gen_range(0.0..1.0);
                let angle = 3.5 * PI * t + if class == 1 { 0.0 } else { PI };
                (5.0 * t * angle.sin(), 5.0 * t * angle.cos())
            }
        };
        x.push(a + jitter.sample(&mut rng));
        x.push(b + jitter.sample(&mut rng));
        y.push(class);
    }
    Dataset::new(Tensor::new(&[n, 2], x)?, Labels::Classes(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(name: &str, noise: f32) -> Vec<([f32; 2], u32)> {
        let d = generate(name, 400, noise, 7).unwrap();
        let Labels::Classes(y) = d.y else { panic!() };
        d.x.rows(0, y.len())
            .data()
            .chunks(2)
            .zip(y)
            .map(|(p, c)| ([p[0], p[1]], c))
            .collect()
    }

    #[test]
    fn without_noise_each_dataset_follows_its_rule() {
        for (p, c) in points("circle", 0.0) {
            let r = p[0].hypot(p[1]);
            assert!(if c == 1 {
                r < 2.0
            } else {
                (3.5..5.0 + 1e-5).contains(&r)
            });
        }
        for (p, c) in points("xor", 0.0) {
            assert_eq!((p[0] * p[1] > 0.0) as u32, c);
            assert!(p[0].abs() >= 0.3 && p[1].abs() >= 0.3);
        }
        let g = points("gauss", 0.0);
        let mean = |k: u32| g.iter().filter(|q| q.1 == k).map(|q| q.0[0]).sum::<f32>() / 200.0;
        assert!((mean(1) - 2.0).abs() < 0.3 && (mean(0) + 2.0).abs() < 0.3);
        for (p, _) in points("spiral", 0.0) {
            assert!(p[0].hypot(p[1]) <= 5.0 + 1e-5);
        }
        assert_eq!(
            points("spiral", 0.0).iter().filter(|q| q.1 == 1).count(),
            200
        );
    }

    #[test]
    fn noise_moves_points_and_the_seed_fixes_them() {
        assert_ne!(points("circle", 0.5), points("circle", 0.0));
        assert_eq!(points("circle", 0.5), points("circle", 0.5));
    }

    #[test]
    fn unknown_names_and_bad_noise_are_refused() {
        let e = generate("moons", 10, 0.0, 0).unwrap_err().to_string();
        assert!(
            e.contains("unknown dataset 'moons'") && e.contains("spiral"),
            "{e}"
        );
        let e = generate("xor", 10, -1.0, 0).unwrap_err().to_string();
        assert!(e.contains("noise -1"), "{e}");
    }
}
