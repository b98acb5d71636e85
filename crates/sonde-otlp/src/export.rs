//! Records out as OTLP spans that a peer shows as one whole trace per session.
//!
//! - **A root per session**: an `AGENT` span (OpenInference's kind, `invoke_agent` in
//!   the GenAI conventions) named for the agent and project (`claude-code shop`),
//!   carrying the session's metadata (`sonde.session.cwd`, `…git_branch`,
//!   `…agent_version`, `…project`) and its totals (`sonde.session.llm_calls`,
//!   `…input_tokens`, `…cost_usd`...: Sonde's names, so that a backend summing
//!   `llm.token_count.*` over a trace does not count them twice).
//! - **A `CHAIN` span per step / turn** under it, the user's prompt as its input and the
//!   reply as its output.
//! - **Every event under its step**: LLM calls as `chat` spans (kind `LLM`) with their
//!   messages in the GenAI conventions' JSON (`gen_ai.input.messages`,
//!   `gen_ai.output.messages`, `gen_ai.system_instructions`) and OpenInference's
//!   (`llm.input_messages.*`, `input.value`), tokens both ways (`gen_ai.usage.*`, input
//!   counted with cached tokens; `llm.token_count.*`), cost as `llm.cost.total` (the
//!   GenAI conventions name no cost) and the one-hour cache writes as
//!   `sonde.usage.cache_write_1h_tokens`; tool calls as `execute_tool` spans (kind
//!   `TOOL`) with arguments and result; custom events (summaries, compaction, hooks)
//!   as `CHAIN` spans and environment feedback and rewards as `EVALUATOR` spans, so no
//!   span is of unknown kind. Subagents sit under the call that spawned them (their
//!   records name its span as parent).
//! - Root and step span ids are derived from the session and step ids, so a re-sync
//!   yields the same ids. Each carries its start and end records whole
//!   (`sonde.session_started`...), as message and reward spans carry theirs, so that
//!   another Sonde receiving the spans stores the same records.
//!
//! A session's or step's span is sent once, when its end is known: its end record, or
//! [`SpanMapper::finish`] for an export of whole sessions. Content obeys
//! [`ExportOptions`]: none at all with `content: false`, each attribute capped.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Value, json};
use sonde_model::{
    Body, Context, Event, LlmCall, Message, Record, SessionTotals, Timestamp, derived_id,
};

use crate::ExportOptions;
use crate::content::{as_text, call_content, text_of};

/// Sessions (and, apart, steps) whose spans a [`SpanMapper`] holds open at most; the
/// oldest is forgotten beyond it (a session that never ends must not grow memory).
pub const MAX_OPEN_SPANS: usize = 10_000;

/// The most messages of one list (`llm.input_messages`...) spelled out as flat
/// OpenInference attributes: the latest ones. The GenAI JSON keeps them all.
const MAX_FLAT_MESSAGES: usize = 64;

/// Span attributes being built.
struct Attributes<'o> {
    list: Vec<KeyValue>,
    options: &'o ExportOptions,
}

impl<'o> Attributes<'o> {
    fn new(options: &'o ExportOptions) -> Self {
        Self {
            list: Vec::new(),
            options,
        }
    }

    fn put(&mut self, key: &str, value: any_value::Value) {
        self.list.push(KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
        });
    }

    fn text(&mut self, key: &str, value: &str) {
        self.put(key, any_value::Value::StringValue(value.to_owned()));
    }

    fn int(&mut self, key: &str, value: u64) {
        self.put(
            key,
            any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn double(&mut self, key: &str, value: f64) {
        self.put(key, any_value::Value::DoubleValue(value));
    }

    fn strings(&mut self, key: &str, values: &[&str]) {
        let values = values
            .iter()
            .map(|v| AnyValue {
                value: Some(any_value::Value::StringValue((*v).to_owned())),
            })
            .collect();
        self.put(key, any_value::Value::ArrayValue(ArrayValue { values }));
    }

    /// Content text, capped; nothing when content is off or `value` is empty.
    fn content(&mut self, key: &str, value: &str) {
        if self.options.content && !value.is_empty() {
            let capped = self.options.capped(value);
            self.text(key, &capped);
        }
    }

    /// Content JSON, capped and still JSON where it can be; nothing when content is
    /// off.
    fn content_json(&mut self, key: &str, value: &Value) {
        if self.options.content {
            let capped = self.options.capped_json(value);
            self.text(key, &capped);
        }
    }

    /// `input.value` / `output.value` (`which`), with its MIME type: text as it is,
    /// anything else as JSON.
    fn value(&mut self, which: &str, value: &Value) {
        if !self.options.content || value.is_null() {
            return;
        }
        match value {
            Value::String(text) if text.is_empty() => {}
            Value::String(text) => {
                self.content(&format!("{which}.value"), text);
                self.text(&format!("{which}.mime_type"), "text/plain");
            }
            other => {
                self.content_json(&format!("{which}.value"), other);
                self.text(&format!("{which}.mime_type"), "application/json");
            }
        }
    }

    /// Messages as OpenInference's flat attributes under `prefix`
    /// (`llm.input_messages`): role, content, tool calls, the latest
    /// [`MAX_FLAT_MESSAGES`].
    fn flat_messages(&mut self, prefix: &str, messages: &[Value]) {
        if !self.options.content {
            return;
        }
        let skip = messages.len().saturating_sub(MAX_FLAT_MESSAGES);
        for (i, m) in messages.iter().skip(skip).enumerate() {
            let at = format!("{prefix}.{i}.message");
            self.text(&format!("{at}.role"), m["role"].as_str().unwrap_or("user"));
            let mut texts = Vec::new();
            let mut calls = 0;
            for part in m["parts"].as_array().into_iter().flatten() {
                match part["type"].as_str() {
                    Some("text") => texts.push(as_text(&part["content"])),
                    Some("tool_call_response") => {
                        if let Some(id) = part["id"].as_str() {
                            self.text(&format!("{at}.tool_call_id"), id);
                        }
                        texts.push(as_text(&part["response"]));
                    }
                    Some("tool_call") => {
                        let call = format!("{at}.tool_calls.{calls}.tool_call");
                        if let Some(id) = part["id"].as_str() {
                            self.text(&format!("{call}.id"), id);
                        }
                        self.text(
                            &format!("{call}.function.name"),
                            part["name"].as_str().unwrap_or_default(),
                        );
                        self.content_json(
                            &format!("{call}.function.arguments"),
                            &part["arguments"],
                        );
                        calls += 1;
                    }
                    _ => {}
                }
            }
            self.content(&format!("{at}.content"), &texts.join("\n\n"));
        }
    }
}

/// Bytes of a hex id when it is one of `len` bytes, else `len` bytes derived from `seed`.
fn id_bytes(hex: Option<&str>, len: usize, seed: &[&str]) -> Vec<u8> {
    let parsed = hex.filter(|h| h.len() == len * 2).and_then(|h| {
        (0..len)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()
    });
    parsed
        .filter(|b| b.iter().any(|x| *x != 0))
        .unwrap_or_else(|| {
            let id = derived_id(seed).replace('-', "");
            (0..len)
                .map(|i| {
                    u8::from_str_radix(&id[(2 * i) % 32..(2 * i) % 32 + 2], 16).unwrap_or(1)
                        | u8::from(i == 0)
                })
                .collect()
        })
}

/// Nanoseconds since the epoch at `at` (0 before the epoch).
fn nanos(at: Timestamp) -> u64 {
    u64::try_from(at.as_micros())
        .unwrap_or(0)
        .saturating_mul(1000)
}

/// `ms` milliseconds in nanoseconds (0 when unknown or negative).
fn duration_nanos(ms: Option<f64>) -> u64 {
    ms.map_or(0, |ms| (ms * 1e6).round().max(0.0) as u64)
}

fn trace_id(ctx: &Context) -> Vec<u8> {
    id_bytes(ctx.trace_id.as_deref(), 16, &["trace", &ctx.session_id])
}

/// The id of a session's root span: derived from the session alone, so that a span of
/// the session names it as parent without seeing it.
fn session_span_id(session_id: &str) -> Vec<u8> {
    id_bytes(None, 8, &["session", session_id])
}

/// The id of a step's span, derived like [`session_span_id`].
fn turn_span_id(session_id: &str, step_id: &str) -> Vec<u8> {
    id_bytes(None, 8, &["turn", session_id, step_id])
}

/// The parent of a record's span: the span its context names, else its step's span,
/// else its session's.
fn parent_span_id(ctx: &Context) -> Vec<u8> {
    match (&ctx.parent_span_id, &ctx.step_id) {
        (Some(parent), _) => id_bytes(Some(parent), 8, &["span", parent]),
        (None, Some(step)) => turn_span_id(&ctx.session_id, step),
        (None, None) => session_span_id(&ctx.session_id),
    }
}

/// The attribute that carries a record of `kind` whole, as its payload's JSON.
fn payload_attribute(kind: &str) -> String {
    format!("sonde.{kind}")
}

/// The attributes every span of a record has: its session (both conventions' names)
/// and step.
fn context_attributes(a: &mut Attributes<'_>, ctx: &Context) {
    a.text("gen_ai.conversation.id", &ctx.session_id);
    a.text("session.id", &ctx.session_id);
    if let Some(step) = &ctx.step_id {
        a.text("sonde.step.id", step);
    }
}

fn llm_attributes(a: &mut Attributes<'_>, c: &LlmCall, reply: Option<&str>) {
    a.text("openinference.span.kind", "LLM");
    a.text(
        "gen_ai.operation.name",
        c.operation.as_deref().unwrap_or("chat"),
    );
    if let Some(p) = &c.provider {
        a.text("gen_ai.provider.name", p);
        a.text("llm.provider", p);
        a.text("llm.system", p);
    }
    a.text("gen_ai.request.model", &c.model_name);
    a.text("gen_ai.response.model", &c.model_name);
    a.text("llm.model_name", &c.model_name);
    let input = c.input_tokens_with_cache();
    a.int("gen_ai.usage.input_tokens", input);
    a.int("gen_ai.usage.output_tokens", c.output_tokens);
    a.int("gen_ai.usage.cache_read.input_tokens", c.cache_read_tokens);
    a.int(
        "gen_ai.usage.cache_creation.input_tokens",
        c.cache_write_tokens,
    );
    a.int("llm.token_count.prompt", input);
    a.int("llm.token_count.completion", c.output_tokens);
    a.int(
        "llm.token_count.total",
        input.saturating_add(c.output_tokens),
    );
    a.int(
        "llm.token_count.prompt_details.cache_read",
        c.cache_read_tokens,
    );
    a.int(
        "llm.token_count.prompt_details.cache_write",
        c.cache_write_tokens,
    );
    if c.reasoning_tokens > 0 {
        a.int(
            "llm.token_count.completion_details.reasoning",
            c.reasoning_tokens,
        );
    }
    if c.cache_write_1h_tokens > 0 {
        // No convention names the one-hour part of the cache writes (priced higher).
        a.int("sonde.usage.cache_write_1h_tokens", c.cache_write_1h_tokens);
    }
    if let Some(cost) = c.cost_usd {
        // The GenAI conventions name no cost; OpenInference's name is read by Phoenix.
        a.double("llm.cost.total", cost);
    }
    if let Some(reason) = &c.stop_reason {
        a.strings("gen_ai.response.finish_reasons", &[reason]);
    }
    if let Some(ttft) = c.time_to_first_token_ms {
        a.double("sonde.response.time_to_first_chunk", ttft / 1000.0);
    }
    let mut content = call_content(c);
    if content.output.is_empty()
        && let Some(reply) = reply.filter(|r| !r.is_empty())
    {
        content.output.push(json!({
            "role": "assistant",
            "parts": [{"type": "text", "content": reply}],
            "finish_reason": c.stop_reason.as_deref().unwrap_or("stop"),
        }));
    }
    if !content.system.is_empty() {
        a.content_json("gen_ai.system_instructions", &Value::Array(content.system));
    }
    if !content.input.is_empty() {
        a.content_json(
            "gen_ai.input.messages",
            &Value::Array(content.input.clone()),
        );
        a.flat_messages("llm.input_messages", &content.input);
        a.value("input", &json!({"messages": content.input}));
    }
    if !content.output.is_empty() {
        a.content_json(
            "gen_ai.output.messages",
            &Value::Array(content.output.clone()),
        );
        a.flat_messages("llm.output_messages", &content.output);
        let text = text_of(&content.output);
        if text.is_empty() {
            a.value("output", &json!({"messages": content.output}));
        } else {
            a.value("output", &Value::String(text));
        }
    }
}

/// The span of an event record; `None` for other record kinds (see [`SpanMapper`]).
/// With default [`ExportOptions`].
///
/// ```
/// use sonde_model::{Body, Context, Event, LlmCall, Record};
/// let call = LlmCall { model_name: "gpt-5".into(), input_tokens: 3, ..Default::default() };
/// let record = Record::new(Context::session("s"), Body::Event(Event::Llm(call)));
/// let span = sonde_otlp::record_to_span(&record).unwrap();
/// assert_eq!(span.name, "chat gpt-5");
/// ```
pub fn record_to_span(record: &Record) -> Option<Span> {
    event_span(record, None, &ExportOptions::default())
}

/// The span of an event record; `reply` is the text of its reply message, for a call
/// whose records keep no response.
fn event_span(record: &Record, reply: Option<&str>, options: &ExportOptions) -> Option<Span> {
    let Body::Event(event) = &record.body else {
        return None;
    };
    let ctx = &record.context;
    let start = nanos(record.timestamp);
    let mut a = Attributes::new(options);
    context_attributes(&mut a, ctx);
    let (name, kind, duration_ms, error) = match event {
        Event::Llm(c) => {
            llm_attributes(&mut a, c, reply);
            (
                format!("chat {}", c.model_name),
                3,
                c.latency_ms,
                c.error.clone().filter(|_| !c.status.is_ok()),
            )
        }
        Event::Runtime(t) => {
            a.text("openinference.span.kind", "TOOL");
            a.text("gen_ai.operation.name", "execute_tool");
            let tool = t.tool_name.clone().unwrap_or_else(|| "action".to_owned());
            a.text("gen_ai.tool.name", &tool);
            a.text("tool.name", &tool);
            if let Some(id) = &t.tool_call_id {
                a.text("gen_ai.tool.call.id", id);
            }
            if let Some(args) = &t.arguments {
                a.content_json("gen_ai.tool.call.arguments", args);
                a.value("input", args);
            }
            if let Some(result) = &t.result {
                a.content("gen_ai.tool.call.result", &as_text(result));
                a.value("output", &Value::String(as_text(result)));
            }
            (
                format!("execute_tool {tool}"),
                1,
                t.duration_ms,
                t.error
                    .clone()
                    .or_else(|| Some(String::new()))
                    .filter(|_| !t.status.is_ok()),
            )
        }
        Event::Environment(e) => {
            a.text("openinference.span.kind", "EVALUATOR");
            if let Some(reward) = e.reward {
                a.double("sonde.environment.reward", reward);
            }
            if options.content {
                a.content_json(
                    &payload_attribute("environment_event"),
                    &json!(record.body.payload_json()),
                );
            }
            ("environment".to_owned(), 1, None, None)
        }
        Event::Custom(c) => {
            // Summaries, compaction boundaries, hook summaries: steps of the agent's own
            // bookkeeping, a chain of work in OpenInference's terms, chosen on purpose.
            a.text("openinference.span.kind", "CHAIN");
            a.text("sonde.event.name", &c.name);
            if !c.data.is_null() {
                a.value("input", &c.data);
            }
            (c.name.clone(), 1, None, None)
        }
        // No convention names these: their spans carry the record whole.
        Event::ToolCallStarted(_) | Event::PromptBuilt(_) | Event::Stream(_) => {
            return Some(instant_span(record, options));
        }
    };
    Some(Span {
        trace_id: trace_id(ctx),
        span_id: id_bytes(ctx.span_id.as_deref(), 8, &["span", &record.id]),
        parent_span_id: parent_span_id(ctx),
        name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration_nanos(duration_ms),
        status: error.map(|message| Status { code: 2, message }),
        attributes: a.list,
        ..Default::default()
    })
}

/// `body` as sent whole: a message's content left out when content is off.
fn carried_payload(body: &Body, options: &ExportOptions) -> String {
    match body {
        Body::Message(m) if !options.content => Body::Message(Message {
            content: Default::default(),
            ..m.clone()
        })
        .payload_json(),
        Body::StepEnded(end) => {
            // The prompt and reply a step's end may carry travel as input and output.
            let mut end = end.clone();
            end.metadata.remove(STEP_PROMPT);
            end.metadata.remove(STEP_REPLY);
            Body::StepEnded(end).payload_json()
        }
        Body::SessionEnded(end) => {
            let mut end = end.clone();
            end.metadata.remove(STEP_PROMPT);
            end.metadata.remove(STEP_REPLY);
            Body::SessionEnded(end).payload_json()
        }
        other => other.payload_json(),
    }
}

/// The span of a message or reward: an instant at the record's time, carrying the
/// record whole; a message is a `CHAIN` span (its content as input or output), a reward
/// an `EVALUATOR`.
fn instant_span(record: &Record, options: &ExportOptions) -> Span {
    let ctx = &record.context;
    let at = nanos(record.timestamp);
    let mut a = Attributes::new(options);
    context_attributes(&mut a, ctx);
    let kind = record.body.kind();
    let name = match &record.body {
        Body::Message(m) => {
            a.text("openinference.span.kind", "CHAIN");
            let text = Value::String(m.content.as_text());
            let from_agent = matches!(m.from_role.as_deref(), Some("agent" | "subagent"));
            a.value(if from_agent { "output" } else { "input" }, &text);
            if m.message_type.is_empty() {
                kind.to_owned()
            } else {
                m.message_type.clone()
            }
        }
        // A tool call's start, a prompt built, a stream event: steps of a chain.
        Body::Event(Event::ToolCallStarted(_) | Event::PromptBuilt(_) | Event::Stream(_)) => {
            a.text("openinference.span.kind", "CHAIN");
            kind.to_owned()
        }
        _ => {
            a.text("openinference.span.kind", "EVALUATOR");
            kind.to_owned()
        }
    };
    a.text(
        &payload_attribute(kind),
        &carried_payload(&record.body, options),
    );
    Span {
        trace_id: trace_id(ctx),
        // Its own id: a reply shares its call's context, not its span.
        span_id: id_bytes(None, 8, &["record-span", &record.id]),
        parent_span_id: parent_span_id(ctx),
        name,
        kind: 1,
        start_time_unix_nano: at,
        end_time_unix_nano: at,
        attributes: a.list,
        ..Default::default()
    }
}

/// The metadata key of a step's (or session's) end record that may carry its prompt,
/// for a mapper that did not see the prompt's message (a sync sends a step's span when
/// the step ends, maybe runs after its prompt).
pub const STEP_PROMPT: &str = "prompt";
/// Like [`STEP_PROMPT`], for the reply.
pub const STEP_REPLY: &str = "reply";
/// The metadata key of a session's end record that may carry its totals (an object
/// with the keys of `sonde.session.*`: `llm_calls`, `input_tokens`...).
pub const SESSION_TOTALS: &str = "totals";

/// Totals as `sonde.session.*` attributes.
fn put_totals(a: &mut Attributes<'_>, totals: &SessionTotals) {
    let Ok(Value::Object(fields)) = serde_json::to_value(totals) else {
        return;
    };
    for (key, value) in fields {
        match value {
            Value::Number(n) if n.is_u64() => {
                a.int(&format!("sonde.session.{key}"), n.as_u64().unwrap_or(0))
            }
            Value::Number(n) => {
                a.double(&format!("sonde.session.{key}"), n.as_f64().unwrap_or(0.0))
            }
            _ => {}
        }
    }
}

/// A session or a step whose span waits for its end.
#[derive(Debug, Default)]
struct Open {
    /// When it was first seen, for forgetting the oldest.
    seq: u64,
    started: Option<Record>,
    ended: Option<Record>,
    /// The first record's time and context seen, if no start was.
    first: Option<(u64, Context)>,
    /// The end of the latest record seen.
    last_end: u64,
    prompt: Option<String>,
    reply: Option<String>,
    totals: SessionTotals,
}

impl Open {
    fn saw(&mut self, record: &Record, end: u64) {
        let at = nanos(record.timestamp);
        if self.first.as_ref().is_none_or(|(t, _)| at < *t) {
            self.first = Some((at, record.context.clone()));
        }
        self.last_end = self.last_end.max(end).max(at);
    }

    /// The earliest of two records of one kind is kept (a re-sent start keeps its time).
    fn keep(slot: &mut Option<Record>, record: &Record) {
        if slot
            .as_ref()
            .is_none_or(|kept| (record.timestamp, &record.id) < (kept.timestamp, &kept.id))
        {
            *slot = Some(record.clone());
        }
    }

    /// Its prompt and reply as input and output, and its start and end records whole.
    fn put_content(&self, a: &mut Attributes<'_>) {
        let prompt = self.prompt.clone().or_else(|| self.hint(STEP_PROMPT));
        let reply = self.reply.clone().or_else(|| self.hint(STEP_REPLY));
        a.value("input", &prompt.map_or(Value::Null, Value::String));
        a.value("output", &reply.map_or(Value::Null, Value::String));
        for record in [&self.started, &self.ended].into_iter().flatten() {
            let payload = carried_payload(&record.body, a.options);
            a.text(&payload_attribute(record.body.kind()), &payload);
        }
    }

    /// A value its end record carries in its metadata ([`STEP_PROMPT`]...).
    fn hint(&self, key: &str) -> Option<String> {
        let metadata = match self.ended.as_ref().map(|r| &r.body) {
            Some(Body::StepEnded(end)) => &end.metadata,
            Some(Body::SessionEnded(end)) => &end.metadata,
            _ => return None,
        };
        metadata.get(key).and_then(Value::as_str).map(str::to_owned)
    }
}

/// The entry of `key` in `map`, made as the newest (`seq`) if new; beyond
/// [`MAX_OPEN_SPANS`] the oldest is forgotten.
fn open_entry<'m, K: Eq + std::hash::Hash + Clone>(
    map: &'m mut HashMap<K, Open>,
    key: K,
    seq: &mut u64,
) -> &'m mut Open {
    if !map.contains_key(&key) {
        if map.len() >= MAX_OPEN_SPANS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, o)| o.seq)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        *seq += 1;
    }
    let seq = *seq;
    map.entry(key).or_insert_with(|| Open {
        seq,
        ..Open::default()
    })
}

/// Records to spans, a batch at a time, as [`record_spans`] describes: event, message
/// and reward spans at once, a session's or step's span when its end record comes (or
/// at [`SpanMapper::finish`]). Fed a session's records in any number of batches (a
/// tracer's sink, a sync run), it sends each span once.
///
/// ```
/// use sonde_model::{Body, Context, Record, SessionEnded, SessionStarted};
/// let mut mapper = sonde_otlp::SpanMapper::new(sonde_otlp::ExportOptions::default());
/// let start = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
/// assert!(mapper.map(&[start]).is_empty(), "the root waits for the session's end");
/// let end = Record::new(Context::session("s"), Body::SessionEnded(SessionEnded::default()));
/// let spans = mapper.map(&[end]);
/// assert_eq!(spans.len(), 1);
/// assert!(spans[0].parent_span_id.is_empty(), "the session's span is the trace's root");
/// ```
#[derive(Debug, Default)]
pub struct SpanMapper {
    options: ExportOptions,
    sessions: HashMap<String, Open>,
    steps: HashMap<(String, String), Open>,
    seq: u64,
}

impl SpanMapper {
    /// A mapper holding nothing open yet.
    pub fn new(options: ExportOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    fn session(&mut self, id: &str) -> &mut Open {
        open_entry(&mut self.sessions, id.to_owned(), &mut self.seq)
    }

    fn step(&mut self, session: &str, step: &str) -> &mut Open {
        let key = (session.to_owned(), step.to_owned());
        open_entry(&mut self.steps, key, &mut self.seq)
    }

    /// The spans of `records`: their events', messages' and rewards' spans, and the
    /// spans of the sessions and steps whose end is among them.
    pub fn map(&mut self, records: &[Record]) -> Vec<Span> {
        let mut spans = Vec::with_capacity(records.len());
        // A reply travels beside its call (same span in the context): the call's output
        // when its call records keep none.
        let replies: HashMap<&str, &str> = records
            .iter()
            .filter_map(|r| match &r.body {
                Body::Message(m) if m.message_type == "assistant_reply" => {
                    Some((r.context.span_id.as_deref()?, m.content.text.as_deref()?))
                }
                _ => None,
            })
            .collect();
        let mut ending_steps: Vec<(String, String)> = Vec::new();
        let mut ending_sessions: Vec<String> = Vec::new();
        for record in records {
            let ctx = &record.context;
            let session = ctx.session_id.as_str();
            let span = match &record.body {
                Body::Event(_) => {
                    let reply = ctx.span_id.as_deref().and_then(|s| replies.get(s).copied());
                    event_span(record, reply, &self.options)
                }
                Body::Message(_) | Body::OutcomeReward(_) | Body::EventReward(_) => {
                    Some(instant_span(record, &self.options))
                }
                _ => None,
            };
            let end = span
                .as_ref()
                .map_or(nanos(record.timestamp), |s| s.end_time_unix_nano);
            let open = self.session(session);
            open.saw(record, end);
            match &record.body {
                Body::SessionStarted(_) => Open::keep(&mut open.started, record),
                Body::SessionEnded(_) => {
                    Open::keep(&mut open.ended, record);
                    ending_sessions.push(session.to_owned());
                }
                Body::Event(event) => open.totals.add(event),
                Body::Message(m) => note_message(open, m),
                _ => {}
            }
            if let Some(step) = ctx.step_id.as_deref() {
                let open = self.step(session, step);
                open.saw(record, end);
                match &record.body {
                    Body::StepStarted(_) => Open::keep(&mut open.started, record),
                    Body::StepEnded(_) => {
                        Open::keep(&mut open.ended, record);
                        ending_steps.push((session.to_owned(), step.to_owned()));
                    }
                    Body::Message(m) => note_message(open, m),
                    _ => {}
                }
            }
            spans.extend(span);
        }
        for key in ending_steps {
            if let Some(open) = self.steps.remove(&key) {
                spans.extend(self.step_span(&key.0, &key.1, &open));
            }
        }
        for session in ending_sessions {
            // Its steps end with it.
            let mut steps: Vec<(String, String)> = self
                .steps
                .keys()
                .filter(|(s, _)| *s == session)
                .cloned()
                .collect();
            steps.sort_by_key(|k| self.steps.get(k).map_or(0, |o| o.seq));
            for key in steps {
                if let Some(open) = self.steps.remove(&key) {
                    spans.extend(self.step_span(&key.0, &key.1, &open));
                }
            }
            if let Some(open) = self.sessions.remove(&session) {
                spans.extend(self.session_span(&session, &open));
            }
        }
        spans
    }

    /// The spans of every session and step still open, each ending with its latest
    /// record: the end of an export of whole sessions.
    pub fn finish(&mut self) -> Vec<Span> {
        let mut steps: Vec<_> = self.steps.drain().collect();
        steps.sort_by_key(|(_, o)| o.seq);
        let mut spans: Vec<Span> = steps
            .iter()
            .filter_map(|((session, step), open)| self.step_span(session, step, open))
            .collect();
        let mut sessions: Vec<_> = self.sessions.drain().collect();
        sessions.sort_by_key(|(_, o)| o.seq);
        spans.extend(
            sessions
                .iter()
                .filter_map(|(session, open)| self.session_span(session, open)),
        );
        spans
    }

    /// A step's `CHAIN` span under its session's, when its start or end was seen.
    fn step_span(&self, session: &str, step: &str, open: &Open) -> Option<Span> {
        let first = open.started.as_ref().or(open.ended.as_ref())?;
        let ctx = &first.context;
        let start = nanos(first.timestamp);
        let end = open
            .ended
            .as_ref()
            .map_or(open.last_end, |r| nanos(r.timestamp))
            .max(start);
        let mut a = Attributes::new(&self.options);
        a.text("openinference.span.kind", "CHAIN");
        context_attributes(&mut a, &Context::session(session).with_step(step));
        open.put_content(&mut a);
        let name = match open.started.as_ref().map(|r| &r.body) {
            Some(Body::StepStarted(s)) => match s.turn_number {
                Some(n) => format!("turn {n}"),
                None => format!("step {}", s.step_index + 1),
            },
            _ => "step".to_owned(),
        };
        let parent = ctx
            .parent_span_id
            .as_deref()
            .map(|p| id_bytes(Some(p), 8, &["span", p]))
            .unwrap_or_else(|| session_span_id(session));
        Some(Span {
            trace_id: trace_id(ctx),
            span_id: turn_span_id(session, step),
            parent_span_id: parent,
            name,
            kind: 1,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: a.list,
            ..Default::default()
        })
    }

    /// A session's root `AGENT` span, when anything of it was seen.
    fn session_span(&self, session: &str, open: &Open) -> Option<Span> {
        let (start, ctx) = match (&open.started, &open.first) {
            (Some(r), _) => (nanos(r.timestamp), r.context.clone()),
            (None, Some((at, ctx))) => (*at, ctx.clone()),
            (None, None) => return None,
        };
        let end = open
            .ended
            .as_ref()
            .map_or(open.last_end, |r| nanos(r.timestamp).max(open.last_end))
            .max(start);
        let metadata = match open.started.as_ref().map(|r| &r.body) {
            Some(Body::SessionStarted(s)) => s.metadata.clone(),
            _ => Default::default(),
        };
        let text = |key: &str| metadata.get(key).and_then(Value::as_str);
        let agent = text("source").unwrap_or("agent");
        let name = match text("project") {
            Some(project) => format!("{agent} {project}"),
            None => agent.to_owned(),
        };
        let mut a = Attributes::new(&self.options);
        a.text("openinference.span.kind", "AGENT");
        a.text("gen_ai.operation.name", "invoke_agent");
        a.text("gen_ai.agent.name", agent);
        context_attributes(&mut a, &Context::session(session));
        for (key, value) in &metadata {
            match value {
                Value::String(s) => a.text(&format!("sonde.session.{key}"), s),
                other => a.text(&format!("sonde.session.{key}"), &other.to_string()),
            }
        }
        if let Some(user) = text("user_id") {
            a.text("user.id", user);
        }
        if !metadata.is_empty() {
            a.text("metadata", &Value::Object(metadata.clone()).to_string());
        }
        let totals = open
            .ended
            .as_ref()
            .and_then(|r| match &r.body {
                Body::SessionEnded(end) => end.metadata.get(SESSION_TOTALS),
                _ => None,
            })
            .and_then(|v| serde_json::from_value::<SessionTotals>(v.clone()).ok())
            .unwrap_or(open.totals);
        put_totals(&mut a, &totals);
        open.put_content(&mut a);
        let parent = open
            .started
            .as_ref()
            .and_then(|r| r.context.parent_span_id.as_deref())
            .map(|p| id_bytes(Some(p), 8, &["span", p]))
            .unwrap_or_default();
        Some(Span {
            trace_id: trace_id(&ctx),
            span_id: session_span_id(session),
            parent_span_id: parent,
            name,
            kind: 1,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: a.list,
            ..Default::default()
        })
    }
}

/// Notes a message as a session's or step's prompt (the first user prompt) or reply
/// (the latest reply to the human).
fn note_message(open: &mut Open, m: &Message) {
    match (m.message_type.as_str(), m.to_role.as_deref()) {
        ("user_prompt", _) if open.prompt.is_none() => open.prompt = Some(m.content.as_text()),
        ("assistant_reply", Some("human") | None) => open.reply = Some(m.content.as_text()),
        _ => {}
    }
}

/// The spans of whole sessions' `records`, with default [`ExportOptions`]: see
/// [`record_spans_with`].
///
/// ```
/// use sonde_model::{Body, Context, Record, StepStarted};
/// let step = Record::new(Context::session("s").with_step("t"), Body::StepStarted(StepStarted::default()));
/// let spans = sonde_otlp::record_spans(&[step]);
/// assert_eq!(spans.len(), 2, "the step's span, and its session's root from what was seen");
/// assert!(spans[1].parent_span_id.is_empty());
/// ```
pub fn record_spans(records: &[Record]) -> Vec<Span> {
    record_spans_with(records, &ExportOptions::default())
}

/// The spans of whole sessions' `records`: a root `AGENT` span per session, a `CHAIN`
/// span per step under it, a span per event, message and reward under its step (or
/// the span its record names), each session and step closing at its end record or its
/// latest record.
///
/// ```
/// use sonde_model::{Body, Context, Record, SessionStarted};
/// let start = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
/// let options = sonde_otlp::ExportOptions { content: false, ..Default::default() };
/// assert_eq!(sonde_otlp::record_spans_with(&[start], &options).len(), 1);
/// ```
pub fn record_spans_with(records: &[Record], options: &ExportOptions) -> Vec<Span> {
    let mut mapper = SpanMapper::new(*options);
    let mut spans = mapper.map(records);
    spans.extend(mapper.finish());
    spans
}

/// One OTLP request holding `spans`, from service `service`.
///
/// ```
/// let request = sonde_otlp::spans_request(Vec::new(), "sonde");
/// assert_eq!(request.resource_spans.len(), 1);
/// ```
pub fn spans_request(spans: Vec<Span>, service: &str) -> ExportTraceServiceRequest {
    let options = ExportOptions::default();
    let mut a = Attributes::new(&options);
    a.text("service.name", service);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: a.list,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "sonde".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One OTLP request holding the spans of whole sessions' `records`
/// ([`record_spans`]), from service `service`.
///
/// ```
/// let request = sonde_otlp::export_request(&[], "sonde");
/// assert!(request.resource_spans[0].scope_spans[0].spans.is_empty());
/// ```
pub fn export_request(records: &[Record], service: &str) -> ExportTraceServiceRequest {
    spans_request(record_spans(records), service)
}
