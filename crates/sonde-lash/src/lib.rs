//! Reads [lash](https://github.com/Ascending-AI/lash)'s JSONL trace records into Sonde
//! records, for `sonde import --format lash`.
//!
//! lash writes one JSON object per line: `{schema_version, id, timestamp, context,
//! type, ...}` (its `lash-trace` crate's `TraceRecord`). This crate reads every
//! `TRACE_SCHEMA_VERSION` lash-trace has published (1 to 7; [`KNOWN_KINDS`] lists
//! each kind and the versions that wrote it) with a reader of its own, by field name,
//! so that one reader takes every version:
//!
//! - each lash session becomes a Sonde session (a `session_started` is made when the
//!   trace has none), each turn a step;
//! - an LLM call's start and its completion or failure become one LLM call, with its
//!   tokens (both of lash's usage shapes), latency, request and response (attachments
//!   and tool specs included);
//! - a tool call's start and completion become one tool call with its duration and
//!   outcome (`success`, `failure`, `cancelled`); a start the trace never completes
//!   stays a `tool_call_started` record;
//! - prompt builds become `prompt_built` records, provider and runtime stream events
//!   `stream_event` records (source `provider` or `runtime`);
//! - everything else (protocol steps, agent frame switches, Lashlang graph updates,
//!   durable-execution events, provider wire requests, ...) becomes a custom event
//!   named `lash.KIND` that keeps the lash payload;
//! - every event carries the level lash emits its kind at (`extended` for stream
//!   events, provider wire bodies and envelope diffs, else `standard`);
//! - a kind this reader does not know is kept the same way and counted
//!   ([`Report::unknown_kinds`]); a schema version newer than 7 is read as far as it is
//!   understood, with a warning naming the version; a bad line is a [`LineError`]
//!   naming file, line and field, and changes nothing.
//!
//! ```
//! let trace = r#"{"schema_version":7,"id":"a","timestamp":"2026-08-22T10:00:00Z","context":{"session_id":"s1","turn_id":"t1","llm_call_id":"l1"},"type":"llm_call_started","request":{"model":"gpt-5","messages":[],"tool_choice":"auto","stream":true}}
//! {"schema_version":7,"id":"b","timestamp":"2026-08-22T10:00:02Z","context":{"session_id":"s1","turn_id":"t1","llm_call_id":"l1"},"type":"llm_call_completed","response":{"text":"hi","duration_ms":2000},"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_write_input_tokens":0,"reasoning_output_tokens":0}}"#;
//! let import = sonde_lash::read("trace.jsonl", trace.as_bytes()).unwrap();
//! let sessions = sonde_model::SessionTrace::from_records(import.records);
//! let call = sessions[0].events[0].value.as_llm().unwrap();
//! assert_eq!((call.model_name.as_str(), call.total_tokens()), ("gpt-5", 115));
//! assert_eq!(call.latency_ms, Some(2000.0));
//! ```

mod kinds;
mod reader;
mod usage;
mod wire;

pub use kinds::{KNOWN_KINDS, KnownKind, NEWEST_SCHEMA_VERSION};
pub use reader::{LashImport, LashReader, LineError, Report, read};
