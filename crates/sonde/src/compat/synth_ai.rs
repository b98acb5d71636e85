//! Seed 000's names (`synth_ai_core::tracing`) over Sonde: `SessionTracer`,
//! `LibsqlTraceStorage::new_memory`, `TracingEvent::Cais(LMCAISEvent)`, `TracingError`,
//! `QueryParams`, the seed's models and hooks, and integer ids where the seed returns
//! them. A program written against the seed compiles with its `use` lines changed to
//! `sonde::compat::synth_ai`, and records into a Sonde store: the same records the
//! `sonde` command shows.
//!
//! The adapters convert at the edges: the seed's events become Sonde's [`Event`](crate::Event)s (its
//! `time_record` the record's time, its span and trace ids the record's), its integer
//! ids map to Sonde's record ids within one tracer, and a session comes back in the
//! seed's shape (`session_time_steps`, `event_history`,
//! `markov_blanket_message_history`; Sonde's custom events have no seed kind and are
//! left out of it).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sonde::compat::synth_ai::{BaseEventFields, LMCAISEvent, LibsqlTraceStorage, SessionTracer, TracingEvent};
//! let tracer = SessionTracer::new(Arc::new(LibsqlTraceStorage::new_memory().await?));
//! tracer.start_session(None, Default::default()).await?;
//! tracer.start_timestep("step-1", Some(1), Default::default()).await?;
//! let id = tracer.record_event(TracingEvent::Cais(LMCAISEvent {
//!     base: BaseEventFields::new("agent"),
//!     model_name: "gpt-4".into(),
//!     input_tokens: Some(100),
//!     output_tokens: Some(50),
//!     ..Default::default()
//! })).await?;
//! assert_eq!(id, Some(1));
//! let trace = tracer.end_session(true).await?;
//! assert_eq!(trace.session_time_steps[0].events.len(), 1);
//! # Ok(()) }
//! ```

mod convert;
mod hooks;
mod models;
mod tracer;

pub use hooks::{HookCallback, HookContext, HookEvent, HookManager};
pub use models::{
    BaseEventFields, EnvironmentEvent, EventReward, EventType, LLMCallRecord, LLMContentPart,
    LLMMessage, LLMUsage, LMCAISEvent, MarkovBlanketMessage, MessageContent, OutcomeReward,
    RuntimeEvent, SessionTimeStep, SessionTrace, TimeRecord, ToolCallResult, ToolCallSpec,
    TracingEvent,
};
pub use tracer::{LibsqlTraceStorage, QueryParams, SessionTracer, TracingError};
