//! Data: file formats (IDX, .npy, CSV tables), datasets, where to find them, and how to fetch them.

pub mod atomic;
pub mod augment;
pub mod dataset;
#[cfg(feature = "cli")]
pub mod download;
pub mod find;
pub mod idx;
#[cfg(feature = "cli")]
pub mod image_folder;
pub mod image_style;
pub mod input;
pub mod inputs;
pub mod npy;
pub mod npz;
pub mod shard;
pub mod source;
pub mod table;
pub mod text;
pub mod toy2d;
