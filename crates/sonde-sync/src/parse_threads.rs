//! Parser threads: the files a run reads are read and parsed several at once, each
//! file whole by one thread, while the syncer takes their records back in file order
//! and sends them to the target as one stream.
//!
//! Files are independent (each has its own parser and state), so parsing them side by
//! side changes nothing the target sees: the records of every file come back in the
//! order its parser made them, and files in the order the run lists them. Each file's
//! records come through a channel of [`PIECES_WAITING`] pieces (one per
//! [`READ_CHUNK`] read), and at most [`files_ahead`] files are handed out beyond the
//! one the syncer is taking, so memory stays bounded however large a file is.

use std::io::{Read, Seek, SeekFrom};
use std::num::NonZero;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use crate::SyncError;
use crate::discover::SourceFile;
use crate::emit::Emitted;
use crate::parser::Parser;

/// Bytes read from a file at a time (one piece of records per read).
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// The longest line read: a longer one (a file with no newlines, say) is skipped, with
/// a one-line message naming its file and offset, and never held in memory whole.
/// Transcript lines hold one message each; the largest seen are a few MiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Pieces of one file that wait for the syncer before its parser thread waits too.
const PIECES_WAITING: usize = 2;

/// The most parser threads a run starts, whatever the number of cores.
const MAX_PARSER_THREADS: usize = 8;

/// How many parser threads a run that reads `files` files starts: `wanted`, or one per
/// core when 0, never more than the files nor [`MAX_PARSER_THREADS`].
pub(crate) fn thread_count(wanted: usize, files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    let wanted = if wanted == 0 { cores } else { wanted };
    wanted.min(MAX_PARSER_THREADS).min(files).max(1)
}

/// How many files may be handed to `threads` parser threads beyond the one the syncer
/// is taking records from: enough that no thread waits for work.
pub(crate) fn files_ahead(threads: usize) -> usize {
    2 * threads
}

/// One file for a parser thread: where to read from, with what state, and where its
/// records go.
pub(crate) struct FileJob<'f> {
    /// The file.
    pub(crate) file: &'f SourceFile,
    /// The offset to read from (its cursor's, or 0).
    pub(crate) start: u64,
    /// The parser state saved with its cursor (`Null` from the start).
    pub(crate) state: Value,
    /// Whether the target is sent final records only.
    pub(crate) final_only: bool,
    /// Whether the file has not grown for the quiet period.
    pub(crate) quiet: bool,
    /// Where its pieces go, in order.
    pub(crate) pieces: Sender<Piece>,
}

/// What a parser thread hands back for a file, in order: `Read` pieces, then `Done`
/// or `Failed`.
pub(crate) enum Piece {
    /// Records and counts of the lines read so far, and the offset after the last
    /// line consumed.
    Read {
        /// The records and counts.
        out: Emitted,
        /// The offset after the last line consumed.
        consumed: u64,
    },
    /// The file is read.
    Done {
        /// The records and counts of its last lines and of its end.
        out: Emitted,
        /// The offset after the last line consumed.
        offset: u64,
        /// Whether records wait for the file to go quiet.
        holding: bool,
        /// The parser state to go on from, as JSON.
        state: String,
    },
    /// The file could not be read: what was handed back before stands, its cursor
    /// stays where it was.
    Failed(String),
}

/// Starts `threads` parser threads in `scope`, taking jobs from the channel returned:
/// they end once it is dropped. Fails only when not one thread could be started.
pub(crate) fn start<'scope, 'f: 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    threads: usize,
) -> Result<Sender<FileJob<'f>>, SyncError> {
    let (jobs, queue) = crossbeam_channel::unbounded::<FileJob<'f>>();
    let mut started = 0;
    let mut failure = None;
    for i in 0..threads {
        let queue: Receiver<FileJob<'f>> = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sonde-sync-parse-{i}"))
            .spawn_scoped(scope, move || {
                for job in queue {
                    parse_file(job);
                }
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        Some(cause) if started == 0 => Err(SyncError::Threads { cause }),
        _ => Ok(jobs),
    }
}

/// Reads and parses one file, handing back its pieces; stops early when the syncer no
/// longer listens (it was cancelled or failed).
fn parse_file(job: FileJob<'_>) {
    let FileJob {
        file,
        start,
        state,
        final_only,
        quiet,
        pieces,
    } = job;
    let mut parser = Parser::new(file, state, final_only);
    let mut out = Emitted::default();
    let piece = match read_lines(file, start, &mut parser, &mut out, &pieces) {
        Ok(Some(offset)) => {
            parser.end_of_run(&mut out, quiet);
            Piece::Done {
                out,
                offset,
                holding: parser.holding(),
                state: parser.state().to_string(),
            }
        }
        Ok(None) => return,
        Err(e) => Piece::Failed(e.to_string()),
    };
    let _ = pieces.send(piece);
}

/// Feeds `file` from `offset` to the parser, complete lines only, handing back a piece
/// after each read; returns the offset after the last line consumed (the records of
/// the last lines left in `out`), or `None` when the syncer stopped listening. A last
/// line without a newline is consumed only if it is complete JSON (else it is being
/// written, and waits for the next run).
fn read_lines(
    file: &SourceFile,
    offset: u64,
    parser: &mut Parser,
    out: &mut Emitted,
    pieces: &Sender<Piece>,
) -> Result<Option<u64>, SyncError> {
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
                Some(at) => out.error(long_line(&file.path, at)),
                None if end - start > MAX_LINE_BYTES => {
                    out.error(long_line(&file.path, consumed + start as u64));
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
        let piece = Piece::Read {
            out: std::mem::take(out),
            consumed,
        };
        if pieces.send(piece).is_err() {
            return Ok(None);
        }
    }
    if let Some(at) = skipping {
        out.error(long_line(&file.path, at));
    }
    if !buf.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
        parser.line(&buf, out);
        consumed += buf.len() as u64;
    }
    Ok(Some(consumed))
}

/// The message for a line over [`MAX_LINE_BYTES`] at byte `offset` of `path`.
fn long_line(path: &std::path::Path, offset: u64) -> String {
    format!(
        "{}: byte {offset}: a line longer than {} MiB was skipped",
        path.display(),
        MAX_LINE_BYTES / (1024 * 1024)
    )
}

/// The channel a file's pieces come back through.
pub(crate) fn pieces() -> (Sender<Piece>, Receiver<Piece>) {
    crossbeam_channel::bounded(PIECES_WAITING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_bounded_by_the_files_and_at_least_one() {
        assert_eq!(thread_count(4, 1), 1);
        assert_eq!(thread_count(3, 10), 3);
        assert_eq!(thread_count(100, 100), MAX_PARSER_THREADS);
        assert_eq!(thread_count(2, 0), 1);
        assert!(thread_count(0, 100) >= 1);
    }
}
