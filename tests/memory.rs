//! Issue 5, part 6: memory stays flat across epochs. A counting allocator measures the bytes in
//! use after each epoch of a small CNN with momentum and a test pass; once the buffers have
//! settled they must not grow.
//! This file holds one test so that nothing else allocates in the process while it runs.

use rand::SeedableRng;
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::optim::{Config, Optimizer};
use scratchnet::train::{Schedule, Trainer};
use scratchnet::{Loss, Model, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn images(n: usize, seed: u64) -> Dataset {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.r#gen::<f32>()).collect();
    let y: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    Dataset::new(Tensor::new(&[n, 1, 28, 28], x).unwrap(), Labels::Classes(y)).unwrap()
}

#[test]
fn bytes_in_use_do_not_grow_per_epoch() {
    let (train, test) = (images(1000, 1), images(300, 2));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = Model::build("seed-cnn", &[1, 28, 28], &mut rng).unwrap();
    let sgd = Config::Sgd {
        lr: 0.05,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let schedule = Schedule {
        batch_size: 50,
        shuffle: true,
        seed: 0,
    };
    let mut t = Trainer::new(
        model,
        Optimizer::new(sgd).unwrap(),
        Loss::CrossEntropy,
        schedule,
    );
    t.history.reserve(16); // the history is the one thing allowed to grow; keep it out of the count
    // One worker thread: with two, each worker sizes its own GEMM scratch space the first time the
    // scheduler hands it a given shape, a one-off that can land in any epoch.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut live = Vec::new();
    pool.install(|| {
        for _ in 0..12 {
            t.run_epoch(&train, Some(&test), None, &mut |_, _, _| {})
                .unwrap();
            live.push(LIVE.load(Ordering::Relaxed));
        }
    });
    // Buffers are recycled between layers and keep their capacity, so the first epochs settle which
    // buffer holds what; from the fourth epoch on nothing may grow but the history's few bytes.
    let growth = live[11] as i64 - live[3] as i64;
    eprintln!("bytes in use after each epoch: {live:?}");
    assert!(
        growth.abs() < 1024,
        "grew by {growth} bytes over 8 epochs: {live:?}"
    );
}
