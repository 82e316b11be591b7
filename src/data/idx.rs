//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! ```text
//! byte 0, 1   0x00 0x00
//! byte 2      element type: 0x08 = unsigned byte (the only one read here)
//! byte 3      number of dimensions d, 1..=4
//! byte 4      d sizes, u32 big-endian each
//! then        product(sizes) bytes, row-major, nothing after them
//! ```
//!
//! As a big-endian u32 the first four bytes are the "magic number": 2049 (0x801) for a labels file
//! (d = 1), 2051 (0x803) for an images file (d = 3: count × rows × cols). A file starting with
//! the gzip magic 0x1f 0x8b is decompressed first, whatever its name; byte offsets in messages
//! then count in the decompressed data.

use std::fs;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// The dimension sizes, 1 to 4 of them.
    pub dims: Vec<usize>,
    /// The `product(dims)` elements, row-major.
    pub data: Vec<u8>,
}

/// Reads the IDX file at `path`, decompressing it if it is gzip.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] if the gzip stream is corrupt, the
/// magic or element type is not the one above, or the data is shorter or longer than
/// `product(dims)` bytes.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_idx(raw, path)
}

/// Parses the bytes of an IDX file (raw or gzip) as [`read_idx`] does; `name` (usually the path)
/// goes into error messages.
///
/// # Errors
///
/// As [`read_idx`], except [`Error::Io`].
pub fn parse_idx(raw: Vec<u8>, name: &Path) -> Result<Idx> {
    let gzipped = raw.starts_with(&GZIP_MAGIC);
    let bytes = if gzipped { gunzip(&raw, name)? } else { raw };
    check_idx(bytes).map_err(|msg| {
        let note = if gzipped {
            " (offsets in the decompressed data)"
        } else {
            ""
        };
        Error::format(name, format!("{msg}{note}"))
    })
}

/// Reads an images file: magic 2051, dimensions count × rows × cols.
///
/// Returns `(count, rows, cols, pixels)`.
///
/// # Errors
///
/// As [`read_idx`], and [`Error::Format`] if the file does not have 3 dimensions.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let idx = read_idx(path)?;
    match idx.dims[..] {
        [count, rows, cols] => Ok((count, rows, cols, idx.data)),
        _ => Err(wrong_kind(path, "images", 3, &idx.dims)),
    }
}

/// Reads a labels file: magic 2049, one dimension.
///
/// # Errors
///
/// As [`read_idx`], and [`Error::Format`] if the file does not have 1 dimension.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let idx = read_idx(path)?;
    match idx.dims[..] {
        [_] => Ok(idx.data),
        _ => Err(wrong_kind(path, "labels", 1, &idx.dims)),
    }
}

/// Rows `pick(count)` of an images file, read as [`read_idx_rows`] reads them: `(count, rows,
/// cols, the rows' pixels)`.
///
/// # Errors
/// As [`read_images`].
pub fn read_images_rows(
    path: &Path,
    pick: impl FnOnce(usize) -> std::ops::Range<usize>,
) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (idx, count) = read_idx_rows(path, pick)?;
    match idx.dims[..] {
        [_, rows, cols] => Ok((count, rows, cols, idx.data)),
        _ => Err(wrong_kind(path, "images", 3, &idx.dims)),
    }
}

/// Labels `pick(count)` of a labels file, read as [`read_idx_rows`] reads them, and `count`.
///
/// # Errors
/// As [`read_labels`].
pub fn read_labels_rows(
    path: &Path,
    pick: impl FnOnce(usize) -> std::ops::Range<usize>,
) -> Result<(Vec<u8>, usize)> {
    let (idx, count) = read_idx_rows(path, pick)?;
    match idx.dims[..] {
        [_] => Ok((idx.data, count)),
        _ => Err(wrong_kind(path, "labels", 1, &idx.dims)),
    }
}

/// The error for an IDX file with `dims` where one with `want` dimensions was needed.
fn wrong_kind(path: &Path, expected: &str, want: usize, dims: &[usize]) -> Error {
    let got = match dims.len() {
        1 => "a labels file",
        3 => "an images file",
        _ => "an IDX file",
    };
    Error::format(
        path,
        format!(
            "expected an IDX {expected} file (magic {}, {want} dimension(s)), got {got} (magic {}, \
             dims {dims:?})",
            magic(want),
            magic(dims.len())
        ),
    )
}

/// The magic number of an unsigned-byte IDX file with `ndims` dimensions.
fn magic(ndims: usize) -> usize {
    0x800 + ndims
}

/// Decompresses a whole gzip file.
/// Decompresses at most [`MAX_VALUES`](crate::tensor::MAX_VALUES) elements plus the largest header,
/// so that a small hostile file cannot expand into all of memory.
fn gunzip(raw: &[u8], path: &Path) -> Result<Vec<u8>> {
    let limit = (crate::tensor::MAX_VALUES + 4 + 4 * 255) as u64;
    let mut out = Vec::new();
    MultiGzDecoder::new(raw)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::format(
                path,
                format!(
                    "expected a valid gzip stream (the file starts with 1f 8b), decompression \
                     failed after {} bytes of output: {e}",
                    out.len()
                ),
            )
        })?;
    if out.len() as u64 > limit {
        return Err(Error::format(
            path,
            format!("decompresses to more than {limit} bytes, the most an IDX file may hold here"),
        ));
    }
    Ok(out)
}

/// Checks the header and length; errors are messages without the path.
fn check_idx(mut bytes: Vec<u8>) -> std::result::Result<Idx, String> {
    let (dims, data_at) = header(&bytes)?;
    check_len(&dims, data_at, bytes.len() - data_at)?;
    Ok(Idx {
        dims,
        data: {
            // In place: the header's bytes are removed, the data is not copied to a new buffer.
            bytes.drain(..data_at);
            bytes
        },
    })
}

/// The dimensions and the data's offset, from the first bytes (at least the header).
fn header(bytes: &[u8]) -> std::result::Result<(Vec<usize>, usize), String> {
    let [zero0, zero1, kind, ndims, ..] = bytes[..] else {
        return Err(format!(
            "expected a 4-byte IDX magic, the data has only {} bytes",
            bytes.len()
        ));
    };
    if [zero0, zero1] != [0, 0] {
        return Err(format!(
            "expected the IDX magic to start with bytes 00 00 at byte 0, got {zero0:02x} {zero1:02x}"
        ));
    }
    if kind != UNSIGNED_BYTE {
        return Err(format!(
            "expected element type 0x08 (unsigned byte) at byte 2, got 0x{kind:02x} ({})",
            type_name(kind)
        ));
    }
    let ndims = usize::from(ndims);
    if !(1..=4).contains(&ndims) {
        return Err(format!("expected 1 to 4 dimensions at byte 3, got {ndims}"));
    }
    let data_at = 4 + 4 * ndims;
    let Some(sizes) = bytes.get(4..data_at) else {
        return Err(format!(
            "data is truncated: expected {ndims} dimension sizes at bytes 4..{data_at}, the data \
             has {} bytes",
            bytes.len()
        ));
    };
    let dims = sizes
        .as_chunks::<4>()
        .0
        .iter()
        .map(|&b| u32::from_be_bytes(b) as usize)
        .collect();
    Ok((dims, data_at))
}

/// Checks that `got` bytes of data are exactly what `dims` need.
fn check_len(dims: &[usize], data_at: usize, got: usize) -> std::result::Result<(), String> {
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("dims {dims:?} are too large to address"))?;
    if got < expected {
        return Err(format!(
            "data is truncated: dims {dims:?} need {expected} bytes from byte {data_at}, got {got}"
        ));
    }
    if got > expected {
        return Err(format!(
            "{} unexpected bytes after the data at byte {}: dims {dims:?} need exactly \
             {expected} bytes from byte {data_at}",
            got - expected,
            data_at + expected
        ));
    }
    Ok(())
}

/// Rows `pick(n)` of the IDX file at `path` (`[n, …]`), and `n`. A raw file is read at those
/// rows only; a gzip one is decompressed as a stream that keeps only those rows (the whole file
/// is read, but never held). The returned array has dimensions `[rows, …]`.
///
/// # Errors
/// As [`read_idx`].
pub fn read_idx_rows(
    path: &Path,
    pick: impl FnOnce(usize) -> std::ops::Range<usize>,
) -> Result<(Idx, usize)> {
    use std::io::{BufReader, Seek, SeekFrom};
    let io = |e| Error::io(path, e);
    let mut file = fs::File::open(path).map_err(io)?;
    let mut magic = Vec::new();
    file.by_ref().take(2).read_to_end(&mut magic).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let gzipped = magic == GZIP_MAGIC;
    let fail = |msg: String| {
        let note = if gzipped {
            " (offsets in the decompressed data)"
        } else {
            ""
        };
        Error::format(path, format!("{msg}{note}"))
    };
    let file_len = file.metadata().map_err(io)?.len() as usize;
    let mut stream: Box<dyn Read> = match gzipped {
        true => Box::new(MultiGzDecoder::new(BufReader::new(
            file.try_clone().map_err(io)?,
        ))),
        false => Box::new(file.try_clone().map_err(io)?),
    };
    let gz_err = |e: std::io::Error| {
        fail(format!(
            "expected a valid gzip stream (the file starts with 1f 8b), decompression failed: {e}"
        ))
    };
    // The header: magic, then the sizes (their count is byte 3).
    let mut head = Vec::new();
    let read = |s: &mut Box<dyn Read>, n: usize, into: &mut Vec<u8>| {
        s.take(n as u64).read_to_end(into).map_err(gz_err)
    };
    read(&mut stream, 4, &mut head)?;
    let sizes = 4 * usize::from(head.get(3).copied().unwrap_or(0));
    read(&mut stream, sizes.min(16), &mut head)?;
    let (dims, data_at) = header(&head).map_err(fail)?;
    let n = dims[0];
    let row: usize = dims[1..].iter().product();
    let rows = pick(n);
    assert!(
        rows.start <= rows.end && rows.end <= n,
        "rows within the array"
    );
    if rows.len().saturating_mul(row) > crate::tensor::MAX_VALUES {
        return Err(fail(format!(
            "rows {rows:?} of dims {dims:?} hold more than {} bytes, the most read here",
            crate::tensor::MAX_VALUES
        )));
    }
    let mut data = Vec::new();
    if gzipped {
        let skip = std::io::copy(
            &mut stream.by_ref().take((rows.start * row) as u64),
            &mut std::io::sink(),
        );
        let skipped = skip.map_err(gz_err)? as usize;
        read(&mut stream, rows.len() * row, &mut data)?;
        let rest = std::io::copy(&mut stream, &mut std::io::sink()).map_err(gz_err)? as usize;
        check_len(&dims, data_at, skipped + data.len() + rest).map_err(fail)?;
    } else {
        check_len(&dims, data_at, file_len.saturating_sub(data_at)).map_err(fail)?;
        file.seek(SeekFrom::Start((data_at + rows.start * row) as u64))
            .map_err(io)?;
        read(
            &mut (Box::new(file) as Box<dyn Read>),
            rows.len() * row,
            &mut data,
        )?;
    }
    let mut dims = dims;
    dims[0] = rows.len();
    Ok((Idx { dims, data }, n))
}

/// The IDX name of an element type byte.
fn type_name(kind: u8) -> &'static str {
    match kind {
        0x09 => "signed byte",
        0x0b => "short",
        0x0c => "int",
        0x0d => "float",
        0x0e => "double",
        _ => "not an IDX type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    use std::path::PathBuf;

    fn idx_bytes(kind: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, kind, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(body);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Writes `bytes` to a file in `dir`; the name deliberately says nothing about compression.
    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn message(err: Error) -> String {
        match err {
            Error::Format { msg, .. } => msg,
            other => panic!("expected a format error, got {other}"),
        }
    }

    #[test]
    fn reads_raw_and_gzip_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..12).collect();
        let images = idx_bytes(8, &[2, 2, 3], &pixels);
        let labels = idx_bytes(8, &[2], &[7, 1]);
        for (tag, wrap) in [
            ("raw", <[u8]>::to_vec as fn(&[u8]) -> Vec<u8>),
            ("gz", gzip),
        ] {
            let img_path = file(&dir, &format!("images-{tag}"), &wrap(&images));
            assert_eq!(read_images(&img_path).unwrap(), (2, 2, 3, pixels.clone()));
            let lbl_path = file(&dir, &format!("labels-{tag}.gz"), &wrap(&labels));
            assert_eq!(read_labels(&lbl_path).unwrap(), [7, 1]);
            let idx = read_idx(&img_path).unwrap();
            assert_eq!(idx.dims, [2, 2, 3]);
        }
    }

    #[test]
    fn zero_items_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "empty", &idx_bytes(8, &[0, 28, 28], &[]));
        assert_eq!(read_images(&path).unwrap(), (0, 28, 28, vec![]));
    }

    #[test]
    fn bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "x", b"\x89PNG\r\n");
        let err = read_idx(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: expected the IDX magic to start with bytes 00 00 at byte 0, got 89 50",
                path.display()
            )
        );
        let short = file(&dir, "short", &[0, 0, 8]);
        assert_eq!(
            message(read_idx(&short).unwrap_err()),
            "expected a 4-byte IDX magic, the data has only 3 bytes"
        );
    }

    #[test]
    fn wrong_type_byte_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "floats", &idx_bytes(0x0d, &[1], &[0; 4]));
        assert_eq!(
            message(read_idx(&path).unwrap_err()),
            "expected element type 0x08 (unsigned byte) at byte 2, got 0x0d (float)"
        );
    }

    #[test]
    fn dimension_count_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let none = file(&dir, "none", &[0, 0, 8, 0]);
        assert_eq!(
            message(read_idx(&none).unwrap_err()),
            "expected 1 to 4 dimensions at byte 3, got 0"
        );
        let cut = file(&dir, "cut", &[0, 0, 8, 3, 0, 0, 0, 2, 0]);
        assert_eq!(
            message(read_idx(&cut).unwrap_err()),
            "data is truncated: expected 3 dimension sizes at bytes 4..16, the data has 9 bytes"
        );
    }

    #[test]
    fn truncated_body_gives_expected_and_got() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "t", &idx_bytes(8, &[2, 2, 3], &[0; 10]));
        assert_eq!(
            message(read_idx(&path).unwrap_err()),
            "data is truncated: dims [2, 2, 3] need 12 bytes from byte 16, got 10"
        );
        let gz = file(&dir, "t2", &gzip(&idx_bytes(8, &[5], &[0; 4])));
        assert_eq!(
            message(read_idx(&gz).unwrap_err()),
            "data is truncated: dims [5] need 5 bytes from byte 8, got 4 \
             (offsets in the decompressed data)"
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "t", &idx_bytes(8, &[3], &[1, 2, 3, 4, 5]));
        assert_eq!(
            message(read_idx(&path).unwrap_err()),
            "2 unexpected bytes after the data at byte 11: dims [3] need exactly 3 bytes from byte 8"
        );
    }

    #[test]
    fn labels_given_as_images_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let labels = file(&dir, "labels", &idx_bytes(8, &[2], &[1, 2]));
        assert_eq!(
            message(read_images(&labels).unwrap_err()),
            "expected an IDX images file (magic 2051, 3 dimension(s)), got a labels file \
             (magic 2049, dims [2])"
        );
        let images = file(&dir, "images", &idx_bytes(8, &[1, 1, 1], &[1]));
        assert_eq!(
            message(read_labels(&images).unwrap_err()),
            "expected an IDX labels file (magic 2049, 1 dimension(s)), got an images file \
             (magic 2051, dims [1, 1, 1])"
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 300 MB of zeros compress to about 300 KB: more than any IDX file may hold.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let msg = message(parse_idx(bomb, Path::new("bomb.gz")).unwrap_err());
        assert!(
            msg.starts_with("decompresses to more than 268436480 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_gzip_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = gzip(&idx_bytes(8, &[100], &[42; 100]));
        let cut = file(&dir, "cut.gz", &gz[..gz.len() - 10]);
        let msg = message(read_idx(&cut).unwrap_err());
        assert!(
            msg.starts_with("expected a valid gzip stream (the file starts with 1f 8b)"),
            "{msg}"
        );
        let middle = gz.len() / 2;
        gz[middle] ^= 0xff;
        gz[middle + 1] ^= 0xff;
        let flipped = file(&dir, "flipped.gz", &gz);
        let msg = message(read_idx(&flipped).unwrap_err());
        assert!(msg.contains("decompression failed after"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_labels(Path::new("/no/such/labels")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn rows_raw_or_gzipped_are_those_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..5 * 2 * 3).map(|v| v as u8 * 3).collect();
        let raw = idx_bytes(UNSIGNED_BYTE, &[5, 2, 3], &body);
        for (name, bytes) in [("raw", raw.clone()), ("gz", gzip(&raw))] {
            let path = file(&dir, name, &bytes);
            let (part, n) = read_idx_rows(&path, |n| n - 3..n - 1).unwrap();
            assert_eq!((n, part.dims.as_slice()), (5, &[2, 2, 3][..]), "{name}");
            assert_eq!(part.data, body[12..24], "{name}");
            let (images, _) = (read_images_rows(&path, |_| 0..5).unwrap(), ());
            assert_eq!(images, (5, 2, 3, body.clone()), "{name}");
        }
        let labels = file(
            &dir,
            "labels",
            &idx_bytes(UNSIGNED_BYTE, &[4], &[7, 8, 9, 6]),
        );
        assert_eq!(
            read_labels_rows(&labels, |_| 1..3).unwrap(),
            (vec![8, 9], 4)
        );
        let e = read_labels_rows(&file(&dir, "raw", &raw), |_| 0..1).unwrap_err();
        assert!(message(e).starts_with("expected an IDX labels file"));
    }

    #[test]
    fn rows_of_a_truncated_or_long_file_are_refused_as_the_whole_is() {
        let dir = tempfile::tempdir().unwrap();
        for body in [&[1u8; 5][..], &[1; 7]] {
            let raw = idx_bytes(UNSIGNED_BYTE, &[3, 2], body);
            for (name, bytes) in [("raw", raw.clone()), ("gz", gzip(&raw))] {
                let path = file(&dir, name, &bytes);
                let part = message(read_idx_rows(&path, |_| 0..1).unwrap_err());
                assert_eq!(part, message(read_idx(&path).unwrap_err()), "{name}");
            }
        }
    }
}
