//! What data-parallel training sends per step: for each preset, the fused buffer one allreduce sums
//! (every gradient, then loss, right answers and the stop flag), its size, and the time the sum
//! takes over the ranks `mpirun` started (median of 200 after 20 warm-ups).
//!
//! ```text
//! cargo build --release --features mpi --example mpi_allreduce
//! mpirun --allow-run-as-root -np 2 target/release/examples/mpi_allreduce
//! ```

use rand::SeedableRng;
use scratchnet::Model;
use scratchnet::layers::param_count;
use std::time::Instant;

fn main() -> scratchnet::Result<()> {
    let group = scratchnet::dist::launch()?;
    for preset in ["mlp", "seed-cnn", "lenet"] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut model = Model::build(preset, &[1, 28, 28], &mut rng)?;
        let n = param_count(model.net()) + 3;
        let (send, mut recv) = (vec![1.0f32; n], vec![0.0f32; n]);
        let mut times = Vec::new();
        for i in 0..220 {
            let t = Instant::now();
            group.sum_f32(&send, &mut recv);
            if i >= 20 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        assert!(recv.iter().all(|&v| v == group.size() as f32));
        times.sort_by(f64::total_cmp);
        if group.rank() == 0 {
            println!(
                "{preset}: {n} floats = {:.2} MB per step, allreduce over {} ranks: median {:.1} µs \
                 (p10 {:.1}, p90 {:.1})",
                n as f64 * 4.0 / 1e6,
                group.size(),
                times[times.len() / 2] * 1e6,
                times[times.len() / 10] * 1e6,
                times[times.len() * 9 / 10] * 1e6
            );
        }
    }
    Ok(())
}
