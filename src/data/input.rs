//! What a checkpoint records about its inputs, so that `eval` and `predict` prepare new data exactly
//! as training did: the per-sample shape, a table's columns, the standardisation of the features,
//! and what the training images looked like. Stored as JSON under the metadata key
//! `scratchnet.input` (never as a tensor, so PyTorch's strict loading still accepts the file).

use crate::checkpoint::Checkpoint;
use crate::data::dataset::Dataset;
use crate::data::inputs::Samples;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata key.
pub const KEY: &str = "scratchnet.input";

/// How raw samples become model inputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    /// The per-sample input shape the model was trained on, e.g. `[1, 28, 28]` or `[13]`.
    pub shape: Vec<usize>,
    /// The columns of a CSV table, when the data was one.
    #[serde(default)]
    pub table: Option<TableInfo>,
    /// `x ← (x − mean) / std`, applied after loading.
    #[serde(default)]
    pub standardize: Option<Standardize>,
    /// What the training images looked like, when they were images.
    #[serde(default)]
    pub image: Option<ImageStyle>,
}

/// The columns of a CSV table: features in input order, and the targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The feature columns, in input order.
    pub features: Vec<String>,
    /// The target columns.
    pub targets: Vec<String>,
    /// The targets are numbers to fit (`--loss mse`), not classes.
    pub regression: bool,
}

/// Per-feature (or per-channel) standardisation: `x ← (x − mean) / std`.
///
/// # Shapes
/// Applies to `x: [N, G, …]` with `G = mean.len()`: every value of group `g` (a table's column, an
/// image's channel) uses `mean[g]` and `std[g]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    /// Per group: the mean subtracted.
    pub mean: Vec<f32>,
    /// Per group: the standard deviation divided by.
    pub std: Vec<f32>,
}

/// Which of light and dark is the background of the training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Background {
    /// Light ink on a dark background (MNIST).
    Dark,
    /// Dark ink on a light background (Fashion-MNIST as drawn).
    Light,
}

/// How an image of any size is placed into the model's `H × W`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fit {
    /// As MNIST was made: the ink's bounding box scaled (keeping its aspect ratio) until its longer
    /// side is `extent` of the frame (20/28 for MNIST), then centred by its centre of mass.
    Digit {
        /// The longer side of the ink's box, as a fraction of the frame.
        extent: f32,
    },
    /// As Fashion-MNIST was made: the ink's bounding box scaled to fill the frame, centred.
    Object,
    /// The whole picture scaled to fit, keeping its aspect ratio, centred and padded with black.
    Whole,
    /// As a folder of images is read for training ([`crate::data::image_folder`], the same
    /// function): the whole picture scaled to fit on its `u8` pixels, centred and padded with black,
    /// never inverted, so that a training image predicted from its file is the input it was.
    Folder,
}

/// What the training images looked like, measured from them when training starts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStyle {
    /// The background of the training images, if they share one (drawings, not photos): an image
    /// with the other polarity is inverted before it is predicted.
    pub background: Option<Background>,
    /// How an image is placed into the frame.
    pub fit: Fit,
}

impl Standardize {
    /// Mean and population standard deviation of every group of `x: [N, G, …]` (in f64, summed in
    /// sample order, a chunk of samples at a time). A constant group gets `std = 1`, as
    /// scikit-learn's `StandardScaler` does.
    pub fn fit(x: &impl Samples, groups: usize) -> Standardize {
        let n = x.shape()[0];
        let per = x.shape()[1..].iter().product::<usize>() / groups.max(1);
        let mut sum = vec![0f64; groups];
        let mut sq = vec![0f64; groups];
        x.chunks(|_, chunk| {
            for sample in chunk.data().chunks_exact((groups * per).max(1)) {
                for (g, values) in sample.chunks_exact(per.max(1)).enumerate() {
                    for &v in values {
                        sum[g] += v as f64;
                        sq[g] += v as f64 * v as f64;
                    }
                }
            }
            Ok(())
        })
        .expect("the sums do not fail");
        let count = (n * per).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let s = (q / count - m * m).max(0.0).sqrt();
                if s > 1e-12 * m.abs().max(1.0) {
                    s as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardize {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// `--normalize`: `auto` fits every channel of the training inputs `x: [N, C, …]`; `MEAN,STD`
    /// applies to every channel; `M1,…,MC,S1,…,SC` gives each channel its own (torchvision's
    /// `Normalize(mean, std)`).
    ///
    /// # Errors
    /// Not numbers; neither 2 nor 2·C of them; a standard deviation that is not positive.
    pub fn parse(spec: &str, x: &impl Samples) -> Result<Standardize> {
        let c = x.shape().get(1).copied().unwrap_or(1);
        if spec.trim() == "auto" {
            return Ok(Standardize::fit(x, c));
        }
        let bad = |why: String| {
            Error::invalid(format!(
                "--normalize {spec}: {why}; give auto, MEAN,STD, or {c} means then {c} standard deviations"
            ))
        };
        let v: Vec<f32> = spec
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(format!("'{}' is not a number", p.trim())))
            })
            .collect::<Result<_>>()?;
        let (mean, std) = match v.len() {
            2 => (vec![v[0]; c], vec![v[1]; c]),
            n if n == 2 * c => (v[..c].to_vec(), v[c..].to_vec()),
            n => return Err(bad(format!("{n} numbers for inputs with {c} channels"))),
        };
        if let Some(s) = std.iter().find(|&&s| s <= 0.0) {
            return Err(bad(format!("a standard deviation of {s}")));
        }
        Ok(Standardize { mean, std })
    }

    /// The values per group of samples of `row` values.
    ///
    /// # Errors
    /// `row` is not a multiple of the groups.
    pub fn groups_of(&self, row: usize) -> Result<usize> {
        let groups = self.mean.len();
        if groups == 0 || !row.is_multiple_of(groups) {
            return Err(Error::invalid(format!(
                "the checkpoint standardises {groups} features (or channels) per sample; the data has {row} values per sample"
            )));
        }
        Ok(row / groups)
    }

    /// `x ← (x − mean) / std` in place.
    ///
    /// # Errors
    /// `x` does not have `mean.len()` groups per sample.
    pub fn apply(&self, x: &mut Tensor) -> Result<()> {
        let n = x.shape().first().copied().unwrap_or(0);
        let row = x.len() / n.max(1);
        let per = self.groups_of(row)?;
        for sample in x.data_mut().chunks_exact_mut(row.max(1)) {
            for ((values, m), s) in sample.chunks_exact_mut(per).zip(&self.mean).zip(&self.std) {
                // In f64: the difference of two finite f32 can overflow f32 (3e38 − (−3e38)).
                let (m, s) = (*m as f64, *s as f64);
                values
                    .iter_mut()
                    .for_each(|v| *v = ((*v as f64 - m) / s) as f32);
            }
        }
        Ok(())
    }
}

impl InputInfo {
    /// What training on `train` records: its sample shape, table columns and image style, and for a
    /// table (unless `standardize` is off) the mean and standard deviation of each feature.
    pub fn for_training(train: &Dataset, standardize: bool) -> InputInfo {
        InputInfo {
            shape: train.sample_shape().to_vec(),
            table: train.table.clone(),
            standardize: train
                .table
                .as_ref()
                .filter(|_| standardize)
                .map(|t| Standardize::fit(&train.x, t.features.len())),
            image: match (&train.table, train.image_folder) {
                (Some(_), _) => None,
                (None, true) => Some(ImageStyle {
                    background: None,
                    fit: Fit::Folder,
                }),
                (None, false) => crate::data::image_style::measure_style(&train.x),
            },
        }
    }

    /// What a checkpoint records, if it records it (checkpoints from PyTorch or older runs do not).
    ///
    /// # Errors
    /// The record is there but does not parse.
    pub fn of(ck: &Checkpoint) -> Result<Option<InputInfo>> {
        ck.metadata
            .get(KEY)
            .map(|json| {
                serde_json::from_str(json).map_err(|e| Error::Checkpoint {
                    path: ck.path.clone(),
                    msg: format!("its '{KEY}' record is unreadable ({e})"),
                })
            })
            .transpose()
    }

    /// The metadata entry that records `self`.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let json = serde_json::to_string(self).expect("plain data serialises");
        BTreeMap::from([(KEY.to_string(), json)])
    }

    /// How raw data becomes the model's input, in words (for exported models, whose users must
    /// feed the same).
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        let mut parts = vec![format!("float32 input [batch, {}]", dims.join(", "))];
        if let Some(t) = &self.table {
            parts.push(format!(
                "the CSV columns {} in this order",
                t.features.join(", ")
            ));
        }
        if self.image.is_some() {
            parts.push(
                "images channels first, as the training arrays held them (pixels of IDX, PNG, JPEG and uint8 data as pixel / 255 in [0, 1])".into(),
            );
        }
        if let Some(s) = &self.standardize {
            parts.push(format!(
                "then x = (x - mean) / std per feature, mean {:?}, std {:?}",
                s.mean, s.std
            ));
        }
        parts.join("; ")
    }

    /// Standardises `x` as recorded (nothing when nothing is recorded): a tensor in place, a
    /// dataset's inputs batch by batch as they are gathered.
    ///
    /// # Errors
    /// `x` does not have as many features as recorded.
    pub fn prepare(&self, x: &mut impl Samples) -> Result<()> {
        match &self.standardize {
            Some(s) => x.standardize(s),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_gives_zero_mean_unit_std_per_group() {
        // Two features on very different scales, one constant.
        let x = Tensor::new(
            &[4, 3],
            vec![
                1.0, 1000.0, 5.0, 2.0, 3000.0, 5.0, 3.0, 2000.0, 5.0, 4.0, 4000.0, 5.0,
            ],
        )
        .unwrap();
        let s = Standardize::fit(&x, 3);
        assert_eq!(s.mean, [2.5, 2500.0, 5.0]);
        assert!((s.std[0] - 1.25f32.sqrt()).abs() < 1e-6);
        assert_eq!(s.std[2], 1.0, "a constant column is left at scale 1");
        let mut y = x.clone();
        s.apply(&mut y).unwrap();
        for g in 0..2 {
            let col: Vec<f32> = y.data().iter().skip(g).step_by(3).copied().collect();
            let mean: f32 = col.iter().sum::<f32>() / 4.0;
            let var: f32 = col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
            assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{col:?}");
        }
        assert_eq!(y.data()[2], 0.0);
        // Finite numbers near f32's limit stay finite: (3e38 − (−1.5e38)) / 2.6e38 ≈ 1.73.
        let x = Tensor::new(&[4, 1], vec![3e38, 3e38, 3e38, -3e38]).unwrap();
        let mut y = x.clone();
        Standardize::fit(&x, 1).apply(&mut y).unwrap();
        assert!((y.data()[3] + 3f32.sqrt()).abs() < 1e-5, "{:?}", y.data());
    }

    #[test]
    fn normalize_flag_forms_and_errors() {
        let x = Tensor::new(&[2, 3, 1, 1], vec![0.0, 0.5, 1.0, 1.0, 0.5, 0.0]).unwrap();
        let one = Standardize::parse("0.5,0.25", &x).unwrap();
        assert_eq!((one.mean, one.std), (vec![0.5; 3], vec![0.25; 3]));
        let each = Standardize::parse("0.1,0.2,0.3,1,2,4", &x).unwrap();
        assert_eq!(
            (each.mean, each.std),
            (vec![0.1, 0.2, 0.3], vec![1.0, 2.0, 4.0])
        );
        let auto = Standardize::parse("auto", &x).unwrap();
        assert_eq!(auto.mean, [0.5, 0.5, 0.5]);
        assert_eq!(auto.std, [0.5, 1.0, 0.5], "a constant channel gets std 1");
        for (spec, says) in [
            ("0.5", "1 numbers for inputs with 3 channels"),
            ("0.5,x", "'x' is not a number"),
            ("0.5,0", "a standard deviation of 0"),
            ("0.5,inf", "'inf' is not a number"),
        ] {
            let e = Standardize::parse(spec, &x).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains("3 means then 3 standard"),
                "{e}"
            );
        }
    }

    #[test]
    fn standardize_per_channel_of_images() {
        // [N=2, C=2, 2 values]: channel 0 holds 0/2, channel 1 holds 10/30.
        let x = Tensor::new(&[2, 2, 2], vec![0.0, 2.0, 10.0, 30.0, 0.0, 2.0, 10.0, 30.0]).unwrap();
        let s = Standardize::fit(&x, 2);
        assert_eq!(
            (s.mean.clone(), s.std.clone()),
            (vec![1.0, 20.0], vec![1.0, 10.0])
        );
        let e = s
            .apply(&mut Tensor::zeros(&[1, 3]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("standardises 2 features") && e.contains("has 3 values"),
            "{e}"
        );
    }

    #[test]
    fn record_round_trips_through_checkpoint_metadata() {
        let info = InputInfo {
            shape: vec![3],
            table: Some(TableInfo {
                features: vec!["a".into(), "b".into(), "c".into()],
                targets: vec!["y".into()],
                regression: false,
            }),
            standardize: Some(Standardize {
                mean: vec![1.0, 2.0, 3.0],
                std: vec![1.0, 1.0, 2.0],
            }),
            image: Some(ImageStyle {
                background: Some(Background::Dark),
                fit: Fit::Digit { extent: 0.75 },
            }),
        };
        let mut ck = Checkpoint {
            path: "m.safetensors".into(),
            tensors: Default::default(),
            metadata: info.metadata().into_iter().collect(),
        };
        assert_eq!(InputInfo::of(&ck).unwrap(), Some(info));
        ck.metadata.insert(KEY.into(), "{".into());
        let e = InputInfo::of(&ck).unwrap_err().to_string();
        assert!(
            e.contains("m.safetensors") && e.contains("unreadable"),
            "{e}"
        );
        ck.metadata.clear();
        assert_eq!(InputInfo::of(&ck).unwrap(), None);
    }
}
