//! The sessions page (newest first, filters in the URL, cursor paging) and a session's
//! page (its trace tree and waterfall, drawn by `app.js` from the nodes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;
use sonde_model::{Metadata, SessionTrace, Timestamp};
use sonde_store::{AnalyticsFilter, CallFilter, Scope, SessionSummary, TraceStore};

use super::view::{self, dollars, duration, thousands};
use super::{Section, checkbox, data_island, failed, input, page, problem, range_inputs, refused};
use crate::auth::Caller;
use crate::filters::Params;
use crate::rest::Api;

/// Where a session's records came from, as far as its metadata says: its `source`
/// (`claude-code`, `codex`, `proxy`), `otlp` when it holds OpenTelemetry attributes, else
/// `other` (the tracer and OTLP spans without a session record look alike).
pub(crate) fn source(metadata: &Metadata) -> String {
    match metadata.get("source").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None if metadata.contains_key("otel") => "otlp".into(),
        None => "other".into(),
    }
}

/// The project or working folder a session ran in, if its metadata says.
fn project(metadata: &Metadata) -> String {
    ["cwd", "project"]
        .iter()
        .find_map(|k| metadata.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

/// Times as the dashboard prints them: UTC, to the second.
pub(crate) fn when(t: Timestamp) -> String {
    let text = t.to_string();
    // 2026-01-01T10:00:00.000000Z → 2026-01-01 10:00:00
    text.get(..19).map_or(text.clone(), |s| s.replace('T', " "))
}

fn tokens(s: &SessionSummary) -> Markup {
    html! {
        td.num title="input" { (thousands(s.input_tokens)) }
        td.num title="cache read" { (thousands(s.cache_read_tokens)) }
        td.num title="cache write" { (thousands(s.cache_write_tokens)) }
        td.num title="output" { (thousands(s.output_tokens)) }
    }
}

/// `GET /`: the sessions page.
pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let params = Params(q);
    let filter = match params.sessions(caller.scope(), Timestamp::now()) {
        Ok(f) => f,
        Err(r) => return refused(r),
    };
    let page_of = match api.store.list_sessions(&filter).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let chosen = params.get("source").unwrap_or("");
    let body = html! {
        h1 { "Sessions" }
        form.filters method="get" action="/" {
            (range_inputs(&params))
            (input(&params, "q", "Search", "words in messages and tools"))
            (input(&params, "model", "Model", "claude-sonnet-4-5"))
            (input(&params, "provider", "Provider", "anthropic"))
            label {
                span { "Source" }
                select name="source" {
                    option value="" selected[chosen.is_empty()] { "any" }
                    @for s in ["claude-code", "codex", "proxy"] {
                        option value=(s) selected[chosen == s] { (s) }
                    }
                }
            }
            (input(&params, "meta", "Metadata", "key=value"))
            label {
                span { "Min cost ($)" }
                input type="number" step="any" min="0" name="min_cost" value=[params.get("min_cost")];
            }
            (checkbox(&params, "errors", "with errors"))
            button type="submit" { "Filter" }
            a.reset href="/" { "Reset" }
        }
        @if page_of.sessions.is_empty() {
            p.empty { "No sessions match. Record some with " code { "sonde sync all" } " or send OpenTelemetry spans to this server." }
        } @else {
            div.scroll { table.list #sessions data-live=[params.get("cursor").is_none().then_some("1")] {
                thead { tr {
                    th { "Start (UTC)" } th { "Duration" } th { "Source" } th { "Project / cwd" }
                    th { "Models" } th.num { "LLM calls" } th.num { "Tool calls" }
                    th.num { "Input" } th.num { "Cache read" } th.num { "Cache write" } th.num { "Output" }
                    th.num { "Cost" } th.num { "Errors" }
                } }
                tbody {
                    @for s in &page_of.sessions {
                        tr class=[(s.errors > 0).then_some("failed")] {
                            td { a href=(format!("/sessions/{}", super::encode(&s.session_id))) { (when(s.started_at)) } }
                            td.num { (duration(s.last_at.millis_since(s.started_at))) }
                            td { (source(&s.metadata)) }
                            td.path { (project(&s.metadata)) }
                            td.models { (s.models.join(", ")) }
                            td.num { (thousands(s.llm_calls)) }
                            td.num { (thousands(s.tool_calls)) }
                            (tokens(s))
                            td.num { (dollars(s.cost_usd)) }
                            td.num.err { @if s.errors > 0 { (thousands(s.errors)) } }
                        }
                    }
                }
            } }
        }
        (super::pager(&params, "/", page_of.next_cursor.as_deref()))
    };
    page(
        StatusCode::OK,
        "Sessions",
        Section::Sessions,
        caller.holds_key(),
        body,
    )
}

/// The costs of a session's LLM calls as the store reports them (reported, else
/// computed from the price table), by record id.
async fn call_costs(
    store: &dyn TraceStore,
    session_id: &str,
    scope: &Scope,
) -> Result<HashMap<String, f64>, sonde_store::ReadError> {
    let mut costs = HashMap::new();
    let mut filter = CallFilter {
        calls: AnalyticsFilter {
            scope: scope.clone(),
            session_id: Some(session_id.to_owned()),
            ..Default::default()
        },
        limit: CallFilter::MAX_LIMIT,
        ..Default::default()
    };
    loop {
        let page = store.list_calls(&filter).await?;
        costs.extend(
            page.calls
                .into_iter()
                .filter_map(|c| c.cost_usd.map(|cost| (c.id, cost))),
        );
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return Ok(costs),
        }
    }
}

/// The session and its nodes, if it is visible to `caller`.
async fn load(
    api: &Api,
    caller: &Caller,
    id: &str,
) -> Result<Option<(SessionTrace, Vec<view::Node>, f64)>, Response> {
    let scope = caller.scope();
    let trace = match api.store.get_session(id, &scope).await {
        Ok(Some(trace)) => trace,
        Ok(None) => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let costs = call_costs(api.store.as_ref(), id, &scope)
        .await
        .map_err(failed)?;
    let nodes = view::nodes(&trace, &costs);
    Ok(Some((trace, nodes, costs.values().sum())))
}

fn not_found(id: &str) -> Response {
    problem(StatusCode::NOT_FOUND, &format!("no session {id}"))
}

/// `GET /sessions/{id}/nodes.json`: the nodes of the session's tree, for live updates.
pub(crate) async fn nodes(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match load(&api, &caller, &id).await {
        Ok(Some((_, nodes, _))) => Json(nodes).into_response(),
        Ok(None) => not_found(&id),
        Err(response) => response,
    }
}

/// `GET /sessions/{id}`: the session's page.
pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let (trace, nodes, cost) = match load(&api, &caller, &id).await {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return not_found(&id),
        Err(response) => return response,
    };
    let calls: Vec<&view::Node> = nodes.iter().filter(|n| n.kind == "llm").collect();
    let llm: Vec<&sonde_model::LlmCall> = trace
        .events
        .iter()
        .filter_map(|e| e.value.as_llm())
        .collect();
    let sum = |f: fn(&sonde_model::LlmCall) -> u64| llm.iter().map(|c| f(c)).sum::<u64>();
    let start = nodes.iter().map(|n| n.at).fold(0.0, f64::min);
    let end = nodes
        .iter()
        .map(|n| n.at + n.dur.unwrap_or(0.0))
        .fold(0.0, f64::max);
    let errors = nodes.iter().filter(|n| n.error).count();
    let metadata = trace.metadata();
    let body = html! {
        h1.session { "Session " code { (trace.session_id) } }
        dl.figures.totals {
            @for (id, label, value, err) in [
                ("total-started", "Started (UTC)", trace.created_at().map(when).unwrap_or_default(), false),
                ("total-duration", "Duration", duration(end - start), false),
                ("total-source", "Source", source(metadata), false),
                ("total-project", "Project / cwd", project(metadata), false),
                ("total-calls", "LLM calls", calls.len().to_string(), false),
                ("total-tools", "Tool calls", nodes.iter().filter(|n| n.kind == "tool").count().to_string(), false),
                ("total-tokens", "Tokens in / cache read / cache write / out", format!("{} / {} / {} / {}",
                    thousands(sum(|c| c.input_tokens)), thousands(sum(|c| c.cache_read_tokens)),
                    thousands(sum(|c| c.cache_write_tokens)), thousands(sum(|c| c.output_tokens))), false),
                ("total-cost", "Cost", dollars(Some(cost)), false),
                ("total-errors", "Errors", errors.to_string(), errors > 0),
            ] {
                div.figure { dt { (label) } dd id=(id) class=[err.then_some("err")] { (value) } }
            }
        }
        p.hint { "Select a row, or move with " kbd { "j" } " / " kbd { "k" } ". "
            a href=(format!("/api/v1/sessions/{}", super::encode(&trace.session_id))) { "JSON" } }
        div.trace #trace data-session=(trace.session_id) data-span=(end - start) {
            div.rows #rows tabindex="0" { div.spacer #spacer {} }
            aside.detail #detail { p.empty { "Select a node to see its detail." } }
        }
        (data_island("nodes", &nodes))
    };
    page(
        StatusCode::OK,
        "Session",
        Section::Sessions,
        caller.holds_key(),
        body,
    )
}
