//! The sync loop: the files of a source, read from their cursors, into a target.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;

use crate::cursor::Cursor;
use crate::discover::{SourceFile, discover};
use crate::emit::Emitted;
use crate::parser::Parser;
use crate::{Source, SyncError, SyncOptions, SyncProgress, SyncResult, SyncTarget};

/// Records sent to the target at a time.
pub const RECORD_BATCH: usize = 2048;
/// Files whose cursors are saved together (after a flush).
pub const CURSOR_BATCH: usize = 1024;
/// Bytes read from a file at a time.
const READ_CHUNK: usize = 1 << 20;

/// The longest line read: a longer one (a file with no newlines, say) is skipped, with
/// a one-line message naming its file and offset, and never held in memory whole.
/// Transcript lines hold one message each; the largest seen are a few MiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// A file found, and what the run does with it.
enum Plan {
    /// Unchanged since its cursor: not opened.
    Unchanged,
    /// Its metadata could not be read.
    Unreadable(String),
    /// Read from `from` (its cursor's offset, or 0); `now` is the file as it is.
    Read {
        /// The cursor the file was last read to, if it is the same file.
        from: Option<Cursor>,
        /// The file's size, time and inode now.
        now: Cursor,
    },
}

/// Runs syncs into one target.
pub struct Syncer<'a> {
    target: &'a mut dyn SyncTarget,
    options: SyncOptions,
}

impl<'a> Syncer<'a> {
    /// A syncer sending to `target`.
    pub fn new(target: &'a mut dyn SyncTarget, options: SyncOptions) -> Self {
        Self { target, options }
    }

    /// Whether [`SyncOptions::cancel`] is set.
    pub fn cancelled(&self) -> bool {
        self.options.cancel.load(Ordering::SeqCst)
    }

    fn report(&self, progress: &SyncProgress) {
        if let Some(on_progress) = &self.options.on_progress {
            on_progress(progress);
        }
    }

    fn send(&mut self, out: &mut Emitted, result: &mut SyncResult) -> Result<(), SyncError> {
        let (records, mut replacements) = out.take_records();
        if !self.target.replaces() {
            // Final records only: a replacement is a record sent before as final (a
            // result coming after its session's quiet end), which the target would drop.
            replacements.clear();
            out.updates = 0;
        }
        result.spans_synced += (records.len() + replacements.len()) as u64;
        result.spans_replaced += std::mem::take(&mut out.updates);
        if self.options.dry_run || (records.is_empty() && replacements.is_empty()) {
            return Ok(());
        }
        self.target.send(records, replacements)
    }

    fn commit(
        &mut self,
        source: Source,
        out: &mut Emitted,
        result: &mut SyncResult,
        cursors: &mut Vec<sonde_model::SyncCursor>,
    ) -> Result<(), SyncError> {
        self.send(out, result)?;
        if self.options.dry_run || cursors.is_empty() {
            cursors.clear();
            return Ok(());
        }
        self.target.flush()?;
        self.target
            .save_cursors(source.name(), std::mem::take(cursors))
    }

    /// What to do with `file`, given the cursor stored for it; `final_only` when the
    /// target is sent final records only (a file holding records is looked at again,
    /// unchanged, to send them once it is quiet).
    fn plan(file: &SourceFile, stored: Option<&String>, final_only: bool) -> Plan {
        let meta = match std::fs::metadata(&file.path) {
            Ok(meta) => meta,
            Err(e) => return Plan::Unreadable(format!("{}: {e}", file.path.display())),
        };
        let known: Option<Cursor> = stored.and_then(|c| serde_json::from_str(c).ok());
        let now = Cursor::at(&meta, 0);
        match known {
            Some(known) if known.same_file(&now) && !(final_only && known.holding) => {
                Plan::Unchanged
            }
            // Replaced or truncated: read it again from the start; record ids keep the
            // result exact.
            Some(known) if known.inode != now.inode || now.size < known.offset => {
                Plan::Read { from: None, now }
            }
            from => Plan::Read { from, now },
        }
    }

    /// Syncs every transcript of `source` under `roots` (missing roots are skipped when
    /// they are the default ones, and an error otherwise). When cancelled, it stops
    /// before the next file, flushes what it read and saves those files' cursors.
    pub fn run(&mut self, source: Source, roots: &[PathBuf]) -> Result<SyncResult, SyncError> {
        let started = Instant::now();
        let mut result = SyncResult {
            source: source.name().into(),
            target: self.target.describe(),
            dry_run: self.options.dry_run,
            ..SyncResult::default()
        };
        let mut files = Vec::new();
        for root in roots {
            files.extend(discover(source, root)?);
        }
        let stored = self.target.load_cursors(source.name())?;
        let keys: Vec<String> = files
            .iter()
            .map(|file| {
                std::path::absolute(&file.path)
                    .unwrap_or_else(|_| file.path.clone())
                    .display()
                    .to_string()
            })
            .collect();
        let final_only = !self.target.replaces();
        let plans: Vec<Plan> = files
            .iter()
            .zip(&keys)
            .map(|(file, key)| Self::plan(file, stored.get(key), final_only))
            .collect();
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let quiet_ns = self.options.quiet_period.as_nanos();
        let mut progress = SyncProgress {
            source,
            files_done: 0,
            files_total: files.len() as u64,
            bytes_read: 0,
            bytes_total: plans
                .iter()
                .map(|plan| match plan {
                    Plan::Read { from, now } => {
                        now.size - from.as_ref().map_or(0, |c| c.offset.min(now.size))
                    }
                    _ => 0,
                })
                .sum(),
        };
        self.report(&progress);
        let mut out = Emitted::default();
        let mut cursors = Vec::new();
        for ((file, key), plan) in files.iter().zip(keys).zip(plans) {
            if self.cancelled() {
                result.interrupted = true;
                break;
            }
            result.files_scanned += 1;
            progress.files_done += 1;
            let (from, now) = match plan {
                Plan::Unchanged => {
                    self.report(&progress);
                    continue;
                }
                Plan::Unreadable(message) => {
                    result.note_error(message);
                    self.report(&progress);
                    continue;
                }
                Plan::Read { from, now } => (from, now),
            };
            let state = match &from {
                Some(_) => self
                    .target
                    .load_state(source.name(), &key)?
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Value::Null),
                None => Value::Null,
            };
            let start = from.map_or(0, |c| c.offset);
            let mut parser = Parser::new(file, state, final_only);
            let read = self.read_file(
                file,
                start,
                &mut parser,
                &mut out,
                &mut result,
                &mut progress,
            );
            let offset = match read {
                Ok(offset) => offset,
                Err(e) => {
                    result.note_error(e.to_string());
                    continue;
                }
            };
            // Quiet: it has not grown for the quiet period (its session ended).
            let quiet = now_ns.saturating_sub(u128::from(now.mtime_ns)) >= quiet_ns;
            parser.end_of_run(&mut out, quiet);
            result.bytes_read += offset - start;
            progress.bytes_read = result.bytes_read;
            self.report(&progress);
            result.files_updated += 1;
            result.absorb(&mut out);
            let position = Cursor {
                offset,
                holding: parser.holding(),
                ..now
            };
            cursors.push(sonde_model::SyncCursor {
                path: key,
                position: serde_json::to_string(&position).unwrap_or_default(),
                state: parser.state().to_string(),
            });
            if out.len() >= RECORD_BATCH {
                self.send(&mut out, &mut result)?;
            }
            if cursors.len() >= CURSOR_BATCH {
                self.commit(source, &mut out, &mut result, &mut cursors)?;
            }
        }
        self.commit(source, &mut out, &mut result, &mut cursors)?;
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(result)
    }

    /// Feeds `file` from `offset` to the parser, complete lines only; returns the offset
    /// after the last line consumed. A last line without a newline is consumed only if
    /// it is complete JSON (else it is being written, and waits for the next run).
    fn read_file(
        &mut self,
        file: &SourceFile,
        offset: u64,
        parser: &mut Parser,
        out: &mut Emitted,
        result: &mut SyncResult,
        progress: &mut SyncProgress,
    ) -> Result<u64, SyncError> {
        let read_error = |e: std::io::Error| SyncError::read(&file.path, e);
        let mut handle = std::fs::File::open(&file.path).map_err(read_error)?;
        handle.seek(SeekFrom::Start(offset)).map_err(read_error)?;
        let mut consumed = offset;
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        // Where the line being skipped (over MAX_LINE_BYTES) began, while it is.
        let mut skipping: Option<u64> = None;
        loop {
            // The bytes kept from the last chunk (a line's start) were searched already:
            // each byte is searched for a newline once.
            let searched = buf.len();
            let n = (&mut handle)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(read_error)?;
            if n == 0 {
                break;
            }
            let mut start = 0;
            let mut from = searched;
            while let Some(found) = memchr::memchr(b'\n', &buf[from..]) {
                let end = from + found;
                match skipping.take() {
                    Some(at) => result.note_error(long_line(&file.path, at)),
                    None if end - start > MAX_LINE_BYTES => {
                        result.note_error(long_line(&file.path, consumed + start as u64));
                    }
                    None => parser.line(&buf[start..end], out),
                }
                start = end + 1;
                from = start;
            }
            consumed += start as u64;
            buf.drain(..start);
            if skipping.is_none() && buf.len() > MAX_LINE_BYTES {
                skipping = Some(consumed);
            }
            if skipping.is_some() {
                consumed += buf.len() as u64;
                buf.clear();
            }
            progress.bytes_read = result.bytes_read + (consumed - offset);
            self.report(progress);
            if out.len() >= RECORD_BATCH {
                result.absorb(out);
                self.send(out, result)?;
            }
        }
        if let Some(at) = skipping {
            result.note_error(long_line(&file.path, at));
        }
        if !buf.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
            parser.line(&buf, out);
            consumed += buf.len() as u64;
        }
        Ok(consumed)
    }
}

/// The message for a line over [`MAX_LINE_BYTES`] at byte `offset` of `path`.
fn long_line(path: &std::path::Path, offset: u64) -> String {
    format!(
        "{}: byte {offset}: a line longer than {} MiB was skipped",
        path.display(),
        MAX_LINE_BYTES / (1024 * 1024)
    )
}
