//! Progress of a training epoch: a live bar on a terminal, a few plain lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Reports batches done, samples per second, the running loss and the time left.
pub struct EpochProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    epoch: usize,
    epochs: usize,
    batch_size: usize,
    started: Instant,
    next_line: usize,
}

impl EpochProgress {
    /// A bar when stdout is a terminal; otherwise a plain line at each quarter (none if `quiet`).
    pub fn new(epoch: usize, epochs: usize, batch_size: usize, quiet: bool) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{epoch}/{epochs}"));
            b
        });
        EpochProgress {
            bar,
            plain: !quiet && !terminal,
            epoch,
            epochs,
            batch_size,
            started: Instant::now(),
            next_line: 1,
        }
    }

    /// After batch `done` of `total`, with the mean loss so far.
    pub fn update(&mut self, done: usize, total: usize, loss: f64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = (done * self.batch_size) as f64 / secs;
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
            b.set_message(format!("{rate:.0} samples/s  loss {loss:.4}"));
        } else if self.plain && done * 4 >= self.next_line * total && done < total {
            let eta = secs / done as f64 * (total - done) as f64;
            println!(
                "  epoch {}/{}: {done}/{total} batches, {rate:.0} samples/s, loss {loss:.4}, ETA {eta:.0} s",
                self.epoch, self.epochs
            );
            self.next_line = done * 4 / total + 1;
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
