//! `--augment`: torchvision's random transforms, drawn per sample and applied to every training
//! batch on the fly (never to the test pass, `eval` or `predict`).
//!
//! The text is torchvision's, read by the model-text parser ([`crate::spec`]), optionally inside
//! `Compose([...])`:
//!
//! ```text
//! RandomCrop(size, padding=None, pad_if_needed=False, fill=0, padding_mode='constant')
//! RandomHorizontalFlip(p=0.5)        RandomVerticalFlip(p=0.5)
//! RandomAffine(degrees, translate=None, scale=None, shear=None,
//!              interpolation=InterpolationMode.NEAREST, fill=0, center=None)
//! ```
//!
//! Given the drawn numbers, each transform computes what torchvision's functional op computes on a
//! tensor: `F.crop` of `F.pad`, `F.hflip`, and `F.affine`, i.e. `grid_sample(align_corners=False)`
//! at the inverse affine map about the image centre, with nearest (the default) or bilinear
//! interpolation and `fill` outside. The draws follow torchvision's `get_params` (the same ranges,
//! the same rounding of translations) but come from our generator, not torch's:
//!
//! ```text
//! the sample at position p of epoch e's order draws from ChaCha8(mix(seed ^ SALT, e, p))
//! ```
//!
//! so what a sample gets depends on (seed, epoch, position) alone: not on `--threads`, on MPI
//! ranks, nor on where a run was interrupted and resumed.
//!
//! Augmentation runs on the prepared inputs, after `--normalize`. Crop, flip and affine move pixels
//! (or mix neighbours with weights summing to 1) and fill the rest, so doing them after
//! `x ← (x − mean) / std` gives what torchvision gives with `Normalize` last, provided the fill is
//! normalised too: [`Augment::normalized`].

use crate::data::input::Standardize;
use crate::error::{Error, Result};
use crate::layers::mix;
use crate::spec::{self, Bound, Call, Value};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Keeps augmentation draws apart from the Dropout seeds, which mix the same (seed, epoch, ·).
const SALT: u64 = 0x6175_676d_656e_7421;

/// Samples per parallel task: fixed, so the split never depends on the thread count (each sample
/// draws from its own generator anyway).
const CHUNK: usize = 16;

/// The transforms known, for error messages.
const KNOWN: &str = "RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, RandomAffine";

/// How `RandomCrop` pads: torchvision's `padding_mode`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PadMode {
    /// `fill` outside.
    Constant,
    /// The nearest edge pixel.
    Edge,
    /// Mirrored without repeating the edge: `d c b | a b c d | c b a`.
    Reflect,
    /// Mirrored repeating the edge: `b a | a b c d | d c`.
    Symmetric,
}

/// The numbers of one affine map, as `F.affine` takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// Degrees, clockwise on screen (y pointing down), as torchvision.
    pub angle: f64,
    /// Pixels `(tx, ty)`, right and down.
    pub translate: (f64, f64),
    /// Zoom factor.
    pub scale: f64,
    /// Degrees `(sx, sy)`.
    pub shear: (f64, f64),
}

/// `RandomAffine`'s shear ranges in degrees: `(x_lo, x_hi)` and, when given, `(y_lo, y_hi)`.
type Shear = ((f64, f64), Option<(f64, f64)>);

#[derive(Clone, Debug, PartialEq)]
enum Transform {
    Crop {
        size: (usize, usize),
        /// left, top, right, bottom.
        pad: [usize; 4],
        pad_if_needed: bool,
        fill: f32,
        mode: PadMode,
    },
    Flip {
        p: f64,
        vertical: bool,
    },
    Affine {
        degrees: (f64, f64),
        translate: Option<(f64, f64)>,
        scale: Option<(f64, f64)>,
        shear: Option<Shear>,
        bilinear: bool,
        /// One value, or one per channel.
        fill: Vec<f32>,
        /// Pixel coordinates `(x, y)`; `None`: the image centre.
        center: Option<(f64, f64)>,
    },
}

/// A parsed `--augment` pipeline: transforms applied in order to each training sample.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Augment {
    text: String,
    steps: Vec<Transform>,
    /// `--normalize`'s `(mean, std)` per channel, which the fill values go through.
    normalize: Option<Standardize>,
}

impl PartialEq for Augment {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Augment> for String {
    fn from(a: Augment) -> String {
        a.text
    }
}

impl TryFrom<String> for Augment {
    type Error = Error;
    fn try_from(text: String) -> Result<Augment> {
        Augment::parse(&text)
    }
}

/// `--augment, column C: msg (in "text")`, from the parser's error.
fn flag_error(e: Error) -> Error {
    spec::flag_error("--augment", e)
}

/// An int or an `(a, b)` pair of ints ≥ 0 (torchvision's `size` / `padding` of 2).
fn ints(v: &Value) -> Option<Vec<usize>> {
    let one = |v: &Value| match v {
        Value::Int(i) if *i >= 0 => Some(*i as usize),
        _ => None,
    };
    match v {
        Value::Tuple(t) => t.iter().map(one).collect(),
        v => one(v).map(|i| vec![i]),
    }
}

/// A number or a tuple of numbers.
fn numbers(v: &Value) -> Option<Vec<f64>> {
    let one = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    };
    match v {
        Value::Tuple(t) => t.iter().map(one).collect(),
        v => one(v).map(|f| vec![f]),
    }
}

/// torchvision's `_setup_angle`: `d` → `(−d, d)` (d ≥ 0), or the given sequence.
fn angle_range(b: &Bound, name: &str, sizes: &[usize]) -> Result<Vec<f64>> {
    let (v, col) = b.get(name);
    match numbers(v) {
        Some(n) if n.len() == 1 && n[0] >= 0.0 => Ok(vec![-n[0], n[0]]),
        Some(n) if n.len() > 1 && sizes.contains(&n.len()) => Ok(n),
        _ => b.bad(
            name,
            col,
            &format!("a number ≥ 0 or a sequence of {sizes:?} numbers"),
        ),
    }
}

/// An optional pair of numbers each in `ok`.
fn optional_pair(
    b: &Bound,
    name: &str,
    ok: impl Fn(f64) -> bool,
    want: &str,
) -> Result<Option<(f64, f64)>> {
    let (v, col) = b.get(name);
    match (v, numbers(v)) {
        (Value::None, _) => Ok(None),
        (Value::Tuple(_), Some(n)) if n.len() == 2 && n.iter().all(|&x| ok(x)) => {
            Ok(Some((n[0], n[1])))
        }
        _ => b.bad(name, col, want),
    }
}

impl Augment {
    /// Parses `--augment` text.
    ///
    /// # Errors
    /// Text that does not parse, an unknown transform or argument, a value out of torchvision's
    /// range: one line naming the column.
    pub fn parse(text: &str) -> Result<Augment> {
        let mut calls = spec::parse_calls(text).map_err(flag_error)?;
        if let [c] = calls.as_slice()
            && c.name.rsplit('.').next() == Some("Compose")
        {
            calls = match c.args.as_slice() {
                [(None, Value::Tuple(items), _)] => items
                    .iter()
                    .map(|v| match v {
                        Value::Layer(c) => Ok(c.clone()),
                        _ => Err(()),
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        Error::invalid(format!(
                            "--augment \"{text}\": Compose takes a list of transforms, like Compose([RandomHorizontalFlip()])"
                        ))
                    })?,
                _ => {
                    return Err(Error::invalid(format!(
                        "--augment \"{text}\": Compose takes a list of transforms, like Compose([RandomHorizontalFlip()])"
                    )));
                }
            };
        }
        let steps = calls
            .iter()
            .map(|c| transform(c, text).map_err(flag_error))
            .collect::<Result<_>>()?;
        Ok(Augment {
            text: text.trim().to_string(),
            steps,
            normalize: None,
        })
    }

    /// The pipeline with its fill values normalised as `--normalize` normalises the inputs (so that
    /// filling after normalising equals normalising after filling).
    pub fn normalized(mut self, s: Option<&Standardize>) -> Augment {
        self.normalize = s.cloned();
        self
    }

    /// Checks that the pipeline can run on samples of shape `shape` before any batch.
    ///
    /// # Errors
    /// Samples that are not images `[C, H, W]`, a crop that does not give back the image size
    /// (the test pass sees whole images), per-channel fill values for another channel count, or
    /// reflect padding as wide as the image.
    pub fn check(&self, shape: &[usize]) -> Result<()> {
        let err = |msg: String| {
            Err(Error::invalid(format!(
                "--augment \"{}\": {msg}",
                self.text
            )))
        };
        let &[c, h, w] = shape else {
            return err(format!(
                "its transforms take images [C, H, W]; these samples are {shape:?} (a table, text or \
                 flat vectors cannot be augmented)"
            ));
        };
        if self.normalize.as_ref().is_some_and(|s| s.mean.len() != c) {
            return err("--normalize does not give one mean per channel".into());
        }
        for t in &self.steps {
            match t {
                Transform::Crop {
                    size,
                    pad,
                    pad_if_needed,
                    mode,
                    ..
                } => {
                    let (ph, pw) = padded(h, w, pad, *pad_if_needed, *size);
                    if ph < size.0 || pw < size.1 {
                        return err(format!(
                            "RandomCrop: required crop size {size:?} is larger than the padded image ({ph}, {pw})"
                        ));
                    }
                    if *size != (h, w) {
                        return err(format!(
                            "RandomCrop{size:?} would make {}×{} images from {h}×{w} ones, and the model, \
                             the test pass and predict take {h}×{w}: crop to the image size and pad \
                             (RandomCrop({h}, padding=4))",
                            size.0, size.1
                        ));
                    }
                    let most = match mode {
                        PadMode::Reflect => (h.min(w)).saturating_sub(1),
                        PadMode::Symmetric => h.min(w),
                        _ => usize::MAX,
                    };
                    if pad.iter().any(|&p| p > most) {
                        return err(format!(
                            "RandomCrop: padding {pad:?} is wider than {mode:?} padding allows on {h}×{w} images (at most {most})"
                        ));
                    }
                }
                Transform::Affine { fill, .. } if fill.len() != 1 && fill.len() != c => {
                    return err(format!(
                        "RandomAffine: fill has {} values for images with {c} channels",
                        fill.len()
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Transforms every row of `x: [N, C, H, W]` in place, row `i` drawing as the sample at
    /// position `positions[i]` of epoch `epoch` (see the module docs): a process holding some rows
    /// of a batch draws for them what one process holding all of it draws. Samples run in
    /// parallel in fixed chunks. [`Augment::check`] must have accepted the shape.
    pub fn apply(&self, x: &mut Tensor, positions: &[usize], seed: u64, epoch: usize) {
        let [_, c, h, w] = *x.shape() else {
            panic!("augment: checked [N, C, H, W]")
        };
        let per = c * h * w;
        let fill = |raw: &[f32]| -> Vec<f32> {
            (0..c)
                .map(|k| {
                    let v = raw[k.min(raw.len() - 1)];
                    self.normalize
                        .as_ref()
                        .map_or(v, |s| (v - s.mean[k]) / s.std[k])
                })
                .collect()
        };
        let fills: Vec<Vec<f32>> = self
            .steps
            .iter()
            .map(|t| match t {
                Transform::Crop { fill: f, .. } => fill(&[*f]),
                Transform::Affine { fill: f, .. } => fill(f),
                Transform::Flip { .. } => Vec::new(),
            })
            .collect();
        assert_eq!(
            positions.len() * per,
            x.len(),
            "augment: one position per row"
        );
        x.data_mut()
            .par_chunks_mut(per * CHUNK)
            .zip(positions.par_chunks(CHUNK))
            .for_each(|(chunk, positions)| {
                let mut buf = vec![0.0f32; per];
                for (sample, &position) in chunk.chunks_exact_mut(per).zip(positions) {
                    let mut rng =
                        ChaCha8Rng::seed_from_u64(mix(seed ^ SALT, epoch as u64, position as u64));
                    for (t, fill) in self.steps.iter().zip(&fills) {
                        if t.run(sample, &mut buf, (c, h, w), fill, &mut rng) {
                            sample.copy_from_slice(&buf);
                        }
                    }
                }
            });
    }
}

/// The image size after `RandomCrop`'s padding (and `pad_if_needed`, which pads both sides by the
/// shortfall, as torchvision does).
fn padded(
    h: usize,
    w: usize,
    pad: &[usize; 4],
    if_needed: bool,
    size: (usize, usize),
) -> (usize, usize) {
    let (mut ph, mut pw) = (h + pad[1] + pad[3], w + pad[0] + pad[2]);
    if if_needed && pw < size.1 {
        pw += 2 * (size.1 - pw);
    }
    if if_needed && ph < size.0 {
        ph += 2 * (size.0 - ph);
    }
    (ph, pw)
}

/// A uniform draw from `[lo, hi)` (`lo` when the range is empty), as `torch.empty(1).uniform_`.
fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.r#gen::<f64>()
}

/// Parses one transform.
fn transform(call: &Call, text: &str) -> Result<Transform> {
    use Value::{Bool, Float, Int, Str};
    let bind = |params| Bound::new(call, text, params);
    let name = call.name.rsplit('.').next().unwrap_or_default();
    Ok(match name {
        "RandomCrop" => {
            let b = bind(vec![
                ("size", None),
                ("padding", Some(Value::None)),
                ("pad_if_needed", Some(Bool(false))),
                ("fill", Some(Int(0))),
                ("padding_mode", Some(Str("constant".into()))),
            ])?;
            let (v, col) = b.get("size");
            let size = match ints(v).as_deref() {
                Some(&[s]) if s > 0 => (s, s),
                Some(&[sh, sw]) if sh > 0 && sw > 0 => (sh, sw),
                _ => return b.bad("size", col, "a positive integer or (h, w)"),
            };
            let pad = match b.get("padding") {
                (Value::None, _) => [0; 4],
                (v, col) => match ints(v).as_deref() {
                    Some(&[p]) => [p; 4],
                    Some(&[lr, tb]) => [lr, tb, lr, tb],
                    Some(&[l, t, r, bo]) => [l, t, r, bo],
                    _ => {
                        return b.bad(
                            "padding",
                            col,
                            "an integer ≥ 0, (left/right, top/bottom) or (left, top, right, bottom)",
                        );
                    }
                },
            };
            let mode = match b.get("padding_mode") {
                (Str(m), _) if m == "constant" => PadMode::Constant,
                (Str(m), _) if m == "edge" => PadMode::Edge,
                (Str(m), _) if m == "reflect" => PadMode::Reflect,
                (Str(m), _) if m == "symmetric" => PadMode::Symmetric,
                (_, col) => {
                    return b.bad(
                        "padding_mode",
                        col,
                        "'constant', 'edge', 'reflect' or 'symmetric'",
                    );
                }
            };
            Transform::Crop {
                size,
                pad,
                pad_if_needed: b.flag("pad_if_needed")?,
                fill: b.float("fill")? as f32,
                mode,
            }
        }
        "RandomHorizontalFlip" | "RandomVerticalFlip" => {
            let b = bind(vec![("p", Some(Float(0.5)))])?;
            let p = b.float("p")?;
            if !(0.0..=1.0).contains(&p) {
                let col = b.get("p").1;
                return b.bad("p", col, "between 0 and 1");
            }
            Transform::Flip {
                p,
                vertical: name == "RandomVerticalFlip",
            }
        }
        "RandomAffine" => {
            let b = bind(vec![
                ("degrees", None),
                ("translate", Some(Value::None)),
                ("scale", Some(Value::None)),
                ("shear", Some(Value::None)),
                ("interpolation", Some(Str("nearest".into()))),
                ("fill", Some(Int(0))),
                ("center", Some(Value::None)),
            ])?;
            let d = angle_range(&b, "degrees", &[2])?;
            let translate = optional_pair(
                &b,
                "translate",
                |t| (0.0..=1.0).contains(&t),
                "None or (a, b), fractions of the width and height between 0 and 1",
            )?;
            let scale = optional_pair(&b, "scale", |s| s > 0.0, "None or (a, b), both > 0")?;
            let shear = match b.get("shear").0 {
                Value::None => None,
                _ => {
                    let s = angle_range(&b, "shear", &[2, 4])?;
                    Some(((s[0], s[1]), (s.len() == 4).then(|| (s[2], s[3]))))
                }
            };
            let bilinear = match b.get("interpolation") {
                (Value::Layer(c), _) if c.args.is_empty() && c.name.ends_with(".NEAREST") => false,
                (Value::Layer(c), _) if c.args.is_empty() && c.name.ends_with(".BILINEAR") => true,
                (Str(s), _) if s == "nearest" => false,
                (Str(s), _) if s == "bilinear" => true,
                (Int(0), _) => false,
                (Int(2), _) => true,
                (_, col) => {
                    return b.bad(
                        "interpolation",
                        col,
                        "InterpolationMode.NEAREST or InterpolationMode.BILINEAR",
                    );
                }
            };
            let (v, col) = b.get("fill");
            let fill = match numbers(v) {
                Some(f) if !f.is_empty() => f.into_iter().map(|f| f as f32).collect(),
                _ => return b.bad("fill", col, "a number or one number per channel"),
            };
            let center = optional_pair(&b, "center", f64::is_finite, "None or (x, y) in pixels")?;
            Transform::Affine {
                degrees: (d[0], d[1]),
                translate,
                scale,
                shear,
                bilinear,
                fill,
                center,
            }
        }
        other => {
            return Err(Error::Syntax {
                text: text.to_string(),
                column: call.column,
                msg: format!("unknown transform '{other}' (known: {KNOWN})"),
            });
        }
    })
}

impl Transform {
    /// Draws this transform's numbers for one sample and writes the result to `dst`; `false` when
    /// it leaves `src` as it is (a flip not drawn). `src`, `dst`: one image `[C, H, W]`.
    fn run(
        &self,
        src: &[f32],
        dst: &mut [f32],
        (c, h, w): (usize, usize, usize),
        fill: &[f32],
        rng: &mut ChaCha8Rng,
    ) -> bool {
        match self {
            Transform::Crop {
                size,
                pad,
                pad_if_needed,
                mode,
                ..
            } => {
                let (ph, pw) = padded(h, w, pad, *pad_if_needed, *size);
                // torchvision: no draw when the padded image is the crop size.
                let (i, j) = if (ph, pw) == *size {
                    (0, 0)
                } else {
                    (
                        rng.gen_range(0..=ph - size.0),
                        rng.gen_range(0..=pw - size.1),
                    )
                };
                // Where the original's corner sits in the padded image.
                let (ph0, pw0) = (h + pad[1] + pad[3], w + pad[0] + pad[2]);
                let shortfall =
                    |n: usize, s: usize| if *pad_if_needed && n < s { s - n } else { 0 };
                let top = pad[1] + shortfall(ph0, size.0);
                let left = pad[0] + shortfall(pw0, size.1);
                let corner = (i as isize - top as isize, j as isize - left as isize);
                crop(src, dst, (c, h, w), corner, *mode, fill);
                true
            }
            Transform::Flip { p, vertical } => {
                if rng.r#gen::<f64>() >= *p {
                    return false;
                }
                flip(src, dst, (c, h, w), *vertical);
                true
            }
            Transform::Affine {
                degrees,
                translate,
                scale,
                shear,
                bilinear,
                center,
                ..
            } => {
                let angle = uniform(rng, degrees.0, degrees.1);
                let translate = translate.map_or((0.0, 0.0), |(fx, fy)| {
                    let (dx, dy) = (fx * w as f64, fy * h as f64);
                    (
                        uniform(rng, -dx, dx).round_ties_even(),
                        uniform(rng, -dy, dy).round_ties_even(),
                    )
                });
                let scale = scale.map_or(1.0, |(lo, hi)| uniform(rng, lo, hi));
                let shear = shear.map_or((0.0, 0.0), |(x, y)| {
                    let sx = uniform(rng, x.0, x.1);
                    (sx, y.map_or(0.0, |y| uniform(rng, y.0, y.1)))
                });
                let params = AffineParams {
                    angle,
                    translate,
                    scale,
                    shear,
                };
                affine(src, dst, (c, h, w), &params, *center, fill, *bilinear);
                true
            }
        }
    }
}

/// Where index `k` of a padded axis of length `n` reads from, or `None` for the fill.
fn pad_index(k: isize, n: usize, mode: PadMode) -> Option<usize> {
    let n = n as isize;
    if (0..n).contains(&k) {
        return Some(k as usize);
    }
    let k = match mode {
        PadMode::Constant => return None,
        PadMode::Edge => k.clamp(0, n - 1),
        PadMode::Reflect if k < 0 => -k,
        PadMode::Reflect => 2 * (n - 1) - k,
        PadMode::Symmetric if k < 0 => -k - 1,
        PadMode::Symmetric => 2 * n - 1 - k,
    };
    Some(k.clamp(0, n - 1) as usize)
}

/// `F.crop(F.pad(src))`: `dst[c, y, x] = padded[c, y + i, x + j]`, with `(oy, ox)` the offset of
/// the crop's corner in `src` coordinates (negative inside the padding).
fn crop(
    src: &[f32],
    dst: &mut [f32],
    (c, h, w): (usize, usize, usize),
    (oy, ox): (isize, isize),
    mode: PadMode,
    fill: &[f32],
) {
    for ch in 0..c {
        let (s, d) = (&src[ch * h * w..][..h * w], &mut dst[ch * h * w..][..h * w]);
        for y in 0..h {
            let row = pad_index(y as isize + oy, h, mode);
            for x in 0..w {
                d[y * w + x] = match (row, pad_index(x as isize + ox, w, mode)) {
                    (Some(r), Some(col)) => s[r * w + col],
                    _ => fill[ch],
                };
            }
        }
    }
}

/// `F.hflip` (`x → W−1−x`) or `F.vflip` (`y → H−1−y`).
fn flip(src: &[f32], dst: &mut [f32], (c, h, w): (usize, usize, usize), vertical: bool) {
    for ch in 0..c {
        for y in 0..h {
            let from = if vertical { h - 1 - y } else { y };
            let s = &src[(ch * h + from) * w..][..w];
            let d = &mut dst[(ch * h + y) * w..][..w];
            if vertical {
                d.copy_from_slice(s);
            } else {
                d.iter_mut().zip(s.iter().rev()).for_each(|(d, s)| *d = *s);
            }
        }
    }
}

/// torchvision's `_get_inverse_affine_matrix` (for tensors: `center` relative to the image
/// centre): the map from output to input coordinates, `M⁻¹ = C · RSS⁻¹ · C⁻¹ · T⁻¹`, where
/// `RSS = R(a) · S(s) · SHy(sy) · SHx(sx)`.
pub fn inverse_matrix(center: (f64, f64), p: &AffineParams) -> [f64; 6] {
    let rot = p.angle.to_radians();
    let (sx, sy) = (p.shear.0.to_radians(), p.shear.1.to_radians());
    let (cx, cy) = center;
    let (tx, ty) = p.translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|x| x / p.scale);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// `F.affine` on one image `[C, H, W]`, as torchvision runs it on tensors (in f32): output pixel
/// `(x, y)`, centred (`x = col − W/2 + ½`), reads the input at `M⁻¹·(x, y, 1)`, normalised by
/// `(W/2, H/2)` and unnormalised as `grid_sample(align_corners=False)` does
/// (`ix = ((gx + 1)·W − 1) / 2`); nearest rounds half to even, bilinear weighs the four
/// neighbours; outside the image the value is `fill` (bilinear blends it in by the weight outside).
pub fn affine(
    src: &[f32],
    dst: &mut [f32],
    (c, h, w): (usize, usize, usize),
    p: &AffineParams,
    center: Option<(f64, f64)>,
    fill: &[f32],
    bilinear: bool,
) {
    let center = center.map_or((0.0, 0.0), |(x, y)| {
        (x - w as f64 * 0.5, y - h as f64 * 0.5)
    });
    let m = inverse_matrix(center, p).map(|v| v as f32);
    let (hw, hh) = ((0.5 * w as f64) as f32, (0.5 * h as f64) as f32);
    let r = [
        m[0] / hw,
        m[1] / hw,
        m[2] / hw,
        m[3] / hh,
        m[4] / hh,
        m[5] / hh,
    ];
    let (wf, hf) = (w as f32, h as f32);
    let plane = h * w;
    for oy in 0..h {
        let y = oy as f32 - hh + 0.5;
        for ox in 0..w {
            let x = ox as f32 - hw + 0.5;
            let gx = x * r[0] + y * r[1] + r[2];
            let gy = x * r[3] + y * r[4] + r[5];
            let ix = ((gx + 1.0) * wf - 1.0) / 2.0;
            let iy = ((gy + 1.0) * hf - 1.0) / 2.0;
            let at = oy * w + ox;
            if !bilinear {
                let (nx, ny) = (ix.round_ties_even(), iy.round_ties_even());
                let inside = nx >= 0.0 && nx < wf && ny >= 0.0 && ny < hf;
                for ch in 0..c {
                    dst[ch * plane + at] = if inside {
                        src[ch * plane + ny as usize * w + nx as usize]
                    } else {
                        fill[ch]
                    };
                }
                continue;
            }
            let (x0, y0) = (ix.floor(), iy.floor());
            let (fx, fy) = (ix - x0, iy - y0);
            let corners = [
                (x0, y0, (1.0 - fx) * (1.0 - fy)),
                (x0 + 1.0, y0, fx * (1.0 - fy)),
                (x0, y0 + 1.0, (1.0 - fx) * fy),
                (x0 + 1.0, y0 + 1.0, fx * fy),
            ];
            let inside =
                |(cx, cy, _): &&(f32, f32, f32)| *cx >= 0.0 && *cx < wf && *cy >= 0.0 && *cy < hf;
            let mask: f32 = corners.iter().filter(inside).map(|k| k.2).sum();
            for ch in 0..c {
                let s = &src[ch * plane..][..plane];
                let v: f32 = corners
                    .iter()
                    .filter(inside)
                    .map(|&(cx, cy, k)| s[cy as usize * w + cx as usize] * k)
                    .sum();
                dst[ch * plane + at] = v * mask + (1.0 - mask) * fill[ch];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×3 one-channel image 1…9, row by row.
    const NINE: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

    fn params(angle: f64, translate: (f64, f64)) -> AffineParams {
        AffineParams {
            angle,
            translate,
            scale: 1.0,
            shear: (0.0, 0.0),
        }
    }

    fn affine_of(src: &[f32], p: &AffineParams) -> Vec<f32> {
        let mut dst = vec![f32::NAN; 9];
        affine(src, &mut dst, (1, 3, 3), p, None, &[0.0], false);
        dst
    }

    fn err(text: &str) -> String {
        Augment::parse(text).unwrap_err().to_string()
    }

    /// A batch `[n, c, h, w]` of distinct values.
    fn batch(n: usize, c: usize, h: usize, w: usize) -> Tensor {
        let len = n * c * h * w;
        Tensor::new(
            &[n, c, h, w],
            (0..len).map(|v| v as f32 / len as f32).collect(),
        )
        .unwrap()
    }

    #[test]
    fn affine_by_hand_on_a_tiny_image() {
        // 90° turns clockwise on screen (torchvision's sign: y points down).
        assert_eq!(
            affine_of(&NINE, &params(90.0, (0.0, 0.0))),
            [7.0, 4.0, 1.0, 8.0, 5.0, 2.0, 9.0, 6.0, 3.0]
        );
        // One pixel right: the left column is filled.
        assert_eq!(
            affine_of(&NINE, &params(0.0, (1.0, 0.0))),
            [0.0, 1.0, 2.0, 0.0, 4.0, 5.0, 0.0, 7.0, 8.0]
        );
        // One pixel up, the bottom row filled with 0.5.
        let mut dst = vec![0.0; 9];
        affine(
            &NINE,
            &mut dst,
            (1, 3, 3),
            &params(0.0, (0.0, -1.0)),
            None,
            &[0.5],
            false,
        );
        assert_eq!(dst, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.5, 0.5, 0.5]);
        // Zero degrees, no move: the identity, nearest and bilinear.
        assert_eq!(affine_of(&NINE, &params(0.0, (0.0, 0.0))), NINE);
        affine(
            &NINE,
            &mut dst,
            (1, 3, 3),
            &params(0.0, (0.0, 0.0)),
            None,
            &[0.0],
            true,
        );
        assert_eq!(dst, NINE);
    }

    #[test]
    fn crop_offsets_and_padding_modes_by_hand() {
        let mut dst = [0.0; 9];
        // The corner one pixel up-left inside the padding: a row and column of fill.
        crop(
            &NINE,
            &mut dst,
            (1, 3, 3),
            (-1, -1),
            PadMode::Constant,
            &[0.0],
        );
        assert_eq!(dst, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 4.0, 5.0]);
        crop(
            &NINE,
            &mut dst,
            (1, 3, 3),
            (1, 0),
            PadMode::Constant,
            &[-1.0],
        );
        assert_eq!(dst, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, -1.0, -1.0, -1.0]);
        crop(&NINE, &mut dst, (1, 3, 3), (0, -2), PadMode::Edge, &[0.0]);
        assert_eq!(dst, [1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 7.0, 7.0, 7.0]);
        crop(
            &NINE,
            &mut dst,
            (1, 3, 3),
            (0, -2),
            PadMode::Reflect,
            &[0.0],
        );
        assert_eq!(dst, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0]);
        crop(
            &NINE,
            &mut dst,
            (1, 3, 3),
            (0, 2),
            PadMode::Symmetric,
            &[0.0],
        );
        assert_eq!(dst, [3.0, 3.0, 2.0, 6.0, 6.0, 5.0, 9.0, 9.0, 8.0]);
    }

    #[test]
    fn random_crop_draws_every_offset_in_the_padding_and_no_other() {
        // RandomCrop(3, padding=1) on 3×3: the 9 windows of the 5×5 padded image.
        let a = Augment::parse("RandomCrop(3, padding=1)").unwrap();
        let n = 400;
        let mut x = Tensor::new(&[n, 1, 3, 3], NINE.repeat(n)).unwrap();
        a.apply(&mut x, &Vec::from_iter(0..n), 7, 0);
        let mut seen = std::collections::BTreeSet::new();
        for out in x.data().chunks_exact(9) {
            let hit = (-1..=1)
                .flat_map(|i| (-1..=1).map(move |j| (i, j)))
                .find(|&corner| {
                    let mut want = [0.0; 9];
                    crop(
                        &NINE,
                        &mut want,
                        (1, 3, 3),
                        corner,
                        PadMode::Constant,
                        &[0.0],
                    );
                    want == out
                });
            seen.insert(hit.expect("a window of the padded image"));
        }
        assert_eq!(seen.len(), 9);
    }

    #[test]
    fn flips_follow_p() {
        let mut dst = [0.0; 9];
        flip(&NINE, &mut dst, (1, 3, 3), false);
        assert_eq!(dst, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0]);
        flip(&NINE, &mut dst, (1, 3, 3), true);
        assert_eq!(dst, [7.0, 8.0, 9.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
        for (p, flipped) in [(1.0, 200), (0.0, 0)] {
            let a = Augment::parse(&format!("RandomHorizontalFlip(p={p})")).unwrap();
            let mut x = Tensor::new(&[200, 1, 3, 3], NINE.repeat(200)).unwrap();
            a.apply(&mut x, &Vec::from_iter(0..200), 1, 0);
            let count = x.data().chunks_exact(9).filter(|s| s[0] == 3.0).count();
            assert_eq!(count, flipped);
        }
        // p = 0.5 (the default): about half.
        let a = Augment::parse("RandomHorizontalFlip()").unwrap();
        let mut x = Tensor::new(&[1000, 1, 3, 3], NINE.repeat(1000)).unwrap();
        a.apply(&mut x, &Vec::from_iter(0..1000), 1, 0);
        let count = x.data().chunks_exact(9).filter(|s| s[0] == 3.0).count();
        assert!((430..570).contains(&count), "{count}");
    }

    #[test]
    fn random_affine_draws_within_its_ranges() {
        // translate=(0.4, 0) on width 5: tx = round(U(-2, 2)) ∈ {-2, …, 2}, every one drawn; the
        // image is a row 1…5, so the shift shows as where 3 (the centre) lands.
        let a = Augment::parse("RandomAffine(0, translate=(0.4, 0))").unwrap();
        let row = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut x = Tensor::new(&[300, 1, 1, 5], row.repeat(300)).unwrap();
        a.apply(&mut x, &Vec::from_iter(0..300), 3, 1);
        let shifts: std::collections::BTreeSet<i64> = x
            .data()
            .chunks_exact(5)
            .map(|s| s.iter().position(|&v| v == 3.0).unwrap() as i64 - 2)
            .collect();
        assert_eq!(shifts.into_iter().collect::<Vec<_>>(), [-2, -1, 0, 1, 2]);
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_position_only() {
        let a = Augment::parse(
            "RandomCrop(6, padding=2), RandomHorizontalFlip(), RandomAffine(degrees=30, translate=(0.2, 0.1), scale=(0.8, 1.2), shear=10)",
        )
        .unwrap();
        let on = |threads: usize, x: &mut Tensor, rows: std::ops::Range<usize>, epoch: usize| {
            let positions: Vec<usize> = rows.map(|r| 100 + r).collect();
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| a.apply(x, &positions, 11, epoch))
        };
        let mut one = batch(37, 2, 6, 6);
        on(1, &mut one, 0..37, 2);
        let mut two = batch(37, 2, 6, 6);
        on(2, &mut two, 0..37, 2);
        assert_eq!(one.data(), two.data());
        assert_ne!(one.data(), batch(37, 2, 6, 6).data());
        // A rank holding rows 20..37 of the batch only draws what the whole batch drew for them.
        let per = 2 * 6 * 6;
        let mut share = Tensor::new(
            &[17, 2, 6, 6],
            batch(37, 2, 6, 6).data()[20 * per..].to_vec(),
        )
        .unwrap();
        on(2, &mut share, 20..37, 2);
        assert_eq!(share.data(), &one.data()[20 * per..]);
        // Another epoch draws anew.
        let mut next = batch(37, 2, 6, 6);
        on(1, &mut next, 0..37, 3);
        assert_ne!(next.data(), one.data());
    }

    #[test]
    fn normalized_fill_equals_normalizing_after() {
        // Normalize last (torchvision) = augment the normalised image with a normalised fill.
        let text = "RandomCrop(4, padding=3, fill=0.25), RandomAffine(degrees=45, fill=(0.5, 1))";
        let s = Standardize {
            mean: vec![0.5, 0.2],
            std: vec![0.25, 2.0],
        };
        let mut raw = batch(20, 2, 4, 4);
        Augment::parse(text)
            .unwrap()
            .apply(&mut raw, &Vec::from_iter(0..20), 4, 0);
        s.apply(&mut raw).unwrap();
        let mut normed = batch(20, 2, 4, 4);
        s.apply(&mut normed).unwrap();
        let a = Augment::parse(text).unwrap().normalized(Some(&s));
        a.apply(&mut normed, &Vec::from_iter(0..20), 4, 0);
        for (p, q) in raw.data().iter().zip(normed.data()) {
            assert!((p - q).abs() < 1e-5, "{p} {q}");
        }
    }

    /// torchvision's own outputs with fixed parameters, from
    /// `python3 tools/make_augment_fixtures.py` (tests/fixtures/augment/torchvision.json).
    #[test]
    fn matches_torchvision_functional_ops() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/augment/torchvision.json"
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let pair = |v: &serde_json::Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
        let shape: Vec<usize> = f["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let (c, h, w) = (shape[0], shape[1], shape[2]);
        let img = v(&f["image"]);
        let mut checked = 0;
        for case in f["cases"].as_array().unwrap() {
            let want = v(&case["out"]);
            let mut got = vec![f32::NAN; want.len()];
            let bilinear = case["interpolation"] == "bilinear";
            match case["op"].as_str().unwrap() {
                "affine" => {
                    let p = AffineParams {
                        angle: case["angle"].as_f64().unwrap(),
                        translate: pair(&case["translate"]),
                        scale: case["scale"].as_f64().unwrap(),
                        shear: pair(&case["shear"]),
                    };
                    let center = (!case["center"].is_null()).then(|| pair(&case["center"]));
                    let fill = v(&case["fill"]);
                    affine(&img, &mut got, (c, h, w), &p, center, &fill, bilinear);
                }
                "crop" => {
                    let pad = v(&case["padding"]);
                    let mode = match case["padding_mode"].as_str().unwrap() {
                        "constant" => PadMode::Constant,
                        "edge" => PadMode::Edge,
                        "reflect" => PadMode::Reflect,
                        _ => PadMode::Symmetric,
                    };
                    let corner = (
                        case["i"].as_i64().unwrap() as isize - pad[1] as isize,
                        case["j"].as_i64().unwrap() as isize - pad[0] as isize,
                    );
                    let fill = vec![case["fill"].as_f64().unwrap() as f32; c];
                    crop(&img, &mut got, (c, h, w), corner, mode, &fill);
                }
                op => flip(&img, &mut got, (c, h, w), op == "vflip"),
            }
            let tol = if bilinear { 1e-5 } else { 0.0 };
            for (k, (g, x)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - x).abs() <= tol,
                    "{case:?}: value {k}: {g} vs torchvision's {x}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 14);
    }

    #[test]
    fn text_forms_and_round_trip() {
        let a = Augment::parse(
            "transforms.Compose([T.RandomCrop((6, 6), padding=(1, 2), padding_mode='reflect'), \
             RandomAffine((-5, 15), interpolation=InterpolationMode.BILINEAR, fill=(0, 1))])",
        )
        .unwrap();
        assert_eq!(a.steps.len(), 2);
        assert!(matches!(
            a.steps[0],
            Transform::Crop {
                size: (6, 6),
                pad: [1, 2, 1, 2],
                mode: PadMode::Reflect,
                ..
            }
        ));
        assert!(matches!(
            &a.steps[1],
            Transform::Affine { degrees, bilinear: true, .. } if *degrees == (-5.0, 15.0)
        ));
        let json = serde_json::to_string(&a).unwrap();
        let back: Augment = serde_json::from_str(&json).unwrap();
        assert_eq!((back.steps, back.text), (a.steps, a.text));
        // Positional as torchvision: RandomAffine(degrees, translate, scale, shear).
        let b = Augment::parse("RandomAffine(10, (0.1, 0.2), (0.9, 1.1), (1, 2, 3, 4))").unwrap();
        assert!(matches!(
            &b.steps[0],
            Transform::Affine {
                translate: Some((0.1, 0.2)),
                scale: Some((0.9, 1.1)),
                shear: Some(((1.0, 2.0), Some((3.0, 4.0)))),
                ..
            }
        ));
    }

    #[test]
    fn errors_are_one_line_and_name_what_is_known() {
        assert_eq!(
            err("RandomCrop(28), RandomRotation(10)"),
            "--augment, column 17: unknown transform 'RandomRotation' (known: RandomCrop, \
             RandomHorizontalFlip, RandomVerticalFlip, RandomAffine) (in \"RandomCrop(28), RandomRotation(10)\")"
        );
        assert_eq!(
            err("RandomHorizontalFlip(prob=0.5)"),
            "--augment, column 22: RandomHorizontalFlip has no argument 'prob' (it takes p) (in \"RandomHorizontalFlip(prob=0.5)\")"
        );
        assert!(err("RandomAffine()").contains("RandomAffine is missing its argument 'degrees'"));
        assert!(err("RandomAffine(-3)").contains("'degrees' must be a number ≥ 0"));
        assert!(err("RandomAffine(3, translate=(0.1, 2))").contains("between 0 and 1"));
        assert!(
            err("RandomAffine(3, scale=(0, 1))")
                .contains("'scale' must be None or (a, b), both > 0")
        );
        assert!(
            err("RandomAffine(3, interpolation='bicubic')")
                .contains("InterpolationMode.NEAREST or")
        );
        assert!(
            err("RandomCrop(28, padding_mode='wrap')")
                .contains("'constant', 'edge', 'reflect' or 'symmetric'")
        );
        assert!(err("RandomCrop(28, padding=(1, 2, 3))").contains("'padding' must be"));
        assert!(err("RandomHorizontalFlip(p=2)").contains("'p' must be between 0 and 1"));
        assert!(err("RandomCrop(28").contains("--augment, column"));
        assert!(err("Compose(RandomCrop(28))").contains("Compose takes a list of transforms"));
        assert!(!err("RandomCrop(28,\n padding=\t4x)").contains('\n'));

        let check = |text: &str, shape: &[usize]| {
            Augment::parse(text)
                .unwrap()
                .check(shape)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            check("RandomHorizontalFlip()", &[13]),
            "--augment \"RandomHorizontalFlip()\": its transforms take images [C, H, W]; these \
             samples are [13] (a table, text or flat vectors cannot be augmented)"
        );
        assert!(
            check("RandomCrop(24)", &[1, 28, 28])
                .contains("would make 24×24 images from 28×28 ones")
        );
        assert!(
            check("RandomCrop(40)", &[1, 28, 28]).contains("larger than the padded image (28, 28)")
        );
        assert!(
            check(
                "RandomCrop(4, padding=4, padding_mode='reflect')",
                &[1, 4, 4]
            )
            .contains("at most 3")
        );
        assert!(
            check("RandomAffine(5, fill=(0, 1))", &[3, 8, 8])
                .contains("fill has 2 values for images with 3 channels")
        );
        Augment::parse(
            "RandomCrop(4, padding=3, padding_mode='reflect'), RandomAffine(5, fill=(0, 1, 0))",
        )
        .unwrap()
        .check(&[3, 4, 4])
        .unwrap();
    }
}
