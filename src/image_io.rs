//! Images in and out: reading a user's PNG/JPEG/PGM as model input, and drawing a sample in a terminal.

use crate::error::{Error, Result};
use std::path::Path;

/// Reads an image file of any size and turns it into what a 28×28 grayscale model expects:
/// luma, resized to `h × w` (triangle filter), scaled to [0, 1]; with `invert`, `1 − v`, for
/// dark-on-light drawings (the datasets are light-on-dark).
pub fn load_gray(path: &Path, h: usize, w: usize, invert: bool) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::format(path, format!("not a readable PNG, JPEG or PGM image: {e}")))?;
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
    fn terminal_shading() {
        let s = terminal_image(&[0.0, 1.0, 0.5, 0.26], 2, 2);
        assert_eq!(s, "  ██\n▒▒░░");
    }
}
