//! The LLM call list and one call's detail, written once over the analytics
//! [`Dialect`](crate::Dialect) and run through [`SqlQuery::query`] on every backend.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonde_model::{Body, Event, LlmCall, Timestamp};

use crate::analytics::{FAILED, Sql, read_error};
use crate::listing::encode_position;
use crate::{AnalyticsFilter, ReadError, SqlQuery};

/// Which LLM calls to list: every filter analytics takes, and ranges of latency and
/// cost.
///
/// ```
/// let filter = sonde_store::CallFilter { min_latency_ms: Some(1000.0), ..Default::default() };
/// assert_eq!(filter.limit, sonde_store::CallFilter::DEFAULT_LIMIT);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CallFilter {
    /// Tenant, time range, provider, model, keys, session, session metadata, status.
    pub calls: AnalyticsFilter,
    /// Only failed calls: status error, or HTTP 4xx / 5xx.
    pub failed: bool,
    /// Calls that took at least this long.
    pub min_latency_ms: Option<f64>,
    /// Calls that took at most this long.
    pub max_latency_ms: Option<f64>,
    /// Calls that cost at least this much (USD).
    pub min_cost_usd: Option<f64>,
    /// Calls that cost at most this much (USD).
    pub max_cost_usd: Option<f64>,
    /// Page size (at most [`CallFilter::MAX_LIMIT`]).
    pub limit: usize,
    /// Where the previous page ended ([`CallPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl CallFilter {
    /// The largest page a list returns.
    pub const MAX_LIMIT: usize = 1000;
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: usize = 50;
}

impl Default for CallFilter {
    fn default() -> Self {
        Self {
            calls: AnalyticsFilter::default(),
            failed: false,
            min_latency_ms: None,
            max_latency_ms: None,
            min_cost_usd: None,
            max_cost_usd: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One line of a call listing: the call's indexed columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    /// The call's record id.
    pub id: String,
    /// Its session.
    pub session_id: String,
    /// Its step, if any.
    pub step_id: Option<String>,
    /// Tenant organisation.
    pub org: Option<String>,
    /// Tenant workspace.
    pub workspace: Option<String>,
    /// When it was recorded.
    pub ts: Timestamp,
    /// The provider.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// `ok` or `error`.
    pub status: String,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Cache read tokens.
    pub cache_read_tokens: u64,
    /// Cache write tokens.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost: reported, else computed from the price table.
    pub cost_usd: Option<f64>,
    /// Latency.
    pub latency_ms: Option<f64>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// The HTTP status of a gateway's response.
    pub response_status: Option<i64>,
    /// The request path (gateways).
    pub request_path: Option<String>,
    /// The API key's hash.
    pub api_key_hash: Option<String>,
    /// The gateway key.
    pub gateway_key_id: Option<String>,
}

impl CallSummary {
    /// Whether the call failed: status error, or HTTP 4xx / 5xx.
    pub fn failed(&self) -> bool {
        self.status == "error" || self.response_status.is_some_and(|s| s >= 400)
    }
}

/// A page of LLM calls, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPage {
    /// The calls.
    pub calls: Vec<CallSummary>,
    /// Pass as [`CallFilter::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One LLM call whole: its listing line and the call as recorded (request, response,
/// stop reason, error, metadata).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    /// The indexed columns.
    #[serde(flatten)]
    pub summary: CallSummary,
    /// The call as recorded.
    pub call: LlmCall,
}

/// The columns of `events e` a [`CallSummary`] is read from, in its order.
fn columns(d: crate::Dialect) -> String {
    format!(
        "e.id, e.session_id, e.step_id, e.org, e.workspace, {} AS ts, e.provider, e.model,
         e.status, e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens,
         e.reasoning_tokens, e.total_tokens, e.cost_usd, e.latency_ms, e.ttft_ms,
         e.response_status, e.request_path, e.api_key_hash, e.gateway_key_id",
        d.ts_micros()
    )
}

const COLUMNS: usize = 22;

fn summary(row: &[Value]) -> Result<CallSummary, ReadError> {
    if row.len() < COLUMNS {
        return Err(ReadError::Corrupt {
            id: "events".into(),
            reason: format!("expected {COLUMNS} columns, got {}", row.len()),
        });
    }
    let text = |i: usize| row[i].as_str().map(str::to_owned);
    let int = |i: usize| {
        row[i]
            .as_i64()
            .or_else(|| row[i].as_f64().map(|f| f as i64))
    };
    let count = |i: usize| int(i).unwrap_or(0).max(0) as u64;
    let real = |i: usize| row[i].as_f64();
    Ok(CallSummary {
        id: text(0).unwrap_or_default(),
        session_id: text(1).unwrap_or_default(),
        step_id: text(2),
        org: text(3),
        workspace: text(4),
        ts: Timestamp::from_micros(int(5).unwrap_or(0)),
        provider: text(6),
        model: text(7),
        status: text(8).unwrap_or_default(),
        input_tokens: count(9),
        output_tokens: count(10),
        cache_read_tokens: count(11),
        cache_write_tokens: count(12),
        reasoning_tokens: count(13),
        total_tokens: count(14),
        cost_usd: real(15),
        latency_ms: real(16),
        ttft_ms: real(17),
        response_status: int(18),
        request_path: text(19),
        api_key_hash: text(20),
        gateway_key_id: text(21),
    })
}

/// A page of LLM calls matching `filter`, newest first.
pub(crate) async fn list_calls(
    store: &(impl SqlQuery + ?Sized),
    filter: &CallFilter,
) -> Result<CallPage, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let d = sql.dialect;
    let mut clauses = vec![sql.filter(&filter.calls)];
    if filter.failed {
        clauses.push(FAILED.to_owned());
    }
    for (bound, column, op) in [
        (filter.min_latency_ms, "e.latency_ms", ">="),
        (filter.max_latency_ms, "e.latency_ms", "<="),
        (filter.min_cost_usd, "e.cost_usd", ">="),
        (filter.max_cost_usd, "e.cost_usd", "<="),
    ] {
        if let Some(bound) = bound {
            let p = sql.param(bound);
            clauses.push(format!("{column} {op} {}", d.real(&p)));
        }
    }
    if let Some(cursor) = &filter.cursor {
        let (at, id) = crate::listing::decode_position(cursor)?;
        let (a, b, i) = (sql.param(at), sql.param(at), sql.param(id));
        clauses.push(format!(
            "(e.ts < {} OR (e.ts = {} AND {} < {}))",
            d.ts_param(&a),
            d.ts_param(&b),
            d.bytewise("e.id"),
            d.bytewise(&d.text(&i)),
        ));
    }
    let limit = filter.limit.clamp(1, CallFilter::MAX_LIMIT);
    let limit_param = sql.param(limit as i64 + 1);
    let query = format!(
        "SELECT {} FROM events e WHERE {} ORDER BY e.ts DESC, {} DESC LIMIT {limit_param}",
        columns(d),
        clauses.join(" AND "),
        d.bytewise("e.id"),
    );
    let result = store.query(&query, &sql.params).await.map_err(read_error)?;
    let mut calls = result
        .rows
        .iter()
        .map(|r| summary(r))
        .collect::<Result<Vec<_>, _>>()?;
    calls.sort_by(|a, b| (b.ts, b.id.as_bytes()).cmp(&(a.ts, a.id.as_bytes())));
    let next_cursor = if calls.len() > limit {
        calls.truncate(limit);
        calls
            .last()
            .map(|c| encode_position(c.ts.as_micros(), &c.id))
    } else {
        None
    };
    Ok(CallPage { calls, next_cursor })
}

/// The LLM call with record id `id`, if it exists in `scope`.
pub(crate) async fn get_call(
    store: &(impl SqlQuery + ?Sized),
    id: &str,
    scope: &crate::Scope,
) -> Result<Option<CallDetail>, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let d = sql.dialect;
    let filter = sql.filter(&AnalyticsFilter {
        scope: scope.clone(),
        ..Default::default()
    });
    let p = d.text(&sql.param(id.to_owned()));
    let found = match d {
        // Through the hash index (`record_keys.rs`).
        crate::Dialect::Sqlite => {
            let hash = sql.param(crate::record_keys::id_hash(id));
            crate::record_keys::sqlite_lookup("e.", &hash, &p, None)
        }
        crate::Dialect::Postgres => format!("e.id = {p}"),
    };
    let query = format!(
        "SELECT {}, e.kind, {} AS payload FROM events e WHERE {filter} AND {found} LIMIT 2",
        columns(d),
        d.payload("e.payload"),
    );
    let result = store.query(&query, &sql.params).await.map_err(read_error)?;
    let row = match result.rows.as_slice() {
        [] => return Ok(None),
        [row] => row,
        // Two tenants use the id, and the scope sees both.
        rows => {
            return Err(ReadError::AmbiguousId {
                id: id.to_owned(),
                tenants: rows.len(),
            });
        }
    };
    let summary = summary(row)?;
    let kind = row.get(COLUMNS).and_then(Value::as_str).unwrap_or_default();
    let payload = match row.get(COLUMNS + 1) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let corrupt = |reason: String| ReadError::Corrupt {
        id: id.to_owned(),
        reason,
    };
    match Body::from_kind_and_payload(kind, &payload).map_err(|e| corrupt(e.to_string()))? {
        Body::Event(Event::Llm(call)) => Ok(Some(CallDetail { summary, call })),
        other => Err(corrupt(format!(
            "expected an LLM call, got {}",
            other.kind()
        ))),
    }
}
