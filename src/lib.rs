//! # scratchnet
//!
//! A small neural-network library and trainer, written from scratch: every layer has a hand-written
//! forward and backward that agree with PyTorch to float precision.
//!
//! ```
//! use scratchnet::{Model, Tensor, Mode, Loss, Targets, optim::{Optimizer, Config}};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let mut model = Model::build("Linear(2,8), ReLU, Linear(8,3)", &[2], &mut rng)?;
//! let mut opt = Optimizer::new(Config::Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false })?;
//! let x = Tensor::new(&[4, 2], vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])?;
//! let classes = [1, 1, 2, 0];
//! let mut first = None;
//! for _ in 0..50 {
//!     let y = model.forward(x.clone(), Mode::train(0))?;
//!     let (loss, grad) = Loss::CrossEntropy.compute(y, Targets::Classes(&classes))?;
//!     first.get_or_insert(loss);
//!     model.backward(grad)?;
//!     opt.step(model.net());
//! }
//! let y = model.forward(x, Mode::Eval)?;
//! let (loss, _) = Loss::CrossEntropy.compute(y, Targets::Classes(&classes))?;
//! assert!(loss < first.unwrap() / 2.0);
//! # Ok::<(), scratchnet::Error>(())
//! ```

pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod dist;
pub mod error;
pub mod generate;
#[cfg(feature = "cli")]
pub mod image_io;
pub mod init;
pub mod kernels;
pub mod layer_stats;
pub mod layers;
pub mod loss;
pub mod model;
pub mod onnx;
pub mod optim;
#[cfg(feature = "cli")]
pub mod plot;
mod replica;
#[cfg(feature = "cli")]
pub mod report;
pub mod resume;
pub mod schedule;
#[cfg(feature = "cli")]
pub mod serve;
pub mod spec;
pub mod tensor;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};
pub use layers::{Layer, Mode};
pub use loss::{Loss, Targets};
pub use model::Model;
/// The `rand` the API takes generators from (`Model::build`, `Linear::new`), so a user need not pin it.
pub use rand;
/// The generator the CLI seeds (`ChaCha8Rng::seed_from_u64(seed)`).
pub use rand_chacha;
pub use tensor::Tensor;
