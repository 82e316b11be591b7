//! Images in and out: a user's PNG/JPEG/PGM made into a model input the way the training images
//! were made (see [`crate::data::image_style`]), and a sample drawn in a terminal.

pub use crate::data::image_style::{default_style, image_shape, measure_style, recorded_style};
use crate::data::image_style::{ink, luma};
use crate::data::input::{Background, Fit, ImageStyle};
use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::Path;

/// Reads an image file and makes it the model input `[C, H, W]` (`shape`, values in [0, 1]) the way
/// the training images were made:
/// 1. transparency is composited over white when the ink is dark and over black when it is light,
///    so a stroke on a transparent canvas stays a stroke;
/// 2. gray (BT.709 luma) or RGB, as the model takes;
/// 3. inverted when its background (the mean of its outer ring) is light and the training images'
///    was dark, or the other way round; `invert` overrides the guess;
/// 4. placed by `style.fit`: a drawing's ink is stretched to the full range, cropped to its bounding
///    box, scaled keeping its aspect ratio and centred (by its centre of mass for
///    [`Fit::Digit`]); a photo is scaled whole and padded.
///
/// A model trained on a folder of images ([`Fit::Folder`]) gets the image exactly as the folder
/// reader made its training images (its function, on `u8` pixels); only `invert` then inverts.
///
/// # Errors
/// A file that cannot be read or decoded.
pub fn load_for_model(
    path: &Path,
    shape: [usize; 3],
    style: ImageStyle,
    invert: Option<bool>,
) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_for_model(&bytes, path, shape, style, invert, MAX_PIXELS)
}

/// The most pixels an image file may decode to (an image bomb is refused before it is decoded).
pub const MAX_PIXELS: u64 = 1 << 26;

/// [`load_for_model`] on the bytes of an encoded image (`source` names it in errors).
///
/// # Errors
/// [`Error::Format`] if the bytes are not a readable image; [`Error::Invalid`] if its header
/// announces more than `max_pixels` pixels (checked before any pixel is decoded).
pub fn decode_for_model(
    bytes: &[u8],
    source: &Path,
    shape: [usize; 3],
    style: ImageStyle,
    invert: Option<bool>,
    max_pixels: u64,
) -> Result<Vec<f32>> {
    let not_image = |e: image::ImageError| {
        Error::format(
            source,
            format!(
                "not a readable PNG, JPEG or PGM image: {}",
                e.to_string().escape_debug()
            ),
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
    if style.fit == Fit::Folder {
        let pixels = crate::data::image_folder::load_pixels(bytes, source, shape)?;
        let flip = invert.unwrap_or(false);
        return Ok(pixels
            .into_iter()
            .map(|b| crate::data::inputs::unit(if flip { 255 - b } else { b }))
            .collect());
    }
    let img = reader()?.decode().map_err(not_image)?.to_rgba32f();
    Ok(prepare(&img, shape, style, invert))
}

/// Step 1 of [`load_for_model`]: RGB pixels with transparency composited (also how a folder of
/// images is read for training, so that both see the same pixels).
pub(crate) fn composite(img: &image::Rgba32FImage) -> Vec<[f32; 3]> {
    let (mut ink, mut weight) = (0f32, 0f32);
    for p in img.pixels() {
        ink += p[3] * luma([p[0], p[1], p[2]]);
        weight += p[3];
    }
    let under = if weight > 0.0 && ink / weight > 0.5 {
        0.0
    } else {
        1.0
    };
    img.pixels()
        .map(|p| [0, 1, 2].map(|k| p[3] * p[k] + (1.0 - p[3]) * under))
        .collect()
}

/// Steps 2–4 of [`load_for_model`].
fn prepare(
    img: &image::Rgba32FImage,
    [c, h, w]: [usize; 3],
    style: ImageStyle,
    invert: Option<bool>,
) -> Vec<f32> {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let rgb = composite(img);
    let mut lum: Vec<f32> = rgb.iter().map(|&p| luma(p)).collect();
    let mut planes: Vec<Vec<f32>> = if c == 1 {
        vec![lum.clone()]
    } else {
        (0..3).map(|k| rgb.iter().map(|p| p[k]).collect()).collect()
    };
    let light = ink(&lum, ih, iw).background > 0.5;
    let flip = invert.unwrap_or(match style.background {
        Some(Background::Dark) => light,
        Some(Background::Light) => !light,
        None => false,
    });
    if flip {
        for v in planes.iter_mut().flatten().chain(lum.iter_mut()) {
            *v = 1.0 - *v;
        }
    }
    let found = ink(&lum, ih, iw);
    let (extent, by_mass) = match style.fit {
        Fit::Digit { extent } => (extent, true),
        Fit::Object | Fit::Whole | Fit::Folder => (1.0, false),
    };
    let (Some(background), Some([t, l, b, r]), false) =
        (style.background, found.bbox, style.fit == Fit::Whole)
    else {
        // A photo, or a blank drawing: the whole picture, scaled to fit and padded with black.
        let s = (h as f32 / ih as f32).min(w as f32 / iw as f32);
        return place(
            &planes,
            [iw, ih],
            [0, 0, ih, iw],
            s,
            [c, h, w],
            &vec![0.0; c],
            false,
        );
    };
    let fill = match background {
        Background::Dark => 0.0,
        Background::Light => 1.0,
    };
    let fills: Vec<f32> = if c == 1 {
        // A drawing's ink stretched to the full range: background 0, strongest ink 1 (or 1 and 0
        // for light training images). Ink of the other polarity (a forced --no-invert) fades.
        let sign = 1.0 - 2.0 * fill;
        let strongest = lum
            .iter()
            .map(|v| sign * (v - found.background))
            .fold(0.05f32, f32::max);
        planes[0] = lum
            .iter()
            .map(|v| {
                let t = (sign * (v - found.background) / strongest).clamp(0.0, 1.0);
                (fill - t).abs()
            })
            .collect();
        vec![fill]
    } else {
        planes.iter().map(|p| ink(p, ih, iw).background).collect()
    };
    let (bh, bw) = ((b - t) as f32, (r - l) as f32);
    let s = (extent * h as f32 / bh).min(extent * w as f32 / bw);
    place(
        &planes,
        [iw, ih],
        [t, l, b, r],
        s,
        [c, h, w],
        &fills,
        by_mass,
    )
}

/// The `[top, left, bottom, right]` box of `planes` (`[width, height]` each) scaled by `s` and
/// pasted into a `[c, h, w]` frame filled with `fills` (one per plane), centred by the centre of
/// mass of what differs from the fill when `by_mass`, else by its middle.
fn place(
    planes: &[Vec<f32>],
    [iw, _ih]: [usize; 2],
    [t, l, b, r]: [usize; 4],
    s: f32,
    [c, h, w]: [usize; 3],
    fills: &[f32],
    by_mass: bool,
) -> Vec<f32> {
    let (bh, bw) = (b - t, r - l);
    let nh = ((bh as f32 * s).round() as usize).clamp(1, h);
    let nw = ((bw as f32 * s).round() as usize).clamp(1, w);
    let scaled: Vec<Vec<f32>> = planes
        .iter()
        .map(|p| {
            let crop: Vec<f32> = (t..b)
                .flat_map(|y| p[y * iw + l..y * iw + r].to_vec())
                .collect();
            let img = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(
                bw as u32, bh as u32, crop,
            )
            .expect("the crop has bw·bh values");
            image::imageops::resize(&img, nw as u32, nh as u32, FilterType::Triangle).into_raw()
        })
        .collect();
    let (mut oy, mut ox) = (
        ((h - nh) as f32 / 2.0).round(),
        ((w - nw) as f32 / 2.0).round(),
    );
    if by_mass {
        let (mut m, mut my, mut mx) = (0f32, 0f32, 0f32);
        for i in 0..nh * nw {
            let d: f32 = scaled
                .iter()
                .zip(fills)
                .map(|(p, f)| (p[i] - f).abs())
                .sum();
            m += d;
            my += d * (i / nw) as f32;
            mx += d * (i % nw) as f32;
        }
        if m > 0.0 {
            oy = ((h as f32 - 1.0) / 2.0 - my / m).round();
            ox = ((w as f32 - 1.0) / 2.0 - mx / m).round();
        }
    }
    let mut out = Vec::with_capacity(c * h * w);
    for (p, &f) in scaled.iter().zip(fills) {
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y as f32 - oy, x as f32 - ox);
                let inside = sy >= 0.0 && sx >= 0.0 && (sy as usize) < nh && (sx as usize) < nw;
                out.push(if inside {
                    p[sy as usize * nw + sx as usize].clamp(0.0, 1.0)
                } else {
                    f
                });
            }
        }
    }
    out
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
    use crate::tensor::Tensor;

    /// How much of pixel `(x, y)` of a `w × h` picture a "7" covers whose strokes are `thick` of
    /// the picture's height, inside the box `[x0, y0, x1, y1]` (fractions of the picture).
    fn seven(x: usize, y: usize, w: usize, h: usize, bx: [f32; 4], thick: f32) -> f32 {
        let (px, py) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
        let at = |fx: f32, fy: f32| (bx[0] + fx * (bx[2] - bx[0]), bx[1] + fy * (bx[3] - bx[1]));
        let segments = [(at(0.0, 0.0), at(1.0, 0.0)), (at(1.0, 0.0), at(0.35, 1.0))];
        let near = segments.iter().any(|&((ax, ay), (bx, by))| {
            // Distance from the pixel to the segment, in units of the picture's height.
            let (dx, dy) = ((bx - ax) * w as f32, (by - ay) * h as f32);
            let (qx, qy) = ((px - ax) * w as f32, (py - ay) * h as f32);
            let t = ((qx * dx + qy * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
            ((qx - t * dx).powi(2) + (qy - t * dy).powi(2)).sqrt() / h as f32 <= thick / 2.0
        });
        near as u8 as f32
    }

    fn save(img: impl Into<image::DynamicImage>, dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        img.into().save(&path).unwrap();
        path
    }

    const MNIST: ImageStyle = ImageStyle {
        background: Some(Background::Dark),
        fit: Fit::Digit {
            extent: 20.0 / 28.0,
        },
    };

    fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }

    /// An MNIST digit: light on black, 20×20 box, 28×28.
    fn mnist_seven(dir: &Path) -> Vec<f32> {
        let img = image::GrayImage::from_fn(28, 28, |x, y| {
            let box20 = [4.0 / 28.0, 4.0 / 28.0, 24.0 / 28.0, 24.0 / 28.0];
            image::Luma([(255.0 * seven(x as usize, y as usize, 28, 28, box20, 0.1)) as u8])
        });
        let path = save(img, dir, "mnist7.png");
        load_for_model(&path, [1, 28, 28], MNIST, None).unwrap()
    }

    #[test]
    fn a_transparent_canvas_with_a_dark_stroke_is_the_digit() {
        let dir = tempfile::tempdir().unwrap();
        let reference = mnist_seven(dir.path());
        // What an HTML canvas exports: transparent black everywhere, a dark opaque stroke, drawn
        // off-centre and small in a big 300×240 picture.
        let canvas = image::RgbaImage::from_fn(300, 240, |x, y| {
            let c = seven(x as usize, y as usize, 300, 240, [0.1, 0.1, 0.4, 0.6], 0.05);
            image::Rgba([20, 20, 30, (255.0 * c) as u8])
        });
        let path = save(canvas, dir.path(), "canvas.png");
        let got = load_for_model(&path, [1, 28, 28], MNIST, None).unwrap();
        // A plain gray conversion sees a black picture: the bug this guards against.
        let naive = image::open(&path).unwrap().to_luma8();
        assert!(naive.pixels().all(|p| p.0[0] < 40));
        assert!(got.iter().sum::<f32>() > 30.0, "ink is there");
        let d = mean_abs_diff(&got, &reference);
        assert!(d < 0.06, "canvas vs MNIST-style digit: mean |diff| {d}");
        // Centred by mass, in the middle of the frame.
        let (m, my) = got.iter().enumerate().fold((0.0, 0.0), |(m, my), (i, v)| {
            (m + v, my + v * (i / 28) as f32)
        });
        assert!(
            (my / m - 13.5).abs() <= 0.75,
            "centre of mass row {}",
            my / m
        );
        // The ink's box is 20 pixels high (the 7 is taller than wide).
        let rows: Vec<usize> = (0..28)
            .filter(|y| got[y * 28..(y + 1) * 28].iter().any(|&v| v > 0.2))
            .collect();
        assert!((19..=21).contains(&(rows.len())), "{} rows", rows.len());
    }

    #[test]
    fn dark_on_light_and_light_on_dark_give_the_same_input() {
        let dir = tempfile::tempdir().unwrap();
        let draw = |ink: u8, paper: u8| {
            image::RgbImage::from_fn(90, 120, |x, y| {
                let c = seven(x as usize, y as usize, 90, 120, [0.2, 0.2, 0.8, 0.8], 0.08);
                image::Rgb([if c > 0.0 { ink } else { paper }; 3])
            })
        };
        let paper = save(draw(10, 235), dir.path(), "paper.png");
        let screen = save(draw(250, 0), dir.path(), "screen.png");
        let a = load_for_model(&paper, [1, 28, 28], MNIST, None).unwrap();
        let b = load_for_model(&screen, [1, 28, 28], MNIST, None).unwrap();
        assert!(mean_abs_diff(&a, &b) < 1e-3, "{}", mean_abs_diff(&a, &b));
        assert_eq!(a[0], 0.0, "black background as in training");
        // --invert overrides the guess; --no-invert keeps the paper's polarity (the ink fades).
        let forced = load_for_model(&screen, [1, 28, 28], MNIST, Some(true)).unwrap();
        assert!(mean_abs_diff(&forced, &b) > 0.05);
        let kept = load_for_model(&paper, [1, 28, 28], MNIST, Some(false)).unwrap();
        assert!(kept.iter().sum::<f32>() < 0.2 * a.iter().sum::<f32>());
        // For a model trained on dark ink on white, the screen drawing is inverted instead.
        let light = ImageStyle {
            background: Some(Background::Light),
            ..MNIST
        };
        let c = load_for_model(&screen, [1, 28, 28], light, None).unwrap();
        assert!(c.iter().zip(&a).all(|(x, y)| (x + y - 1.0).abs() < 1e-3));
    }

    #[test]
    fn a_non_square_image_is_padded_not_stretched() {
        let dir = tempfile::tempdir().unwrap();
        // A photo 60 wide and 30 high, all white: fitted whole into 28×28 it fills 14 rows.
        let wide = save(
            image::RgbImage::from_pixel(60, 30, image::Rgb([255, 255, 255])),
            dir.path(),
            "wide.png",
        );
        let whole = ImageStyle {
            background: None,
            fit: Fit::Whole,
        };
        let v = load_for_model(&wide, [1, 28, 28], whole, None).unwrap();
        let row = |y: usize| v[y * 28..(y + 1) * 28].iter().sum::<f32>() / 28.0;
        assert!(row(6) == 0.0 && row(21) == 0.0, "padding above and below");
        assert!(row(7) > 0.99 && row(20) > 0.99, "the picture between");
        // A drawn bar 4:1 keeps its aspect: 20 wide, 5 high.
        let bar = save(
            image::GrayImage::from_fn(100, 50, |x, y| {
                image::Luma([if (10..90).contains(&x) && (20..40).contains(&y) {
                    255
                } else {
                    0
                }])
            }),
            dir.path(),
            "bar.png",
        );
        let v = load_for_model(&bar, [1, 28, 28], MNIST, None).unwrap();
        let inked = |f: &dyn Fn(usize) -> bool| (0..784).filter(|&i| f(i) && v[i] > 0.5).count();
        let rows = (0..28).filter(|&y| inked(&|i| i / 28 == y) > 0).count();
        let cols = (0..28).filter(|&x| inked(&|i| i % 28 == x) > 0).count();
        assert_eq!((rows, cols), (5, 20));
    }

    #[test]
    fn a_colour_model_of_another_size_gets_its_own_shape() {
        let dir = tempfile::tempdir().unwrap();
        // Red left half, blue right half, 40×20, into a 3×14×14 model: 7 rows of picture.
        let photo = save(
            image::RgbImage::from_fn(40, 20, |x, _| {
                image::Rgb(if x < 20 { [255, 0, 0] } else { [0, 0, 255] })
            }),
            dir.path(),
            "photo.jpg",
        );
        let style = ImageStyle {
            background: None,
            fit: Fit::Whole,
        };
        let v = load_for_model(&photo, [3, 14, 14], style, None).unwrap();
        assert_eq!(v.len(), 3 * 14 * 14);
        let at = |c: usize, y: usize, x: usize| v[c * 196 + y * 14 + x];
        assert!(at(0, 7, 1) > 0.9 && at(2, 7, 1) < 0.1, "red on the left");
        assert!(
            at(2, 7, 12) > 0.9 && at(0, 7, 12) < 0.1,
            "blue on the right"
        );
        assert_eq!((at(0, 1, 1), at(2, 12, 12)), (0.0, 0.0), "padded");
    }

    #[test]
    fn the_training_images_style_is_measured() {
        let style_of = |shape: &[usize], f: &dyn Fn(usize, usize, usize) -> f32| {
            let [c, h, w] = image_shape(&shape[1..]).unwrap();
            let n = shape[0];
            let data = (0..n * c * h * w)
                .map(|i| f(i / (c * h * w), (i / w) % h, i % w))
                .collect();
            measure_style(&Tensor::new(shape, data).unwrap())
        };
        let box20 = [4.0 / 28.0, 4.0 / 28.0, 24.0 / 28.0, 24.0 / 28.0];
        let digits = style_of(&[10, 1, 28, 28], &|_, y, x| seven(x, y, 28, 28, box20, 0.1));
        let Some(ImageStyle {
            background: Some(Background::Dark),
            fit: Fit::Digit { extent },
        }) = digits
        else {
            panic!("{digits:?}")
        };
        // The strokes' width adds to the box they were drawn in: measure what was drawn.
        let drawn_rows = (0..28)
            .filter(|&y| (0..28).any(|x| seven(x, y, 28, 28, box20, 0.1) > 0.0))
            .count();
        let drawn_cols = (0..28)
            .filter(|&x| (0..28).any(|y| seven(x, y, 28, 28, box20, 0.1) > 0.0))
            .count();
        assert_eq!(extent, drawn_rows.max(drawn_cols) as f32 / 28.0);
        assert!(extent < 0.85, "{extent}");
        // Flat 784-value rows are the same images.
        let flat = style_of(&[10, 784], &|_, y, x| seven(x, y, 28, 28, box20, 0.1));
        assert_eq!(flat, digits);
        let full = [0.0, 0.0, 1.0, 1.0];
        let objects = style_of(&[4, 1, 14, 14], &|_, y, x| {
            1.0 - seven(x, y, 14, 14, full, 0.2)
        });
        assert_eq!(
            objects,
            Some(ImageStyle {
                background: Some(Background::Light),
                fit: Fit::Object
            })
        );
        let photos = style_of(&[10, 3, 8, 8], &|n, _, _| (n % 2) as f32);
        assert_eq!(photos.unwrap().background, None);
        assert_eq!(measure_style(&Tensor::zeros(&[5, 13])), None, "a table");
    }

    #[test]
    fn pgm_and_jpeg_load() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::GrayImage::from_pixel(10, 20, image::Luma([128]));
        let whole = ImageStyle {
            background: None,
            fit: Fit::Whole,
        };
        for name in ["a.pgm", "a.jpg"] {
            let path = save(img.clone(), dir.path(), name);
            let v = load_for_model(&path, [1, 28, 28], whole, None).unwrap();
            assert!((v[28 * 14 + 14] - 128.0 / 255.0).abs() < 0.02, "{name}");
        }
    }

    #[test]
    fn not_an_image_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "hello").unwrap();
        let e = load_for_model(&path, [1, 28, 28], MNIST, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("notes.png") && e.contains("not a readable"),
            "{e}"
        );
        let e = load_for_model(&dir.path().join("missing.png"), [1, 28, 28], MNIST, None)
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
