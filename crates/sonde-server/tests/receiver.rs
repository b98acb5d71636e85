//! The OTLP/HTTP receiver: protobuf, JSON and gzip bodies are stored; bad bodies get
//! the right 4xx (never a 5xx, never a silent drop) and touch nothing stored.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};
use sonde_store::{Scope, StoreUrl, TraceStore, Writer, WriterConfig};

struct Server {
    url: String,
    store: Arc<dyn TraceStore>,
    writer: Arc<Writer>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(body_limit: usize) -> Server {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let writer = Arc::new(Writer::start(store.clone(), WriterConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sonde_server::serve_on(
        listener,
        body_limit,
        writer.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        url,
        store,
        writer,
        _stop: stop,
    }
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn chat_span(span_id: Vec<u8>, status: i32) -> Span {
    Span {
        trace_id: vec![0x0a; 16],
        span_id,
        name: "chat gpt-5".into(),
        kind: 3,
        start_time_unix_nano: 1_763_789_160_000_000_000,
        end_time_unix_nano: 1_763_789_161_500_000_000,
        attributes: vec![
            attr(
                "gen_ai.operation.name",
                any_value::Value::StringValue("chat".into()),
            ),
            attr(
                "gen_ai.provider.name",
                any_value::Value::StringValue("openai".into()),
            ),
            attr(
                "gen_ai.request.model",
                any_value::Value::StringValue("gpt-5".into()),
            ),
            attr(
                "gen_ai.usage.input_tokens",
                any_value::Value::IntValue(1000),
            ),
            attr(
                "gen_ai.usage.cache_read.input_tokens",
                any_value::Value::IntValue(600),
            ),
            attr("gen_ai.usage.output_tokens", any_value::Value::IntValue(80)),
            attr(
                "gen_ai.conversation.id",
                any_value::Value::StringValue("conv-proto".into()),
            ),
        ],
        status: Some(Status {
            code: status,
            message: if status == 2 {
                "boom".into()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// OTLP's status body (`google.rpc.Status`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC code and message of an OTLP/HTTP error answer, read as its content type
/// says (protobuf or JSON).
async fn otlp_status(response: reqwest::Response) -> (i32, String) {
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let protobuf = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let body = response.bytes().await.unwrap();
    if json {
        let value: Value = serde_json::from_slice(&body).unwrap();
        (
            value["code"].as_i64().unwrap() as i32,
            value["message"].as_str().unwrap().to_owned(),
        )
    } else {
        assert!(protobuf, "neither protobuf nor JSON: {body:?}");
        let status = RpcStatus::decode(&body[..]).unwrap();
        (status.code, status.message)
    }
}

async fn llm_calls(store: &dyn TraceStore) -> i64 {
    store
        .query("SELECT count(*) FROM events WHERE event_type = 'llm'", &[])
        .await
        .unwrap()
        .rows[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_spans_are_stored_and_bad_ids_come_back_as_partial_success() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let body = request(vec![
        chat_span(vec![1; 8], 0),
        chat_span(vec![2; 3], 0),
        chat_span(vec![3; 8], 2),
    ])
    .encode_to_vec();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial
            .error_message
            .contains("spanId must be 16 hex digits"),
        "{}",
        partial.error_message
    );

    server.writer.flush().await;
    let session = server
        .store
        .get_session("conv-proto", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.events.len(), 2);
    let calls: Vec<&sonde_model::LlmCall> = session
        .events
        .iter()
        .map(|e| e.value.as_llm().unwrap())
        .collect();
    for call in &calls {
        assert_eq!(
            (
                call.input_tokens,
                call.cache_read_tokens,
                call.output_tokens
            ),
            (400, 600, 80)
        );
        assert_eq!(call.latency_ms, Some(1500.0));
    }
    let failed: Vec<_> = calls.iter().filter_map(|c| c.error.as_deref()).collect();
    assert_eq!(failed, ["boom"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_gzip_bodies_are_accepted() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let json_body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat",
        "startTimeUnixNano": "1763789160000000000", "endTimeUnixNano": "1763789160500000000",
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
                       {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}}]}]}]}]})
    .to_string();
    let client = reqwest::Client::new();
    let plain = client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .body(json_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.json::<Value>().await.unwrap(), json!({}));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        json_body
            .replace("b7ad6b7169203331", "b7ad6b7169203332")
            .as_bytes(),
    )
    .unwrap();
    let zipped = client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);
    server.writer.flush().await;
    assert_eq!(llm_calls(server.store.as_ref()).await, 2);
    // The same span again is stored once.
    client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .body(json_body)
        .send()
        .await
        .unwrap();
    server.writer.flush().await;
    assert_eq!(llm_calls(server.store.as_ref()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_the_right_4xx_and_touch_nothing() {
    let server = start(64 * 1024).await;
    let client = reqwest::Client::new();
    let good = request(vec![chat_span(vec![9; 8], 0)]).encode_to_vec();
    client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    server.writer.flush().await;
    assert_eq!(llm_calls(server.store.as_ref()).await, 1);

    /// What is sent (name, content type, encoding, body) and the answer (status, what
    /// its message says).
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&good).unwrap();
    let mut trailing = gz.finish().unwrap();
    trailing.extend_from_slice(b"trailing garbage");
    let cases: Vec<Case<'_>> = vec![
        (
            "garbage protobuf",
            "application/x-protobuf",
            None,
            vec![0xff, 0xff, 0xff, 0x01],
            400,
            "protobuf",
        ),
        (
            "truncated protobuf",
            "application/x-protobuf",
            None,
            good[..good.len() / 2].to_vec(),
            400,
            "protobuf",
        ),
        (
            "truncated json",
            "application/json",
            None,
            b"{\"resourceSpans\": [".to_vec(),
            400,
            "json",
        ),
        (
            "claims gzip but is not",
            "application/json",
            Some("gzip"),
            b"{}".to_vec(),
            400,
            "gzip",
        ),
        (
            "gzip with trailing garbage",
            "application/x-protobuf",
            Some("gzip"),
            trailing,
            400,
            "gzip",
        ),
        (
            "unknown encoding",
            "application/json",
            Some("br"),
            b"{}".to_vec(),
            415,
            "content-encoding",
        ),
        (
            "unknown type",
            "text/plain",
            None,
            b"hello".to_vec(),
            415,
            "content-type",
        ),
        (
            "oversized",
            "application/x-protobuf",
            None,
            vec![0u8; 65 * 1024],
            413,
            "limit",
        ),
    ];
    for (what, content_type, encoding, body, status, says) in cases {
        let mut req = client
            .post(format!("{}/v1/traces", server.url))
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            req = req.header("content-encoding", encoding);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let (code, message) = otlp_status(response).await;
        let expected = if status == 413 { 8 } else { 3 };
        assert_eq!(code, expected, "{what}: {message}");
        assert!(
            message.to_lowercase().contains(says),
            "{what}: {message:?} does not say {says:?}"
        );
        assert!(!message.contains('\n'), "{what}: one line");
    }
    // A gzip bomb is cut at the limit: 413, not memory.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
    let bomb = client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bomb.status(), 413);
    server.writer.flush().await;
    assert_eq!(
        llm_calls(server.store.as_ref()).await,
        1,
        "nothing stored was touched"
    );

    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sonde_spans_accepted_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sonde_otlp_requests_total 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sonde_otlp_bad_requests_total 9"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sonde_writer_pressure{level=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sonde_writer_enqueue_waits_total 0"),
        "one small request found room at once: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_reads_sessions_stats_and_sql_and_refuses_writes() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let client = reqwest::Client::new();
    let mut a = chat_span(vec![1; 8], 0);
    a.attributes.retain(|kv| kv.key != "gen_ai.conversation.id");
    let b = chat_span(vec![2; 8], 2);
    let body = request(vec![a, b]).encode_to_vec();
    client
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    server.writer.flush().await;
    let get = |path: &str| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let r = client.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    let (status, page) = get("/api/v1/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(page["sessions"].as_array().unwrap().len(), 2);
    let (_, first) = get("/api/v1/sessions?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = get(&format!("/api/v1/sessions?limit=1&cursor={cursor}")).await;
    assert_ne!(
        first["sessions"][0]["session_id"],
        second["sessions"][0]["session_id"]
    );
    let (status, bad) = get("/api/v1/sessions?cursor=nonsense").await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let (status, bad) = get("/api/v1/sessions?since=yesterday").await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("bad_parameter")));

    let (status, session) = get("/api/v1/sessions/conv-proto").await;
    assert_eq!(status, 200);
    assert_eq!(session["events"][0]["value"]["error"], "boom");
    let (status, missing) = get("/api/v1/sessions/nope").await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));

    let (status, summary) = get("/api/v1/stats/summary").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            summary["calls"].as_u64(),
            summary["errors"].as_u64(),
            summary["input_tokens"].as_u64()
        ),
        (Some(2), Some(1), Some(800))
    );
    let (_, models) = get("/api/v1/stats/models").await;
    assert_eq!(models[0]["model"], "gpt-5");
    let (_, latency) = get("/api/v1/stats/latency?group_by=model").await;
    assert_eq!(latency[0]["p50_ms"], 1500.0);
    let (_, series) = get("/api/v1/stats/usage?bucket=hour&group_by=provider").await;
    assert_eq!(series[0]["group"], "openai");
    let (status, _) = get("/api/v1/stats/usage?bucket=fortnight").await;
    assert_eq!(status, 400);
    let (status, _) = get("/api/v1/stats/nonsense").await;
    assert_eq!(status, 404);

    let post = |body: Value| {
        let client = client.clone();
        let url = format!("{}/api/v1/query", server.url);
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, rows) = post(
        json!({"sql": "SELECT count(*) AS n FROM events WHERE status = ?1", "params": ["error"]}),
    )
    .await;
    assert_eq!((status, rows), (200, json!([{"n": 1}])));
    let (status, refused) = post(json!({"sql": "DELETE FROM events"})).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("not_read_only"))
    );
    assert_eq!(llm_calls(server.store.as_ref()).await, 2, "nothing changed");
    let (status, bad) = post(json!({"query": "SELECT 1"})).await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("bad_body")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_while_serving_is_required_within_the_recheck_interval() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let client = reqwest::Client::new();
    let body = request(vec![chat_span(vec![2; 8], 0)]).encode_to_vec();
    let send = || {
        client
            .post(format!("{}/v1/traces", server.url))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    assert_eq!(
        send().await.unwrap().status(),
        200,
        "no key yet: local callers need none"
    );
    let (key, _secret) = sonde_store::ApiKey::generate("acme", "prod", None, false);
    server.store.create_api_key(&key).await.unwrap();
    tokio::time::sleep(sonde_server::KEYS_RECHECK + std::time::Duration::from_millis(100)).await;
    assert_eq!(send().await.unwrap().status(), 401, "a key exists now");
    assert_eq!(
        send().await.unwrap().status(),
        401,
        "and the answer is kept"
    );
}

/// Keys of tenants acme / prod and globex / prod, and an admin key, made on `server`.
struct Keys {
    acme: sonde_store::ApiKey,
    acme_secret: String,
    globex_secret: String,
    admin_secret: String,
}

async fn three_keys(server: &Server) -> Keys {
    let (acme, acme_secret) = sonde_store::ApiKey::generate("acme", "prod", None, false);
    let (globex, globex_secret) = sonde_store::ApiKey::generate("globex", "prod", None, false);
    let (admin, admin_secret) = sonde_store::ApiKey::generate("ops", "all", None, true);
    for key in [&acme, &globex, &admin] {
        server.store.create_api_key(key).await.unwrap();
    }
    Keys {
        acme,
        acme_secret,
        globex_secret,
        admin_secret,
    }
}

/// Issue 17 item 7: two tenants sending the same trace (the same session id, the same
/// span ids, so the same record ids) each store their own and see only their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_sending_the_same_ids_each_keep_their_own() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let Keys {
        acme: _,
        acme_secret,
        globex_secret,
        admin_secret,
    } = three_keys(&server).await;
    let client = reqwest::Client::new();
    let body = request(vec![chat_span(vec![1; 8], 0)]).encode_to_vec();
    for secret in [&acme_secret, &globex_secret] {
        let sent = client
            .post(format!("{}/v1/traces", server.url))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(secret)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }
    server.writer.flush().await;
    let get = |path: &str, secret: &str| {
        client
            .get(format!("{}{path}", server.url))
            .bearer_auth(secret.to_owned())
            .send()
    };
    for (secret, org) in [(&acme_secret, "acme"), (&globex_secret, "globex")] {
        let page: Value = get("/api/v1/sessions", secret)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sessions = page["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "{org}: {page}");
        assert_eq!(sessions[0]["session_id"], "conv-proto");
        assert_eq!(sessions[0]["org"], org);
        assert_eq!(sessions[0]["llm_calls"], 1, "{org}: its own call, stored");
        let session = get("/api/v1/sessions/conv-proto", secret).await.unwrap();
        assert_eq!(session.status(), 200, "{org}");
    }
    let usage = server
        .store
        .usage_summary(&sonde_store::AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(
        usage.calls, 2,
        "neither tenant's call was taken for a duplicate"
    );
    let ambiguous = get("/api/v1/sessions/conv-proto", &admin_secret)
        .await
        .unwrap();
    assert_eq!(
        ambiguous.status(),
        409,
        "an admin key sees both: which one?"
    );
    let problem: Value = ambiguous.json().await.unwrap();
    assert_eq!(problem["code"], "ambiguous_id", "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_once_configured_and_each_tenant_sees_only_its_own() {
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let Keys {
        acme,
        acme_secret,
        globex_secret,
        admin_secret,
    } = three_keys(&server).await;
    let client = reqwest::Client::new();
    let body = request(vec![chat_span(vec![1; 8], 0)]).encode_to_vec();
    let send = |secret: Option<&str>| {
        let mut req = client
            .post(format!("{}/v1/traces", server.url))
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(secret) = secret {
            req = req.bearer_auth(secret);
        }
        req.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401);
    let wrong = send(Some("sonde_not_a_key")).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        otlp_status(wrong).await,
        (16, "unknown or revoked API key".to_owned())
    );
    assert_eq!(send(Some(&acme_secret)).await.unwrap().status(), 200);
    server.writer.flush().await;
    let stored = server
        .store
        .get_session("conv-proto", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.events[0].context.org.as_deref(),
        Some("acme"),
        "written into the key's tenant"
    );

    let get = |path: &str, secret: &str| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        let secret = secret.to_owned();
        async move {
            client
                .get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("/api/v1/sessions/conv-proto", &acme_secret).await, 200);
    assert_eq!(
        get("/api/v1/sessions/conv-proto", &globex_secret).await,
        404,
        "not 403: that would confirm it exists"
    );
    assert_eq!(get("/api/v1/sessions/conv-proto", &admin_secret).await, 200);
    let page: Value = client
        .get(format!("{}/api/v1/sessions", server.url))
        .bearer_auth(&globex_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["sessions"], json!([]));
    let summary: Value = client
        .get(format!("{}/api/v1/stats/summary", server.url))
        .bearer_auth(&globex_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["calls"], 0);
    let query = |secret: &str| {
        client
            .post(format!("{}/api/v1/query", server.url))
            .bearer_auth(secret.to_owned())
            .json(&json!({"sql": "SELECT count(*) AS n FROM events"}))
            .send()
    };
    assert_eq!(
        query(&acme_secret).await.unwrap().status(),
        403,
        "raw SQL crosses tenants"
    );
    assert_eq!(query(&admin_secret).await.unwrap().status(), 200);
    assert_eq!(
        client
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "health needs no key"
    );
    assert!(server.store.revoke_api_key(&acme.id).await.unwrap());
    assert_eq!(
        send(Some(&acme_secret)).await.unwrap().status(),
        401,
        "a revoked key stops working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sondes_own_exporter_round_trips_every_mapped_field_through_sonde_serve() {
    use sonde_model::*;
    use sonde_tracer::TraceSink;
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let ctx = Context::session("export-session");
    let call = LlmCall {
        provider: Some("anthropic".into()),
        model_name: "claude-sonnet-4-5".into(),
        input_tokens: 200,
        cache_read_tokens: 800,
        cache_write_tokens: 50,
        output_tokens: 60,
        reasoning_tokens: 10,
        cost_usd: Some(0.0125),
        latency_ms: Some(1500.0),
        time_to_first_token_ms: Some(300.0),
        stop_reason: Some("end_turn".into()),
        status: Status::Error,
        error: Some("overloaded".into()),
        ..Default::default()
    };
    let tool = RuntimeAction {
        tool_name: Some("Read".into()),
        tool_call_id: Some("toolu_1".into()),
        arguments: Some(json!({"path": "README.md"})),
        result: Some(json!("# Sonde")),
        duration_ms: Some(42.0),
        ..Default::default()
    };
    let records = vec![
        Record::new(ctx.clone(), Body::Event(Event::Llm(call.clone()))),
        Record::new(ctx.clone(), Body::Event(Event::Runtime(tool.clone()))),
        Record::new(
            ctx,
            Body::Message(Message {
                content: MessageContent::text("not a span"),
                ..Default::default()
            }),
        ),
    ];
    let sink = sonde_otlp::OtlpSink::new(&server.url).unwrap();
    tokio::task::spawn_blocking(move || sink.write(&records))
        .await
        .unwrap()
        .unwrap();
    server.writer.flush().await;

    let session = server
        .store
        .get_session("export-session", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.events.len(), 2, "events become spans");
    assert_eq!(
        session.messages.len(),
        1,
        "a message travels whole in its own span"
    );
    assert_eq!(session.messages[0].value.content.as_text(), "not a span");
    let got = session
        .events
        .iter()
        .find_map(|e| e.value.as_llm())
        .unwrap();
    assert_eq!(
        (
            got.provider.as_deref(),
            got.model_name.as_str(),
            got.input_tokens,
            got.cache_read_tokens,
            got.cache_write_tokens,
            got.output_tokens,
            got.reasoning_tokens
        ),
        (Some("anthropic"), "claude-sonnet-4-5", 200, 800, 50, 60, 10),
        "tokens survive the OpenTelemetry convention (cached inside input) both ways"
    );
    assert_eq!(
        (got.cost_usd, got.latency_ms, got.time_to_first_token_ms),
        (Some(0.0125), Some(1500.0), Some(300.0))
    );
    assert_eq!(
        (got.stop_reason.as_deref(), got.status, got.error.as_deref()),
        (Some("end_turn"), Status::Error, Some("overloaded"))
    );
    let Event::Runtime(t) = &session
        .events
        .iter()
        .find(|e| matches!(e.value, Event::Runtime(_)))
        .unwrap()
        .value
    else {
        panic!()
    };
    assert_eq!(
        (
            t.tool_name.as_deref(),
            t.tool_call_id.as_deref(),
            t.duration_ms
        ),
        (Some("Read"), Some("toolu_1"), Some(42.0))
    );
    assert_eq!(
        (t.arguments.clone(), t.result.clone()),
        (tool.arguments, Some(json!("# Sonde")))
    );

    // A refusing endpoint is an error, not a silent drop.
    let nowhere = sonde_otlp::OtlpSink::new(&format!("{}/nowhere", server.url)).unwrap();
    let one = vec![Record::new(
        Context::session("x"),
        Body::Event(Event::Llm(call)),
    )];
    let err = tokio::task::spawn_blocking(move || nowhere.write(&one))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_jsonl_is_accepted_and_bad_lines_are_named() {
    use sonde_model::*;
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    let client = reqwest::Client::new();
    let good = Record::new(
        Context::session("jsonl-session"),
        Body::Event(Event::Llm(LlmCall {
            model_name: "m".into(),
            input_tokens: 5,
            ..Default::default()
        })),
    );
    let body = format!(
        "{}\n{{broken\n\n{}\n",
        good.to_json_line(),
        r#"{"schema_version":9}"#
    );
    let r = client
        .post(format!("{}/api/v1/records", server.url))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["line"], 2);
    assert_eq!(answer["rejected"][1]["line"], 4);
    assert!(
        answer["rejected"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("unsupported schema_version 9")
    );
    server.writer.flush().await;
    assert_eq!(
        server
            .store
            .get_session("jsonl-session", &Scope::All)
            .await
            .unwrap()
            .unwrap()
            .to_records(),
        vec![good]
    );
    let r = client
        .post(format!("{}/api/v1/records", server.url))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracers_otlp_sink_sends_each_session_and_step_span_once_as_they_end() {
    use sonde_model::*;
    let server = start(sonde_server::DEFAULT_BODY_LIMIT).await;
    // The tracer writes each record as it is made: the sink sees the session's start,
    // its step and its end in separate batches.
    let sink = std::sync::Arc::new(sonde_otlp::OtlpSink::new(&server.url).unwrap());
    let tracer = sonde_tracer::SessionTracer::with_sink(sink).unwrap();
    let mut metadata = Metadata::new();
    metadata.insert("source".into(), json!("my-agent"));
    metadata.insert("project".into(), json!("shop"));
    tracer
        .start_session(Some("traced"), metadata)
        .await
        .unwrap();
    tracer
        .start_timestep("turn-1", Some(1), Metadata::new())
        .await
        .unwrap();
    tracer
        .record_event(Event::Llm(LlmCall {
            model_name: "gpt-5".into(),
            input_tokens: 7,
            output_tokens: 3,
            ..Default::default()
        }))
        .await
        .unwrap();
    tracer.end_timestep().await.unwrap();
    tracer.end_session(true).await.unwrap();
    server.writer.flush().await;

    let session = server
        .store
        .get_session("traced", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    let started = session
        .started
        .expect("the root span carried the session's start");
    assert_eq!(started.value.metadata["project"], "shop");
    assert!(session.ended.is_some(), "and its end");
    assert_eq!(session.steps.len(), 1);
    assert!(session.steps[0].started.is_some() && session.steps[0].ended.is_some());
    assert_eq!(session.events.len(), 1);
    assert_eq!(
        session.events[0].value.as_llm().map(|c| c.input_tokens),
        Some(7)
    );
}
