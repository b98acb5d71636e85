//! The sync loop: the files of a source, read from their cursors, into a target.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use crate::cursor::Cursor;
use crate::discover::{SourceFile, discover};
use crate::emit::Emitted;
use crate::parse_threads::{self, FileJob, Piece};
use crate::{Source, SyncError, SyncOptions, SyncProgress, SyncResult, SyncTarget};

/// Records sent to the target at a time.
pub const RECORD_BATCH: usize = 2048;
/// Files whose cursors are saved together (after a flush).
pub const CURSOR_BATCH: usize = 1024;

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

    /// Sends the records waiting, counting them.
    fn send(&mut self, run: &mut Run<'_>) -> Result<(), SyncError> {
        let (records, mut replacements) = run.out.take_records();
        if !self.target.replaces() {
            // Final records only: a replacement is a record sent before as final (a
            // result coming after its session's quiet end), which the target would drop.
            replacements.clear();
            run.out.updates = 0;
        }
        run.result.spans_synced += (records.len() + replacements.len()) as u64;
        run.result.spans_replaced += std::mem::take(&mut run.out.updates);
        if self.options.dry_run || (records.is_empty() && replacements.is_empty()) {
            return Ok(());
        }
        self.target.send(records, replacements)
    }

    /// Sends the records waiting, and once the target has them, saves the cursors of
    /// the files they came from.
    fn commit(&mut self, run: &mut Run<'_>) -> Result<(), SyncError> {
        self.send(run)?;
        if self.options.dry_run || run.cursors.is_empty() {
            run.cursors.clear();
            return Ok(());
        }
        self.target.flush()?;
        self.target
            .save_cursors(run.source.name(), std::mem::take(&mut run.cursors))
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
    ///
    /// Files are read and parsed on parser threads, several at once
    /// ([`SyncOptions::parser_threads`]); their records reach the target in the same
    /// order as from one thread: file by file, each file's in the order it was read.
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
        let reads = plans
            .iter()
            .filter(|plan| matches!(plan, Plan::Read { .. }))
            .count();
        if reads == 0 {
            // Nothing to read (a re-sync of unchanged files): no thread to start.
            let mut run = Run::new(source, &mut result, &mut progress);
            self.take(&mut run, files.iter().zip(keys).zip(plans), None)?;
        } else {
            let threads = parse_threads::thread_count(self.options.parser_threads, reads);
            std::thread::scope(|scope| -> Result<(), SyncError> {
                let jobs = parse_threads::start(scope, threads)?;
                let mut run = Run::new(source, &mut result, &mut progress);
                let ahead = parse_threads::files_ahead(threads);
                self.take(
                    &mut run,
                    files.iter().zip(keys).zip(plans),
                    Some((&jobs, ahead)),
                )
                // Dropping `jobs` here ends the threads; the scope waits for them.
            })?;
        }
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(result)
    }

    /// Goes through the files in order: hands up to `ahead` files past the current one
    /// to the parser threads behind `jobs`, takes each file's records back in order
    /// and sends them on, saving cursors after each flush.
    fn take<'f>(
        &mut self,
        run: &mut Run<'_>,
        mut files: impl Iterator<Item = ((&'f SourceFile, String), Plan)>,
        jobs: Option<(&Sender<FileJob<'f>>, usize)>,
    ) -> Result<(), SyncError> {
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let quiet_ns = self.options.quiet_period.as_nanos();
        let final_only = !self.target.replaces();
        // Files handed out (or not to be read), in order, and how many are being read.
        let mut queue: VecDeque<Queued> = VecDeque::new();
        let mut reading = 0;
        loop {
            while let Some((jobs, _)) = jobs.filter(|(_, ahead)| reading <= *ahead) {
                let Some(((file, key), plan)) = files.next() else {
                    break;
                };
                let queued = match plan {
                    Plan::Unchanged => Queued::Unchanged,
                    Plan::Unreadable(message) => Queued::Unreadable(message),
                    Plan::Read { from, now } => {
                        let state = match &from {
                            Some(_) => self
                                .target
                                .load_state(run.source.name(), &key)?
                                .and_then(|s| serde_json::from_str(&s).ok())
                                .unwrap_or(Value::Null),
                            None => Value::Null,
                        };
                        let start = from.map_or(0, |c| c.offset);
                        // Quiet: it has not grown for the quiet period (its session ended).
                        let quiet = now_ns.saturating_sub(u128::from(now.mtime_ns)) >= quiet_ns;
                        let (sender, pieces) = parse_threads::pieces();
                        let job = FileJob {
                            file,
                            start,
                            state,
                            final_only,
                            quiet,
                            pieces: sender,
                        };
                        if jobs.send(job).is_err() {
                            return Err(threads_stopped());
                        }
                        reading += 1;
                        Queued::Read {
                            key,
                            now,
                            start,
                            pieces,
                        }
                    }
                };
                queue.push_back(queued);
            }
            let next = match queue.pop_front() {
                Some(next) => next,
                // No parser threads: nothing is read, every file is unchanged or
                // unreadable.
                None => match files.next() {
                    Some((_, Plan::Unchanged)) => Queued::Unchanged,
                    Some((_, Plan::Unreadable(message))) => Queued::Unreadable(message),
                    Some((_, Plan::Read { .. })) => return Err(threads_stopped()),
                    None => break,
                },
            };
            if self.cancelled() {
                run.result.interrupted = true;
                break;
            }
            run.result.files_scanned += 1;
            run.progress.files_done += 1;
            match next {
                Queued::Unchanged => self.report(run.progress),
                Queued::Unreadable(message) => {
                    run.result.note_error(message);
                    self.report(run.progress);
                }
                Queued::Read {
                    key,
                    now,
                    start,
                    pieces,
                } => {
                    reading -= 1;
                    self.take_file(run, key, now, start, &pieces)?;
                }
            }
        }
        self.commit(run)
    }

    /// Takes one file's pieces as its parser thread hands them back, sends its records
    /// on, and keeps its cursor for the next save.
    fn take_file(
        &mut self,
        run: &mut Run<'_>,
        key: String,
        now: Cursor,
        start: u64,
        pieces: &Receiver<Piece>,
    ) -> Result<(), SyncError> {
        loop {
            let Ok(piece) = pieces.recv() else {
                return Err(threads_stopped());
            };
            match piece {
                Piece::Read { mut out, consumed } => {
                    run.absorb(&mut out);
                    run.progress.bytes_read = run.result.bytes_read + (consumed - start);
                    self.report(run.progress);
                    if run.out.len() >= RECORD_BATCH {
                        self.send(run)?;
                    }
                }
                Piece::Failed(message) => {
                    run.result.note_error(message);
                    return Ok(());
                }
                Piece::Done {
                    mut out,
                    offset,
                    holding,
                    state,
                } => {
                    run.absorb(&mut out);
                    run.result.bytes_read += offset - start;
                    run.progress.bytes_read = run.result.bytes_read;
                    self.report(run.progress);
                    run.result.files_updated += 1;
                    let position = Cursor {
                        offset,
                        holding,
                        ..now
                    };
                    run.cursors.push(sonde_model::SyncCursor {
                        path: key,
                        position: serde_json::to_string(&position).unwrap_or_default(),
                        state,
                    });
                    if run.out.len() >= RECORD_BATCH {
                        self.send(run)?;
                    }
                    if run.cursors.len() >= CURSOR_BATCH {
                        self.commit(run)?;
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// A file in the order the run takes them: not read, or handed to a parser thread.
enum Queued {
    /// Unchanged since its cursor.
    Unchanged,
    /// Its metadata could not be read.
    Unreadable(String),
    /// Being read by a parser thread.
    Read {
        /// Its cursor key.
        key: String,
        /// The file as it was when the run began.
        now: Cursor,
        /// The offset it is read from.
        start: u64,
        /// Its records, coming back.
        pieces: Receiver<Piece>,
    },
}

/// What a run gathers as it takes files: records to send, cursors to save, counts.
struct Run<'r> {
    source: Source,
    result: &'r mut SyncResult,
    progress: &'r mut SyncProgress,
    out: Emitted,
    cursors: Vec<sonde_model::SyncCursor>,
}

impl<'r> Run<'r> {
    fn new(source: Source, result: &'r mut SyncResult, progress: &'r mut SyncProgress) -> Self {
        Self {
            source,
            result,
            progress,
            out: Emitted::default(),
            cursors: Vec::new(),
        }
    }

    /// Moves a piece's records behind the ones waiting, and its counts into the result.
    fn absorb(&mut self, piece: &mut Emitted) {
        let (records, replacements) = piece.take_records();
        append(&mut self.out.records, records);
        append(&mut self.out.replacements, replacements);
        self.out.updates += std::mem::take(&mut piece.updates);
        self.result.absorb(piece);
    }
}

/// Appends `more` to `list`, without a copy when `list` is empty.
fn append<T>(list: &mut Vec<T>, mut more: Vec<T>) {
    if list.is_empty() {
        *list = more;
    } else {
        list.append(&mut more);
    }
}

/// The error when the parser threads ended before the run did (one panicked).
fn threads_stopped() -> SyncError {
    SyncError::Threads {
        cause: std::io::Error::other("a parser thread stopped"),
    }
}
