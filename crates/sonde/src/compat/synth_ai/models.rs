//! Seed 000's data types, with its names and fields.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// When an event or message happened: `event_time` in seconds since the epoch.
///
/// ```
/// assert!(sonde::compat::synth_ai::TimeRecord::now().event_time > 0.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeRecord {
    /// Seconds since the epoch.
    pub event_time: f64,
    /// An external message time or sequence number.
    #[serde(default)]
    pub message_time: Option<i64>,
}

impl TimeRecord {
    /// Now.
    pub fn now() -> Self {
        Self {
            event_time: crate::Timestamp::now().as_micros() as f64 / 1e6,
            message_time: None,
        }
    }
}

/// A message's content: text, or JSON kept as its text.
///
/// ```
/// let c = sonde::compat::synth_ai::MessageContent::from_json(&serde_json::json!({"a": 1}));
/// assert_eq!(c.as_text(), Some(r#"{"a":1}"#));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageContent {
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// JSON, as text.
    #[serde(default)]
    pub json_payload: Option<String>,
}

impl MessageContent {
    /// Text content.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            json_payload: None,
        }
    }

    /// JSON content.
    pub fn from_json(value: &Value) -> Self {
        Self {
            text: None,
            json_payload: Some(value.to_string()),
        }
    }

    /// The text, else the JSON's text.
    pub fn as_text(&self) -> Option<&str> {
        self.text.as_deref().or(self.json_payload.as_deref())
    }
}

/// Which kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An LLM call.
    Cais,
    /// An environment step.
    Environment,
    /// A runtime action.
    Runtime,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventType::Cais => "cais",
            EventType::Environment => "environment",
            EventType::Runtime => "runtime",
        })
    }
}

/// The fields every event has.
///
/// ```
/// assert_eq!(sonde::compat::synth_ai::BaseEventFields::new("agent").system_instance_id, "agent");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseEventFields {
    /// The system that produced it.
    pub system_instance_id: String,
    /// When.
    pub time_record: TimeRecord,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
    /// Structured metadata that is not a map.
    #[serde(default)]
    pub event_metadata: Option<Vec<Value>>,
}

impl BaseEventFields {
    /// Fields of an event of `system_instance_id`, happening now.
    pub fn new(system_instance_id: impl Into<String>) -> Self {
        Self {
            system_instance_id: system_instance_id.into(),
            time_record: TimeRecord::now(),
            ..Default::default()
        }
    }
}

/// An LLM call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LMCAISEvent {
    /// The common fields.
    #[serde(flatten)]
    pub base: BaseEventFields,
    /// The model.
    pub model_name: String,
    /// The provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: Option<i32>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<i32>,
    /// Input + output tokens.
    #[serde(default)]
    pub total_tokens: Option<i32>,
    /// Cost in USD.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<i32>,
    /// OpenTelemetry span id.
    #[serde(default)]
    pub span_id: Option<String>,
    /// OpenTelemetry trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The calls' requests and responses.
    #[serde(default)]
    pub call_records: Option<Vec<LLMCallRecord>>,
    /// State before the call.
    #[serde(default)]
    pub system_state_before: Option<Value>,
    /// State after the call.
    #[serde(default)]
    pub system_state_after: Option<Value>,
}

/// An environment step (Gymnasium style).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentEvent {
    /// The common fields.
    #[serde(flatten)]
    pub base: BaseEventFields,
    /// The reward.
    #[serde(default)]
    pub reward: f64,
    /// The episode ended in a terminal state.
    #[serde(default)]
    pub terminated: bool,
    /// The episode was cut short.
    #[serde(default)]
    pub truncated: bool,
    /// State before the step.
    #[serde(default)]
    pub system_state_before: Option<Value>,
    /// State after the step.
    #[serde(default)]
    pub system_state_after: Option<Value>,
}

/// A runtime action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    /// The common fields.
    #[serde(flatten)]
    pub base: BaseEventFields,
    /// Action indices.
    #[serde(default)]
    pub actions: Vec<i32>,
}

/// Any event.
///
/// ```
/// use sonde::compat::synth_ai::{EventType, RuntimeEvent, TracingEvent};
/// assert_eq!(TracingEvent::Runtime(RuntimeEvent::default()).event_type(), EventType::Runtime);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum TracingEvent {
    /// An LLM call.
    Cais(LMCAISEvent),
    /// An environment step.
    Environment(EnvironmentEvent),
    /// A runtime action.
    Runtime(RuntimeEvent),
}

impl TracingEvent {
    /// Its kind.
    pub fn event_type(&self) -> EventType {
        match self {
            TracingEvent::Cais(_) => EventType::Cais,
            TracingEvent::Environment(_) => EventType::Environment,
            TracingEvent::Runtime(_) => EventType::Runtime,
        }
    }

    /// Its common fields.
    pub fn base(&self) -> &BaseEventFields {
        match self {
            TracingEvent::Cais(e) => &e.base,
            TracingEvent::Environment(e) => &e.base,
            TracingEvent::Runtime(e) => &e.base,
        }
    }

    /// When it happened.
    pub fn time_record(&self) -> &TimeRecord {
        &self.base().time_record
    }

    /// The system that produced it.
    pub fn system_instance_id(&self) -> &str {
        &self.base().system_instance_id
    }
}

/// Token usage of an LLM call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LLMUsage {
    #[serde(default)]
    pub input_tokens: Option<i32>,
    #[serde(default)]
    pub output_tokens: Option<i32>,
    #[serde(default)]
    pub total_tokens: Option<i32>,
    #[serde(default)]
    pub reasoning_tokens: Option<i32>,
    #[serde(default)]
    pub cache_read_tokens: Option<i32>,
    #[serde(default)]
    pub cache_write_tokens: Option<i32>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// A part of an LLM message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMContentPart {
    /// `text`, `image`, ...
    #[serde(rename = "type")]
    pub content_type: String,
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// Other data.
    #[serde(default)]
    pub data: Option<Value>,
    /// The media's MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
}

impl LLMContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content_type: "text".into(),
            text: Some(text.into()),
            ..Default::default()
        }
    }
}

/// A provider chat message.
///
/// ```
/// let m = sonde::compat::synth_ai::LLMMessage::new("user", "hi");
/// assert_eq!(m.text(), Some("hi"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LLMMessage {
    /// `system`, `user`, `assistant`, `tool`.
    pub role: String,
    /// The content.
    #[serde(default)]
    pub parts: Vec<LLMContentPart>,
    /// A name.
    #[serde(default)]
    pub name: Option<String>,
    /// The tool call answered.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

impl LLMMessage {
    /// A text message from `role`.
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            parts: vec![LLMContentPart::text(text)],
            ..Default::default()
        }
    }

    /// Its first text.
    pub fn text(&self) -> Option<&str> {
        self.parts.iter().find_map(|p| p.text.as_deref())
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ToolCallSpec {
    pub name: String,
    pub arguments_json: String,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub index: Option<i32>,
}

/// What a tool call returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ToolCallResult {
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub output_text: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i32>,
}

/// One LLM request and response, normalised (kept whole in Sonde's call records).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct LLMCallRecord {
    pub call_id: String,
    pub api_type: String,
    #[serde(default)]
    pub provider: Option<String>,
    pub model_name: String,
    #[serde(default, with = "rfc3339_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, with = "rfc3339_option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub latency_ms: Option<i32>,
    #[serde(default)]
    pub input_messages: Vec<LLMMessage>,
    #[serde(default)]
    pub output_messages: Vec<LLMMessage>,
    #[serde(default)]
    pub output_tool_calls: Vec<ToolCallSpec>,
    #[serde(default)]
    pub tool_results: Vec<ToolCallResult>,
    #[serde(default)]
    pub usage: Option<LLMUsage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

/// A message between systems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkovBlanketMessage {
    /// The content.
    pub content: MessageContent,
    /// `user`, `assistant`, `tool_use`, `tool_result`, ...
    pub message_type: String,
    /// When.
    pub time_record: TimeRecord,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

/// A timestep of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTimeStep {
    /// Its id.
    pub step_id: String,
    /// Its position, from 0.
    pub step_index: i32,
    /// When it started.
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// The conversation turn.
    #[serde(default)]
    pub turn_number: Option<i32>,
    /// Its events.
    #[serde(default)]
    pub events: Vec<TracingEvent>,
    /// Its messages.
    #[serde(default)]
    pub markov_blanket_messages: Vec<MarkovBlanketMessage>,
    /// Its metadata.
    #[serde(default)]
    pub step_metadata: HashMap<String, Value>,
    /// When it ended.
    #[serde(default, with = "rfc3339_option")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl SessionTimeStep {
    /// A step starting now.
    pub fn new(step_id: impl Into<String>, step_index: i32) -> Self {
        Self {
            step_id: step_id.into(),
            step_index,
            timestamp: Utc::now(),
            turn_number: None,
            events: Vec::new(),
            markov_blanket_messages: Vec::new(),
            step_metadata: HashMap::new(),
            completed_at: None,
        }
    }

    /// Marks it completed now.
    pub fn complete(&mut self) {
        self.completed_at = Some(Utc::now());
    }
}

/// A whole session in the seed's shape.
///
/// ```
/// assert_eq!(sonde::compat::synth_ai::SessionTrace::new("s").num_events(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTrace {
    /// Its id.
    pub session_id: String,
    /// When it started.
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Its steps.
    #[serde(default)]
    pub session_time_steps: Vec<SessionTimeStep>,
    /// Every event.
    #[serde(default)]
    pub event_history: Vec<TracingEvent>,
    /// Every message.
    #[serde(default)]
    pub markov_blanket_message_history: Vec<MarkovBlanketMessage>,
    /// Its metadata.
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

impl SessionTrace {
    /// An empty session starting now.
    pub fn new(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            created_at: Utc::now(),
            session_time_steps: Vec::new(),
            event_history: Vec::new(),
            markov_blanket_message_history: Vec::new(),
            metadata: HashMap::new(),
        }
    }

    /// How many steps.
    pub fn num_timesteps(&self) -> usize {
        self.session_time_steps.len()
    }

    /// How many events.
    pub fn num_events(&self) -> usize {
        self.event_history.len()
    }

    /// How many messages.
    pub fn num_messages(&self) -> usize {
        self.markov_blanket_message_history.len()
    }
}

/// A session-level reward.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct OutcomeReward {
    pub objective_key: String,
    pub total_reward: f64,
    #[serde(default)]
    pub achievements_count: i32,
    #[serde(default)]
    pub total_steps: i32,
    #[serde(default)]
    pub reward_metadata: HashMap<String, Value>,
    #[serde(default)]
    pub annotation: Option<Value>,
}

/// A reward on one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EventReward {
    pub objective_key: String,
    pub reward_value: f64,
    #[serde(default)]
    pub reward_type: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub annotation: Option<Value>,
    #[serde(default)]
    pub source: Option<String>,
}

/// `DateTime<Utc>` as RFC 3339 text (Sonde builds chrono without its serde feature).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// `Option<DateTime<Utc>>` as RFC 3339 text or null.
mod rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}
