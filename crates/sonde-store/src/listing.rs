//! The session list, written once over the analytics [`Dialect`](crate::Dialect) and run
//! through [`SqlQuery::query`] on every backend.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonde_model::{Metadata, Timestamp};

use crate::analytics::{FAILED, Sql, read_error};
use crate::{Dialect, ReadError, Scope, SqlQuery};

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
    /// Sessions with at least one LLM call to this provider.
    pub provider: Option<String>,
    /// Sessions that have each word of this search in one of their records (see
    /// [`crate::search`]); a search without words filters nothing.
    pub search: Option<String>,
    /// Only sessions with a failed event (status error, or HTTP 4xx / 5xx).
    pub has_errors: bool,
    /// Sessions that cost at least this much (USD).
    pub min_cost_usd: Option<f64>,
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
            provider: None,
            search: None,
            has_errors: false,
            min_cost_usd: None,
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
    /// Tool calls (runtime events).
    pub tool_calls: u64,
    /// Tokens of every kind over all LLM calls.
    pub total_tokens: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Cache read tokens.
    pub cache_read_tokens: u64,
    /// Cache write tokens.
    pub cache_write_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Failed events: status error, or HTTP 4xx / 5xx.
    pub errors: u64,
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
        encode_position(self.started_at, &self.session_id)
    }

    pub(crate) fn decode(text: &str) -> Result<Self, ReadError> {
        let (started_at, session_id) = decode_position(text)?;
        Ok(Self {
            started_at,
            session_id,
        })
    }
}

/// A page cursor: a position `(micros, id)` in a list ordered by time and id, as
/// URL-safe text.
pub(crate) fn encode_position(micros: i64, id: &str) -> String {
    let json = serde_json::to_vec(&(micros, id)).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The position [`encode_position`] wrote.
pub(crate) fn decode_position(text: &str) -> Result<(i64, String), ReadError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| ReadError::InvalidCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| ReadError::InvalidCursor)
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The sessions listing's statement over `from` (the sessions as `s`) with `where_sql`,
/// newest first, at most `limit_param` rows.
fn sessions_query(d: Dialect, from: &str, where_sql: &str, limit_param: &str) -> String {
    format!(
        "SELECT s.session_id AS session_id, s.org AS org, s.workspace AS workspace,
                {} AS started_at, {} AS ended_at, {} AS last_at,
                s.event_count AS event_count, s.llm_calls AS llm_calls,
                s.message_count AS message_count, s.total_tokens AS total_tokens,
                s.cost_usd AS cost_usd, s.metadata AS metadata,
                (SELECT {} FROM (SELECT DISTINCT e.model AS model FROM events e
                    WHERE e.session_id = s.session_id AND e.tenant = s.tenant
                      AND e.model IS NOT NULL) m) AS models
         FROM {from} {where_sql}
         ORDER BY s.started_at DESC, {} DESC
         LIMIT {limit_param}",
        d.session_micros("started_at"),
        d.session_micros("ended_at"),
        d.session_micros("last_at"),
        d.joined("m.model"),
        d.bytewise("s.session_id"),
    )
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
    for (column, value) in [("model", &filter.model), ("provider", &filter.provider)] {
        if let Some(value) = value {
            let p = sql.param(value.clone());
            clauses.push(format!(
                "EXISTS (SELECT 1 FROM {} WHERE e.session_id = s.session_id AND e.tenant = s.tenant
                     AND e.{column} = {})",
                d.events_of_session(),
                d.text(&p)
            ));
        }
    }
    let mut word_params = Vec::new();
    for word in crate::search::words(filter.search.as_deref().unwrap_or_default()) {
        word_params.push(sql.param(crate::search::quoted(d, &word)));
    }
    if filter.has_errors {
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM {} WHERE e.session_id = s.session_id AND e.tenant = s.tenant
                 AND {FAILED})",
            d.events_of_session()
        ));
    }
    if let Some(min) = filter.min_cost_usd {
        let p = sql.param(min);
        clauses.push(format!("s.cost_usd >= {}", d.real(&p)));
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
    let where_of = |clauses: &[String]| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        }
    };
    let mut result = None;
    if d == Dialect::Sqlite && !word_params.is_empty() {
        // Common words first probe the newest sessions one by one (see
        // `search::session_probe`): a page of them is found among the newest few
        // thousand; when it is not, the words are rare and the sets of sessions holding
        // them are small, so the search gathers those instead.
        let window = format!(
            "(SELECT * FROM sessions s {} ORDER BY s.started_at DESC, s.session_id DESC
              LIMIT {}) s",
            where_of(&clauses),
            crate::search::PROBED_SESSIONS
        );
        let probed = store
            .query(
                &sessions_query(
                    d,
                    &window,
                    &where_of(
                        &word_params
                            .iter()
                            .map(|p| crate::search::session_probe(p))
                            .collect::<Vec<_>>(),
                    ),
                    &limit_param,
                ),
                &sql.params,
            )
            .await
            .map_err(read_error)?;
        if probed.rows.len() > limit {
            result = Some(probed);
        }
    }
    let result = match result {
        Some(result) => result,
        None => store
            .query(
                &sessions_query(
                    d,
                    "sessions s",
                    &where_of(
                        &clauses
                            .iter()
                            .cloned()
                            .chain(
                                word_params
                                    .iter()
                                    .map(|p| crate::search::session_clause(d, p)),
                            )
                            .collect::<Vec<_>>(),
                    ),
                    &limit_param,
                ),
                &sql.params,
            )
            .await
            .map_err(read_error)?,
    };
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
            tool_calls: 0,
            input_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 0,
            errors: 0,
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
    let mut page = SessionPage::cut(sessions, limit);
    add_event_counts(store, &mut page.sessions).await?;
    Ok(page)
}

/// Fills in the tool calls, token kinds and errors of `sessions`, in one query over
/// their events.
async fn add_event_counts(
    store: &(impl SqlQuery + ?Sized),
    sessions: &mut [SessionSummary],
) -> Result<(), ReadError> {
    if sessions.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(store.dialect());
    let d = sql.dialect;
    let ids: Vec<String> = sessions
        .iter()
        .map(|s| d.text(&sql.param(s.session_id.clone())))
        .collect();
    let query = format!(
        "SELECT e.session_id AS c0, e.tenant AS c7,
                sum(CASE WHEN e.event_type = 'runtime' THEN 1 ELSE 0 END) AS c1,
                CAST(sum(e.input_tokens) AS BIGINT) AS c2,
                CAST(sum(e.cache_read_tokens) AS BIGINT) AS c3,
                CAST(sum(e.cache_write_tokens) AS BIGINT) AS c4,
                CAST(sum(e.output_tokens) AS BIGINT) AS c5,
                sum(CASE WHEN {FAILED} THEN 1 ELSE 0 END) AS c6
         FROM events e WHERE e.session_id IN ({}) GROUP BY e.session_id, e.tenant",
        ids.join(", ")
    );
    let result = store.query(&query, &sql.params).await.map_err(read_error)?;
    for row in &result.rows {
        let (Some(id), Some(tenant)) = (
            row.first().and_then(Value::as_str),
            row.get(1).and_then(Value::as_str),
        ) else {
            continue;
        };
        // Columns after the tenant, counted as the aliases number them.
        let n = |i: usize| row.get(i + 1).map_or(0, |v| int(v).max(0) as u64);
        if let Some(s) = sessions.iter_mut().find(|s| {
            s.session_id == id
                && crate::tenancy::tenant_key(s.org.as_deref(), s.workspace.as_deref()) == tenant
        }) {
            s.tool_calls = n(1);
            s.input_tokens = n(2);
            s.cache_read_tokens = n(3);
            s.cache_write_tokens = n(4);
            s.output_tokens = n(5);
            s.errors = n(6);
        }
    }
    Ok(())
}
