//! Layers on batch-50 shapes of the presets: im2col convolution forward and backward, pooling, the
//! elementwise activations, the first Linear of mlp, and resnet's Conv2d → BatchNorm2d → ReLU one
//! by one and with the ReLU taken over by the BatchNorm (the plan a `Sequential` runs). One iteration is one forward and, for the
//! `bwd` cases, the backward right after it (backward needs its forward's cache).
//!
//! `cargo bench --bench layers` (add `-- conv` to run only the names containing `conv`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use scratchnet::layers::{
    BatchNorm, Conv2d, Elementwise, Layer, Linear, MaxPool2d, ReLU, Sequential, Window,
};
use scratchnet::{Mode, Tensor};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 50;

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::new(
        shape,
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect(),
    )
    .unwrap()
}

/// Times `layer` forward (`fwd`) and forward + backward (`fwd+bwd`) on a batch of `shape`, in
/// evaluation mode.
fn layer(c: &mut Criterion, name: &str, layer: Box<dyn Layer>, shape: &[usize], macs: usize) {
    layer_in(c, name, layer, shape, macs, Mode::Eval)
}

/// [`layer`] in `mode` (BatchNorm's batch statistics are training's).
fn layer_in(
    c: &mut Criterion,
    name: &str,
    mut layer: Box<dyn Layer>,
    shape: &[usize],
    macs: usize,
    mode: Mode,
) {
    let mut g = c.benchmark_group(name);
    if macs > 0 {
        g.throughput(Throughput::Elements((2 * macs * BATCH) as u64));
    }
    let x = input(shape);
    let out = layer.forward(x.clone(), mode).unwrap();
    let gy = input(out.shape());
    // Inputs are cloned outside the timed part; outputs are dropped inside it.
    g.bench_function("fwd", |b| {
        b.iter_batched(
            || x.clone(),
            |x| black_box(layer.forward(x, mode).unwrap()),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("fwd+bwd", |b| {
        b.iter_batched(
            || (x.clone(), gy.clone()),
            |(x, gy)| {
                layer.forward(x, mode).unwrap();
                black_box(layer.backward(gy).unwrap())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn layers(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let pool = || -> Box<dyn Layer> {
        Box::new(MaxPool2d::new(Window {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        }))
    };
    let conv1 = Conv2d::new(1, 32, (3, 3), (1, 1), (1, 1), true, &mut rng);
    let conv2 = Conv2d::new(32, 64, (3, 3), (1, 1), (1, 1), true, &mut rng);
    let fc1 = Linear::new(784, 512, true, &mut rng);
    let seed1 = Conv2d::new(1, 8, (3, 3), (2, 2), (0, 0), true, &mut rng);
    let seed2 = Conv2d::new(8, 8, (3, 3), (2, 2), (0, 0), true, &mut rng);
    layer(
        c,
        "seed-cnn conv1",
        Box::new(seed1),
        &[BATCH, 1, 28, 28],
        8 * 9 * 169,
    );
    layer(
        c,
        "seed-cnn conv2",
        Box::new(seed2),
        &[BATCH, 8, 13, 13],
        8 * 72 * 36,
    );
    layer(
        c,
        "lenet conv1",
        Box::new(conv1),
        &[BATCH, 1, 28, 28],
        32 * 9 * 784,
    );
    layer(
        c,
        "lenet conv2",
        Box::new(conv2),
        &[BATCH, 32, 14, 14],
        64 * 288 * 196,
    );
    layer(
        c,
        "lenet relu1",
        Box::new(Elementwise::new(ReLU)),
        &[BATCH, 32, 28, 28],
        0,
    );
    layer(c, "lenet pool1", pool(), &[BATCH, 32, 28, 28], 0);
    layer(c, "mlp fc1", Box::new(fc1), &[BATCH, 784], 784 * 512);
    // resnet's first stage: [50, 16, 28, 28] through Conv2d(16, 16, 3, padding=1, bias=False),
    // BatchNorm2d(16) and ReLU, in training.
    let shape = [BATCH, 16, 28, 28];
    let train = Mode::train(0);
    let res_conv = Conv2d::new(16, 16, (3, 3), (1, 1), (1, 1), false, &mut rng);
    layer_in(
        c,
        "resnet conv",
        Box::new(res_conv),
        &shape,
        16 * 144 * 784,
        train,
    );
    let bn = || BatchNorm::new(2, 16, 1e-5, 0.1);
    layer_in(c, "resnet bn", Box::new(bn()), &shape, 0, train);
    let relu = Box::new(Elementwise::new(ReLU));
    layer_in(c, "resnet relu", relu, &shape, 0, train);
    let bn_relu = Sequential::new(vec![Box::new(bn()), Box::new(Elementwise::new(ReLU))]);
    layer_in(c, "resnet bn+relu", Box::new(bn_relu), &shape, 0, train);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = layers
}
criterion_main!(benches);
