//! Sonde's `SessionTracer`: record sessions, timesteps, events, messages and rewards,
//! and send them to any sink — a store, a JSONL file, stderr, or several at once.
//!
//! Features: `store` (default) builds the tracer over a Sonde store (seed 000's
//! `SessionTracer::new(store)`, reads with `get_session` and `query`); `sqlite`
//! (default) adds the embedded SQLite backend. Without them the tracer depends on the
//! record model alone and writes to any [`TraceSink`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sonde_model::*;
//! use sonde_tracer::{JsonlSink, SessionTracer};
//! let dir = tempfile::tempdir()?;
//! let tracer = SessionTracer::with_sink(Arc::new(JsonlSink::create(dir.path().join("trace.jsonl"))?))?;
//! tracer.start_session(Some("s-1"), Default::default()).await?;
//! tracer.record_event(Event::Custom(CustomEvent { name: "hello".into(), ..Default::default() })).await?;
//! tracer.end_session(true).await?;
//! let lines = std::fs::read_to_string(dir.path().join("trace.jsonl"))?;
//! assert_eq!(lines.lines().count(), 3);
//! # Ok(()) }
//! ```

mod hooks;
#[cfg(feature = "store")]
mod reads;
mod sink;
mod tracer;
mod worker;

pub use hooks::{HookCallback, HookContext, HookEvent, HookManager};
#[cfg(feature = "store")]
pub use reads::LookupError;
pub use sink::{JsonlSink, SinkError, StderrSink, TeeSink, TraceSink};
/// The store's sinks, re-exported from `sonde-store` where the tracer has always
/// offered them (with the `store` feature).
#[cfg(feature = "store")]
pub use sonde_store::{StoreSink, WriterSink};
pub use tracer::{Occurrence, RecordError, SessionHandle, SessionTracer, TracerBuilder};
pub use worker::{BATCH_LINGER, MAX_BATCH, QUEUE_CAPACITY};
