//! A local LLM upstream speaking the documented wire formats: OpenAI's chat
//! completions, responses and embeddings, and Anthropic's messages; streaming
//! (server-sent events) and not; tool calls; errors. What it answers depends on the
//! model asked for:
//!
//! - `error-429`: 429 with OpenAI's (or on `/v1/messages` Anthropic's) error body;
//!   `error-500`: 500 with a plain-text body.
//! - `hang`: never answers.
//! - `slow`: a stream whose events go [`SLOW_GAP`] apart (the send times are kept in
//!   [`Seen::sent`]).
//! - `endless`: a stream that goes on for minutes ([`Seen::cancelled`] counts those the
//!   reader dropped).
//! - anything else: a normal answer with the usage below; with `tools`, a tool call.
//!
//! The usage it reports is fixed, so tests can say exactly what must be recorded.
// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Chat completions' usage: prompt 120 of which 100 cached; completion 30 of which 8
/// reasoning.
pub const CHAT_USAGE: (u64, u64, u64, u64) = (120, 100, 30, 8);
/// The Responses API's usage: input 50 of which 10 cached; output 12 of which 4
/// reasoning.
pub const RESPONSES_USAGE: (u64, u64, u64, u64) = (50, 10, 12, 4);
/// Embeddings' usage: 8 prompt tokens.
pub const EMBEDDING_TOKENS: u64 = 8;
/// Anthropic's usage: input 25, cache read 4000, cache write 300, output 42.
pub const MESSAGES_USAGE: (u64, u64, u64, u64) = (25, 4000, 300, 42);
/// The text every answer says, in these chunks when streamed.
pub const TEXT_CHUNKS: [&str; 4] = ["Hello", " from", " the", " upstream"];
/// The gap between the `slow` stream's chunks.
pub const SLOW_GAP: Duration = Duration::from_millis(200);

/// The model that answers for `requested`: the dated name the providers report.
pub fn answered(requested: &str) -> String {
    match requested {
        "gpt-4o-mini" => "gpt-4o-mini-2024-07-18".into(),
        "claude-sonnet-4-5" => "claude-sonnet-4-5-20250929".into(),
        other => other.into(),
    }
}

/// What the upstream saw.
#[derive(Default)]
pub struct Seen {
    /// Requests received.
    pub requests: AtomicUsize,
    /// The headers of the last request.
    pub last_headers: Mutex<Option<HeaderMap>>,
    /// When each chunk of the last `slow` stream was handed to the connection.
    pub sent: Mutex<Vec<Instant>>,
    /// Streams whose reader went away before their end.
    pub cancelled: AtomicUsize,
}

/// A running upstream.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Seen>,
}

impl Upstream {
    /// Its base URL, `http://ADDR/v1`.
    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// The upstream's routes.
pub fn router(seen: Arc<Seen>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(|s, h, b| api(chat, false, s, h, b)),
        )
        .route(
            "/v1/responses",
            post(|s, h, b| api(responses, false, s, h, b)),
        )
        .route(
            "/v1/embeddings",
            post(|s, h, b| api(embeddings, false, s, h, b)),
        )
        .route("/v1/messages", post(|s, h, b| api(messages, true, s, h, b)))
        .with_state(seen)
}

/// Starts an upstream on the current runtime.
pub async fn start() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let app = router(seen.clone());
    // Small writes go out at once, as a provider's do (Nagle's algorithm and delayed
    // acknowledgements would hold each event of a stream ~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Upstream { addr, seen }
}

/// Starts an upstream on a runtime of its own (for tests that are not async).
pub fn start_in_thread() -> Upstream {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tx.send(start().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// A body fed by a task through a channel; the task learns when the reader went away.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl futures_util::Stream for Channel {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}

/// A server-sent event stream of `events`, `gap` apart (the first at once).
fn sse(seen: &Arc<Seen>, events: Vec<String>, gap: Duration, keep_times: bool) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let seen = seen.clone();
    tokio::spawn(async move {
        if keep_times {
            seen.sent.lock().unwrap().clear();
        }
        for (i, event) in events.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if keep_times {
                seen.sent.lock().unwrap().push(Instant::now());
            }
            if tx.send(Bytes::from(event)).await.is_err() {
                seen.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(Channel(rx)),
    )
        .into_response()
}

fn data(value: Value) -> String {
    format!("data: {value}\n\n")
}

fn event(name: &str, value: Value) -> String {
    format!("event: {name}\ndata: {value}\n\n")
}

/// Counts the request and keeps its headers; the early answer a special model asks for
/// (`hang` never answers).
async fn special(
    seen: &Arc<Seen>,
    headers: &HeaderMap,
    model: &str,
    anthropic: bool,
) -> Option<Response> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.last_headers.lock().unwrap() = Some(headers.clone());
    if model == "hang" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    match model {
        "error-429" if anthropic => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}})),
            )
                .into_response(),
        ),
        "error-429" => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})),
            )
                .into_response(),
        ),
        "error-500" => Some((StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response()),
        _ => None,
    }
}

/// One API's answer: the special models' (see [`special`]), or `answer`'s.
async fn api(
    answer: fn(&Arc<Seen>, &str, &Value) -> Response,
    anthropic: bool,
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    match special(&seen, &headers, &model, anthropic).await {
        Some(early) => early,
        None => answer(&seen, &model, &body),
    }
}

fn stream_shape(seen: &Arc<Seen>, model: &str, events: Vec<String>) -> Response {
    match model {
        "slow" => sse(seen, events, SLOW_GAP, true),
        "endless" => sse(seen, events, Duration::from_millis(50), false),
        _ => sse(seen, events, Duration::ZERO, false),
    }
}

/// Repeats the middle of `events` for minutes (the `endless` model).
fn endless(events: Vec<String>) -> Vec<String> {
    let mut out = vec![events[0].clone()];
    for _ in 0..6_000 {
        out.push(events[1].clone());
    }
    out
}

fn chat(seen: &Arc<Seen>, model: &str, body: &Value) -> Response {
    let answered = answered(model);
    let (prompt, cached, completion, reasoning) = CHAT_USAGE;
    let usage = json!({
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    });
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let created = 1_764_700_000;
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            data(json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                "model": answered, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        if tools {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]}),
                Value::Null,
            ));
            events.push(chunk(json!({}), json!("tool_calls")));
        } else {
            for text in TEXT_CHUNKS {
                events.push(chunk(json!({"content": text}), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
        }
        if body["stream_options"]["include_usage"] == true {
            events.push(data(json!({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                "model": answered, "choices": [], "usage": usage,
            })));
        }
        events.push("data: [DONE]\n\n".into());
        if model == "endless" {
            events = endless(events);
        }
        return stream_shape(seen, model, events);
    }
    let message = if tools {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    } else {
        json!({"role": "assistant", "content": TEXT_CHUNKS.concat()})
    };
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": created, "model": answered,
        "choices": [{"index": 0, "message": message, "finish_reason": if tools { "tool_calls" } else { "stop" }, "logprobs": null}],
        "usage": usage,
    }))
    .into_response()
}

fn responses(seen: &Arc<Seen>, model: &str, body: &Value) -> Response {
    let answered = answered(model);
    let (input, cached, output, reasoning) = RESPONSES_USAGE;
    let text = TEXT_CHUNKS.concat();
    let response = |status: &str, with_output: bool| {
        json!({
            "id": "resp_1", "object": "response", "created_at": 1_764_700_000, "status": status,
            "model": answered, "error": null, "incomplete_details": null,
            "output": if with_output { json!([{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}]) } else { json!([]) },
            "usage": if with_output { json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output,
                "input_tokens_details": {"cached_tokens": cached}, "output_tokens_details": {"reasoning_tokens": reasoning}}) } else { Value::Null },
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        })
    };
    if body["stream"] == true {
        let message = |status: &str, text: &str| {
            json!({"type": "message", "id": "msg_1", "status": status, "role": "assistant",
                "content": if text.is_empty() { json!([]) } else { json!([{"type": "output_text", "text": text, "annotations": []}]) }})
        };
        let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
        let at = |kind: &str, n: usize| json!({"type": kind, "sequence_number": n, "item_id": "msg_1", "output_index": 0, "content_index": 0});
        let mut events = vec![
            event(
                "response.created",
                json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress", false)}),
            ),
            event(
                "response.output_item.added",
                json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": message("in_progress", "")}),
            ),
        ];
        let mut added = at("response.content_part.added", 2);
        added["part"] = part("");
        events.push(event("response.content_part.added", added));
        for (i, piece) in TEXT_CHUNKS.iter().enumerate() {
            let mut delta = at("response.output_text.delta", i + 3);
            delta["delta"] = json!(piece);
            delta["logprobs"] = json!([]);
            events.push(event("response.output_text.delta", delta));
        }
        let mut done = at("response.output_text.done", 7);
        done["text"] = json!(text);
        done["logprobs"] = json!([]);
        events.push(event("response.output_text.done", done));
        let mut part_done = at("response.content_part.done", 8);
        part_done["part"] = part(&text);
        events.push(event("response.content_part.done", part_done));
        events.push(event("response.output_item.done", json!({"type": "response.output_item.done", "sequence_number": 9, "output_index": 0, "item": message("completed", &text)})));
        events.push(event(
            "response.completed",
            json!({"type": "response.completed", "sequence_number": 10, "response": response("completed", true)}),
        ));
        return stream_shape(seen, model, events);
    }
    Json(response("completed", true)).into_response()
}

fn embeddings(_: &Arc<Seen>, model: &str, _: &Value) -> Response {
    Json(json!({
        "object": "list", "model": model,
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
        "usage": {"prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS},
    }))
    .into_response()
}

fn messages(seen: &Arc<Seen>, model: &str, body: &Value) -> Response {
    let answered = answered(model);
    let (input, cache_read, cache_write, output) = MESSAGES_USAGE;
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let stop = if tools { "tool_use" } else { "end_turn" };
    if body["stream"] == true {
        let mut events = vec![event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": answered,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write, "output_tokens": 1}}}),
        )];
        events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        for text in TEXT_CHUNKS {
            events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})));
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        if tools {
            events.push(event("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})));
            events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Paris\"}"}})));
            events.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ));
        }
        events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}})));
        events.push(event("message_stop", json!({"type": "message_stop"})));
        if model == "endless" {
            events = endless(events);
        }
        return stream_shape(seen, model, events);
    }
    let mut content = vec![json!({"type": "text", "text": TEXT_CHUNKS.concat()})];
    if tools {
        content.push(json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}));
    }
    Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": answered, "content": content,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write, "output_tokens": output},
    }))
    .into_response()
}
