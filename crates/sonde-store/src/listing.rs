//! The session list, written once over the analytics [`Dialect`](crate::Dialect) and run
//! through [`SqlQuery::query`] on every backend.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonde_model::{Metadata, Timestamp};

use crate::analytics::{Sql, read_error};
use crate::{ReadError, Scope, SqlQuery};

/// Which sessions to list.
///
/// ```
/// let filter = sonde_store::SessionFilter { model: Some("gpt-5".into()), limit: 20, ..Default::default() };
/// assert!(filter.cursor.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFilter {
    /// Tenant visibility.
    pub scope: Scope,
    /// Sessions that started at or after this instant.
    pub since: Option<Timestamp>,
    /// Sessions that started before this instant.
    pub until: Option<Timestamp>,
    /// Sessions whose metadata has `key` equal to `value` (a JSON value: strings
    /// match strings, numbers match numbers).
    pub metadata: Vec<(String, Value)>,
    /// Sessions with at least one LLM call to this model.
    pub model: Option<String>,
    /// Page size (at most [`SessionFilter::MAX_LIMIT`]).
    pub limit: usize,
    /// Where the previous page ended ([`SessionPage::next_cursor`]).
    pub cursor: Option<String>,
}

impl SessionFilter {
    /// The largest page a list returns.
    pub const MAX_LIMIT: usize = 1000;
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: usize = 50;
}

impl Default for SessionFilter {
    fn default() -> Self {
        Self {
            scope: Scope::All,
            since: None,
            until: None,
            metadata: Vec::new(),
            model: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One line of a session listing.
///
/// ```
/// # use sonde_store::SessionSummary;
/// fn cost(s: &SessionSummary) -> f64 { s.cost_usd.unwrap_or(0.0) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    pub session_id: String,
    /// Tenant organisation.
    pub org: Option<String>,
    /// Tenant workspace.
    pub workspace: Option<String>,
    /// The earliest record of the session.
    pub started_at: Timestamp,
    /// The `session_ended` record, if any.
    pub ended_at: Option<Timestamp>,
    /// The latest record of the session.
    pub last_at: Timestamp,
    /// Events of every type.
    pub events: u64,
    /// LLM calls.
    pub llm_calls: u64,
    /// Messages.
    pub messages: u64,
    /// Tokens of every kind over all LLM calls.
    pub total_tokens: u64,
    /// Sum of the LLM calls' costs (each the reported cost, else the one computed from
    /// the price table), if any call has one.
    pub cost_usd: Option<f64>,
    /// Models called, sorted.
    pub models: Vec<String>,
    /// Session metadata.
    pub metadata: Metadata,
}

/// A page of sessions, newest first.
///
/// ```
/// let page = sonde_store::SessionPage { sessions: vec![], next_cursor: None };
/// assert!(page.next_cursor.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPage {
    /// The sessions.
    pub sessions: Vec<SessionSummary>,
    /// Pass as [`SessionFilter::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl SessionPage {
    /// A page from up to `limit + 1` sessions fetched in order: the extra one, when
    /// present, only says that there is a next page.
    pub(crate) fn cut(mut sessions: Vec<SessionSummary>, limit: usize) -> Self {
        let next_cursor = if sessions.len() > limit {
            sessions.truncate(limit);
            sessions.last().map(|s| {
                Cursor {
                    started_at: s.started_at.as_micros(),
                    session_id: s.session_id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        Self {
            sessions,
            next_cursor,
        }
    }
}

/// The models of a session listing, as the backends aggregate them: one string,
/// separated by the ASCII unit separator.
pub(crate) fn split_models(models: Option<String>) -> Vec<String> {
    models
        .map(|m| m.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The position after the last session of a page: `(started_at, session_id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub started_at: i64,
    pub session_id: String,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(&(self.started_at, &self.session_id)).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub(crate) fn decode(text: &str) -> Result<Self, ReadError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| ReadError::InvalidCursor)?;
        let (started_at, session_id): (i64, String) =
            serde_json::from_slice(&bytes).map_err(|_| ReadError::InvalidCursor)?;
        Ok(Self {
            started_at,
            session_id,
        })
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// A page of sessions matching `filter`, newest first.
pub(crate) async fn list_sessions(
    store: &(impl SqlQuery + ?Sized),
    filter: &SessionFilter,
) -> Result<SessionPage, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let d = sql.dialect;
    let mut clauses = Vec::new();
    if let Scope::Tenant { org, workspace } = &filter.scope {
        let (o, w) = (sql.param(org.clone()), sql.param(workspace.clone()));
        clauses.push(format!(
            "s.org = {} AND s.workspace = {}",
            d.text(&o),
            d.text(&w)
        ));
    }
    if let Some(since) = filter.since {
        let p = sql.param(since.as_micros());
        clauses.push(format!("s.started_at >= {}", d.ts_param(&p)));
    }
    if let Some(until) = filter.until {
        let p = sql.param(until.as_micros());
        clauses.push(format!("s.started_at < {}", d.ts_param(&p)));
    }
    for (key, value) in &filter.metadata {
        clauses.push(sql.metadata_clause(key, value));
    }
    if let Some(model) = &filter.model {
        let p = sql.param(model.clone());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.session_id AND e.model = {})",
            d.text(&p)
        ));
    }
    if let Some(cursor) = &filter.cursor {
        let cursor = Cursor::decode(cursor)?;
        let (at, again) = (sql.param(cursor.started_at), sql.param(cursor.started_at));
        let id = sql.param(cursor.session_id);
        clauses.push(format!(
            "(s.started_at < {} OR (s.started_at = {} AND {} < {}))",
            d.ts_param(&at),
            d.ts_param(&again),
            d.bytewise("s.session_id"),
            d.bytewise(&d.text(&id)),
        ));
    }
    let limit = filter.limit.clamp(1, SessionFilter::MAX_LIMIT);
    let limit_param = sql.param(limit as i64 + 1);
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let query = format!(
        "SELECT s.session_id AS session_id, s.org AS org, s.workspace AS workspace,
                {} AS started_at, {} AS ended_at, {} AS last_at,
                s.event_count AS event_count, s.llm_calls AS llm_calls,
                s.message_count AS message_count, s.total_tokens AS total_tokens,
                s.cost_usd AS cost_usd, s.metadata AS metadata,
                (SELECT {} FROM (SELECT DISTINCT e.model AS model FROM events e
                    WHERE e.session_id = s.session_id AND e.model IS NOT NULL) m) AS models
         FROM sessions s {where_sql}
         ORDER BY s.started_at DESC, {} DESC
         LIMIT {limit_param}",
        d.session_micros("started_at"),
        d.session_micros("ended_at"),
        d.session_micros("last_at"),
        d.joined("m.model"),
        d.bytewise("s.session_id"),
    );
    let result = store.query(&query, &sql.params).await.map_err(read_error)?;
    let mut sessions = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        let [
            session_id,
            org,
            workspace,
            started_at,
            ended_at,
            last_at,
            events,
            llm_calls,
            messages,
            total_tokens,
            cost_usd,
            metadata,
            models,
        ] = row.as_slice()
        else {
            return Err(ReadError::Corrupt {
                id: "sessions".into(),
                reason: format!("expected 13 columns, got {}", row.len()),
            });
        };
        let session_id = text(session_id).unwrap_or_default();
        // SQLite gives the metadata as JSON text, PostgreSQL as JSON.
        let metadata = match metadata {
            Value::String(json) => serde_json::from_str(json).map_err(|e| ReadError::Corrupt {
                id: session_id.clone(),
                reason: e.to_string(),
            })?,
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let mut models = split_models(text(models));
        models.sort();
        sessions.push(SessionSummary {
            session_id,
            org: text(org),
            workspace: text(workspace),
            started_at: Timestamp::from_micros(int(started_at)),
            ended_at: (!ended_at.is_null()).then(|| Timestamp::from_micros(int(ended_at))),
            last_at: Timestamp::from_micros(int(last_at)),
            events: int(events).max(0) as u64,
            llm_calls: int(llm_calls).max(0) as u64,
            messages: int(messages).max(0) as u64,
            total_tokens: int(total_tokens).max(0) as u64,
            cost_usd: cost_usd.as_f64(),
            metadata,
            models,
        });
    }
    // The order the SQL gave, made sure of (PostgreSQL's row_to_json wrapper keeps it in
    // practice, not by contract).
    sessions.sort_by(|a, b| {
        (b.started_at, b.session_id.as_bytes()).cmp(&(a.started_at, a.session_id.as_bytes()))
    });
    Ok(SessionPage::cut(sessions, limit))
}
