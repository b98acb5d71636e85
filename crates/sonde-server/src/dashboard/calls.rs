//! The LLM calls page (every call, newest first, filtered as analytics filter, cursor
//! paged) and one call's page.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use sonde_model::Timestamp;

use super::sessions::when;
use super::view::{self, dollars, duration, thousands};
use super::{
    Section, checkbox, data_island, encode, failed, input, page, problem, range_inputs, refused,
};
use crate::auth::Caller;
use crate::filters::Params;
use crate::rest::Api;

/// `GET /calls`: the calls page.
pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(q);
    let filter = match params.calls(caller.scope(), Timestamp::now()) {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    let calls = match api.store.list_calls(&filter).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let status = params.get("status").unwrap_or("");
    let body = html! {
        h1 { "LLM calls" }
        form.filters method="get" action="/calls" {
            (range_inputs(&params))
            (input(&params, "model", "Model", "gpt-5"))
            (input(&params, "provider", "Provider", "openai"))
            (input(&params, "key", "API key hash", ""))
            (input(&params, "gateway_key", "Gateway key", ""))
            (input(&params, "session", "Session", ""))
            (input(&params, "meta", "Metadata", "key=value"))
            label {
                span { "Status" }
                select name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    option value="ok" selected[status == "ok"] { "ok" }
                    option value="error" selected[status == "error"] { "error" }
                }
            }
            @for (name, label) in [("min_latency_ms", "Min latency (ms)"), ("max_latency_ms", "Max latency (ms)"),
                                   ("min_cost", "Min cost ($)"), ("max_cost", "Max cost ($)")] {
                label {
                    span { (label) }
                    input type="number" step="any" min="0" name=(name) value=[params.get(name)];
                }
            }
            (checkbox(&params, "failed", "failed (error or HTTP ≥ 400)"))
            button type="submit" { "Filter" }
            a.reset href="/calls" { "Reset" }
        }
        @if calls.calls.is_empty() {
            p.empty { "No LLM calls match." }
        } @else {
            div.scroll { table.list #calls {
                thead { tr {
                    th { "Time (UTC)" } th { "Model" } th { "Provider" } th.num { "Input" }
                    th.num { "Cache read" } th.num { "Cache write" } th.num { "Output" }
                    th.num { "Cost" } th.num { "Latency" } th.num { "TTFT" } th { "Status" } th { "Session" }
                } }
                tbody {
                    @for c in &calls.calls {
                        tr class=[c.failed().then_some("failed")] {
                            td { a href=(format!("/calls/{}", encode(&c.id))) { (when(c.ts)) } }
                            td { (c.model.clone().unwrap_or_default()) }
                            td { (c.provider.clone().unwrap_or_default()) }
                            td.num { (thousands(c.input_tokens)) }
                            td.num { (thousands(c.cache_read_tokens)) }
                            td.num { (thousands(c.cache_write_tokens)) }
                            td.num { (thousands(c.output_tokens)) }
                            td.num { (dollars(c.cost_usd)) }
                            td.num { (c.latency_ms.map(duration).unwrap_or_default()) }
                            td.num { (c.ttft_ms.map(duration).unwrap_or_default()) }
                            td class=[c.failed().then_some("err")] {
                                (c.status) @if let Some(s) = c.response_status { " " (s) }
                            }
                            td.path { a href=(format!("/sessions/{}", encode(&c.session_id))) { (c.session_id) } }
                        }
                    }
                }
            } }
        }
        (super::pager(&params, "/calls", calls.next_cursor.as_deref()))
    };
    page(
        StatusCode::OK,
        "LLM calls",
        Section::Calls,
        caller.holds_key(),
        body,
    )
}

/// `GET /calls/{id}`: one call's page.
pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let detail = match api.store.get_call(&id, &caller.scope()).await {
        Ok(Some(d)) => d,
        Ok(None) => return problem(StatusCode::NOT_FOUND, &format!("no LLM call {id}")),
        Err(e) => return failed(e),
    };
    let node = view::call_node(&detail);
    let body = html! {
        h1 { "LLM call " code { (detail.summary.model.clone().unwrap_or_default()) } }
        p { "In session " a href=(format!("/sessions/{}", encode(&detail.summary.session_id))) { code { (detail.summary.session_id) } }
            " · " a href=(format!("/api/v1/calls/{}", encode(&detail.summary.id))) { "JSON" } }
        div.call #call { aside.detail #detail {} }
        (data_island("node", &node))
    };
    page(
        StatusCode::OK,
        "LLM call",
        Section::Calls,
        caller.holds_key(),
        body,
    )
}
