//! Helpers shared by the integration tests: running the real binary and writing small data files.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(case)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scratchnet"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scratchnet {args:?} failed: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail: checks exit code 1 (a panic exits 101), no panic text and a
/// one-line message, and returns that message.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "scratchnet {args:?} should fail");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit code (a panic exits 101): {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// An .npy file with any header fields, for writing arrays our writer would refuse to write.
pub fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let fortran = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
        .into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(data);
    bytes
}

/// Class labels as an int64 .npy.
pub fn labels_npy(path: &Path, labels: &[i64]) {
    let data: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<i8", false, &[labels.len()], &data)).unwrap();
}

/// An IDX file of unsigned bytes: magic `0x0000_08_<ndim>`, big-endian dims, then the data.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter()
        .for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
    b.extend_from_slice(data);
    b
}

/// Writes `n` 28×28 images and labels `i % 10` as `{split}-{images,labels}-idx…-ubyte` in `dir`.
pub fn idx_split(dir: &Path, split: &str, n: usize) {
    let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{split}-images-idx3-ubyte")),
        idx_bytes(&[n as u32, 28, 28], &pixels),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{split}-labels-idx1-ubyte")),
        idx_bytes(&[n as u32], &labels),
    )
    .unwrap();
}

/// `n` samples of 4 features and 3 classes that a small network can learn, as `x.npy` and `y.npy`
/// in `dir`; returns the `X.npy:Y.npy` argument for `--data`.
pub fn toy_data(dir: &Path, n: usize) -> String {
    let x: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 7919 % 101) as f32 / 101.0) - 0.5)
        .collect();
    scratchnet::data::npy::write_npy_f32(&dir.join("x.npy"), &[n, 4], &x).unwrap();
    let labels: Vec<i64> = (0..n)
        .map(|i| ((x[i * 4] + x[i * 4 + 1] > 0.0) as i64) + (x[i * 4 + 2] > 0.2) as i64)
        .collect();
    labels_npy(&dir.join("y.npy"), &labels);
    format!(
        "{}:{}",
        dir.join("x.npy").display(),
        dir.join("y.npy").display()
    )
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sends `sig` (e.g. `-INT`) to process `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// One HTTP request over a fresh connection: the status and the body of the answer.
pub fn request(addr: &str, method: &str, path: &str, kind: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) and close before taking all of a long body.
    let _ = s.write_all(body);
    read_response(s)
}

/// The status and body of the answer on `s`, read to its end.
pub fn read_response(mut s: std::net::TcpStream) -> (u16, Vec<u8>) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}
