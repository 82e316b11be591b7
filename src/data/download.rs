//! Downloading a dataset's files over HTTP(S) and checking their MD5 sums.
//!
//! Each file is fetched from `base_url + name` into memory (at most 256 MiB), its MD5 compared
//! with the published one, and only then written to `dest/name` atomically: an interrupted or
//! corrupt download never leaves a file under the final name. A file already present with the
//! right sum is not fetched again; one with a wrong sum is replaced.

use std::fs;
use std::io::{self, IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::{Digest, Md5};

use crate::data::atomic::atomic_write;
use crate::data::find::DatasetInfo;
use crate::error::{Error, Result};

const MAX_BYTES: u64 = 256 << 20;
const BAR_TEMPLATE: &str = "{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

/// Downloads the four files of `info` from `base_url` (normally `info.mirror`) into `dest`.
///
/// A progress bar goes to stdout when `progress` is true and stdout is a terminal.
///
/// # Errors
///
/// As [`download_files`].
pub fn download(info: &DatasetInfo, base_url: &str, dest: &Path, progress: bool) -> Result<()> {
    download_files(&info.files, base_url, dest, progress)
}

/// Downloads each `(name, md5 hex)` of `files` from `base_url` + name into `dest`, creating it.
///
/// # Errors
///
/// [`Error::Download`] (naming the URL) for an HTTP error status, a network failure, a body over
/// 256 MiB or an MD5 mismatch; [`Error::Io`] if `dest` or a file in it cannot be read or written.
/// Files completed before the error stay in place.
pub fn download_files(
    files: &[(&str, &str)],
    base_url: &str,
    dest: &Path,
    progress: bool,
) -> Result<()> {
    fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let show = progress && io::stdout().is_terminal();
    for &(name, md5) in files {
        let target = dest.join(name);
        if has_md5(&target, md5)? {
            continue;
        }
        let url = format!("{}/{name}", base_url.trim_end_matches('/'));
        let bytes = fetch(&agent, &url, name, show)?;
        let got = md5_hex(&bytes);
        if got != md5 {
            return Err(Error::Download {
                url,
                msg: format!(
                    "expected md5 {md5}, got {got} for {} bytes; {} was not written",
                    bytes.len(),
                    target.display()
                ),
            });
        }
        atomic_write(&target, &bytes)?;
    }
    Ok(())
}

/// Whether `path` exists with MD5 `md5`.
fn has_md5(path: &Path, md5: &str) -> Result<bool> {
    match fs::read(path) {
        Ok(bytes) => Ok(md5_hex(&bytes) == md5),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The MD5 of `bytes` as 32 lowercase hex digits.
fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The body of a GET of `url`, shown as a bar labelled `name` if `show`.
fn fetch(agent: &ureq::Agent, url: &str, name: &str, show: bool) -> Result<Vec<u8>> {
    let fail = |msg: String| Error::Download {
        url: url.to_owned(),
        msg,
    };
    let response = agent.get(url).call().map_err(|e| {
        fail(match e {
            ureq::Error::StatusCode(code) => format!("expected HTTP status 200, got {code}"),
            other => other.to_string(),
        })
    })?;
    let body = response.into_body();
    let bar = progress_bar(body.content_length(), name, show);
    let mut bytes = Vec::new();
    bar.wrap_read(body.into_with_config().limit(MAX_BYTES).reader())
        .read_to_end(&mut bytes)
        .map_err(|e| {
            fail(format!(
                "reading the body failed after {} bytes: {e}",
                bytes.len()
            ))
        })?;
    bar.finish();
    Ok(bytes)
}

/// A bytes / rate / ETA bar on stdout, or a hidden one.
fn progress_bar(len: Option<u64>, name: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stdout());
    let style =
        ProgressStyle::with_template(BAR_TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(name.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::thread::{self, JoinHandle};
    use std::time::Instant;

    /// Serves `files` (URL path → body; anything else is a 404) on 127.0.0.1 for `requests`
    /// connections or 10 seconds, whichever ends first. Returns the base URL and a handle
    /// yielding the paths requested.
    fn serve(
        files: Vec<(&'static str, Vec<u8>)>,
        requests: usize,
    ) -> (String, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/data/", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            while seen.len() < requests && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => seen.push(answer(stream, &files)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept failed: {e}"),
                }
            }
            seen
        });
        (base, handle)
    }

    /// Reads one request head from `stream` and answers it; returns the requested path.
    fn answer(mut stream: TcpStream, files: &[(&str, Vec<u8>)]) -> String {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let path = String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (status, body) = match files.iter().find(|(p, _)| *p == path) {
            Some((_, body)) => ("200 OK", body.as_slice()),
            None => ("404 Not Found", &b"no such file"[..]),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(body);
        path
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn md5_matches_known_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
    }

    #[test]
    fn downloads_and_verifies_every_file() {
        let a = vec![7u8; 3000];
        let b = b"labels".to_vec();
        let (md5_a, md5_b) = (md5_hex(&a), md5_hex(&b));
        let (base, server) = serve(
            vec![("/data/a.gz", a.clone()), ("/data/b.gz", b.clone())],
            2,
        );
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("new/dir");
        download_files(&[("a.gz", &md5_a), ("b.gz", &md5_b)], &base, &dest, true).unwrap();
        assert_eq!(server.join().unwrap(), ["/data/a.gz", "/data/b.gz"]);
        assert_eq!(fs::read(dest.join("a.gz")).unwrap(), a);
        assert_eq!(fs::read(dest.join("b.gz")).unwrap(), b);
        assert_eq!(names_in(&dest), ["a.gz", "b.gz"]);
    }

    #[test]
    fn base_url_without_slash_is_joined() {
        let (base, server) = serve(vec![("/data/x", b"x".to_vec())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let md5 = md5_hex(b"x");
        download_files(
            &[("x", &md5)],
            base.trim_end_matches('/'),
            tmp.path(),
            false,
        )
        .unwrap();
        assert_eq!(server.join().unwrap(), ["/data/x"]);
    }

    #[test]
    fn http_404_names_status_and_url() {
        let (base, server) = serve(vec![], 1);
        let tmp = tempfile::tempdir().unwrap();
        let err = download_files(&[("gone.gz", "0")], &base, tmp.path(), false).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            format!("download of {base}gone.gz failed: expected HTTP status 200, got 404")
        );
        assert!(names_in(tmp.path()).is_empty());
    }

    #[test]
    fn wrong_checksum_leaves_nothing_under_the_final_name() {
        let (base, server) = serve(vec![("/data/a.gz", b"tampered".to_vec())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let want = "8d4fb7e6c68d591d4c3dfef9ec88bf0d";
        let err = download_files(&[("a.gz", want)], &base, tmp.path(), false).unwrap_err();
        server.join().unwrap();
        let target: PathBuf = tmp.path().join("a.gz");
        assert_eq!(
            err.to_string(),
            format!(
                "download of {base}a.gz failed: expected md5 {want}, got {} for 8 bytes; {} was \
                 not written",
                md5_hex(b"tampered"),
                target.display()
            )
        );
        assert!(names_in(tmp.path()).is_empty());
    }

    #[test]
    fn files_present_with_the_right_sum_are_skipped() {
        let (good, stale) = (b"good".to_vec(), b"fresh".to_vec());
        let (base, server) = serve(vec![("/data/stale", stale.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("good"), &good).unwrap();
        fs::write(tmp.path().join("stale"), b"half a fi").unwrap();
        let files = [("good", md5_hex(&good)), ("stale", md5_hex(&stale))];
        let files: Vec<(&str, &str)> = files.iter().map(|(n, m)| (*n, m.as_str())).collect();
        download_files(&files, &base, tmp.path(), false).unwrap();
        assert_eq!(server.join().unwrap(), ["/data/stale"]);
        assert_eq!(fs::read(tmp.path().join("stale")).unwrap(), stale);
        assert_eq!(names_in(tmp.path()), ["good", "stale"]);
    }

    #[test]
    fn unreachable_server_is_a_download_error() {
        // Bind and drop a listener to get a port nothing listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tmp = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{port}/");
        let err = download_files(&[("a", "0")], &base, tmp.path(), false).unwrap_err();
        assert!(
            matches!(&err, Error::Download { url, .. } if *url == format!("{base}a")),
            "{err}"
        );
    }
}
