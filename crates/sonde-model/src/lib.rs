//! Sonde's record vocabulary: the contract between every source and every sink.
//!
//! Everything Sonde records is a stream of [`Record`]s — `{schema_version, id,
//! timestamp, context, kind, payload}`, one JSON object per line. A record says that a
//! session or step started or ended, that an [`Event`] happened (an [`LlmCall`], a
//! [`RuntimeAction`] such as a tool call, [`EnvironmentFeedback`], or a
//! [`CustomEvent`]), that a [`Message`] crossed a boundary between systems, or that a
//! reward was given. [`SessionTrace`] is the assembled view, built by folding records.
//!
//! This crate does no I/O.
//!
//! ```
//! use sonde_model::*;
//! let ctx = Context::session("session-1").with_step("turn-1");
//! let call = LlmCall {
//!     provider: Some("openai".into()),
//!     model_name: "gpt-5".into(),
//!     input_tokens: 900,
//!     output_tokens: 120,
//!     ..Default::default()
//! };
//! let record = Record::new(ctx, Body::Event(Event::Llm(call)));
//! let line = record.to_json_line();
//! assert_eq!(Record::from_json_line(&line).unwrap(), record);
//! ```

mod causes;
mod cursor;
mod event;
mod id;
mod json;
mod message;
mod record;
mod retry;
mod reward;
mod session;
mod sink;
mod timestamp;
mod totals;

pub use causes::message_with_causes;
pub use cursor::SyncCursor;
pub use event::{
    CustomEvent, EnvironmentFeedback, Event, Level, LlmCall, LlmCallRecord, PromptBuilt,
    RuntimeAction, Status, StreamEvent, ToolCallStarted,
};
pub use id::{derived_id, derived_id_at, new_id};
pub use json::Json;
pub use message::{Message, MessageContent};
pub use record::{
    Body, Context, ParseError, RECORD_KINDS, Record, SCHEMA_VERSION, SessionEnded, SessionStarted,
    StepEnded, StepStarted,
};
pub use retry::{Attempt, MAX_RETRY_AFTER, RetryPolicy, parse_retry_after, retry_wait};
pub use reward::{EventReward, OutcomeReward};
pub use session::{Entry, SessionTrace, StepTrace, TraceFold};
pub use sink::{SinkError, TraceSink};
pub use timestamp::{Timestamp, TimestampError};
pub use totals::SessionTotals;

/// Free-form metadata: a JSON object with keys in sorted order.
///
/// ```
/// let mut m = sonde_model::Metadata::new();
/// m.insert("user_id".into(), "u-1".into());
/// assert_eq!(m["user_id"], "u-1");
/// ```
pub type Metadata = serde_json::Map<String, serde_json::Value>;
