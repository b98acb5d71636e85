//! The record: one line of Sonde's versioned JSONL stream.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{
    CustomEvent, EnvironmentFeedback, Event, EventReward, LlmCall, Message, Metadata,
    OutcomeReward, PromptBuilt, RuntimeAction, StreamEvent, Timestamp, ToolCallStarted, new_id,
};

/// The version of the record schema this build writes and reads.
///
/// Additive changes (a new optional field, a new kind) keep the version; renames and
/// removals bump it. A reader refuses records of any other version.
///
/// ```
/// assert_eq!(sonde_model::SCHEMA_VERSION, 1);
/// ```
pub const SCHEMA_VERSION: u32 = 1;

/// Where a record belongs: tenant, session, step and trace position.
///
/// ```
/// let ctx = sonde_model::Context::session("s-1").with_step("turn-1");
/// assert_eq!(ctx.step_id.as_deref(), Some("turn-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// The session the record belongs to.
    pub session_id: String,
    /// The step (timestep, turn) within the session, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// Tenant: organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Tenant: workspace within the organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Distributed trace id (32 hex digits for OpenTelemetry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// This record's span id (16 hex digits for OpenTelemetry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The enclosing span: a tool call that spawned a subagent, an agent span, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

impl Context {
    /// A context in `session_id` and nothing else.
    ///
    /// ```
    /// assert_eq!(sonde_model::Context::session("s").session_id, "s");
    /// ```
    pub fn session(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            ..Self::default()
        }
    }

    /// The same context, in step `step_id`.
    ///
    /// ```
    /// assert!(sonde_model::Context::session("s").with_step("a").step_id.is_some());
    /// ```
    pub fn with_step(mut self, step_id: impl Into<String>) -> Self {
        self.step_id = Some(step_id.into());
        self
    }

    /// The same context, in tenant `org` / `workspace`.
    ///
    /// ```
    /// let ctx = sonde_model::Context::session("s").with_tenant("acme", "prod");
    /// assert_eq!(ctx.workspace.as_deref(), Some("prod"));
    /// ```
    pub fn with_tenant(mut self, org: impl Into<String>, workspace: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self.workspace = Some(workspace.into());
        self
    }
}

/// Payload of a `session_started` record.
///
/// ```
/// let s = sonde_model::SessionStarted::default();
/// assert!(s.metadata.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionStarted {
    /// Session metadata, e.g. `user_id`, `experiment_id`, `cwd`, `git_branch`.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Structured metadata that is not a map (seed 002's `session_metadata`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_metadata: Vec<serde_json::Value>,
}

/// Payload of a `session_ended` record.
///
/// ```
/// assert!(sonde_model::SessionEnded::default().metadata.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionEnded {
    /// Anything known at the end, e.g. an exit status.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Payload of a `step_started` record: a timestep, such as a conversation turn.
///
/// ```
/// let s = sonde_model::StepStarted { step_index: 0, turn_number: Some(1), ..Default::default() };
/// assert_eq!(s.turn_number, Some(1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepStarted {
    /// Position of the step in its session, from 0.
    pub step_index: u32,
    /// Conversation turn number, when the step is a turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_number: Option<i64>,
    /// Step metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Payload of a `step_ended` record.
///
/// ```
/// assert!(sonde_model::StepEnded::default().metadata.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepEnded {
    /// Anything known at the end of the step.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// What a record says: its kind and payload.
///
/// ```
/// use sonde_model::{Body, SessionEnded};
/// assert_eq!(Body::SessionEnded(SessionEnded::default()).kind(), "session_ended");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A session began.
    SessionStarted(SessionStarted),
    /// A session ended.
    SessionEnded(SessionEnded),
    /// A step began.
    StepStarted(StepStarted),
    /// A step ended.
    StepEnded(StepEnded),
    /// Something happened inside a system.
    Event(Event),
    /// Information crossed a boundary between systems.
    Message(Message),
    /// A session was rewarded.
    OutcomeReward(OutcomeReward),
    /// An event was rewarded.
    EventReward(EventReward),
}

/// Every record kind, as written in the `kind` field.
///
/// ```
/// assert!(sonde_model::RECORD_KINDS.contains(&"llm_call"));
/// ```
pub const RECORD_KINDS: [&str; 14] = [
    "session_started",
    "session_ended",
    "step_started",
    "step_ended",
    "llm_call",
    "runtime_event",
    "environment_event",
    "custom_event",
    "message",
    "outcome_reward",
    "event_reward",
    "tool_call_started",
    "prompt_built",
    "stream_event",
];

impl Body {
    /// The `kind` tag written for this payload; one of [`RECORD_KINDS`].
    ///
    /// ```
    /// use sonde_model::{Body, Message};
    /// assert_eq!(Body::Message(Message::default()).kind(), "message");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Body::SessionStarted(_) => "session_started",
            Body::SessionEnded(_) => "session_ended",
            Body::StepStarted(_) => "step_started",
            Body::StepEnded(_) => "step_ended",
            Body::Event(event) => event.kind(),
            Body::Message(_) => "message",
            Body::OutcomeReward(_) => "outcome_reward",
            Body::EventReward(_) => "event_reward",
        }
    }

    fn parse(kind: &str, payload: &str) -> Result<Self, ParseError> {
        fn typed<'a, T: Deserialize<'a>>(payload: &'a str) -> Result<T, ParseError> {
            let mut de = serde_json::Deserializer::from_str(payload);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                ParseError::Field {
                    field: if path == "." {
                        "payload".to_owned()
                    } else {
                        format!("payload.{path}")
                    },
                    reason: e.into_inner().to_string(),
                }
            })
        }
        Ok(match kind {
            "session_started" => Body::SessionStarted(typed(payload)?),
            "session_ended" => Body::SessionEnded(typed(payload)?),
            "step_started" => Body::StepStarted(typed(payload)?),
            "step_ended" => Body::StepEnded(typed(payload)?),
            "llm_call" => Body::Event(Event::Llm(typed::<LlmCall>(payload)?)),
            "runtime_event" => Body::Event(Event::Runtime(typed::<RuntimeAction>(payload)?)),
            "environment_event" => {
                Body::Event(Event::Environment(typed::<EnvironmentFeedback>(payload)?))
            }
            "custom_event" => Body::Event(Event::Custom(typed::<CustomEvent>(payload)?)),
            "tool_call_started" => {
                Body::Event(Event::ToolCallStarted(typed::<ToolCallStarted>(payload)?))
            }
            "prompt_built" => Body::Event(Event::PromptBuilt(typed::<PromptBuilt>(payload)?)),
            "stream_event" => Body::Event(Event::Stream(typed::<StreamEvent>(payload)?)),
            "message" => Body::Message(typed(payload)?),
            "outcome_reward" => Body::OutcomeReward(typed(payload)?),
            "event_reward" => Body::EventReward(typed(payload)?),
            other => return Err(ParseError::UnknownKind(other.to_owned())),
        })
    }

    /// Serialises the payload alone (without the kind tag) as JSON.
    ///
    /// ```
    /// use sonde_model::{Body, StepEnded};
    /// assert_eq!(Body::StepEnded(StepEnded::default()).payload_json(), "{}");
    /// ```
    pub fn payload_json(&self) -> String {
        fn json<T: Serialize>(value: &T) -> String {
            // Room for a typical LLM call's payload up front: growing from serde_json's
            // 128 bytes (reallocations and copies) was an eighth of the serialisation.
            let mut bytes = Vec::with_capacity(2048);
            // Serialising these types cannot fail: every map key is a string.
            match serde_json::to_writer(&mut bytes, value) {
                Ok(()) => String::from_utf8(bytes).unwrap_or_else(|_| "{}".to_owned()),
                Err(_) => "{}".to_owned(),
            }
        }
        match self {
            Body::SessionStarted(p) => json(p),
            Body::SessionEnded(p) => json(p),
            Body::StepStarted(p) => json(p),
            Body::StepEnded(p) => json(p),
            Body::Event(Event::Llm(p)) => json(p),
            Body::Event(Event::Runtime(p)) => json(p),
            Body::Event(Event::Environment(p)) => json(p),
            Body::Event(Event::Custom(p)) => json(p),
            Body::Event(Event::ToolCallStarted(p)) => json(p),
            Body::Event(Event::PromptBuilt(p)) => json(p),
            Body::Event(Event::Stream(p)) => json(p),
            Body::Message(p) => json(p),
            Body::OutcomeReward(p) => json(p),
            Body::EventReward(p) => json(p),
        }
    }

    /// Rebuilds a body from its kind and payload JSON, as stored by a backend.
    ///
    /// ```
    /// use sonde_model::Body;
    /// let body = Body::from_kind_and_payload("llm_call", r#"{"model_name":"m"}"#).unwrap();
    /// assert_eq!(body.kind(), "llm_call");
    /// assert!(Body::from_kind_and_payload("nope", "{}").is_err());
    /// ```
    pub fn from_kind_and_payload(kind: &str, payload: &str) -> Result<Self, ParseError> {
        Self::parse(kind, payload)
    }
}

/// One record: `{schema_version, id, timestamp, context, kind, payload}`.
///
/// Ids are assigned where the record is made, so a record is the same record in every
/// backend, and writing it twice stores it once.
///
/// ```
/// use sonde_model::{Body, Context, Record, SessionStarted};
/// let record = Record::new(Context::session("s-1"), Body::SessionStarted(SessionStarted::default()));
/// let line = record.to_json_line();
/// assert!(line.starts_with(r#"{"schema_version":1,"id":"#));
/// assert_eq!(Record::from_json_line(&line).unwrap(), record);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unique id of this record.
    pub id: String,
    /// When it happened (for an event: when it started).
    pub timestamp: Timestamp,
    /// Where it belongs.
    pub context: Context,
    /// What it says.
    pub body: Body,
}

/// Why a JSON line is not a record.
///
/// ```
/// let err = sonde_model::Record::from_json_line(r#"{"schema_version":9}"#).unwrap_err();
/// assert_eq!(err.to_string(), "unsupported schema_version 9: this sonde reads version 1");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is not JSON, or a field has the wrong type.
    #[error("invalid json: {0}")]
    Json(String),
    /// The record was written by a schema version this build does not read.
    #[error("unsupported schema_version {found}: this sonde reads version {supported}")]
    UnsupportedVersion {
        /// The version in the record.
        found: u64,
        /// The version this build reads ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// A required field is absent or empty.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The kind is not one of [`RECORD_KINDS`].
    #[error("unknown kind {0:?}")]
    UnknownKind(String),
    /// A field has the wrong type or value.
    #[error("invalid field `{field}`: {reason}")]
    Field {
        /// The field, as a path from the record (`payload.input_tokens`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The first pass over a line: fields stay raw so that the version is checked before
/// anything else can fail.
#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(default, borrow)]
    schema_version: Option<&'a RawValue>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default, borrow)]
    context: Option<&'a RawValue>,
    #[serde(default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

fn field<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    name: &'static str,
) -> Result<T, ParseError> {
    let raw = raw.ok_or(ParseError::MissingField(name))?;
    serde_json::from_str(raw.get()).map_err(|e| ParseError::Field {
        field: name.to_owned(),
        reason: e.to_string(),
    })
}

impl Record {
    /// A new record with a fresh id, stamped now.
    ///
    /// ```
    /// use sonde_model::{Body, Context, Record, StepEnded};
    /// let r = Record::new(Context::session("s"), Body::StepEnded(StepEnded::default()));
    /// assert_eq!(r.kind(), "step_ended");
    /// ```
    pub fn new(context: Context, body: Body) -> Self {
        Self {
            id: new_id(),
            timestamp: Timestamp::now(),
            context,
            body,
        }
    }

    /// The `kind` tag of this record.
    ///
    /// ```
    /// use sonde_model::{Body, Context, Record, SessionEnded};
    /// let r = Record::new(Context::session("s"), Body::SessionEnded(SessionEnded::default()));
    /// assert_eq!(r.kind(), "session_ended");
    /// ```
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }

    /// The session this record belongs to.
    ///
    /// ```
    /// use sonde_model::{Body, Context, Record, SessionEnded};
    /// let r = Record::new(Context::session("s"), Body::SessionEnded(SessionEnded::default()));
    /// assert_eq!(r.session_id(), "s");
    /// ```
    pub fn session_id(&self) -> &str {
        &self.context.session_id
    }

    /// Serialises the record as one JSON line (without the newline).
    ///
    /// ```
    /// use sonde_model::{Body, Context, Record, SessionEnded};
    /// let r = Record::new(Context::session("s"), Body::SessionEnded(SessionEnded::default()));
    /// assert!(!r.to_json_line().contains('\n'));
    /// ```
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one JSON line. Refuses any `schema_version` other than
    /// [`SCHEMA_VERSION`], unknown kinds, and records without an id or session.
    ///
    /// ```
    /// let line = r#"{"schema_version":1,"id":"r1","timestamp":"2026-01-01T00:00:00Z",
    ///   "context":{"session_id":"s"},"kind":"custom_event","payload":{"name":"ping"}}"#;
    /// let record = sonde_model::Record::from_json_line(line).unwrap();
    /// assert_eq!(record.kind(), "custom_event");
    /// ```
    pub fn from_json_line(line: &str) -> Result<Self, ParseError> {
        let raw: RawRecord<'_> =
            serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
        let version: u64 = field(raw.schema_version, "schema_version")?;
        if version != u64::from(SCHEMA_VERSION) {
            return Err(ParseError::UnsupportedVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let id: String = field(raw.id, "id")?;
        if id.is_empty() {
            return Err(ParseError::MissingField("id"));
        }
        let timestamp: Timestamp = field(raw.timestamp, "timestamp")?;
        let context: Context = field(raw.context, "context")?;
        if context.session_id.is_empty() {
            return Err(ParseError::MissingField("context.session_id"));
        }
        let kind: std::borrow::Cow<'_, str> = field(raw.kind, "kind")?;
        let payload = raw.payload.map_or("{}", RawValue::get);
        let body = Body::parse(&kind, payload)?;
        if let Body::Event(Event::Llm(call)) = &body
            && let Some((field, reason)) = call.out_of_range()
        {
            return Err(ParseError::Field {
                field: format!("payload.{field}"),
                reason,
            });
        }
        Ok(Self {
            id,
            timestamp,
            context,
            body,
        })
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("schema_version", &SCHEMA_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("context", &self.context)?;
        map.serialize_entry("kind", self.kind())?;
        match &self.body {
            Body::SessionStarted(p) => map.serialize_entry("payload", p)?,
            Body::SessionEnded(p) => map.serialize_entry("payload", p)?,
            Body::StepStarted(p) => map.serialize_entry("payload", p)?,
            Body::StepEnded(p) => map.serialize_entry("payload", p)?,
            Body::Event(Event::Llm(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::Runtime(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::Environment(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::Custom(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::ToolCallStarted(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::PromptBuilt(p)) => map.serialize_entry("payload", p)?,
            Body::Event(Event::Stream(p)) => map.serialize_entry("payload", p)?,
            Body::Message(p) => map.serialize_entry("payload", p)?,
            Body::OutcomeReward(p) => map.serialize_entry("payload", p)?,
            Body::EventReward(p) => map.serialize_entry("payload", p)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Record::from_json_line(raw.get()).map_err(serde::de::Error::custom)
    }
}
