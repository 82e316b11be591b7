//! What data-parallel training sends per step: for each preset, the fused buffer one allreduce sums
//! (every gradient, then loss, right answers and the stop flag), its size, and the time the sum
//! takes over the ranks `mpirun` started (median of 200 after 20 warm-ups); for a model with
//! BatchNorm also its three small sums per layer and step (`[M, Σx]`, `Σ(x−μ)²`, `[Σg, Σg·x̂]`).
//!
//! ```text
//! cargo build --release --features mpi --example mpi_allreduce
//! mpirun --allow-run-as-root -np 2 target/release/examples/mpi_allreduce
//! ```

use rand::SeedableRng;
use scratchnet::layers::param_count;
use scratchnet::{Layer, Model};
use std::time::Instant;

fn main() -> scratchnet::Result<()> {
    let group = scratchnet::dist::launch()?;
    for preset in ["mlp", "seed-cnn", "lenet", "resnet"] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut model = Model::build(preset, &[1, 28, 28], &mut rng)?;
        let n = param_count(model.net()) + 3;
        let (send, mut recv) = (vec![1.0f32; n], vec![0.0f32; n]);
        let fused = median(|| group.sum_f32(&send, &mut recv));
        assert!(recv.iter().all(|&v| v == group.size() as f32));
        // Channels of each BatchNorm (one running_mean each).
        let mut channels = Vec::new();
        model.net().visit_buffers("", &mut |name, b| {
            if name.ends_with("running_mean") {
                channels.push(b.value.len());
            }
        });
        let bn = median(|| {
            for &c in &channels {
                for len in [c + 1, c, 2 * c] {
                    let v = vec![1.0f64; len];
                    group.sum_f64(&v, &mut vec![0.0; len]);
                }
            }
        });
        if group.rank() == 0 {
            println!(
                "{preset}: {n} floats = {:.2} MB per step, allreduce over {} ranks: median {:.1} µs \
                 (p10 {:.1}, p90 {:.1}); BatchNorm: {} sums of {} f64 in all, median {:.1} µs",
                n as f64 * 4.0 / 1e6,
                group.size(),
                fused[1] * 1e6,
                fused[0] * 1e6,
                fused[2] * 1e6,
                3 * channels.len(),
                channels.iter().map(|c| 4 * c + 1).sum::<usize>(),
                bn[1] * 1e6,
            );
        }
    }
    Ok(())
}

/// `[p10, median, p90]` seconds of `f` over 200 calls after 20 warm-ups.
fn median(mut f: impl FnMut()) -> [f64; 3] {
    let mut times = Vec::new();
    for i in 0..220 {
        let t = Instant::now();
        f();
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: usize| times[times.len() * q / 10];
    [at(1), at(5), at(9)]
}
