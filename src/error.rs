//! One error type for everything that depends on user input: model text, shapes, files, flags.
//!
//! Every message says what was expected, what came, and where (layer index and name, file path and
//! byte offset, column of the model text), so that the CLI can print it as one line.

use std::path::PathBuf;

/// The result type of the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong with user input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written. The I/O error is part of the message, so it is
    /// not also reported as a separate cause (which would print it twice).
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A file was read but its contents are not what they should be (IDX, .npy, safetensors, image).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// The model text does not parse; `column` counts characters from 1. The text is shown with
    /// each whitespace character as a space, so that the message stays one line and the column
    /// still points at the right character.
    #[error("model text, column {column}: {msg} (in \"{}\")", spaced(text))]
    Syntax {
        text: String,
        column: usize,
        msg: String,
    },
    /// A layer was given an input shape it cannot take (at construction or at run time).
    #[error("layer {index} ({layer}) expects input {expected}, got {got:?}{after}")]
    Shape {
        index: String,
        layer: String,
        expected: String,
        got: Vec<usize>,
        after: String,
    },
    /// A checkpoint does not fit the model it is loaded into.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
    /// An argument or flag is outside what it may be.
    #[error("{0}")]
    Invalid(String),
    /// Training produced a non-finite value.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} went NaN or infinite; first bad values: {layer}"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        what: String,
        layer: String,
    },
    /// `backward` was called without a matching `forward`.
    #[error("layer {0}: backward called before forward")]
    NoForward(String),
    /// A download failed.
    #[error("download of {url} failed: {msg}")]
    Download { url: String, msg: String },
}

/// `text` with every whitespace character (a newline, a tab) replaced by one space.
fn spaced(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect()
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
