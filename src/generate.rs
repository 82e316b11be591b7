//! Sampling text from a character-level language model, one character at a time.

use crate::error::{Error, Result};
use crate::layers::{Layer, Mode};
use crate::model::Model;
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};

/// How to sample.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// Characters to generate.
    pub length: usize,
    /// Logits are divided by this before the softmax: below 1 sharper, above 1 flatter.
    pub temperature: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// The model sees at most this many of the last characters (its training sequence length).
    pub context: usize,
}

/// Samples `s.length` characters after `prime` from `model` (ids `[1, T]` → logits `[1, T, V]`
/// over `vocab`), calling `emit` with the prime's characters, then each sampled one as it comes. Each step runs the model on the last
/// `s.context` characters and draws the next from `softmax(logits_last / temperature)`.
///
/// # Errors
/// An empty prime, a character of it outside `vocab`, a temperature that is not > 0, a model whose
/// output is not `[T, V]`.
pub fn generate(
    model: &mut Model,
    vocab: &[char],
    prime: &str,
    s: &Sampling,
    emit: &mut dyn FnMut(char),
) -> Result<()> {
    if !(s.temperature > 0.0 && s.temperature.is_finite()) {
        return Err(Error::invalid(format!(
            "--temperature must be a finite number above 0, got {}",
            s.temperature
        )));
    }
    if prime.is_empty() {
        return Err(Error::invalid("--prime must hold at least one character"));
    }
    let v = vocab.len();
    if model.output_shape().last() != Some(&v) || model.output_shape().len() != 2 {
        return Err(Error::invalid(format!(
            "the model outputs {:?} per sequence, not [T, {v}] scores over its {v} characters",
            model.output_shape()
        )));
    }
    let mut ids: Vec<u32> = crate::data::text::encode(prime, vocab)
        .map_err(|e| Error::invalid(format!("--prime: {e}")))?;
    prime.chars().for_each(&mut *emit);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed);
    let mut p = vec![0f64; v];
    for _ in 0..s.length {
        let window = &ids[ids.len().saturating_sub(s.context.max(1))..];
        let x = Tensor::new(
            &[1, window.len()],
            window.iter().map(|&i| i as f32).collect(),
        )?;
        // The net takes any T; the model was built for its training length.
        let y = model.net().forward(x, Mode::Eval)?;
        let last = &y.data()[y.len() - v..];
        // softmax(l/τ) with the maximum subtracted; the draw walks the cumulative sum in order.
        let m = last.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        for (q, &l) in p.iter_mut().zip(last) {
            *q = ((l as f64 - m) / s.temperature).exp();
        }
        let mut u = rng.r#gen::<f64>() * p.iter().sum::<f64>();
        let mut next = v - 1;
        for (i, &q) in p.iter().enumerate() {
            if u < q {
                next = i;
                break;
            }
            u -= q;
        }
        ids.push(next as u32);
        emit(vocab[next]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::new("Embedding(3, 4), Linear(4, 3)", &[5], 1).unwrap()
    }

    fn sample(temperature: f64, seed: u64) -> Result<String> {
        let mut out = String::new();
        let s = Sampling {
            length: 40,
            temperature,
            seed,
            context: 5,
        };
        generate(&mut model(), &['a', 'b', 'c'], "ab", &s, &mut |c| {
            out.push(c)
        })?;
        Ok(out)
    }

    #[test]
    fn seeded_samples_repeat_and_stay_in_the_vocabulary() {
        let a = sample(0.8, 3).unwrap();
        assert_eq!(a.chars().count(), 42);
        assert!(a.starts_with("ab"));
        assert!(a.chars().all(|c| "abc".contains(c)));
        assert_eq!(a, sample(0.8, 3).unwrap());
        assert_ne!(a, sample(0.8, 4).unwrap());
    }

    /// A tiny temperature picks the arg-max: after the model's favourite successor of each
    /// character, the sequence settles into a fixed cycle.
    #[test]
    fn low_temperature_is_greedy() {
        let a = sample(1e-6, 1).unwrap();
        let b = sample(1e-6, 2).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = sample(0.0, 1).unwrap_err().to_string();
        assert!(
            e.contains("--temperature must be a finite number above 0, got 0"),
            "{e}"
        );
        let mut m = model();
        let s = Sampling {
            length: 1,
            temperature: 1.0,
            seed: 0,
            context: 5,
        };
        let e = generate(&mut m, &['a', 'b', 'c'], "abz", &s, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string().contains(
                "--prime: character 'z' (at 2) is not in the model's vocabulary of 3 characters"
            ),
            "{e}"
        );
        let e = generate(&mut m, &['a', 'b', 'c'], "", &s, &mut |_| {}).unwrap_err();
        assert!(
            e.to_string()
                .contains("--prime must hold at least one character")
        );
        let e = generate(&mut m, &['a', 'b'], "a", &s, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("not [T, 2] scores"), "{e}");
    }
}
