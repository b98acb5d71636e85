//! A span as Sonde reads it, whatever the wire format (OTLP/JSON or protobuf).

use serde_json::{Map, Value};

/// Whether a span succeeded, per its OTLP status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SpanStatus {
    /// Not set.
    #[default]
    Unset,
    /// Explicitly ok.
    Ok,
    /// Failed.
    Error,
}

/// One span, with its resource's and scope's attributes.
///
/// ```
/// let span = sonde_otlp::Span { name: "chat gpt-5".into(), ..Default::default() };
/// assert_eq!(span.trace_id, "");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, when the span has a parent.
    pub parent_span_id: Option<String>,
    /// The span's name.
    pub name: String,
    /// OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i64,
    /// Start, nanoseconds since the epoch.
    pub start_unix_nano: u64,
    /// End, nanoseconds since the epoch.
    pub end_unix_nano: u64,
    /// Status.
    pub status: SpanStatus,
    /// The status message.
    pub status_message: Option<String>,
    /// The span's attributes, as JSON values.
    pub attributes: Map<String, Value>,
    /// The span's events: `{name, time_unix_nano, attributes}`.
    pub events: Vec<Value>,
    /// The resource's attributes (`service.name`, ...).
    pub resource: Map<String, Value>,
    /// The instrumentation scope's name.
    pub scope: Option<String>,
}

/// Checks an id: `len` bytes as hex, not all zero. Returns it in lowercase.
pub(crate) fn check_id(id: &str, len: usize, field: &str) -> Result<String, String> {
    let id = id.trim();
    if id.len() != len * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{field} must be {} hex digits, got {id:?}",
            len * 2
        ));
    }
    if id.bytes().all(|b| b == b'0') {
        return Err(format!("{field} is all zeros"));
    }
    Ok(id.to_ascii_lowercase())
}
