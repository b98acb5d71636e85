//! How a sync run behaves, and how it reports its progress.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::Source;

/// How far a run has got, as [`SyncOptions::on_progress`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    /// Whose logs the run reads.
    pub source: Source,
    /// Files looked at so far.
    pub files_done: u64,
    /// Files found.
    pub files_total: u64,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Bytes the run has to read: what was appended to the files it reads.
    pub bytes_total: u64,
}

/// What is told how far a run has got: after each file, and after each chunk of a
/// large one.
pub type ProgressCallback = Arc<dyn Fn(&SyncProgress) + Send + Sync>;

/// How a sync run behaves.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Read and count, but send nothing and save no cursor.
    pub dry_run: bool,
    /// Told how far the run has got (a progress bar, say).
    pub on_progress: Option<ProgressCallback>,
    /// Set (by a signal handler, say) to stop a run between two files: the files read
    /// so far are flushed to the target and their cursors saved, the result says
    /// `interrupted`, and [`watch`](crate::watch) returns.
    pub cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("dry_run", &self.dry_run)
            .field("on_progress", &self.on_progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}
