//! OTLP protobuf (the encoding of OTLP/HTTP protobuf bodies and of OTLP/gRPC).

use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::{Map, Value, json};

use crate::json::{DecodeError, Decoded, Rejected};
use crate::span::{Span, SpanStatus, check_id};

/// A value as JSON, taken out of the request (its strings are moved, not copied).
fn any_value(v: AnyValue) -> Value {
    match v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(any_value).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes(kv.values)),
        Some(any_value::Value::BytesValue(b)) => {
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
        None => Value::Null,
    }
}

fn attributes(kvs: Vec<KeyValue>) -> Map<String, Value> {
    kvs.into_iter()
        .map(|kv| (kv.key, kv.value.map_or(Value::Null, any_value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

/// A binary id as lowercase hex, checked as ids in text are (`len` bytes, not all zero).
fn id_text(bytes: &[u8], len: usize, field: &str) -> Result<String, String> {
    if bytes.len() == len && bytes.iter().any(|b| *b != 0) {
        Ok(hex(bytes))
    } else {
        // The same reasons as for an id sent as text.
        check_id(&hex(bytes), len, field)
    }
}

/// Decodes an OTLP protobuf `ExportTraceServiceRequest`. A span with a malformed trace or
/// span id is rejected with its reason; the others are kept.
///
/// ```
/// assert!(sonde_otlp::decode_protobuf(b"\xff\xff\xff").is_err());
/// assert!(sonde_otlp::decode_protobuf(b"").unwrap().spans.is_empty());
/// ```
pub fn decode_protobuf(body: &[u8]) -> Result<Decoded, DecodeError> {
    let request =
        ExportTraceServiceRequest::decode(body).map_err(|e| DecodeError(e.to_string()))?;
    Ok(from_request(request))
}

/// The spans of a decoded protobuf request (OTLP/HTTP or gRPC).
pub fn from_request(request: ExportTraceServiceRequest) -> Decoded {
    let mut decoded = Decoded::default();
    for rs in request.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).filter(|n| !n.is_empty());
            for s in ss.spans {
                let ids = (|| -> Result<_, String> {
                    let trace_id = id_text(&s.trace_id, 16, "traceId")?;
                    let span_id = id_text(&s.span_id, 8, "spanId")?;
                    let parent = if s.parent_span_id.is_empty() {
                        None
                    } else {
                        Some(id_text(&s.parent_span_id, 8, "parentSpanId")?)
                    };
                    Ok((trace_id, span_id, parent))
                })();
                let (trace_id, span_id, parent_span_id) = match ids {
                    Ok(ids) => ids,
                    Err(reason) => {
                        decoded.rejected.push(Rejected {
                            name: s.name,
                            reason,
                        });
                        continue;
                    }
                };
                let (status, status_message) = match s.status {
                    Some(st) => (
                        match st.code {
                            1 => SpanStatus::Ok,
                            2 => SpanStatus::Error,
                            _ => SpanStatus::Unset,
                        },
                        Some(st.message).filter(|m| !m.is_empty()),
                    ),
                    None => (SpanStatus::Unset, None),
                };
                decoded.spans.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name: s.name,
                    kind: i64::from(s.kind),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    status,
                    status_message,
                    attributes: attributes(s.attributes),
                    events: s
                        .events
                        .into_iter()
                        .map(|e| json!({"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attributes(e.attributes)}))
                        .collect(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    decoded.reject_out_of_range()
}

/// The OTLP answer to a request, protobuf-encoded: empty on full success, else
/// `partial_success` with the count and reasons of rejected spans.
pub fn response_protobuf(rejected: &[Rejected]) -> Vec<u8> {
    response(rejected).encode_to_vec()
}

/// The OTLP answer to a request, JSON-encoded.
pub fn response_json(rejected: &[Rejected]) -> Value {
    if rejected.is_empty() {
        return json!({});
    }
    json!({"partialSuccess": {"rejectedSpans": rejected.len().to_string(), "errorMessage": message(rejected)}})
}

fn message(rejected: &[Rejected]) -> String {
    let mut reasons: Vec<String> = rejected
        .iter()
        .take(5)
        .map(|r| format!("span {:?}: {}", r.name, r.reason))
        .collect();
    if rejected.len() > 5 {
        reasons.push(format!("and {} more", rejected.len() - 5));
    }
    reasons.join("; ")
}

fn response(rejected: &[Rejected]) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected.len() as i64,
            error_message: message(rejected),
        }),
    }
}
