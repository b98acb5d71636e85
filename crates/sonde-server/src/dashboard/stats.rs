//! The stats page: totals, cost and tokens over time by model (stacked bars), latency
//! and time to first token percentiles over time, error rates by model, top models and
//! API keys by cost — each number from the same analytics `sonde stats --json` prints.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use sonde_model::Timestamp;
use sonde_store::{Bucket, GroupBy, LatencyPoint, SeriesPoint};

use super::charts;
use super::view::{dollars, duration, thousands};
use super::{Section, failed, input, range_inputs, refused};
use crate::auth::Caller;
use crate::filters::Params;
use crate::rest::Api;

fn bucket_of(params: &Params) -> (Bucket, &'static str) {
    match params.get("bucket") {
        Some("hour") => (Bucket::Hour, "hour"),
        Some("week") => (Bucket::Week, "week"),
        _ => (Bucket::Day, "day"),
    }
}

fn label(t: Timestamp, bucket: Bucket) -> String {
    let text = t.to_string();
    match bucket {
        Bucket::Hour => text
            .get(..13)
            .map_or(text.clone(), |s| s.replace('T', " ") + "h"),
        Bucket::Day | Bucket::Week => text.get(..10).unwrap_or(&text).to_owned(),
    }
}

/// Buckets (labels, starts) and per model the values of `value` in each.
fn by_model(
    points: &[SeriesPoint],
    bucket: Bucket,
    value: fn(&SeriesPoint) -> f64,
) -> (Vec<String>, Vec<Timestamp>, Vec<String>, Vec<Vec<f64>>) {
    let starts: Vec<Timestamp> = points
        .iter()
        .map(|p| p.bucket)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut models: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in points {
        let name = p.group.clone().unwrap_or_else(|| "(none)".into());
        let row = models
            .entry(name)
            .or_insert_with(|| vec![0.0; starts.len()]);
        if let Ok(i) = starts.binary_search(&p.bucket) {
            row[i] += value(p);
        }
    }
    let labels = starts.iter().map(|t| label(*t, bucket)).collect();
    let (names, values) = models.into_iter().unzip();
    (labels, starts, names, values)
}

/// Latency p50 / p90 / p99 and TTFT p50 of each bucket starting at `starts` (none for
/// a bucket without calls that have them).
fn latency_over_time(points: &[LatencyPoint], starts: &[Timestamp]) -> Vec<Vec<Option<f64>>> {
    let mut series = vec![Vec::new(); 4];
    for start in starts {
        let l = points
            .binary_search_by_key(start, |p| p.bucket)
            .ok()
            .map(|i| &points[i].latency);
        for (i, v) in [
            l.and_then(|l| l.p50_ms),
            l.and_then(|l| l.p90_ms),
            l.and_then(|l| l.p99_ms),
            l.and_then(|l| l.ttft_p50_ms),
        ]
        .into_iter()
        .enumerate()
        {
            series[i].push(v);
        }
    }
    series
}

/// A number shown with its exact value in `data-value`, for tests and copying.
fn figure(id: &str, label: &str, shown: String, value: f64) -> Markup {
    html! { div.figure { dt { (label) } dd id=(id) data-value=(value) { (shown) } } }
}

/// `GET /stats`.
pub(crate) async fn page_of(
    api: &Api,
    caller: &Caller,
    params: &Params,
) -> Result<Markup, Response> {
    let filter = params
        .analytics(caller.scope(), Timestamp::now())
        .map_err(refused)?;
    let (bucket, bucket_name) = bucket_of(params);
    let store = api.store.as_ref();
    // Models, latency by model and over time come from one read of the latencies.
    let (summary, series, keys, errors, overview) = tokio::try_join!(
        store.usage_summary(&filter),
        store.usage_series(&filter, GroupBy::Model, bucket),
        store.key_stats(&filter),
        store.error_rates(&filter, GroupBy::Model),
        store.latency_overview(&filter, bucket),
    )
    .map_err(failed)?;
    let (models, latency, latency_series) = (overview.models, overview.by_model, overview.series);
    let (labels, starts, names, costs) = by_model(&series, bucket, |p| p.cost_usd);
    let (_, _, _, tokens) = by_model(&series, bucket, |p| p.total_tokens as f64);
    let over_time = latency_over_time(&latency_series, &starts);
    let mut by_cost = models.clone();
    by_cost.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd));
    let mut keys_by_cost = keys.clone();
    keys_by_cost.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd));
    let money = |v: f64| dollars(Some(v));
    let count = |v: f64| thousands(v.max(0.0) as u64);
    let ms = |v: f64| duration(v);
    let current = bucket_name;
    Ok(html! {
        h1 { "Stats" }
        form.filters method="get" action="/stats" {
            (range_inputs(params))
            (input(params, "model", "Model", ""))
            (input(params, "provider", "Provider", ""))
            (input(params, "key", "API key hash", ""))
            (input(params, "meta", "Metadata", "key=value"))
            label {
                span { "Bucket" }
                select name="bucket" {
                    @for b in ["hour", "day", "week"] { option value=(b) selected[current == b] { (b) } }
                }
            }
            button type="submit" { "Show" }
            a.reset href="/stats" { "Reset" }
        }
        dl.figures #summary {
            (figure("summary-calls", "LLM calls", thousands(summary.calls), summary.calls as f64))
            (figure("summary-input", "Input tokens", thousands(summary.input_tokens), summary.input_tokens as f64))
            (figure("summary-cache-read", "Cache read", thousands(summary.cache_read_tokens), summary.cache_read_tokens as f64))
            (figure("summary-cache-write", "Cache write", thousands(summary.cache_write_tokens), summary.cache_write_tokens as f64))
            (figure("summary-output", "Output tokens", thousands(summary.output_tokens), summary.output_tokens as f64))
            (figure("summary-cost", "Cost", dollars(Some(summary.cost_usd)), summary.cost_usd))
            (figure("summary-errors", "Errors", thousands(summary.errors), summary.errors as f64))
            (figure("summary-error-rate", "Error rate", format!("{:.1}%", summary.error_rate * 100.0), summary.error_rate))
        }
        @if summary.calls == 0 {
            p.empty { "No LLM calls in this range." }
        } @else {
            section { h2 { "Cost per " (bucket_name) " by model" } (charts::stacked_bars(&labels, &names, &costs, &money)) }
            section { h2 { "Tokens per " (bucket_name) " by model" } (charts::stacked_bars(&labels, &names, &tokens, &count)) }
            section {
                h2 { "Latency per " (bucket_name) }
                (charts::lines(&labels, &["p50".into(), "p90".into(), "p99".into(), "time to first token p50".into()], &over_time, &ms))
            }
            section.tables {
                div {
                    h2 { "Top models by cost" }
                    table.list #models { thead { tr { th { "Model" } th { "Provider" } th.num { "Calls" } th.num { "Tokens" } th.num { "Cost" } th.num { "p95 latency" } th.num { "Error rate" } } }
                        tbody { @for m in &by_cost { tr {
                            td { (m.model) } td { (m.provider.clone().unwrap_or_default()) } td.num { (thousands(m.calls)) }
                            td.num { (thousands(m.total_tokens)) } td.num data-value=(m.cost_usd) { (dollars(Some(m.cost_usd))) }
                            td.num { (m.p95_latency_ms.map(duration).unwrap_or_default()) } td.num { (format!("{:.1}%", m.error_rate * 100.0)) }
                        } } } }
                }
                div {
                    h2 { "Top API keys by cost" }
                    @if keys_by_cost.is_empty() { p.empty { "No calls with an API key." } } @else {
                        table.list #keys { thead { tr { th { "Key hash" } th.num { "Calls" } th.num { "Tokens" } th.num { "Cost" } } }
                            tbody { @for k in &keys_by_cost { tr {
                                td.path { (k.api_key_hash) } td.num { (thousands(k.calls)) } td.num { (thousands(k.total_tokens)) }
                                td.num data-value=(k.cost_usd) { (dollars(Some(k.cost_usd))) }
                            } } } }
                    }
                }
                div {
                    h2 { "Errors by model" }
                    table.list #errors { thead { tr { th { "Model" } th.num { "Calls" } th.num { "Errors" } th.num { "HTTP 4xx" } th.num { "HTTP 5xx" } th.num { "Rate" } } }
                        tbody { @for e in &errors { tr class=[(e.errors > 0).then_some("failed")] {
                            td { (e.group.clone().unwrap_or_default()) } td.num { (thousands(e.calls)) } td.num { (thousands(e.errors)) }
                            td.num { (thousands(e.http_4xx)) } td.num { (thousands(e.http_5xx)) } td.num { (format!("{:.1}%", e.error_rate * 100.0)) }
                        } } } }
                }
                div {
                    h2 { "Latency by model" }
                    table.list #latency { thead { tr { th { "Model" } th.num { "p50" } th.num { "p90" } th.num { "p99" } th.num { "TTFT p50" } } }
                        tbody { @for l in &latency { tr {
                            td { (l.group.clone().unwrap_or_default()) }
                            @for v in [l.p50_ms, l.p90_ms, l.p99_ms, l.ttft_p50_ms] { td.num { (v.map(duration).unwrap_or_default()) } }
                        } } } }
                }
            }
        }
    })
}

/// `GET /stats`: the stats page.
pub(crate) async fn page(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    match page_of(&api, &caller, &Params(q)).await {
        Ok(body) => super::page(
            StatusCode::OK,
            "Stats",
            Section::Stats,
            caller.holds_key(),
            body,
        ),
        Err(response) => response,
    }
}
