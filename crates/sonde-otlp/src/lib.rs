//! OpenTelemetry in: OTLP spans become Sonde records.
//!
//! [`decode_json`] reads OTLP/JSON (OTLP/HTTP JSON bodies, OTel file exporters);
//! [`span_to_records`] maps a span through one alias table covering the current
//! OpenTelemetry GenAI conventions, their deprecated names, OpenInference and
//! OpenLLMetry. LLM spans become `llm_call` records (tokens normalised: OpenTelemetry
//! counts cached tokens inside the input, Sonde does not), tool spans `runtime_event`s,
//! and every other span a `custom_event` — unknown attributes are kept, never a reason
//! to drop a span.
//!
//! ```
//! let body = std::fs::read_to_string("tests/data/spec_trace.json").unwrap();
//! let decoded = sonde_otlp::decode_json(&body).unwrap();
//! let records: Vec<_> = decoded.spans.into_iter().flat_map(sonde_otlp::span_to_records).collect();
//! assert_eq!(records[0].kind(), "custom_event");
//! ```

mod content;
mod export;
mod json;
mod mapping;
mod proto;
#[cfg(feature = "exporter")]
mod sink;
mod span;

pub use content::{DEFAULT_MAX_ATTRIBUTE_BYTES, ExportOptions, TRUNCATION_MARKER};
pub use export::{
    MAX_OPEN_SPANS, SESSION_TOTALS, STEP_PROMPT, STEP_REPLY, SpanMapper, export_request,
    record_spans, record_spans_with, record_to_span, spans_request,
};
pub use json::{DecodeError, Decoded, Rejected, decode_json};
pub use mapping::{session_of, span_to_records};
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use proto::{decode_protobuf, from_request, response_json, response_protobuf};
#[cfg(feature = "exporter")]
pub use sink::{
    EXPORT_ATTEMPTS, EXPORT_BATCH, EXPORT_RETRY, OtlpSink, export_answer, parse_headers,
};
pub use span::{Span, SpanStatus};
