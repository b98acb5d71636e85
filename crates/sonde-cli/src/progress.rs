//! Progress bars on standard error (bytes, rate, ETA) for runs that last over a
//! second on a terminal; hidden otherwise, and never on standard output.

use std::io::{IsTerminal as _, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A run shows its progress once it has lasted this long.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A byte progress bar, drawn on standard error once its run has lasted
/// [`SHOW_AFTER`], when standard error is a terminal.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    drawable: bool,
    shown: AtomicBool,
}

impl Progress {
    /// A bar for `total` bytes (0 when not known yet), its line starting with `what`.
    pub fn bytes(what: &str, total: u64) -> Self {
        Self::new(
            what,
            total,
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
    }

    /// A bar for `total` things called `unit` (`sessions`), its line starting with
    /// `what`.
    pub fn count(what: &str, unit: &str, total: u64) -> Self {
        Self::new(
            what,
            total,
            &format!(
                "{{prefix}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
            ),
        )
    }

    fn new(what: &str, total: u64, template: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(what.to_owned());
        Self {
            bar,
            started: Instant::now(),
            drawable: std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
        }
    }

    /// Moves the bar to `done` of `total` bytes, with `message` after it.
    pub fn set(&self, done: u64, total: u64, message: impl FnOnce() -> String) {
        if !self.drawable {
            return;
        }
        if !self.shown.load(Ordering::Relaxed) {
            if self.started.elapsed() < SHOW_AFTER {
                return;
            }
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_length(total);
        self.bar.set_position(done);
        self.bar.set_message(message());
    }

    /// Moves the bar `bytes` on.
    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
        if self.drawable
            && !self.shown.load(Ordering::Relaxed)
            && self.started.elapsed() >= SHOW_AFTER
        {
            self.shown.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// A reader that moves a [`Progress`] on by the bytes read through it.
pub struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R> Counted<R> {
    /// `inner`, counted on `progress`.
    pub fn new(inner: R, progress: Arc<Progress>) -> Self {
        Self { inner, progress }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
