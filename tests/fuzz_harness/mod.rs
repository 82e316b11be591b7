//! What each fuzz target does with one input, shared by the fuzzers (`fuzz/fuzz_targets/`) and the
//! regression test (`tests/fuzz_regressions.rs`), so that a saved input replays exactly.
//!
//! Each function returns the error message when the library refuses the input, and panics (a
//! finding) when the library panics or its message is not one line.

use rand::SeedableRng;
use scratchnet::data::dataset::Labels;
use scratchnet::data::image_folder::{self, FolderOptions};
use scratchnet::data::input::Standardize;
use scratchnet::data::{idx, npy, table};
use scratchnet::layers::Layer;
use scratchnet::{Error, Mode, Model, Tensor, checkpoint, spec};
use std::path::Path;

/// The per-sample input shape the model-text target builds for.
pub const INPUT_SHAPE: [usize; 3] = [1, 28, 28];

/// The model the checkpoint target loads into (its parameters: `0.weight`, `0.bias`, `3.weight`,
/// `3.bias`), and its per-sample input shape.
pub const CHECKPOINT_MODEL: (&str, [usize; 3]) =
    ("Conv2d(1,2,3), ReLU, Flatten, Linear(32,3)", [1, 6, 6]);

/// Models at most this large (parameters, multiply-accumulates, values per layer output) also
/// run one forward and backward pass; larger ones would only make the fuzzer slow.
const RUN_LIMIT: usize = 100_000;

/// The message of `e`, checked to be one line.
fn message(e: Error) -> String {
    let msg = e.to_string();
    assert!(
        !msg.contains(['\n', '\r']),
        "error message is not one line: {msg:?}"
    );
    msg
}

/// `idx::parse_idx`, then the dimensions agree with the data.
pub fn idx(data: &[u8]) -> Result<(), String> {
    let idx = idx::parse_idx(data.to_vec(), Path::new("fuzz.idx")).map_err(message)?;
    assert_eq!(idx.dims.iter().product::<usize>(), idx.data.len());
    Ok(())
}

/// `npy::parse_npy`, then the shape agrees with the data.
pub fn npy(data: &[u8]) -> Result<(), String> {
    let a = npy::parse_npy(data, Path::new("fuzz.npy")).map_err(message)?;
    let len = match &a.data {
        npy::NpyData::Float(v) => v.len(),
        npy::NpyData::Int(v) => v.len(),
    };
    assert_eq!(a.shape.iter().product::<usize>(), len);
    Ok(())
}

/// `checkpoint::parse`, then `load_into` the fixed [`CHECKPOINT_MODEL`].
pub fn checkpoint(data: &[u8]) -> Result<(), String> {
    let ck = checkpoint::parse(data, Path::new("fuzz.safetensors")).map_err(message)?;
    let (text, shape) = CHECKPOINT_MODEL;
    let mut model = Model::build(text, &shape, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))
        .expect("the fixed model builds");
    ck.load_into(&mut model).map_err(message)?;
    Ok(())
}

/// `spec::parse` and `Model::build` for [`INPUT_SHAPE`]; a small model then runs one training
/// forward and backward pass on one sample.
pub fn model_text(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    spec::parse(&text).map_err(message)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = Model::build(&text, &INPUT_SHAPE, &mut rng).map_err(message)?;
    let summary = model.summary();
    let small = summary.iter().map(|r| r.params).sum::<usize>() <= RUN_LIMIT
        && model.net_ref().macs(&INPUT_SHAPE) <= RUN_LIMIT
        && summary
            .iter()
            .all(|r| r.output_shape.iter().product::<usize>() <= RUN_LIMIT);
    if small {
        let x: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
        let x = Tensor::new(&[1, 1, 28, 28], x).expect("784 values");
        let y = model.forward(x, Mode::train(1)).map_err(message)?;
        let ones = Tensor::new(y.shape(), vec![1.0; y.len()]).expect("same shape");
        let dx = model.backward(ones).map_err(message)?;
        assert_eq!(dx.shape(), [1, 1, 28, 28]);
    }
    Ok(())
}

/// The CSV target: byte 0 holds flags (bit 0 regression, bit 1 predict: no targets, bit 2 read the
/// named feature columns, bit 3 map classes to the named list); the bytes up to the first NUL are up
/// to three lines of comma-separated names (targets, features, classes); the rest is the table.
/// `table::parse`, then the table agrees with itself, and standardising it as training does leaves
/// every value finite.
pub fn csv(data: &[u8]) -> Result<(), String> {
    let (&flags, rest) = data.split_first().ok_or("no flags byte")?;
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("no NUL after the names")?;
    let names = String::from_utf8_lossy(&rest[..nul]);
    let mut lines = names.split('\n').map(|l| {
        l.split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let (targets, features, classes) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let req = table::Request {
        targets: &targets,
        regression: flags & 1 != 0,
        features: (flags & 4 != 0).then_some(&features[..]),
        classes: (flags & 8 != 0).then_some(&classes[..]),
        need_targets: flags & 2 == 0,
    };
    let t = table::parse(&rest[nul + 1..], Path::new("fuzz.csv"), &req).map_err(message)?;
    let n = t.lines.len();
    assert!(n > 0 && t.lines.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(t.x.shape(), [n, t.info.features.len()]);
    assert!(t.x.data().iter().all(|v| v.is_finite()));
    match &t.y {
        None => assert!(!req.need_targets),
        Some(Labels::Classes(c)) => {
            assert_eq!(c.len(), n);
            if let Some(names) = &t.class_names {
                assert!(c.iter().all(|&k| (k as usize) < names.len()));
            }
        }
        Some(Labels::Values(v)) => {
            assert_eq!(v.shape(), [n, t.info.targets.len()]);
            assert!(v.data().iter().all(|v| v.is_finite()));
        }
        Some(Labels::Steps { .. }) => panic!("a table has no per-step targets"),
    }
    let mut x = t.x.clone();
    Standardize::fit(&t.x, t.info.features.len())
        .apply(&mut x)
        .map_err(message)?;
    assert!(
        x.data().iter().all(|v| v.is_finite()),
        "standardising a table of finite numbers gave {:?}",
        x.data()
    );
    Ok(())
}

/// Cuts the image-folder target's files apart.
pub const FILE_SEPARATOR: &[u8] = b"\xffFILE\xff";

/// The image-folder target: byte 0 holds flags (bits 0–1 the number of class folders − 1, bit 2
/// `train/` and `test/` splits, bit 3 `--skip-bad`, bits 4–5 `--channels` none/1/3/none, bit 6
/// `--image-size` from bytes 1 and 2, each 1–256); the rest is cut at every [`FILE_SEPARATOR`]
/// into at most 8 files, dealt in turn to the class folders (and splits). `image_folder::read`
/// on a fresh temporary folder, then every split agrees with the options.
pub fn image_folder(data: &[u8]) -> Result<(), String> {
    let (&flags, mut rest) = data.split_first().ok_or("no flags byte")?;
    let size = if flags & 64 != 0 {
        let [h, w, ..] = *rest else {
            return Err("no size bytes".into());
        };
        rest = &rest[2..];
        Some([h as usize + 1, w as usize + 1])
    } else {
        None
    };
    let opts = FolderOptions {
        size,
        channels: [None, Some(1), Some(3), None][(flags >> 4 & 3) as usize],
        skip_bad: flags & 8 != 0,
        classes: None,
    };
    let classes = (flags & 3) as usize + 1;
    let splits: &[&str] = if flags & 4 != 0 {
        &["train", "test"]
    } else {
        &[""]
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    for split in splits {
        for k in 0..classes {
            std::fs::create_dir_all(dir.path().join(split).join(format!("class{k}")))
                .expect("a class folder");
        }
    }
    let mut files = 0;
    while files < 8 {
        let end = rest
            .windows(FILE_SEPARATOR.len())
            .position(|w| w == FILE_SEPARATOR);
        let (file, next) = match end {
            Some(e) => (&rest[..e], &rest[e + FILE_SEPARATOR.len()..]),
            None => (rest, &[][..]),
        };
        let split = splits[files % splits.len()];
        let class = format!("class{}", files / splits.len() % classes);
        std::fs::write(
            dir.path()
                .join(split)
                .join(class)
                .join(format!("{files}.img")),
            file,
        )
        .expect("a file");
        files += 1;
        if end.is_none() {
            break;
        }
        rest = next;
    }
    let (train, test) = image_folder::read(dir.path(), &opts).map_err(message)?;
    let train = train.expect("a training split");
    assert_eq!(test.is_some(), splits.len() == 2);
    let shape = train.x.shape().to_vec();
    assert!(shape[1] == 1 || shape[1] == 3);
    if let Some(c) = opts.channels {
        assert_eq!(shape[1], c);
    }
    if let Some([h, w]) = size {
        assert_eq!(shape[2..], [h, w]);
    }
    for d in std::iter::once(&train).chain(&test) {
        assert_eq!(d.x.shape()[1..], shape[1..]);
        assert_eq!(d.class_names.as_ref().map(Vec::len), Some(classes));
        assert!(d.y.classes().iter().all(|&k| (k as usize) < classes));
        assert!(d.x.is_u8(), "held as pixel bytes");
        let x = d.x.rows(0, d.len());
        assert!(x.data().iter().all(|v| (0.0..=1.0).contains(v)));
    }
    Ok(())
}
