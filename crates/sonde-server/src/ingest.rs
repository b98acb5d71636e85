//! OTLP/HTTP ingest: `POST /v1/traces`, protobuf or JSON, into the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sonde_store::Writer;

use crate::SERVE_ENQUEUE_WAIT;
use crate::auth::{Caller, stamp_tenant};
use crate::body::body_bytes;
use crate::refusal::error;

/// Counters exposed at `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) spans_accepted: AtomicU64,
    pub(crate) spans_rejected: AtomicU64,
}

/// What the OTLP/HTTP receiver and `/metrics` share.
pub(crate) struct AppState {
    pub(crate) writer: Arc<Writer>,
    pub(crate) body_limit: usize,
    pub(crate) counters: Counters,
    /// When the server started, for its uptime.
    pub(crate) started: std::time::Instant,
    /// The same, as a time of day.
    pub(crate) started_at: sonde_model::Timestamp,
    /// The LLM proxy's calls, by route and outcome.
    pub(crate) proxy_calls: crate::proxy::ProxyCalls,
}

/// The records of `spans`, in the caller's tenant.
pub(crate) fn tenant_records(
    caller: &Caller,
    spans: Vec<sonde_otlp::Span>,
) -> Vec<sonde_model::Record> {
    let mut records: Vec<_> = spans
        .into_iter()
        .flat_map(sonde_otlp::span_to_records)
        .collect();
    for record in &mut records {
        stamp_tenant(caller, record);
    }
    records
}

/// What a sender hears when the writer can take nothing more.
pub(crate) const OVERLOADED: &str = "the writer's queue and spool are full; retry later";

/// Hands `records` to the writer, waiting up to [`SERVE_ENQUEUE_WAIT`] for queue room,
/// and — with the writer's default [`sonde_store::Ack::Durable`] — until they are
/// committed to the store or fsynced in the spool; false when they were not kept
/// (queue and spool full, or the writer stopped), so that the sender retries.
pub(crate) async fn hand_over(writer: &Writer, records: Vec<sonde_model::Record>) -> bool {
    records.is_empty() || writer.submit(records, SERVE_ENQUEUE_WAIT).await.is_ok()
}

/// `POST /v1/traces`.
pub(crate) async fn traces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let response = match body {
        Ok(body) => receive(&state, &caller, &headers, body).await,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the {}-byte limit", state.body_limit),
        ),
        Err(rejection) => error(rejection.status(), "bad_body", rejection.body_text()),
    };
    if !response.status().is_success() {
        state.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
    }
    response
}

async fn receive(state: &AppState, caller: &Caller, headers: &HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf")
        .to_ascii_lowercase();
    let json = content_type.starts_with("application/json");
    if !json
        && !content_type.starts_with("application/x-protobuf")
        && !content_type.starts_with("application/protobuf")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type {content_type:?}: send application/x-protobuf or application/json"
            ),
        );
    }
    let bytes = match body_bytes(headers, body, state.body_limit) {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal.into_response(),
    };
    let decoded = if json {
        match std::str::from_utf8(&bytes) {
            Ok(text) => sonde_otlp::decode_json(text),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the JSON body is not UTF-8: {e}"),
                );
            }
        }
    } else {
        sonde_otlp::decode_protobuf(&bytes)
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
    };
    let records = tenant_records(caller, decoded.spans);
    state
        .counters
        .spans_accepted
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    state
        .counters
        .spans_rejected
        .fetch_add(decoded.rejected.len() as u64, Ordering::Relaxed);
    if !hand_over(&state.writer, records).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", OVERLOADED);
    }
    if json {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            sonde_otlp::response_json(&decoded.rejected).to_string(),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            sonde_otlp::response_protobuf(&decoded.rejected),
        )
            .into_response()
    }
}
