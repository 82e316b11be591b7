//! Data parallelism for small networks: a second copy of the model runs one half of every batch on
//! the other core while the model itself runs the first half.
//!
//! Why: at batch 50 a small network's products are tiny (seed-cnn's second conv is 8×72 by 72×36 per
//! image), so splitting each layer across the cores hands work over ten times per batch, and the idle
//! core falls asleep between hand-offs. Two halves of the batch meet once: the copy's parameter
//! gradients are added onto the model's before the optimiser step, and the model's weights are
//! copied back before the next batch.
//!
//! Exactness: every loss is a mean over rows, so half `h` of a batch of `N` scales its ∂L/∂y by
//! `|h|/N` and the two halves' gradients add up to the whole batch's (up to the order of the sums).
//! Whether a network trains in halves depends on the network and the batch size alone, never on the
//! thread count (one thread runs the halves in turn), so 1 and 4 threads sum in the same order and
//! give the same bits. Networks with Dropout are left whole: its masks are drawn row after row of the
//! batch, and a half batch would draw other ones; so are networks with BatchNorm, whose rows are
//! normalised by the whole batch's statistics ([`Layer::needs_whole_batch`]).

use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::layers::{Layer, param_count};
use crate::loss::Loss;
use crate::model::Model;
use crate::train::{Scratch, pass};
use rand::SeedableRng;

/// Networks with at most this many parameters train in halves: copying their weights and gradients
/// each batch (28 KB for seed-cnn's 3,554) costs far less than the hand-offs it saves. Larger ones
/// (mlp, 670k; lenet, 421k) keep their products split across the cores, which pays for them: in
/// halves, mlp took 1.16 s per epoch instead of 0.74, lenet 1.34 s per 10k images instead of 1.2.
const MAX_PARAMS: usize = 1 << 16;

/// The second copy and the buffers of both halves.
pub struct Replica {
    model: Model,
    scratch: [Scratch; 2],
    /// Weights on their way to the copy, then the copy's gradients on their way back.
    buf: Vec<f32>,
}

impl Replica {
    /// A copy of `model` when training in halves pays and changes nothing but the order of sums:
    /// batches of two or more, at most `MAX_PARAMS` (65,536) parameters, no Dropout, and a model whose
    /// text builds it again (not one of a user's own layers).
    pub fn for_model(model: &mut Model, batch_size: usize) -> Option<Replica> {
        let params = param_count(model.net());
        if batch_size < 2
            || params > MAX_PARAMS
            || model.net_ref().needs_whole_batch()
            || !model.is_from_text()
        {
            return None;
        }
        // The weights drawn here are overwritten before every batch.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let copy = Model::build(model.text(), model.input_shape(), &mut rng).ok()?;
        Some(Replica {
            model: copy,
            scratch: Default::default(),
            buf: Vec::with_capacity(params),
        })
    }

    /// [`pass`] over batch `idx` (at least two samples) in two halves, the first on `model`, the
    /// second on the copy, at once; `model` ends with the whole batch's gradients.
    pub fn pass(
        &mut self,
        model: &mut Model,
        loss: Loss,
        train: &Dataset,
        idx: &[usize],
        seed: u64,
    ) -> Result<(f64, usize)> {
        // Weights: model → copy.
        self.buf.clear();
        model
            .net()
            .visit_params("", &mut |_, p| self.buf.extend_from_slice(p.value.data()));
        let mut at = 0;
        self.model.net().visit_params("", &mut |_, p| {
            let n = p.value.len();
            p.value.data_mut().copy_from_slice(&self.buf[at..at + n]);
            at += n;
        });

        let (a, b) = idx.split_at(idx.len() / 2);
        let share = |h: &[usize]| h.len() as f32 / idx.len() as f32;
        let [s0, s1] = &mut self.scratch;
        let copy = &mut self.model;
        let (first, second) = rayon::join(
            || pass(model, loss, train, a, seed, share(a), s0),
            || pass(copy, loss, train, b, seed, share(b), s1),
        );
        let ((la, ra), (lb, rb)) = (first?, second?);

        // Gradients: copy → model, and the copy's zeroed for the next batch.
        self.buf.clear();
        self.model.net().visit_params("", &mut |_, p| {
            self.buf.extend_from_slice(p.grad.data());
            p.grad.data_mut().fill(0.0);
        });
        let mut at = 0;
        model.net().visit_params("", &mut |_, p| {
            let n = p.grad.len();
            for (g, c) in p.grad.data_mut().iter_mut().zip(&self.buf[at..at + n]) {
                *g += c;
            }
            at += n;
        });
        let loss = (la * a.len() as f64 + lb * b.len() as f64) / idx.len() as f64;
        Ok((loss, ra + rb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Labels;
    use crate::init;
    use crate::train::Scratch;

    const NET: &str = "Conv2d(1,4,3,stride=2), ReLU, Flatten, Linear(36,10)";

    fn model(text: &str) -> Model {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        Model::build(text, &[1, 8, 8], &mut rng).unwrap()
    }

    fn grads(m: &mut Model) -> Vec<f32> {
        let mut all = Vec::new();
        m.net()
            .visit_params("", &mut |_, p| all.extend_from_slice(p.grad.data()));
        all
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn two_halves_give_the_whole_batch_loss_and_gradients() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let x = init::uniform(&[11, 1, 8, 8], -1.0, 1.0, &mut rng);
        let y = (0..11).map(|i| (i * 7 % 10) as u32).collect();
        let data = Dataset::new(x, Labels::Classes(y)).unwrap();
        let idx: Vec<usize> = (0..11).rev().collect();
        let (mut halves, mut whole) = (model(NET), model(NET));
        let ((lh, rh), gh) = pool(2).install(|| {
            let mut r = Replica::for_model(&mut halves, 11).expect("a small net without Dropout");
            // Two batches: the second starts from gradients the first left in the copy, if any.
            r.pass(&mut halves, Loss::CrossEntropy, &data, &idx, 0)
                .unwrap();
            let out = r
                .pass(&mut halves, Loss::CrossEntropy, &data, &idx, 0)
                .unwrap();
            (out, grads(&mut halves))
        });
        let mut s = Scratch::default();
        pass(&mut whole, Loss::CrossEntropy, &data, &idx, 0, 1.0, &mut s).unwrap();
        let (lw, rw) = pass(&mut whole, Loss::CrossEntropy, &data, &idx, 0, 1.0, &mut s).unwrap();
        assert!((lh - lw).abs() <= 1e-6 * lw.abs(), "loss {lh} vs {lw}");
        assert_eq!(rh, rw);
        for (a, b) in gh.iter().zip(grads(&mut whole)) {
            assert!((a - b).abs() <= 1e-5 * (1e-3 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn only_small_nets_without_dropout_train_in_halves_on_any_thread_count() {
        let two = pool(2);
        assert!(two.install(|| Replica::for_model(&mut model(NET), 50).is_some()));
        assert!(pool(1).install(|| Replica::for_model(&mut model(NET), 50).is_some()));
        assert!(two.install(|| Replica::for_model(&mut model(NET), 1).is_none()));
        let dropout = "Conv2d(1,4,3,stride=2), ReLU, Flatten, Dropout(0.5), Linear(36,10)";
        assert!(two.install(|| Replica::for_model(&mut model(dropout), 50).is_none()));
        // BatchNorm normalises by the whole batch's statistics; Dropout2d draws per row.
        for whole in [
            "Conv2d(1,4,3,stride=2), BatchNorm2d(4), ReLU, Flatten, Linear(36,10)",
            "Conv2d(1,4,3,stride=2), Dropout2d(0.5), Flatten, Linear(36,10)",
        ] {
            assert!(two.install(|| Replica::for_model(&mut model(whole), 50).is_none()));
        }
        let big = "Flatten, Linear(64,1100)";
        assert!(two.install(|| Replica::for_model(&mut model(big), 50).is_none()));
    }
}
