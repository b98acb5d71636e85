//! What can go wrong in a sync.

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A transcript file or folder could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file or folder.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// A sink target (JSONL on stdout, OTLP, Langfuse) could not deliver.
    #[error("{target}: {cause}")]
    Sink {
        /// Which target.
        target: String,
        /// Why (a closed standard output is an I/O error of kind `BrokenPipe`: see
        /// [`SyncError::is_closed_pipe`]).
        cause: sonde_model::SinkError,
    },
    /// The target refused or failed.
    #[error("{target}: {reason}")]
    Target {
        /// Which target.
        target: String,
        /// Why.
        reason: String,
    },
    /// The parser threads could not be started, or one stopped (panicked) mid-run.
    #[error("parser threads: {cause}")]
    Threads {
        /// Why.
        cause: std::io::Error,
    },
    /// A state file could not be read or written.
    #[error("sync state {path}: {reason}")]
    State {
        /// The state file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SyncError {
    /// Whether the target was standard output and its reader has gone (`sonde sync
    /// --to - | head`): a reason to stop quietly, not a failure to report.
    ///
    /// ```
    /// use sonde_sync::SyncError;
    /// let closed = SyncError::Sink {
    ///     target: "stdout".into(),
    ///     cause: sonde_model::SinkError::Io {
    ///         path: "stdout".into(),
    ///         cause: std::io::ErrorKind::BrokenPipe.into(),
    ///     },
    /// };
    /// assert!(closed.is_closed_pipe());
    /// ```
    pub fn is_closed_pipe(&self) -> bool {
        matches!(
            self,
            SyncError::Sink {
                cause: sonde_model::SinkError::Io { cause, .. },
                ..
            } if cause.kind() == std::io::ErrorKind::BrokenPipe
        )
    }

    /// A [`SyncError::Read`] of `path`.
    pub(crate) fn read(path: &std::path::Path, cause: std::io::Error) -> Self {
        SyncError::Read {
            path: path.display().to_string(),
            cause,
        }
    }
}
