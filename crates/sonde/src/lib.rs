//! Sonde records, stores and analyses the traces of LLM agents: every session, turn,
//! LLM call, tool call, message and reward, with tokens, cost and latency.
//!
//! This facade re-exports the public library:
//! - the record vocabulary ([`Record`], [`Event`], [`LlmCall`], [`SessionTrace`], ...)
//!   from `sonde-model`;
//! - [`SessionTracer`], hooks and sinks ([`JsonlSink`], [`StderrSink`], [`TeeSink`],
//!   [`StoreSink`]) from `sonde-tracer`;
//! - the [`store`] module: [`store::TraceStore`] and its backends, from `sonde-store`;
//!   [`open`] opens one that prices calls by the shipped table ([`pricing`]), as the
//!   `sonde` command does;
//! - [`schema`]: the tables and columns `sonde query` can read, and a store's
//!   schema version;
//! - [`json::round_costs`]: reports' JSON as `--json` prints it;
//! - with `sqlite` (default), [`compat::synth_ai`]: seed 000's Rust tracing API
//!   (`synth_ai_core::tracing`) over Sonde;
//! - [`demo::record`]: the demo session that `sonde demo` and the quickstart example
//!   record;
//! - with the `sync` feature, the `sync` module: transcript sync of Claude Code and
//!   Codex logs, from `sonde-sync`;
//! - with `otlp`, the `otlp` module: OTLP decoding and export, from `sonde-otlp`;
//!   with `langfuse`, the `langfuse` module (a Langfuse sink); with `server`, the
//!   `server` module (the receivers and REST API `sonde serve` runs).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sonde::*;
//! let store = sonde::open("sqlite::memory:").await?;
//! let tracer = SessionTracer::new(store)?;
//! tracer.start_session(Some("demo"), Default::default()).await?;
//! tracer.start_timestep("turn-1", Some(1), Default::default()).await?;
//! tracer.record_event(Event::Llm(LlmCall {
//!     provider: Some("anthropic".into()),
//!     model_name: "claude-sonnet-4-5".into(),
//!     input_tokens: 1_200,
//!     output_tokens: 300,
//!     ..Default::default()
//! })).await?;
//! let trace = tracer.end_session(true).await?;
//! assert_eq!(trace.events.len(), 1);
//! # Ok(()) }
//! ```

#[cfg(feature = "sqlite")]
pub mod compat;
pub mod demo;
pub mod json;
pub mod retention;
pub mod schema;

// A deliberate API: the record vocabulary and the tracer. The plumbing the crates share
// (retry policies, error-cause formatting, sync cursors) stays in the crates.
pub use sonde_model::{
    Body, Context, CustomEvent, Entry, EnvironmentFeedback, Event, EventReward, Json, Level,
    LlmCall, LlmCallRecord, Message, MessageContent, Metadata, OutcomeReward, ParseError,
    PromptBuilt, RECORD_KINDS, Record, RuntimeAction, SCHEMA_VERSION, SessionEnded, SessionStarted,
    SessionTrace, SinkError, Status, StepEnded, StepStarted, StepTrace, StreamEvent, Timestamp,
    TimestampError, ToolCallStarted, TraceFold, TraceSink, derived_id, derived_id_at, new_id,
};
pub use sonde_tracer::{
    BATCH_LINGER, HookCallback, HookContext, HookEvent, HookManager, JsonlSink, LookupError,
    MAX_BATCH, Occurrence, QUEUE_CAPACITY, RecordError, SessionHandle, SessionTracer, StderrSink,
    StoreSink, TeeSink, TracerBuilder, WriterSink,
};

/// Stores: the [`TraceStore`](store::TraceStore) trait, its backends, and what they
/// take and return.
pub mod store {
    // A deliberate API: the stores, their capabilities and what they take and return;
    // the writer, its settings and diagnostics; and the spool's on-disk names and
    // reader, for tools that look into a spool. Backoff steps, the SQL dialect and the
    // writer's internal sizes stay in the crate.
    #[cfg(feature = "postgres")]
    pub use sonde_store::PostgresStore;
    pub use sonde_store::{
        Accepted, Ack, Analytics, AnalyticsFilter, ApiKey, BackendError, Bucket, CallDetail,
        CallFilter, CallPage, CallPricer, CallSummary, Corruption, CursorStore, DEFAULT_BATCH_SIZE,
        DEFAULT_BATCH_TIMEOUT, DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_ROWS, DEFAULT_QUEUE_CAPACITY,
        DEFAULT_SPOOL_CAP, DEFAULT_STATEMENT_TIMEOUT, DEFAULT_WRITE_ATTEMPTS,
        DEFAULT_WRITE_TIMEOUT, DatabaseIdentity, DiagnosticsReader, Enqueued, ErrorClass,
        ErrorStats, GroupBy, GroupValues, KeyStats, KeyStore, LANES_DIR, LastFailure,
        LatencyOverview, LatencyPoint, LatencyStats, ModelStats, OpenError, Pressure, QueryError,
        QueryLimits, QueryResult, REDACTED, REJECTED_FILE, ReadError, RecordStore, SPOOL_FILE,
        Scope, SeriesPoint, SessionFilter, SessionPage, SessionSummary, ShutdownReport, SortedRuns,
        SpoolError, SqlQuery, StoreSink, StoreUrl, SubmitError, SyncCursor, TraceStore,
        UsageSummary, WriteEnd, WriteError, WriteFailure, WriteOutcome, Writer, WriterConfig,
        WriterDiagnostics, WriterError, WriterMetrics, WriterSink, damage_line, read_spool,
        redact_url,
    };
    #[cfg(feature = "sqlite")]
    pub use sonde_store::{BackupError, SqliteStore, backup_sqlite};
}

/// Model prices: the shipped table (with `--prices`-style overrides) that prices calls.
pub mod pricing {
    pub use sonde_pricing::*;
}

/// The shipped price table as a store's pricer: what the `sonde` command gives every
/// store it opens, so that a call that reports no cost gets one computed (kept as
/// `computed_cost_usd`).
///
/// ```
/// let call = sonde::LlmCall {
///     model_name: "claude-sonnet-4-5".into(),
///     input_tokens: 1_000_000,
///     ..Default::default()
/// };
/// assert!(sonde::shipped_prices()(&call).is_some_and(|usd| usd > 0.0));
/// ```
pub fn shipped_prices() -> store::CallPricer {
    std::sync::Arc::new(|call: &LlmCall| sonde_pricing::PriceTable::global().cost(call))
}

/// Opens (creating it if needed) the store `url` names (`sqlite://PATH`,
/// `sqlite::memory:`, `postgres://...`), pricing calls by [`shipped_prices`]. A store
/// opened through [`store::StoreUrl::open`] computes no cost: the store knows no prices.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), sonde::store::OpenError> {
/// let store = sonde::open("sqlite::memory:").await?;
/// assert_eq!(store.backend(), "sqlite");
/// # Ok(()) }
/// ```
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn store::TraceStore>, store::OpenError> {
    store::StoreUrl::parse(url)?
        .open_with(Some(shipped_prices()))
        .await
}

/// Transcript sync: agent CLI logs (Claude Code, Codex) into traces, incrementally.
#[cfg(feature = "sync")]
pub mod sync {
    pub use sonde_sync::*;
}

/// OpenTelemetry in and out: OTLP decoding, spans to records and back, and the
/// OTLP/HTTP exporter sink.
#[cfg(feature = "otlp")]
pub mod otlp {
    pub use sonde_otlp::*;
}

/// A sink for Langfuse's ingestion API.
#[cfg(feature = "langfuse")]
pub mod langfuse {
    pub use sonde_langfuse::*;
}

/// The server `sonde serve` runs: OTLP/HTTP and gRPC receivers and the REST API.
#[cfg(feature = "server")]
pub mod server {
    pub use sonde_server::*;
}
