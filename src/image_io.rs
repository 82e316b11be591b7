//! Images in and out: reading a user's PNG/JPEG/PGM as model input, and drawing a sample in a terminal.

use crate::error::{Error, Result};
use std::path::Path;

/// Reads an image file of any size and turns it into what a 28×28 grayscale model expects: see
/// [`decode_gray`] (at most [`MAX_PIXELS`] pixels).
pub fn load_gray(path: &Path, h: usize, w: usize, invert: bool) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_gray(&bytes, path, h, w, invert, MAX_PIXELS)
}

/// The most pixels an image file may decode to (an image bomb is refused before it is decoded).
pub const MAX_PIXELS: u64 = 1 << 26;

/// An encoded image (PNG, JPEG, PGM; `source` names it in errors) as model input: luma, resized to
/// `h × w` (triangle filter), scaled to [0, 1]; with `invert`, `1 − v`, for dark-on-light drawings
/// (the datasets are light-on-dark).
///
/// # Errors
/// [`Error::Format`] if the bytes are not a readable image; [`Error::Invalid`] if its header
/// announces more than `max_pixels` pixels (checked before any pixel is decoded).
pub fn decode_gray(
    bytes: &[u8],
    source: &Path,
    h: usize,
    w: usize,
    invert: bool,
    max_pixels: u64,
) -> Result<Vec<f32>> {
    let not_image = |e: image::ImageError| {
        Error::format(
            source,
            format!("not a readable PNG, JPEG or PGM image: {e}"),
        )
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::format(source, e.to_string()))
    };
    let (iw, ih) = reader()?.into_dimensions().map_err(not_image)?;
    if iw as u64 * ih as u64 > max_pixels {
        return Err(Error::invalid(format!(
            "{}: the image is {iw}×{ih} pixels, more than the limit of {max_pixels}",
            source.display()
        )));
    }
    let img = reader()?.decode().map_err(not_image)?;
    let gray = image::imageops::resize(
        &img.to_luma8(),
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    Ok(gray
        .pixels()
        .map(|p| p.0[0] as f32 / 255.0)
        .map(|v| if invert { 1.0 - v } else { v })
        .collect())
}

/// A `h × w` image with values in [0, 1] as text: one row of shading characters per pixel row,
/// two characters per pixel so the picture keeps its aspect ratio.
pub fn terminal_image(pixels: &[f32], h: usize, w: usize) -> String {
    const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
    let mut s = String::with_capacity(h * (2 * w * 3 + 1));
    for row in pixels.chunks(w).take(h) {
        for &v in row {
            let c = SHADES[((v.clamp(0.0, 1.0) * 4.0).round()) as usize];
            s.push(c);
            s.push(c);
        }
        s.push('\n');
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resizes_and_inverts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        // 56×56, white with a black left half.
        let img =
            image::GrayImage::from_fn(56, 56, |x, _| image::Luma([if x < 28 { 0 } else { 255 }]));
        img.save(&path).unwrap();
        let v = load_gray(&path, 28, 28, false).unwrap();
        assert_eq!(v.len(), 784);
        assert!(v[0] < 0.01 && v[27] > 0.99);
        let inv = load_gray(&path, 28, 28, true).unwrap();
        assert!(inv[0] > 0.99 && inv[27] < 0.01);
    }

    #[test]
    fn pgm_and_jpeg_load() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::GrayImage::from_pixel(10, 20, image::Luma([128]));
        for name in ["a.pgm", "a.jpg"] {
            let path = dir.path().join(name);
            img.save(&path).unwrap();
            let v = load_gray(&path, 28, 28, false).unwrap();
            assert!(v.iter().all(|x| (x - 128.0 / 255.0).abs() < 0.02), "{name}");
        }
    }

    #[test]
    fn not_an_image_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "hello").unwrap();
        let e = load_gray(&path, 28, 28, false).unwrap_err().to_string();
        assert!(
            e.contains("notes.png") && e.contains("not a readable"),
            "{e}"
        );
        let e = load_gray(&dir.path().join("missing.png"), 28, 28, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png"), "{e}");
    }

    #[test]
    fn an_image_bomb_is_refused_from_its_header() {
        let mut png = Vec::new();
        image::GrayImage::new(300, 200)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let src = Path::new("body");
        let e = decode_gray(&png, src, 28, 28, false, 300 * 200 - 1).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains("300×200"), "{e}");
        assert_eq!(
            decode_gray(&png, src, 28, 28, false, 300 * 200)
                .unwrap()
                .len(),
            784
        );
    }

    #[test]
    fn terminal_shading() {
        let s = terminal_image(&[0.0, 1.0, 0.5, 0.26], 2, 2);
        assert_eq!(s, "  ██\n▒▒░░");
    }
}
