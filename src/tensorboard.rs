//! TensorBoard event files, written by hand: `tensorboard --logdir DIR` shows the run.
//!
//! A file is a sequence of records `[len: u64 LE][masked CRC-32C of len: u32 LE][data][masked
//! CRC-32C of data: u32 LE]`, the mask being `((c >> 15) | (c << 17)) + 0xa282ead8`; each `data` is
//! an `Event` protocol buffer. We write the few fields TensorBoard reads (field numbers from
//! TensorFlow's `event.proto` and `summary.proto`):
//! - `Event`: `wall_time` 1 (double), `step` 2 (int64), `file_version` 3 (string), `summary` 5;
//! - `Summary`: `value` 1 (repeated); `Summary.Value`: `tag` 1, `simple_value` 2 (float), `histo` 5;
//! - `HistogramProto`: `min` 1, `max` 2, `num` 3, `sum` 4, `sum_squares` 5 (doubles),
//!   `bucket_limit` 6 and `bucket` 7 (packed doubles).

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::model::Model;
use crate::train::Observer;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Buckets of a histogram.
const BUCKETS: usize = 30;

/// Appends events to one `events.out.tfevents.*` file in a directory.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
    /// The first write that failed, reported again by [`EventWriter::flush`].
    failed: Option<String>,
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Protocol-buffer encoding of the few wire types we need.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, ((field as u64) << 3) | wire as u64);
    }
    pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn float(out: &mut Vec<u8>, field: u32, v: f32) {
        key(out, field, 5);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        key(out, field, 0);
        varint(out, v as u64);
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub fn doubles(out: &mut Vec<u8>, field: u32, v: &[f64]) {
        let packed: Vec<u8> = v.iter().flat_map(|d| d.to_le_bytes()).collect();
        bytes(out, field, &packed);
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `HistogramProto` of `values`: `BUCKETS` equal buckets between min and max.
fn histogram(values: &[f32]) -> Vec<u8> {
    let (mut lo, mut hi, mut sum, mut sq) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
    for &v in values {
        let v = v as f64;
        lo = lo.min(v);
        hi = hi.max(v);
        sum += v;
        sq += v * v;
    }
    if values.is_empty() {
        (lo, hi) = (0.0, 0.0);
    }
    let width = ((hi - lo) / BUCKETS as f64).max(f64::MIN_POSITIVE);
    let mut counts = vec![0.0; BUCKETS];
    for &v in values {
        let b = (((v as f64 - lo) / width) as usize).min(BUCKETS - 1);
        counts[b] += 1.0;
    }
    let limits: Vec<f64> = (1..=BUCKETS).map(|b| lo + width * b as f64).collect();
    let mut h = Vec::new();
    pb::double(&mut h, 1, lo);
    pb::double(&mut h, 2, hi);
    pb::double(&mut h, 3, values.len() as f64);
    pb::double(&mut h, 4, sum);
    pb::double(&mut h, 5, sq);
    pb::doubles(&mut h, 6, &limits);
    pb::doubles(&mut h, 7, &counts);
    h
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, starting with the file-version event.
    ///
    /// # Errors
    /// The directory or file cannot be created.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!(
            "events.out.tfevents.{}.scratchnet.{}",
            now() as u64,
            std::process::id()
        ));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = EventWriter {
            out: BufWriter::new(file),
            path,
            failed: None,
        };
        let mut event = Vec::new();
        pb::double(&mut event, 1, now());
        pb::bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event)?;
        w.flush()?;
        Ok(w)
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut r = Vec::with_capacity(data.len() + 16);
        r.extend_from_slice(&len);
        r.extend_from_slice(&masked_crc(&len).to_le_bytes());
        r.extend_from_slice(data);
        r.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.out.write_all(&r).map_err(|e| {
            self.failed.get_or_insert(e.to_string());
            Error::io(&self.path, e)
        })
    }

    /// One event at `step` whose summary holds `values` (each an encoded `Summary.Value`).
    fn summary(&mut self, step: u64, values: &[Vec<u8>]) -> Result<()> {
        let mut summary = Vec::new();
        for v in values {
            pb::bytes(&mut summary, 1, v);
        }
        let mut event = Vec::new();
        pb::double(&mut event, 1, now());
        pb::int(&mut event, 2, step as i64);
        pb::bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
        let values: Vec<Vec<u8>> = scalars
            .iter()
            .map(|(tag, v)| {
                let mut value = Vec::new();
                pb::bytes(&mut value, 1, tag.as_bytes());
                pb::float(&mut value, 2, *v as f32);
                value
            })
            .collect();
        self.summary(step, &values)
    }

    /// A histogram of `values` under `tag` at `step`.
    pub fn histogram(&mut self, step: u64, tag: &str, values: &[f32]) -> Result<()> {
        let mut value = Vec::new();
        pb::bytes(&mut value, 1, tag.as_bytes());
        pb::bytes(&mut value, 5, &histogram(values));
        self.summary(step, &[value])
    }

    /// Writes what is buffered to the file (so that TensorBoard sees it while training runs).
    ///
    /// # Errors
    /// This or any earlier write failed.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        match &self.failed {
            Some(e) => Err(Error::format(
                &self.path,
                format!("writing an event failed: {e}"),
            )),
            None => Ok(()),
        }
    }
}

/// An [`Observer`] that sends gradients to TensorBoard: the global L2 norm of all gradients every
/// `every` batches (`grad_norm/batch`), and histograms of every parameter's gradient at each
/// epoch's last batch (`gradients/NAME`). Write errors surface at the writer's next flush.
pub struct GradientLog {
    /// The event file written to.
    pub board: Arc<Mutex<EventWriter>>,
    /// Write scalars every this many batches.
    pub every: usize,
    /// Batches per epoch, to number the steps.
    pub batches_per_epoch: usize,
}

impl Observer for GradientLog {
    fn before_step(&mut self, model: &mut Model, epoch: usize, batch: usize) {
        let last = batch + 1 == self.batches_per_epoch;
        if !batch.is_multiple_of(self.every.max(1)) && !last {
            return;
        }
        let step = (epoch * self.batches_per_epoch + batch + 1) as u64;
        let Ok(mut board) = self.board.lock() else {
            return;
        };
        let mut squares = 0.0f64;
        let mut grads = Vec::new();
        model.net().visit_params("", &mut |name, p| {
            squares += p
                .grad
                .data()
                .iter()
                .map(|g| *g as f64 * *g as f64)
                .sum::<f64>();
            if last {
                grads.push((format!("gradients/{name}"), p.grad.clone()));
            }
        });
        let _ = board.scalars(step, &[("grad_norm/batch", squares.sqrt())]);
        for (tag, g) in grads {
            let _ = board.histogram(step, &tag, g.data());
        }
    }
}

/// Reading event files back (ours: the fields [`EventWriter`] writes), records checked against
/// their CRCs; the tests read what training wrote with it.
pub mod read {
    use super::masked_crc;
    use crate::error::{Error, Result};

    /// A decoded event: step, file version, scalars `(tag, value)`, histograms `(tag, num, sum,
    /// bucket counts)`.
    #[derive(Debug, Default)]
    pub struct Event {
        /// The global step.
        pub step: i64,
        /// The file version, on the first event.
        pub file_version: String,
        /// Scalars as `(tag, value)`.
        pub scalars: Vec<(String, f32)>,
        /// Histograms as `(tag, min, max, bucket counts)`.
        pub histograms: Vec<(String, f64, f64, Vec<f64>)>,
    }

    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= ((byte & 0x7f) as u64).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }

    /// The fields of a message: (field, payload bytes, varint value).
    fn fields(b: &[u8]) -> Option<Vec<(u32, &[u8], u64)>> {
        let mut i = 0;
        let mut out = Vec::new();
        while i < b.len() {
            let key = varint(b, &mut i)?;
            let field = (key >> 3) as u32;
            let n = match key & 7 {
                0 => {
                    out.push((field, &b[0..0], varint(b, &mut i)?));
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => varint(b, &mut i)? as usize,
                _ => return None,
            };
            out.push((field, b.get(i..i.checked_add(n)?)?, 0));
            i += n;
        }
        Some(out)
    }

    fn f64_at(b: &[u8]) -> Option<f64> {
        Some(f64::from_le_bytes(b.try_into().ok()?))
    }

    fn event(data: &[u8]) -> Option<Event> {
        let mut e = Event::default();
        for (f, payload, v) in fields(data)? {
            match f {
                2 => e.step = v as i64,
                3 => e.file_version = String::from_utf8(payload.to_vec()).ok()?,
                5 => {
                    for (_, value, _) in fields(payload)? {
                        let fs = fields(value)?;
                        let tag = String::from_utf8(fs.first()?.1.to_vec()).ok()?;
                        let (kind, body, _) = fs.get(1)?;
                        match kind {
                            2 => e
                                .scalars
                                .push((tag, f32::from_le_bytes((*body).try_into().ok()?))),
                            5 => {
                                let h = fields(body)?;
                                let counts =
                                    h.get(6)?.1.chunks(8).map(f64_at).collect::<Option<_>>()?;
                                e.histograms.push((
                                    tag,
                                    f64_at(h.get(2)?.1)?,
                                    f64_at(h.get(3)?.1)?,
                                    counts,
                                ));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(e)
    }

    /// Every event of an event file's bytes.
    ///
    /// # Errors
    /// A truncated record, a CRC that does not match, or an event we cannot decode.
    pub fn events(bytes: &[u8]) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut i = 0;
        let bad = |i: usize, what: &str| {
            Error::invalid(format!("event file, record at byte {i}: {what}"))
        };
        while i < bytes.len() {
            let word =
                |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(|| bad(i, "truncated"));
            let len_bytes = word(i, 8)?;
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
            if u32::from_le_bytes(word(i + 8, 4)?.try_into().expect("4 bytes"))
                != masked_crc(len_bytes)
            {
                return Err(bad(i, "the length's CRC does not match"));
            }
            let data = word(i + 12, len)?;
            if u32::from_le_bytes(word(i + 12 + len, 4)?.try_into().expect("4 bytes"))
                != masked_crc(data)
            {
                return Err(bad(i, "the data's CRC does not match"));
            }
            out.push(event(data).ok_or_else(|| bad(i, "not an Event we can decode"))?);
            i += 16 + len;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_mask_matches_tensorflow() {
        // TensorFlow's crc32c_test: Mask(Value("foo")) differs from Value and unmasks back;
        // the known CRC-32C of "123456789" is 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let c = crc32c::crc32c(b"foo");
        let unmask = |m: u32| m.wrapping_sub(0xa282_ead8).rotate_left(15);
        assert_eq!(unmask(masked_crc(b"foo")), c);
    }

    #[test]
    fn scalars_and_histograms_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("train/loss", 0.5), ("lr", 0.1)]).unwrap();
        let values: Vec<f32> = (0..100).map(|v| v as f32 / 10.0).collect();
        w.histogram(7, "weights/0.weight", &values).unwrap();
        w.flush().unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let bytes = std::fs::read(w.path()).unwrap();
        let events = read::events(&bytes).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].file_version, "brain.Event:2");
        assert_eq!(events[1].step, 3);
        assert_eq!(
            events[1].scalars,
            [("train/loss".to_string(), 0.5), ("lr".to_string(), 0.1)]
        );
        let (tag, num, sum, counts) = &events[2].histograms[0];
        assert_eq!(
            (events[2].step, tag.as_str(), *num),
            (7, "weights/0.weight", 100.0)
        );
        assert!((sum - 495.0).abs() < 1e-4, "{sum}");
        assert_eq!(counts.len(), BUCKETS);
        assert_eq!(counts.iter().sum::<f64>(), 100.0);

        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        let e = read::events(&flipped).unwrap_err().to_string();
        assert!(e.contains("CRC does not match"), "{e}");
        let e = read::events(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
