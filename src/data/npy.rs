//! NumPy `.npy` files, format versions 1.0, 2.0 and 3.0.
//!
//! ```text
//! offset 0   b"\x93NUMPY"
//! offset 6   major, minor version: 1 0 | 2 0 | 3 0
//! offset 8   header length H: u16 little-endian (1.0) or u32 little-endian (2.0, 3.0)
//! offset 10 or 12
//!            header: a Python dict literal, padded with spaces and ending in '\n', e.g.
//!            {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
//! then       the elements in C order: product(shape) · itemsize bytes, nothing after them
//! ```
//!
//! Reading accepts little-endian floats (`<f2`, `<f4`, `<f8` → [`NpyData::Float`]), integers (`|i1`,
//! `<i2`, `<i4`, `<i8`, `|u1`, `<u2`, `<u4`, `<u8` → [`NpyData::Int`]) and booleans (`|b1` → 0 or 1).
//! Writing produces version 1.0 `<f4` with the header padded so that the data starts at a multiple
//! of 64 bytes, as NumPy does.

use std::fs;
use std::path::Path;

use crate::data::atomic::atomic_write;
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
const ALIGN: usize = 64;
const SUPPORTED: &str = "<f2, <f4, <f8, |i1, <i2, <i4, <i8, |u1, <u2, <u4, <u8, |b1";

/// The elements of an array, widened to one of two types.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// From `<f2`, `<f4` or `<f8` (the last rounded to `f32`).
    Float(Vec<f32>),
    /// From any supported integer or boolean dtype.
    Int(Vec<i64>),
}

/// A C-order array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    /// The dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The dtype as the file names it, e.g. `"<f4"` or `"|u1"`.
    pub dtype: String,
    /// The `product(shape)` elements in C order.
    pub data: NpyData,
}

/// Reads the `.npy` file at `path`.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] (with the byte offset) if the magic,
/// version, header or dtype is not one described in the module docs, if the array is in Fortran
/// order, or if the data is shorter or longer than `product(shape)` elements.
pub fn read_npy(path: &Path) -> Result<Npy> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a `.npy` file as [`read_npy`] does; `name` (usually the path) goes into error
/// messages.
///
/// # Errors
///
/// As [`read_npy`], except [`Error::Io`].
pub fn parse_npy(bytes: &[u8], name: &Path) -> Result<Npy> {
    decode_npy(bytes).map_err(|msg| Error::format(name, msg))
}

/// Writes `data` with dimensions `shape` as a version 1.0 `<f4` `.npy` file, atomically.
///
/// # Errors
///
/// [`Error::Invalid`] if `shape` does not hold exactly `data.len()` elements or needs a header
/// longer than version 1.0 allows; [`Error::Io`] if the file cannot be written.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let count = element_count(shape);
    if count != Some(data.len()) {
        return Err(Error::invalid(format!(
            "cannot write {}: shape {shape:?} does not hold the {} values given",
            path.display(),
            data.len()
        )));
    }
    let mut bytes = header_v1("<f4", shape).ok_or_else(|| {
        Error::invalid(format!(
            "cannot write {}: shape with {} dimensions needs a header longer than .npy 1.0 allows",
            path.display(),
            shape.len()
        ))
    })?;
    bytes.reserve(4 * data.len());
    for value in data {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    atomic_write(path, &bytes)
}

/// `product(shape)`, or `None` on overflow.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Magic, version 1.0, length and the padded dict; `None` if the dict exceeds `u16::MAX` bytes.
fn header_v1(descr: &str, shape: &[usize]) -> Option<Vec<u8>> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(ALIGN) - unpadded,
    ));
    dict.push('\n');
    let len = u16::try_from(dict.len()).ok()?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    Some(bytes)
}

/// The array a file's header describes.
struct Layout {
    shape: Vec<usize>,
    descr: String,
    dtype: Dtype,
    /// The byte offset of the data.
    data_at: usize,
    /// The data's length in bytes: `product(shape) · itemsize`.
    len: usize,
}

impl Layout {
    /// The layout from the first bytes of a file (at least its header), checked.
    fn read(bytes: &[u8]) -> std::result::Result<Layout, String> {
        let (text, header_at) = split_header(bytes)?;
        let header = parse_header(text, header_at)?;
        if header.fortran_order {
            return Err(
                "fortran_order is True, expected C order; save the array with \
                        np.save(path, np.ascontiguousarray(a))"
                    .to_owned(),
            );
        }
        let dtype = Dtype::parse(&header.descr)?;
        let shape = header.shape;
        let len = element_count(&shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| format!("shape {shape:?} is too large to address"))?;
        Ok(Layout {
            shape,
            descr: header.descr,
            dtype,
            data_at: header_at + text.len(),
            len,
        })
    }

    /// Checks that a file of `file_len` bytes holds exactly the data, no less and no more.
    fn check_len(&self, file_len: usize) -> std::result::Result<(), String> {
        let (shape, expected, data_at) = (&self.shape, self.len, self.data_at);
        let body = file_len.saturating_sub(data_at);
        if body < expected {
            return Err(format!(
                "data is truncated: shape {shape:?} of '{}' needs {expected} bytes from byte \
                 {data_at}, got {body}",
                self.descr,
            ));
        }
        if body > expected {
            return Err(format!(
                "{} unexpected bytes after the data at byte {}: shape {shape:?} of '{}' needs \
                 exactly {expected} bytes from byte {data_at}",
                body - expected,
                data_at + expected,
                self.descr
            ));
        }
        Ok(())
    }
}

/// The whole file, checked; errors are messages without the path.
fn decode_npy(bytes: &[u8]) -> std::result::Result<Npy, String> {
    let l = Layout::read(bytes)?;
    l.check_len(bytes.len())?;
    Ok(Npy {
        data: l.dtype.decode(&bytes[l.data_at..], l.data_at)?,
        shape: l.shape,
        dtype: l.descr,
    })
}

/// Rows `pick(n)` of the array `[n, …]` in the `.npy` file at `path`, and `n`: reads the header
/// and those rows' bytes only (a part of a file larger than memory). The returned array has
/// shape `[rows, …]`.
///
/// # Errors
/// As [`read_npy`] (the file's length is checked against its header, not its bytes read), and
/// [`Error::Format`] for a 0-d array.
pub fn read_npy_rows(
    path: &Path,
    pick: impl FnOnce(usize) -> std::ops::Range<usize>,
) -> Result<(Npy, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |msg: String| Error::format(path, msg);
    let mut file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    // Magic, version and the header's length (2 bytes in version 1.0, else 4), then the header.
    let mut head = Vec::new();
    let io = |e| Error::io(path, e);
    file.by_ref().take(12).read_to_end(&mut head).map_err(io)?;
    let header_end = match head.get(6..12) {
        Some([1, _, a, b, ..]) => 10 + usize::from(u16::from_le_bytes([*a, *b])),
        Some([_, _, a, b, c, d]) => 12 + u32::from_le_bytes([*a, *b, *c, *d]) as usize,
        _ => head.len(),
    };
    let more = header_end.saturating_sub(head.len()) as u64;
    file.by_ref()
        .take(more)
        .read_to_end(&mut head)
        .map_err(io)?;
    let l = Layout::read(&head).map_err(fail)?;
    l.check_len(file_len).map_err(fail)?;
    let Some(&n) = l.shape.first() else {
        return Err(fail("is a 0-d array; expected rows (N, …)".into()));
    };
    let row = l.len / n.max(1);
    let rows = pick(n);
    assert!(
        rows.start <= rows.end && rows.end <= n,
        "rows within the array"
    );
    let at = l.data_at + rows.start * row;
    let mut body = vec![0u8; rows.len() * row];
    file.seek(SeekFrom::Start(at as u64)).map_err(io)?;
    file.read_exact(&mut body).map_err(io)?;
    let mut shape = l.shape;
    shape[0] = rows.len();
    Ok((
        Npy {
            data: l.dtype.decode(&body, at).map_err(fail)?,
            shape,
            dtype: l.descr,
        },
        n,
    ))
}

/// Checks magic, version and length; returns the header text and its byte offset.
fn split_header(bytes: &[u8]) -> std::result::Result<(&str, usize), String> {
    if !bytes.starts_with(MAGIC) {
        let start = &bytes[..bytes.len().min(MAGIC.len())];
        return Err(format!(
            "expected the .npy magic \"\\x93NUMPY\" at byte 0, got \"{}\"",
            start.escape_ascii()
        ));
    }
    let width = match (bytes.get(6), bytes.get(7)) {
        (Some(1), Some(0)) => 2,
        (Some(2 | 3), Some(0)) => 4,
        (Some(major), Some(minor)) => {
            return Err(format!(
                "unsupported .npy version {major}.{minor} at byte 6; expected 1.0, 2.0 or 3.0"
            ));
        }
        _ => return Err(truncated_header(bytes.len(), 6, "the version")),
    };
    let len_bytes = bytes
        .get(8..8 + width)
        .ok_or_else(|| truncated_header(bytes.len(), 8, "the header length"))?;
    let len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let start = 8 + width;
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| truncated_header(bytes.len(), start, &format!("the {len}-byte header")))?;
    let text = std::str::from_utf8(header).map_err(|e| {
        format!(
            "header is not text: bad byte at {}",
            start + e.valid_up_to()
        )
    })?;
    Ok((text, start))
}

fn truncated_header(file_len: usize, at: usize, what: &str) -> String {
    format!("file is truncated: expected {what} at byte {at}, but the file has {file_len} bytes")
}

/// The three entries of the header dict.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` in any key order, with any
/// spacing and an optional trailing comma; `at` is the header's byte offset in the file.
fn parse_header(text: &str, at: usize) -> std::result::Result<Header, String> {
    let mut p = HeaderParser { text, pos: 0, at };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    p.expect('{', "'{' opening the header dict")?;
    while !p.eat('}') {
        let key_at = p.offset();
        let key = p.string("a quoted key or '}'")?;
        p.expect(':', "':' after the key")?;
        let repeated = match key {
            "descr" => descr
                .replace(p.string("a quoted dtype such as '<f4'")?)
                .is_some(),
            "fortran_order" => fortran_order.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.shape()?).is_some(),
            other => {
                return Err(format!(
                    "bad header at byte {key_at}: expected the key 'descr', 'fortran_order' or \
                     'shape', got '{}'",
                    other.escape_debug()
                ));
            }
        };
        if repeated {
            return Err(format!(
                "bad header at byte {key_at}: key '{}' appears twice",
                key.escape_debug()
            ));
        }
        if !p.eat(',') {
            p.expect('}', "',' or '}' after a value")?;
            break;
        }
    }
    p.skip_spaces();
    if !p.rest().is_empty() {
        return Err(p.fail("only spaces after the header dict"));
    }
    let missing = |key: &str| {
        format!(
            "bad header: expected the key '{key}', got none (header {:?})",
            text.trim_end()
        )
    };
    Ok(Header {
        descr: descr.ok_or_else(|| missing("descr"))?.to_owned(),
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// A cursor over the header text.
struct HeaderParser<'a> {
    text: &'a str,
    pos: usize,
    at: usize,
}

impl<'a> HeaderParser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn offset(&self) -> usize {
        self.at + self.pos
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Skips spaces, then consumes `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_spaces();
        let found = self.rest().starts_with(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn expect(&mut self, c: char, expected: &str) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.fail(expected))
        }
    }

    /// The message for finding something other than `expected` at the cursor.
    fn fail(&self, expected: &str) -> String {
        let got = match self.rest().chars().next() {
            Some(c) => format!("{c:?}"),
            None => "the end of the header".to_owned(),
        };
        format!(
            "bad header at byte {}: expected {expected}, got {got} (header {:?})",
            self.offset(),
            self.text.trim_end()
        )
    }

    /// A string in single or double quotes (no escapes: dtypes and keys need none).
    fn string(&mut self, expected: &str) -> std::result::Result<&'a str, String> {
        self.skip_spaces();
        let rest = self.rest();
        let Some(quote) = rest.chars().next().filter(|c| matches!(c, '\'' | '"')) else {
            return Err(self.fail(expected));
        };
        let Some(len) = rest[1..].find(quote) else {
            self.pos = self.text.len();
            return Err(self.fail(&format!("a closing {quote}")));
        };
        self.pos += len + 2;
        Ok(&rest[1..=len])
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        self.skip_spaces();
        for (word, value) in [("True", true), ("False", false)] {
            if self.rest().starts_with(word) {
                self.pos += word.len();
                return Ok(value);
            }
        }
        Err(self.fail("True or False"))
    }

    /// `()`, `(5,)`, `(3, 4)`; Python 2's `3L` is accepted.
    fn shape(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect('(', "a shape tuple such as (3, 4)")?;
        let mut dims = Vec::new();
        while !self.eat(')') {
            dims.push(self.dimension()?);
            self.eat('L');
            if !self.eat(',') {
                self.expect(')', "',' or ')' in the shape")?;
                break;
            }
        }
        Ok(dims)
    }

    fn dimension(&mut self) -> std::result::Result<usize, String> {
        let rest = self.rest();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(self.fail("a dimension size or ')'"));
        }
        let value = rest[..digits].parse().map_err(|_| {
            format!(
                "bad header at byte {}: dimension {} is too large",
                self.offset(),
                &rest[..digits]
            )
        })?;
        self.pos += digits;
        Ok(value)
    }
}

/// The supported element types.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F2,
    F4,
    F8,
    I1,
    I2,
    I4,
    I8,
    U1,
    U2,
    U4,
    U8,
    B1,
}

impl Dtype {
    /// `'<'` is required for multi-byte types; one-byte types also take `'|'`.
    fn parse(descr: &str) -> std::result::Result<Self, String> {
        Ok(match descr {
            "<f4" => Dtype::F4,
            "<f8" => Dtype::F8,
            "<f2" => Dtype::F2,
            "|i1" | "<i1" => Dtype::I1,
            "<i2" => Dtype::I2,
            "<i4" => Dtype::I4,
            "<i8" => Dtype::I8,
            "|u1" | "<u1" => Dtype::U1,
            "<u2" => Dtype::U2,
            "<u4" => Dtype::U4,
            "<u8" => Dtype::U8,
            "|b1" | "<b1" => Dtype::B1,
            _ => {
                // Escaped: the text comes from the file and may hold a newline.
                let descr = descr.escape_debug().to_string();
                let hint = match descr.strip_prefix('>') {
                    Some(rest) => {
                        format!(" (big-endian; convert with a.astype('<{rest}') before saving)")
                    }
                    None => String::new(),
                };
                return Err(format!(
                    "unsupported dtype '{descr}'{hint}; expected one of {SUPPORTED}"
                ));
            }
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::I1 | Dtype::U1 | Dtype::B1 => 1,
            Dtype::F2 | Dtype::I2 | Dtype::U2 => 2,
            Dtype::F4 | Dtype::I4 | Dtype::U4 => 4,
            Dtype::F8 | Dtype::I8 | Dtype::U8 => 8,
        }
    }

    /// Converts `body` (exactly a whole number of elements, starting at byte `at` of the file).
    fn decode(self, body: &[u8], at: usize) -> std::result::Result<NpyData, String> {
        fn le<const N: usize>(body: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
            body.as_chunks::<N>().0.iter().copied()
        }
        let ints = |values: Vec<i64>| Ok(NpyData::Int(values));
        match self {
            Dtype::F4 => Ok(NpyData::Float(le(body).map(f32::from_le_bytes).collect())),
            Dtype::F2 => Ok(NpyData::Float(
                le(body)
                    .map(|b| crate::checkpoint::f16_to_f32(u16::from_le_bytes(b)))
                    .collect(),
            )),
            Dtype::F8 => Ok(NpyData::Float(
                le(body).map(|b| f64::from_le_bytes(b) as f32).collect(),
            )),
            Dtype::I1 => ints(le(body).map(|b| i8::from_le_bytes(b).into()).collect()),
            Dtype::I2 => ints(le(body).map(|b| i16::from_le_bytes(b).into()).collect()),
            Dtype::I4 => ints(le(body).map(|b| i32::from_le_bytes(b).into()).collect()),
            Dtype::I8 => ints(le(body).map(i64::from_le_bytes).collect()),
            Dtype::U1 => ints(body.iter().map(|&b| b.into()).collect()),
            Dtype::U2 => ints(le(body).map(|b| u16::from_le_bytes(b).into()).collect()),
            Dtype::U4 => ints(le(body).map(|b| u32::from_le_bytes(b).into()).collect()),
            Dtype::U8 => le(body)
                .enumerate()
                .map(|(i, b)| {
                    let value = u64::from_le_bytes(b);
                    i64::try_from(value).map_err(|_| {
                        format!(
                            "element {i} at byte {}: expected a uint64 value up to {}, got {value}",
                            at + 8 * i,
                            i64::MAX
                        )
                    })
                })
                .collect::<std::result::Result<_, _>>()
                .map(NpyData::Int),
            Dtype::B1 => ints(body.iter().map(|&b| i64::from(b != 0)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A version 1.0 file with header `dict` (padded like NumPy) followed by `body`.
    fn npy_bytes(dict: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        let mut header = dict.to_owned();
        let unpadded = 10 + header.len() + 1;
        header.extend(std::iter::repeat_n(
            ' ',
            unpadded.next_multiple_of(64) - unpadded,
        ));
        header.push('\n');
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    fn simple(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        npy_bytes(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
            body,
        )
    }

    fn read_bytes(bytes: &[u8]) -> Result<Npy> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        fs::write(&path, bytes).unwrap();
        read_npy(&path)
    }

    /// The error message without the leading "<path>: ".
    fn error_of(bytes: &[u8]) -> String {
        match read_bytes(bytes).unwrap_err() {
            Error::Format { msg, .. } => msg,
            other => panic!("expected a format error, got {other}"),
        }
    }

    fn fixture(name: &str) -> Npy {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        read_npy(&path).unwrap()
    }

    fn ints(values: &[i64]) -> NpyData {
        NpyData::Int(values.to_vec())
    }

    #[test]
    fn round_trip_keeps_shape_and_values() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![2, 3], vec![5], vec![], vec![0, 4], vec![1, 2, 1, 2]] {
            let n = shape.iter().product::<usize>();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * -0.25 + 1e-3).collect();
            let path = dir.path().join("x.npy");
            write_npy_f32(&path, &shape, &data).unwrap();
            let bytes = fs::read(&path).unwrap();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(bytes[9 + header_len], b'\n');
            let npy = read_npy(&path).unwrap();
            assert_eq!(npy.shape, shape);
            assert_eq!(npy.dtype, "<f4");
            assert_eq!(npy.data, NpyData::Float(data));
        }
    }

    #[test]
    fn writer_formats_the_header_like_numpy() {
        let header = header_v1("<f4", &[5]).unwrap();
        let text = std::str::from_utf8(&header[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"));
        let scalar = header_v1("<f4", &[]).unwrap();
        assert!(
            std::str::from_utf8(&scalar[10..])
                .unwrap()
                .contains("'shape': (), }")
        );
    }

    #[test]
    fn writer_rejects_a_shape_that_does_not_fit_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let err = write_npy_f32(&path, &[2, 3], &[0.0; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write {}: shape [2, 3] does not hold the 5 values given",
                path.display()
            )
        );
        assert!(!path.exists());
    }

    #[test]
    fn reads_every_supported_dtype() {
        let cases: Vec<(&str, Vec<u8>, NpyData)> = vec![
            (
                "<f4",
                [1.5f32, -2.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                NpyData::Float(vec![1.5, -2.0]),
            ),
            (
                "<f8",
                [0.1f64, -3.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                NpyData::Float(vec![0.1, -3.0]),
            ),
            ("|i1", vec![0xff, 0x7f], ints(&[-1, 127])),
            ("<i1", vec![0x80, 0x01], ints(&[-128, 1])),
            ("<i2", vec![0xfe, 0xff, 0x00, 0x01], ints(&[-2, 256])),
            (
                "<i4",
                [-7i32, i32::MAX]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                ints(&[-7, i32::MAX.into()]),
            ),
            (
                "<i8",
                [i64::MIN, 42]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                ints(&[i64::MIN, 42]),
            ),
            ("|u1", vec![0, 255], ints(&[0, 255])),
            (
                "<f2",
                vec![0x00, 0x3c, 0x00, 0xc0],
                NpyData::Float(vec![1.0, -2.0]),
            ),
            ("<u2", vec![0xff, 0xff, 0x01, 0x00], ints(&[65535, 1])),
            (
                "<u4",
                [u32::MAX, 3].iter().flat_map(|v| v.to_le_bytes()).collect(),
                ints(&[u32::MAX.into(), 3]),
            ),
            (
                "<u8",
                [i64::MAX as u64, 9]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                ints(&[i64::MAX, 9]),
            ),
            ("|b1", vec![1, 0], ints(&[1, 0])),
        ];
        for (descr, body, expected) in cases {
            let npy = read_bytes(&simple(descr, "(2,)", &body)).unwrap();
            assert_eq!(npy.shape, [2], "{descr}");
            assert_eq!(npy.dtype, descr);
            assert_eq!(npy.data, expected, "{descr}");
        }
    }

    #[test]
    fn uint64_beyond_i64_is_an_error_at_its_offset() {
        let body: Vec<u8> = [1u64, u64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            error_of(&simple("<u8", "(2,)", &body)),
            "element 1 at byte 136: expected a uint64 value up to 9223372036854775807, \
             got 18446744073709551615"
        );
    }

    #[test]
    fn header_dict_is_parsed_robustly() {
        let body = [0u8, 0, 128, 63];
        let cases = [
            (
                "{'shape': (1,), 'fortran_order': False, 'descr': '<f4'}",
                vec![1],
            ),
            (
                "{ \"descr\" :'<f4','fortran_order':False,'shape':( 1 , ) , }",
                vec![1],
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 1L)}",
                vec![1, 1],
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                vec![],
            ),
        ];
        for (dict, shape) in cases {
            let npy = read_bytes(&npy_bytes(dict, &body)).unwrap();
            assert_eq!(npy.shape, shape, "{dict}");
            assert_eq!(npy.data, NpyData::Float(vec![1.0]));
        }
    }

    #[test]
    fn zero_sized_dimension_has_no_data() {
        let npy = read_bytes(&simple("<i4", "(3, 0)", &[])).unwrap();
        assert_eq!(npy.shape, [3, 0]);
        assert_eq!(npy.data, ints(&[]));
    }

    #[test]
    fn version_2_header_is_read() {
        let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&[5, 0, 0xfb, 0xff]);
        let npy = read_bytes(&bytes).unwrap();
        assert_eq!(npy.data, ints(&[5, -5]));
    }

    #[test]
    fn bad_magic() {
        assert_eq!(
            error_of(b"PK\x03\x04rest"),
            "expected the .npy magic \"\\x93NUMPY\" at byte 0, got \"PK\\x03\\x04re\""
        );
    }

    #[test]
    fn unsupported_version() {
        let mut bytes = simple("<f4", "()", &[0; 4]);
        bytes[6] = 4;
        assert_eq!(
            error_of(&bytes),
            "unsupported .npy version 4.0 at byte 6; expected 1.0, 2.0 or 3.0"
        );
    }

    #[test]
    fn truncated_header() {
        let bytes = simple("<f4", "()", &[0; 4]);
        assert_eq!(
            error_of(&bytes[..7]),
            "file is truncated: expected the version at byte 6, but the file has 7 bytes"
        );
        assert_eq!(
            error_of(&bytes[..9]),
            "file is truncated: expected the header length at byte 8, but the file has 9 bytes"
        );
        assert_eq!(
            error_of(&bytes[..40]),
            "file is truncated: expected the 118-byte header at byte 10, but the file has 40 bytes"
        );
    }

    #[test]
    fn bad_header_dicts() {
        let cases = [
            (
                "'descr': '<f4'}",
                "bad header at byte 10: expected '{' opening the header dict, got '\\''",
            ),
            (
                "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}",
                "bad header at byte 19: expected ':' after the key, got '\\''",
            ),
            (
                "{'descr': <f4, 'fortran_order': False, 'shape': (2,)}",
                "bad header at byte 20: expected a quoted dtype such as '<f4', got '<'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
                "bad header at byte 44: expected True or False, got '0'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}",
                "bad header at byte 60: expected a shape tuple such as (3, 4), got '['",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x)}",
                "bad header at byte 64: expected a dimension size or ')', got 'x'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}",
                "bad header at byte 65: expected ',' or '}' after a value, got '\\''",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk",
                "bad header at byte 66: expected only spaces after the header dict, got 'j'",
            ),
            (
                "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
                "bad header at byte 20: expected ':' after the key, got '<'",
            ),
        ];
        for (dict, expected) in cases {
            let msg = error_of(&npy_bytes(dict, &[0; 8]));
            assert!(
                msg.starts_with(expected),
                "{dict}\n  got: {msg}\n want: {expected}"
            );
            assert!(msg.contains(" (header \""), "{msg}");
        }
    }

    #[test]
    fn header_keys_are_checked() {
        let unknown = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}";
        assert_eq!(
            error_of(&npy_bytes(unknown, &[0; 8])),
            "bad header at byte 66: expected the key 'descr', 'fortran_order' or 'shape', got 'x'"
        );
        let twice = "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}";
        assert_eq!(
            error_of(&npy_bytes(twice, &[0; 8])),
            "bad header at byte 27: key 'descr' appears twice"
        );
        let missing = "{'descr': '<f4', 'fortran_order': False}";
        assert!(
            error_of(&npy_bytes(missing, &[0; 8]))
                .starts_with("bad header: expected the key 'shape', got none (header \"{'descr'")
        );
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}";
        assert_eq!(
            error_of(&npy_bytes(huge, &[])),
            "bad header at byte 61: dimension 99999999999999999999999 is too large"
        );
        let overflow =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}";
        assert_eq!(
            error_of(&npy_bytes(overflow, &[])),
            "shape [4294967296, 4294967296] is too large to address"
        );
    }

    #[test]
    fn fortran_order_is_rejected_with_a_fix() {
        let bytes = npy_bytes(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &[0; 4],
        );
        assert_eq!(
            error_of(&bytes),
            "fortran_order is True, expected C order; save the array with \
             np.save(path, np.ascontiguousarray(a))"
        );
    }

    #[test]
    fn unsupported_dtypes_are_named() {
        for descr in ["<c8", "|O", "<U3", "|S4", "<e2", "|f4", "=f4"] {
            assert_eq!(
                error_of(&simple(descr, "(1,)", &[0; 4])),
                format!(
                    "unsupported dtype '{descr}'; expected one of <f2, <f4, <f8, |i1, <i2, <i4, \
                     <i8, |u1, <u2, <u4, <u8, |b1"
                )
            );
        }
    }

    #[test]
    fn big_endian_is_rejected_with_a_fix() {
        assert_eq!(
            error_of(&simple(">f4", "(1,)", &[0; 4])),
            "unsupported dtype '>f4' (big-endian; convert with a.astype('<f4') before saving); \
             expected one of <f2, <f4, <f8, |i1, <i2, <i4, <i8, |u1, <u2, <u4, <u8, |b1"
        );
    }

    #[test]
    fn truncated_body() {
        assert_eq!(
            error_of(&simple("<f4", "(2, 3)", &[0; 20])),
            "data is truncated: shape [2, 3] of '<f4' needs 24 bytes from byte 128, got 20"
        );
    }

    #[test]
    fn extra_bytes_after_the_body() {
        assert_eq!(
            error_of(&simple("<i2", "(2,)", &[0; 7])),
            "3 unexpected bytes after the data at byte 132: shape [2] of '<i2' needs exactly 4 \
             bytes from byte 128"
        );
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_npy(Path::new("/no/such/file.npy")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().starts_with("/no/such/file.npy: "), "{err}");
    }

    #[test]
    fn reads_files_written_by_numpy() {
        let f32_2x3 = fixture("f32_2x3.npy");
        assert_eq!(
            (f32_2x3.shape.as_slice(), f32_2x3.dtype.as_str()),
            (&[2, 3][..], "<f4")
        );
        assert_eq!(
            f32_2x3.data,
            NpyData::Float(vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
        );
        let f64 = fixture("f64.npy");
        assert_eq!(f64.shape, [3]);
        assert_eq!(f64.data, NpyData::Float(vec![1.5, -2.25, 1e10]));
        assert_eq!(fixture("i64.npy").data, ints(&[-3, 0, 7, 1 << 40]));
        let u8 = fixture("u8.npy");
        assert_eq!((u8.dtype.as_str(), u8.data), ("|u1", ints(&[0, 255, 7])));
        let i32 = fixture("i32_2x2.npy");
        assert_eq!(i32.shape, [2, 2]);
        assert_eq!(i32.data, ints(&[-1, 2, 3, -(1 << 31)]));
        let bool = fixture("bool.npy");
        assert_eq!((bool.dtype.as_str(), bool.data), ("|b1", ints(&[1, 0, 1])));
        let scalar = fixture("scalar_f32.npy");
        assert!(scalar.shape.is_empty());
        assert_eq!(scalar.data, NpyData::Float(vec![3.25]));
        let empty = fixture("empty_0x3.npy");
        assert_eq!(
            (empty.shape, empty.data),
            (vec![0, 3], NpyData::Float(vec![]))
        );
        assert_eq!(fixture("v2_f32.npy").data, NpyData::Float(vec![1.0, 2.0]));
        assert_eq!(fixture("v3_i16.npy").data, ints(&[-5, 300]));
    }

    #[test]
    fn numpy_fortran_file_is_rejected() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fortran_f32.npy");
        let err = read_npy(&path).unwrap_err();
        assert!(err.to_string().contains("np.ascontiguousarray"), "{err}");
    }

    #[test]
    fn rows_read_at_their_offset_equal_those_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let body: Vec<u8> = (0..5 * 3 * 2)
            .flat_map(|v: i16| (v - 7).to_le_bytes())
            .collect();
        fs::write(&path, simple("<i2", "(5, 3, 2)", &body)).unwrap();
        let whole = read_npy(&path).unwrap();
        let NpyData::Int(all) = &whole.data else {
            panic!("ints")
        };
        let (part, n) = read_npy_rows(&path, |n| n - 3..n - 1).unwrap();
        assert_eq!(n, 5);
        assert_eq!(part.shape, [2, 3, 2]);
        assert_eq!(part.data, NpyData::Int(all[12..24].to_vec()));
        let (none, _) = read_npy_rows(&path, |_| 5..5).unwrap();
        assert_eq!(
            (none.shape, none.data),
            (vec![0, 3, 2], NpyData::Int(vec![]))
        );
    }

    #[test]
    fn rows_of_a_file_larger_than_memory_read_only_those_rows() {
        // 2^21 rows of 4096 f32: a 32 GiB sparse file, of which 2 rows are read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.npy");
        let header = header_v1("<f4", &[1 << 21, 4096]).unwrap();
        let row = 4096 * 4;
        let f = fs::File::create(&path).unwrap();
        f.set_len((header.len() + (1 << 21) * row) as u64).unwrap();
        drop(f);
        let mut bytes = fs::OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::{Seek, SeekFrom, Write};
        bytes.write_all(&header).unwrap();
        bytes
            .seek(SeekFrom::Start((header.len() + 1_000_001 * row) as u64))
            .unwrap();
        bytes.write_all(&1.5f32.to_le_bytes()).unwrap();
        drop(bytes);
        let (part, n) = read_npy_rows(&path, |_| 1_000_000..1_000_002).unwrap();
        assert_eq!((n, part.shape.as_slice()), (1 << 21, &[2, 4096][..]));
        let NpyData::Float(v) = part.data else {
            panic!("floats")
        };
        assert_eq!((v[4096], v.iter().sum::<f32>()), (1.5, 1.5));
    }

    #[test]
    fn rows_of_a_truncated_file_are_refused_as_the_whole_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        fs::write(&path, simple("<f4", "(4, 2)", &[0; 28])).unwrap();
        let e = read_npy_rows(&path, |_| 0..1).unwrap_err().to_string();
        let whole = read_npy(&path).unwrap_err().to_string();
        assert_eq!(e, whole);
        assert!(
            e.contains("data is truncated: shape [4, 2] of '<f4' needs 32 bytes"),
            "{e}"
        );
        fs::write(&path, simple("<f4", "()", &[0; 4])).unwrap();
        let e = read_npy_rows(&path, |_| 0..0).unwrap_err().to_string();
        assert!(e.ends_with("is a 0-d array; expected rows (N, …)"), "{e}");
    }
}
