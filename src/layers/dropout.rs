//! `Dropout(p=0.5)`: in training, zeroes each value with probability `p` and scales the rest by
//! `1/(1−p)`; in evaluation, the identity. As `torch.nn.Dropout`, but with our own seeded masks.

use super::{Layer, Mode, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use std::fmt;

/// Inverted dropout.
///
/// The mask of a training forward is drawn from `ChaCha8(seed)`, the seed of [`Mode::Train`]: the
/// trainer derives it from the run's seed, the epoch and the batch, and containers mix in the
/// layer's position, so masks are reproducible and a resumed run draws the ones it would have.
/// Value `j` of the whole batch takes word `j` of the stream, so a process given some of the rows
/// draws each at its place in the batch ([`Rows`](super::Rows)) and gets what one process would.
///
/// # Shapes
/// Any; the output has the input's shape.
pub struct Dropout {
    p: f32,
    /// The scaled mask of the last forward (`None` inside means evaluation: the identity).
    mask: Option<Option<Vec<f32>>>,
}

impl Dropout {
    /// Dropout with probability `p ∈ [0, 1]`.
    pub fn new(p: f32) -> Self {
        Dropout { p, mask: None }
    }
}

impl fmt::Display for Dropout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dropout(p={}, inplace=False)", self.p)
    }
}

impl Layer for Dropout {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn needs_whole_batch(&self) -> bool {
        true
    }

    /// `y = x ⊙ m / (1−p)` with `m_i ~ Bernoulli(1−p)`.
    fn forward(&mut self, mut x: Tensor, mode: Mode) -> Result<Tensor> {
        let Mode::Train { seed, rows, .. } = mode else {
            self.mask = Some(None);
            return Ok(x);
        };
        let n = x.shape().first().copied().unwrap_or(1);
        let per_row = x.len() / n.max(1);
        let mut mask = match self.mask.take() {
            Some(Some(m)) => m,
            _ => Vec::new(),
        };
        draw_mask(self.p, seed, &rows.runs(n, per_row), &mut mask);
        x.data_mut()
            .iter_mut()
            .zip(&mask)
            .for_each(|(v, m)| *v *= m);
        self.mask = Some(Some(mask));
        Ok(x)
    }

    /// ∂L/∂x = ∂L/∂y ⊙ m / (1−p).
    fn backward(&mut self, mut grad_y: Tensor) -> Result<Tensor> {
        if let Some(mask) = self.mask.take().ok_or_else(|| no_forward(self))? {
            grad_y
                .data_mut()
                .iter_mut()
                .zip(&mask)
                .for_each(|(g, m)| *g *= m);
            self.mask = Some(Some(mask));
        }
        Ok(grad_y)
    }
}

/// Fills `mask` with the values of `runs` (`(start, count)`: `count` values drawn in order from
/// `ChaCha8(seed)` from word `start` on; one f32 draw is one 32-bit word), one run after the
/// other: 0 with probability `p`, else `1/(1−p)` (0 when `p = 1`).
pub(super) fn draw_mask(p: f32, seed: u64, runs: &[(usize, usize)], mask: &mut Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let keep = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
    mask.clear();
    for &(start, count) in runs {
        rng.set_word_pos(start as u128);
        mask.extend((0..count).map(|_| if rng.r#gen::<f32>() < p { 0.0 } else { keep }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Rows;
    use crate::layers::gradcheck::check_layer;

    fn dropout(p: f32) -> Dropout {
        Dropout::new(p)
    }

    #[test]
    fn gradients_match_central_differences() {
        check_layer(&mut dropout(0.3), &[4, 6], 0.0);
    }

    #[test]
    fn drops_about_p_and_keeps_the_mean() {
        let mut d = dropout(0.25);
        let y = d
            .forward(
                Tensor::new(&[100, 100], vec![1.0; 10_000]).unwrap(),
                Mode::train(3),
            )
            .unwrap();
        let zeros = y.data().iter().filter(|&&v| v == 0.0).count();
        assert!((2300..2700).contains(&zeros), "{zeros} of 10000 dropped");
        let mean = y.data().iter().sum::<f32>() / 10_000.0;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn rows_at_their_places_draw_the_whole_batchs_masks() {
        let x = Tensor::new(&[5, 16], vec![1.0; 80]).unwrap();
        let whole = dropout(0.5).forward(x.clone(), Mode::train(4)).unwrap();
        let at = |rows| Mode::Train {
            seed: 4,
            rows,
            shares: crate::layers::Shares::WHOLE,
        };
        let tail = dropout(0.5)
            .forward(x.rows(2, 5), at(Rows::From(2)))
            .unwrap();
        assert_eq!(tail.data(), &whole.data()[32..]);
        // Rows 4, 0 and 1 of the batch, held in that order.
        let scattered = dropout(0.5)
            .forward(x.rows(0, 3), at(Rows::At(&[4, 0, 1])))
            .unwrap();
        assert_eq!(&scattered.data()[..16], &whole.data()[64..]);
        assert_eq!(&scattered.data()[16..], &whole.data()[..32]);
        let head = dropout(0.5).forward(x.rows(0, 2), Mode::train(4)).unwrap();
        assert_eq!(head.data(), &whole.data()[..32]);
        // Without the offset the tail would repeat the head's draws.
        assert_ne!(head.data(), &tail.data()[..32]);
    }

    #[test]
    fn same_seed_same_mask_and_eval_is_identity() {
        let x = Tensor::new(&[1, 64], (0..64).map(|v| v as f32).collect()).unwrap();
        let mut d = dropout(0.5);
        let a = d.forward(x.clone(), Mode::train(1)).unwrap();
        let b = d.forward(x.clone(), Mode::train(1)).unwrap();
        let c = d.forward(x.clone(), Mode::train(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(d.forward(x.clone(), Mode::Eval).unwrap(), x);
        assert_eq!(
            dropout(1.0).forward(x, Mode::train(1)).unwrap().data(),
            &[0.0; 64]
        );
    }
}
