//! ONNX export: every layer, alone and in models, run by tract from the exported bytes, against our
//! own forward pass (what `scratchnet predict` computes). `tools/onnx_check.py` does the same with
//! ONNX Runtime and `onnx.checker`.

mod common;

use common::{fails, ok};
use rand::{Rng, SeedableRng};
use scratchnet::data::npy::write_npy_f32;
use scratchnet::layers::{Layer, Mode as LayerMode};
use scratchnet::{Model, onnx};
use std::collections::BTreeMap;
use tract_onnx::prelude::{Tensor as TractTensor, *};

/// Inputs of a batch of `n` samples of `shape`, values in (−2, 2) so that ReLUs and pools see both
/// signs, drawn from `seed`.
fn inputs(n: usize, shape: &[usize], seed: u64) -> scratchnet::Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let len = full.iter().product();
    scratchnet::Tensor::new(&full, (0..len).map(|_| rng.gen_range(-2.0..2.0)).collect()).unwrap()
}

/// Runs the ONNX file `bytes` with tract on `x` and checks that the output is within `1e-5` of
/// `want`, in shape and value.
fn check_tract(bytes: &[u8], x: &scratchnet::Tensor, want: &scratchnet::Tensor, what: &str) {
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("{what}: tract cannot load the export: {e:?}"));
    let input = TractTensor::from_shape(x.shape(), x.data()).unwrap();
    let out = runnable
        .run(tvec!(TValue::from(input)))
        .unwrap_or_else(|e| panic!("{what}: tract run failed: {e:?}"));
    let theirs = out[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(theirs.shape(), want.shape(), "{what}");
    let worst = theirs
        .iter()
        .zip(want.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: differs by {worst}");
}

/// Ids in `0..vocab` for a batch of `n` samples of `shape`, as f32 (what `predict` takes).
fn ids(n: usize, shape: &[usize], vocab: usize, seed: u64) -> scratchnet::Tensor {
    let x = inputs(n, shape, seed);
    let data = x
        .data()
        .iter()
        .map(|v| ((v + 2.0) / 4.0 * vocab as f32).floor())
        .collect();
    scratchnet::Tensor::new(x.shape(), data).unwrap()
}

/// Running statistics as training leaves them (mean in (−1, 1), variance in (0.5, 2)) instead of
/// the fresh 0 and 1, so that the export has to carry them.
fn trained_statistics(model: &mut Model) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    model.net().visit_buffers("", &mut |name, b| {
        let range = if name.ends_with("running_var") {
            0.5..2.0
        } else {
            -1.0..1.0
        };
        if !b.int {
            b.value
                .data_mut()
                .iter_mut()
                .for_each(|v| *v = rng.gen_range(range.clone()));
        }
    });
}

/// Exports `model` and checks tract's outputs against the model's own on batches of 1 and 3
/// samples (the batch size is symbolic); `vocab` makes the inputs ids below it.
fn check_round_trip(model: &mut Model, vocab: Option<usize>) {
    trained_statistics(model);
    let bytes = onnx::to_bytes(model, onnx::DEFAULT_OPSET, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{}: {e}", model.text()));
    for (n, seed) in [(1, 1), (3, 2)] {
        let x = match vocab {
            Some(v) => ids(n, model.input_shape(), v, seed),
            None => inputs(n, model.input_shape(), seed),
        };
        let ours = model.predict(&x, n).unwrap();
        check_tract(&bytes, &x, &ours, model.text());
    }
}

fn npy(path: &std::path::Path) -> scratchnet::Tensor {
    let x = scratchnet::data::source::read_inputs(path, false).unwrap();
    x.rows(0, x.shape()[0])
}

/// `scratchnet export` of every golden case (PyTorch's checkpoints, which do not record their input
/// shape), run by tract against `scratchnet predict` on the case's inputs.
#[test]
fn golden_checkpoints_export_and_agree_with_predict() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let mut cases = 0;
    for case in std::fs::read_dir(&golden).unwrap() {
        let case = case.unwrap().path();
        let x = case.join("x.npy");
        // The initial weights, and those after PyTorch's training steps (BatchNorm's running
        // statistics are no longer 0 and 1 there).
        for ck in ["init.safetensors", "after.safetensors"] {
            let ck = case.join(ck);
            // tract 0.23 reads an ONNX RNN's `activations` as Tanh whatever they say (its importer
            // builds the cell with tanh), so an RNN with nonlinearity='relu' is checked by ONNX
            // Runtime in tools/onnx_check.py instead.
            let relu_rnn = ck.exists()
                && scratchnet::checkpoint::read(&ck)
                    .unwrap()
                    .model_text()
                    .is_some_and(|t| t.contains("'relu'"));
            if ck.exists() && x.exists() && !relu_rnn {
                check_golden(dir.path(), &ck, &x);
                cases += 1;
            }
        }
    }
    assert!(cases >= 18, "only {cases} golden checkpoints found");
}

/// `scratchnet export` of checkpoint `ck`, run by tract on `x`, against `scratchnet predict`.
fn check_golden(dir: &std::path::Path, ck: &std::path::Path, x: &std::path::Path) {
    let x_t = npy(x);
    let shape: Vec<String> = x_t.shape()[1..].iter().map(|d| d.to_string()).collect();
    let (file, out) = (dir.join("m.onnx"), dir.join("y.npy"));
    let (ck, x, file, out) = (
        ck.to_str().unwrap(),
        x.to_str().unwrap(),
        file.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    ok(&[
        "export",
        "--checkpoint",
        ck,
        "--output",
        file,
        "--input-shape",
        &shape.join(","),
    ]);
    ok(&["predict", "--checkpoint", ck, "--input", x, "--output", out]);
    check_tract(&std::fs::read(file).unwrap(), &x_t, &npy(out.as_ref()), ck);
}

/// Embedding's ids arrive as float32 like every input, and are cast to int64 inside the file.
#[test]
fn embedding_takes_float_ids() {
    let model = Model::new("Embedding(7, 3, padding_idx=0), Select(1, -1)", &[5], 3).unwrap();
    let bytes = onnx::to_bytes(&model, onnx::DEFAULT_OPSET, &BTreeMap::new()).unwrap();
    let ids: Vec<f32> = (0..15).map(|i| ((i * 5) % 7) as f32).collect();
    let x = scratchnet::Tensor::new(&[3, 5], ids).unwrap();
    let mut model = model;
    let ours = model.predict(&x, 3).unwrap();
    check_tract(&bytes, &x, &ours, model.text());
}

/// BatchNorm is exported in its evaluation form: the running statistics of a trained model (not
/// the initial 0 and 1) are what the file uses, with Residual, GELU and a global pool around it.
#[test]
fn trained_batchnorm_exports_its_running_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let x = inputs(16, &[1, 6, 6], 5);
    write_npy_f32(p("x.npy").as_ref(), x.shape(), x.data()).unwrap();
    let labels: Vec<i64> = (0..16).map(|i| i % 3).collect();
    common::labels_npy(p("y.npy").as_ref(), &labels);
    ok(&[
        "train",
        "--model",
        "Conv2d(1,4,3,padding=1), BatchNorm2d(4), ReLU, Residual(Conv2d(4,4,3,padding=1), BatchNorm2d(4), GELU), AdaptiveAvgPool2d(1), Flatten, BatchNorm1d(4), SiLU, Linear(4,3)",
        "--data",
        &format!("{}:{}", p("x.npy"), p("y.npy")),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        &p("m.safetensors"),
    ]);
    let ck = scratchnet::checkpoint::read(p("m.safetensors").as_ref()).unwrap();
    let var = &ck.tensors["1.running_var"];
    assert!(var.data().iter().all(|&v| v != 1.0), "{:?}", var.data());
    check_golden(dir.path(), p("m.safetensors").as_ref(), p("x.npy").as_ref());
}

/// Train → export: the checkpoint records the input shape, the class names and the preprocessing,
/// and they reach the file's metadata.
#[test]
fn a_trained_checkpoint_exports_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let x = inputs(12, &[1, 4, 4], 3);
    write_npy_f32(p("x.npy").as_ref(), x.shape(), x.data()).unwrap();
    let labels: Vec<i64> = (0..12).map(|i| i % 3).collect();
    common::labels_npy(p("y.npy").as_ref(), &labels);
    let data = format!("{}:{}", p("x.npy"), p("y.npy"));
    ok(&[
        "train",
        "--model",
        "Conv2d(1,2,3), ReLU, Flatten, Linear(8,3)",
        "--data",
        &data,
        "--epochs",
        "2",
        "--quiet",
        "--out",
        &p("m.safetensors"),
    ]);
    let said = ok(&[
        "export",
        "--checkpoint",
        &p("m.safetensors"),
        "--output",
        &p("m.onnx"),
        "--opset",
        "19",
    ]);
    assert!(said.contains("opset 19, input [batch, 1, 4, 4]"), "{said}");
    ok(&[
        "predict",
        "--checkpoint",
        &p("m.safetensors"),
        "--input",
        &p("x.npy"),
        "--output",
        &p("out.npy"),
    ]);
    let bytes = std::fs::read(p("m.onnx")).unwrap();
    check_tract(&bytes, &x, &npy(p("out.npy").as_ref()), "trained");
    let m = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .unwrap();
    let props: BTreeMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(props["input_shape"], "[1, 4, 4]");
    assert!(
        props["preprocessing"].starts_with("float32 input [batch, 1, 4, 4]"),
        "{props:?}"
    );
    assert!(
        props["scratchnet.input"].contains("\"shape\":[1,4,4]"),
        "{props:?}"
    );
    assert_eq!(m.opset_import[0].version, 19);
}

#[test]
fn export_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let lenet = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden/lenet/init.safetensors");
    let lenet = lenet.to_str().unwrap();
    let e = fails(&["export", "--checkpoint", lenet, "--output", &p("m.onnx")]);
    assert!(
        e.contains(
            "the checkpoint does not record its input shape; pass --input-shape, e.g. 1,28,28"
        ),
        "{e}"
    );
    let e = fails(&[
        "export",
        "--checkpoint",
        lenet,
        "--output",
        &p("m.onnx"),
        "--input-shape",
        "1,28,28",
        "--opset",
        "11",
    ]);
    assert!(
        e.contains("ONNX opset 11 is not supported: scratchnet writes opsets 13 to 21"),
        "{e}"
    );
    let e = fails(&[
        "export",
        "--checkpoint",
        lenet,
        "--output",
        &p("m.onnx"),
        "--input-shape",
        "3,28,28",
    ]);
    assert!(e.contains("expects input [C=1"), "{e}");
    let e = fails(&[
        "export",
        "--checkpoint",
        &p("none.safetensors"),
        "--output",
        &p("m.onnx"),
    ]);
    assert!(e.contains("none.safetensors: No such file"), "{e}");
    let e = fails(&[
        "export",
        "--checkpoint",
        lenet,
        "--output",
        &p("no/such/dir/m.onnx"),
        "--input-shape",
        "1,28,28",
    ]);
    assert!(e.contains("no/such/dir"), "{e}");
    let e = fails(&[
        "export",
        "--checkpoint",
        lenet,
        "--output",
        &p("m.pb"),
        "--input-shape",
        "1,28,28",
    ]);
    assert!(
        e.contains("--output") && e.contains("must end in .onnx"),
        "{e}"
    );
    assert!(!dir.path().join("m.onnx").exists());
}

/// Every layer, with its settings varied where ONNX differs from PyTorch (Gemm's transpose, the pad
/// order, count_include_pad, Flatten's dims, Softmax's axis).
const CASES: &[(&str, &[usize])] = &[
    ("Linear(4,3)", &[4]),
    ("Linear(4,3,bias=False)", &[4]),
    ("Linear(5,3)", &[2, 5]),
    ("Linear(5,3,bias=False)", &[2, 5]),
    ("Conv2d(2,3,3)", &[2, 7, 6]),
    (
        "Conv2d(2,3,(3,2),stride=(2,1),padding=(2,1),bias=False)",
        &[2, 7, 6],
    ),
    ("MaxPool2d(2)", &[2, 6, 6]),
    ("MaxPool2d((3,2),stride=(2,1),padding=(1,0))", &[2, 7, 6]),
    ("AvgPool2d(2)", &[2, 6, 5]),
    ("AvgPool2d(3,stride=2,padding=1)", &[2, 7, 7]),
    ("Flatten", &[2, 3, 4]),
    ("Flatten(2)", &[2, 3, 4]),
    ("Flatten(1,2)", &[2, 3, 4]),
    ("ReLU", &[3, 5]),
    ("LeakyReLU(0.2)", &[3, 5]),
    ("Sigmoid", &[3, 5]),
    ("Tanh", &[3, 5]),
    ("Softmax", &[5]),
    ("Softmax(dim=2)", &[3, 4]),
    ("Softmax(-1)", &[3, 4]),
    ("Dropout(0.3)", &[4]),
    ("Linear(4,4), Dropout, ReLU", &[4]),
    ("Sequential(Linear(4,3), Tanh)", &[4]),
    (
        "Parallel(Linear(4,2), Sequential(Linear(4,3), ReLU), Dropout), Linear(9,1)",
        &[4],
    ),
    ("BatchNorm1d(4)", &[4]),
    ("BatchNorm1d(3, eps=0.001)", &[3, 5]),
    ("BatchNorm2d(2)", &[2, 4, 3]),
    ("Residual(Linear(4,4), ReLU, Linear(4,4))", &[4]),
    (
        "Residual(Conv2d(2,2,3,padding=1), BatchNorm2d(2), ReLU)",
        &[2, 5, 5],
    ),
    ("GELU", &[3, 5]),
    ("GELU(approximate='tanh')", &[3, 5]),
    ("SiLU", &[3, 5]),
    ("ELU", &[3, 5]),
    ("ELU(alpha=0.5)", &[3, 5]),
    ("Dropout2d(0.3)", &[2, 3, 3]),
    ("Identity", &[3, 5]),
    ("AdaptiveAvgPool2d(1)", &[2, 5, 7]),
    ("AdaptiveAvgPool2d((2,3))", &[2, 6, 9]),
    ("AdaptiveAvgPool2d((2,3))", &[2, 5, 7]),
    ("AdaptiveAvgPool2d(3)", &[1, 7, 4]),
    ("Select(1, -1)", &[4, 3]),
    ("Select(2, 1)", &[4, 3]),
    ("Select(-2, 0)", &[2, 4, 3]),
    (
        "Parallel(Conv2d(2,3,3,padding=1), Conv2d(2,1,1)), ReLU, MaxPool2d(2)",
        &[2, 5, 5],
    ),
    // Recurrent layers: ONNX's gate orders, sequence-major layout, stacked layers and directions.
    ("RNN(3, 4)", &[5, 3]),
    ("RNN(3, 4, num_layers=2, bidirectional=True)", &[5, 3]),
    ("LSTM(3, 4)", &[5, 3]),
    (
        "LSTM(3, 4, num_layers=2, bias=False, bidirectional=True)",
        &[5, 3],
    ),
    ("GRU(3, 4)", &[5, 3]),
    ("GRU(3, 4, num_layers=2, bidirectional=True)", &[5, 3]),
    ("GRU(3, 2, bias=False), Select(1, 0)", &[1, 3]),
    (
        "Flatten(1, 2), LSTM(28, 8), Select(1, -1), Linear(8, 10)",
        &[1, 28, 28],
    ),
    // Fast paths: a ReLU taken over by the pool, the pool run by the convolution.
    (
        "Conv2d(1,4,3,padding=1), ReLU, MaxPool2d(2), Conv2d(4,6,3), ReLU, MaxPool2d(2), Flatten, Linear(24,10), Softmax",
        &[1, 12, 12],
    ),
    ("seed-cnn", &[1, 28, 28]),
    ("nielsen", &[784]),
    // BatchNorm in evaluation form on [N, C], [N, C, L] and [N, C, H, W].
    ("BatchNorm1d(3, eps=0.001), Flatten, Linear(15,2)", &[3, 5]),
    ("BatchNorm2d(2, eps=0.1)", &[2, 4, 3]),
    (
        "Conv2d(2,3,3,padding=1), Residual(Conv2d(3,3,3,padding=1,bias=False), BatchNorm2d(3), ReLU, Conv2d(3,3,1), BatchNorm2d(3)), ReLU",
        &[2, 5, 4],
    ),
    (
        "Residual(Linear(4,4), Tanh), Residual(Residual(Linear(4,4)))",
        &[4],
    ),
    ("ELU(alpha=0.4)", &[3, 5]),
    ("Dropout2d(0.5)", &[2, 3, 3]),
    ("Identity", &[4]),
    ("Conv2d(2,2,1), Identity, Dropout2d, ReLU", &[2, 3, 3]),
    ("AdaptiveAvgPool2d(1)", &[3, 5, 7]),
    ("AdaptiveAvgPool2d((3,2))", &[2, 5, 7]),
    ("AdaptiveAvgPool2d(4)", &[1, 6, 6]),
    ("Select(1,-1)", &[4, 3]),
    ("Select(1,0)", &[4, 3]),
    ("Select(2,1)", &[4, 3]),
    ("Select(-1,-2)", &[2, 4, 3]),
    ("Select(-2,2)", &[2, 4, 3]),
];

/// Models that take ids: `(text, shape, vocabulary size)`.
const ID_CASES: &[(&str, &[usize], usize)] = &[
    ("Embedding(7,4)", &[5], 7),
    (
        "Embedding(9,3,padding_idx=2), Select(1,-1), Linear(3,2)",
        &[6],
        9,
    ),
];

#[test]
fn every_layer_round_trips_through_tract() {
    for (text, shape) in CASES {
        let mut model = Model::new(text, shape, 7).unwrap();
        check_round_trip(&mut model, None);
    }
    for (text, shape, vocab) in ID_CASES {
        let mut model = Model::new(text, shape, 7).unwrap();
        check_round_trip(&mut model, Some(*vocab));
    }
}

#[test]
fn the_file_names_its_input_and_output_and_carries_the_metadata() {
    let model = Model::new("Linear(4,3)", &[4], 0).unwrap();
    let meta = BTreeMap::from([("classes".to_string(), r#"["a","b","c"]"#.to_string())]);
    let bytes = onnx::to_bytes(&model, 13, &meta).unwrap();
    let m = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .unwrap();
    assert_eq!(m.opset_import[0].version, 13);
    let props: BTreeMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(props["classes"], r#"["a","b","c"]"#);
    assert_eq!(props["model"], "Linear(4,3)");
    assert_eq!(props["input_shape"], "[4]");
    let g = m.graph.unwrap();
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output[0].name, "output");
    assert_eq!(g.node[0].op_type, "Gemm");
    let names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias"]);
}

#[test]
fn an_unsupported_opset_is_refused() {
    let model = Model::new("Linear(4,3)", &[4], 0).unwrap();
    for opset in [12, 22] {
        let e = onnx::to_bytes(&model, opset, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("ONNX opset {opset} is not supported: scratchnet writes opsets 13 to 21")
        );
    }
}

/// A user's own layer: `y = 2x`.
struct Double;

impl std::fmt::Display for Double {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Double()")
    }
}

impl Layer for Double {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }
    fn forward(
        &mut self,
        x: scratchnet::Tensor,
        _: LayerMode,
    ) -> scratchnet::Result<scratchnet::Tensor> {
        let data = x.data().iter().map(|v| 2.0 * v).collect();
        scratchnet::Tensor::new(x.shape(), data)
    }
    fn backward(&mut self, g: scratchnet::Tensor) -> scratchnet::Result<scratchnet::Tensor> {
        self.forward(g, LayerMode::Eval)
    }
}

#[test]
fn a_layer_without_a_mapping_is_named_not_exported() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(scratchnet::layers::Linear::new(4, 3, true, &mut rng)),
        Box::new(scratchnet::layers::Parallel::new(vec![
            Box::new(Double),
            Box::new(Double),
        ])),
    ];
    let model = Model::from_layers(layers, &[4]).unwrap();
    let e = onnx::to_bytes(&model, 17, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "layer 1.0 (Double()) cannot be exported to ONNX: no mapping for it"
    );
}
