//! The REST API: sessions, analytics and read-only SQL, as JSON.
//!
//! - `GET /api/v1/sessions?limit=&cursor=&since=&until=&range=&model=&provider=&source=&meta=K=V&q=&errors=&min_cost=`
//!   — a page of sessions; `q` is a full-text search (every word in one record).
//! - `GET /api/v1/sessions/{id}` — the whole session, or 404.
//! - `GET /api/v1/calls`, `GET /api/v1/calls/{id}` — LLM calls (see `calls.rs`).
//! - `GET /api/v1/stats/{summary|usage|cost|models|keys|latency|errors}?since=&until=&range=&provider=&model=&key=&gateway_key=&session=&meta=K=V&status=&group_by=&bucket=`
//!   — the same JSON as `sonde stats ... --json`.
//! - `POST /api/v1/records` — Sonde record JSONL, stored through the writer.
//! - `POST /api/v1/query` with `{"sql": "...", "params": [...]}` — rows as JSON objects;
//!   a statement that could write gets 400 `not_read_only`.
//!
//! Times are RFC 3339.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sonde_model::Timestamp;
use sonde_store::{Bucket, GroupBy, QueryError, QueryLimits, ReadError, TraceStore};

use crate::auth::{Caller, stamp_tenant};
use crate::filters::Params;
use crate::ingest::{OVERLOADED, hand_over};
use crate::refusal::{Refusal, error};

/// What the API handlers share.
pub(crate) struct Api {
    pub store: Arc<dyn TraceStore>,
    pub writer: Arc<sonde_store::Writer>,
}

pub(crate) fn read_error(e: ReadError) -> Response {
    match e {
        ReadError::InvalidCursor => error(StatusCode::BAD_REQUEST, "invalid_cursor", e.to_string()),
        ReadError::AmbiguousId { .. } => error(StatusCode::CONFLICT, "ambiguous_id", e.to_string()),
        ReadError::Closed => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        ReadError::Backend(ref b) if b.class == sonde_store::ErrorClass::Connection => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            other.to_string(),
        ),
    }
}

pub(crate) async fn sessions(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let filter = match Params(q).sessions(caller.scope(), Timestamp::now()) {
        Ok(filter) => filter,
        Err(r) => return r.into_response(),
    };
    match api.store.list_sessions(&filter).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => read_error(e),
    }
}

pub(crate) async fn session(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    // Another tenant's session is not found, not forbidden: that would confirm it exists.
    match api.store.get_session(&id, &caller.scope()).await {
        Ok(Some(trace)) => Json(trace).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no session {id}"),
        ),
        Err(e) => read_error(e),
    }
}

fn group_by(value: Option<&str>) -> Result<GroupBy, Refusal> {
    let name = value.unwrap_or("none");
    GroupBy::from_name(name).ok_or_else(|| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("group_by: expected none, provider, model, key or route, got {name:?}"),
        )
    })
}

fn bucket(value: Option<&str>) -> Result<Bucket, Refusal> {
    let name = value.unwrap_or("day");
    Bucket::from_name(name).ok_or_else(|| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("bucket: expected hour, day or week, got {name:?}"),
        )
    })
}

pub(crate) async fn stats(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(report): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(q);
    let filter = match params.analytics(caller.scope(), Timestamp::now()) {
        Ok(filter) => filter,
        Err(r) => return r.into_response(),
    };
    let (g, b) = match (
        group_by(params.get("group_by")),
        bucket(params.get("bucket")),
    ) {
        (Ok(g), Ok(b)) => (g, b),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let s = api.store.as_ref();
    let result: Result<Value, ReadError> = match report.as_str() {
        "summary" => s
            .usage_summary(&filter)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        "usage" | "cost" => s
            .usage_series(&filter, g, b)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        "models" => s
            .model_stats(&filter)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        "keys" => s
            .key_stats(&filter)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        "latency" => s
            .latency_percentiles(&filter, g)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        "errors" => s
            .error_rates(&filter, g)
            .await
            .map(|v| serde_json::to_value(v).unwrap_or_default()),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no report {other:?}: summary, usage, cost, models, keys, latency or errors"
                ),
            );
        }
    };
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => read_error(e),
    }
}

/// `POST /api/v1/records`: Sonde record JSONL. Valid lines are stored (through the
/// writer); bad ones come back as `{"rejected": [{"line", "reason"}]}` with status 200
/// when some lines were good, 400 when none was. A tenant key's records go into its
/// tenant.
pub(crate) async fn records(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8");
    };
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match sonde_model::Record::from_json_line(line.trim()) {
            Ok(mut record) => {
                stamp_tenant(&caller, &mut record);
                records.push(record);
            }
            Err(e) => {
                rejected.push(serde_json::json!({"line": index + 1, "reason": e.to_string()}))
            }
        }
    }
    if records.is_empty() && !rejected.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({
                "error": format!("no valid record: {} bad lines", rejected.len()),
                "code": "bad_body",
                "rejected": rejected,
            })),
        )
            .into_response();
    }
    let accepted = records.len();
    if !hand_over(&api.writer, records).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", OVERLOADED);
    }
    Json(serde_json::json!({"accepted": accepted, "rejected": rejected})).into_response()
}

/// The body of `POST /api/v1/query`.
#[derive(Deserialize)]
pub(crate) struct QueryBody {
    sql: String,
    #[serde(default)]
    params: Vec<Value>,
}

pub(crate) async fn query(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    limits: Option<Extension<QueryLimits>>,
    body: Result<Json<QueryBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !caller.is_admin() {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "raw SQL can cross tenants: it needs an admin key",
        );
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_body", e.body_text()),
    };
    let limits = limits.map(|Extension(l)| l).unwrap_or_default();
    match api
        .store
        .query_limited(&body.sql, &body.params, &limits)
        .await
    {
        Ok(result) => Json(result.to_objects()).into_response(),
        Err(e @ QueryError::NotReadOnly) => {
            error(StatusCode::BAD_REQUEST, "not_read_only", e.to_string())
        }
        Err(e @ (QueryError::Sql(_) | QueryError::Param { .. })) => {
            error(StatusCode::BAD_REQUEST, "bad_query", e.to_string())
        }
        Err(e @ QueryError::Timeout { .. }) => {
            error(StatusCode::BAD_REQUEST, "query_timeout", e.to_string())
        }
        Err(e @ QueryError::TooLarge { .. }) => {
            error(StatusCode::BAD_REQUEST, "result_too_large", e.to_string())
        }
        Err(e @ QueryError::Unavailable(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            e.to_string(),
        ),
    }
}
