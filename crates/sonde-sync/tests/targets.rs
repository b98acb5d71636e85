//! Every target against a real receiver: OTLP/HTTP into a running Sonde server, and
//! Langfuse's ingestion API as documented, checked by a local HTTP server.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde_json::{Value, json};
use sonde_langfuse::{LangfuseConfig, LangfuseSink};
use sonde_store::{StoreUrl, TraceStore, Writer, WriterConfig};
use sonde_sync::{CursorFile, SinkTarget, Source, StoreTarget, SyncOptions, Syncer};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Per-model (calls, input, output, cache read, cache write) of a store.
fn per_model(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn TraceStore>,
) -> BTreeMap<String, [u64; 5]> {
    rt.block_on(store.model_stats(&Default::default()))
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.model.clone(),
                [
                    m.calls,
                    m.input_tokens,
                    m.output_tokens,
                    m.cache_read_tokens,
                    m.cache_write_tokens,
                ],
            )
        })
        .collect()
}

/// What a direct sync into a store gives: the reference the other targets must match.
fn direct(rt: &tokio::runtime::Runtime) -> BTreeMap<String, [u64; 5]> {
    let store = rt.block_on(StoreUrl::SqliteMemory.open()).unwrap();
    let mut target = StoreTarget::new(store.clone(), rt.handle().clone());
    Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, &[data("claude-code")])
        .unwrap();
    per_model(rt, &store)
}

#[test]
fn otlp_into_a_sonde_server_gives_the_same_calls_and_tokens() {
    let rt = runtime();
    let want = direct(&rt);
    let store = rt.block_on(StoreUrl::SqliteMemory.open()).unwrap();
    let writer = {
        let _runtime = rt.enter();
        Arc::new(Writer::start(store.clone(), WriterConfig::default()).unwrap())
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(sonde_server::serve_on(
        listener,
        sonde_server::DEFAULT_BODY_LIMIT,
        writer.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let state = tempfile::tempdir().unwrap();
    let mut cursors = CursorFile::new(state.path().join("otlp.json"));
    let mut target = otlp_target(&url, cursors.clone());
    let first = Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, &[data("claude-code")])
        .unwrap();
    assert_eq!(first.errors, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = per_model(&rt, &store);
    while got != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = per_model(&rt, &store);
    }
    assert_eq!(got, want, "OTLP round trip keeps every call and token kind");
    // The cursors live in the state file: a second run sends nothing.
    assert_eq!(cursors.load("claude").unwrap().len(), 8);
    let mut target = otlp_target(&url, cursors);
    let second = Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, &[data("claude-code")])
        .unwrap();
    assert_eq!(second.spans_synced, 0);
}

/// A target sending OTLP/HTTP to `url`, as `sonde sync --to URL` makes it.
fn otlp_target(url: &str, cursors: CursorFile) -> SinkTarget {
    let sink = sonde_otlp::OtlpSink::new(url).unwrap();
    SinkTarget::new(format!("otlp {url}"), Box::new(sink), cursors)
}

/// A target sending to Langfuse, as `sonde sync --to langfuse` makes it.
fn langfuse_target(config: LangfuseConfig, cursors: CursorFile) -> SinkTarget {
    let name = format!("langfuse {}", config.host);
    SinkTarget::new(name, Box::new(LangfuseSink::new(config).unwrap()), cursors)
}

/// Checks one ingestion event against Langfuse's documented schema; returns why not.
fn invalid(event: &Value) -> Option<String> {
    let is_time = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.parse::<sonde_model::Timestamp>().is_ok())
    };
    if !event["id"].is_string() || !is_time(&event["timestamp"]) || !event["body"].is_object() {
        return Some(format!("bad envelope: {event}"));
    }
    let body = &event["body"];
    let string = |k: &str| body[k].is_string();
    let optional =
        |k: &str, ok: &dyn Fn(&Value) -> bool| body.get(k).is_none_or(|v| v.is_null() || ok(v));
    let ok = match event["type"].as_str() {
        Some("trace-create") => string("id") && optional("sessionId", &Value::is_string),
        Some(kind @ ("generation-create" | "span-create" | "event-create")) => {
            string("id")
                && string("traceId")
                && is_time(&body["startTime"])
                && optional("endTime", &is_time)
                && optional("parentObservationId", &Value::is_string)
                && optional("level", &|v| {
                    matches!(v.as_str(), Some("DEBUG" | "DEFAULT" | "WARNING" | "ERROR"))
                })
                && optional("metadata", &Value::is_object)
                && (kind != "generation-create"
                    || (string("model")
                        && body["usageDetails"]
                            .as_object()
                            .is_some_and(|u| u.values().all(Value::is_u64))
                        && optional("costDetails", &|c| {
                            c.as_object()
                                .is_some_and(|c| c.values().all(Value::is_number))
                        })))
        }
        _ => false,
    };
    (!ok).then(|| format!("not a valid {}: {body}", event["type"]))
}

#[test]
fn langfuse_ingestion_gets_valid_batches_of_traces_and_nested_observations() {
    let rt = runtime();
    let want = direct(&rt);
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("pk-lf-test:sk-lf-test")
    );
    let app = {
        let (received, batches) = (received.clone(), batches.clone());
        axum::Router::new().route(
            "/api/public/ingestion",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (received, batches, auth) = (received.clone(), batches.clone(), auth.clone());
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&auth) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"message": "bad auth"})),
                        );
                    }
                    batches.lock().unwrap().push(body.len());
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let Some(batch) = request["batch"].as_array() else {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"message": "no batch"})),
                        );
                    };
                    let (mut successes, mut errors) = (Vec::new(), Vec::new());
                    for event in batch {
                        match invalid(event) {
                            None => successes.push(json!({"id": event["id"], "status": 201})),
                            Some(why) => errors
                                .push(json!({"id": event["id"], "status": 400, "message": why})),
                        }
                    }
                    received.lock().unwrap().extend(batch.iter().cloned());
                    (
                        StatusCode::MULTI_STATUS,
                        axum::Json(json!({"successes": successes, "errors": errors})),
                    )
                }
            }),
        )
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });

    let state = tempfile::tempdir().unwrap();
    let config = LangfuseConfig {
        host,
        public_key: "pk-lf-test".into(),
        secret_key: "sk-lf-test".into(),
    };
    let mut target = langfuse_target(
        config.clone(),
        CursorFile::new(state.path().join("lf.json")),
    );
    let result = Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, &[data("claude-code")])
        .unwrap();
    assert_eq!(result.errors, 0);
    assert!(batches.lock().unwrap().iter().all(|b| *b < 3_500_000));

    let events = received.lock().unwrap().clone();
    let envelope_ids: BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(envelope_ids.len(), events.len(), "envelope ids are unique");
    // Generations carry each response's usage once (the last version of an id wins,
    // as Langfuse updates by body id).
    let mut generations: BTreeMap<String, &Value> = BTreeMap::new();
    let mut observations = BTreeSet::new();
    let mut traces = BTreeSet::new();
    for e in &events {
        match e["type"].as_str().unwrap() {
            "trace-create" => {
                traces.insert(e["body"]["id"].as_str().unwrap().to_owned());
            }
            kind => {
                observations.insert(e["body"]["id"].as_str().unwrap().to_owned());
                if kind == "generation-create" {
                    generations.insert(e["body"]["id"].as_str().unwrap().to_owned(), &e["body"]);
                }
            }
        }
    }
    let mut got: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for g in generations.values() {
        let u = &g["usageDetails"];
        let t = got
            .entry(g["model"].as_str().unwrap().to_owned())
            .or_default();
        t[0] += 1;
        t[1] += u["input"].as_u64().unwrap();
        t[2] += u["output"].as_u64().unwrap();
        t[3] += u["cache_read_input_tokens"].as_u64().unwrap();
        t[4] += u["cache_creation_input_tokens"].as_u64().unwrap();
        assert!(g["costDetails"]["total"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(got, want);
    // Every observation is in a trace that was created, and its parent exists.
    for e in events.iter().filter(|e| e["type"] != "trace-create") {
        assert!(traces.contains(e["body"]["traceId"].as_str().unwrap()));
        if let Some(parent) = e["body"]["parentObservationId"].as_str() {
            assert!(
                observations.contains(parent),
                "parent {parent} of {}",
                e["body"]
            );
        }
    }
    // Tool failures are ERROR-level spans.
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "span-create" && e["body"]["level"] == "ERROR")
    );

    // Refusals are errors, not silence.
    let wrong = LangfuseConfig {
        secret_key: "wrong".into(),
        ..config
    };
    let mut target = langfuse_target(wrong, CursorFile::new(state.path().join("lf2.json")));
    let refused = Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, &[data("claude-code")]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("401"), "{message}");
}

/// A local HTTP server that answers each request with the next of `answers` (status
/// line and headers), recording when each request came.
fn scripted_server(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<Instant>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            seen.push(Instant::now());
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "{answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
        }
        seen
    });
    (url, handle)
}

#[test]
fn exports_retry_busy_answers_after_the_wait_the_server_asks_for() {
    use sonde_model::TraceSink;
    // 503 with Retry-After: 2 (seconds), then 200: the sink waits at least those two
    // seconds (its own first wait is 0.4–0.8 s) and succeeds.
    let (url, server) = scripted_server(vec![
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2",
        "HTTP/1.1 200 OK",
    ]);
    let sink = sonde_otlp::OtlpSink::new(&url).unwrap();
    // An event: its span goes at once (a session's waits for the session's end).
    let record = || {
        sonde_model::Record::new(
            sonde_model::Context::session("s"),
            sonde_model::Body::Event(sonde_model::Event::Custom(sonde_model::CustomEvent {
                name: "checkpoint".into(),
                ..Default::default()
            })),
        )
    };
    sink.write(&[record()]).unwrap();
    let seen = server.join().unwrap();
    assert!(
        seen[1] - seen[0] >= Duration::from_secs(2),
        "{:?}",
        seen[1] - seen[0]
    );

    // A refusal (400) is not retried: one request, one error naming the endpoint.
    let (url, server) = scripted_server(vec!["HTTP/1.1 400 Bad Request"]);
    let sink = sonde_otlp::OtlpSink::new(&url).unwrap();
    let err = sink.write(&[record()]);
    let err = err.unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("400"), "{err}");
    assert_eq!(server.join().unwrap().len(), 1);
}
