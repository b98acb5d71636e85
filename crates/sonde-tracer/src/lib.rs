//! Sonde's `SessionTracer`: record sessions, timesteps, events, messages and rewards,
//! and send them to any sink — a store, a JSONL file, stderr, or several at once.
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
mod sink;
mod tracer;
mod worker;

pub use hooks::{HookCallback, HookContext, HookEvent, HookManager};
pub use sink::{JsonlSink, SinkError, StderrSink, StoreSink, TeeSink, TraceSink, WriterSink};
pub use tracer::{LookupError, RecordError, SessionHandle, SessionTracer, TracerBuilder};
pub use worker::{BATCH_LINGER, MAX_BATCH, QUEUE_CAPACITY};
