//! What an operator reads: `GET /api/v1/diagnostics` (JSON, with every field of the
//! gateway seed's `TracePipelineDiagnostics`) and `GET /metrics` (OpenMetrics text) say
//! the same about the same writer, here driven into a saturated queue for real.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sonde_model::{Body, Context, Event, LlmCall, Record, Timestamp};
use sonde_store::{StoreUrl, Writer, WriterConfig};

fn calls(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            id: format!("{tag}-{i:05}"),
            timestamp: Timestamp::from_micros(1_767_225_600_000_000 + i as i64),
            context: Context::session(tag),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: "gpt-5".into(),
                ..Default::default()
            })),
        })
        .collect()
}

/// `name{labels} value` lines of an OpenMetrics text, by `name{labels}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_and_metrics_agree_on_a_saturated_queue_and_its_drops() {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    // A queue of 100 and no spool: what a full queue cannot take is dropped at hand-over.
    let writer = Arc::new(
        Writer::start(
            store.clone(),
            WriterConfig {
                queue_capacity: 100,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    writer.enqueue(calls("a", 60));
    writer.enqueue(calls("b", 250));
    writer.flush().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sonde_server::serve_on(
        listener,
        sonde_server::DEFAULT_BODY_LIMIT,
        writer.clone(),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let d: Value = client
        .get(format!("{url}/api/v1/diagnostics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let w = &d["writer"];
    // Every field of the seed's TracePipelineDiagnostics, by its snake_case name.
    for field in [
        "queue_capacity",
        "queue_depth",
        "queue_depth_high_watermark",
        "queue_utilization_pct",
        "queue_high_watermark_utilization_pct",
        "queue_pressure_state",
        "queue_high_watermark_pressure_state",
        "enqueue_accepted_total",
        "enqueue_dropped_total",
        "write_dropped_total",
        "total_dropped_total",
        "last_enqueue_drop_at",
        "write_failures_by_class",
        "store_driver",
    ] {
        assert!(!w[field].is_null(), "{field} missing from {w}");
    }
    assert_eq!(w["queue_capacity"], 100);
    assert_eq!(w["queue_depth"], 0);
    assert_eq!(w["queue_pressure_state"], "ok");
    assert_eq!(w["queue_high_watermark_pressure_state"], "saturated");
    assert_eq!(w["queue_high_watermark_utilization_pct"], 100);
    assert_eq!(w["enqueue_accepted_total"], 310);
    assert_eq!(w["enqueue_dropped_total"], 250);
    assert_eq!(w["write_dropped_total"], 0);
    assert_eq!(w["total_dropped_total"], 250);
    assert_eq!(w["written"], 60);
    assert_eq!(w["store_driver"], "sqlite");
    assert_eq!(w["ack"], "durable");
    assert_eq!(d["store"]["reachable"], true);
    assert_eq!(d["store"]["driver"], "sqlite");
    assert!(d["store"]["schema_version"].as_u64().unwrap() > 0);
    assert!(d["version"].is_string() && d["uptime_seconds"].is_number());

    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let m = samples(&text);
    let agree = |metric: &str, field: &str| {
        assert_eq!(
            m.get(metric).copied(),
            w[field].as_f64(),
            "{metric} against {field}:\n{text}"
        );
    };
    agree("sonde_writer_queue_capacity", "queue_capacity");
    agree("sonde_writer_queue_depth", "queue_depth");
    agree(
        "sonde_writer_queue_high_watermark",
        "queue_depth_high_watermark",
    );
    agree("sonde_writer_accepted_total", "enqueue_accepted_total");
    agree(
        "sonde_writer_dropped_total{stage=\"enqueue\"}",
        "enqueue_dropped_total",
    );
    agree(
        "sonde_writer_dropped_total{stage=\"write\"}",
        "write_dropped_total",
    );
    agree("sonde_writer_written_total", "written");
    assert_eq!(m["sonde_writer_queue_utilization_ratio"], 0.0);
    assert_eq!(m["sonde_writer_spool_pending_bytes"], 0.0);
    assert_eq!(m["sonde_writer_enqueue_wait_seconds_total"], 0.0);
    assert_eq!(m["sonde_writer_pressure{level=\"ok\"}"], 1.0);
    assert_eq!(m["sonde_writer_pressure{level=\"saturated\"}"], 0.0);
    assert_eq!(
        m["sonde_writer_high_watermark_pressure{level=\"saturated\"}"],
        1.0
    );
    for class in [
        "connection",
        "timeout",
        "contention",
        "constraint",
        "unknown",
    ] {
        assert_eq!(
            m[&format!("sonde_writer_failures_total{{class=\"{class}\"}}")],
            0.0
        );
    }
    assert!(m.contains_key("sonde_writer_last_enqueue_drop_timestamp_seconds"));
    // The store's latency over the last minute, and the rates.
    let p50 = w["store_latency_p50_seconds"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= w["store_latency_p99_seconds"].as_f64().unwrap());
    agree(
        "sonde_writer_store_write_latency_seconds{quantile=\"0.5\"}",
        "store_latency_p50_seconds",
    );
    assert!(w["accepted_per_second"].as_f64().unwrap() > 0.0);
    assert!(w["written_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(m["sonde_build_info{version=\"0.1.0\"}"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_the_diagnostics_need_an_admin_key() {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    let (tenant, tenant_secret) = sonde_store::ApiKey::generate("acme", "prod", None, false);
    let (admin, admin_secret) = sonde_store::ApiKey::generate("ops", "all", None, true);
    for key in [&tenant, &admin] {
        store.create_api_key(key).await.unwrap();
    }
    let writer = Arc::new(Writer::start(store.clone(), WriterConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/v1/diagnostics",
        listener.local_addr().unwrap()
    );
    tokio::spawn(sonde_server::serve_on(
        listener,
        sonde_server::DEFAULT_BODY_LIMIT,
        writer,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let status = |secret: Option<&str>| {
        let mut request = client.get(&url);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(&tenant_secret)).await, 403);
    assert_eq!(status(Some(&admin_secret)).await, 200);
}
