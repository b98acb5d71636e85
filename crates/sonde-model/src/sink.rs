//! Where records go: the [`TraceSink`] interface that every destination implements
//! (files, stderr, a store, an OpenTelemetry endpoint, Langfuse...), here at the bottom
//! so that a source or an exporter needs nothing but the model to offer or take one.

use std::path::PathBuf;

use crate::Record;

/// Why a sink could not take records.
///
/// ```
/// let err = sonde_model::SinkError::Dropped { records: 3 };
/// assert_eq!(err.to_string(), "3 records dropped by the writer: its queue and spool are full");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A file could not be created or written.
    #[error("cannot write {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (said in the message, so not a `source` that a chain would repeat).
        cause: std::io::Error,
    },
    /// A store refused the records.
    #[error("store: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
    /// The sink's worker has stopped.
    #[error("the sink is closed")]
    Closed,
    /// Sending to a remote endpoint failed (after retries).
    #[error("export to {endpoint} failed: {reason}")]
    Export {
        /// Where.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The writer could neither queue nor spool the records (its spool is full or
    /// there is none); they are counted in its diagnostics.
    #[error("{records} records dropped by the writer: its queue and spool are full")]
    Dropped {
        /// How many.
        records: usize,
    },
}

/// Receives records, in batches.
///
/// Sinks are called from a worker thread of their caller's (the tracer's, the
/// syncer's), never from the thread that records, so a sink may block on I/O.
///
/// ```
/// use sonde_model::{SinkError, TraceSink};
/// use std::sync::Mutex;
/// /// Counts what it is given.
/// struct Counter(Mutex<usize>);
/// impl TraceSink for Counter {
///     fn write(&self, records: &[sonde_model::Record]) -> Result<(), SinkError> {
///         *self.0.lock().unwrap() += records.len();
///         Ok(())
///     }
/// }
/// ```
pub trait TraceSink: Send + Sync {
    /// Takes a batch of records.
    fn write(&self, records: &[Record]) -> Result<(), SinkError>;

    /// Makes everything written so far durable (or visible). The default does nothing.
    fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}
