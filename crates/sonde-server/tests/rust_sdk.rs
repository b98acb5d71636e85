//! Interop with the Rust OpenTelemetry SDK: `opentelemetry-otlp`'s exporters (HTTP with
//! protobuf, HTTP with JSON, gRPC) send GenAI spans to a Sonde receiver; the stored session has
//! the calls, tokens (cached ones apart from input), the tool under its parent, and the
//! error.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use sonde_model::{Event, Status as RecordStatus};
use sonde_store::{Scope, StoreUrl, TraceStore, Writer, WriterConfig};

/// A receiver on OTLP/HTTP and OTLP/gRPC: (HTTP URL, gRPC URL, store).
fn serve(rt: &tokio::runtime::Runtime) -> (String, String, Arc<dyn TraceStore>) {
    let store = rt.block_on(StoreUrl::SqliteMemory.open()).unwrap();
    let writer = {
        let _runtime = rt.enter();
        Arc::new(Writer::start(store.clone(), WriterConfig::default()).unwrap())
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(sonde_server::serve_on(
        listener,
        sonde_server::DEFAULT_BODY_LIMIT,
        writer.clone(),
        std::future::pending(),
    ));
    let grpc = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let grpc_url = format!("http://{}", grpc.local_addr().unwrap());
    rt.spawn(sonde_server::serve_grpc(
        grpc,
        writer,
        std::future::pending(),
    ));
    (url, grpc_url, store)
}

/// An agent turn as the GenAI conventions describe it, sent by the Rust SDK.
fn send_agent_turn(endpoint: &str, protocol: Protocol, session: &str) {
    let exporter = match protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build(),
        http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(http)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build(),
    }
    .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("rust-agent")
                .build(),
        )
        .build();
    let tracer = provider.tracer("sonde-interop");
    let conversation = KeyValue::new("gen_ai.conversation.id", session.to_owned());
    let agent = tracer
        .span_builder("invoke_agent coder")
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", "coder"),
            conversation.clone(),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(agent);
    let mut chat = tracer
        .span_builder("chat claude-sonnet-4-5")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "anthropic"),
            KeyValue::new("gen_ai.request.model", "claude-sonnet-4-5"),
            KeyValue::new("gen_ai.usage.input_tokens", 1200_i64),
            KeyValue::new("gen_ai.usage.cache_read.input_tokens", 1000_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 50_i64),
            conversation.clone(),
        ])
        .start_with_context(&tracer, &cx);
    std::thread::sleep(Duration::from_millis(5));
    chat.end();
    tracer
        .span_builder("execute_tool read_file")
        .with_kind(SpanKind::Internal)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", "read_file"),
            conversation.clone(),
        ])
        .start_with_context(&tracer, &cx)
        .end();
    let mut failed = tracer
        .span_builder("chat gpt-5")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.system", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-5"),
            KeyValue::new("gen_ai.usage.prompt_tokens", 10_i64),
            conversation,
        ])
        .start_with_context(&tracer, &cx);
    failed.set_status(Status::error("rate limited"));
    failed.end();
    cx.span().end();
    provider.shutdown().unwrap();
}

fn check(rt: &tokio::runtime::Runtime, store: &Arc<dyn TraceStore>, session: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let trace = rt
            .block_on(store.get_session(session, &Scope::All))
            .unwrap();
        match trace {
            Some(t) if t.events.len() >= 4 => break t,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("session {session} incomplete: {other:?}"),
        }
    };
    let calls: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| e.value.as_llm().map(|c| (e, c)))
        .collect();
    assert_eq!(calls.len(), 2);
    let (sonnet_entry, sonnet) = calls
        .iter()
        .find(|(_, c)| c.model_name == "claude-sonnet-4-5")
        .unwrap();
    assert_eq!(sonnet.provider.as_deref(), Some("anthropic"));
    assert_eq!(
        (
            sonnet.input_tokens,
            sonnet.cache_read_tokens,
            sonnet.output_tokens
        ),
        (200, 1000, 50)
    );
    assert!(sonnet.latency_ms.unwrap() >= 5.0);
    let (_, gpt) = calls.iter().find(|(_, c)| c.model_name == "gpt-5").unwrap();
    assert_eq!(gpt.status, RecordStatus::Error);
    assert_eq!(gpt.provider.as_deref(), Some("openai"));
    assert_eq!(gpt.input_tokens, 10);
    let tool = trace
        .events
        .iter()
        .find(|e| matches!(&e.value, Event::Runtime(a) if a.tool_name.as_deref() == Some("read_file")))
        .unwrap();
    // The tool and the calls share the agent span as parent.
    assert!(tool.context.parent_span_id.is_some());
    assert_eq!(
        tool.context.parent_span_id,
        sonnet_entry.context.parent_span_id
    );
}

#[test]
fn the_rust_sdk_sends_genai_spans_over_http_protobuf_json_and_grpc() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (url, grpc_url, store) = serve(&rt);
    // The SDK's blocking HTTP client runs on this thread, outside the server's runtime.
    send_agent_turn(&url, Protocol::HttpBinary, "rust-protobuf");
    send_agent_turn(&url, Protocol::HttpJson, "rust-json");
    // Its gRPC client (tonic) needs a runtime to drive it.
    {
        let _runtime = rt.enter();
        send_agent_turn(&grpc_url, Protocol::Grpc, "rust-grpc");
    }
    for session in ["rust-protobuf", "rust-json", "rust-grpc"] {
        check(&rt, &store, session);
    }
}
