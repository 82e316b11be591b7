//! Data parallelism across processes: R ranks (started by `mpirun`) train the model one process
//! would.
//!
//! Every rank holds the whole model and the whole dataset, and draws the same shuffled order from the
//! seed. Batch `B` of `N` rows is cut into R contiguous shares, as even as possible ([`share`]); rank
//! `r` runs forward and backward on its share `S_r` only, with ∂L/∂y scaled by `|S_r|/N`. Every loss
//! is a mean over rows, so
//!
//! ```text
//! ∂L_B/∂θ = Σ_r (|S_r|/N) · ∂L_{S_r}/∂θ
//! ```
//!
//! and one sum over the ranks (an allreduce of one fused buffer: every gradient, then the loss and
//! the right answers) gives every rank the whole batch's gradient. Every rank then takes the same
//! optimiser step from the same state, so the weights stay equal on all ranks (checked after every
//! epoch). Against one process, only the order of float sums differs: within a share, the products
//! sum over `|S_r|` rows instead of `N`, and the shares are added last.
//!
//! Dropout draws each row of a share at its place in the batch ([`crate::layers::Rows`]), so the
//! masks are those of one process. BatchNorm sums its batch statistics over the ranks through
//! the mode's [`Shares`] (the run's group, [`install`]ed), so it normalises with the whole batch's
//! statistics; a rank whose share is empty still runs the pass on no rows, to meet those sums.
//!
//! `--shard` ([`Held::Part`]): rank `r` holds only rows `share(N, r, R)` of the dataset, a
//! contiguous 1/R of it. It still draws the order of all `N` rows from the seed, and in each batch
//! computes the rows it holds: `S_r` is then the batch's rows that fall in its part (scattered over
//! the batch, so `|S_r|` is uneven, binomial around `N_B/R`), and the same sum gives the same whole
//! batch's gradient, Dropout masks and BatchNorm statistics; again only the order of the float sums
//! differs from one process.

#[cfg(feature = "mpi")]
mod mpi;

use crate::checkpoint::{self, Checkpoint};
use crate::data::dataset::{Dataset, Labels};
use crate::data::inputs::Samples;
use crate::error::{Error, Result};
use crate::layers::{BatchSum, Layer, Mode, Rows, Shares};
use crate::loss::Loss;
use crate::model::Model;
use crate::train::{Evaluation, Scratch, eval_sum, pass_at};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

/// The processes of one run. Every call is collective: every rank makes it, in the same order.
/// Failures inside the transport end the run (MPI's default error handler aborts every rank).
pub trait Group: Send + Sync {
    /// This process, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// `out = Σ_ranks input`, element by element, the same bits on every rank.
    fn sum_f32(&self, input: &[f32], out: &mut [f32]);
    /// As [`Group::sum_f32`], in f64.
    fn sum_f64(&self, input: &[f64], out: &mut [f64]);
    /// Rank 0's `bytes` on every rank.
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Every rank's `bytes`, in rank order, on every rank.
    fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>>;
    /// Ends every rank of the run at once, for a failure the other ranks cannot see.
    fn abort(&self, code: i32) -> !;
}

/// One process on its own: every collective is the identity.
pub struct Single;

impl Group for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, input: &[f32], out: &mut [f32]) {
        out.copy_from_slice(input);
    }
    fn sum_f64(&self, input: &[f64], out: &mut [f64]) {
        out.copy_from_slice(input);
    }
    fn broadcast(&self, _: &mut Vec<u8>) {}
    fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        vec![bytes.to_vec()]
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The number of ranks the launcher started, from its environment (Open MPI, MPICH/Hydra, PMIx).
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The group of this run: the MPI world when `mpirun` started more than one rank, else [`Single`]
/// (MPI is then not initialised at all, so a plain run behaves as it always did).
///
/// # Errors
/// Started with several ranks by a binary built without the `mpi` feature, or MPI cannot give the
/// threading level the trainer needs.
pub fn launch() -> Result<Arc<dyn Group>> {
    match launched_size() {
        None | Some(0 | 1) => Ok(Arc::new(Single)),
        #[cfg(feature = "mpi")]
        Some(_) => Ok(Arc::new(mpi::Mpi::init()?)),
        #[cfg(not(feature = "mpi"))]
        Some(n) => Err(Error::invalid(format!(
            "started as one of {n} MPI ranks, but this scratchnet was built without MPI; \
             build it with `cargo build --release --features mpi`"
        ))),
    }
}

/// Rows `start..end` of `n` that rank `rank` of `size` takes: contiguous, in rank order, the first
/// `n mod size` ranks one row more than the rest (ranks beyond `n` take none).
pub fn share(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// The rows of a dataset that this rank holds.
#[derive(Clone, Copy)]
pub enum Held<'a> {
    /// All of them (every rank read the whole data).
    Whole(&'a Dataset),
    /// Row `i` of `data` is row `first + i` of a dataset of `total` rows (`--shard`: rank `r` of
    /// `R` holds rows [`share`]`(total, r, R)`).
    Part {
        /// The rows held.
        data: &'a Dataset,
        /// The first one's index in the whole dataset.
        first: usize,
        /// The rows of the whole dataset.
        total: usize,
    },
}

impl<'a> Held<'a> {
    /// The rows held.
    pub fn data(&self) -> &'a Dataset {
        match *self {
            Held::Whole(d) | Held::Part { data: d, .. } => d,
        }
    }

    /// The rows of the whole dataset.
    pub fn total(&self) -> usize {
        match *self {
            Held::Whole(d) => d.len(),
            Held::Part { total, .. } => total,
        }
    }

    /// The index in [`Held::data`] of row `row` of the whole dataset, if this rank holds it.
    pub fn local(&self, row: usize) -> Option<usize> {
        match *self {
            Held::Whole(_) => Some(row),
            Held::Part { data, first, .. } => (first..first + data.len())
                .contains(&row)
                .then(|| row - first),
        }
    }
}

/// The buffers of data-parallel steps: this rank's gradients with the loss, the right answers and
/// the interrupt flag behind them, and the sums over the ranks; the rows of the batch it computes.
#[derive(Default)]
pub struct Reducer {
    send: Vec<f32>,
    recv: Vec<f32>,
    scratch: Scratch,
    /// This rank's rows of the batch, as indices into the data it holds.
    mine: Vec<usize>,
    /// Their places in the batch (with `--shard`).
    places: Vec<usize>,
}

/// What one data-parallel step gives every rank.
pub struct Step {
    /// Mean loss over the whole batch.
    pub loss: f64,
    /// Right answers in the whole batch.
    pub right: usize,
    /// Whether any rank was asked to stop.
    pub stop: bool,
}

impl Reducer {
    /// Forward and backward of this rank's share of batch `idx` (rows of the whole dataset; Dropout
    /// seeded by `seed`), then one sum over the ranks: every rank's `model` ends with the whole
    /// batch's gradients. The share is a contiguous [`share`] of the batch when every rank holds
    /// every row, else the batch's rows that `train` holds. `stop` is this rank's interrupt flag;
    /// the step says whether any rank's was set, so that all stop together.
    ///
    /// A non-finite loss on any rank makes the batch's loss non-finite on every rank.
    #[allow(clippy::too_many_arguments)]
    pub fn pass(
        &mut self,
        group: &dyn Group,
        model: &mut Model,
        loss: Loss,
        train: Held,
        idx: &[usize],
        seed: u64,
        stop: bool,
    ) -> Result<Step> {
        if installed_size() != Some(group.size()) {
            return Err(Error::invalid(
                "dist::install(group) must come before data-parallel training (BatchNorm sums \
                 its statistics over the installed group)",
            ));
        }
        let (mine, places) = (&mut self.mine, &mut self.places);
        mine.clear();
        places.clear();
        let rows = match train {
            Held::Whole(_) => {
                let rows = share(idx.len(), group.rank(), group.size());
                mine.extend_from_slice(&idx[rows.clone()]);
                Rows::From(rows.start)
            }
            Held::Part { .. } => {
                for (place, &row) in idx.iter().enumerate() {
                    if let Some(i) = train.local(row) {
                        mine.push(i);
                        places.push(place);
                    }
                }
                Rows::At(places)
            }
        };
        let mode = Mode::Train {
            seed,
            rows,
            shares: Shares::across(&Installed),
        };
        // An empty share runs too (on no rows): BatchNorm's sums are collective.
        let scale = mine.len() as f32 / idx.len() as f32;
        let data = train.data();
        let (l, right) = pass_at(model, loss, data, mine, mode, scale, &mut self.scratch)?;
        let mine = mine.len();
        let l = if mine == 0 { 0.0 } else { l };
        // Fused: every gradient in visiting order, then Σ loss, right answers, stop flags.
        self.send.clear();
        model
            .net()
            .visit_params("", &mut |_, p| self.send.extend_from_slice(p.grad.data()));
        let grads = self.send.len();
        self.send.extend([
            (l * mine as f64) as f32,
            right as f32,
            f32::from(u8::from(stop)),
        ]);
        self.recv.resize(self.send.len(), 0.0);
        group.sum_f32(&self.send, &mut self.recv);
        let mut at = 0;
        model.net().visit_params("", &mut |_, p| {
            let n = p.grad.len();
            p.grad.data_mut().copy_from_slice(&self.recv[at..at + n]);
            at += n;
        });
        let tail = &self.recv[grads..];
        Ok(Step {
            loss: tail[0] as f64 / idx.len() as f64,
            right: tail[1] as usize,
            stop: tail[2] > 0.0,
        })
    }
}

/// [`crate::train::evaluate`] with the samples split across the ranks ([`share`]) and the figures
/// summed: every rank gets the loss and right answers over all of `data`. `predictions` holds this
/// rank's share only. A rank holding a [`Held::Part`] holds its share, and evaluates all of it.
pub fn evaluate_in(
    group: &dyn Group,
    model: &mut Model,
    loss: Loss,
    data: Held,
    batch: usize,
) -> Result<Evaluation> {
    let n = data.total();
    let rows = match data {
        Held::Whole(_) => share(n, group.rank(), group.size()),
        Held::Part { data, .. } => 0..data.len(),
    };
    let data = data.data();
    let mut e = eval_sum(model, loss, data, rows, batch)?;
    let mut sums = [0.0; 2];
    group.sum_f64(&[e.loss, e.correct as f64], &mut sums);
    e.loss = sums[0] / n.max(1) as f64;
    e.correct = sums[1] as usize;
    e.total = n * data.y.per_sample().max(1);
    Ok(e)
}

/// What each rank holds of the training data (and the test data): one line per rank, in rank
/// order, on every rank (rank 0 prints them): `rank 1 of 2 holds training rows 2000..4000 of 4000
/// (6.3 MB), test rows …` (inputs and targets in memory: 1 byte a pixel held as `u8`, else 4 bytes
/// a value).
pub fn held_lines(group: &dyn Group, train: Held, test: Option<Held>) -> Vec<String> {
    let rows = |h: Held| {
        let first = match h {
            Held::Whole(_) => 0,
            Held::Part { first, .. } => first,
        };
        let d = h.data();
        let labels = match &d.y {
            Labels::Classes(c) | Labels::Steps { classes: c, .. } => c.len(),
            Labels::Values(t) => t.len(),
        };
        let kb = (d.x.bytes() + 4 * labels) as f64 / 1e3;
        let size = match kb {
            ..1000.0 => format!("{kb:.1} kB"),
            _ => format!("{:.1} MB", kb / 1e3),
        };
        format!(
            "rows {first}..{} of {} ({size})",
            first + d.len(),
            h.total()
        )
    };
    let mut mine = format!("holds training {}", rows(train));
    if let Some(t) = test {
        mine += &format!(", test {}", rows(t));
    }
    let size = group.size();
    group
        .gather(mine.as_bytes())
        .iter()
        .enumerate()
        .map(|(r, b)| format!("rank {r} of {size} {}", String::from_utf8_lossy(b)))
        .collect()
}

/// A 64-bit fingerprint of a dataset's inputs and targets (FNV-1a over their bits, in order).
pub fn checksum(data: &Dataset) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u32| h = (h ^ u64::from(v)).wrapping_mul(0x0100_0000_01b3);
    data.x
        .chunks(|_, c| {
            c.data().iter().for_each(|v| eat(v.to_bits()));
            Ok(())
        })
        .expect("nothing fails");
    match &data.y {
        Labels::Classes(c) | Labels::Steps { classes: c, .. } => c.iter().for_each(|&v| eat(v)),
        Labels::Values(t) => t.data().iter().for_each(|v| eat(v.to_bits())),
    }
    h
}

/// Ranks that were started with different flags or data.
#[derive(Debug)]
pub struct Disagree(pub String);

impl std::fmt::Display for Disagree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Disagree {}

/// Checks that every rank has the same `(name, value)` facts as rank 0 (flags, data lengths and
/// checksums, model); every rank gets the same answer.
///
/// # Errors
/// The first rank and fact that differ, with both values.
pub fn agree(group: &dyn Group, facts: &[(&str, String)]) -> std::result::Result<(), Disagree> {
    let mine = serde_json::to_vec(facts).expect("strings encode");
    let all = group.gather(&mine);
    let decode = |b: &[u8]| serde_json::from_slice::<Vec<(String, String)>>(b).unwrap_or_default();
    let root = decode(&all[0]);
    for (rank, bytes) in all.iter().enumerate().skip(1) {
        let theirs = decode(bytes);
        if theirs.len() != root.len() {
            return Err(Disagree(format!(
                "rank {rank} runs another version of scratchnet than rank 0"
            )));
        }
        for ((name, ours), (_, other)) in root.iter().zip(&theirs) {
            if ours != other {
                return Err(Disagree(format!(
                    "rank {rank} was started with other {name} than rank 0 ({other} against \
                     {ours}); every rank needs the same flags and data"
                )));
            }
        }
    }
    Ok(())
}

/// The checkpoint at `path` as rank 0 reads it, on every rank (the others need no copy of the
/// file, and all start from the same bytes).
///
/// # Errors
/// As [`checkpoint::read`], on rank 0 (the other ranks are then left waiting: abort them).
pub fn read_checkpoint(group: &dyn Group, path: &Path) -> Result<Checkpoint> {
    let mut bytes = Vec::new();
    if group.rank() == 0 {
        bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    }
    group.broadcast(&mut bytes);
    checkpoint::parse(&bytes, path)
}

/// Rank 0's parameters on every rank.
pub fn broadcast_params(group: &dyn Group, model: &mut Model) {
    let mut bytes = Vec::new();
    if group.rank() == 0 {
        model.net().visit_params("", &mut |_, p| {
            bytes.extend(p.value.data().iter().flat_map(|v| v.to_le_bytes()))
        });
    }
    group.broadcast(&mut bytes);
    let mut at = 0;
    model.net().visit_params("", &mut |_, p| {
        for v in p.value.data_mut() {
            *v = f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
            at += 4;
        }
    });
}

/// Checks that every rank holds the same weights and buffers (BatchNorm's running statistics), bit
/// for bit (they take the same steps from the same sums; a transport that summed differently on
/// some rank would show here).
///
/// # Errors
/// The first rank whose weights differ from rank 0's.
pub fn check_same_weights(group: &dyn Group, model: &mut Model, epoch: usize) -> Result<()> {
    if group.size() == 1 {
        return Ok(());
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |t: &crate::Tensor| {
        for v in t.data() {
            h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
    };
    model.net().visit_params("", &mut |_, p| eat(&p.value));
    model.net().visit_buffers("", &mut |_, b| eat(&b.value));
    let all = group.gather(&h.to_le_bytes());
    match all.iter().position(|b| *b != all[0]) {
        Some(rank) => Err(Error::invalid(format!(
            "after epoch {epoch} the weights of rank {rank} differ from rank 0's: the ranks did not \
             receive the same gradient sums"
        ))),
        None => Ok(()),
    }
}

/// The group BatchNorm synchronises its statistics over, while a data-parallel run trains.
static BATCH_GROUP: RwLock<Option<Weak<dyn Group>>> = RwLock::new(None);

/// Makes BatchNorm in data-parallel steps sum its statistics over `group`, for as long as it lives
/// (the run's group).
pub fn install(group: &Arc<dyn Group>) {
    *BATCH_GROUP.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(group));
}

/// The installed group, while it lives.
fn installed() -> Option<Arc<dyn Group>> {
    BATCH_GROUP
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(Weak::upgrade)
}

/// The size of the installed group, while it lives.
fn installed_size() -> Option<usize> {
    installed().map(|g| g.size())
}

/// The [`BatchSum`] of data-parallel steps: over the [`install`]ed group. It replaces `values`
/// (per-channel sums over this rank's rows, such as `[M, Σx…]` in BatchNorm's forward or
/// `[Σ∂y, Σ∂y·x̂…]` in its backward) by their sums over all ranks. Without an installed group it
/// does nothing (a [`Reducer`] refuses to start then).
struct Installed;

impl BatchSum for Installed {
    fn sum(&self, values: &mut [f64]) {
        if let Some(g) = installed() {
            let input = values.to_vec();
            g.sum_f64(&input, values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order_and_differ_by_at_most_one() {
        for n in 0..12 {
            for size in 1..6 {
                let shares: Vec<_> = (0..size).map(|r| share(n, r, size)).collect();
                assert_eq!(shares[0].start, 0);
                assert_eq!(shares[size - 1].end, n);
                for w in shares.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "n {n} size {size}");
                    assert!(w[0].len() == w[1].len() || w[0].len() == w[1].len() + 1);
                }
            }
        }
        assert_eq!(share(2, 2, 3), 2..2, "a batch smaller than the ranks");
        assert_eq!(share(10, 1, 3), 4..7);
    }

    /// A stand-in for rank 0 of two ranks whose twin always holds the same values.
    struct Twin;
    impl Group for Twin {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn sum_f32(&self, input: &[f32], out: &mut [f32]) {
            out.iter_mut().zip(input).for_each(|(o, i)| *o = 2.0 * i);
        }
        fn sum_f64(&self, input: &[f64], out: &mut [f64]) {
            out.iter_mut().zip(input).for_each(|(o, i)| *o = 2.0 * i);
        }
        fn broadcast(&self, _: &mut Vec<u8>) {}
        fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
            vec![bytes.to_vec(), b"[]".to_vec()]
        }
        fn abort(&self, _: i32) -> ! {
            unreachable!()
        }
    }

    #[test]
    fn batch_stats_are_summed_over_the_installed_group_while_it_lives() {
        let mut v = [1.0, 2.5];
        Installed.sum(&mut v);
        assert_eq!(v, [1.0, 2.5], "no group installed");
        let group: Arc<dyn Group> = Arc::new(Twin);
        install(&group);
        assert_eq!(installed_size(), Some(2));
        Installed.sum(&mut v);
        assert_eq!(v, [2.0, 5.0]);
        drop(group);
        Installed.sum(&mut v);
        assert_eq!(v, [2.0, 5.0], "the run's group is gone");
        assert_eq!(installed_size(), None);
    }

    #[test]
    fn disagreeing_ranks_are_named_with_both_values() {
        let facts = [("--seed", "3".to_string())];
        assert!(agree(&Single, &facts).is_ok());
        // Twin's rank 1 reports no facts at all.
        assert!(
            agree(&Twin, &facts)
                .unwrap_err()
                .0
                .contains("another version")
        );
        struct Other;
        impl Group for Other {
            fn rank(&self) -> usize {
                0
            }
            fn size(&self) -> usize {
                3
            }
            fn sum_f32(&self, _: &[f32], _: &mut [f32]) {}
            fn sum_f64(&self, _: &[f64], _: &mut [f64]) {}
            fn broadcast(&self, _: &mut Vec<u8>) {}
            fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
                let other = serde_json::to_vec(&[("--seed", "4")]).unwrap();
                vec![bytes.to_vec(), bytes.to_vec(), other]
            }
            fn abort(&self, _: i32) -> ! {
                unreachable!()
            }
        }
        assert_eq!(
            agree(&Other, &facts).unwrap_err().to_string(),
            "rank 2 was started with other --seed than rank 0 (4 against 3); every rank needs the \
             same flags and data"
        );
    }
}
