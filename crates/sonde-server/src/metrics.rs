//! `GET /metrics`: the receiver's counters and the writer's diagnostics in the
//! Prometheus (OpenMetrics) text format, made with `prometheus-client`; the names are
//! listed in docs/operations.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use sonde_store::{ErrorClass, Pressure, WriterDiagnostics};

use crate::ingest::AppState;
use crate::refusal::error;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

fn seconds_counter(value: f64) -> Counter<f64, AtomicU64> {
    let c = Counter::<f64, AtomicU64>::default();
    c.inc_by(value);
    c
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::<i64, AtomicI64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn float_gauge(value: f64) -> Gauge<f64, AtomicU64> {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    g
}

fn labels(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

/// A gauge family with 1 for the current `level` and 0 for the others.
fn pressure(current: Pressure) -> Family<Labels, Gauge> {
    let family = Family::<Labels, Gauge>::default();
    for level in [
        Pressure::Ok,
        Pressure::Elevated,
        Pressure::High,
        Pressure::Saturated,
    ] {
        family
            .get_or_create(&labels("level", level.as_str()))
            .set(i64::from(level == current));
    }
    family
}

/// The writer's diagnostics as metrics, under `sonde_writer_`.
fn writer_metrics(registry: &mut Registry, d: &WriterDiagnostics) {
    let r = registry.sub_registry_with_prefix("writer");
    r.register(
        "queue_depth",
        "Records waiting in the writer's queue",
        gauge(d.queue_depth as u64),
    );
    r.register(
        "queue_capacity",
        "Records the writer's queue holds before it spools",
        gauge(d.queue_capacity as u64),
    );
    r.register(
        "queue_high_watermark",
        "The most records the queue has held at once",
        gauge(d.queue_depth_high_watermark as u64),
    );
    // Prometheus names ratios `_ratio` (the crate's `Unit::Ratios` says `_ratios`).
    r.register_with_unit(
        "queue_utilization",
        "Queue depth over capacity",
        Unit::Other("ratio".into()),
        float_gauge(d.queue_utilization_pct as f64 / 100.0),
    );
    r.register(
        "pressure",
        "Queue pressure now: 1 for the current level (ok, elevated, high, saturated)",
        pressure(d.queue_pressure_state),
    );
    r.register(
        "high_watermark_pressure",
        "Queue pressure at the high watermark: 1 for its level",
        pressure(d.queue_high_watermark_pressure_state),
    );
    r.register(
        "accepted",
        "Records handed to the writer",
        counter(d.enqueue_accepted_total),
    );
    let dropped = Family::<Labels, Counter>::default();
    dropped
        .get_or_create(&labels("stage", "enqueue"))
        .inc_by(d.enqueue_dropped_total);
    dropped
        .get_or_create(&labels("stage", "write"))
        .inc_by(d.write_dropped_total);
    r.register(
        "dropped",
        "Records lost: at hand-over (queue and spool full) or after a failed write (spool full)",
        dropped,
    );
    if let Some(at) = d.last_enqueue_drop_at {
        r.register_with_unit(
            "last_enqueue_drop_timestamp",
            "When records were last dropped at hand-over (Unix time)",
            Unit::Seconds,
            float_gauge(at.as_micros() as f64 / 1e6),
        );
    }
    if let Some(at) = d.last_write_drop_at {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        family
            .get_or_create(&labels(
                "operation",
                d.last_write_drop_operation.unwrap_or("write"),
            ))
            .set(at.as_micros() as f64 / 1e6);
        r.register_with_unit(
            "last_write_drop_timestamp",
            "When records were last dropped after a failed write (Unix time), by operation",
            Unit::Seconds,
            family,
        );
    }
    let failures = Family::<Labels, Counter>::default();
    for class in [
        ErrorClass::Connection,
        ErrorClass::Timeout,
        ErrorClass::Contention,
        ErrorClass::Constraint,
        ErrorClass::Unknown,
    ] {
        let n = d
            .write_failures_by_class
            .get(class.as_str())
            .copied()
            .unwrap_or(0);
        failures
            .get_or_create(&labels("class", class.as_str()))
            .inc_by(n);
    }
    r.register("failures", "Failed store writes by class", failures);
    r.register("written", "Records stored", counter(d.written));
    r.register(
        "duplicates",
        "Records the store already had",
        counter(d.duplicates),
    );
    r.register("spooled", "Records spooled to disk", counter(d.spooled));
    r.register(
        "replayed",
        "Records replayed from the spool",
        counter(d.replayed),
    );
    r.register(
        "rejected",
        "Records the store refused for good (kept in rejected.jsonl)",
        counter(d.rejected),
    );
    r.register(
        "enqueue_waits",
        "Hand-overs that waited for room in the queue (back-pressure)",
        counter(d.enqueue_waits),
    );
    r.register_with_unit(
        "enqueue_wait",
        "Time hand-overs waited for room in the queue",
        Unit::Seconds,
        seconds_counter(d.enqueue_wait_seconds),
    );
    r.register(
        "spool_files",
        "Spool files with records waiting for replay",
        gauge(d.spool_files),
    );
    r.register_with_unit(
        "spool_pending",
        "Spooled bytes waiting for replay",
        Unit::Bytes,
        gauge(d.spool_pending_bytes),
    );
    r.register_with_unit(
        "spool_oldest_age",
        "How long records have waited in the spool (0 when it is empty)",
        Unit::Seconds,
        float_gauge(d.spool_oldest_age_seconds.unwrap_or(0.0)),
    );
    r.register(
        "spool_damaged_batches",
        "Damaged spool batches set aside",
        counter(d.spool_damaged),
    );
    r.register(
        "spool_set_aside_records",
        "Records in damaged spool batches set aside",
        counter(d.records_set_aside),
    );
    let latency = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (quantile, value) in [
        ("0.5", d.store_latency_p50_seconds),
        ("0.99", d.store_latency_p99_seconds),
    ] {
        if let Some(value) = value {
            latency
                .get_or_create(&labels("quantile", quantile))
                .set(value);
        }
    }
    r.register_with_unit(
        "store_write_latency",
        "Store write round-trip time over the last minute, by quantile",
        Unit::Seconds,
        latency,
    );
}

/// Every metric of the server, as a registry made for one scrape.
fn registry(state: &AppState) -> Registry {
    let c = &state.counters;
    let mut registry = Registry::with_prefix("sonde");
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&labels("version", env!("CARGO_PKG_VERSION")))
        .set(1);
    registry.register("build_info", "The server's version", info);
    registry.register_with_unit(
        "start_time",
        "When the server started (Unix time)",
        Unit::Seconds,
        float_gauge(state.started_at.as_micros() as f64 / 1e6),
    );
    registry.register(
        "proxy_calls",
        "LLM calls through the proxy, by route and outcome (ok or the error class)",
        state.proxy_calls.clone(),
    );
    registry.register(
        "otlp_requests",
        "OTLP/HTTP trace requests received",
        counter(c.requests.load(Ordering::Relaxed)),
    );
    registry.register(
        "otlp_bad_requests",
        "OTLP/HTTP trace requests refused",
        counter(c.bad_requests.load(Ordering::Relaxed)),
    );
    registry.register(
        "spans_accepted",
        "Spans accepted over OTLP/HTTP",
        counter(c.spans_accepted.load(Ordering::Relaxed)),
    );
    registry.register(
        "spans_rejected",
        "Spans rejected (malformed ids or times)",
        counter(c.spans_rejected.load(Ordering::Relaxed)),
    );
    writer_metrics(&mut registry, &state.writer.diagnostics());
    registry
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry(&state)) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_error",
            e.to_string(),
        );
    }
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}
