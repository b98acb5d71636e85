//! One line of a lash trace: the envelope every schema version shares
//! (`schema_version`, `id`, `timestamp`, `context`, `type`) and the rest of the object,
//! the event's own fields, left as JSON for the mapping to read by name.

use serde_json::{Map, Value};
use sonde_model::Timestamp;

/// The context fields lash writes on every record (`TraceContext`), as far as the
/// mapping needs them; the whole context object stays in [`LashLine::context`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LashContext {
    pub session_id: Option<String>,
    pub turn_id: Option<String>,
    pub turn_index: Option<u64>,
    pub llm_call_id: Option<String>,
}

/// A parsed line: its envelope, and the event fields beside it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LashLine {
    pub schema_version: u32,
    pub id: String,
    pub timestamp: Timestamp,
    pub kind: String,
    pub context: LashContext,
    /// The context object as written (every field, `metadata` included).
    pub context_object: Map<String, Value>,
    /// Every field but the envelope: the event's payload.
    pub fields: Map<String, Value>,
}

/// Why a line is not a lash trace record: one lowercase sentence naming the field.
pub(crate) type Reason = String;

/// Parses one non-empty line.
pub(crate) fn parse_line(line: &str) -> Result<LashLine, Reason> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid json: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err("not a json object".to_owned());
    };
    let schema_version = match fields.remove("schema_version") {
        None => return Err("missing field `schema_version`".to_owned()),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("invalid field `schema_version`: {v} is not a positive integer")
            })?,
    };
    let id = take_string(&mut fields, "id")?;
    let timestamp_text = take_string(&mut fields, "timestamp")?;
    let timestamp: Timestamp = timestamp_text
        .parse()
        .map_err(|e| format!("invalid field `timestamp`: {e}"))?;
    let kind = take_string(&mut fields, "type")?;
    let context_object = match fields.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "invalid field `context`: expected an object, found {}",
                type_name(&other)
            ));
        }
    };
    let context = LashContext {
        session_id: optional_string(&context_object, "context.session_id")?,
        turn_id: optional_string(&context_object, "context.turn_id")?,
        turn_index: optional_u64(&context_object, "context.turn_index")?,
        llm_call_id: optional_string(&context_object, "context.llm_call_id")?,
    };
    Ok(LashLine {
        schema_version,
        id,
        timestamp,
        kind,
        context,
        context_object,
        fields,
    })
}

fn take_string(fields: &mut Map<String, Value>, name: &str) -> Result<String, Reason> {
    match fields.remove(name) {
        None | Some(Value::Null) => Err(format!("missing field `{name}`")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("missing field `{name}`")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "invalid field `{name}`: expected a string, found {}",
            type_name(&other)
        )),
    }
}

/// The last segment of a dotted path: the key in its object.
fn key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// An optional string field of `object`; `path` names it in errors.
pub(crate) fn optional_string(
    object: &Map<String, Value>,
    path: &str,
) -> Result<Option<String>, Reason> {
    match object.get(key(path)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "invalid field `{path}`: expected a string, found {}",
            type_name(other)
        )),
    }
}

/// An optional non-negative integer field of `object`; `path` names it in errors.
pub(crate) fn optional_u64(object: &Map<String, Value>, path: &str) -> Result<Option<u64>, Reason> {
    match object.get(key(path)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("invalid field `{path}`: {v} is not a non-negative integer")),
    }
}

/// An optional object field of `object`; `path` names it in errors.
pub(crate) fn optional_object<'a>(
    object: &'a Map<String, Value>,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, Reason> {
    match object.get(key(path)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(format!(
            "invalid field `{path}`: expected an object, found {}",
            type_name(other)
        )),
    }
}

/// A required object field of `object`; `path` names it in errors.
pub(crate) fn object<'a>(
    object: &'a Map<String, Value>,
    path: &str,
) -> Result<&'a Map<String, Value>, Reason> {
    optional_object(object, path)?.ok_or_else(|| format!("missing field `{path}`"))
}

/// A required string field of `object`; `path` names it in errors.
pub(crate) fn string(object: &Map<String, Value>, path: &str) -> Result<String, Reason> {
    optional_string(object, path)?.ok_or_else(|| format!("missing field `{path}`"))
}

/// The JSON type of a value, as errors name it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LINE: &str = r#"{"schema_version":7,"id":"r1","timestamp":"2026-08-22T19:33:33.123456+00:00","context":{"session_id":"s1","turn_index":2},"type":"turn_started"}"#;

    #[test]
    fn the_envelope_is_read_and_the_rest_kept_as_fields() {
        let line = parse_line(LINE).unwrap();
        assert_eq!(line.schema_version, 7);
        assert_eq!(line.kind, "turn_started");
        assert_eq!(line.context.session_id.as_deref(), Some("s1"));
        assert_eq!(line.context.turn_index, Some(2));
        assert!(line.fields.is_empty());
    }

    #[test]
    fn bad_envelopes_name_the_field() {
        let cases = [
            ("[1]", "not a json object"),
            (r#"{"id":"x"}"#, "missing field `schema_version`"),
            (
                r#"{"schema_version":"7"}"#,
                "invalid field `schema_version`: \"7\" is not a positive integer",
            ),
            (
                r#"{"schema_version":7,"timestamp":"x"}"#,
                "missing field `id`",
            ),
            (
                r#"{"schema_version":7,"id":"a","timestamp":"yesterday","type":"custom"}"#,
                "invalid field `timestamp`: invalid timestamp \"yesterday\": expected RFC 3339, e.g. 2026-11-22T05:26:00Z",
            ),
            (
                r#"{"schema_version":7,"id":"a","timestamp":"2026-01-01T00:00:00Z"}"#,
                "missing field `type`",
            ),
            (
                r#"{"schema_version":7,"id":"a","timestamp":"2026-01-01T00:00:00Z","type":"custom","context":{"turn_index":-1}}"#,
                "invalid field `context.turn_index`: -1 is not a non-negative integer",
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(parse_line(line).unwrap_err(), reason, "{line}");
        }
        assert!(parse_line("{").unwrap_err().starts_with("invalid json: "));
    }
}
