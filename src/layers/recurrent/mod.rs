//! Layers for sequences `[N, T, …]`: token embeddings and picking one step.

mod embedding;
mod select;

pub use embedding::Embedding;
pub use select::Select;
