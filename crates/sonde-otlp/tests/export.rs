//! Records out as spans: one trace per session under a real root, a span per step,
//! content in the GenAI conventions, the content switch and size cap, and sessions fed
//! a batch at a time.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};
use sonde_model::{
    Body, Context, Event, LlmCall, LlmCallRecord, Message, MessageContent, Metadata, Record,
    RuntimeAction, SessionEnded, SessionStarted, Status, StepEnded, StepStarted, Timestamp,
};
use sonde_otlp::{ExportOptions, SpanMapper, record_spans, record_spans_with};

fn at(second: i64) -> Timestamp {
    Timestamp::from_micros(1_767_225_600_000_000 + second * 1_000_000)
}

fn record(second: i64, ctx: Context, body: Body) -> Record {
    let mut r = Record::new(ctx, body);
    r.timestamp = at(second);
    r
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(Any::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Any::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn named<'a>(spans: &'a [Span], kind: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| text(s, "openinference.span.kind") == Some(kind))
        .collect()
}

/// A session of one turn: a prompt, a call that asks for a tool, the tool, a reply.
fn session() -> Vec<Record> {
    let ctx = Context::session("s-1");
    let step = ctx.clone().with_step("turn-1");
    let mut metadata = Metadata::new();
    metadata.insert("source".into(), json!("claude-code"));
    metadata.insert("project".into(), json!("shop"));
    metadata.insert("cwd".into(), json!("/home/dev/shop"));
    metadata.insert("git_branch".into(), json!("main"));
    let call = LlmCall {
        provider: Some("anthropic".into()),
        model_name: "claude-sonnet-4-5".into(),
        input_tokens: 10,
        cache_read_tokens: 1000,
        cache_write_tokens: 300,
        cache_write_1h_tokens: 200,
        output_tokens: 50,
        cost_usd: Some(0.25),
        latency_ms: Some(2000.0),
        stop_reason: Some("tool_use".into()),
        call_records: vec![LlmCallRecord {
            request: Some(
                json!({"messages": [{"role": "user", "content": "fix the test"}]}).into(),
            ),
            response: Some(
                json!({"content": [
                    {"type": "text", "text": "Reading it."},
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.rs"}}
                ]})
                .into(),
            ),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut call_ctx = step.clone();
    call_ctx.span_id = Some("00000000000000c1".into());
    let mut tool_ctx = step.clone();
    tool_ctx.span_id = Some("00000000000000d1".into());
    tool_ctx.parent_span_id = Some("00000000000000c1".into());
    vec![
        record(
            0,
            ctx.clone(),
            Body::SessionStarted(SessionStarted {
                metadata,
                ..Default::default()
            }),
        ),
        record(
            1,
            step.clone(),
            Body::StepStarted(StepStarted {
                step_index: 0,
                turn_number: Some(1),
                ..Default::default()
            }),
        ),
        record(
            1,
            step.clone(),
            Body::Message(Message {
                content: MessageContent::text("fix the test"),
                message_type: "user_prompt".into(),
                from_role: Some("human".into()),
                to_role: Some("agent".into()),
                ..Default::default()
            }),
        ),
        record(2, call_ctx.clone(), Body::Event(Event::Llm(call))),
        record(
            4,
            tool_ctx,
            Body::Event(Event::Runtime(RuntimeAction {
                tool_name: Some("Read".into()),
                tool_call_id: Some("t1".into()),
                arguments: Some(json!({"path": "a.rs"})),
                result: Some(json!("no such file")),
                status: Status::Error,
                error: Some("no such file".into()),
                duration_ms: Some(100.0),
                ..Default::default()
            })),
        ),
        record(
            5,
            call_ctx,
            Body::Message(Message {
                content: MessageContent::text("Reading it."),
                message_type: "assistant_reply".into(),
                from_role: Some("agent".into()),
                to_role: Some("human".into()),
                ..Default::default()
            }),
        ),
        record(6, step, Body::StepEnded(StepEnded::default())),
        record(7, ctx, Body::SessionEnded(SessionEnded::default())),
    ]
}

#[test]
fn a_session_is_one_trace_under_an_agent_root_with_its_steps_under_it() {
    let records = session();
    let spans = record_spans(&records);
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root");
    let root = roots[0];
    assert_eq!(text(root, "openinference.span.kind"), Some("AGENT"));
    assert_eq!(
        root.name, "claude-code shop",
        "named for the agent and project"
    );
    assert_eq!(text(root, "sonde.session.cwd"), Some("/home/dev/shop"));
    assert_eq!(text(root, "sonde.session.git_branch"), Some("main"));
    assert_eq!(int(root, "sonde.session.llm_calls"), Some(1));
    assert_eq!(int(root, "sonde.session.cache_write_1h_tokens"), Some(200));
    assert_eq!(
        root.end_time_unix_nano - root.start_time_unix_nano,
        7_000_000_000
    );
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "one trace"
    );

    let steps = named(&spans, "CHAIN");
    let turn = steps.iter().find(|s| s.name == "turn 1").unwrap();
    assert_eq!(turn.parent_span_id, root.span_id);
    assert_eq!(text(turn, "input.value"), Some("fix the test"));
    assert_eq!(text(turn, "output.value"), Some("Reading it."));

    let llm = &named(&spans, "LLM")[0];
    assert_eq!(
        llm.parent_span_id, turn.span_id,
        "the call is under its step"
    );
    let tool = &named(&spans, "TOOL")[0];
    assert_eq!(tool.parent_span_id, llm.span_id, "the tool under the call");
    assert_eq!(tool.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(text(tool, "gen_ai.tool.call.result"), Some("no such file"));

    let ids: std::collections::HashSet<&Vec<u8>> = spans.iter().map(|s| &s.span_id).collect();
    assert_eq!(ids.len(), spans.len(), "no two spans share an id");
    assert!(
        spans
            .iter()
            .all(|s| text(s, "openinference.span.kind").is_some()),
        "every span has a kind"
    );
    assert!(
        record_spans(&records) == spans,
        "the same records, the same spans and ids"
    );
}

#[test]
fn llm_spans_carry_their_messages_tokens_and_cost_in_both_conventions() {
    let spans = record_spans(&session());
    let llm = named(&spans, "LLM")[0];
    let input: Value = serde_json::from_str(text(llm, "gen_ai.input.messages").unwrap()).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "fix the test"}]}])
    );
    let output: Value = serde_json::from_str(text(llm, "gen_ai.output.messages").unwrap()).unwrap();
    assert_eq!(output[0]["finish_reason"], "tool_use");
    assert_eq!(
        output[0]["parts"][1],
        json!({"type": "tool_call", "id": "t1", "name": "Read", "arguments": {"path": "a.rs"}})
    );
    assert_eq!(
        text(llm, "llm.input_messages.0.message.content"),
        Some("fix the test")
    );
    assert_eq!(
        text(
            llm,
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name"
        ),
        Some("Read")
    );
    assert_eq!(text(llm, "output.value"), Some("Reading it."));
    // Input counted the OpenTelemetry way: cached tokens inside.
    assert_eq!(int(llm, "gen_ai.usage.input_tokens"), Some(1310));
    assert_eq!(int(llm, "llm.token_count.prompt"), Some(1310));
    assert_eq!(int(llm, "gen_ai.usage.cache_read.input_tokens"), Some(1000));
    assert_eq!(int(llm, "sonde.usage.cache_write_1h_tokens"), Some(200));
    assert_eq!(attr(llm, "llm.cost.total"), Some(&Any::DoubleValue(0.25)));
}

#[test]
fn without_content_no_prompt_reply_message_or_tool_data_is_sent() {
    let options = ExportOptions {
        content: false,
        ..Default::default()
    };
    let spans = record_spans_with(&session(), &options);
    for span in &spans {
        for kv in &span.attributes {
            let value = format!("{:?}", kv.value);
            assert!(
                !value.contains("fix the test")
                    && !value.contains("Reading it")
                    && !value.contains("a.rs"),
                "{} {} carries content: {value}",
                span.name,
                kv.key
            );
        }
    }
    let llm = named(&spans, "LLM")[0];
    assert_eq!(
        int(llm, "gen_ai.usage.output_tokens"),
        Some(50),
        "counts still go"
    );
}

#[test]
fn long_content_is_cut_to_the_cap_with_a_marker() {
    let mut records = session();
    if let Body::Message(m) = &mut records[2].body {
        m.content = MessageContent::text("x".repeat(200_000));
    }
    let options = ExportOptions {
        max_attribute_bytes: 1000,
        ..Default::default()
    };
    let spans = record_spans_with(&records, &options);
    let turn = spans.iter().find(|s| s.name == "turn 1").unwrap();
    let input = text(turn, "input.value").unwrap();
    assert!(input.len() <= 1000);
    assert!(input.ends_with("200000 bytes]"), "{}", &input[900..]);
    for span in &spans {
        for kv in &span.attributes {
            if let Some(Any::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
                && !kv.key.starts_with("sonde.")
            {
                assert!(s.len() <= 1000, "{} is {} bytes", kv.key, s.len());
            }
        }
    }
}

#[test]
fn fed_a_batch_at_a_time_a_step_or_session_span_goes_once_when_it_ends() {
    let records = session();
    let mut mapper = SpanMapper::new(ExportOptions::default());
    let mut sent = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let spans = mapper.map(std::slice::from_ref(record));
        if i < 6 {
            assert!(
                spans.iter().all(|s| s.name != "turn 1"),
                "the step is still open at record {i}"
            );
        }
        sent.extend(spans);
    }
    assert!(mapper.finish().is_empty(), "nothing left open");
    let whole = record_spans(&records);
    let mut a: Vec<_> = sent
        .iter()
        .map(|s| (s.span_id.clone(), s.name.clone()))
        .collect();
    let mut b: Vec<_> = whole
        .iter()
        .map(|s| (s.span_id.clone(), s.name.clone()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same spans as whole, each once");
    let turn = sent.iter().find(|s| s.name == "turn 1").unwrap();
    assert_eq!(text(turn, "input.value"), Some("fix the test"));
}

#[test]
fn a_step_end_carrying_its_prompt_and_reply_gives_them_to_a_mapper_that_saw_neither() {
    let step = Context::session("s-2").with_step("turn-1");
    let mut metadata = Metadata::new();
    metadata.insert(sonde_otlp::STEP_PROMPT.into(), json!("hello"));
    metadata.insert(sonde_otlp::STEP_REPLY.into(), json!("hi there"));
    let spans = SpanMapper::new(ExportOptions::default()).map(&[
        record(0, step.clone(), Body::StepStarted(StepStarted::default())),
        record(9, step, Body::StepEnded(StepEnded { metadata })),
    ]);
    assert_eq!(spans.len(), 1);
    assert_eq!(text(&spans[0], "input.value"), Some("hello"));
    assert_eq!(text(&spans[0], "output.value"), Some("hi there"));
    let carried = text(&spans[0], "sonde.step_ended").unwrap();
    assert!(
        !carried.contains("hello"),
        "the hint travels once: {carried}"
    );
}
