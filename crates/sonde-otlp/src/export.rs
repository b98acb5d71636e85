//! Records out as OTLP spans, in the GenAI conventions that Phoenix, Langfuse and Jaeger
//! display: LLM calls as `chat` spans with `gen_ai.*` attributes (input counted the
//! OpenTelemetry way, cached tokens included), tool calls as `execute_tool` spans, other
//! events as spans named after them. The session is `gen_ai.conversation.id`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;
use sonde_model::{Body, Event, Record, derived_id};

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

/// The span of an event record; `None` for other record kinds (sessions, steps,
/// messages and rewards have no span of their own).
pub fn record_to_span(record: &Record) -> Option<Span> {
    let Body::Event(event) = &record.body else {
        return None;
    };
    let ctx = &record.context;
    let start = u64::try_from(record.timestamp.as_micros()).unwrap_or(0) * 1000;
    let mut attributes = vec![text("gen_ai.conversation.id", &ctx.session_id)];
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
                    any_value::Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::StringValue(reason.clone())),
                            }],
                        },
                    ),
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
    let end = start + duration_ms.map_or(0, |ms| (ms * 1e6) as u64);
    Some(Span {
        trace_id: id_bytes(ctx.trace_id.as_deref(), 16, &["trace", &ctx.session_id]),
        span_id: id_bytes(ctx.span_id.as_deref(), 8, &["span", &record.id]),
        parent_span_id: ctx
            .parent_span_id
            .as_deref()
            .map(|p| id_bytes(Some(p), 8, &["span", p]))
            .unwrap_or_default(),
        name,
        kind: 3,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status: error.map(|message| Status { code: 2, message }),
        attributes,
        ..Default::default()
    })
}

/// One OTLP request holding the spans of `records`, from service `service`.
pub fn export_request(records: &[Record], service: &str) -> ExportTraceServiceRequest {
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
                spans: records.iter().filter_map(record_to_span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
