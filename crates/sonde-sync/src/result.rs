//! What a sync run did.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::emit::{Emitted, MAX_ERROR_MESSAGES};

/// What a sync run did (seed 003's `SyncResult`, with more counts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncResult {
    /// `claude` or `codex`.
    pub source: String,
    /// Where the records went.
    pub target: String,
    /// Transcript files found.
    pub files_scanned: u64,
    /// Files that had new lines (or were read again from the start).
    pub files_updated: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Lines read.
    pub lines_read: u64,
    /// Records sent (each a span, message or lifecycle record), replacements included.
    pub spans_synced: u64,
    /// Of those, replacements of records an earlier run sent (a record still open,
    /// sent for the first time as a replacement, is not counted).
    pub spans_replaced: u64,
    /// Lines and fields skipped, by what they were.
    pub skipped: BTreeMap<String, u64>,
    /// Lines or files that could not be read.
    pub errors: u64,
    /// The first of those, as `file:line: reason`.
    pub error_messages: Vec<String>,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// Whether the run was cancelled ([`SyncOptions::cancel`](crate::SyncOptions::cancel))
    /// before it read every file; the files it read keep their cursors.
    pub interrupted: bool,
}

impl SyncResult {
    /// Moves the counts a parser gathered in `out` into this result.
    pub(crate) fn absorb(&mut self, out: &mut Emitted) {
        self.lines_read += out.lines;
        out.lines = 0;
        for (what, n) in std::mem::take(&mut out.skipped) {
            *self.skipped.entry(what).or_default() += n;
        }
        self.errors += out.error_count;
        out.error_count = 0;
        for message in out.errors.drain(..) {
            if self.error_messages.len() < MAX_ERROR_MESSAGES {
                self.error_messages.push(message);
            }
        }
    }

    /// Adds a later run over the same files (a watch's next round): the files are
    /// those it scanned, the counts and the time are summed.
    ///
    /// ```
    /// let mut total = sonde_sync::SyncResult { files_scanned: 3, files_updated: 3, spans_synced: 10, ..Default::default() };
    /// total.add(&sonde_sync::SyncResult { files_scanned: 4, files_updated: 1, spans_synced: 2, ..Default::default() });
    /// assert_eq!((total.files_scanned, total.files_updated, total.spans_synced), (4, 4, 12));
    /// ```
    pub fn add(&mut self, later: &SyncResult) {
        self.files_scanned = later.files_scanned;
        self.files_updated += later.files_updated;
        self.bytes_read += later.bytes_read;
        self.lines_read += later.lines_read;
        self.spans_synced += later.spans_synced;
        self.spans_replaced += later.spans_replaced;
        for (what, n) in &later.skipped {
            *self.skipped.entry(what.clone()).or_default() += n;
        }
        self.errors += later.errors;
        let room = MAX_ERROR_MESSAGES.saturating_sub(self.error_messages.len());
        self.error_messages
            .extend(later.error_messages.iter().take(room).cloned());
        self.duration_ms += later.duration_ms;
        self.interrupted |= later.interrupted;
    }

    /// Counts an error that `message` describes.
    pub(crate) fn note_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_messages.len() < MAX_ERROR_MESSAGES {
            self.error_messages.push(message);
        }
    }
}
