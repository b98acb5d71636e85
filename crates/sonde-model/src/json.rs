//! [`Json`]: a JSON value that may stay the text it came as.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON value, kept as the text it arrived as until something looks inside.
///
/// The messages of an LLM call are most of a trace's bytes, and on the way in they mostly
/// pass through: they arrive as JSON text (an OpenTelemetry attribute) and are stored as
/// JSON text. `Json` keeps such text as it is — checked to be JSON — and parses it the
/// first time something reads it as a [`Value`] (through `Deref`), so ingest neither
/// builds nor walks nor frees a tree for it. Values built in code are kept as values.
/// Two `Json`s are equal when their values are.
///
/// ```
/// use sonde_model::Json;
/// let text = Json::from_text(r#"[{"role":"user","content":"hi"}]"#).unwrap();
/// assert_eq!(text[0]["role"], "user");
/// assert_eq!(text, Json::from(serde_json::json!([{"role": "user", "content": "hi"}])));
/// assert!(Json::from_text("not json").is_none());
/// ```
#[derive(Clone)]
pub struct Json(Repr);

#[derive(Clone)]
enum Repr {
    Value(Value),
    Text {
        text: Box<RawValue>,
        parsed: OnceLock<Value>,
    },
}

impl Json {
    /// The JSON `text` (one value, surrounding whitespace allowed), kept as text;
    /// `None` when it is not JSON.
    ///
    /// ```
    /// assert!(sonde_model::Json::from_text(" {\"a\": 1} ").is_some());
    /// assert!(sonde_model::Json::from_text("{\"a\": ").is_none());
    /// ```
    pub fn from_text(text: &str) -> Option<Json> {
        let text: Box<RawValue> = serde_json::from_str(text).ok()?;
        Some(Json(Repr::Text {
            text,
            parsed: OnceLock::new(),
        }))
    }

    /// The JSON `text` kept as text, as [`Json::from_text`] does, with `value` — what
    /// the caller parsed it to — already at hand: a reader that looks inside (the
    /// store's full-text index does) does not parse it again. `None` when `text` is
    /// not JSON. The caller vouches that `value` is what `text` says.
    ///
    /// ```
    /// let text = r#"{"model":"gpt-5"}"#;
    /// let value: serde_json::Value = serde_json::from_str(text).unwrap();
    /// let json = sonde_model::Json::from_parsed(text, value).unwrap();
    /// assert_eq!(json["model"], "gpt-5");
    /// assert_eq!(serde_json::to_string(&json).unwrap(), text);
    /// ```
    pub fn from_parsed(text: &str, value: Value) -> Option<Json> {
        let text: Box<RawValue> = serde_json::from_str(text).ok()?;
        Some(Json(Repr::Text {
            text,
            parsed: OnceLock::from(value),
        }))
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        Json(Repr::Value(value))
    }
}

impl std::ops::Deref for Json {
    type Target = Value;

    fn deref(&self) -> &Value {
        match &self.0 {
            Repr::Value(value) => value,
            // The text was checked to be JSON when it was kept, so it parses.
            Repr::Text { text, parsed } => {
                parsed.get_or_init(|| serde_json::from_str(text.get()).unwrap_or(Value::Null))
            }
        }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Value(value) => value.serialize(serializer),
            // serde_json writes raw text as it is.
            Repr::Text { text, .. } => text.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Json::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_written_as_it_came_and_reads_back_as_the_same_value() {
        let text = r#"{"messages":[{"role":"user","content":"say \"hi\"\n"}],"n":1.5}"#;
        let json = Json::from_text(text).unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), text);
        let back: Json = serde_json::from_str(text).unwrap();
        assert_eq!(back, json);
        assert_eq!(json["messages"][0]["content"], "say \"hi\"\n");
        assert_eq!(serde_json::to_value(&json).unwrap(), *back);
    }

    #[test]
    fn values_and_text_compare_by_value() {
        assert_eq!(
            Json::from_text("[1, 2]").unwrap(),
            Json::from(serde_json::json!([1, 2]))
        );
        assert_ne!(
            Json::from_text("[1]").unwrap(),
            Json::from_text("[2]").unwrap()
        );
    }
}
