//! Messages: information crossing the boundary between two systems.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Metadata;

/// A message crossing a boundary between systems: human → agent, agent → runtime,
/// runtime → environment, and back.
///
/// Provider chat messages (prompt formatting) are not messages in this sense: they
/// belong inside an [`LlmCall`](crate::LlmCall)'s call records.
///
/// ```
/// use sonde_model::{Message, MessageContent};
/// let prompt = Message {
///     content: MessageContent::text("fix the failing test"),
///     message_type: "user_prompt".into(),
///     from_role: Some("human".into()),
///     to_role: Some("agent".into()),
///     ..Default::default()
/// };
/// assert_eq!(prompt.content.as_text(), "fix the failing test");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// What crossed the boundary.
    pub content: MessageContent,
    /// The kind of crossing: `observation`, `action`, `result`, `user_prompt`, ...
    pub message_type: String,
    /// Role of the sender: `human`, `agent`, `runtime`, `environment`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_role: Option<String>,
    /// Role of the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_role: Option<String>,
    /// Id of the sending system instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_system_instance_id: Option<String>,
    /// Id of the receiving system instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_system_instance_id: Option<String>,
    /// The kind of boundary crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_type: Option<String>,
    /// Correlates a request with its response across boundaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Direction of causal flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causal_influence: Option<String>,
    /// An external message id or sequence number (seed 002's `message_time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_time: Option<i64>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// The metadata keys seed 002 recommends for a message, each a typed field of
/// [`Message`].
const SEED_KEYS: [&str; 7] = [
    "from_system_role",
    "to_system_role",
    "from_system_instance_id",
    "to_system_instance_id",
    "boundary_type",
    "call_id",
    "causal_influence",
];

impl Message {
    /// A message as seed 002 records one: the recommended metadata keys
    /// (`from_system_role`, `to_system_role`, `from_system_instance_id`,
    /// `to_system_instance_id`, `boundary_type`, `call_id`, `causal_influence`) become
    /// typed fields (a value that is not a string is kept as its JSON text); other keys
    /// stay metadata.
    ///
    /// ```
    /// use sonde_model::{Message, MessageContent};
    /// let mut metadata = sonde_model::Metadata::new();
    /// metadata.insert("from_system_role".into(), "human".into());
    /// metadata.insert("step_id".into(), "turn-1".into());
    /// let m = Message::from_seed(MessageContent::text("hi"), "user_prompt", metadata);
    /// assert_eq!(m.from_role.as_deref(), Some("human"));
    /// assert_eq!(m.metadata.len(), 1);
    /// assert_eq!(m.seed_metadata()["from_system_role"], "human");
    /// ```
    // Fields added to messages later (a record level, say) take their defaults here.
    #[allow(clippy::needless_update)]
    pub fn from_seed(content: MessageContent, message_type: &str, mut metadata: Metadata) -> Self {
        let mut fields = SEED_KEYS.map(|key| match metadata.remove(key) {
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
            None => None,
        });
        let mut take = |i: usize| fields[i].take();
        Message {
            content,
            message_type: message_type.to_owned(),
            from_role: take(0),
            to_role: take(1),
            from_system_instance_id: take(2),
            to_system_instance_id: take(3),
            boundary_type: take(4),
            call_id: take(5),
            causal_influence: take(6),
            message_time: None,
            metadata,
            ..Default::default()
        }
    }

    /// The metadata in seed 002's shape: [`Message::metadata`] with the typed fields
    /// put back under their recommended keys (the inverse of [`Message::from_seed`]).
    pub fn seed_metadata(&self) -> Metadata {
        let mut metadata = self.metadata.clone();
        let fields = [
            &self.from_role,
            &self.to_role,
            &self.from_system_instance_id,
            &self.to_system_instance_id,
            &self.boundary_type,
            &self.call_id,
            &self.causal_influence,
        ];
        for (key, value) in SEED_KEYS.into_iter().zip(fields) {
            if let Some(value) = value {
                metadata.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        metadata
    }
}

/// Message content: text, JSON, or both.
///
/// ```
/// use sonde_model::MessageContent;
/// let c = MessageContent::json(serde_json::json!({"exit_code": 0}));
/// assert!(c.has_json());
/// assert_eq!(c.as_text(), r#"{"exit_code":0}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageContent {
    /// Text content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Structured content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

impl MessageContent {
    /// Text content.
    ///
    /// ```
    /// assert_eq!(sonde_model::MessageContent::text("hi").text.as_deref(), Some("hi"));
    /// ```
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            json: None,
        }
    }

    /// Structured content.
    ///
    /// ```
    /// assert!(sonde_model::MessageContent::json(serde_json::json!([1])).text.is_none());
    /// ```
    pub fn json(json: Value) -> Self {
        Self {
            text: None,
            json: Some(json),
        }
    }

    /// The content as text: the text if any, else the JSON serialised, else empty.
    ///
    /// ```
    /// assert_eq!(sonde_model::MessageContent::default().as_text(), "");
    /// ```
    pub fn as_text(&self) -> String {
        match (&self.text, &self.json) {
            (Some(text), _) => text.clone(),
            (None, Some(json)) => json.to_string(),
            (None, None) => String::new(),
        }
    }

    /// Whether structured content is present.
    ///
    /// ```
    /// assert!(!sonde_model::MessageContent::text("x").has_json());
    /// ```
    pub fn has_json(&self) -> bool {
        self.json.is_some()
    }
}
