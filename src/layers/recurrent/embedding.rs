//! `Embedding(num_embeddings, embedding_dim, padding_idx=None)`: a lookup table of vectors, as
//! `torch.nn.Embedding`.

use super::super::{Layer, Mode, Param, no_forward};
use crate::error::{Error, Result};
use crate::init;
use crate::tensor::Tensor;
use rand::Rng;
use std::fmt;

/// `y[n, t] = W[x[n, t]]`: row `x[n, t]` of `weight: [num_embeddings, embedding_dim]`.
///
/// Ids arrive as `f32` (whole numbers in `0..num_embeddings`, checked). `weight ~ N(0, 1)`; the
/// `padding_idx` row starts at zero and gets no gradient, so it stays zero.
///
/// # Shapes
/// `[N, T]` → `[N, T, embedding_dim]`.
///
/// # Errors
/// An id that is not a whole number in range, naming its row and step.
pub struct Embedding {
    num_embeddings: usize,
    embedding_dim: usize,
    padding_idx: Option<usize>,
    weight: Param,
    /// The ids of the last forward, `[N, T]`.
    ids: Option<(Vec<usize>, Vec<usize>)>,
}

impl Embedding {
    /// A table drawn from N(0, 1) with `rng`; `padding_idx` (negative counts from the end) is zero.
    ///
    /// # Errors
    /// `padding_idx` outside `-num_embeddings..num_embeddings`.
    pub fn new(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<i64>,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let padding_idx = match padding_idx {
            None => None,
            Some(p) => {
                let n = num_embeddings as i64;
                if p < -n || p >= n {
                    return Err(Error::invalid(format!(
                        "Embedding: padding_idx {p} must be within num_embeddings ({n})"
                    )));
                }
                Some(if p < 0 { p + n } else { p } as usize)
            }
        };
        let mut weight = init::normal(&[num_embeddings, embedding_dim], 1.0, rng);
        if let Some(p) = padding_idx {
            weight.data_mut()[p * embedding_dim..(p + 1) * embedding_dim].fill(0.0);
        }
        Ok(Embedding {
            num_embeddings,
            embedding_dim,
            padding_idx,
            weight: Param::new(weight),
            ids: None,
        })
    }

    /// The ids of `x: [N, T]` as table rows, or an error naming the first bad one (its row counted
    /// from `first`, the row of `x`'s first in the data it was taken from).
    pub(crate) fn ids(&self, x: &Tensor, first: usize) -> Result<Vec<usize>> {
        if x.shape().len() != 2 {
            return Err(Error::invalid(format!(
                "{self}: expected ids [N, T], got {:?}",
                x.shape()
            )));
        }
        let steps = x.shape()[1];
        x.data()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.fract() == 0.0 && v >= 0.0 && (v as usize) < self.num_embeddings {
                    Ok(v as usize)
                } else {
                    Err(Error::invalid(format!(
                        "{self}: id {v} at row {}, step {} is not a whole number in 0..{}",
                        first + i / steps,
                        i % steps,
                        self.num_embeddings
                    )))
                }
            })
            .collect()
    }
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Embedding({}, {}",
            self.num_embeddings, self.embedding_dim
        )?;
        if let Some(p) = self.padding_idx {
            write!(f, ", padding_idx={p}")?;
        }
        write!(f, ")")
    }
}

impl Layer for Embedding {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input {
            [t] => Ok(vec![*t, self.embedding_dim]),
            _ => Err("ids [T] per sample".to_string()),
        }
    }

    fn forward(&mut self, x: Tensor, _mode: Mode) -> Result<Tensor> {
        let ids = self.ids(&x, 0)?;
        let d = self.embedding_dim;
        let mut y = Vec::with_capacity(ids.len() * d);
        for &id in &ids {
            y.extend_from_slice(&self.weight.value.data()[id * d..(id + 1) * d]);
        }
        let shape = x.shape().to_vec();
        let y = Tensor::new(&[shape[0], shape[1], d], y)?;
        self.ids = Some((shape, ids));
        Ok(y)
    }

    /// ∂L/∂W[v] += Σ_{(n,t): x[n,t] = v} ∂L/∂y[n,t], in the order of the ids, except for
    /// `padding_idx`. Ids are not differentiable: ∂L/∂x is zero.
    fn backward(&mut self, grad_y: Tensor) -> Result<Tensor> {
        let (shape, ids) = self.ids.take().ok_or_else(|| no_forward(self))?;
        let d = self.embedding_dim;
        let grad_w = self.weight.grad.data_mut();
        for (&id, g) in ids.iter().zip(grad_y.data().chunks_exact(d)) {
            if Some(id) != self.padding_idx {
                for (w, g) in grad_w[id * d..(id + 1) * d].iter_mut().zip(g) {
                    *w += g;
                }
            }
        }
        Ok(Tensor::zeros(&shape))
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        f(&format!("{prefix}weight"), &mut self.weight);
    }

    fn params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        f(&format!("{prefix}weight"), &self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn table(padding_idx: Option<i64>) -> Embedding {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        Embedding::new(5, 3, padding_idx, &mut rng).unwrap()
    }

    #[test]
    fn looks_up_rows_and_keeps_padding_at_zero() {
        let mut e = table(Some(-1));
        assert_eq!(e.to_string(), "Embedding(5, 3, padding_idx=4)");
        let x = Tensor::new(&[1, 3], vec![2., 4., 2.]).unwrap();
        let y = e.forward(x, Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[1, 3, 3]);
        assert_eq!(&y.data()[0..3], &e.weight.value.data()[6..9]);
        assert_eq!(&y.data()[3..6], &[0.0; 3]);
        e.backward(Tensor::new(&[1, 3, 3], vec![1.0; 9]).unwrap())
            .unwrap();
        let g = e.weight.grad.data();
        assert_eq!(&g[6..9], &[2.0; 3], "row 2 is used twice");
        assert_eq!(&g[12..15], &[0.0; 3], "padding gets no gradient");
        assert_eq!(e.output_shape(&[7]).unwrap(), vec![7, 3]);
        assert!(e.output_shape(&[7, 2]).is_err());
    }

    #[test]
    fn gradient_matches_central_differences() {
        // L = Σ r ⊙ y is linear in W, so a difference of ±1 is exact up to rounding.
        let mut e = table(None);
        let x = Tensor::new(&[2, 2], vec![1., 3., 3., 0.]).unwrap();
        let r = Tensor::new(&[2, 2, 3], (0..12).map(|i| i as f32 * 0.1 - 0.5).collect()).unwrap();
        let loss = |e: &mut Embedding| -> f64 {
            let y = e.forward(x.clone(), Mode::Eval).unwrap();
            y.data()
                .iter()
                .zip(r.data())
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        loss(&mut e);
        e.backward(r.clone()).unwrap();
        let grad = e.weight.grad.clone();
        for i in 0..grad.len() {
            e.weight.value.data_mut()[i] += 1.0;
            let up = loss(&mut e);
            e.weight.value.data_mut()[i] -= 2.0;
            let down = loss(&mut e);
            e.weight.value.data_mut()[i] += 1.0;
            assert!(
                ((up - down) / 2.0 - grad.data()[i] as f64).abs() < 1e-5,
                "W[{i}]"
            );
        }
    }

    #[test]
    fn bad_ids_are_errors_naming_row_and_step() {
        let mut e = table(None);
        let x = Tensor::new(&[2, 2], vec![0., 1., 2., 5.]).unwrap();
        let msg = e.forward(x, Mode::Eval).unwrap_err().to_string();
        assert!(
            msg.contains("id 5 at row 1, step 1 is not a whole number in 0..5"),
            "{msg}"
        );
        let x = Tensor::new(&[1, 2], vec![0.5, 1.]).unwrap();
        assert!(
            e.forward(x, Mode::Eval)
                .unwrap_err()
                .to_string()
                .contains("id 0.5 at row 0, step 0")
        );
        let x = Tensor::zeros(&[2, 2, 1]);
        assert!(
            e.forward(x, Mode::Eval)
                .unwrap_err()
                .to_string()
                .contains("expected ids [N, T]")
        );
        assert!(e.backward(Tensor::zeros(&[1])).is_err());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert!(Embedding::new(5, 3, Some(5), &mut rng).is_err());
    }
}
