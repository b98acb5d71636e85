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

/// How long a transcript must not have grown before a run that sends final records only
/// (to a target that cannot replace, [`SyncTarget::replaces`](crate::SyncTarget::replaces))
/// sends what it left open as it is: 10 minutes.
pub const DEFAULT_QUIET_PERIOD: std::time::Duration = std::time::Duration::from_secs(600);

/// How a sync run behaves.
///
/// ```
/// let options = sonde_sync::SyncOptions::default();
/// assert_eq!(options.quiet_period, sonde_sync::DEFAULT_QUIET_PERIOD);
/// ```
#[derive(Clone)]
pub struct SyncOptions {
    /// Read and count, but send nothing and save no cursor.
    pub dry_run: bool,
    /// Told how far the run has got (a progress bar, say).
    pub on_progress: Option<ProgressCallback>,
    /// Set (by a signal handler, say) to stop a run between two files: the files read
    /// so far are flushed to the target and their cursors saved, the result says
    /// `interrupted`, and [`watch`](crate::watch) returns.
    pub cancel: Arc<AtomicBool>,
    /// For a target that cannot replace: how long a file must not have grown before
    /// what it left open (its last response, tool calls without a result, its session
    /// and current step) is sent as it is.
    pub quiet_period: std::time::Duration,
    /// How many threads read and parse files side by side; 0 (the default) for one
    /// per core. The target sees the same records in the same order whatever the
    /// number.
    pub parser_threads: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            on_progress: None,
            cancel: Arc::default(),
            quiet_period: DEFAULT_QUIET_PERIOD,
            parser_threads: 0,
        }
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("dry_run", &self.dry_run)
            .field("on_progress", &self.on_progress.is_some())
            .field("cancel", &self.cancel)
            .field("quiet_period", &self.quiet_period)
            .field("parser_threads", &self.parser_threads)
            .finish()
    }
}
