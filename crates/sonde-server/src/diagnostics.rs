//! `GET /api/v1/diagnostics`: what an operator reads by eye — the server's version and
//! uptime, its store (reachable or not), the writer's full diagnostics and the OTLP/HTTP
//! receiver's counters — as JSON. With API keys, an admin key is needed.
//!
//! ```json
//! {"version": "0.1.0", "uptime_seconds": 42.1,
//!  "store": {"driver": "sqlite", "url": "sqlite:///data/sonde.db", "database_id": "…",
//!            "schema_version": 9, "reachable": true},
//!  "writer": {"queue_capacity": 3000, "queue_pressure_state": "ok", "…": "…"},
//!  "ingest": {"otlp_requests_total": 10, "otlp_bad_requests_total": 0,
//!             "spans_accepted_total": 5120, "spans_rejected_total": 0}}
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::ingest::AppState;
use crate::refusal::error;

/// How long the store is given to answer whether it is reachable.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The store's part: driver, URL without password, id, schema version, reachable.
async fn store(state: &AppState) -> Value {
    let store = state.writer.store();
    let identity = store.database();
    let probe = tokio::time::timeout(
        STORE_PROBE_TIMEOUT,
        store.query("SELECT max(version) AS version FROM schema_migrations", &[]),
    )
    .await;
    let (reachable, version, problem) = match probe {
        Ok(Ok(rows)) => (
            true,
            rows.rows
                .first()
                .and_then(|row| row.first())
                .cloned()
                .unwrap_or(Value::Null),
            None,
        ),
        Ok(Err(e)) => (false, Value::Null, Some(e.to_string())),
        Err(_) => (
            false,
            Value::Null,
            Some(format!(
                "no answer within {} s",
                STORE_PROBE_TIMEOUT.as_secs()
            )),
        ),
    };
    let mut value = json!({
        "driver": store.backend(),
        "url": identity.map(|i| i.url.clone()),
        "database_id": identity.map(|i| i.id.clone()),
        "schema_version": version,
        "reachable": reachable,
    });
    if let Some(problem) = problem {
        value["error"] = Value::String(problem);
    }
    value
}

/// `GET /api/v1/diagnostics`.
pub(crate) async fn diagnostics(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if !caller.is_admin() {
        return error(
            StatusCode::FORBIDDEN,
            "admin_only",
            "the diagnostics need an admin key",
        );
    }
    let c = &state.counters;
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "store": store(&state).await,
        "writer": state.writer.diagnostics(),
        "ingest": {
            "otlp_requests_total": c.requests.load(Ordering::Relaxed),
            "otlp_bad_requests_total": c.bad_requests.load(Ordering::Relaxed),
            "spans_accepted_total": c.spans_accepted.load(Ordering::Relaxed),
            "spans_rejected_total": c.spans_rejected.load(Ordering::Relaxed),
        },
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
