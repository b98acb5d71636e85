//! What a store can do, one trait per capability — records, read-only SQL, API keys,
//! sync cursors, analytics — and [`TraceStore`], the store that can do all of it.
//!
//! A backend implements [`SqlQuery`], [`KeyStore`] and [`CursorStore`], and its records
//! as rows (a crate-private `RowStore`, which [`RecordStore`] is written over);
//! [`Analytics`] and the reads of the others are written once over [`SqlQuery`]. Every type that has all five is a
//! [`TraceStore`], and `Arc<dyn TraceStore>` calls any of their methods.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sonde_model::{Record, SessionTrace};

use crate::analytics::{
    self, AnalyticsFilter, Bucket, Dialect, ErrorStats, GroupBy, KeyStats, LatencyOverview,
    LatencyPoint, LatencyStats, ModelStats, SeriesPoint, UsageSummary,
};
use crate::rows::{RecordRow, WriteMode};
use crate::{
    ApiKey, CallPricer, QueryError, ReadError, Scope, SessionFilter, SessionPage, SyncCursor,
    WriteError,
};

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

/// How long a statement from outside (the query endpoint, `sonde query`) may run before
/// it is stopped: long enough for an analytical query over a large store, short enough
/// that a runaway one (a recursive CTE, `pg_sleep`) frees its connection soon.
pub const DEFAULT_STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most rows a statement from outside may return.
pub const DEFAULT_MAX_ROWS: usize = 100_000;

/// The most bytes of values a statement from outside may return (text and numbers as
/// read, blobs as their hex text). A 245 MB answer once took a server to 2.6 GB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 32 * 1024 * 1024;

/// The limits on one statement from outside ([`SqlQuery::query_limited`]).
///
/// ```
/// let limits = sonde_store::QueryLimits::default();
/// assert_eq!(limits.timeout, sonde_store::DEFAULT_STATEMENT_TIMEOUT);
/// assert_eq!(limits.max_rows, sonde_store::DEFAULT_MAX_ROWS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// How long the statement may run; it is interrupted then
    /// ([`QueryError::Timeout`]).
    pub timeout: std::time::Duration,
    /// The most rows it may return ([`QueryError::TooLarge`]).
    pub max_rows: usize,
    /// The most bytes of values it may return ([`QueryError::TooLarge`]).
    pub max_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_STATEMENT_TIMEOUT,
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// Counts a result's rows and bytes against [`QueryLimits`] as they are read.
pub(crate) struct ResultBudget {
    limits: Option<QueryLimits>,
    rows: usize,
    bytes: usize,
}

impl ResultBudget {
    /// A budget for `limits` (none: unlimited).
    pub(crate) fn new(limits: Option<&QueryLimits>) -> Self {
        Self {
            limits: limits.copied(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Counts one more row of `bytes` bytes; the error once over a cap.
    pub(crate) fn take(&mut self, bytes: usize) -> Result<(), QueryError> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.rows > limits.max_rows {
            return Err(QueryError::TooLarge {
                what: "row",
                limit: limits.max_rows,
            });
        }
        if self.bytes > limits.max_bytes {
            return Err(QueryError::TooLarge {
                what: "byte",
                limit: limits.max_bytes,
            });
        }
        Ok(())
    }
}

/// The bytes a JSON value counts for in a [`ResultBudget`].
pub(crate) fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        other => other.to_string().len(),
    }
}

/// One row of [`SqlQuery::read_values`]: the group's text columns and its values, as
/// the runs they were stored in, each sorted.
pub type GroupValues = (Vec<Option<String>>, crate::SortedRuns);

/// Read-only SQL: the capability the others' reads are written over.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sonde_store::SqlQuery;
/// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
/// let rows = store.query("SELECT 1 AS n", &[]).await.unwrap();
/// assert_eq!(rows.to_objects()[0]["n"], 1);
/// assert!(store.query("DELETE FROM events", &[]).await.is_err());
/// # }
/// ```
#[async_trait]
pub trait SqlQuery: Send + Sync + 'static {
    /// The backend's name: `sqlite` or `postgres`, its [`Dialect`]'s.
    fn backend(&self) -> &'static str {
        self.dialect().name()
    }

    /// The SQL dialect the analytics queries are written in for this backend.
    fn dialect(&self) -> Dialect;

    /// Which database this is (a random id stored in it, and its URL without
    /// password), or `None` for a store that keeps no id. The writer's spool records it
    /// and is never replayed into another database.
    fn database(&self) -> Option<&crate::DatabaseIdentity> {
        None
    }

    /// Runs one read-only SQL statement with positional parameters (`?1`, `$1`).
    /// Anything that could write is refused before it runs.
    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError>;

    /// Runs one read-only statement from outside (the query endpoint, `sonde query`)
    /// within `limits`: it is stopped when it runs longer than `limits.timeout`
    /// ([`QueryError::Timeout`]) and refused once its result is over a cap
    /// ([`QueryError::TooLarge`]). It runs on connections of its own, so that it never
    /// holds up writes, key lookups or the store's own reads.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sonde_store::{QueryError, QueryLimits, SqlQuery};
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// let limits = QueryLimits { max_rows: 2, ..Default::default() };
    /// let err = store.query_limited("VALUES (1), (2), (3)", &[], &limits).await.unwrap_err();
    /// assert_eq!(err, QueryError::TooLarge { what: "row", limit: 2 });
    /// # }
    /// ```
    async fn query_limited(
        &self,
        sql: &str,
        params: &[Value],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError>;

    /// Runs one read-only SQL statement whose last column is packed values (8-byte
    /// big-endian doubles, as the latency runs store them and `float8send` writes them)
    /// and whose other columns are text: each distinct group once, with the values of
    /// all its rows, unpacked, each row's values a sorted run.
    /// The exact percentiles read their values through it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sonde_store::SqlQuery;
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// let rows = store
    ///     .read_values(
    ///         "SELECT 'a', x'3ff8000000000000' UNION ALL SELECT 'b', x'4000000000000000'
    ///          UNION ALL SELECT 'a', x'4004000000000000'",
    ///         &[],
    ///     )
    ///     .await
    ///     .unwrap();
    /// let group = |g: &str| vec![Some(g.to_owned())];
    /// assert_eq!(rows[0].0, group("a"));
    /// assert_eq!(rows[0].1.values(), [1.5, 2.5]);
    /// assert_eq!(rows[1].0, group("b"));
    /// assert_eq!(rows[1].1.values(), [2.0]);
    /// # }
    /// ```
    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<GroupValues>, QueryError>;
}

/// Records: written idempotently by id, read back as whole sessions, listed, deleted.
///
/// Every backend passes the same conformance tests: writing is idempotent by record id,
/// [`RecordStore::get_session`] returns every step, event, message and reward.
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
pub trait RecordStore: SqlQuery {
    /// Stores records in one transaction. A record whose id is already stored is left
    /// as it is and counted as a duplicate.
    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError>;

    /// Stores records in one transaction, replacing any stored record with the same id
    /// (its counts and roll-ups with it). For sources that learn more about a record
    /// later, such as a streamed response whose usage grows; lifecycle records
    /// (`session_*`, `step_*`) are kept as first stored, as [`RecordStore::write`] does.
    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError>;

    /// The whole session — steps, events, messages, rewards — if it exists in `scope`.
    async fn get_session(
        &self,
        session_id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError>;

    /// A page of sessions matching `filter`, newest first. Written once over the
    /// backend's [`Dialect`] and run through [`SqlQuery::query`].
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<SessionPage, ReadError> {
        crate::listing::list_sessions(self, filter).await
    }

    /// A page of LLM calls matching `filter`, newest first. Written once over the
    /// backend's [`Dialect`] and run through [`SqlQuery::query`].
    async fn list_calls(&self, filter: &crate::CallFilter) -> Result<crate::CallPage, ReadError> {
        crate::calls::list_calls(self, filter).await
    }

    /// The LLM call with record id `id`, whole, if it exists in `scope`.
    async fn get_call(
        &self,
        id: &str,
        scope: &Scope,
    ) -> Result<Option<crate::CallDetail>, ReadError> {
        crate::calls::get_call(self, id, scope).await
    }

    /// Deletes everything of the session; false if it did not exist in `scope`.
    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError>;

    /// Retention's fast path: drops whole the time partitions that end at or before
    /// `cutoff` and hold no record of a session whose last record is at or after it,
    /// with the sessions that lay wholly in them and their roll-ups (PostgreSQL, see
    /// `docs/operations.md`). Sessions older than `cutoff` that are left are deleted one
    /// by one ([`RecordStore::delete_session`]). A store without partitions (SQLite)
    /// drops nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = sonde_store::StoreUrl::parse("sqlite::memory:")?.open().await?;
    /// let dropped = store.drop_expired_partitions(sonde_model::Timestamp::now()).await?;
    /// assert_eq!(dropped.partitions, 0);
    /// # Ok(()) }
    /// ```
    async fn drop_expired_partitions(
        &self,
        _cutoff: sonde_model::Timestamp,
    ) -> Result<crate::DroppedPartitions, ReadError> {
        Ok(crate::DroppedPartitions::default())
    }
}

/// A backend's records, handled as rows already made from records: what its
/// [`RecordStore`] is written over.
#[async_trait]
pub(crate) trait RowStore: SqlQuery {
    /// Stores rows (at least one) in one transaction: as [`RecordStore::write`] does with
    /// [`WriteMode::KeepStored`], as [`RecordStore::replace`] does with
    /// [`WriteMode::Replace`].
    async fn write_rows(
        &self,
        rows: Vec<RecordRow>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, WriteError>;

    /// [`RecordStore::get_session`].
    async fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionTrace>, ReadError>;

    /// What computes the cost of an LLM call, if anything.
    fn pricer(&self) -> Option<&CallPricer>;

    /// [`RecordStore::delete_session`].
    async fn remove_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError>;

    /// [`RecordStore::drop_expired_partitions`]; nothing for a store without partitions.
    async fn drop_expired_partitions(
        &self,
        _cutoff: sonde_model::Timestamp,
    ) -> Result<crate::DroppedPartitions, ReadError> {
        Ok(crate::DroppedPartitions::default())
    }
}

#[async_trait]
impl<T: RowStore> RecordStore for T {
    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        write_records(self, records, WriteMode::KeepStored).await
    }

    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        write_records(self, records, WriteMode::Replace).await
    }

    async fn get_session(
        &self,
        session_id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError> {
        self.session(session_id, scope).await
    }

    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        self.remove_session(session_id, scope).await
    }

    async fn drop_expired_partitions(
        &self,
        cutoff: sonde_model::Timestamp,
    ) -> Result<crate::DroppedPartitions, ReadError> {
        RowStore::drop_expired_partitions(self, cutoff).await
    }
}

/// Stores `records` as rows in `mode`; nothing to do for none.
async fn write_records(
    store: &impl RowStore,
    records: &[Record],
    mode: WriteMode,
) -> Result<WriteOutcome, WriteError> {
    if records.is_empty() {
        return Ok(WriteOutcome::default());
    }
    let pricer = store.pricer();
    let rows: Vec<RecordRow> = records
        .iter()
        .map(|r| RecordRow::from_record(r, pricer))
        .collect();
    store.write_rows(rows, mode).await
}

/// API keys: stored as their secrets' hashes, found by secret, revoked.
#[async_trait]
pub trait KeyStore: SqlQuery {
    /// Stores a new API key (its secret's hash, never the secret).
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), WriteError>;

    /// Revokes an API key; false if there is no active key with this id.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError>;

    /// Every API key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, ReadError> {
        let sql = format!(
            "SELECT {} FROM api_keys ORDER BY created_at, id",
            crate::keys::KEY_COLUMNS
        );
        let rows = read_rows(self, &sql, &[]).await?;
        Ok(rows
            .iter()
            .filter_map(|r| crate::keys::key_from_json(r))
            .collect())
    }

    /// The active key whose secret this is, if any.
    async fn find_api_key(&self, secret: &str) -> Result<Option<ApiKey>, ReadError> {
        let sql = format!(
            "SELECT {} FROM api_keys WHERE secret_hash = ?1 AND revoked_at IS NULL",
            crate::keys::KEY_COLUMNS
        );
        let hash = ApiKey::hash(secret);
        let rows = read_rows(self, &sql, &[Value::from(hash)]).await?;
        Ok(rows.first().and_then(|r| crate::keys::key_from_json(r)))
    }

    /// Whether any active API key exists (then the server requires one).
    async fn has_api_keys(&self) -> Result<bool, ReadError> {
        let rows = read_rows(
            self,
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
            &[],
        )
        .await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0)
    }
}

/// The rows of a read-only statement, for the reads written over [`SqlQuery`].
async fn read_rows(
    store: &(impl SqlQuery + ?Sized),
    sql: &str,
    params: &[Value],
) -> Result<Vec<Vec<Value>>, ReadError> {
    let result = store
        .query(sql, params)
        .await
        .map_err(analytics::read_error)?;
    Ok(result.rows)
}

/// Sync cursors: where each transcript file was read up to, and its parser's state.
#[async_trait]
pub trait CursorStore: SqlQuery {
    /// The sync cursors stored for `source` (such as `claude` or `codex`): each file's
    /// [`SyncCursor::position`], by path.
    async fn sync_cursors(&self, source: &str) -> Result<BTreeMap<String, String>, ReadError> {
        let rows = read_rows(
            self,
            "SELECT path, cursor FROM sync_cursors WHERE source = ?1",
            &[Value::from(source)],
        )
        .await?;
        Ok(rows
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
        let rows = read_rows(
            self,
            "SELECT state FROM sync_states WHERE source = ?1 AND path = ?2",
            &[Value::from(source), Value::from(path)],
        )
        .await?;
        Ok(rows
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
        cursors: &[SyncCursor],
    ) -> Result<(), WriteError>;
}

/// Usage, cost, latency and error analytics, written once over [`SqlQuery`] in the
/// backend's [`Dialect`]: every [`SqlQuery`] has them.
#[async_trait]
pub trait Analytics: SqlQuery {
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

    /// Exact latency and time-to-first-token percentiles per time bucket, oldest first;
    /// buckets without a call that has either are left out.
    async fn latency_series(
        &self,
        filter: &AnalyticsFilter,
        bucket: Bucket,
    ) -> Result<Vec<LatencyPoint>, ReadError> {
        analytics::latency_series(self, filter, bucket).await
    }

    /// [`Analytics::model_stats`], [`Analytics::latency_percentiles`] by model and
    /// [`Analytics::latency_series`] at once, the latencies and times to first token read
    /// once for the three (what a stats page shows).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sonde_store::{Analytics, AnalyticsFilter, Bucket, GroupBy};
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// let f = AnalyticsFilter::default();
    /// let overview = store.latency_overview(&f, Bucket::Day).await.unwrap();
    /// assert_eq!(overview.models, store.model_stats(&f).await.unwrap());
    /// assert_eq!(overview.by_model, store.latency_percentiles(&f, GroupBy::Model).await.unwrap());
    /// assert_eq!(overview.series, store.latency_series(&f, Bucket::Day).await.unwrap());
    /// # }
    /// ```
    async fn latency_overview(
        &self,
        filter: &AnalyticsFilter,
        bucket: Bucket,
    ) -> Result<LatencyOverview, ReadError> {
        analytics::latency_overview(self, filter, bucket).await
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

/// A place where records are kept and can be asked about: every capability at once.
///
/// Implemented for every type that has them all, so that `Arc<dyn TraceStore>` (what
/// [`crate::StoreUrl::open`] gives) calls the methods of each.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_model::*;
/// let store = sonde_store::StoreUrl::parse("sqlite::memory:")?.open().await?;
/// let record = Record::new(Context::session("s-1"), Body::SessionStarted(SessionStarted::default()));
/// store.write(&[record]).await?;
/// assert_eq!(store.list_sessions(&Default::default()).await?.sessions.len(), 1);
/// assert!(!store.has_api_keys().await?);
/// # Ok(()) }
/// ```
pub trait TraceStore: RecordStore + SqlQuery + KeyStore + CursorStore + Analytics {}

impl<T: SqlQuery> Analytics for T {}

impl<T: RecordStore + SqlQuery + KeyStore + CursorStore + Analytics> TraceStore for T {}
