//! Initialisers: PyTorch's default, and the ones the tutorials use. All draw from an explicit RNG,
//! so one seed gives one network.

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::tensor::Tensor;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use std::fmt;

/// The bound `1/√fan_in` of PyTorch's default `Linear`/`Conv2d` initialisation.
///
/// `kaiming_uniform_(a=√5)` gives `gain·√(3/fan_in)` with `gain = √(2/(1+5))`, i.e. `1/√fan_in`; the
/// bias uses the same bound. PyTorch uses 0 when `fan_in` is 0.
pub fn pytorch_bound(fan_in: usize) -> f32 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f32).sqrt()
    }
}

/// A tensor with values drawn from `U(a, b)`.
pub fn uniform(shape: &[usize], a: f32, b: f32, rng: &mut impl Rng) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| if a < b { rng.gen_range(a..b) } else { a })
        .collect();
    Tensor::new(shape, data).expect("length matches shape")
}

/// A tensor with values drawn from `N(0, σ²)`.
pub fn normal(shape: &[usize], std: f32, rng: &mut impl Rng) -> Tensor {
    let n = shape.iter().product();
    let dist = Normal::new(0.0, std.max(0.0)).expect("σ ≥ 0");
    Tensor::new(shape, (0..n).map(|_| dist.sample(rng)).collect()).expect("length matches shape")
}

/// How to (re)initialise every weight and bias of a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default: `U(−1/√fan_in, 1/√fan_in)` for weights and biases (what layers start with).
    PyTorch,
    /// `N(0, σ²)` for every weight and bias; `σ = 1` is Nielsen's initialisation.
    Normal {
        /// The standard deviation.
        std: f32,
    },
    /// `U(a, b)` for every weight and bias.
    Uniform {
        /// The lower bound.
        a: f32,
        /// The upper bound.
        b: f32,
    },
    /// `N(0, σ²)` with `σ = 1/(out·in)` per layer (`in` = fan-in), the LeakyReLU tutorial's choice.
    ScaledNormal,
}

impl Init {
    /// Parses `pytorch`, `nielsen` (= `normal:1`), `normal:σ`, `uniform:a,b`, `scaled-normal`.
    ///
    /// # Errors
    /// An unknown name or a malformed number.
    pub fn parse(text: &str) -> Result<Init> {
        let bad = || {
            Error::invalid(format!(
                "unknown initialiser '{text}': expected pytorch, nielsen, normal:STD, uniform:A,B or scaled-normal"
            ))
        };
        let num = |s: &str| s.trim().parse::<f32>().ok().filter(|v| v.is_finite());
        match text.split_once(':') {
            None => match text {
                "pytorch" => Ok(Init::PyTorch),
                "nielsen" => Ok(Init::Normal { std: 1.0 }),
                "scaled-normal" => Ok(Init::ScaledNormal),
                _ => Err(bad()),
            },
            Some(("normal", s)) => match num(s) {
                Some(std) if std >= 0.0 => Ok(Init::Normal { std }),
                _ => Err(bad()),
            },
            Some(("uniform", s)) => {
                let (a, b) = s.split_once(',').ok_or_else(bad)?;
                match (num(a), num(b)) {
                    (Some(a), Some(b)) if a <= b => Ok(Init::Uniform { a, b }),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }

    /// Re-draws every parameter of `model` (in parameter order) from this distribution, except a
    /// normalisation's scale and shift (BatchNorm's 1-D `weight` and its `bias`), which keep their
    /// 1 and 0: a scale drawn near 0 would silence the layer.
    pub fn apply(&self, model: &mut dyn Layer, rng: &mut impl Rng) {
        // A recurrent layer's weights and biases (`weight_ih_l0`, `bias_hh_l1_reverse`, ...) all
        // take the fan-in `hidden_size`, as PyTorch's `RNNBase.reset_parameters`: the width of its
        // `weight_hh_*`, found first because `weight_ih_l0` comes before it.
        let mut hidden = std::collections::HashMap::new();
        model.params("", &mut |name, p| {
            let (layer, last) = name.rsplit_once('.').unwrap_or(("", name));
            if last.starts_with("weight_hh_") {
                hidden.insert(layer.to_string(), p.value.shape()[1]);
            }
        });
        // A bias takes the fan-in and fan-out of the weight visited just before it.
        let mut last = (1usize, 1usize);
        let mut norm = false;
        model.visit_params("", &mut |name, p| {
            let shape = p.value.shape().to_vec();
            let (layer, short) = name.rsplit_once('.').unwrap_or(("", name));
            let recurrent = hidden
                .get(layer)
                .filter(|_| short.starts_with("weight_") || short.starts_with("bias_"));
            if let Some(&h) = recurrent {
                (last, norm) = ((shape[0], h), false);
            } else if name.ends_with("weight") {
                last = (shape[0], shape[1..].iter().product());
                norm = shape.len() == 1;
            }
            if norm {
                return;
            }
            let (out, fan_in) = last;
            p.value = match *self {
                Init::PyTorch => {
                    let b = pytorch_bound(fan_in);
                    uniform(&shape, -b, b, rng)
                }
                Init::Normal { std } => normal(&shape, std, rng),
                Init::Uniform { a, b } => uniform(&shape, a, b, rng),
                Init::ScaledNormal => normal(&shape, 1.0 / (out * fan_in) as f32, rng),
            };
        });
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::PyTorch => write!(f, "pytorch"),
            Init::Normal { std } => write!(f, "normal:{std}"),
            Init::Uniform { a, b } => write!(f, "uniform:{a},{b}"),
            Init::ScaledNormal => write!(f, "scaled-normal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Linear;
    use rand::SeedableRng;

    fn stats(t: &Tensor) -> (f64, f64) {
        let n = t.len() as f64;
        let mean = t.data().iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = t
            .data()
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn parse_names_and_errors() {
        assert_eq!(Init::parse("nielsen").unwrap(), Init::Normal { std: 1.0 });
        assert_eq!(
            Init::parse("uniform:-0.5,0.5").unwrap(),
            Init::Uniform { a: -0.5, b: 0.5 }
        );
        assert_eq!(
            Init::parse("normal:0.1").unwrap(),
            Init::Normal { std: 0.1 }
        );
        for bad in [
            "xavier",
            "normal:-1",
            "uniform:1",
            "uniform:2,1",
            "normal:nan",
        ] {
            let e = Init::parse(bad).unwrap_err().to_string();
            assert!(e.contains("unknown initialiser"), "{bad}: {e}");
        }
    }

    #[test]
    fn distributions_have_the_stated_moments() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut l = Linear::new(200, 100, true, &mut rng);
        Init::Normal { std: 1.0 }.apply(&mut l, &mut rng);
        l.visit_params("", &mut |name, p| {
            if name == "weight" {
                let (m, s) = stats(&p.value);
                assert!(
                    m.abs() < 0.02 && (s - 1.0).abs() < 0.02,
                    "N(0,1): mean {m} std {s}"
                );
            }
        });
        Init::ScaledNormal.apply(&mut l, &mut rng);
        l.visit_params("", &mut |name, p| {
            if name == "weight" {
                let (_, s) = stats(&p.value);
                assert!(
                    (s / (1.0 / 20000.0) - 1.0).abs() < 0.02,
                    "σ = 1/(out·in): {s}"
                );
            }
        });
        Init::PyTorch.apply(&mut l, &mut rng);
        l.visit_params("", &mut |_, p| {
            let (_, s) = stats(&p.value);
            // U(−b, b) has σ = b/√3 with b = 1/√200.
            let want = (1.0 / 200f64.sqrt()) / 3f64.sqrt();
            assert!((s / want - 1.0).abs() < 0.15, "U(±1/√in): σ {s} vs {want}");
        });
    }

    #[test]
    fn batchnorm_keeps_its_unit_scale_and_zero_shift() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let text = "Linear(4,3), BatchNorm1d(3), Linear(3,2)";
        let mut m = crate::model::Model::build(text, &[4], &mut rng).unwrap();
        Init::Normal { std: 0.01 }.apply(m.net(), &mut rng);
        m.net().visit_params("", &mut |name, p| match name {
            "1.weight" => assert_eq!(p.value.data(), &[1.0; 3]),
            "1.bias" => assert_eq!(p.value.data(), &[0.0; 3]),
            _ => assert!(p.value.data().iter().all(|v| v.abs() < 0.1), "{name}"),
        });
    }

    #[test]
    fn recurrent_weights_and_biases_take_one_over_root_hidden() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let text = "LSTM(300, 40, num_layers=2, bidirectional=True), Linear(80, 3)";
        let mut m = crate::model::Model::build(text, &[5, 300], &mut rng).unwrap();
        for init in [Init::PyTorch, Init::ScaledNormal] {
            init.apply(m.net(), &mut rng);
            let mut seen = 0;
            m.net().visit_params("", &mut |name, p| {
                let largest = p.value.data().iter().fold(0f32, |a, v| a.max(v.abs()));
                if name.starts_with("0.") {
                    seen += 1;
                    // PyTorch: U(±1/√40) = U(±0.158); σ = 1/(160·40) for scaled-normal.
                    let bound = match init {
                        Init::PyTorch => 1.0 / 40f32.sqrt(),
                        _ => 6.0 / (160.0 * 40.0),
                    };
                    assert!(largest <= bound, "{name}: {largest} > {bound}");
                    if init == Init::PyTorch {
                        assert!(largest > 0.7 * bound, "{name}: {largest} ≪ {bound}");
                    }
                }
            });
            assert_eq!(seen, 16);
        }
    }

    #[test]
    fn one_seed_gives_one_network() {
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut l = Linear::new(4, 3, true, &mut rng);
            let mut v = Vec::new();
            l.visit_params("", &mut |_, p| v.extend_from_slice(p.value.data()));
            v
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }
}
