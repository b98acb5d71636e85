//! OTLP/JSON spans from each family of instrumentations become the right records.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use sonde_model::*;
use sonde_otlp::*;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

/// An OTLP/JSON request with one span per entry of `spans`: (span id, parent, name,
/// status code, attributes).
fn request(spans: &[(&str, Option<&str>, &str, i64, Value)]) -> String {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(id, parent, name, status, attrs)| {
            let attributes: Vec<Value> = attrs
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => json!({"stringValue": s}),
                        Value::Bool(b) => json!({"boolValue": b}),
                        Value::Number(n) if n.is_i64() => json!({"intValue": n.to_string()}),
                        Value::Number(n) => json!({"doubleValue": n}),
                        Value::Array(a) => json!({"arrayValue": {"values": a.iter().map(|s| json!({"stringValue": s})).collect::<Vec<_>>()}}),
                        _ => json!({}),
                    };
                    json!({"key": k, "value": value})
                })
                .collect();
            json!({
                "traceId": TRACE.to_uppercase(),
                "spanId": id,
                "parentSpanId": parent.unwrap_or(""),
                "name": name,
                "kind": 3,
                "startTimeUnixNano": "1763789160000000000",
                "endTimeUnixNano": "1763789161250000000",
                "status": {"code": status, "message": if *status == 2 { "rate limited" } else { "" }},
                "attributes": attributes,
            })
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]})
    .to_string()
}

fn records(body: &str) -> Vec<Record> {
    let decoded = decode_json(body).unwrap();
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    decoded
        .spans
        .into_iter()
        .flat_map(span_to_records)
        .collect()
}

fn llm(record: &Record) -> &LlmCall {
    match &record.body {
        Body::Event(Event::Llm(c)) => c,
        other => panic!("not an llm call: {other:?}"),
    }
}

#[test]
fn the_spec_example_is_kept_as_a_custom_event_with_every_attribute() {
    let body = std::fs::read_to_string("tests/data/spec_trace.json").unwrap();
    let decoded = decode_json(&body).unwrap();
    let record = span_to_records(decoded.spans[0].clone()).next().unwrap();
    assert_eq!(record.kind(), "custom_event");
    assert_eq!(
        record.context.session_id, TRACE,
        "no session attribute: the trace is the session"
    );
    assert_eq!(record.context.span_id.as_deref(), Some("eee19b7ec3c1b174"));
    assert_eq!(
        record.context.parent_span_id.as_deref(),
        Some("eee19b7ec3c1b173")
    );
    assert_eq!(record.timestamp.to_string(), "2018-12-13T14:51:00.000000Z");
    let Body::Event(Event::Custom(e)) = &record.body else {
        panic!()
    };
    assert_eq!(e.name, "I'm a server span");
    assert_eq!(
        e.metadata["otel"]["attributes"]["my.span.attr"],
        "some value"
    );
    assert_eq!(e.metadata["otel"]["resource"]["service.name"], "my.service");
    assert_eq!(e.metadata["otel"]["scope"], "my.library");
    // Sending it twice gives the same record id.
    assert_eq!(
        span_to_records(decode_json(&body).unwrap().spans.remove(0))
            .next()
            .unwrap()
            .id,
        record.id
    );
}

#[test]
fn current_genai_conventions_with_cached_tokens_inside_the_input() {
    let r = records(&request(&[(
        "0000000000000001",
        None,
        "chat gpt-5",
        0,
        json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-5",
            "gen_ai.response.model": "gpt-5-2025-08-07",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 800,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.reasoning.output_tokens": 20,
            "gen_ai.conversation.id": "conv-7",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.time_to_first_chunk": 0.25,
            "gen_ai.input.messages": "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}]",
            "some.vendor.thing": "kept"
        }),
    )]));
    let c = llm(&r[0]);
    assert_eq!(r[0].context.session_id, "conv-7");
    assert_eq!(
        (c.provider.as_deref(), c.model_name.as_str()),
        (Some("openai"), "gpt-5-2025-08-07")
    );
    assert_eq!(
        (
            c.input_tokens,
            c.cache_read_tokens,
            c.output_tokens,
            c.reasoning_tokens
        ),
        (200, 800, 50, 20)
    );
    assert_eq!(c.total_tokens(), 1050);
    assert_eq!(
        c.input_tokens_with_cache(),
        1000,
        "converted back, it is what was sent"
    );
    assert_eq!(c.latency_ms, Some(1250.0));
    assert_eq!(c.time_to_first_token_ms, Some(250.0));
    assert_eq!(c.stop_reason.as_deref(), Some("stop"));
    assert_eq!(
        c.call_records[0].request.as_ref().unwrap()[0]["role"],
        "user"
    );
    // What the typed fields hold is not repeated in the metadata; another name of a
    // stored value, the model not stored, the finish reasons (one is stored) and the
    // unknown are kept.
    assert_eq!(
        attribute_names(&r[0]),
        [
            "gen_ai.request.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.system",
            "some.vendor.thing"
        ]
    );
    assert!(c.status.is_ok());
}

#[test]
fn values_the_typed_fields_cannot_give_back_stay_in_the_metadata() {
    let r = records(&request(&[(
        "0000000000000002",
        None,
        "chat",
        0,
        // More cached tokens than input (the input as sent cannot be rebuilt) and a
        // count that is not a number.
        json!({
            "gen_ai.request.model": "gpt-5",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_read.input_tokens": 800,
            "gen_ai.usage.output_tokens": "fifty"
        }),
    )]));
    assert_eq!(
        attribute_names(&r[0]),
        ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"]
    );
}

/// The names of the span attributes an LLM call keeps in its metadata.
fn attribute_names(record: &Record) -> Vec<String> {
    llm(record).metadata["otel"]["attributes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn deprecated_genai_names_still_count() {
    let r = records(&request(&[(
        "0000000000000002",
        None,
        "anthropic.chat",
        0,
        json!({"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
               "gen_ai.usage.prompt_tokens": 300, "gen_ai.usage.completion_tokens": 40}),
    )]));
    let c = llm(&r[0]);
    assert_eq!(
        (
            c.provider.as_deref(),
            c.model_name.as_str(),
            c.input_tokens,
            c.output_tokens
        ),
        (Some("anthropic"), "claude-sonnet-4-5", 300, 40)
    );
}

#[test]
fn openinference_spans() {
    let r = records(&request(&[(
        "0000000000000003",
        None,
        "ChatCompletion",
        0,
        json!({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
               "llm.token_count.prompt": 120, "llm.token_count.completion": 30, "llm.token_count.total": 150,
               "session.id": "sess-1", "user.id": "u-9", "output.value": "hello"}),
    )]));
    let c = llm(&r[0]);
    assert_eq!(r[0].context.session_id, "sess-1");
    assert_eq!(
        (
            c.model_name.as_str(),
            c.input_tokens,
            c.output_tokens,
            c.total_tokens()
        ),
        ("gpt-4o", 120, 30, 150)
    );
    assert_eq!(c.metadata["user_id"], "u-9");
    assert_eq!(c.call_records[0].response, Some(json!("hello").into()));
}

#[test]
fn openllmetry_spans() {
    let r = records(&request(&[(
        "0000000000000004",
        None,
        "openai.chat",
        0,
        json!({"traceloop.span.kind": "llm", "gen_ai.system": "OpenAI", "gen_ai.response.model": "gpt-4o-mini",
               "gen_ai.usage.prompt_tokens": 500, "gen_ai.usage.cache_read_input_tokens": 100,
               "gen_ai.usage.completion_tokens": 25, "llm.usage.total_tokens": 525,
               "traceloop.association.properties.session_id": "tl-session"}),
    )]));
    let c = llm(&r[0]);
    assert_eq!(r[0].context.session_id, "tl-session");
    assert_eq!(
        (
            c.input_tokens,
            c.cache_read_tokens,
            c.output_tokens,
            c.total_tokens()
        ),
        (400, 100, 25, 525)
    );
}

#[test]
fn tool_spans_become_runtime_events_under_their_parent_and_errors_are_kept() {
    let r = records(&request(&[
        (
            "00000000000000a1",
            None,
            "invoke_agent planner",
            0,
            json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        ),
        (
            "00000000000000a2",
            Some("00000000000000a1"),
            "execute_tool search",
            0,
            json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                   "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": "{\"q\":\"rust\"}"}),
        ),
        (
            "00000000000000a3",
            Some("00000000000000a1"),
            "chat",
            2,
            json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-5"}),
        ),
    ]));
    assert_eq!(r[0].kind(), "custom_event");
    let Body::Event(Event::Runtime(tool)) = &r[1].body else {
        panic!("{:?}", r[1])
    };
    assert_eq!(
        (tool.tool_name.as_deref(), tool.tool_call_id.as_deref()),
        (Some("search"), Some("call_1"))
    );
    assert_eq!(tool.arguments, Some(json!({"q": "rust"})));
    assert_eq!(tool.duration_ms, Some(1250.0));
    assert_eq!(
        r[1].context.parent_span_id.as_deref(),
        Some("00000000000000a1")
    );
    let failed = llm(&r[2]);
    assert_eq!(failed.status, Status::Error);
    assert_eq!(failed.error.as_deref(), Some("rate limited"));
}

#[test]
fn malformed_ids_reject_that_span_only_with_a_reason() {
    let mut body: Value = serde_json::from_str(&request(&[
        ("0000000000000005", None, "good", 0, json!({})),
        ("0000000000000006", None, "short id", 0, json!({})),
        ("0000000000000007", None, "zero trace", 0, json!({})),
    ]))
    .unwrap();
    let spans = &mut body["resourceSpans"][0]["scopeSpans"][0]["spans"];
    spans[1]["spanId"] = json!("abc");
    spans[2]["traceId"] = json!("00000000000000000000000000000000");
    let decoded = decode_json(&body.to_string()).unwrap();
    assert_eq!(decoded.spans.len(), 1);
    assert_eq!(decoded.rejected.len(), 2);
    assert_eq!(decoded.rejected[0].name, "short id");
    assert!(
        decoded.rejected[0]
            .reason
            .contains("spanId must be 16 hex digits"),
        "{:?}",
        decoded.rejected
    );
    assert!(decoded.rejected[1].reason.contains("traceId is all zeros"));
    assert!(decode_json("{\"resourceSpans\": 5}").is_err());
}

#[test]
fn tool_call_starts_prompt_builds_and_stream_events_travel_whole_through_sondes_exporter() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let ctx = Context::session("lash-1").with_step("t0");
    let event = |id: &str, time: &str, event: Event| Record {
        id: id.into(),
        timestamp: at(time),
        context: ctx.clone(),
        body: Body::Event(event),
    };
    let sent = [
        Record {
            id: "start".into(),
            timestamp: at("2026-08-22T10:00:00Z"),
            context: Context::session("lash-1"),
            body: Body::SessionStarted(SessionStarted::default()),
        },
        event(
            "tool",
            "2026-08-22T10:00:01Z",
            Event::ToolCallStarted(ToolCallStarted {
                tool_name: "shell".into(),
                tool_call_id: Some("c1".into()),
                arguments: Some(json!({"cmd": "make"})),
                ..Default::default()
            }),
        ),
        event(
            "prompt",
            "2026-08-22T10:00:02Z",
            Event::PromptBuilt(PromptBuilt {
                prompt_hash: Some("cd01".into()),
                prompt_chars: Some(5120),
                ..Default::default()
            }),
        ),
        event(
            "delta",
            "2026-08-22T10:00:03Z",
            Event::Stream(StreamEvent {
                source: "provider".into(),
                name: "content_block_delta".into(),
                sequence: Some(2),
                level: Level::Extended,
                ..Default::default()
            }),
        ),
    ];
    let request = sonde_otlp::export_request(&sent, "agent");
    let received: Vec<Record> = sonde_otlp::from_request(request)
        .spans
        .into_iter()
        .flat_map(sonde_otlp::span_to_records)
        .collect();
    let bodies = |records: &[Record]| -> Vec<Body> {
        records
            .iter()
            .filter(|r| matches!(r.body, Body::Event(_)))
            .map(|r| r.body.clone())
            .collect()
    };
    assert_eq!(
        bodies(&received),
        bodies(&sent),
        "each event comes back as it went"
    );
    for kind in ["tool_call_started", "prompt_built", "stream_event"] {
        let back = received.iter().find(|r| r.kind() == kind).unwrap();
        let went = sent.iter().find(|r| r.kind() == kind).unwrap();
        assert_eq!(back.timestamp, went.timestamp, "{kind}");
        assert_eq!(back.context.step_id, went.context.step_id, "{kind}");
    }
}
