//! Records out as OTLP spans, in the GenAI conventions that Phoenix, Langfuse and Jaeger
//! display: LLM calls as `chat` spans with `gen_ai.*` attributes (input counted the
//! OpenTelemetry way, cached tokens included), tool calls as `execute_tool` spans, other
//! events as spans named after them. The session is `gen_ai.conversation.id`. A session
//! is a root `session` span, each step a `turn` span under it, and events, messages
//! and rewards spans under their turn: what no convention names travels as `sonde.*`
//! attributes, so that another Sonde receiving the spans stores the same records.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;
use sonde_model::{Body, Context, Event, Record, Timestamp, derived_id};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
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

/// The id of a session's `session` span: derived from the session alone, so that a
/// span of the session names it as parent without seeing it.
fn session_span_id(session_id: &str) -> Vec<u8> {
    id_bytes(None, 8, &["session", session_id])
}

/// The id of a step's `turn` span, derived like [`session_span_id`].
fn turn_span_id(session_id: &str, step_id: &str) -> Vec<u8> {
    id_bytes(None, 8, &["turn", session_id, step_id])
}

/// The parent of a record's span: the span its context names, else its turn's span,
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

/// The span of an event record; `None` for other record kinds (their spans are made
/// by [`record_spans`], which pairs a session's or step's start and end into one).
pub fn record_to_span(record: &Record) -> Option<Span> {
    let Body::Event(event) = &record.body else {
        return None;
    };
    let ctx = &record.context;
    let start = nanos(record.timestamp);
    let mut attributes = vec![text("gen_ai.conversation.id", &ctx.session_id)];
    if let Some(step) = &ctx.step_id {
        attributes.push(text("sonde.step.id", step));
    }
    let (name, duration_ms, error) = match event {
        Event::Llm(c) => {
            attributes.push(text(
                "gen_ai.operation.name",
                c.operation.as_deref().unwrap_or("chat"),
            ));
            if let Some(p) = &c.provider {
                attributes.push(text("gen_ai.provider.name", p));
            }
            attributes.push(text("gen_ai.request.model", &c.model_name));
            attributes.push(text("gen_ai.response.model", &c.model_name));
            attributes.push(int(
                "gen_ai.usage.input_tokens",
                c.input_tokens_with_cache(),
            ));
            attributes.push(int("gen_ai.usage.output_tokens", c.output_tokens));
            attributes.push(int(
                "gen_ai.usage.cache_read.input_tokens",
                c.cache_read_tokens,
            ));
            attributes.push(int(
                "gen_ai.usage.cache_creation.input_tokens",
                c.cache_write_tokens,
            ));
            if c.cache_write_1h_tokens > 0 {
                // No convention names the one-hour part of the cache writes.
                attributes.push(int(
                    "sonde.usage.cache_write_1h_tokens",
                    c.cache_write_1h_tokens,
                ));
            }
            attributes.push(int(
                "gen_ai.usage.reasoning.output_tokens",
                c.reasoning_tokens,
            ));
            if let Some(cost) = c.cost_usd {
                attributes.push(kv("gen_ai.usage.cost", any_value::Value::DoubleValue(cost)));
            }
            if let Some(reason) = &c.stop_reason {
                attributes.push(kv(
                    "gen_ai.response.finish_reasons",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue(reason.clone())),
                        }],
                    }),
                ));
            }
            if let Some(ttft) = c.time_to_first_token_ms {
                attributes.push(kv(
                    "gen_ai.response.time_to_first_chunk",
                    any_value::Value::DoubleValue(ttft / 1000.0),
                ));
            }
            (
                format!("chat {}", c.model_name),
                c.latency_ms,
                c.error.clone().filter(|_| !c.status.is_ok()),
            )
        }
        Event::Runtime(a) => {
            attributes.push(text("gen_ai.operation.name", "execute_tool"));
            let tool = a.tool_name.clone().unwrap_or_else(|| "action".to_owned());
            attributes.push(text("gen_ai.tool.name", &tool));
            if let Some(id) = &a.tool_call_id {
                attributes.push(text("gen_ai.tool.call.id", id));
            }
            if let Some(args) = &a.arguments {
                attributes.push(text("gen_ai.tool.call.arguments", &json_text(args)));
            }
            if let Some(result) = &a.result {
                attributes.push(text("gen_ai.tool.call.result", &json_text(result)));
            }
            (
                format!("execute_tool {tool}"),
                a.duration_ms,
                a.error.clone().filter(|_| !a.status.is_ok()),
            )
        }
        Event::Environment(_) => ("environment".to_owned(), None, None),
        Event::Custom(c) => (c.name.clone(), None, None),
    };
    Some(Span {
        trace_id: trace_id(ctx),
        span_id: id_bytes(ctx.span_id.as_deref(), 8, &["span", &record.id]),
        parent_span_id: parent_span_id(ctx),
        name,
        kind: 3,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration_nanos(duration_ms),
        status: error.map(|message| Status { code: 2, message }),
        attributes,
        ..Default::default()
    })
}

/// The span of a message or reward: an instant at the record's time, carrying the
/// record whole.
fn instant_span(record: &Record) -> Span {
    let ctx = &record.context;
    let at = nanos(record.timestamp);
    let mut attributes = vec![text("gen_ai.conversation.id", &ctx.session_id)];
    if let Some(step) = &ctx.step_id {
        attributes.push(text("sonde.step.id", step));
    }
    let kind = record.body.kind();
    attributes.push(text(&payload_attribute(kind), &record.body.payload_json()));
    let name = match &record.body {
        Body::Message(m) if !m.message_type.is_empty() => m.message_type.clone(),
        _ => kind.to_owned(),
    };
    Span {
        trace_id: trace_id(ctx),
        span_id: id_bytes(ctx.span_id.as_deref(), 8, &["span", &record.id]),
        parent_span_id: parent_span_id(ctx),
        name,
        kind: 1,
        start_time_unix_nano: at,
        end_time_unix_nano: at,
        attributes,
        ..Default::default()
    }
}

/// A session's (no `step`) or a step's start and end records in one batch: the
/// earliest of each.
struct Lifetime<'a> {
    session: &'a str,
    step: Option<&'a str>,
    started: Option<&'a Record>,
    ended: Option<&'a Record>,
}

impl<'a> Lifetime<'a> {
    /// Takes `record` as its start (or end) when it is the earliest so far.
    fn take(&mut self, record: &'a Record, is_start: bool) {
        let slot = if is_start {
            &mut self.started
        } else {
            &mut self.ended
        };
        if slot.is_none_or(|kept| (record.timestamp, &record.id) < (kept.timestamp, &kept.id)) {
            *slot = Some(record);
        }
    }

    /// The `session` span (a root, or a child of the span the session's start names),
    /// or a step's `turn` span under its session's, from the start to the end — to the
    /// end of the latest record of the batch, `latest_end`, while it has not ended.
    fn span(&self, latest_end: u64) -> Option<Span> {
        let first = self.started.or(self.ended)?;
        let ctx = &first.context;
        let start = nanos(first.timestamp);
        let end = self
            .ended
            .map_or(latest_end.max(start), |r| nanos(r.timestamp));
        let mut attributes = vec![text("gen_ai.conversation.id", self.session)];
        let explicit_parent = ctx
            .parent_span_id
            .as_deref()
            .map(|p| id_bytes(Some(p), 8, &["span", p]));
        let (name, span_id, parent, kind) = match self.step {
            None => (
                "session",
                session_span_id(self.session),
                explicit_parent.unwrap_or_default(),
                "AGENT",
            ),
            Some(step) => {
                attributes.push(text("sonde.step.id", step));
                (
                    "turn",
                    turn_span_id(self.session, step),
                    explicit_parent.unwrap_or_else(|| session_span_id(self.session)),
                    "CHAIN",
                )
            }
        };
        attributes.push(text("openinference.span.kind", kind));
        for record in [self.started, self.ended].into_iter().flatten() {
            attributes.push(text(
                &payload_attribute(record.body.kind()),
                &record.body.payload_json(),
            ));
        }
        Some(Span {
            trace_id: trace_id(ctx),
            span_id,
            parent_span_id: parent,
            name: name.to_owned(),
            kind: 1,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            ..Default::default()
        })
    }
}

/// The spans of `records`: a `session` span per session whose start or end is among
/// them, a `turn` span per step likewise (each carrying its start and end records
/// whole, `sonde.session_started`, `sonde.step_ended`...), a span per event in the
/// GenAI conventions, and an instant span per message and reward (`sonde.message`...).
/// Every span but a session's has a parent: the span its record names, else its turn's,
/// else its session's.
pub fn record_spans(records: &[Record]) -> Vec<Span> {
    let mut spans = Vec::with_capacity(records.len());
    let mut lifetimes: Vec<Lifetime<'_>> = Vec::new();
    let mut index: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    // The end of the latest record of each session and step.
    let mut latest: HashMap<(&str, Option<&str>), u64> = HashMap::new();
    for record in records {
        let ctx = &record.context;
        let span = match &record.body {
            Body::SessionStarted(_) | Body::SessionEnded(_) => None,
            Body::StepStarted(_) | Body::StepEnded(_) => None,
            Body::Event(_) => record_to_span(record),
            _ => Some(instant_span(record)),
        };
        let end = span
            .as_ref()
            .map_or(nanos(record.timestamp), |s| s.end_time_unix_nano);
        for key in [
            Some((ctx.session_id.as_str(), None)),
            ctx.step_id
                .as_deref()
                .map(|s| (ctx.session_id.as_str(), Some(s))),
        ]
        .into_iter()
        .flatten()
        {
            let latest = latest.entry(key).or_insert(end);
            *latest = (*latest).max(end);
        }
        spans.extend(span);
        let (step, is_start) = match &record.body {
            Body::SessionStarted(_) => (None, true),
            Body::SessionEnded(_) => (None, false),
            Body::StepStarted(_) => (Some(ctx.step_id.as_deref()), true),
            Body::StepEnded(_) => (Some(ctx.step_id.as_deref()), false),
            _ => continue,
        };
        // A step record without a step id has a turn span of its own session's.
        let step = step.map(|s| s.unwrap_or_default());
        let at = *index
            .entry((ctx.session_id.as_str(), step))
            .or_insert_with(|| {
                lifetimes.push(Lifetime {
                    session: &ctx.session_id,
                    step,
                    started: None,
                    ended: None,
                });
                lifetimes.len() - 1
            });
        lifetimes[at].take(record, is_start);
    }
    for lifetime in &lifetimes {
        let key = (lifetime.session, lifetime.step);
        spans.extend(lifetime.span(latest.get(&key).copied().unwrap_or(0)));
    }
    spans
}

/// One OTLP request holding `spans`, from service `service`.
pub fn spans_request(spans: Vec<Span>, service: &str) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service)],
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

/// One OTLP request holding the spans of `records` ([`record_spans`]), from service
/// `service`.
pub fn export_request(records: &[Record], service: &str) -> ExportTraceServiceRequest {
    spans_request(record_spans(records), service)
}
