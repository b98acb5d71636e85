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
