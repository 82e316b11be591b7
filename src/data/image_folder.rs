//! `--data DIR` for a folder of images sorted by class: `DIR/<class>/*.png|jpg`, or
//! `DIR/train/<class>/…` and `DIR/test/<class>/…` as the two splits. Class names are the folder
//! names in sorted order. Every image is decoded once, in parallel, to `u8` at one size
//! (`--image-size H,W`, default the first image's: others are scaled keeping their aspect ratio
//! and padded with black) and one channel count (`--channels 1|3`, default 3 when any image is in
//! colour), and kept as those bytes, which stand for `byte / 255` in [0, 1] as IDX pixels do
//! (see [`Inputs`]).

use crate::data::dataset::{Dataset, Labels};
use crate::data::image_style::luma;
use crate::data::inputs::{Inputs, unit};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How a folder of images is read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderOptions {
    /// `[H, W]`; default the first image's size.
    pub size: Option<[usize; 2]>,
    /// 1 or 3; default 3 when any image is in colour.
    pub channels: Option<usize>,
    /// Warn about and count files that are not images instead of failing on the first.
    pub skip_bad: bool,
    /// The classes a trained model knows, in its order (eval, `--test-data`).
    pub classes: Option<Vec<String>>,
}

/// The most pixels one image file may decode to (an image bomb is refused before decoding).
const MAX_PIXELS: u64 = 1 << 26;

/// The visible subfolders of `dir`, sorted by name.
fn subfolders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && !name.starts_with('.') {
            out.push((name, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The visible files of each class folder, sorted, with their class index.
fn list(dir: &Path, classes: &[(String, PathBuf)]) -> Result<Vec<(PathBuf, u32)>> {
    let mut files = Vec::new();
    for (k, (_, path)) in classes.iter().enumerate() {
        let mut here: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        here.sort();
        files.extend(here.into_iter().map(|p| (p, k as u32)));
    }
    if files.is_empty() {
        return Err(Error::invalid(format!(
            "{}: the class folders hold no files",
            dir.display()
        )));
    }
    Ok(files)
}

/// Reads a folder of images: `(train, test)`, the test split only when `DIR/train` and `DIR/test`
/// both exist.
///
/// # Errors
/// No class folders; empty class folders; `train/` and `test/` with different classes; a file
/// that is not an image (unless `skip_bad`); a class the trained model does not know; no image
/// left.
pub fn read(dir: &Path, opts: &FolderOptions) -> Result<(Option<Dataset>, Option<Dataset>)> {
    let top = subfolders(dir)?;
    let names: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
    if names == ["test", "train"] {
        let train_classes = subfolders(&dir.join("train"))?;
        let test_classes = subfolders(&dir.join("test"))?;
        let a: Vec<&String> = train_classes.iter().map(|(n, _)| n).collect();
        let b: Vec<&String> = test_classes.iter().map(|(n, _)| n).collect();
        if a != b {
            return Err(Error::invalid(format!(
                "{}: train/ has the classes {a:?} but test/ has {b:?}; give both the same class folders",
                dir.display()
            )));
        }
        let train = read_split(&dir.join("train"), &train_classes, opts)?;
        // The test split takes the training split's size and channels.
        let like = FolderOptions {
            size: Some([train.x.shape()[2], train.x.shape()[3]]),
            channels: Some(train.x.shape()[1]),
            classes: train.class_names.clone(),
            ..opts.clone()
        };
        let test = read_split(&dir.join("test"), &test_classes, &like)?;
        return Ok((Some(train), Some(test)));
    }
    if top.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no class folders (expected DIR/<class>/*.png or DIR/train/<class>/ and DIR/test/<class>/)",
            dir.display()
        )));
    }
    Ok((Some(read_split(dir, &top, opts)?), None))
}

/// One split: every file of every class folder.
fn read_split(dir: &Path, classes: &[(String, PathBuf)], opts: &FolderOptions) -> Result<Dataset> {
    let mut files = list(dir, classes)?;
    let names: Vec<String> = match &opts.classes {
        Some(known) => {
            // Folder index → the model's class index.
            let mut to_known = Vec::with_capacity(classes.len());
            for (name, path) in classes {
                to_known.push(known.iter().position(|c| c == name).ok_or_else(|| {
                    Error::invalid(format!(
                        "{}: class '{name}' is not one the model was trained on ({})",
                        path.display(),
                        known.join(", ")
                    ))
                })? as u32);
            }
            for f in &mut files {
                f.1 = to_known[f.1 as usize];
            }
            known.clone()
        }
        None => classes.iter().map(|(n, _)| n.clone()).collect(),
    };
    let size = match opts.size {
        Some(s) => s,
        None => first_size(&files, opts.skip_bad)?,
    };
    if size[0] == 0 || size[1] == 0 || size[0] as u128 * size[1] as u128 > MAX_PIXELS as u128 {
        return Err(Error::invalid(format!(
            "{}: images of {}×{} pixels: every image is fitted to this size, which must be at least 1×1 and at most {MAX_PIXELS} pixels (2^26); give a smaller --image-size",
            dir.display(),
            size[0],
            size[1]
        )));
    }
    let [h, w] = size;
    // Decoded a chunk of files at a time (in parallel within it), each image's planes appended as
    // they came (1 gray, 3 colour): the pixels are held once, not once decoded and once copied.
    let bar = progress(files.len(), "decoding images");
    let mut native: Vec<u8> = Vec::with_capacity(files.len() * h * w);
    let mut colour = Vec::with_capacity(files.len());
    let mut y = Vec::with_capacity(files.len());
    let mut bad = Vec::new();
    for chunk in files.chunks(1024) {
        let decoded: Vec<Result<Decoded>> = chunk
            .par_iter()
            .map(|(path, _)| {
                let d = decode(path, size);
                bar.inc(1);
                d
            })
            .collect();
        for ((path, class), d) in chunk.iter().zip(decoded) {
            match d {
                Ok(d) => {
                    native.extend_from_slice(&d.pixels);
                    colour.push(d.colour);
                    y.push(*class);
                }
                Err(e) if opts.skip_bad => bad.push((path, e)),
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(Error::invalid(format!(
                        "{e} (every file in a class folder must be a PNG or JPEG image; --skip-bad skips the others)"
                    )));
                }
            }
        }
    }
    bar.finish_and_clear();
    if let Some((path, e)) = bad.first() {
        eprintln!(
            "warning: skipped {} file(s) in {} that are not images, the first {}: {e}",
            bad.len(),
            dir.display(),
            path.display()
        );
    }
    if y.is_empty() {
        return Err(Error::invalid(format!(
            "{}: none of the files is a readable image",
            dir.display()
        )));
    }
    let c = opts
        .channels
        .unwrap_or(if colour.contains(&true) { 3 } else { 1 });
    let x = if colour.iter().all(|&k| if k { 3 } else { 1 } == c) {
        native
    } else {
        let mut x = Vec::with_capacity(y.len() * c * h * w);
        let mut at = 0;
        for &colour in &colour {
            let len = if colour { 3 } else { 1 } * h * w;
            let pixels = native[at..at + len].to_vec();
            x.extend(planes(&Decoded { colour, pixels }, c));
            at += len;
        }
        x
    };
    let mut d = Dataset::new(Inputs::pixels(&[y.len(), c, h, w], x)?, Labels::Classes(y))?;
    d.class_names = Some(names);
    d.image_folder = true;
    Ok(d)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress(n: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {eta}")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// The size of the first file that is an image, `[H, W]`.
fn first_size(files: &[(PathBuf, u32)], skip_bad: bool) -> Result<[usize; 2]> {
    for (path, _) in files {
        match image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))
            .and_then(|r| {
                r.with_guessed_format()
                    .map_err(|e| Error::io(path, e))?
                    .into_dimensions()
                    .map_err(|e| {
                        let e = e.to_string();
                        Error::format(path, format!("not an image: {}", e.escape_debug()))
                    })
            }) {
            Ok((w, h)) => return Ok([h as usize, w as usize]),
            Err(_) if skip_bad => continue,
            Err(e) => {
                return Err(Error::invalid(format!(
                    "{e} (every file in a class folder must be a PNG or JPEG image; --skip-bad skips the others)"
                )));
            }
        }
    }
    Err(Error::invalid("none of the files is a readable image"))
}

/// One image at the folder's size: gray or RGB pixels `[C, H, W]` as decoded.
pub(crate) struct Decoded {
    colour: bool,
    /// `[1, H, W]` or `[3, H, W]`.
    pixels: Vec<u8>,
}

/// Decodes `path` and fits it in `[h, w]`: scaled keeping its aspect ratio (when its size differs)
/// and centred on black. Transparency is composited as `predict` does it
/// ([`crate::image_io::composite`]: over white when the picture is dark, over black when light).
fn decode(path: &Path, [h, w]: [usize; 2]) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes, path, [h, w])
}

/// [`decode`] on the bytes of a file (`path` names it in errors).
pub(crate) fn decode_bytes(bytes: &[u8], path: &Path, [h, w]: [usize; 2]) -> Result<Decoded> {
    // The decoders' messages may span lines (zune-jpeg's do).
    let bad = |e: &dyn std::fmt::Display| {
        Error::format(
            path,
            format!("not an image: {}", e.to_string().escape_debug()),
        )
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let mut img = reader.decode().map_err(|e| bad(&e))?;
    let colour = img.color().has_color();
    if img.color().has_alpha() {
        // Over white or black as `predict` does, not the colour stored under alpha 0.
        let (w, h) = (img.width(), img.height());
        let rgb = crate::image_io::composite(&img.to_rgba32f());
        let rgb = image::Rgb32FImage::from_raw(w, h, rgb.into_iter().flatten().collect())
            .expect("w·h pixels");
        img = image::DynamicImage::ImageRgb32F(rgb);
    }
    let c = if colour { 3 } else { 1 };
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let img = if (ih, iw) == (h, w) {
        img
    } else {
        let s = (h as f64 / ih as f64).min(w as f64 / iw as f64);
        let nh = ((ih as f64 * s).round() as u32).clamp(1, h as u32);
        let nw = ((iw as f64 * s).round() as u32).clamp(1, w as u32);
        img.resize_exact(nw, nh, image::imageops::FilterType::Triangle)
    };
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let raw: Vec<u8> = if colour {
        img.into_rgb8().into_raw()
    } else {
        img.into_luma8().into_raw()
    };
    // Centred on black, planes first.
    let (top, left) = ((h - ih) / 2, (w - iw) / 2);
    let mut pixels = vec![0u8; c * h * w];
    for (i, px) in raw.chunks_exact(c).enumerate() {
        let (r, col) = (i / iw + top, i % iw + left);
        for (k, &v) in px.iter().enumerate() {
            pixels[k * h * w + r * w + col] = v;
        }
    }
    Ok(Decoded { colour, pixels })
}

/// An image file's bytes as the model input `[c, h, w]` of a folder read with that size and those
/// channels: what [`read`] holds for it (`predict` on a model trained on a folder).
///
/// # Errors
/// Not an image.
pub(crate) fn load_pixels(bytes: &[u8], path: &Path, [c, h, w]: [usize; 3]) -> Result<Vec<u8>> {
    Ok(planes(&decode_bytes(bytes, path, [h, w])?, c))
}

/// `d`'s pixels with `c` planes: gray repeated three times, or colour to BT.709 luma.
fn planes(d: &Decoded, c: usize) -> Vec<u8> {
    match (d.colour, c) {
        (false, 1) | (true, 3) => d.pixels.clone(),
        (false, _) => d.pixels.repeat(3),
        (true, _) => {
            let hw = d.pixels.len() / 3;
            (0..hw)
                .map(|i| {
                    let p = [0, 1, 2].map(|k| unit(d.pixels[k * hw + i]));
                    (luma(p) * 255.0).round() as u8
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, colour: bool) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let img: image::DynamicImage = if colour {
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 200]))
                .into()
        } else {
            image::GrayImage::from_fn(w, h, |x, _| image::Luma([x as u8 * 20])).into()
        };
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn same_size_gray_keeps_its_pixels() {
        let d = decode_bytes(&png(4, 3, false), Path::new("a.png"), [3, 4]).unwrap();
        assert!(!d.colour);
        assert_eq!(&d.pixels[..4], &[0, 20, 40, 60]);
    }

    #[test]
    fn wide_image_is_scaled_and_padded_not_stretched() {
        let d = decode_bytes(&png(8, 4, false), Path::new("a.png"), [8, 8]).unwrap();
        // 8×4 fits 8×8 at scale 1: rows 0,1 and 6,7 are padding.
        assert!(d.pixels[..16].iter().all(|&v| v == 0));
        assert!(d.pixels[48..].iter().all(|&v| v == 0));
        assert!(d.pixels[16..48].iter().any(|&v| v > 0));
    }

    #[test]
    fn colour_planes_and_gray_conversion() {
        let d = decode_bytes(&png(2, 2, true), Path::new("a.png"), [2, 2]).unwrap();
        assert!(d.colour);
        assert_eq!(&d.pixels[8..], &[200; 4], "the blue plane");
        let g = planes(&d, 1);
        assert_eq!(g.len(), 4);
        let gray = decode_bytes(&png(2, 2, false), Path::new("a.png"), [2, 2]).unwrap();
        assert_eq!(planes(&gray, 3), gray.pixels.repeat(3));
    }

    #[test]
    fn transparency_is_composited_as_predict_does() {
        // Dark ink on a transparent background that stores red under alpha 0.
        let img = image::RgbaImage::from_fn(4, 4, |x, _| {
            if x == 0 {
                image::Rgba([0, 0, 0, 255])
            } else {
                image::Rgba([255, 0, 0, 0])
            }
        });
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::from(img)
            .write_to(&mut bytes, image::ImageFormat::Png)
            .unwrap();
        let bytes = bytes.into_inner();
        let d = decode_bytes(&bytes, Path::new("a.png"), [4, 4]).unwrap();
        // Over white: the background is (255, 255, 255), not red.
        assert_eq!(&d.pixels[1..4], &[255; 3], "red plane, row 0");
        assert_eq!(&d.pixels[16 + 1..16 + 4], &[255; 3], "green plane, row 0");
        assert_eq!(d.pixels[0], 0, "the ink");
        let style = crate::data::input::ImageStyle {
            background: None,
            fit: crate::data::input::Fit::Whole,
        };
        let p = crate::image_io::decode_for_model(
            &bytes,
            Path::new("a.png"),
            [3, 4, 4],
            style,
            None,
            1 << 20,
        )
        .unwrap();
        let folder: Vec<f32> = d.pixels.iter().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(p, folder, "training and predict see the same pixels");
    }

    #[test]
    fn a_size_past_the_pixel_limit_is_refused_before_allocation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.png"), png(2, 2, false)).unwrap();
        for size in [[100_000, 100_000], [1 << 40, 1 << 40], [0, 5]] {
            let opts = FolderOptions {
                size: Some(size),
                ..FolderOptions::default()
            };
            let e = read(dir.path(), &opts).err().unwrap().to_string();
            assert!(
                e.contains(&format!("images of {}×{} pixels", size[0], size[1]))
                    && e.contains("at most 67108864 pixels (2^26)"),
                "{e}"
            );
        }
    }

    #[test]
    fn not_an_image_is_named() {
        let e = decode_bytes(b"hello", Path::new("cats/notes.txt"), [2, 2])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cats/notes.txt") && e.contains("not an image"),
            "{e}"
        );
    }
}
