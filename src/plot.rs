//! Pictures: loss and accuracy curves, and a confusion matrix, as PNG or SVG (by extension).
//!
//! Text is drawn with the DejaVu Sans font shipped in `assets/`, so plots look the same on a
//! machine without any system fonts.

use crate::data::atomic::atomic_write;
use crate::error::{Error, Result};
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera licence, see `assets/README.md`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the shipped font as "sans-serif", once per process.
fn register_font(path: &Path) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(plot_error(path, "the built-in font did not load"))
    }
}

/// Per-epoch series to draw; a series may be empty (no test set, or a regression without accuracy).
pub struct Curves<'a> {
    /// Training loss per epoch.
    pub train_loss: &'a [f64],
    /// Test loss per epoch.
    pub test_loss: &'a [f64],
    /// Training accuracy per epoch.
    pub train_accuracy: &'a [f64],
    /// Test accuracy per epoch.
    pub test_accuracy: &'a [f64],
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("could not draw the plot: {e}"))
}

/// Which backend a path asks for.
enum Kind {
    Png,
    Svg,
}

fn kind(path: &Path) -> Result<Kind> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Kind::Png),
        Some("svg") => Ok(Kind::Svg),
        _ => Err(Error::invalid(format!(
            "a plot file must end in .png or .svg: {}",
            path.display()
        ))),
    }
}

/// Something that can draw itself on any plotters backend.
trait Picture {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Draws `picture` on a `width × height` canvas, then writes it atomically to `path`.
fn render(path: &Path, width: u32, height: u32, picture: &impl Picture) -> Result<()> {
    register_font(path)?;
    let bytes = match kind(path)? {
        Kind::Png => {
            let mut rgb = vec![255u8; (width * height * 3) as usize];
            {
                let area =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                picture.draw(&area).map_err(|e| plot_error(path, e))?;
                area.present().map_err(|e| plot_error(path, e))?;
            }
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
                .map_err(|e| plot_error(path, e))?;
            png
        }
        Kind::Svg => {
            let mut svg = String::new();
            {
                let area = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                picture.draw(&area).map_err(|e| plot_error(path, e))?;
                area.present().map_err(|e| plot_error(path, e))?;
            }
            svg.into_bytes()
        }
    };
    atomic_write(path, &bytes)
}

/// Range of the finite values of some series, padded so a flat line is still visible.
fn y_range<'a>(series: impl IntoIterator<Item = &'a [f64]>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in series.into_iter().flatten().filter(|v| v.is_finite()) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-6 * hi.abs().max(1.0));
    (lo - pad)..(hi + pad)
}

/// One panel: some named series against the epoch.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    epochs: &[f64],
    series: &[(&str, &[f64], RGBColor)],
) -> std::result::Result<(), String> {
    let last = epochs
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(epochs.first().copied().unwrap_or(0.0) + 1.0);
    let first = epochs.first().copied().unwrap_or(0.0).min(last - 1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(first..last, y_range(series.iter().map(|s| s.1)))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(epochs.len().clamp(2, 12))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for &(name, values, color) in series.iter().filter(|s| !s.1.is_empty()) {
        let points: Vec<(f64, f64)> = epochs
            .iter()
            .copied()
            .zip(values.iter().copied())
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

struct CurvesPicture<'a> {
    epochs: &'a [f64],
    curves: &'a Curves<'a>,
}

impl Picture for CurvesPicture<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (epochs, c) = (self.epochs, self.curves);
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        let train = RGBColor(31, 119, 180);
        let test = RGBColor(255, 127, 14);
        let has_accuracy = !c.train_accuracy.is_empty() || !c.test_accuracy.is_empty();
        let panels = if has_accuracy {
            area.split_evenly((1, 2))
        } else {
            vec![area.clone()]
        };
        panel(
            &panels[0],
            "loss",
            epochs,
            &[("train", c.train_loss, train), ("test", c.test_loss, test)],
        )?;
        if has_accuracy {
            panel(
                &panels[1],
                "accuracy",
                epochs,
                &[
                    ("train", c.train_accuracy, train),
                    ("test", c.test_accuracy, test),
                ],
            )?;
        }
        Ok(())
    }
}

/// Loss (and, for classifiers, accuracy) against the epoch, train and test, side by side.
pub fn plot_curves(path: &Path, epochs: &[f64], curves: &Curves) -> Result<()> {
    render(path, 1000, 420, &CurvesPicture { epochs, curves })
}

struct ConfusionPicture<'a> {
    matrix: &'a [Vec<usize>],
    names: &'a [String],
}

impl Picture for ConfusionPicture<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (matrix, names) = (self.matrix, self.names);
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        let k = matrix.len();
        let mut chart = ChartBuilder::on(area)
            .caption(
                "confusion matrix (rows: true, columns: predicted)",
                ("sans-serif", 20),
            )
            .margin(12)
            .margin_left(130)
            .margin_bottom(30)
            .build_cartesian_2d(0..k, 0..k)
            .map_err(|e| e.to_string())?;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let text = |hpos, ink: &RGBColor| {
            ("sans-serif", 13)
                .into_font()
                .color(ink)
                .pos(Pos::new(hpos, VPos::Center))
        };
        // Row labels `c name` left of the grid, column numbers under it, as in the terminal table.
        for c in 0..k {
            let name = format!("{c} {}", names.get(c).map_or("", String::as_str));
            let (x, y0) = chart.backend_coord(&(0, k - c));
            let (_, y1) = chart.backend_coord(&(0, k - 1 - c));
            area.draw_text(&name, &text(HPos::Right, &BLACK), (x - 8, (y0 + y1) / 2))
                .map_err(|e| e.to_string())?;
            let (x0, y) = chart.backend_coord(&(c, 0));
            let (x1, _) = chart.backend_coord(&(c + 1, 0));
            area.draw_text(
                &c.to_string(),
                &text(HPos::Center, &BLACK),
                ((x0 + x1) / 2, y + 14),
            )
            .map_err(|e| e.to_string())?;
        }
        // Each cell is shaded by its share of its row (the true class), so rare classes still show.
        for (t, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &n) in row.iter().enumerate() {
                let share = n as f64 / total;
                let shade = (255.0 * (1.0 - share)) as u8;
                let y = k - 1 - t;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(p, y), (p + 1, y + 1)],
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let (x0, y0) = chart.backend_coord(&(p, y + 1));
                let (x1, y1) = chart.backend_coord(&(p + 1, y));
                area.draw_text(
                    &n.to_string(),
                    &text(HPos::Center, &ink),
                    ((x0 + x1) / 2, (y0 + y1) / 2),
                )
                .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// A confusion matrix (`matrix[true][predicted]`) as a shaded grid with the counts written in.
pub fn plot_confusion(path: &Path, matrix: &[Vec<usize>], names: &[String]) -> Result<()> {
    render(path, 760, 760, &ConfusionPicture { matrix, names })
}

struct SamplePicture<'a> {
    pixels: &'a [f32],
    h: usize,
    w: usize,
    scale: usize,
    caption: &'a str,
}

/// Height of the caption strip under an enlarged sample.
const CAPTION: usize = 40;

impl Picture for SamplePicture<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(|e| e.to_string())?;
        let s = self.scale as i32;
        for (i, &v) in self.pixels.iter().enumerate().take(self.h * self.w) {
            let g = (255.0 * v.clamp(0.0, 1.0)) as u8;
            let (y, x) = ((i / self.w) as i32 * s, (i % self.w) as i32 * s);
            area.draw(&Rectangle::new(
                [(x, y), (x + s, y + s)],
                RGBColor(g, g, g).filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let y = (self.h * self.scale + CAPTION / 2) as i32;
        let style = ("sans-serif", 14).into_font().color(&BLACK).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        area.draw_text(self.caption, &style, (6, y))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A grayscale sample (`h × w`, values in [0, 1]) enlarged `scale` times, with a caption under it.
/// The picture is at least wide enough for the caption line.
pub fn plot_sample(
    path: &Path,
    pixels: &[f32],
    h: usize,
    w: usize,
    scale: usize,
    caption: &str,
) -> Result<()> {
    let width = (w * scale).max(8 * caption.chars().count() + 12);
    render(
        path,
        width as u32,
        (h * scale + CAPTION) as u32,
        &SamplePicture {
            pixels,
            h,
            w,
            scale,
            caption,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curves_png(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("curves.png");
        let loss = [2.0, 1.0, 0.5];
        let acc = [0.5, 0.8, 0.9];
        plot_curves(
            &path,
            &[1.0, 2.0, 3.0],
            &Curves {
                train_loss: &loss,
                test_loss: &loss,
                train_accuracy: &acc,
                test_accuracy: &acc,
            },
        )
        .unwrap();
        path
    }

    #[test]
    fn curves_are_a_png_with_ink_in_both_colours() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::open(curves_png(dir.path())).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1000, 420));
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        assert!(count([31, 119, 180]) > 100, "train line drawn");
        assert!(count([255, 127, 14]) > 100, "test line drawn");
    }

    #[test]
    fn svg_and_single_panel_regression_curves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        plot_curves(
            &path,
            &[1.0],
            &Curves {
                train_loss: &[0.3],
                test_loss: &[],
                train_accuracy: &[],
                test_accuracy: &[],
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg") && text.contains("loss") && !text.contains("accuracy"));
    }

    #[test]
    fn confusion_matrix_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        plot_confusion(&path, &[vec![9, 1], vec![2, 8]], &names).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert!(
            img.pixels().any(|p| p.0[2] == 255 && p.0[0] < 60),
            "a dark diagonal cell"
        );
    }

    #[test]
    fn sample_is_enlarged_with_caption_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        let mut px = vec![0.0; 4];
        px[1] = 1.0;
        plot_sample(&path, &px, 2, 2, 10, "#0").unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.height(), 20 + CAPTION as u32);
        assert_eq!(
            img.get_pixel(15, 5).0,
            [255, 255, 255],
            "bright pixel at (0, 1)"
        );
        assert_eq!(img.get_pixel(5, 5).0, [0, 0, 0], "dark pixel at (0, 0)");
    }

    #[test]
    fn unknown_extension_is_an_error() {
        let e = plot_curves(
            Path::new("x.gif"),
            &[],
            &Curves {
                train_loss: &[],
                test_loss: &[],
                train_accuracy: &[],
                test_accuracy: &[],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(".png or .svg"), "{e}");
    }
}
