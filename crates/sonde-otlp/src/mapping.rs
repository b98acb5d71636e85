//! Spans to records, through one alias table for every attribute name real
//! instrumentations send: the current OpenTelemetry GenAI conventions, their deprecated
//! names, OpenInference and OpenLLMetry.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sonde_model::{
    Body, Context, CustomEvent, Event, Json, LlmCall, LlmCallRecord, Metadata, Record,
    RuntimeAction, Status, Timestamp, derived_id_at,
};

use crate::span::{Span, SpanStatus};

/// A value Sonde reads from span attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Attr {
    Provider,
    RequestModel,
    ResponseModel,
    Operation,
    SpanKind,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CacheReadTokens,
    CacheWriteTokens,
    ReasoningTokens,
    Cost,
    Conversation,
    UserId,
    FinishReasons,
    TimeToFirstChunk,
    InputMessages,
    OutputMessages,
    ToolName,
    ToolCallId,
    ToolArguments,
    ToolResult,
    CacheWrite1hTokens,
    StepId,
    SessionStarted,
    SessionEnded,
    StepStarted,
    StepEnded,
    Message,
    OutcomeReward,
    EventReward,
    ToolCallStarted,
    PromptBuilt,
    StreamEvent,
}

/// How many [`Attr`]s there are.
const ATTRS: usize = Attr::StreamEvent as usize + 1;

/// Every name each value goes by, preferred first.
const ALIASES: &[(Attr, &[&str])] = &[
    (
        Attr::Provider,
        &[
            "gen_ai.provider.name",
            "gen_ai.system",
            "llm.provider",
            "llm.system",
        ],
    ),
    (
        Attr::RequestModel,
        &["gen_ai.request.model", "llm.request.model"],
    ),
    (
        Attr::ResponseModel,
        &[
            "gen_ai.response.model",
            "llm.model_name",
            "llm.response.model",
        ],
    ),
    (
        Attr::Operation,
        &["gen_ai.operation.name", "llm.request.type"],
    ),
    (
        Attr::SpanKind,
        &["openinference.span.kind", "traceloop.span.kind"],
    ),
    (
        Attr::InputTokens,
        &[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "llm.usage.prompt_tokens",
        ],
    ),
    (
        Attr::OutputTokens,
        &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "llm.usage.completion_tokens",
        ],
    ),
    (
        Attr::TotalTokens,
        &[
            "gen_ai.usage.total_tokens",
            "llm.usage.total_tokens",
            "llm.token_count.total",
        ],
    ),
    (
        Attr::CacheReadTokens,
        &[
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "llm.token_count.prompt_details.cache_read",
        ],
    ),
    (
        Attr::CacheWriteTokens,
        &[
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ],
    ),
    (
        Attr::ReasoningTokens,
        &[
            "gen_ai.usage.reasoning.output_tokens",
            "llm.token_count.completion_details.reasoning",
        ],
    ),
    (
        Attr::Cost,
        &["gen_ai.usage.cost", "llm.usage.cost", "llm.cost.total"],
    ),
    (
        Attr::Conversation,
        &[
            "gen_ai.conversation.id",
            "session.id",
            "traceloop.association.properties.session_id",
        ],
    ),
    (
        Attr::UserId,
        &[
            "user.id",
            "gen_ai.user.id",
            "traceloop.association.properties.user_id",
        ],
    ),
    (
        Attr::FinishReasons,
        &[
            "gen_ai.response.finish_reasons",
            "llm.response.finish_reason",
        ],
    ),
    (
        Attr::TimeToFirstChunk,
        &[
            "gen_ai.response.time_to_first_chunk",
            "gen_ai.server.time_to_first_token",
            "sonde.response.time_to_first_chunk",
        ],
    ),
    (
        Attr::InputMessages,
        &[
            "gen_ai.input.messages",
            "gen_ai.prompt",
            "input.value",
            "traceloop.entity.input",
        ],
    ),
    (
        Attr::OutputMessages,
        &[
            "gen_ai.output.messages",
            "gen_ai.completion",
            "output.value",
            "traceloop.entity.output",
        ],
    ),
    (Attr::ToolName, &["gen_ai.tool.name", "tool.name"]),
    (Attr::ToolCallId, &["gen_ai.tool.call.id", "tool_call.id"]),
    (
        Attr::ToolArguments,
        &[
            "gen_ai.tool.call.arguments",
            "tool.parameters",
            "input.value",
        ],
    ),
    (
        Attr::ToolResult,
        &["gen_ai.tool.call.result", "output.value"],
    ),
    // Sonde's own, for what no convention names (see the exporter).
    (
        Attr::CacheWrite1hTokens,
        &["sonde.usage.cache_write_1h_tokens"],
    ),
    (Attr::StepId, &["sonde.step.id"]),
    (Attr::SessionStarted, &["sonde.session_started"]),
    (Attr::SessionEnded, &["sonde.session_ended"]),
    (Attr::StepStarted, &["sonde.step_started"]),
    (Attr::StepEnded, &["sonde.step_ended"]),
    (Attr::Message, &["sonde.message"]),
    (Attr::OutcomeReward, &["sonde.outcome_reward"]),
    (Attr::EventReward, &["sonde.event_reward"]),
    (Attr::ToolCallStarted, &["sonde.tool_call_started"]),
    (Attr::PromptBuilt, &["sonde.prompt_built"]),
    (Attr::StreamEvent, &["sonde.stream_event"]),
];

/// The records a span can carry whole, as their payload's JSON (Sonde's exports do):
/// the value, the record kind, and whether the record is at the span's end (else at
/// its start).
const CARRIED: [(Attr, &str, bool); 10] = [
    (Attr::SessionStarted, "session_started", false),
    (Attr::StepStarted, "step_started", false),
    (Attr::Message, "message", false),
    (Attr::OutcomeReward, "outcome_reward", false),
    (Attr::EventReward, "event_reward", false),
    (Attr::SessionEnded, "session_ended", true),
    (Attr::StepEnded, "step_ended", true),
    (Attr::ToolCallStarted, "tool_call_started", false),
    (Attr::PromptBuilt, "prompt_built", false),
    (Attr::StreamEvent, "stream_event", false),
];

/// For each attribute name in [`ALIASES`]: the values it gives and its rank among
/// their names (0 preferred). One name can give two values (`input.value`).
static BY_NAME: std::sync::LazyLock<HashMap<&'static str, Vec<(Attr, usize)>>> =
    std::sync::LazyLock::new(|| {
        let mut by_name: HashMap<&'static str, Vec<(Attr, usize)>> = HashMap::new();
        for (attr, names) in ALIASES {
            for (rank, name) in names.iter().enumerate() {
                by_name.entry(name).or_default().push((*attr, rank));
            }
        }
        by_name
    });

/// The values a span's attributes give, each from its most preferred name that is set
/// (not null): found in one pass over the attributes.
struct Attrs<'a> {
    found: [Option<(usize, &'a Value)>; ATTRS],
}

impl<'a> Attrs<'a> {
    fn of(attributes: &'a Map<String, Value>) -> Self {
        let mut found = [None; ATTRS];
        for (name, value) in attributes {
            if value.is_null() {
                continue;
            }
            for &(attr, rank) in BY_NAME.get(name.as_str()).into_iter().flatten() {
                let slot: &mut Option<(usize, &Value)> = &mut found[attr as usize];
                if slot.is_none_or(|(best, _)| rank < best) {
                    *slot = Some((rank, value));
                }
            }
        }
        Attrs { found }
    }

    fn get(&self, attr: Attr) -> Option<&'a Value> {
        self.found[attr as usize].map(|(_, value)| value)
    }

    /// The name of the attribute `attr` was read from, when the record's typed field
    /// holds all of it (a count or number that did not read is kept as sent).
    fn stored_name(&self, attr: Attr) -> Option<&'static str> {
        let read = match attr {
            Attr::InputTokens
            | Attr::OutputTokens
            | Attr::CacheReadTokens
            | Attr::CacheWriteTokens
            | Attr::CacheWrite1hTokens
            | Attr::ReasoningTokens => self.count(attr).is_some(),
            Attr::Cost | Attr::TimeToFirstChunk => self.number(attr).is_some(),
            _ => self.get(attr).is_some(),
        };
        if read { self.name(attr) } else { None }
    }

    /// The attribute name `attr`'s value came from.
    fn name(&self, attr: Attr) -> Option<&'static str> {
        let (rank, _) = self.found[attr as usize]?;
        let (_, names) = ALIASES.iter().find(|(a, _)| *a == attr)?;
        names.get(rank).copied()
    }

    fn text(&self, attr: Attr) -> Option<String> {
        self.get(attr).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn count(&self, attr: Attr) -> Option<u64> {
        self.get(attr).and_then(|v| match v {
            Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    fn number(&self, attr: Attr) -> Option<f64> {
        self.get(attr).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }
}

/// Why a span's values cannot be stored as sent, naming the attribute: a token count
/// that is a negative or fractional number, or one above
/// [`LlmCall::MAX_COUNT`](sonde_model::LlmCall::MAX_COUNT); a cost or a time to first
/// token that is a negative number. (A value that is no number at all, such as
/// `"fifty"`, is not read into a typed field: it stays in the metadata as sent.)
pub(crate) fn value_problem(span: &crate::Span) -> Option<String> {
    let a = Attrs::of(&span.attributes);
    let max = sonde_model::LlmCall::MAX_COUNT;
    for attr in [
        Attr::InputTokens,
        Attr::OutputTokens,
        Attr::TotalTokens,
        Attr::CacheReadTokens,
        Attr::CacheWriteTokens,
        Attr::CacheWrite1hTokens,
        Attr::ReasoningTokens,
    ] {
        let Some(value) = a.get(attr) else { continue };
        let count = match value {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            }),
            Value::String(s) if s.trim().parse::<f64>().is_err() => continue,
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => continue,
        };
        if count.is_none_or(|c| c > max) {
            return Some(format!(
                "{}: {value} is not a token count (a whole number from 0 to {max})",
                a.name(attr).unwrap_or("a token count")
            ));
        }
    }
    for attr in [Attr::Cost, Attr::TimeToFirstChunk] {
        let Some(value) = a.get(attr) else { continue };
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(n) => Some(n),
                Err(_) => continue,
            },
            _ => continue,
        };
        if !number.is_some_and(|n| n.is_finite() && n >= 0.0) {
            return Some(format!(
                "{}: {value} is not a number from 0 up",
                a.name(attr).unwrap_or("a number")
            ));
        }
    }
    None
}

/// A JSON-looking string as JSON kept as text (checked, not parsed: messages pass
/// through to the store as they came), else the value itself.
fn json_text(v: Value) -> Json {
    match json_looking(&v).and_then(Json::from_text) {
        Some(json) => json,
        None => v.into(),
    }
}

/// A JSON-looking string as JSON, else the value itself.
fn json_value(v: &Value) -> Value {
    json_looking(v)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| v.clone())
}

/// The text of a string value that looks like a JSON object or array.
fn json_looking(v: &Value) -> Option<&str> {
    v.as_str()
        .filter(|s| s.trim_start().starts_with(['{', '[']))
}

/// The values an LLM call keeps in typed fields, which its metadata need not repeat
/// (the model too: whichever of the two names it was read from).
const LLM_FIELDS: [Attr; 12] = [
    Attr::Provider,
    Attr::Operation,
    Attr::InputTokens,
    Attr::OutputTokens,
    Attr::CacheReadTokens,
    Attr::CacheWriteTokens,
    Attr::CacheWrite1hTokens,
    Attr::ReasoningTokens,
    Attr::Cost,
    Attr::TimeToFirstChunk,
    Attr::Conversation,
    Attr::UserId,
];

/// The values a tool call keeps in typed fields.
const TOOL_FIELDS: [Attr; 4] = [
    Attr::ToolName,
    Attr::ToolCallId,
    Attr::Conversation,
    Attr::UserId,
];

/// The names of the attributes whose values the typed fields of a span in `role` hold
/// (its step's id in every role: the record's context holds it).
fn stored_names(a: &Attrs<'_>, role: Role) -> [Option<&'static str>; 14] {
    let fields: &[Attr] = match role {
        Role::Llm => &LLM_FIELDS,
        Role::Tool => &TOOL_FIELDS,
        Role::Other => &[],
    };
    // Cached tokens are taken out of the input: when they exceed it, the input as sent
    // cannot be told from the stored fields, so it stays.
    let cached =
        a.count(Attr::CacheReadTokens).unwrap_or(0) + a.count(Attr::CacheWriteTokens).unwrap_or(0);
    let input_rebuilt = a.count(Attr::InputTokens).unwrap_or(0) >= cached;
    let model = match role {
        Role::Llm => a
            .stored_name(Attr::ResponseModel)
            .or_else(|| a.stored_name(Attr::RequestModel)),
        Role::Tool | Role::Other => None,
    };
    let found = fields
        .iter()
        .filter(|attr| **attr != Attr::InputTokens || input_rebuilt)
        .map(|attr| a.stored_name(*attr))
        .chain([model, a.stored_name(Attr::StepId)]);
    let mut names = [None; 14];
    for (slot, name) in names.iter_mut().zip(found) {
        *slot = name;
    }
    names
}

/// What kind of work a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Llm,
    Tool,
    Other,
}

fn role(a: &Attrs<'_>) -> Role {
    let kind = a.text(Attr::SpanKind).map(|k| k.to_ascii_lowercase());
    let op = a.text(Attr::Operation).map(|o| o.to_ascii_lowercase());
    let llm_ops = [
        "chat",
        "text_completion",
        "completion",
        "generate_content",
        "embeddings",
        "embedding",
    ];
    if op.as_deref() == Some("execute_tool") || kind.as_deref() == Some("tool") {
        return Role::Tool;
    }
    if op.as_deref().is_some_and(|o| llm_ops.contains(&o))
        || matches!(kind.as_deref(), Some("llm" | "embedding"))
        || a.get(Attr::InputTokens).is_some()
        || a.get(Attr::OutputTokens).is_some()
        || a.get(Attr::ResponseModel).is_some()
        || a.get(Attr::RequestModel).is_some()
    {
        return Role::Llm;
    }
    if a.get(Attr::ToolName).is_some() {
        return Role::Tool;
    }
    Role::Other
}

/// The span's error: its status message, else its first exception event's message.
fn error_of(span: &Span) -> Option<String> {
    if span.status != SpanStatus::Error {
        return None;
    }
    span.status_message
        .clone()
        .or_else(|| {
            span.events
                .iter()
                .find(|e| e["name"] == "exception")
                .and_then(|e| {
                    e["attributes"]["exception.message"]
                        .as_str()
                        .map(str::to_owned)
                })
        })
        .or_else(|| Some("error".to_owned()))
}

/// Where the span came from: its name, kind and scope, its resource attributes and
/// events, and its attributes but those whose values the record holds in typed fields
/// or as content (`attributes` is what is left of them).
fn otel_metadata(span: Span, attributes: Map<String, Value>, user: Option<String>) -> Metadata {
    let mut otel = Map::new();
    otel.insert("span_name".into(), Value::String(span.name));
    otel.insert("span_kind".into(), json!(span.kind));
    if let Some(scope) = span.scope {
        otel.insert("scope".into(), Value::String(scope));
    }
    otel.insert("attributes".into(), Value::Object(attributes));
    if !span.resource.is_empty() {
        otel.insert("resource".into(), Value::Object(span.resource));
    }
    if !span.events.is_empty() {
        otel.insert("events".into(), Value::Array(span.events));
    }
    let mut metadata = Metadata::new();
    metadata.insert("otel".into(), Value::Object(otel));
    if let Some(user) = user {
        metadata.insert("user_id".into(), Value::String(user));
    }
    metadata
}

/// Takes the content values (`content`) out of `attributes`, each from the name it was
/// read from; every other name of the same values goes too, set or not, so that
/// nothing is stored twice.
fn take_content(
    attributes: &mut Map<String, Value>,
    from: [Option<&'static str>; 2],
    content: &[Attr; 2],
) -> [Option<Value>; 2] {
    let taken = from.map(|name| name.and_then(|name| attributes.remove(name)));
    attributes.retain(|name, _| {
        BY_NAME
            .get(name.as_str())
            .is_none_or(|attrs| !attrs.iter().any(|(attr, _)| content.contains(attr)))
    });
    taken
}

/// The session a span belongs to: `gen_ai.conversation.id`, `session.id` (and their
/// aliases), else its trace id.
pub fn session_of(span: &Span) -> String {
    session_in(span, &Attrs::of(&span.attributes))
}

fn session_in(span: &Span, a: &Attrs<'_>) -> String {
    a.text(Attr::Conversation)
        .unwrap_or_else(|| span.trace_id.clone())
}

fn llm_call(a: &Attrs<'_>, duration_ms: Option<f64>, error: Option<String>) -> LlmCall {
    let mut call = LlmCall {
        provider: a.text(Attr::Provider),
        model_name: a
            .text(Attr::ResponseModel)
            .or_else(|| a.text(Attr::RequestModel))
            .unwrap_or_else(|| "unknown".to_owned()),
        operation: a.text(Attr::Operation),
        cost_usd: a.number(Attr::Cost),
        latency_ms: duration_ms,
        time_to_first_token_ms: a
            .number(Attr::TimeToFirstChunk)
            .map(|seconds| seconds * 1000.0),
        status: if error.is_some() {
            Status::Error
        } else {
            Status::Ok
        },
        error,
        stop_reason: a
            .get(Attr::FinishReasons)
            .and_then(|v| match json_value(v) {
                Value::Array(reasons) => reasons.first().and_then(Value::as_str).map(str::to_owned),
                Value::String(s) => Some(s),
                _ => None,
            }),
        ..Default::default()
    };
    // OpenTelemetry (like OpenAI) counts cached tokens inside the input: normalise to
    // Sonde's convention, where input is uncached only.
    let output = a.count(Attr::OutputTokens).unwrap_or(0);
    let input = a
        .count(Attr::InputTokens)
        .or_else(|| {
            a.count(Attr::TotalTokens)
                .map(|total| total.saturating_sub(output))
        })
        .unwrap_or(0);
    call.set_usage_cached_in_input(
        input,
        a.count(Attr::CacheReadTokens).unwrap_or(0),
        a.count(Attr::CacheWriteTokens).unwrap_or(0),
        output,
        a.count(Attr::ReasoningTokens).unwrap_or(0),
    );
    call.cache_write_1h_tokens = a.count(Attr::CacheWrite1hTokens).unwrap_or(0);
    call
}

fn tool_call(
    span: &Span,
    a: &Attrs<'_>,
    duration_ms: Option<f64>,
    error: Option<String>,
) -> RuntimeAction {
    RuntimeAction {
        tool_name: a.text(Attr::ToolName).or_else(|| Some(span.name.clone())),
        tool_call_id: a.text(Attr::ToolCallId),
        status: if error.is_some() {
            Status::Error
        } else {
            Status::Ok
        },
        error,
        duration_ms,
        ..Default::default()
    }
}

/// The records a span carried whole (`sonde.session_started`, `sonde.message`...: see
/// [`record_spans`](crate::record_spans)), each at the span's start (an end record at
/// its end); `None` when it carries none.
fn carried_records(span: &Span, a: &Attrs<'_>) -> Option<[Option<Record>; 2]> {
    let mut records = [None, None];
    let mut slots = records.iter_mut();
    for (attr, kind, at_end) in CARRIED {
        let Some(body) = a
            .get(attr)
            .and_then(Value::as_str)
            .and_then(|payload| Body::from_kind_and_payload(kind, payload).ok())
        else {
            continue;
        };
        let Some(slot) = slots.next() else {
            break;
        };
        let nanos = if at_end {
            span.end_unix_nano
        } else {
            span.start_unix_nano
        };
        let timestamp = Timestamp::from_micros(i64::try_from(nanos / 1000).unwrap_or(i64::MAX));
        *slot = Some(Record {
            id: derived_id_at(timestamp, &["otlp", &span.trace_id, &span.span_id, kind]),
            timestamp,
            context: Context {
                session_id: session_in(span, a),
                step_id: a.text(Attr::StepId),
                trace_id: Some(span.trace_id.clone()),
                span_id: Some(span.span_id.clone()),
                parent_span_id: span.parent_span_id.clone(),
                ..Context::default()
            },
            body,
        });
    }
    records[0].is_some().then_some(records)
}

/// The records of one span. A span that carries Sonde records whole (a session or turn
/// span of Sonde's exports carries its start and end, a message or reward span its
/// record) gives those; any other span one record: an `llm_call` for model calls, a
/// `runtime_event` for tool executions, and a `custom_event` named after the span for
/// everything else (agents, workflows, HTTP handlers...), so that parents are kept. Ids
/// are derived from the trace and span ids: sending a span twice stores it once.
///
/// ```
/// let span = sonde_otlp::Span {
///     trace_id: "5b8efff798038103d269b633813fc60c".into(),
///     span_id: "eee19b7ec3c1b174".into(),
///     name: "chat gpt-5".into(),
///     attributes: serde_json::json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-5"})
///         .as_object().unwrap().clone(),
///     ..Default::default()
/// };
/// let records: Vec<_> = sonde_otlp::span_to_records(span).collect();
/// assert_eq!(records[0].kind(), "llm_call");
/// assert_eq!(records[0].context.session_id, "5b8efff798038103d269b633813fc60c");
/// ```
pub fn span_to_records(mut span: Span) -> impl Iterator<Item = Record> {
    // The typed fields are read from the attributes first; then the content values and
    // what is left are moved, not copied, into the record.
    let mut attributes = std::mem::take(&mut span.attributes);
    let a = Attrs::of(&attributes);
    if let Some(records) = carried_records(&span, &a) {
        return records.into_iter().flatten();
    }
    let duration_ms = span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e6;
    // A span that lasted no time says nothing of how long its call took (Sonde's
    // exporter sends a call of unknown latency so).
    let timed = (duration_ms > 0.0).then_some(duration_ms);
    let start =
        Timestamp::from_micros(i64::try_from(span.start_unix_nano / 1000).unwrap_or(i64::MAX));
    // Time-ordered, so that the store's id index appends; a retried export has the
    // same ids and start times, so it is still stored once.
    let id = derived_id_at(start, &["otlp", &span.trace_id, &span.span_id]);
    let error = error_of(&span);
    let user = a.text(Attr::UserId);
    let session_id = session_in(&span, &a);
    let step_id = a.text(Attr::StepId);
    let role = role(&a);
    let (mut event, content) = match role {
        Role::Llm => (
            Event::Llm(llm_call(&a, timed, error)),
            Some([Attr::InputMessages, Attr::OutputMessages]),
        ),
        Role::Tool => (
            Event::Runtime(tool_call(&span, &a, timed, error)),
            Some([Attr::ToolArguments, Attr::ToolResult]),
        ),
        Role::Other => (
            Event::Custom(CustomEvent {
                name: span.name.clone(),
                data: json!({
                    "duration_ms": duration_ms,
                    "kind": a.text(Attr::SpanKind).or_else(|| a.text(Attr::Operation)),
                    "error": error,
                }),
                ..Default::default()
            }),
            // Nothing is content: every attribute stays.
            None,
        ),
    };
    let from = content.map(|content| (content, content.map(|attr| a.name(attr))));
    // Stored once: in the typed fields, not again in the metadata.
    for name in stored_names(&a, role).into_iter().flatten() {
        attributes.remove(name);
    }
    let [input, output] = from.map_or([None, None], |(content, names)| {
        take_content(&mut attributes, names, &content)
    });
    let context = Context {
        session_id,
        step_id,
        trace_id: Some(std::mem::take(&mut span.trace_id)),
        span_id: Some(std::mem::take(&mut span.span_id)),
        parent_span_id: span.parent_span_id.take(),
        ..Context::default()
    };
    let metadata = otel_metadata(span, attributes, user);
    match &mut event {
        Event::Llm(call) => {
            let (request, response) = (input.map(json_text), output.map(json_text));
            if request.is_some() || response.is_some() {
                call.call_records.push(LlmCallRecord {
                    request,
                    response,
                    metadata: Metadata::new(),
                });
            }
            call.metadata = metadata;
        }
        Event::Runtime(action) => {
            action.arguments = input.as_ref().map(json_value);
            action.result = output.as_ref().map(json_value);
            action.metadata = metadata;
        }
        Event::Custom(custom) => custom.metadata = metadata,
        _ => {}
    }
    let record = Record {
        id,
        timestamp: start,
        context,
        body: Body::Event(event),
    };
    [Some(record), None].into_iter().flatten()
}
