//! Where a named dataset's four IDX files are, and where they come from.
//!
//! A directory holds a dataset if it has both test files (`t10k-images-idx3-ubyte` and
//! `t10k-labels-idx1-ubyte`, each with or without `.gz`); the train files are optional, the caller
//! splits a test-only directory. The directories are searched in this order:
//!
//! 1. `--data-dir` itself, then `--data-dir/<name>` (if given);
//! 2. `$SCRATCHNET_DATA/<name>`;
//! 3. `/usr/share/datasets/<name>` (Debian's `dataset-fashion-mnist` installs there);
//! 4. `$HOME/.cache/scratchnet/<name>` (where [`cache_dir`] puts it without `$SCRATCHNET_DATA`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A dataset that can be found and downloaded.
#[derive(Debug)]
pub struct DatasetInfo {
    /// The name users type, e.g. `"fashion-mnist"`.
    pub name: &'static str,
    /// `(file name, md5 hex)` of train images, train labels, test images, test labels, as published
    /// on the mirror.
    pub files: [(&'static str, &'static str); 4],
    /// The base URL the file names are appended to.
    pub mirror: &'static str,
    /// How to get the dataset, for "not found" messages.
    pub install_hint: &'static str,
}

static DATASETS: [DatasetInfo; 2] = [
    DatasetInfo {
        name: "fashion-mnist",
        files: [
            (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ],
        mirror: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        install_hint: "apt-get install dataset-fashion-mnist, or scratchnet download fashion-mnist",
    },
    DatasetInfo {
        name: "mnist",
        files: [
            (
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ],
        mirror: "https://ossci-datasets.s3.amazonaws.com/mnist/",
        install_hint: "scratchnet download mnist",
    },
];

const SYSTEM_DIR: &str = "/usr/share/datasets";

/// The dataset called `name`, if it is a known one.
pub fn dataset_info(name: &str) -> Option<&'static DatasetInfo> {
    DATASETS.iter().find(|info| info.name == name)
}

/// The directory holding dataset `name`, searched as the module docs describe.
///
/// # Errors
///
/// [`Error::Invalid`] if `name` is not a known dataset, or if no directory holds its test files
/// (the message lists every directory looked in and how to get the dataset).
pub fn find_dataset(name: &str, data_dir: Option<&Path>) -> Result<PathBuf> {
    let (scratchnet_data, home) = (env_dir("SCRATCHNET_DATA"), env_dir("HOME"));
    let dirs = search_dirs(name, data_dir, scratchnet_data.as_deref(), home.as_deref());
    find_in(name, &dirs)
}

/// The first of `roots` (directories, checked as they are, in order) that holds dataset `name`.
///
/// # Errors
///
/// As [`find_dataset`].
pub fn find_in(name: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let info = known(name)?;
    let tests = &info.files[2..];
    if let Some(dir) = roots.iter().find(|dir| {
        tests
            .iter()
            .all(|(file, _)| dataset_file(dir, file).is_some())
    }) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = roots.iter().map(|d| d.display().to_string()).collect();
    let wanted: Vec<&str> = tests.iter().map(|(file, _)| *file).collect();
    Err(Error::invalid(format!(
        "dataset {name} not found: expected {} (or without .gz) in one of: {}; to get it: {}",
        wanted.join(" and "),
        looked.join(", "),
        info.install_hint
    )))
}

/// The path of `file` in `dir`: `dir/file` if it exists, else `dir/file` without `.gz`, if that
/// exists.
pub fn dataset_file(dir: &Path, file: &str) -> Option<PathBuf> {
    [Some(file), file.strip_suffix(".gz")]
        .into_iter()
        .flatten()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Where `scratchnet download` puts dataset `name`: `$SCRATCHNET_DATA/<name>` if that variable is
/// set, else `$HOME/.cache/scratchnet/<name>` (relative to the current directory without `$HOME`).
pub fn cache_dir(name: &str) -> PathBuf {
    let (scratchnet_data, home) = (env_dir("SCRATCHNET_DATA"), env_dir("HOME"));
    cache_dir_in(name, scratchnet_data.as_deref(), home.as_deref())
}

/// `info` for `name`, or an error listing the known names.
fn known(name: &str) -> Result<&'static DatasetInfo> {
    dataset_info(name).ok_or_else(|| {
        let names: Vec<&str> = DATASETS.iter().map(|info| info.name).collect();
        Error::invalid(format!(
            "unknown dataset '{name}'; expected one of: {}",
            names.join(", ")
        ))
    })
}

/// An environment variable as a path, if set and not empty.
fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn cache_dir_in(name: &str, scratchnet_data: Option<&Path>, home: Option<&Path>) -> PathBuf {
    match scratchnet_data {
        Some(root) => root.join(name),
        None => home_cache(name, home),
    }
}

/// `$HOME/.cache/scratchnet/<name>`, relative to the current directory without `$HOME`.
fn home_cache(name: &str, home: Option<&Path>) -> PathBuf {
    home.unwrap_or(Path::new(""))
        .join(".cache/scratchnet")
        .join(name)
}

/// The search order of the module docs, without repeats.
fn search_dirs(
    name: &str,
    data_dir: Option<&Path>,
    scratchnet_data: Option<&Path>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    let candidates = [
        data_dir.map(Path::to_path_buf),
        data_dir.map(|d| d.join(name)),
        scratchnet_data.map(|d| d.join(name)),
        Some(Path::new(SYSTEM_DIR).join(name)),
        Some(home_cache(name, home)),
    ];
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in candidates.into_iter().flatten() {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for name in names {
            fs::write(dir.join(name), b"").unwrap();
        }
    }

    #[test]
    fn both_datasets_are_known_with_four_files() {
        for name in ["fashion-mnist", "mnist"] {
            let info = dataset_info(name).unwrap();
            assert_eq!(info.name, name);
            let files: Vec<&str> = info.files.iter().map(|(f, _)| *f).collect();
            assert_eq!(
                files,
                [
                    "train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz",
                    "t10k-images-idx3-ubyte.gz",
                    "t10k-labels-idx1-ubyte.gz"
                ]
            );
            for (_, md5) in info.files {
                assert!(md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            assert!(info.mirror.ends_with('/'));
        }
        assert!(dataset_info("cifar10").is_none());
    }

    #[test]
    fn first_directory_with_the_test_files_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = tmp.path().join("empty");
        let partial = tmp.path().join("partial");
        let raw = tmp.path().join("raw");
        let gz = tmp.path().join("gz");
        fs::create_dir_all(&empty).unwrap();
        touch(
            &partial,
            &["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"],
        );
        touch(&raw, &["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]);
        touch(
            &gz,
            &["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        );
        let missing = tmp.path().join("missing");
        let roots = [missing, empty, partial, raw.clone(), gz.clone()];
        assert_eq!(find_in("mnist", &roots).unwrap(), raw);
        assert_eq!(find_in("fashion-mnist", &roots[3..]).unwrap(), raw);
        assert_eq!(find_in("mnist", &roots[4..]).unwrap(), gz);
    }

    #[test]
    fn a_directory_named_like_a_file_does_not_count() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("t10k-images-idx3-ubyte.gz")).unwrap();
        touch(tmp.path(), &["t10k-labels-idx1-ubyte.gz"]);
        assert!(find_in("mnist", &[tmp.path().to_path_buf()]).is_err());
    }

    #[test]
    fn dataset_file_prefers_gz_and_falls_back_to_raw() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), &["a.gz", "a", "b"]);
        assert_eq!(
            dataset_file(tmp.path(), "a.gz"),
            Some(tmp.path().join("a.gz"))
        );
        assert_eq!(dataset_file(tmp.path(), "b.gz"), Some(tmp.path().join("b")));
        assert_eq!(dataset_file(tmp.path(), "c.gz"), None);
        assert_eq!(dataset_file(tmp.path(), "c"), None);
    }

    #[test]
    fn not_found_lists_every_place_and_how_to_get_it() {
        let roots = [PathBuf::from("/x/one"), PathBuf::from("/x/two")];
        assert_eq!(
            find_in("fashion-mnist", &roots).unwrap_err().to_string(),
            "dataset fashion-mnist not found: expected t10k-images-idx3-ubyte.gz and \
             t10k-labels-idx1-ubyte.gz (or without .gz) in one of: /x/one, /x/two; to get it: \
             apt-get install dataset-fashion-mnist, or scratchnet download fashion-mnist"
        );
        assert!(
            find_in("mnist", &roots)
                .unwrap_err()
                .to_string()
                .ends_with("to get it: scratchnet download mnist")
        );
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        assert_eq!(
            find_dataset("cifar", None).unwrap_err().to_string(),
            "unknown dataset 'cifar'; expected one of: fashion-mnist, mnist"
        );
    }

    #[test]
    fn search_order_follows_the_docs() {
        let data = Some(Path::new("/env/data"));
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            search_dirs("mnist", Some(Path::new("/d")), data, home),
            [
                "/d",
                "/d/mnist",
                "/env/data/mnist",
                "/usr/share/datasets/mnist",
                "/home/u/.cache/scratchnet/mnist"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            search_dirs("mnist", None, None, None),
            ["/usr/share/datasets/mnist", ".cache/scratchnet/mnist"].map(PathBuf::from)
        );
        // --data-dir pointing at the same place as $SCRATCHNET_DATA/<name> is looked in once.
        assert_eq!(
            search_dirs("mnist", Some(Path::new("/env/data/mnist")), data, home).len(),
            4
        );
    }

    #[test]
    fn cache_dir_honours_scratchnet_data() {
        let data = Some(Path::new("/env/data"));
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            cache_dir_in("mnist", data, home),
            PathBuf::from("/env/data/mnist")
        );
        assert_eq!(
            cache_dir_in("mnist", None, home),
            PathBuf::from("/home/u/.cache/scratchnet/mnist")
        );
        assert_eq!(
            cache_dir_in("mnist", None, None),
            PathBuf::from(".cache/scratchnet/mnist")
        );
        assert!(cache_dir("mnist").ends_with("mnist"));
    }
}
