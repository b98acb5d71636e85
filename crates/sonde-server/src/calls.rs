//! The LLM calls of the REST API:
//!
//! - `GET /api/v1/calls?since=&until=&range=&provider=&model=&key=&gateway_key=&session=&meta=K=V&status=&failed=&min_latency_ms=&max_latency_ms=&min_cost=&max_cost=&limit=&cursor=`
//!   — `{"calls": [{"id", ...}], "next_cursor"}`, newest first (see [`crate::filters`]).
//! - `GET /api/v1/calls/{id}` — one call whole (its request and response), or 404.
//!
//! A tenant key sees its tenant's calls only; another tenant's call is not found.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sonde_model::Timestamp;

use crate::auth::Caller;
use crate::filters::Params;
use crate::refusal::error;
use crate::rest::{Api, read_error};

pub(crate) async fn calls(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let filter = match Params(q).calls(caller.scope(), Timestamp::now()) {
        Ok(filter) => filter,
        Err(refusal) => return refusal.into_response(),
    };
    match api.store.list_calls(&filter).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => read_error(e),
    }
}

pub(crate) async fn call(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match api.store.get_call(&id, &caller.scope()).await {
        Ok(Some(call)) => Json(call).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no LLM call {id}"),
        ),
        Err(e) => read_error(e),
    }
}
