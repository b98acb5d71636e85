//! OTLP/JSON (the encoding of OTLP/HTTP JSON bodies and of OTel file exporters).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::span::{Span, SpanStatus, check_id};

/// Why an OTLP/JSON body cannot be read at all.
///
/// ```
/// assert!(sonde_otlp::decode_json("{oops").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid OTLP/JSON: {0}")]
pub struct DecodeError(pub String);

/// A span left out of a request, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The span's name, if it had one.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The spans of a request, and those that could not be read (OTLP's partial success).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Spans read.
    pub spans: Vec<Span>,
    /// Spans rejected, with the reason.
    pub rejected: Vec<Rejected>,
}

impl Decoded {
    /// Moves the spans whose values cannot be stored as sent (see
    /// [`crate::mapping::value_problem`]) to the rejected ones: never a number changed
    /// silently.
    pub(crate) fn reject_out_of_range(mut self) -> Self {
        let (kept, refused): (Vec<Span>, Vec<Span>) = std::mem::take(&mut self.spans)
            .into_iter()
            .partition(|span| crate::mapping::value_problem(span).is_none());
        for span in refused {
            let reason = crate::mapping::value_problem(&span).unwrap_or_default();
            self.rejected.push(Rejected {
                name: span.name,
                reason,
            });
        }
        self.spans = kept;
        self
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    #[serde(default)]
    resource: Option<Attributed>,
    #[serde(default, alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Deserialize)]
struct Attributed {
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans {
    #[serde(default, alias = "instrumentationLibrary")]
    scope: Option<Scope>,
    #[serde(default)]
    spans: Vec<Value>,
}

#[derive(Deserialize)]
struct Scope {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpan {
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: Value,
    #[serde(default)]
    start_time_unix_nano: Value,
    #[serde(default)]
    end_time_unix_nano: Value,
    #[serde(default)]
    attributes: Vec<KeyValue>,
    #[serde(default)]
    events: Vec<RawEvent>,
    #[serde(default)]
    status: Option<RawStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_unix_nano: Value,
    #[serde(default)]
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct RawStatus {
    #[serde(default)]
    code: Value,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: Value,
}

/// An OTLP `AnyValue` (`{"stringValue": ...}`, `{"intValue": "5"}`, ...) as plain JSON.
fn any_value(v: &Value) -> Value {
    let Some(object) = v.as_object() else {
        return Value::Null;
    };
    let Some((kind, inner)) = object.iter().next() else {
        return Value::Null;
    };
    match kind.as_str() {
        "stringValue" | "boolValue" | "doubleValue" => inner.clone(),
        "intValue" => match inner {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| inner.clone(), Value::from),
            other => other.clone(),
        },
        "bytesValue" => inner.clone(),
        "arrayValue" => Value::Array(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map(|values| values.iter().map(any_value).collect())
                .unwrap_or_default(),
        ),
        "kvlistValue" => Value::Object(attributes(
            &inner
                .get("values")
                .and_then(|v| serde_json::from_value::<Vec<KeyValue>>(v.clone()).ok())
                .unwrap_or_default(),
        )),
        _ => Value::Null,
    }
}

fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(&kv.value)))
        .collect()
}

/// Nanoseconds given as a JSON string or number.
fn nanos(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        Value::Null => Some(0),
        _ => None,
    }
}

fn int_or_name(v: &Value, names: &[&str]) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => names.iter().position(|n| n == s).map_or(0, |i| i as i64),
        _ => 0,
    }
}

fn span(
    raw: RawSpan,
    resource: &Map<String, Value>,
    scope: &Option<String>,
) -> Result<Span, String> {
    let trace_id = check_id(&raw.trace_id, 16, "traceId")?;
    let span_id = check_id(&raw.span_id, 8, "spanId")?;
    let parent_span_id = match raw.parent_span_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(check_id(id, 8, "parentSpanId")?),
    };
    let start = nanos(&raw.start_time_unix_nano).ok_or("startTimeUnixNano is not a number")?;
    let end = nanos(&raw.end_time_unix_nano).ok_or("endTimeUnixNano is not a number")?;
    let (status, status_message) = match raw.status {
        Some(s) => (
            match int_or_name(
                &s.code,
                &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"],
            ) {
                1 => SpanStatus::Ok,
                2 => SpanStatus::Error,
                _ => SpanStatus::Unset,
            },
            s.message.filter(|m| !m.is_empty()),
        ),
        None => (SpanStatus::Unset, None),
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: raw.name,
        kind: int_or_name(
            &raw.kind,
            &[
                "SPAN_KIND_UNSPECIFIED",
                "SPAN_KIND_INTERNAL",
                "SPAN_KIND_SERVER",
                "SPAN_KIND_CLIENT",
                "SPAN_KIND_PRODUCER",
                "SPAN_KIND_CONSUMER",
            ],
        ),
        start_unix_nano: start,
        end_unix_nano: end.max(start),
        status,
        status_message,
        attributes: attributes(&raw.attributes),
        events: raw
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name,
                    "time_unix_nano": nanos(&e.time_unix_nano).unwrap_or(0),
                    "attributes": attributes(&e.attributes),
                })
            })
            .collect(),
        resource: resource.clone(),
        scope: scope.clone(),
    })
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`. A span with a malformed trace or
/// span id (or times) is rejected with its reason; the others are kept.
///
/// ```
/// let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
///   {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok"},
///   {"traceId":"nope","spanId":"eee19b7ec3c1b174","name":"bad"}]}]}]}"#;
/// let decoded = sonde_otlp::decode_json(body).unwrap();
/// assert_eq!(decoded.spans.len(), 1);
/// assert_eq!(decoded.rejected[0].name, "bad");
/// ```
pub fn decode_json(body: &str) -> Result<Decoded, DecodeError> {
    let request: Request = serde_json::from_str(body).map_err(|e| DecodeError(e.to_string()))?;
    let mut decoded = Decoded::default();
    for rs in request.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.and_then(|s| s.name);
            for value in ss.spans {
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let result = serde_json::from_value::<RawSpan>(value)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| span(raw, &resource, &scope));
                match result {
                    Ok(span) => decoded.spans.push(span),
                    Err(reason) => decoded.rejected.push(Rejected { name, reason }),
                }
            }
        }
    }
    Ok(decoded.reject_out_of_range())
}
