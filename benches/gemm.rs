//! GEMM on the shapes the presets really run at batch 50, by kernel and with/without the two-way
//! split; throughput is in FLOP/s (`2·m·k·n` per product).
//!
//! `cargo bench --bench gemm` (add `-- mlp` to run only the names containing `mlp`). Run at a quiet
//! moment: the machine's other load shows up directly in these numbers.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use scratchnet::kernels::Op::{self, N, T};
use scratchnet::kernels::gemm::{Kernel, kernel, matmul_with};
use std::hint::black_box;
use std::time::Duration;

/// (name, m, k, n, op(A), op(B)): every product of one training step of mlp and lenet's big ones.
const SHAPES: &[(&str, usize, usize, usize, Op, Op)] = &[
    ("mlp fc1 fwd", 50, 784, 512, N, T),
    ("mlp fc1 dW", 512, 50, 784, T, N),
    ("mlp fc2 fwd", 50, 512, 512, N, T),
    ("mlp fc2 dW", 512, 50, 512, T, N),
    ("mlp fc2 dx", 50, 512, 512, N, N),
    ("lenet conv2 fwd/img", 64, 288, 196, N, T),
    ("lenet conv2 dW/img", 64, 196, 288, N, N),
    ("lenet conv2 dcols/img", 196, 64, 288, T, N),
    ("lenet conv2 fwd/batch", 64, 288, 9800, N, T),
    ("lenet fc1 fwd", 50, 3136, 128, N, T),
    ("lenet fc1 dW", 128, 50, 3136, T, N),
    ("square 1024", 1024, 1024, 1024, N, N),
];

fn shapes(c: &mut Criterion) {
    let mut kernels = vec![(Kernel::GemmCrate, "gemm-crate")];
    if kernel() != Kernel::GemmCrate {
        kernels.push((kernel(), "ours-avx512"));
    }
    for &(name, m, k, n, ta, tb) in SHAPES {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let (a, b) = (vec![0.5f32; m * k], vec![0.25f32; k * n]);
        let mut out = vec![0.0f32; m * n];
        for &(kern, kname) in &kernels {
            for split in [false, true] {
                let id = BenchmarkId::new(kname, if split { "split" } else { "1 core" });
                g.bench_function(id, |bench| {
                    bench.iter(|| {
                        matmul_with(kern, split, &mut out, &a, ta, &b, tb, m, k, n, false);
                        black_box(&out);
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = shapes
}
criterion_main!(benches);
