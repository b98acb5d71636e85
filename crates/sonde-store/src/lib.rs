//! Sonde's trace store: the [`TraceStore`] traits (one per capability) and its backends.
//!
//! The embedded SQLite backend ([`SqliteStore`], feature `sqlite`, on by default) keeps
//! its connections on dedicated threads: no SQLite call ever runs on an async runtime's
//! worker threads. Writing is idempotent by record id.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sonde_model::*;
//! use sonde_store::{Scope, StoreUrl};
//! let store = StoreUrl::parse("sqlite::memory:")?.open().await?;
//! let start = Record::new(Context::session("s-1"), Body::SessionStarted(SessionStarted::default()));
//! store.write(&[start]).await?;
//! let session = store.get_session("s-1", &Scope::All).await?.expect("stored");
//! assert!(session.started.is_some());
//! # Ok(()) }
//! ```

#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

mod analytics;
mod calls;
mod capabilities;
mod cursors;
mod error;
mod identity;
mod keys;
mod latency_runs;
pub use latency_runs::SortedRuns;
mod listing;
mod migrations;
mod partitions;
#[cfg(feature = "postgres")]
mod postgres;
mod pricer;
mod record_keys;
mod rows;
mod scope;
pub mod search;
mod sink;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tenancy;
mod url;
mod writer;

pub use analytics::{
    AnalyticsFilter, Bucket, Dialect, ErrorStats, GroupBy, KeyStats, LatencyOverview, LatencyPoint,
    LatencyStats, ModelStats, SeriesPoint, UsageSummary,
};
pub use calls::{CallDetail, CallFilter, CallPage, CallSummary};
pub use capabilities::{
    Analytics, CursorStore, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_ROWS, DEFAULT_STATEMENT_TIMEOUT,
    GroupValues, KeyStore, QueryLimits, QueryResult, RecordStore, SqlQuery, TraceStore,
    WriteOutcome,
};
pub use cursors::SyncCursor;
pub use error::{BackendError, ErrorClass, OpenError, QueryError, ReadError, WriteError};
pub use identity::DatabaseIdentity;
pub use keys::ApiKey;
pub use listing::{SessionFilter, SessionPage, SessionSummary};
pub use partitions::DroppedPartitions;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use pricer::CallPricer;
pub use scope::Scope;
pub use sink::{StoreSink, WriterSink};
pub use sonde_model::message_with_causes;
#[cfg(feature = "sqlite")]
pub use sqlite::{BackupError, SqliteStore, backup_sqlite};
pub use url::{REDACTED, StoreUrl, redact_url};
pub use writer::{
    ADOPT_EVERY, Accepted, Ack, Corruption, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_SPOOL_CAP, DEFAULT_WRITE_ATTEMPTS, DEFAULT_WRITE_TIMEOUT,
    DiagnosticsReader, Enqueued, FAILURE_NOTICES, IDENTITY_FILE, INITIAL_BACKOFF, LANES_DIR,
    LATENCY_SAMPLES, LATENCY_WINDOW, LOCK_FILE, LastFailure, MAX_BACKOFF, MAX_SPOOL_LANES,
    Pressure, REJECTED_FILE, SPOOL_FILE, ShutdownReport, SpoolError, SubmitError, WriteEnd,
    WriteFailure, Writer, WriterConfig, WriterDiagnostics, WriterError, WriterMetrics,
    classify_write_error, damage_line, read_spool,
};

/// Whether `sql` starts with a keyword of a statement that only reads.
///
/// Backends combine this with their own read-only enforcement.
pub(crate) fn starts_read_only(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    // Skip leading comments.
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, tail)| tail).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, tail)| tail).trim_start();
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(word.as_str(), "SELECT" | "WITH" | "EXPLAIN" | "VALUES")
}

#[cfg(test)]
mod tests {
    use super::starts_read_only;

    #[test]
    fn only_reading_keywords_pass_the_first_check() {
        assert!(starts_read_only("select 1"));
        assert!(starts_read_only(
            "  -- note\n WITH x AS (SELECT 1) SELECT * FROM x"
        ));
        assert!(starts_read_only("/* c */ values (1)"));
        assert!(!starts_read_only("DELETE FROM events"));
        assert!(!starts_read_only("attach 'x.db' as x"));
        assert!(!starts_read_only("pragma query_only = 0"));
        assert!(!starts_read_only(""));
    }
}
