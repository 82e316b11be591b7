//! Sums over a batch that several processes share: the hook that lets a layer whose training
//! forward couples the rows (BatchNorm) see the whole batch when each process holds a share of it
//! (data parallelism, see `dist`). The layer only sees this trait; how the sums travel (MPI, or
//! threads in a test) is the caller's business.

use std::fmt;

/// Sums per-channel statistics over every process that holds a share of the batch.
///
/// Every process calls [`BatchSum::sum`] at the same point of the same pass, the same number of
/// times, with slices of one length, also a process whose share of the batch is empty: the sums are
/// collective.
pub trait BatchSum: Sync {
    /// Replaces `values` (this process's sums) by their element-wise sums over the processes.
    fn sum(&self, values: &mut [f64]);
}

/// The [`BatchSum`] of a training forward: [`Shares::WHOLE`] when this process holds the whole
/// batch (the sums are then its own), or the hook of a shared batch.
#[derive(Clone, Copy)]
pub struct Shares(Option<&'static dyn BatchSum>);

impl Shares {
    /// This process holds the whole batch.
    pub const WHOLE: Shares = Shares(None);

    /// The batch is shared by the processes that `sum` sums over.
    pub const fn across(sum: &'static dyn BatchSum) -> Shares {
        Shares(Some(sum))
    }

    /// Whether other processes hold part of the batch (their collectives must be met).
    pub fn is_shared(&self) -> bool {
        self.0.is_some()
    }

    /// `values` summed over the processes sharing the batch (left alone for a whole batch).
    pub fn sum(&self, values: &mut [f64]) {
        if let Some(s) = self.0 {
            s.sum(values);
        }
    }
}

impl fmt::Debug for Shares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_shared() { "Shared" } else { "Whole" })
    }
}

/// Two `Shares` are equal when they sum through the same hook.
impl PartialEq for Shares {
    fn eq(&self, other: &Shares) -> bool {
        match (self.0, other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Shares {}
