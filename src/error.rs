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
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        err: std::io::Error,
    },
    /// A file was read but its contents are not what they should be (IDX, .npy, safetensors, image).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The model text does not parse; `column` counts characters from 1. The text is shown with
    /// each whitespace character as a space, so that the message stays one line and the column
    /// still points at the right character.
    #[error("model text, column {column}: {msg} (in \"{}\")", spaced(text))]
    Syntax {
        /// The model text.
        text: String,
        /// The column of the first character that does not fit, from 1.
        column: usize,
        /// What was expected there.
        msg: String,
    },
    /// A layer was given an input shape it cannot take (at construction or at run time).
    #[error("layer {index} ({layer}) expects input {expected}, got {got:?}{after}")]
    Shape {
        /// The layer's path (`2`, `2.0`).
        index: String,
        /// The layer as PyTorch prints it.
        layer: String,
        /// What it expects.
        expected: String,
        /// The per-sample shape it got.
        got: Vec<usize>,
        /// Where that shape came from.
        after: String,
    },
    /// A checkpoint does not fit the model it is loaded into.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not fit.
        msg: String,
    },
    /// An argument or flag is outside what it may be.
    #[error("{0}")]
    Invalid(String),
    /// Training produced a non-finite value.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} went NaN or infinite; first bad values: {layer}"
    )]
    NonFinite {
        /// The epoch (from 1).
        epoch: usize,
        /// The batch within it (from 0).
        batch: usize,
        /// What went bad (the loss, a weight).
        what: String,
        /// The first layer with a bad value.
        layer: String,
    },
    /// `backward` was called without a matching `forward`.
    #[error("layer {0}: backward called before forward")]
    NoForward(String),
    /// A download failed.
    #[error("download of {url} failed: {msg}")]
    Download {
        /// What was fetched.
        url: String,
        /// Why it failed.
        msg: String,
    },
}

/// `text` with every whitespace character (a newline, a tab) replaced by one space.
pub(crate) fn spaced(text: &str) -> String {
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
