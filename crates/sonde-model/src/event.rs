//! Events: things that happened inside one system — LLM calls, runtime actions,
//! environment feedback, and anything else as a custom event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Json, Metadata};

/// Whether an operation succeeded.
///
/// ```
/// use sonde_model::Status;
/// assert_eq!(serde_json::to_string(&Status::Error).unwrap(), "\"error\"");
/// assert!(Status::default().is_ok());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It succeeded (or nothing said otherwise).
    #[default]
    Ok,
    /// It failed.
    Error,
}

impl Status {
    /// True for [`Status::Ok`].
    ///
    /// ```
    /// assert!(!sonde_model::Status::Error.is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok)
    }

    /// The name stored and shown: `ok` or `error`.
    ///
    /// ```
    /// assert_eq!(sonde_model::Status::Error.as_str(), "error");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How much detail a record carries, as the tracer that made it was set: `standard`
/// (what is always recorded) or `extended` (verbose diagnostics a host turns on, such
/// as stream events and provider wire bodies). A reader can leave extended records
/// out; records without a level are standard.
///
/// ```
/// use sonde_model::Level;
/// assert_eq!(serde_json::to_string(&Level::Extended).unwrap(), "\"extended\"");
/// assert!(Level::default().is_standard());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Always recorded.
    #[default]
    Standard,
    /// Recorded only when extended tracing is on.
    Extended,
}

impl Level {
    /// True for [`Level::Standard`] (the level a record without one has).
    ///
    /// ```
    /// assert!(!sonde_model::Level::Extended.is_standard());
    /// ```
    pub fn is_standard(&self) -> bool {
        matches!(self, Level::Standard)
    }

    /// The name written: `standard` or `extended`.
    ///
    /// ```
    /// assert_eq!(sonde_model::Level::Extended.as_str(), "extended");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Standard => "standard",
            Level::Extended => "extended",
        }
    }
}

/// One event: the payload of an `llm_call`, `runtime_event`, `environment_event`,
/// `custom_event`, `tool_call_started`, `prompt_built` or `stream_event` record.
///
/// ```
/// use sonde_model::{Event, LlmCall};
/// let event = Event::Llm(LlmCall { model_name: "gpt-5".into(), ..Default::default() });
/// assert_eq!(event.kind(), "llm_call");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// LLM calls are the common case; boxing them would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A call to a language model.
    Llm(LlmCall),
    /// An action the agent's runtime took, such as a tool call.
    Runtime(RuntimeAction),
    /// Feedback from the environment: reward, termination, observed state.
    Environment(EnvironmentFeedback),
    /// Anything else, by name.
    Custom(CustomEvent),
    /// A tool call began (its end, when recorded, is a [`RuntimeAction`]).
    ToolCallStarted(ToolCallStarted),
    /// A prompt was assembled for a model.
    PromptBuilt(PromptBuilt),
    /// One event of a streamed exchange with a model.
    Stream(StreamEvent),
}

impl Event {
    /// The record kind that carries this event.
    ///
    /// ```
    /// use sonde_model::{CustomEvent, Event};
    /// assert_eq!(Event::Custom(CustomEvent::default()).kind(), "custom_event");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Llm(_) => "llm_call",
            Event::Runtime(_) => "runtime_event",
            Event::Environment(_) => "environment_event",
            Event::Custom(_) => "custom_event",
            Event::ToolCallStarted(_) => "tool_call_started",
            Event::PromptBuilt(_) => "prompt_built",
            Event::Stream(_) => "stream_event",
        }
    }

    /// The short type name stored in the `events.event_type` column (the `type` tag of
    /// the event's JSON): `llm`, `runtime`, `environment`, `custom`,
    /// `tool_call_started`, `prompt_built` or `stream`.
    ///
    /// ```
    /// use sonde_model::{Event, RuntimeAction};
    /// assert_eq!(Event::Runtime(RuntimeAction::default()).event_type(), "runtime");
    /// ```
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Llm(_) => "llm",
            Event::Runtime(_) => "runtime",
            Event::Environment(_) => "environment",
            Event::Custom(_) => "custom",
            Event::ToolCallStarted(_) => "tool_call_started",
            Event::PromptBuilt(_) => "prompt_built",
            Event::Stream(_) => "stream",
        }
    }

    /// The event's metadata.
    ///
    /// ```
    /// use sonde_model::{CustomEvent, Event};
    /// assert!(Event::Custom(CustomEvent::default()).metadata().is_empty());
    /// ```
    pub fn metadata(&self) -> &Metadata {
        match self {
            Event::Llm(e) => &e.metadata,
            Event::Runtime(e) => &e.metadata,
            Event::Environment(e) => &e.metadata,
            Event::Custom(e) => &e.metadata,
            Event::ToolCallStarted(e) => &e.metadata,
            Event::PromptBuilt(e) => &e.metadata,
            Event::Stream(e) => &e.metadata,
        }
    }

    /// The event's level.
    ///
    /// ```
    /// use sonde_model::{Event, Level, StreamEvent};
    /// let delta = StreamEvent { level: Level::Extended, ..Default::default() };
    /// assert_eq!(Event::Stream(delta).level(), Level::Extended);
    /// ```
    pub fn level(&self) -> Level {
        match self {
            Event::Llm(e) => e.level,
            Event::Runtime(e) => e.level,
            Event::Environment(e) => e.level,
            Event::Custom(e) => e.level,
            Event::ToolCallStarted(e) => e.level,
            Event::PromptBuilt(e) => e.level,
            Event::Stream(e) => e.level,
        }
    }

    /// Whether the event reports a failure.
    ///
    /// ```
    /// use sonde_model::{Event, RuntimeAction, Status};
    /// let failed = RuntimeAction { status: Status::Error, ..Default::default() };
    /// assert_eq!(Event::Runtime(failed).status(), Status::Error);
    /// ```
    pub fn status(&self) -> Status {
        match self {
            Event::Llm(e) => e.status,
            Event::Runtime(e) => e.status,
            Event::Environment(_)
            | Event::Custom(_)
            | Event::ToolCallStarted(_)
            | Event::PromptBuilt(_)
            | Event::Stream(_) => Status::Ok,
        }
    }

    /// The LLM call, if this is one.
    ///
    /// ```
    /// use sonde_model::{Event, LlmCall};
    /// assert!(Event::Llm(LlmCall::default()).as_llm().is_some());
    /// ```
    pub fn as_llm(&self) -> Option<&LlmCall> {
        match self {
            Event::Llm(e) => Some(e),
            _ => None,
        }
    }
}

/// A call to a language model, from an agent's tracer or an LLM gateway alike.
///
/// **Token convention** (the same everywhere in Sonde): `input_tokens` counts uncached
/// input only; `cache_read_tokens` and `cache_write_tokens` are separate from it;
/// `output_tokens` includes reasoning, and `reasoning_tokens` is the reasoning part of
/// it. So [`LlmCall::total_tokens`] = input + cache read + cache write + output, and
/// each kind is priced once. Sources that count cached tokens inside input use
/// [`LlmCall::set_usage_cached_in_input`].
///
/// ```
/// use sonde_model::LlmCall;
/// let call = LlmCall {
///     provider: Some("anthropic".into()),
///     model_name: "claude-sonnet-4-5".into(),
///     input_tokens: 12,
///     cache_read_tokens: 4_000,
///     cache_write_tokens: 300,
///     output_tokens: 250,
///     latency_ms: Some(1_840.0),
///     ..Default::default()
/// };
/// assert_eq!(call.total_tokens(), 4_562);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmCall {
    /// The system that made the call (seed 002's `system_instance_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// Provider, e.g. `openai`, `anthropic`, `local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model that answered (the response model when known), e.g. `gpt-5`.
    pub model_name: String,
    /// The operation, e.g. `chat`, `text_completion`, `embeddings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Uncached input tokens.
    #[serde(skip_serializing_if = "is_zero")]
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    #[serde(skip_serializing_if = "is_zero")]
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (all lifetimes).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written with a one-hour lifetime (priced higher).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_1h_tokens: u64,
    /// The reasoning part of `output_tokens`.
    #[serde(skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    /// Cost in US dollars as reported by the source (not computed by Sonde).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// End-to-end latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Time to the first streamed token, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_ms: Option<f64>,
    /// Whether the call succeeded.
    #[serde(skip_serializing_if = "Status::is_ok")]
    pub status: Status,
    /// What went wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why generation stopped (`end_turn`, `tool_use`, `stop`, `length`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// HTTP method of the proxied request (gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_method: Option<String>,
    /// HTTP path of the proxied request (gateways), e.g. `/v1/chat/completions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
    /// HTTP status of the provider's response (gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// Hash of the provider API key used (never the key itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_hash: Option<String>,
    /// The gateway's own key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_key_id: Option<String>,
    /// Captured requests and responses (messages, tool calls, parameters, usage).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub call_records: Vec<LlmCallRecord>,
    /// State snapshot before the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_state_before: Option<serde_json::Value>,
    /// State snapshot after the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_state_after: Option<serde_json::Value>,
    /// How much detail this is ([`Level::Standard`] unless extended tracing made it).
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Structured metadata that is not a map (seed 002's `event_metadata`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_metadata: Vec<Value>,
}

impl LlmCall {
    /// The largest token count the stores keep exactly (they keep 64-bit signed
    /// integers): a larger one is refused, never clamped.
    pub const MAX_COUNT: u64 = i64::MAX as u64;

    /// The first field whose value cannot be stored as it is, and why: a token count
    /// above [`LlmCall::MAX_COUNT`], a negative or non-finite cost, latency or time to
    /// first token.
    ///
    /// ```
    /// let call = sonde_model::LlmCall { cost_usd: Some(-1.0), ..Default::default() };
    /// assert_eq!(call.out_of_range(), Some(("cost_usd", "-1 is negative".to_owned())));
    /// assert_eq!(sonde_model::LlmCall::default().out_of_range(), None);
    /// ```
    pub fn out_of_range(&self) -> Option<(&'static str, String)> {
        let counts = [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("cache_write_1h_tokens", self.cache_write_1h_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
        ];
        if let Some((field, count)) = counts.into_iter().find(|(_, c)| *c > Self::MAX_COUNT) {
            return Some((
                field,
                format!(
                    "{count} is above the largest count stored, {}",
                    Self::MAX_COUNT
                ),
            ));
        }
        let amounts = [
            ("cost_usd", self.cost_usd),
            ("latency_ms", self.latency_ms),
            ("time_to_first_token_ms", self.time_to_first_token_ms),
        ];
        amounts.into_iter().find_map(|(field, value)| match value {
            Some(v) if !v.is_finite() => Some((field, format!("{v} is not a number"))),
            Some(v) if v < 0.0 => Some((field, format!("{v} is negative"))),
            _ => None,
        })
    }

    /// Input + cache read + cache write + output tokens.
    ///
    /// ```
    /// let call = sonde_model::LlmCall { input_tokens: 1, output_tokens: 2, ..Default::default() };
    /// assert_eq!(call.total_tokens(), 3);
    /// ```
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
            .saturating_add(self.output_tokens)
    }

    /// Sets usage from a source that counts cached tokens inside its input count
    /// (OpenAI's `prompt_tokens`, the OpenTelemetry GenAI `input_tokens`).
    ///
    /// ```
    /// let mut call = sonde_model::LlmCall::default();
    /// // OpenAI: prompt_tokens 1000 of which cached 800; completion 50 of which reasoning 20
    /// call.set_usage_cached_in_input(1000, 800, 0, 50, 20);
    /// assert_eq!(call.input_tokens, 200);
    /// assert_eq!(call.input_tokens_with_cache(), 1000);
    /// assert_eq!(call.total_tokens(), 1050);
    /// ```
    pub fn set_usage_cached_in_input(
        &mut self,
        input_including_cache: u64,
        cache_read: u64,
        cache_write: u64,
        output: u64,
        reasoning: u64,
    ) {
        self.input_tokens = input_including_cache
            .saturating_sub(cache_read)
            .saturating_sub(cache_write);
        self.cache_read_tokens = cache_read;
        self.cache_write_tokens = cache_write;
        self.output_tokens = output;
        self.reasoning_tokens = reasoning;
    }

    /// Input tokens counted the OpenAI / OpenTelemetry way: cached ones included.
    ///
    /// ```
    /// let call = sonde_model::LlmCall { input_tokens: 5, cache_read_tokens: 10, ..Default::default() };
    /// assert_eq!(call.input_tokens_with_cache(), 15);
    /// ```
    pub fn input_tokens_with_cache(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

/// One captured request / response exchange of an LLM call.
///
/// ```
/// let record = sonde_model::LlmCallRecord {
///     request: Some(serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}).into()),
///     ..Default::default()
/// };
/// assert!(record.response.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmCallRecord {
    /// The request as sent (messages, tools, parameters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Json>,
    /// The response as received (content, tool calls, usage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Json>,
    /// Anything else about the exchange.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// An action taken by the agent's runtime, typically a tool call.
///
/// ```
/// let tool = sonde_model::RuntimeAction {
///     tool_name: Some("Read".into()),
///     arguments: Some(serde_json::json!({"path": "README.md"})),
///     duration_ms: Some(3.0),
///     ..Default::default()
/// };
/// assert!(tool.status.is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeAction {
    /// The system that acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// Action identifiers or indices (their meaning is the system's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Value>,
    /// The tool called, if this is a tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// The provider's id for the tool call, pairing it with its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Arguments passed to the tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// What the tool returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Whether the action succeeded.
    #[serde(skip_serializing_if = "Status::is_ok")]
    pub status: Status,
    /// What went wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// How much detail this is ([`Level::Standard`] unless extended tracing made it).
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Structured metadata that is not a map.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_metadata: Vec<Value>,
}

/// Feedback from the environment, in the Gymnasium convention.
///
/// ```
/// let done = sonde_model::EnvironmentFeedback { reward: Some(1.0), terminated: true, ..Default::default() };
/// assert!(!done.truncated);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvironmentFeedback {
    /// The environment that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// Scalar reward signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// The episode reached a terminal state.
    #[serde(skip_serializing_if = "is_false")]
    pub terminated: bool,
    /// The episode was cut short by a time or step limit.
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// State before the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_state_before: Option<Value>,
    /// State after the action (the observation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_state_after: Option<Value>,
    /// How much detail this is ([`Level::Standard`] unless extended tracing made it).
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Structured metadata that is not a map.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_metadata: Vec<Value>,
}

/// Any other event, by name, with JSON data.
///
/// ```
/// let e = sonde_model::CustomEvent { name: "cache_evicted".into(), data: serde_json::json!({"n": 3}), ..Default::default() };
/// assert_eq!(e.name, "cache_evicted");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomEvent {
    /// The system that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// What happened.
    pub name: String,
    /// Details.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// How much detail this is ([`Level::Standard`] unless extended tracing made it).
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Structured metadata that is not a map.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_metadata: Vec<Value>,
}

/// The start of a tool call, recorded when it begins: its end, when recorded, is a
/// [`RuntimeAction`] with the same `tool_call_id`. A start without an end is a call
/// that never finished (or whose trace was cut).
///
/// ```
/// let start = sonde_model::ToolCallStarted {
///     tool_name: "read_file".into(),
///     tool_call_id: Some("call-1".into()),
///     ..Default::default()
/// };
/// assert_eq!(start.tool_name, "read_file");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCallStarted {
    /// The system that called the tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// The tool called.
    pub tool_name: String,
    /// The provider's id for the tool call, pairing it with its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Arguments passed to the tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// How much detail this is.
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// A prompt assembled for a model: a fingerprint of it, its size and its parts
/// (system prompt, history, tool contracts, ...), without the text itself.
///
/// ```
/// let built = sonde_model::PromptBuilt { prompt_chars: Some(5_120), ..Default::default() };
/// assert!(built.components.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromptBuilt {
    /// The system that built it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// A hash of the whole prompt (the source's own, e.g. SHA-256 hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<String>,
    /// Its length in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_chars: Option<u64>,
    /// Its parts, in order, as the source describes them (id, kind, hash, size).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Value>,
    /// How much detail this is.
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// One event of a streamed exchange with a model: a provider's wire event (`source`
/// `provider`) or the runtime's view of it (`runtime`), in order.
///
/// ```
/// let delta = sonde_model::StreamEvent {
///     source: "provider".into(),
///     name: "content_block_delta".into(),
///     sequence: Some(2),
///     ..Default::default()
/// };
/// assert_eq!(delta.name, "content_block_delta");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamEvent {
    /// The system that saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instance_id: Option<String>,
    /// Whose event it is: `provider` (the wire) or `runtime` (the agent's own).
    pub source: String,
    /// The event's name, e.g. `content_block_delta`.
    pub name: String,
    /// Its position in the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Milliseconds since the stream began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<f64>,
    /// The event as the source recorded it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// How much detail this is (stream events are usually extended).
    #[serde(skip_serializing_if = "Level::is_standard")]
    pub level: Level,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}
