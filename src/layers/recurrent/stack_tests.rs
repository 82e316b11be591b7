use super::*;
use crate::layers::gradcheck::{check_backward_params, check_layer};
use rand::SeedableRng;

fn make(cell: Cell, layers: usize, bidirectional: bool) -> Recurrent {
    seeded(cell, layers, bidirectional, 9)
}

fn seeded(cell: Cell, layers: usize, bidirectional: bool, seed: u64) -> Recurrent {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Recurrent::new(cell, 3, 4, layers, true, bidirectional, &mut rng)
}

const CELLS: [Cell; 4] = [
    Cell::Rnn(Nonlinearity::Tanh),
    Cell::Rnn(Nonlinearity::Relu),
    Cell::Lstm,
    Cell::Gru,
];

const SEED_RELU: u64 = 1;

#[test]
fn gradients_match_central_differences() {
    for cell in CELLS {
        for (layers, bidirectional) in [(1, false), (2, true), (2, false), (1, true)] {
            // SEED_RELU keeps every ReLU pre-activation of these draws away from its kink at 0.
            let seed = if cell == CELLS[1] { SEED_RELU } else { 9 };
            check_layer(
                &mut seeded(cell, layers, bidirectional, seed),
                &[2, 3, 3],
                0.0,
            );
        }
    }
}

#[test]
fn gradients_without_bias_and_over_one_step() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    check_layer(
        &mut Recurrent::new(Cell::Gru, 2, 3, 1, false, true, &mut rng),
        &[3, 4, 2],
        0.0,
    );
    check_layer(&mut make(Cell::Lstm, 2, true), &[2, 1, 3], 0.0);
}

#[test]
fn backward_params_gives_the_same_parameter_gradients() {
    check_backward_params(|| make(Cell::Lstm, 2, true), &[2, 5, 3]);
}

#[test]
fn names_shapes_and_repr_are_pytorch_s() {
    let mut l = make(Cell::Lstm, 2, true);
    let mut names = Vec::new();
    l.visit_params("0.", &mut |n, p| {
        names.push(format!("{n} {:?}", p.value.shape()))
    });
    assert_eq!(
        names,
        [
            "0.weight_ih_l0 [16, 3]",
            "0.weight_hh_l0 [16, 4]",
            "0.bias_ih_l0 [16]",
            "0.bias_hh_l0 [16]",
            "0.weight_ih_l0_reverse [16, 3]",
            "0.weight_hh_l0_reverse [16, 4]",
            "0.bias_ih_l0_reverse [16]",
            "0.bias_hh_l0_reverse [16]",
            "0.weight_ih_l1 [16, 8]",
            "0.weight_hh_l1 [16, 4]",
            "0.bias_ih_l1 [16]",
            "0.bias_hh_l1 [16]",
            "0.weight_ih_l1_reverse [16, 8]",
            "0.weight_hh_l1_reverse [16, 4]",
            "0.bias_ih_l1_reverse [16]",
            "0.bias_hh_l1_reverse [16]",
        ]
    );
    assert_eq!(
        l.to_string(),
        "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    );
    assert_eq!(l.output_shape(&[7, 3]).unwrap(), vec![7, 8]);
    assert!(l.output_shape(&[7, 2]).is_err());
    assert!(l.output_shape(&[3]).is_err());
    let y = l.forward(Tensor::zeros(&[2, 5, 3]), Mode::Eval).unwrap();
    assert_eq!(y.shape(), &[2, 5, 8]);
    let e = l.forward(Tensor::zeros(&[2, 3]), Mode::Eval).unwrap_err();
    assert!(
        e.to_string()
            .contains("expects input [N, T, 3], got [2, 3]"),
        "{e}"
    );
    assert_eq!(
        make(Cell::Rnn(Nonlinearity::Relu), 1, false).to_string(),
        "RNN(3, 4, nonlinearity='relu', batch_first=True)"
    );
}

#[test]
fn init_is_within_one_over_root_hidden() {
    let mut l = make(Cell::Gru, 1, false);
    l.visit_params("", &mut |_, p| {
        assert!(p.value.data().iter().all(|v| v.abs() <= 0.5));
        assert!(p.value.data().iter().any(|v| v.abs() > 0.4));
    });
}

#[test]
fn reversed_direction_reads_the_sequence_backwards() {
    // A one-direction layer on the reversed sequence equals the reverse half of a bidirectional
    // layer whose reverse weights are the same (reversed in time).
    let mut bi = make(Cell::Lstm, 1, true);
    let mut uni = make(Cell::Lstm, 1, false);
    let mut reverse = Vec::new();
    bi.visit_params("", &mut |n, p| {
        if n.ends_with("_reverse") {
            reverse.push(p.value.clone())
        }
    });
    let mut i = 0;
    uni.visit_params("", &mut |_, p| {
        p.value = reverse[i].clone();
        i += 1;
    });
    let x = crate::init::uniform(
        &[2, 4, 3],
        -1.0,
        1.0,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
    );
    let flipped = swap_time(&x);
    let yb = bi.forward(x, Mode::Eval).unwrap();
    let yu = swap_time(&uni.forward(flipped, Mode::Eval).unwrap());
    for (row_b, row_u) in yb.data().chunks_exact(8).zip(yu.data().chunks_exact(4)) {
        assert_eq!(&row_b[4..], row_u);
    }
}

/// `x[:, ::-1]` of `[N, T, F]`.
fn swap_time(x: &Tensor) -> Tensor {
    let (n, t, f) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let mut out = x.clone();
    for i in 0..n {
        for s in 0..t {
            out.data_mut()[(i * t + s) * f..][..f]
                .copy_from_slice(&x.data()[(i * t + t - 1 - s) * f..][..f]);
        }
    }
    out
}

#[test]
fn chunks_depend_on_the_batch_size_alone() {
    for (n, one) in [(0, 0..0), (1, 0..1), (47, 0..47)] {
        assert_eq!(chunks(n), vec![one]);
    }
    assert_eq!(chunks(50), [0..25, 25..50]);
    assert_eq!(chunks(100), [0..25, 25..50, 50..75, 75..100]);
    assert_eq!(chunks(150).len(), 4);
}

#[test]
fn gradients_match_central_differences_across_chunks() {
    // 50 rows: two chunks, each running its own steps.
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn(Nonlinearity::Tanh)] {
        check_layer(&mut make(cell, 2, true), &[50, 2, 3], 0.0);
    }
}

#[test]
fn chunks_give_each_row_what_it_gets_alone() {
    let mut l = make(Cell::Lstm, 2, true);
    let x = crate::init::uniform(
        &[50, 3, 3],
        -1.0,
        1.0,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(6),
    );
    let y = l.forward(x.clone(), Mode::Eval).unwrap();
    for i in [0, 24, 25, 49] {
        let alone = l.forward(x.rows(i, i + 1), Mode::Eval).unwrap();
        let row = &y.data()[i * alone.len()..][..alone.len()];
        for (a, b) in row.iter().zip(alone.data()) {
            assert!((a - b).abs() <= 1e-6, "row {i}: {a} vs {b}");
        }
    }
}

/// Forward and backward of a batch of 100 rows (four chunks) on rayon pools of 1 to 4 threads:
/// the output, ∂L/∂x and every parameter gradient, bit for bit.
#[test]
fn the_thread_count_never_changes_a_bit() {
    for cell in CELLS {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
                let mut l = Recurrent::new(cell, 5, 24, 2, true, true, &mut rng);
                let x = crate::init::uniform(&[100, 6, 5], -1.0, 1.0, &mut rng);
                let gy = crate::init::uniform(&[100, 6, 48], -1.0, 1.0, &mut rng);
                let mut bits: Vec<u32> = l
                    .forward(x, Mode::Eval)
                    .unwrap()
                    .data()
                    .to_vec()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                bits.extend(l.backward(gy).unwrap().data().iter().map(|v| v.to_bits()));
                l.visit_params("", &mut |_, p| {
                    bits.extend(p.grad.data().iter().map(|v| v.to_bits()))
                });
                bits
            })
        };
        let one = run(1);
        for threads in 2..=4 {
            assert!(
                run(threads) == one,
                "{cell:?}: {threads} threads differ from 1"
            );
        }
    }
}
