//! The [`Group`] of an `mpirun` launch: Open MPI (or any MPI) through the `mpi` crate.

use super::Group;
use crate::error::{Error, Result};
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::{Count, Threading};

/// `MPI_COMM_WORLD`. MPI is finalised when this is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    _universe: Universe,
}

// SAFETY: MPI is initialised with at least `Threading::Serialized`, so any thread may call it as
// long as calls do not overlap; the trainer is one thread of control (a rayon task may make the
// calls, but never two at once).
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Initialises MPI.
    ///
    /// # Errors
    /// MPI was initialised already, or cannot serve calls from more than the main thread.
    pub fn init() -> Result<Mpi> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::invalid("MPI was initialised twice"))?;
        if matches!(level, Threading::Single | Threading::Funneled) {
            return Err(Error::invalid(format!(
                "this MPI offers threading level {level:?}; scratchnet needs Serialized"
            )));
        }
        Ok(Mpi {
            world: universe.world(),
            _universe: universe,
        })
    }
}

impl Group for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_f32(&self, input: &[f32], out: &mut [f32]) {
        self.world
            .all_reduce_into(input, out, mpi::collective::SystemOperation::sum());
    }

    fn sum_f64(&self, input: &[f64], out: &mut [f64]) {
        self.world
            .all_reduce_into(input, out, mpi::collective::SystemOperation::sum());
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }

    fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut counts = vec![0 as Count; self.size()];
        self.world
            .all_gather_into(&(bytes.len() as Count), &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u8; counts.iter().sum::<Count>() as usize];
        self.world.all_gather_varcount_into(
            bytes,
            &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]),
        );
        counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect()
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
