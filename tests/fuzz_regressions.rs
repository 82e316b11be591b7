//! Replays every input kept under `tests/fuzz_regressions/<target>/` through the same code as the
//! fuzz target of that name (`tests/fuzz_harness/mod.rs`): none may panic and every error must be
//! one line. The inputs that once broke that (`crash-*`, `oom-*`, `timeout-*`, `slow-*` as libFuzzer
//! named them; `bad-*` written by hand) must now be refused with an error; `seed-*` and `corpus-*`
//! are valid and invalid inputs that the fuzzers start from. Needs no nightly: it runs in `cargo
//! test`. The same folders are the fuzzers' seed corpora (see `fuzz/README.md`).
//!
//! To keep a finding: copy it from `fuzz/artifacts/<target>/` into the target's folder here.

mod fuzz_harness;

use std::fs;
use std::path::Path;

/// Feeds every file of `tests/fuzz_regressions/<target>/` to `run`; returns how many there were.
fn replay(target: &str, run: fn(&[u8]) -> Result<(), String>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy();
        let result = run(&fs::read(path).unwrap());
        let finding = ["crash-", "oom-", "timeout-", "slow-", "bad-"]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if finding {
            assert!(
                result.is_err(),
                "{target}/{name} was a finding and must be refused"
            );
        }
    }
    assert!(!paths.is_empty(), "no inputs in {}", dir.display());
    paths.len()
}

#[test]
fn idx_inputs() {
    replay("idx", fuzz_harness::idx);
}

#[test]
fn npy_inputs() {
    replay("npy", fuzz_harness::npy);
}

#[test]
fn checkpoint_inputs() {
    replay("checkpoint", fuzz_harness::checkpoint);
}

#[test]
fn model_text_inputs() {
    replay("model_text", fuzz_harness::model_text);
}

#[test]
fn csv_inputs() {
    replay("csv", fuzz_harness::csv);
}

#[test]
fn image_folder_inputs() {
    replay("image_folder", fuzz_harness::image_folder);
}

// Headers that claim far more data than they bring must be refused by comparing sizes, before
// anything that size is allocated (a 2^60-element allocation would abort the process).

fn idx_claiming(dims: &[u32]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(&[1, 2, 3]);
    bytes
}

#[test]
fn idx_header_claiming_2_pow_60_bytes_is_an_error() {
    let err = fuzz_harness::idx(&idx_claiming(&[1 << 30, 1 << 30])).unwrap_err();
    assert!(
        err.ends_with("data is truncated: dims [1073741824, 1073741824] need 1152921504606846976 bytes from byte 12, got 3"),
        "{err}"
    );
    let err = fuzz_harness::idx(&idx_claiming(&[u32::MAX; 4])).unwrap_err();
    assert!(err.contains("are too large to address"), "{err}");
}

fn npy_claiming(shape: &str) -> Vec<u8> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes
}

#[test]
fn npy_header_claiming_2_pow_60_elements_is_an_error() {
    let err = fuzz_harness::npy(&npy_claiming("(1152921504606846976,)")).unwrap_err();
    assert!(
        err.contains("data is truncated: shape [1152921504606846976] of '<f4' needs 4611686018427387904 bytes"),
        "{err}"
    );
    let err = fuzz_harness::npy(&npy_claiming("(1152921504606846976, 16)")).unwrap_err();
    assert!(err.contains("is too large to address"), "{err}");
}

fn safetensors_claiming(shape: &str, end: u64) -> Vec<u8> {
    let header =
        format!(r#"{{"0.bias":{{"dtype":"F32","shape":{shape},"data_offsets":[0,{end}]}}}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 8]);
    bytes
}

#[test]
fn checkpoint_claiming_2_pow_60_elements_is_an_error() {
    let err = fuzz_harness::checkpoint(&safetensors_claiming("[1152921504606846976]", 1 << 62))
        .unwrap_err();
    assert!(err.contains("not a valid safetensors file"), "{err}");
    let err = fuzz_harness::checkpoint(&safetensors_claiming("[4294967296,4294967296,16]", 0))
        .unwrap_err();
    assert!(err.contains("not a valid safetensors file"), "{err}");
    let mut huge_header = (1u64 << 60).to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{}");
    let err = fuzz_harness::checkpoint(&huge_header).unwrap_err();
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

// Model text asking for gigantic layers, or windows that cannot sweep, must be refused with a
// message before anything that size is allocated.

fn model_error(text: &str) -> String {
    fuzz_harness::model_text(text.as_bytes()).unwrap_err()
}

#[test]
fn gigantic_layers_are_refused_before_allocation() {
    let err = model_error("Flatten, Linear(100000000, 100000000)");
    assert!(
        err.contains("Linear: a weight of shape [100000000, 100000000] takes the model past 268435456 parameters (2^28, the limit)"),
        "{err}"
    );
    let err = model_error("Conv2d(1, 8, 4294967296)");
    assert!(
        err.contains("Conv2d: a weight of shape [8, 1, 4294967296, 4294967296]"),
        "{err}"
    );
    // Each layer fits, the model does not: the third is refused, where it starts.
    let text = "Flatten, Linear(784, 8192), Linear(8192, 16384, bias=False), \
                Linear(16384, 8192, bias=False)";
    let column = text.rfind("Linear").unwrap() + 1;
    let err = model_error(text);
    assert!(
        err.contains(&format!(
            "column {column}: Linear: a weight of shape [8192, 16384]"
        )),
        "{err}"
    );
}

#[test]
fn windows_that_cannot_sweep_are_refused() {
    for (text, want) in [
        ("Conv2d(1,8,0)", "'kernel_size' must be a positive integer"),
        (
            "Conv2d(1,8,3,stride=0)",
            "'stride' must be a positive integer",
        ),
        ("MaxPool2d(0)", "'kernel_size' must be a positive integer"),
        (
            "MaxPool2d(2, stride=(1,0))",
            "'stride' must be a positive integer",
        ),
        (
            "MaxPool2d(2, padding=9223372036854775807)",
            "'padding' must be at most half",
        ),
        (
            "Conv2d(1,1,3,padding=4611686018427387904)",
            "expects input [C=1, H ≥ 1, W ≥ 1, and at most 268435456 values under its windows]",
        ),
        (
            "Conv2d(1,1,3,padding=100000)",
            "expects input [C=1, H ≥ 1, W ≥ 1, and at most 268435456 values under its windows]",
        ),
        (
            "AvgPool2d(1099511627776, padding=549755813888)",
            "and at most 268435456 values under its windows",
        ),
        (
            "Conv2d(1,4,1,padding=5000)",
            "layer 0 (Conv2d(1, 4, kernel_size=(1, 1), stride=(1, 1), padding=(5000, 5000))) would \
             output [4, 10028, 10028] per sample for input [1, 28, 28] from the input: more than \
             268435456 values (2^28, the limit)",
        ),
    ] {
        let err = model_error(text);
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn deep_nesting_is_refused_before_the_stack_runs_out() {
    let err = model_error(&format!(
        "Linear(1, {}1{})",
        "(".repeat(100_000),
        ")".repeat(100_000)
    ));
    assert!(err.contains("values nest more than 32 deep"), "{err}");
    let err = model_error(&format!(
        "{}ReLU{}",
        "Sequential(".repeat(50_000),
        ")".repeat(50_000)
    ));
    assert!(err.contains("values nest more than 32 deep"), "{err}");
}

#[test]
fn multi_line_model_text_gives_a_one_line_error() {
    let err = model_error("Flatten,\n  Linear(784, 10)\n  ReLU");
    assert_eq!(
        err,
        "model text, column 30: expected ',' between layers, found 'R' (in \"Flatten,   Linear(784, 10)   ReLU\")"
    );
}
