//! What training images look like, measured from the tensors themselves (no image decoding): the
//! image shape an input shape stands for, the background and the size of the ink, so that `predict`
//! and `serve` can make a user's picture look the same.

use crate::data::input::{Background, Fit, ImageStyle, InputInfo};
use crate::data::inputs::Samples;
use crate::tensor::Tensor;

/// The `[C, H, W]` image a per-sample input shape stands for: `[C, H, W]` with 1 or 3 channels, or
/// the flat `[H·W]` of a square grayscale image (a model that starts with a Linear layer).
pub fn image_shape(sample: &[usize]) -> Option<[usize; 3]> {
    match *sample {
        [c, h, w] if (c == 1 || c == 3) && h >= 2 && w >= 2 => Some([c, h, w]),
        [n] => {
            let s = (n as f64).sqrt().round() as usize;
            (s >= 8 && s * s == n).then_some([1, s, s])
        }
        _ => None,
    }
}

/// BT.709 luma, as the `image` crate computes it: `0.2126 R + 0.7152 G + 0.0722 B`.
pub(crate) fn luma(p: [f32; 3]) -> f32 {
    0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2]
}

/// Where the ink of a grayscale picture is.
pub(crate) struct Ink {
    /// The mean of the outer ring of pixels.
    pub(crate) background: f32,
    /// `[top, left, bottom, right]` (ends exclusive) of the pixels that differ from the background
    /// by more than a tenth of the largest difference; `None` for a blank picture (no difference
    /// above 0.05).
    pub(crate) bbox: Option<[usize; 4]>,
}

pub(crate) fn ink(p: &[f32], h: usize, w: usize) -> Ink {
    let ring: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .filter(|&(y, x)| y == 0 || x == 0 || y + 1 == h || x + 1 == w)
        .map(|(y, x)| p[y * w + x])
        .collect();
    let background = ring.iter().sum::<f32>() / ring.len().max(1) as f32;
    let peak = p
        .iter()
        .map(|v| (v - background).abs())
        .fold(0f32, f32::max);
    let mut bbox: Option<[usize; 4]> = None;
    if peak >= 0.05 {
        for (i, v) in p.iter().enumerate() {
            if (v - background).abs() > 0.1 * peak {
                let (y, x) = (i / w, i % w);
                let b = bbox.get_or_insert([y, x, y + 1, x + 1]);
                *b = [b[0].min(y), b[1].min(x), b[2].max(y + 1), b[3].max(x + 1)];
            }
        }
    }
    Ink { background, bbox }
}

/// What the training images look like, from the first 2000 of `x: [N, C, H, W]` (or `[N, H·W]`):
/// a background shared by 90% of them (dark or light outer ring), and the median size of their
/// ink's bounding box relative to the frame (a box that fills the frame is [`Fit::Object`], a
/// smaller one [`Fit::Digit`] with that extent). Photos without a common background get
/// [`Fit::Whole`]; inputs that are not images, `None`.
pub fn measure_style(x: &impl Samples) -> Option<ImageStyle> {
    let [c, h, w] = image_shape(x.shape().get(1..)?)?;
    let n = x.shape()[0].min(2000);
    let mut first = Tensor::default();
    x.gather(&(0..n).collect::<Vec<_>>(), &mut first);
    let x = first;
    let mut dark = 0;
    let mut extents = Vec::new();
    for sample in x.data().chunks_exact(c * h * w).take(n) {
        let l = gray(sample, c, h * w);
        let ink = ink(&l, h, w);
        dark += (ink.background < 0.5) as usize;
        if let Some([t, l, b, r]) = ink.bbox {
            extents.push(((b - t) as f32 / h as f32).max((r - l) as f32 / w as f32));
        }
    }
    let whole = ImageStyle {
        background: None,
        fit: Fit::Whole,
    };
    let background = match dark * 10 {
        _ if n == 0 || extents.is_empty() => return Some(whole),
        d if d >= 9 * n => Background::Dark,
        d if d <= n => Background::Light,
        _ => return Some(whole),
    };
    extents.sort_by(f32::total_cmp);
    let extent = extents[extents.len() / 2];
    Some(ImageStyle {
        background: Some(background),
        fit: if extent >= 0.93 {
            Fit::Object
        } else {
            Fit::Digit { extent }
        },
    })
}

/// The luma plane of a `[C, H·W]` sample (the plane itself when `C = 1`).
pub(crate) fn gray(sample: &[f32], c: usize, hw: usize) -> Vec<f32> {
    if c == 1 {
        return sample.to_vec();
    }
    (0..hw)
        .map(|i| luma([sample[i], sample[hw + i], sample[2 * hw + i]]))
        .collect()
}

/// The style of the images a checkpoint's model was trained on: the one its input record holds,
/// else [`default_style`] for its input `shape`.
pub fn recorded_style(info: Option<&InputInfo>, shape: [usize; 3]) -> ImageStyle {
    info.and_then(|i| i.image)
        .unwrap_or_else(|| default_style(shape))
}

/// The style assumed for a checkpoint that records none: a 28×28 grayscale model is taken to be
/// an MNIST-style one (light digits on black, 20×20 box); anything else is fitted whole.
pub fn default_style(shape: [usize; 3]) -> ImageStyle {
    match shape {
        [1, 28, 28] => ImageStyle {
            background: Some(Background::Dark),
            fit: Fit::Digit {
                extent: 20.0 / 28.0,
            },
        },
        _ => ImageStyle {
            background: None,
            fit: Fit::Whole,
        },
    }
}
