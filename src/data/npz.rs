//! NumPy `.npz` archives (`np.savez`, `np.savez_compressed`, Keras' `mnist.npz`): a zip file of
//! `.npy` files, stored or deflated, one per named array (`x_train.npy` is the array `x_train`).

use crate::data::npy::{Npy, parse_npy};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest array member we unpack: 4 GiB.
const MAX_MEMBER: u64 = 1 << 32;

/// Reads every array of the `.npz` file at `path`, by name.
///
/// # Errors
/// As [`parse_npz`], and a file that cannot be read.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Npy>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npz(&bytes, path)
}

/// The arrays of an `.npz` archive held in `bytes`; `path` goes into error messages, which name the
/// member as `path[name.npy]`.
///
/// # Errors
/// Not a zip archive; a member that is not a `.npy` file, cannot be unpacked, is larger than 4 GiB
/// or does not parse; no arrays at all.
pub fn parse_npz(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Npy>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        Error::format(
            path,
            format!(
                "not an .npz archive (a zip of .npy files): {}",
                e.to_string().escape_debug()
            ),
        )
    })?;
    let mut arrays = BTreeMap::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| {
            Error::format(
                path,
                format!("member {i}: {}", e.to_string().escape_debug()),
            )
        })?;
        let name = member
            .name()
            .map_err(|e| {
                Error::format(
                    path,
                    format!(
                        "member {i} has an unreadable name: {}",
                        e.to_string().escape_debug()
                    ),
                )
            })?
            .to_string();
        let shown = PathBuf::from(format!("{}[{}]", path.display(), name.escape_debug()));
        let Some(array) = name.strip_suffix(".npy") else {
            return Err(Error::format(
                shown,
                "is not an .npy file; an .npz holds only .npy arrays",
            ));
        };
        if member.size() > MAX_MEMBER {
            return Err(Error::format(
                shown,
                format!("unpacks to {} bytes, more than 4 GiB", member.size()),
            ));
        }
        let mut npy = Vec::with_capacity(member.size() as usize);
        (&mut member)
            .take(MAX_MEMBER + 1)
            .read_to_end(&mut npy)
            .map_err(|e| {
                Error::format(
                    &shown,
                    format!("cannot be unpacked: {}", e.to_string().escape_debug()),
                )
            })?;
        arrays.insert(array.to_string(), parse_npy(&npy, &shown)?);
    }
    if arrays.is_empty() {
        return Err(Error::format(path, "holds no arrays"));
    }
    Ok(arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::NpyData;
    use std::io::Write;

    /// An archive of `(name, bytes)` members, deflated or stored.
    fn zip_of(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        for (name, bytes) in members {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        crate::data::npy::write_npy_f32(&p, shape, data).unwrap();
        std::fs::read(p).unwrap()
    }

    #[test]
    fn stored_and_deflated_members_are_read_by_name() {
        for deflate in [false, true] {
            let bytes = zip_of(
                &[
                    ("x.npy", npy_f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
                    ("y.npy", npy_f32(&[2], &[5.0, 6.0])),
                ],
                deflate,
            );
            let a = parse_npz(&bytes, Path::new("d.npz")).unwrap();
            assert_eq!(a.keys().collect::<Vec<_>>(), ["x", "y"]);
            assert_eq!(a["x"].shape, [2, 2]);
            assert_eq!(a["y"].data, NpyData::Float(vec![5.0, 6.0]));
        }
    }

    #[test]
    fn errors_name_the_archive_and_the_member() {
        let p = Path::new("d.npz");
        let e = parse_npz(b"not a zip", p).unwrap_err().to_string();
        assert!(e.starts_with("d.npz: not an .npz archive"), "{e}");
        let e = parse_npz(&zip_of(&[("notes.txt", b"hi".to_vec())], false), p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "d.npz[notes.txt]: is not an .npy file; an .npz holds only .npy arrays"
        );
        let e = parse_npz(&zip_of(&[("x.npy", b"\x93NUMPY".to_vec())], true), p)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.npz[x.npy]: "), "{e}");
        let e = parse_npz(&zip_of(&[], false), p).unwrap_err().to_string();
        assert_eq!(e, "d.npz: holds no arrays");
    }
}
