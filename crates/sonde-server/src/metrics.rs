//! `GET /metrics`: the receiver's counters and the writer's diagnostics as Prometheus
//! text.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::ingest::AppState;

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.counters;
    let d = state.writer.diagnostics();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "sonde_otlp_requests_total",
        "counter",
        "OTLP trace requests received.",
        c.requests.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_otlp_bad_requests_total",
        "counter",
        "OTLP trace requests refused.",
        c.bad_requests.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_spans_accepted_total",
        "counter",
        "Spans accepted.",
        c.spans_accepted.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_spans_rejected_total",
        "counter",
        "Spans rejected (malformed ids or times).",
        c.spans_rejected.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "sonde_writer_queue_depth",
        "gauge",
        "Records waiting in the writer's queue.",
        d.queue_depth.to_string(),
    );
    metric(
        "sonde_writer_queue_capacity",
        "gauge",
        "The writer queue's capacity.",
        d.queue_capacity.to_string(),
    );
    metric(
        "sonde_writer_queue_utilisation_percent",
        "gauge",
        "Queue depth over capacity.",
        d.queue_utilisation_pct.to_string(),
    );
    metric(
        "sonde_writer_written_total",
        "counter",
        "Records stored.",
        d.written.to_string(),
    );
    metric(
        "sonde_writer_spooled_total",
        "counter",
        "Records spooled to disk.",
        d.spooled.to_string(),
    );
    metric(
        "sonde_writer_enqueue_waits_total",
        "counter",
        "Requests that waited for room in the writer's queue (back-pressure).",
        d.enqueue_waits.to_string(),
    );
    metric(
        "sonde_writer_enqueue_wait_seconds_total",
        "counter",
        "Time requests waited for room in the writer's queue.",
        format!("{:.6}", d.enqueue_wait_seconds),
    );
    metric(
        "sonde_writer_replayed_total",
        "counter",
        "Records replayed from the spool.",
        d.replayed.to_string(),
    );
    metric(
        "sonde_writer_dropped_total",
        "counter",
        "Records lost (spool full).",
        d.dropped.to_string(),
    );
    metric(
        "sonde_writer_spool_pending_bytes",
        "gauge",
        "Spooled bytes waiting for replay.",
        d.spool_pending_bytes.to_string(),
    );
    out.push_str("# HELP sonde_writer_pressure Queue pressure: 1 for the current level.\n# TYPE sonde_writer_pressure gauge\n");
    for level in ["ok", "elevated", "high", "saturated"] {
        out.push_str(&format!(
            "sonde_writer_pressure{{level=\"{level}\"}} {}\n",
            u8::from(d.pressure.as_str() == level)
        ));
    }
    out.push_str("# HELP sonde_writer_failures_total Failed store writes by class.\n# TYPE sonde_writer_failures_total counter\n");
    for (class, n) in &d.failures_by_class {
        out.push_str(&format!(
            "sonde_writer_failures_total{{class=\"{class}\"}} {n}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
