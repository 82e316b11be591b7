//! Layers for sequences `[N, T, …]`: token embeddings, picking one step, and the recurrent stack
//! ([`Recurrent`]: `RNN`, `LSTM`, `GRU`), whose cells have one file each.

mod embedding;
mod gru;
mod lstm;
mod rnn;
mod select;
mod stack;

pub use embedding::Embedding;
pub use rnn::Nonlinearity;
pub use select::Select;
pub use stack::{Cell, Recurrent};
