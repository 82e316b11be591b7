//! Text as sequences of character ids: a sorted character vocabulary, and sequences of `seq_len`
//! characters whose targets are the next characters (a character-level language model's data).

use crate::data::dataset::{Dataset, Labels};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// The checkpoint metadata key of a model trained on text: `{"seq_len": …}` (its vocabulary is the
/// checkpoint's class names, one character each).
pub const KEY: &str = "scratchnet.text";

/// The sequence length of `--data text:FILE` when `--seq-len` is not given.
pub const DEFAULT_SEQ_LEN: usize = 64;

/// The distinct characters of `text`, sorted: character `vocab[i]` has id `i`.
pub fn vocabulary(text: &str) -> Vec<char> {
    let mut v: Vec<char> = text.chars().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The ids of `text`'s characters in `vocab`.
///
/// # Errors
/// A character not in the vocabulary, naming it and its position.
pub fn encode(text: &str, vocab: &[char]) -> Result<Vec<u32>> {
    text.chars()
        .enumerate()
        .map(|(i, ch)| {
            vocab.binary_search(&ch).map(|id| id as u32).map_err(|_| {
                Error::invalid(format!(
                    "character {ch:?} (at {i}) is not in the model's vocabulary of {} characters",
                    vocab.len()
                ))
            })
        })
        .collect()
}

/// `text` cut into `N = ⌊(chars − 1) / seq_len⌋` sequences: inputs `x[n, t]` = id of character
/// `n·seq_len + t`, targets `y[n, t]` = id of the character after it, in `vocab` (a model's, for
/// its test or evaluation text) or else in the text's own [`vocabulary`]. Class names are the
/// characters.
///
/// # Shapes
/// `x: [N, seq_len]` (ids as f32), `y`: per step `[N, seq_len]`.
///
/// # Errors
/// `seq_len` 0, empty text, text shorter than one sequence (`seq_len + 1` characters), or a
/// character outside the given vocabulary.
pub fn sequences(
    text: &str,
    seq_len: usize,
    vocab: Option<Vec<char>>,
    what: &str,
) -> Result<(Dataset, Vec<char>)> {
    if seq_len == 0 {
        return Err(Error::invalid("--seq-len must be at least 1"));
    }
    let vocab = vocab.unwrap_or_else(|| vocabulary(text));
    let ids = encode(text, &vocab).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    if ids.is_empty() {
        return Err(Error::invalid(format!("{what}: the text is empty")));
    }
    let n = (ids.len() - 1) / seq_len;
    if n == 0 {
        return Err(Error::invalid(format!(
            "{what}: the text has {} characters, fewer than one sequence of --seq-len {seq_len} \
             and its next character ({})",
            ids.len(),
            seq_len + 1
        )));
    }
    let x = ids[..n * seq_len].iter().map(|&i| i as f32).collect();
    let classes = ids[1..=n * seq_len].to_vec();
    let mut data = Dataset::new(
        Tensor::new(&[n, seq_len], x)?,
        Labels::Steps {
            classes,
            steps: seq_len,
        },
    )?;
    data.class_names = Some(vocab.iter().map(|c| c.to_string()).collect());
    Ok((data, vocab))
}

/// [`sequences`] of a UTF-8 file.
///
/// # Errors
/// As [`sequences`], an unreadable file, or one that is not UTF-8.
pub fn read(path: &Path, seq_len: usize, vocab: Option<Vec<char>>) -> Result<(Dataset, Vec<char>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    sequences(&text, seq_len, vocab, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_and_next_character_targets() {
        let (d, vocab) = sequences("abcabca", 3, None, "t").unwrap();
        assert_eq!(vocab, vec!['a', 'b', 'c']);
        assert_eq!(d.x.shape(), &[2, 3]);
        assert_eq!(d.x.rows(0, 2).data(), &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(
            d.y,
            Labels::Steps {
                classes: vec![1, 2, 0, 1, 2, 0],
                steps: 3
            }
        );
        // A split keeps each sequence with its targets.
        let (a, b) = d.split(0.5, 0).unwrap();
        assert_eq!(a.y.per_sample(), 3);
        assert_eq!(a.len() + b.len(), 2);
    }

    #[test]
    fn unicode_characters_are_one_id_each() {
        let (d, vocab) = sequences("héé\n", 1, None, "t").unwrap();
        assert_eq!(vocab, vec!['\n', 'h', 'é']);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |t: &str, l| sequences(t, l, None, "f.txt").unwrap_err().to_string();
        assert!(e("", 4).contains("f.txt: the text is empty"));
        assert!(e("abcd", 4).contains(
            "f.txt: the text has 4 characters, fewer than one sequence of --seq-len 4 and its next character (5)"
        ));
        assert!(e("abc", 0).contains("--seq-len must be at least 1"));
        // A test text is read in the training text's vocabulary.
        let e = sequences("abd", 1, Some(vec!['a', 'b']), "test.txt").unwrap_err();
        assert!(
            e.to_string().contains("test.txt: character 'd' (at 2)"),
            "{e}"
        );
        let (d, _) = sequences("ba", 1, Some(vec!['a', 'b', 'c']), "t").unwrap();
        assert_eq!(d.x.rows(0, 1).data(), &[1.0]);
        let e = encode("abz", &['a', 'b']).unwrap_err().to_string();
        assert!(
            e.contains("character 'z' (at 2) is not in the model's vocabulary of 2 characters"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"ab\xffcd").unwrap();
        let e = read(&p, 1, None).unwrap_err().to_string();
        assert!(e.contains("is not UTF-8 text (byte 2)"), "{e}");
    }
}
