//! The recording LLM proxy in front of a local upstream that speaks the providers'
//! documented wire formats (`tests/upstream`): every answer passes through unchanged
//! and is recorded with the tokens the upstream reported; streams reach the client
//! chunk by chunk; failures are answered and recorded as the issue says; and access
//! follows the server's keys and tenants.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sonde_model::LlmCall;
use sonde_store::{
    ApiKey, CallFilter, CallSummary, Scope, StoreUrl, TraceStore, Writer, WriterConfig,
};

struct Proxy {
    url: String,
    writer: Arc<Writer>,
    store: Arc<dyn TraceStore>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A server whose `openai`, `anthropic` and `local` routes all go to `base`, on
/// `bind` (a loopback address unless a test says otherwise), `adjust`ed.
async fn proxy_on(
    store: Arc<dyn TraceStore>,
    base: &str,
    bind: &str,
    adjust: impl FnOnce(&mut sonde_server::ServeConfig),
) -> Proxy {
    let writer = Arc::new(Writer::start(store.clone(), WriterConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut routes = sonde_proxy::RouteTable::with_providers(base, base).unwrap();
    routes
        .add(sonde_proxy::RouteTable::parse_upstream(&format!("local={base}")).unwrap())
        .unwrap();
    let mut config = sonde_server::ServeConfig {
        proxy: sonde_server::ProxyConfig {
            routes,
            ..Default::default()
        },
        ..Default::default()
    };
    adjust(&mut config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = writer.clone();
    tokio::spawn(async move {
        sonde_server::serve_on_with(listener, &config, serving, async move {
            let _ = stopped.await;
        })
        .await
    });
    Proxy {
        url,
        writer,
        store,
        _stop: stop,
    }
}

async fn proxy(base: &str) -> Proxy {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    proxy_on(store, base, "127.0.0.1:0", |_| {}).await
}

impl Proxy {
    /// The calls recorded, once there are `n` (newest first).
    async fn calls(&self, n: usize) -> Vec<CallSummary> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            self.writer.flush().await;
            let filter = CallFilter {
                limit: 1000,
                ..Default::default()
            };
            let calls = self.store.list_calls(&filter).await.unwrap().calls;
            if calls.len() >= n || Instant::now() > until {
                assert_eq!(calls.len(), n, "{calls:#?}");
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn call(&self, id: &str) -> LlmCall {
        self.store
            .get_call(id, &Scope::All)
            .await
            .unwrap()
            .unwrap()
            .call
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The text at `url` (a GET).
async fn text_of(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Status, content type and body bytes.
async fn answer(response: reqwest::Response) -> (u16, String, Vec<u8>) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// A chat completion through `proxy`'s `openai` route, without headers.
async fn chat(proxy: &Proxy, body: &Value) -> (u16, String, Vec<u8>) {
    let url = format!("{}/openai/v1/chat/completions", proxy.url);
    answer(post(&url, body, &[]).await).await
}

/// Each API, streamed and not: (route, path, body).
fn requests() -> Vec<(&'static str, &'static str, Value)> {
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let messages = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let with = |base: &Value, extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    vec![
        ("openai", "chat/completions", chat.clone()),
        (
            "openai",
            "chat/completions",
            with(
                &chat,
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ),
        ),
        (
            "local",
            "chat/completions",
            with(&chat, json!({"stream": true, "tools": tools})),
        ),
        (
            "openai",
            "responses",
            json!({"model": "gpt-4o-mini", "input": "hi"}),
        ),
        (
            "openai",
            "responses",
            json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
        ),
        (
            "openai",
            "embeddings",
            json!({"model": "text-embedding-3-small", "input": "hi"}),
        ),
        ("anthropic", "messages", messages.clone()),
        (
            "anthropic",
            "messages",
            with(
                &messages,
                json!({"stream": true, "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}),
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_passes_through_unchanged_and_is_recorded_with_the_upstreams_tokens() {
    let up = upstream::start().await;
    let proxy = proxy(&up.base()).await;
    let headers = [
        ("authorization", "Bearer sk-test-provider-key"),
        ("x-sonde-session", "run-1"),
        ("x-sonde-step", "turn-1"),
        ("x-sonde-meta-user", "ada"),
    ];
    for (route, path, body) in requests() {
        let direct = answer(post(&format!("{}/{path}", up.base()), &body, &headers).await).await;
        let proxied =
            answer(post(&format!("{}/{route}/v1/{path}", proxy.url), &body, &headers).await).await;
        assert_eq!(proxied.0, direct.0, "{route} {path}");
        assert_eq!(proxied.1, direct.1, "{route} {path}");
        assert_eq!(
            String::from_utf8_lossy(&proxied.2),
            String::from_utf8_lossy(&direct.2),
            "{route} {path} {body}"
        );
        let seen = up.seen.last_headers.lock().unwrap().clone().unwrap();
        assert_eq!(seen["authorization"], "Bearer sk-test-provider-key");
        assert!(
            seen.keys()
                .all(|name| !name.as_str().starts_with("x-sonde-")),
            "{seen:?}"
        );
    }
    let calls = proxy.calls(requests().len()).await;
    let mut calls: Vec<_> = calls.into_iter().rev().collect();
    calls.sort_by_key(|c| c.ts);
    let (prompt, cached, completion, reasoning) = upstream::CHAT_USAGE;
    let (r_in, r_cached, r_out, r_reasoning) = upstream::RESPONSES_USAGE;
    let (m_in, m_read, m_write, m_out) = upstream::MESSAGES_USAGE;
    let expected = [
        (
            "openai",
            "gpt-4o-mini-2024-07-18",
            (prompt - cached, cached, 0, completion, reasoning),
            false,
        ),
        (
            "openai",
            "gpt-4o-mini-2024-07-18",
            (prompt - cached, cached, 0, completion, reasoning),
            true,
        ),
        // Without stream_options.include_usage OpenAI reports no usage in a stream.
        ("local", "gpt-4o-mini-2024-07-18", (0, 0, 0, 0, 0), true),
        (
            "openai",
            "gpt-4o-mini-2024-07-18",
            (r_in - r_cached, r_cached, 0, r_out, r_reasoning),
            false,
        ),
        (
            "openai",
            "gpt-4o-mini-2024-07-18",
            (r_in - r_cached, r_cached, 0, r_out, r_reasoning),
            true,
        ),
        (
            "openai",
            "text-embedding-3-small",
            (upstream::EMBEDDING_TOKENS, 0, 0, 0, 0),
            false,
        ),
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            (m_in, m_read, m_write, m_out, 0),
            false,
        ),
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            (m_in, m_read, m_write, m_out, 0),
            true,
        ),
    ];
    for (call, (provider, model, tokens, streamed)) in calls.iter().zip(expected) {
        assert_eq!(call.provider.as_deref(), Some(provider), "{call:?}");
        assert_eq!(call.model.as_deref(), Some(model), "{call:?}");
        assert_eq!(
            (
                call.input_tokens,
                call.cache_read_tokens,
                call.cache_write_tokens,
                call.output_tokens,
                call.reasoning_tokens
            ),
            tokens,
            "{call:?}"
        );
        assert_eq!(call.session_id, "run-1");
        assert_eq!(call.step_id.as_deref(), Some("turn-1"));
        assert_eq!(call.status, "ok");
        assert_eq!(call.response_status, Some(200));
        assert_eq!(call.ttft_ms.is_some(), streamed, "{call:?}");
        assert!(call.latency_ms.unwrap() > 0.0);
        assert_eq!(
            call.api_key_hash.as_deref(),
            Some(sonde_proxy::headers::sha256_hex(b"sk-test-provider-key").as_str())
        );
        let whole = proxy.call(&call.id).await;
        assert_eq!(whole.metadata["user"], "ada");
        assert_eq!(whole.request_method.as_deref(), Some("POST"));
        let exchange = &whole.call_records[0];
        assert!(exchange.request.is_some());
        assert!(exchange.response.is_some());
    }
    // Tool calls, assembled from the stream's deltas.
    let tools = proxy.call(&calls[2].id).await;
    let response = tools.call_records[0].response.clone().unwrap();
    assert_eq!(response["tool_calls"][0]["name"], "get_weather");
    assert_eq!(
        response["tool_calls"][0]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(tools.stop_reason.as_deref(), Some("tool_calls"));
    let anthropic = proxy.call(&calls[7].id).await;
    assert_eq!(anthropic.stop_reason.as_deref(), Some("tool_use"));
    let said = anthropic.call_records[0].response.clone().unwrap();
    assert_eq!(said["output_text"], "Hello from the upstream");
    // The session is the proxy's: source "proxy".
    let session = proxy
        .store
        .get_session("run-1", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&session).unwrap();
    assert!(json.to_string().contains(r#""source":"proxy""#), "{json}");
    // The dashboard lists it among the proxy's sessions, and its calls.
    let page = text_of(&format!("{}/?source=proxy", proxy.url)).await;
    assert!(page.contains("/sessions/run-1"), "{page}");
    let page = text_of(&format!("{}/calls?provider=anthropic", proxy.url)).await;
    assert!(page.contains("claude-sonnet-4-5-20250929"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_session_header_land_in_the_days_proxy_session_and_no_content_keeps_none() {
    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |c| {
        c.proxy.record_content = false
    })
    .await;
    for _ in 0..2 {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "secret prompt"}]});
        let (status, _, _) = chat(&proxy, &body).await;
        assert_eq!(status, 200);
    }
    let calls = proxy.calls(2).await;
    let today = sonde_model::Timestamp::now().to_string();
    assert_eq!(calls[0].session_id, format!("proxy-{}", &today[..10]));
    assert_eq!(calls[1].session_id, calls[0].session_id);
    let whole = proxy.call(&calls[0].id).await;
    assert!(whole.call_records.is_empty(), "{whole:?}");
    assert_eq!(
        whole.input_tokens,
        upstream::CHAT_USAGE.0 - upstream::CHAT_USAGE.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_reaches_the_client_chunk_by_chunk() {
    let up = upstream::start().await;
    let proxy = proxy(&up.base()).await;
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = post(
        &format!("{}/openai/v1/chat/completions", proxy.url),
        &body,
        &[],
    )
    .await;
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        // One chunk of the upstream may reach us in pieces: the first piece counts.
        let events_before = text.windows(2).filter(|w| w == b"\n\n").count();
        text.extend_from_slice(&chunk);
        let events_after = text.windows(2).filter(|w| w == b"\n\n").count();
        for _ in events_before..events_after {
            received.push(Instant::now());
        }
    }
    let sent = up.seen.sent.lock().unwrap().clone();
    assert_eq!(
        sent.len(),
        upstream::TEXT_CHUNKS.len() + 3,
        "role, texts, stop, [DONE]"
    );
    assert_eq!(received.len(), sent.len());
    let mut delays = Vec::new();
    for (sent, received) in sent.iter().zip(&received) {
        delays.push(received.duration_since(*sent));
    }
    eprintln!("chunk delays through the proxy: {delays:?}");
    // Each chunk arrives well before the next is sent (200 ms later): nothing is held.
    for delay in &delays {
        assert!(*delay < Duration::from_millis(100), "{delays:?}");
    }
    let calls = proxy.calls(1).await;
    assert!(calls[0].ttft_ms.unwrap() >= 190.0, "{:?}", calls[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_502_and_a_silent_one_504_both_recorded() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = proxy(&format!("http://{closed}/v1")).await;
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    let (status, content_type, bytes) = chat(&proxy, &body).await;
    assert_eq!(status, 502);
    assert_eq!(content_type, "application/json");
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "upstream_unreachable");
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the upstream openai"),
        "{said}"
    );
    let calls = proxy.calls(1).await;
    assert_eq!(calls[0].status, "error");
    assert_eq!(calls[0].response_status, Some(502));
    let whole = proxy.call(&calls[0].id).await;
    assert_eq!(
        whole.metadata["error_class"], "connection_refused",
        "{whole:?}"
    );

    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |c| {
        c.proxy.upstream_timeout = Duration::from_millis(500)
    })
    .await;
    let body = json!({"model": "hang", "max_tokens": 5, "messages": []});
    let (status, _, bytes) =
        answer(post(&format!("{}/anthropic/v1/messages", proxy.url), &body, &[]).await).await;
    assert_eq!(status, 504);
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "upstream_timeout");
    let calls = proxy.calls(1).await;
    assert_eq!(calls[0].response_status, Some(504));
    assert_eq!(calls[0].model.as_deref(), Some("hang"));
    let whole = proxy.call(&calls[0].id).await;
    assert_eq!(whole.metadata["error_class"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_pass_through_unchanged_and_are_recorded() {
    let up = upstream::start().await;
    let proxy = proxy(&up.base()).await;
    for (route, path, model) in [
        ("openai", "chat/completions", "error-429"),
        ("anthropic", "messages", "error-429"),
        ("openai", "chat/completions", "error-500"),
    ] {
        let body = json!({"model": model, "max_tokens": 5, "messages": []});
        let direct = answer(post(&format!("{}/{path}", up.base()), &body, &[]).await).await;
        let proxied =
            answer(post(&format!("{}/{route}/v1/{path}", proxy.url), &body, &[]).await).await;
        assert_eq!(proxied, direct, "{route} {model}");
    }
    let calls = proxy.calls(3).await;
    let errors: Vec<_> = {
        let mut calls = calls.clone();
        calls.sort_by_key(|c| c.ts);
        let mut out = Vec::new();
        for c in calls {
            out.push((c.response_status, proxy.call(&c.id).await.error.unwrap()));
        }
        out
    };
    assert_eq!(
        errors,
        [
            (
                Some(429),
                "upstream_error: HTTP 429: Rate limit reached for requests".to_owned()
            ),
            (
                Some(429),
                "upstream_error: HTTP 429: Number of requests has exceeded your rate limit"
                    .to_owned()
            ),
            (Some(500), "upstream_error: HTTP 500: no message".to_owned()),
        ]
    );
    let metrics = text_of(&format!("{}/metrics", proxy.url)).await;
    for line in [
        r#"sonde_proxy_calls_total{route="openai",outcome="upstream_error"} 2"#,
        r#"sonde_proxy_calls_total{route="anthropic",outcome="upstream_error"} 1"#,
    ] {
        assert!(metrics.contains(line), "{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_cancels_the_upstream_and_the_call_is_recorded_cancelled() {
    let up = upstream::start().await;
    let proxy = proxy(&up.base()).await;
    for (route, path) in [("openai", "chat/completions"), ("anthropic", "messages")] {
        let body = json!({"model": "endless", "stream": true, "max_tokens": 5, "messages": []});
        let response = post(&format!("{}/{route}/v1/{path}", proxy.url), &body, &[]).await;
        let mut stream = response.bytes_stream();
        let mut read = 0;
        while read < 300 {
            read += stream.next().await.unwrap().unwrap().len();
        }
        drop(stream);
    }
    let until = Instant::now() + Duration::from_secs(20);
    while up.seen.cancelled.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < until,
            "the upstream streams were not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = proxy.calls(2).await;
    for call in calls {
        let whole = proxy.call(&call.id).await;
        assert_eq!(whole.metadata["error_class"], "client_gone", "{whole:?}");
        assert_eq!(whole.metadata["cancelled"], true);
        assert_eq!(call.response_status, Some(200));
        let said = whole.call_records[0].response.clone().unwrap();
        assert!(
            said["output_text"].as_str().unwrap().starts_with("Hello") || said["output_text"] == "",
            "{said:?}"
        );
        assert!(call.ttft_ms.is_some() || said["output_text"] == "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_before_anything_goes_upstream() {
    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |c| c.body_limit = 1024).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let (status, _, bytes) = chat(&proxy, &body).await;
    assert_eq!(status, 413);
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "too_large");
    // Chunked, without a length: cut at the limit all the same.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100])));
    let response = client()
        .post(format!("{}/openai/v1/chat/completions", proxy.url))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_a_call_needs_a_sonde_key_lands_in_its_tenant_and_the_key_goes_no_further() {
    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let (key, secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&key).await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |_| {}).await;
    let url = format!("{}/openai/v1/chat/completions", proxy.url);
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    let provider = ("authorization", "Bearer sk-provider");
    let (status, _, bytes) = answer(post(&url, &body, &[provider]).await).await;
    assert_eq!(status, 401);
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "unauthorized");
    assert!(
        said["error"].as_str().unwrap().contains("X-Sonde-Key"),
        "{said}"
    );
    let (status, _, _) =
        answer(post(&url, &body, &[provider, ("x-sonde-key", "sonde_wrong")]).await).await;
    assert_eq!(status, 401);
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 0);

    let (status, _, _) =
        answer(post(&url, &body, &[provider, ("x-sonde-key", &secret)]).await).await;
    assert_eq!(status, 200);
    let seen = up.seen.last_headers.lock().unwrap().clone().unwrap();
    assert!(!seen.contains_key("x-sonde-key"));
    assert_eq!(seen["authorization"], "Bearer sk-provider");
    let bearer = format!("Bearer {secret}");
    let (status, _, _) =
        answer(post(&url, &body, &[provider, ("proxy-authorization", &bearer)]).await).await;
    assert_eq!(status, 200);
    let seen = up.seen.last_headers.lock().unwrap().clone().unwrap();
    assert!(!seen.contains_key("proxy-authorization"));
    for call in proxy.calls(2).await {
        assert_eq!(
            (call.org.as_deref(), call.workspace.as_deref()),
            (Some("acme"), Some("prod"))
        );
        assert_eq!(call.gateway_key_id.as_deref(), Some(key.id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_a_call_needs_a_key_even_when_none_exists() {
    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let proxy = proxy_on(store, &up.base(), "0.0.0.0:0", |_| {}).await;
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    let (status, _, _) = chat(&proxy, &body).await;
    assert_eq!(status, 401);
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_a_key_it_confirmed_still_proxies_and_an_unconfirmed_one_gets_503() {
    let up = upstream::start().await;
    let (pg, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = StoreUrl::parse(&url).unwrap().open().await.unwrap();
    let (key, secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&key).await.unwrap();
    let (unconfirmed, unconfirmed_secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&unconfirmed).await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |_| {}).await;
    let url = format!("{}/openai/v1/chat/completions", proxy.url);
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    let (status, _, _) = answer(post(&url, &body, &[("x-sonde-key", &secret)]).await).await;
    assert_eq!(status, 200);
    tokio::task::spawn_blocking(move || pg.stop_immediate().map(|()| pg))
        .await
        .unwrap()
        .unwrap();
    let (status, _, _) = answer(post(&url, &body, &[("x-sonde-key", &secret)]).await).await;
    assert_eq!(status, 200, "a key the store confirmed before");
    let response = post(&url, &body, &[("x-sonde-key", &unconfirmed_secret)]).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, _, bytes) = answer(response).await;
    assert_eq!(status, 503);
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "store_unavailable");
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_gets_429_and_nothing_goes_upstream() {
    let up = upstream::start().await;
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let (key, secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&key).await.unwrap();
    let (other, other_secret) = ApiKey::generate("acme", "dev", None, false);
    store.create_api_key(&other).await.unwrap();
    let proxy = proxy_on(store, &up.base(), "127.0.0.1:0", |c| {
        c.proxy.rate_limit_per_minute = Some(2)
    })
    .await;
    let url = format!("{}/openai/v1/chat/completions", proxy.url);
    let body = json!({"model": "gpt-4o-mini", "messages": []});
    for _ in 0..2 {
        let (status, _, _) = answer(post(&url, &body, &[("x-sonde-key", &secret)]).await).await;
        assert_eq!(status, 200);
    }
    let response = post(&url, &body, &[("x-sonde-key", &secret)]).await;
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let (status, _, bytes) = answer(response).await;
    assert_eq!(status, 429);
    let said: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(said["code"], "rate_limited");
    // Another key has its own allowance.
    let (status, _, _) = answer(post(&url, &body, &[("x-sonde-key", &other_secret)]).await).await;
    assert_eq!(status, 200);
    assert_eq!(up.seen.requests.load(Ordering::SeqCst), 3);
}
