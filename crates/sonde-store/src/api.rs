//! The `TraceStore` trait and the types its operations take and return.

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonde_model::{Metadata, Record, SessionTrace, Timestamp};

use crate::analytics::{
    self, AnalyticsFilter, Bucket, Dialect, ErrorStats, GroupBy, KeyStats, LatencyStats,
    ModelStats, SeriesPoint, UsageSummary,
};
use crate::{QueryError, ReadError, WriteError};

/// Which tenant an operation may see.
///
/// ```
/// use sonde_store::Scope;
/// assert!(Scope::All.allows(Some("acme"), None));
/// let acme = Scope::tenant("acme", "prod");
/// assert!(acme.allows(Some("acme"), Some("prod")));
/// assert!(!acme.allows(Some("globex"), Some("prod")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant (the local CLI, an admin key).
    #[default]
    All,
    /// One org / workspace.
    Tenant {
        /// The organisation.
        org: String,
        /// The workspace.
        workspace: String,
    },
}

impl Scope {
    /// The scope of one tenant.
    ///
    /// ```
    /// assert_ne!(sonde_store::Scope::tenant("a", "b"), sonde_store::Scope::All);
    /// ```
    pub fn tenant(org: impl Into<String>, workspace: impl Into<String>) -> Self {
        Scope::Tenant {
            org: org.into(),
            workspace: workspace.into(),
        }
    }

    /// Whether data of `org` / `workspace` is visible in this scope.
    ///
    /// ```
    /// assert!(!sonde_store::Scope::tenant("a", "b").allows(None, None));
    /// ```
    pub fn allows(&self, org: Option<&str>, workspace: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant {
                org: o,
                workspace: w,
            } => org == Some(o.as_str()) && workspace == Some(w.as_str()),
        }
    }
}

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

/// What a write did.
///
/// ```
/// let o = sonde_store::WriteOutcome { written: 3, duplicates: 1 };
/// assert_eq!(o.written + o.duplicates, 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// Records stored for the first time.
    pub written: usize,
    /// Records whose id was already stored (left as they were).
    pub duplicates: usize,
}

impl std::ops::AddAssign for WriteOutcome {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.duplicates += other.duplicates;
    }
}

/// The rows of a raw SQL query, columns in the order the query gives them.
///
/// ```
/// let r = sonde_store::QueryResult { columns: vec!["n".into()], rows: vec![vec![1.into()]] };
/// assert_eq!(r.to_objects()[0]["n"], 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// Each row as a JSON object keyed by column name.
    ///
    /// ```
    /// assert!(sonde_store::QueryResult::default().to_objects().is_empty());
    /// ```
    pub fn to_objects(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

/// One row of [`TraceStore::read_values`]: the group's text columns and its values.
pub type GroupValues = (Vec<Option<String>>, Vec<f64>);

/// A place where records are kept and can be asked about.
///
/// Every backend passes the same conformance tests: writing is idempotent by record id,
/// [`TraceStore::get_session`] returns every step, event, message and reward, and
/// [`TraceStore::query`] never changes anything.
///
/// ```
/// # async fn demo(store: &dyn sonde_store::TraceStore) -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_model::*;
/// let record = Record::new(Context::session("s-1"), Body::SessionStarted(SessionStarted::default()));
/// store.write(&[record.clone(), record]).await?; // stored once
/// let session = store.get_session("s-1", &sonde_store::Scope::All).await?;
/// assert!(session.is_some());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait TraceStore: Send + Sync + 'static {
    /// The backend's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Stores records in one transaction. A record whose id is already stored is left
    /// as it is and counted as a duplicate.
    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError>;

    /// Stores records in one transaction, replacing any stored record with the same id
    /// (its counts and roll-ups with it). For sources that learn more about a record
    /// later, such as a streamed response whose usage grows; lifecycle records
    /// (`session_*`, `step_*`) are kept as first stored, as [`TraceStore::write`] does.
    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError>;

    /// The whole session — steps, events, messages, rewards — if it exists in `scope`.
    async fn get_session(
        &self,
        session_id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError>;

    /// A page of sessions matching `filter`, newest first. Written once over the
    /// backend's [`Dialect`] and run through [`TraceStore::query`].
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<SessionPage, ReadError> {
        crate::listing::list_sessions(self, filter).await
    }

    /// Deletes everything of the session; false if it did not exist in `scope`.
    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError>;

    /// Runs one read-only SQL statement with positional parameters (`?1`, `$1`).
    /// Anything that could write is refused before it runs.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError>;

    /// Runs one read-only SQL statement whose last column is packed values (8-byte
    /// big-endian doubles, as the latency runs store them and `float8send` writes them)
    /// and whose other columns are text: each row's group and its values, unpacked.
    /// The exact percentiles read their values through it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sonde_store::TraceStore;
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// let rows = store.read_values("SELECT 'a', x'3ff8000000000000'", &[]).await.unwrap();
    /// assert_eq!(rows, vec![(vec![Some("a".to_owned())], vec![1.5])]);
    /// # }
    /// ```
    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<GroupValues>, QueryError>;

    /// The SQL dialect the analytics queries are written in for this backend.
    fn dialect(&self) -> Dialect;

    /// Stores a new API key (its secret's hash, never the secret).
    async fn create_api_key(&self, key: &crate::ApiKey) -> Result<(), WriteError>;

    /// Revokes an API key; false if there is no active key with this id.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError>;

    /// The sync cursors stored for `source` (such as `claude` or `codex`): each file's
    /// [`crate::SyncCursor::position`], by path.
    async fn sync_cursors(
        &self,
        source: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ReadError> {
        let rows = self
            .query(
                "SELECT path, cursor FROM sync_cursors WHERE source = ?1",
                &[Value::from(source)],
            )
            .await
            .map_err(analytics::read_error)?;
        Ok(rows
            .rows
            .iter()
            .filter_map(|r| match (r.first(), r.get(1)) {
                (Some(Value::String(path)), Some(Value::String(cursor))) => {
                    Some((path.clone(), cursor.clone()))
                }
                _ => None,
            })
            .collect())
    }

    /// The parser state stored with one file's sync cursor, if any.
    async fn sync_state(&self, source: &str, path: &str) -> Result<Option<String>, ReadError> {
        let rows = self
            .query(
                "SELECT state FROM sync_states WHERE source = ?1 AND path = ?2",
                &[Value::from(source), Value::from(path)],
            )
            .await
            .map_err(analytics::read_error)?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Stores sync cursors for `source` in one transaction, replacing those stored for
    /// the same paths.
    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[crate::SyncCursor],
    ) -> Result<(), WriteError>;

    /// Every API key, oldest first.
    async fn api_keys(&self) -> Result<Vec<crate::ApiKey>, ReadError> {
        let sql = format!(
            "SELECT {} FROM api_keys ORDER BY created_at, id",
            crate::keys::KEY_COLUMNS
        );
        let rows = self.query(&sql, &[]).await.map_err(analytics::read_error)?;
        Ok(rows
            .rows
            .iter()
            .filter_map(|r| crate::keys::key_from_json(r))
            .collect())
    }

    /// The active key whose secret this is, if any.
    async fn find_api_key(&self, secret: &str) -> Result<Option<crate::ApiKey>, ReadError> {
        let sql = format!(
            "SELECT {} FROM api_keys WHERE secret_hash = ?1 AND revoked_at IS NULL",
            crate::keys::KEY_COLUMNS
        );
        let hash = crate::ApiKey::hash(secret);
        let rows = self
            .query(&sql, &[Value::from(hash)])
            .await
            .map_err(analytics::read_error)?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| crate::keys::key_from_json(r)))
    }

    /// Whether any active API key exists (then the server requires one).
    async fn has_api_keys(&self) -> Result<bool, ReadError> {
        let rows = self
            .query(
                "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
                &[],
            )
            .await
            .map_err(analytics::read_error)?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0)
    }

    /// Usage and cost totals of the LLM calls matching `filter`.
    async fn usage_summary(&self, filter: &AnalyticsFilter) -> Result<UsageSummary, ReadError> {
        analytics::usage_summary(self, filter).await
    }

    /// Usage and cost per time bucket and group, oldest first.
    async fn usage_series(
        &self,
        filter: &AnalyticsFilter,
        group_by: GroupBy,
        bucket: Bucket,
    ) -> Result<Vec<SeriesPoint>, ReadError> {
        analytics::usage_series(self, filter, group_by, bucket).await
    }

    /// Per provider and model, most calls first.
    async fn model_stats(&self, filter: &AnalyticsFilter) -> Result<Vec<ModelStats>, ReadError> {
        analytics::model_stats(self, filter).await
    }

    /// Per API key hash (calls without one left out), most calls first.
    async fn key_stats(&self, filter: &AnalyticsFilter) -> Result<Vec<KeyStats>, ReadError> {
        analytics::key_stats(self, filter).await
    }

    /// Exact latency and time-to-first-token percentiles per group.
    async fn latency_percentiles(
        &self,
        filter: &AnalyticsFilter,
        group_by: GroupBy,
    ) -> Result<Vec<LatencyStats>, ReadError> {
        analytics::latency_percentiles(self, filter, group_by).await
    }

    /// Failed calls and HTTP 4xx / 5xx per group.
    async fn error_rates(
        &self,
        filter: &AnalyticsFilter,
        group_by: GroupBy,
    ) -> Result<Vec<ErrorStats>, ReadError> {
        analytics::error_rates(self, filter, group_by).await
    }
}
