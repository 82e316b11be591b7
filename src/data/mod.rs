//! Data: file formats (IDX, .npy), datasets, where to find them, and how to fetch them.

pub mod atomic;
pub mod dataset;
#[cfg(feature = "cli")]
pub mod download;
pub mod find;
pub mod idx;
pub mod npy;
pub mod source;
