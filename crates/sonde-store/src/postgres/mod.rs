//! The PostgreSQL backend: pooled connections, one transaction per batch, each table's
//! rows inserted with one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`.
//!
//! Every operation runs on the Tokio runtime the store was opened on, so the store can
//! be used from any executor (the tracer's sink thread uses a plain blocking wait).

mod runs;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde_json::Value;
use sonde_model::{Context, Record, SessionTrace, Timestamp};
use tokio::runtime::Handle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use crate::rows::{
    Extra, Lifecycle, ROLLUP_COLUMNS, RecordRow, RollupDelta, RollupKey, Rollups, SHARED_COLUMNS,
    StoredColumns, Table, WriteMode,
};
use crate::{
    BackendError, ErrorClass, OpenError, QueryError, QueryResult, ReadError, Scope, TraceStore,
    WriteError, WriteOutcome,
};

/// Connections kept in the pool.
const POOL_SIZE: usize = 16;
/// Attempts of a batch that lost a deadlock or serialisation race.
const CONTENTION_ATTEMPTS: usize = 5;

type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// The PostgreSQL store.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde_store::PostgresStore::open("postgres://localhost/sonde").await?;
/// # Ok(()) }
/// ```
pub struct PostgresStore {
    pool: Pool,
    runtime: Handle,
}

/// Maps a PostgreSQL error to a classified backend error.
pub(crate) fn classify(e: &tokio_postgres::Error) -> BackendError {
    let class = match e.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::LOCK_NOT_AVAILABLE =>
        {
            ErrorClass::Contention
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => ErrorClass::Timeout,
        Some(code) if code.code().starts_with("23") => ErrorClass::Constraint,
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57P")
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            ErrorClass::Connection
        }
        Some(_) => ErrorClass::Unknown,
        None => ErrorClass::Connection,
    };
    // The driver keeps the cause of a failed connection ("connection refused") apart
    // from its own message ("error connecting to server").
    let message = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => crate::message_with_causes(e),
    };
    BackendError::new(class, message)
}

fn pool_error(e: deadpool_postgres::PoolError) -> BackendError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(_) => {
            BackendError::new(ErrorClass::Timeout, "timed out waiting for a connection")
        }
        other => BackendError::new(ErrorClass::Connection, crate::message_with_causes(&other)),
    }
}

/// The error for a failed open of `url`: the URL and the driver's message without the
/// password, should the message echo the connection string. (tokio-postgres names
/// options, not their values, and its `Config` prints no password; this keeps it so.)
fn open_failed(url: &str, cause: BackendError) -> OpenError {
    OpenError::Backend {
        url: crate::redact_url(url),
        cause: BackendError {
            message: crate::redact_url(&cause.message),
            ..cause
        },
    }
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl PostgresStore {
    /// Connects to `url` and applies pending migrations. Must be called inside a Tokio
    /// runtime; the store runs its work on that runtime.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let fail =
            |message: String| open_failed(url, BackendError::new(ErrorClass::Connection, message));
        let runtime = Handle::try_current()
            .map_err(|_| fail("the postgres backend needs a tokio runtime".into()))?;
        let config = tokio_postgres::Config::from_str(url).map_err(|e| fail(e.to_string()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| open_failed(url, pool_error(e)))?;
        schema::migrate(&mut client).await?;
        Ok(Self { pool, runtime })
    }

    /// Runs `work` on the store's runtime.
    async fn on_runtime<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.runtime.spawn(work).await.ok()
    }
}

impl PostgresStore {
    /// Stores records on the store's runtime.
    async fn write_in_mode(
        &self,
        records: &[Record],
        mode: WriteMode,
    ) -> Result<WriteOutcome, WriteError> {
        if records.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let rows: Vec<RecordRow> = records.iter().map(RecordRow::from_record).collect();
        self.on_runtime(write_rows(self.pool.clone(), rows, mode))
            .await
            .ok_or(WriteError::Closed)?
    }
}

fn pg_type(column: &str) -> &'static str {
    match column {
        "ts" => "timestamptz",
        "input_tokens" | "output_tokens" | "cache_read_tokens" | "cache_write_tokens"
        | "reasoning_tokens" | "total_tokens" => "int8",
        "reported_cost_usd" | "computed_cost_usd" | "latency_ms" | "ttft_ms" | "total_reward"
        | "value" => "float8",
        "response_status" => "int4",
        _ => "text",
    }
}

/// One column of `rows` as an array parameter.
fn column<'a>(rows: &'a [&'a RecordRow], name: &str) -> Param<'a> {
    fn each<'a, T: ToSql + Sync + Send + 'a>(
        rows: &'a [&'a RecordRow],
        f: impl Fn(&'a RecordRow) -> T,
    ) -> Param<'a> {
        Box::new(rows.iter().map(|r| f(r)).collect::<Vec<T>>())
    }
    fn event(r: &RecordRow) -> Option<&crate::rows::EventColumns> {
        match &r.extra {
            Extra::Event(e) => Some(e),
            _ => None,
        }
    }
    let token = |i: usize| each(rows, move |r| event(r).and_then(|e| e.tokens).map(|t| t[i]));
    match name {
        "id" => each(rows, |r| r.id.as_str()),
        "kind" => each(rows, |r| r.kind),
        "ts" => each(rows, |r| at(r.ts)),
        "session_id" => each(rows, |r| r.context.session_id.as_str()),
        "step_id" => each(rows, |r| r.context.step_id.as_deref()),
        "org" => each(rows, |r| r.context.org.as_deref()),
        "workspace" => each(rows, |r| r.context.workspace.as_deref()),
        "trace_id" => each(rows, |r| r.context.trace_id.as_deref()),
        "span_id" => each(rows, |r| r.context.span_id.as_deref()),
        "parent_span_id" => each(rows, |r| r.context.parent_span_id.as_deref()),
        "payload" => each(rows, |r| r.payload.as_str()),
        "event_type" => each(rows, |r| event(r).map_or("", |e| e.event_type)),
        "status" => each(rows, |r| event(r).map_or("ok", |e| e.status)),
        "provider" => each(rows, |r| event(r).and_then(|e| e.provider.as_deref())),
        "model" => each(rows, |r| event(r).and_then(|e| e.model.as_deref())),
        "input_tokens" => token(0),
        "output_tokens" => token(1),
        "cache_read_tokens" => token(2),
        "cache_write_tokens" => token(3),
        "reasoning_tokens" => token(4),
        "total_tokens" => token(5),
        "reported_cost_usd" => each(rows, |r| event(r).and_then(|e| e.reported_cost_usd)),
        "computed_cost_usd" => each(rows, |r| event(r).and_then(|e| e.computed_cost_usd)),
        "latency_ms" => each(rows, |r| event(r).and_then(|e| e.latency_ms)),
        "ttft_ms" => each(rows, |r| event(r).and_then(|e| e.ttft_ms)),
        "response_status" => each(rows, |r| event(r).and_then(|e| e.response_status)),
        "request_path" => each(rows, |r| event(r).and_then(|e| e.request_path.as_deref())),
        "api_key_hash" => each(rows, |r| event(r).and_then(|e| e.api_key_hash.as_deref())),
        "gateway_key_id" => each(rows, |r| event(r).and_then(|e| e.gateway_key_id.as_deref())),
        "tool_name" => each(rows, |r| event(r).and_then(|e| e.tool_name.as_deref())),
        "message_type" => each(rows, |r| match &r.extra {
            Extra::Message { message_type, .. } => message_type.as_str(),
            _ => "",
        }),
        "from_role" => each(rows, |r| match &r.extra {
            Extra::Message { from_role, .. } => from_role.as_deref(),
            _ => None,
        }),
        "to_role" => each(rows, |r| match &r.extra {
            Extra::Message { to_role, .. } => to_role.as_deref(),
            _ => None,
        }),
        "objective_key" => each(rows, |r| match &r.extra {
            Extra::OutcomeReward { objective_key, .. } => objective_key.as_str(),
            _ => "",
        }),
        "total_reward" => each(rows, |r| match &r.extra {
            Extra::OutcomeReward { total_reward, .. } => *total_reward,
            _ => 0.0,
        }),
        "event_id" => each(rows, |r| match &r.extra {
            Extra::EventReward { event_id, .. } => event_id.as_str(),
            _ => "",
        }),
        "value" => each(rows, |r| match &r.extra {
            Extra::EventReward { value, .. } => *value,
            _ => 0.0,
        }),
        _ => each(rows, |_| Option::<&str>::None),
    }
}

fn params<'a>(values: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Inserts one table's rows; returns the ids stored for the first time.
async fn insert_table(
    tx: &deadpool_postgres::Transaction<'_>,
    table: Table,
    rows: &[&RecordRow],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    let columns = table.columns();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, pg_type(c)))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({}) ON CONFLICT (id) DO NOTHING RETURNING id",
        table.name(),
        columns.join(", "),
        arrays.join(", ")
    );
    let values: Vec<Param<'_>> = columns.iter().map(|c| column(rows, c)).collect();
    let stmt = tx.prepare_cached(&sql).await?;
    let stored = tx.query(&stmt, &params(&values)).await?;
    Ok(stored.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Deletes the stored versions of `rows` that [`WriteMode::Replace`] replaces, and takes
/// them out of the roll-ups; returns the sessions whose counters must be recounted.
async fn remove_replaced(
    tx: &deadpool_postgres::Transaction<'_>,
    groups: &BTreeMap<Table, Vec<&RecordRow>>,
) -> Result<BTreeSet<String>, tokio_postgres::Error> {
    let mut sessions = BTreeSet::new();
    for (table, rows) in groups {
        if *table == Table::Lifecycle {
            continue;
        }
        let delete = tx
            .prepare_cached(&format!("DELETE FROM {} WHERE id = $1", table.name()))
            .await?;
        for row in rows {
            if *table == Table::Events {
                subtract_rollups(tx, "id", &row.id).await?;
            }
            if tx.execute(&delete, &[&row.id]).await? > 0 {
                sessions.insert(row.context.session_id.clone());
            }
        }
    }
    Ok(sessions)
}

async fn write_batch(
    pool: &Pool,
    groups: &BTreeMap<Table, Vec<&RecordRow>>,
    mode: WriteMode,
) -> Result<usize, BackendError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(|e| classify(&e))?;
    let replaced_sessions = match mode {
        WriteMode::KeepStored => BTreeSet::new(),
        WriteMode::Replace => remove_replaced(&tx, groups)
            .await
            .map_err(|e| classify(&e))?,
    };
    let mut inserted: Vec<&RecordRow> = Vec::new();
    for (table, rows) in groups {
        let ids = insert_table(&tx, *table, rows)
            .await
            .map_err(|e| classify(&e))?;
        inserted.extend(rows.iter().copied().filter(|r| ids.contains(&r.id)));
    }
    upsert_sessions(&tx, &inserted)
        .await
        .map_err(|e| classify(&e))?;
    for row in &inserted {
        if let Extra::Lifecycle(change) = &row.extra {
            apply_lifecycle(&tx, row, change)
                .await
                .map_err(|e| classify(&e))?;
        }
    }
    let rollups = crate::rows::rollup_deltas(inserted.iter().copied());
    apply_rollups(&tx, &rollups)
        .await
        .map_err(|e| classify(&e))?;
    runs::append(&tx, "llm_hourly_runs", &rollups.hourly_runs)
        .await
        .map_err(|e| classify(&e))?;
    runs::append(&tx, "llm_key_daily_runs", &rollups.key_daily_runs)
        .await
        .map_err(|e| classify(&e))?;
    if !replaced_sessions.is_empty() {
        let recount = tx
            .prepare_cached(&crate::rows::recount_session_sql("$1"))
            .await
            .map_err(|e| classify(&e))?;
        for session_id in &replaced_sessions {
            tx.execute(&recount, &[session_id])
                .await
                .map_err(|e| classify(&e))?;
        }
    }
    tx.commit().await.map_err(|e| classify(&e))?;
    Ok(inserted.len())
}

/// Adds deltas to both roll-ups.
async fn apply_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    rollups: &Rollups,
) -> Result<(), tokio_postgres::Error> {
    apply_rollup(tx, "llm_hourly", &rollups.hourly).await?;
    apply_rollup(tx, "llm_key_daily", &rollups.key_daily).await
}

/// The key columns of roll-up (or run) rows as seven arrays: hour, then six texts.
fn rollup_key_arrays<'a>(keys: &[&'a RollupKey]) -> Vec<Param<'a>> {
    let text = |f: fn(&RollupKey) -> &str| -> Param<'a> {
        Box::new(keys.iter().map(|k| f(k)).collect::<Vec<&str>>())
    };
    vec![
        Box::new(keys.iter().map(|k| k.hour).collect::<Vec<i64>>()),
        text(|k| &k.org),
        text(|k| &k.workspace),
        text(|k| &k.provider),
        text(|k| &k.model),
        text(|k| &k.api_key_hash),
        text(|k| &k.request_path),
    ]
}

/// Adds deltas to one roll-up table, in one statement.
async fn apply_rollup(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    deltas: &BTreeMap<RollupKey, RollupDelta>,
) -> Result<(), tokio_postgres::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let k: Vec<&RollupKey> = deltas.keys().collect();
    let d: Vec<&RollupDelta> = deltas.values().collect();
    let mut values = rollup_key_arrays(&k);
    values.push(Box::new(d.iter().map(|d| d.calls).collect::<Vec<i64>>()));
    for i in 0..6 {
        values.push(Box::new(
            d.iter().map(|d| d.tokens[i]).collect::<Vec<i64>>(),
        ));
    }
    values.push(Box::new(d.iter().map(|d| d.cost).collect::<Vec<f64>>()));
    values.push(Box::new(
        d.iter().map(|d| d.reported_cost).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(
        d.iter().map(|d| d.computed_cost).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(d.iter().map(|d| d.errors).collect::<Vec<i64>>()));
    values.push(Box::new(d.iter().map(|d| d.http_4xx).collect::<Vec<i64>>()));
    values.push(Box::new(d.iter().map(|d| d.http_5xx).collect::<Vec<i64>>()));
    values.push(Box::new(
        d.iter().map(|d| d.latency_sum).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(
        d.iter().map(|d| d.latency_count).collect::<Vec<i64>>(),
    ));
    let types = [
        "int8", "text", "text", "text", "text", "text", "text", "int8", "int8", "int8", "int8",
        "int8", "int8", "int8", "float8", "float8", "float8", "int8", "int8", "int8", "float8",
        "int8",
    ];
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {}",
            ROLLUP_COLUMNS.join(", "),
            arrays.join(", "),
            crate::rows::rollup_upsert_tail(table)
        ))
        .await?;
    tx.execute(&stmt, &params(&values)).await?;
    Ok(())
}

/// Takes the LLM calls whose `column` equals `value` (a session's, or one event) out
/// of the roll-ups.
async fn subtract_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    column: &str,
    value: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT ts, {} FROM events WHERE {column} = $1 AND event_type = 'llm'",
            crate::rows::ROLLUP_SOURCE_COLUMNS
        ))
        .await?;
    let rows = tx.query(&stmt, &[&value]).await?;
    let mut rollups = crate::rows::RollupsBuilder::default();
    for r in &rows {
        let columns = crate::rows::stored_llm_columns(
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
            [
                r.try_get(7)?,
                r.try_get(8)?,
                r.try_get(9)?,
                r.try_get(10)?,
                r.try_get(11)?,
                r.try_get(12)?,
            ],
            r.try_get(13)?,
            r.try_get(14)?,
            &r.try_get::<_, String>(15)?,
            r.try_get(16)?,
            r.try_get(17)?,
            r.try_get(18)?,
        );
        let ts = r.try_get::<_, DateTime<Utc>>(0)?.timestamp_micros();
        rollups.add(ts, &r.try_get(1)?, &r.try_get(2)?, &columns, -1);
    }
    let rollups = rollups.finish();
    if rollups.is_empty() {
        return Ok(());
    }
    apply_rollups(tx, &rollups).await?;
    runs::remove(tx, "llm_hourly_runs", &rollups.hourly_runs).await?;
    runs::remove(tx, "llm_key_daily_runs", &rollups.key_daily_runs).await?;
    tx.execute("DELETE FROM llm_hourly WHERE calls <= 0", &[])
        .await?;
    tx.execute("DELETE FROM llm_key_daily WHERE calls <= 0", &[])
        .await?;
    Ok(())
}

async fn upsert_sessions(
    tx: &deadpool_postgres::Transaction<'_>,
    inserted: &[&RecordRow],
) -> Result<(), tokio_postgres::Error> {
    let deltas = crate::rows::session_deltas(inserted.iter().copied());
    if deltas.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deltas.keys().map(String::as_str).collect();
    let d: Vec<&crate::rows::SessionDelta> = deltas.values().collect();
    let values: Vec<Param<'_>> = vec![
        Box::new(ids),
        Box::new(d.iter().map(|d| d.org.as_deref()).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.workspace.as_deref()).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| at(d.first)).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| at(d.last)).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.events).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.llm_calls).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.messages).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.total_tokens).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.cost_usd).collect::<Vec<_>>()),
    ];
    let stmt = tx
        .prepare_cached(&format!(
            "{} {}",
            "INSERT INTO sessions (session_id, org, workspace, started_at, last_at, event_count,
                 llm_calls, message_count, total_tokens, cost_usd)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                 $5::timestamptz[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::float8[])",
            crate::rows::session_upsert_tail("least", "greatest")
        ))
        .await?;
    tx.execute(&stmt, &params(&values)).await?;
    Ok(())
}

/// Keeps the derived tables pointing at the earliest lifecycle record of each kind.
async fn apply_lifecycle(
    tx: &deadpool_postgres::Transaction<'_>,
    row: &RecordRow,
    change: &Lifecycle,
) -> Result<(), tokio_postgres::Error> {
    let (session_id, id, ts) = (&row.context.session_id, &row.id, at(row.ts));
    match change {
        Lifecycle::SessionStarted { metadata } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE sessions SET metadata = CAST($3::text AS jsonb), start_ts = $4, start_id = $2
                     WHERE session_id = $1
                       AND (start_ts IS NULL OR (start_ts, start_id COLLATE \"C\") > ($4, $2::text COLLATE \"C\"))",
                )
                .await?;
            tx.execute(&stmt, &[session_id, id, metadata, &ts]).await?;
        }
        Lifecycle::SessionEnded => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE sessions SET ended_at = $3, end_id = $2
                     WHERE session_id = $1
                       AND (ended_at IS NULL OR (ended_at, end_id COLLATE \"C\") > ($3, $2::text COLLATE \"C\"))",
                )
                .await?;
            tx.execute(&stmt, &[session_id, id, &ts]).await?;
        }
        Lifecycle::StepStarted {
            step_id,
            step_index,
            turn_number,
            metadata,
        } => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO steps (session_id, step_id, step_index, turn_number, started_at, start_id, metadata)
                     VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb))
                     ON CONFLICT (session_id, step_id) DO UPDATE SET
                         step_index = excluded.step_index, turn_number = excluded.turn_number,
                         started_at = excluded.started_at, start_id = excluded.start_id,
                         metadata = excluded.metadata
                     WHERE steps.started_at IS NULL
                        OR (steps.started_at, steps.start_id COLLATE \"C\")
                           > (excluded.started_at, excluded.start_id COLLATE \"C\")",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    session_id,
                    step_id,
                    step_index,
                    turn_number,
                    &ts,
                    id,
                    metadata,
                ],
            )
            .await?;
        }
        Lifecycle::StepEnded { step_id } => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO steps (session_id, step_id, completed_at, end_id) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (session_id, step_id) DO UPDATE SET
                         completed_at = excluded.completed_at, end_id = excluded.end_id
                     WHERE steps.completed_at IS NULL
                        OR (steps.completed_at, steps.end_id COLLATE \"C\")
                           > (excluded.completed_at, excluded.end_id COLLATE \"C\")",
                )
                .await?;
            tx.execute(&stmt, &[session_id, step_id, &ts, id]).await?;
        }
    }
    Ok(())
}

async fn write_rows(
    pool: Pool,
    rows: Vec<RecordRow>,
    mode: WriteMode,
) -> Result<WriteOutcome, WriteError> {
    // A record id twice in one batch counts once; rows are sorted by id so that
    // concurrent writers take row locks in the same order (no deadlocks).
    let mut seen = HashSet::with_capacity(rows.len());
    let mut groups: BTreeMap<Table, Vec<&RecordRow>> = BTreeMap::new();
    let mut repeated = 0;
    for row in &rows {
        if seen.insert(row.id.as_str()) {
            groups.entry(row.table).or_default().push(row);
        } else {
            repeated += 1;
        }
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write_batch(&pool, &groups, mode).await {
            Ok(written) => {
                return Ok(WriteOutcome {
                    written,
                    duplicates: rows.len() - written,
                });
            }
            Err(e) if e.class == ErrorClass::Contention && attempt < CONTENTION_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "write lost a lock race; retrying");
            }
            Err(e) => {
                let _ = repeated;
                return Err(WriteError::Backend(e));
            }
        }
    }
}

async fn session_visible(
    client: &deadpool_postgres::Transaction<'_>,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT org, workspace FROM sessions WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.is_some_and(|r| {
        let org: Option<String> = r.get(0);
        let workspace: Option<String> = r.get(1);
        scope.allows(org.as_deref(), workspace.as_deref())
    }))
}

fn stored_columns(row: &Row) -> Result<StoredColumns, tokio_postgres::Error> {
    Ok(StoredColumns {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        ts: row.try_get::<_, DateTime<Utc>>(2)?.timestamp_micros(),
        context: Context {
            session_id: row.try_get(3)?,
            step_id: row.try_get(4)?,
            org: row.try_get(5)?,
            workspace: row.try_get(6)?,
            trace_id: row.try_get(7)?,
            span_id: row.try_get(8)?,
            parent_span_id: row.try_get(9)?,
        },
        payload: row.try_get(10)?,
    })
}

async fn read_session(
    pool: Pool,
    session_id: String,
    scope: Scope,
) -> Result<Option<SessionTrace>, ReadError> {
    let backend = |e: tokio_postgres::Error| ReadError::Backend(classify(&e));
    let mut client = pool
        .get()
        .await
        .map_err(|e| ReadError::Backend(pool_error(e)))?;
    // One snapshot across the tables.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    if !session_visible(&tx, &session_id, &scope)
        .await
        .map_err(backend)?
    {
        return Ok(None);
    }
    let mut records: Vec<Record> = Vec::new();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE session_id = $1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(backend)?;
        for row in tx.query(&stmt, &[&session_id]).await.map_err(backend)? {
            records.push(stored_columns(&row).map_err(backend)?.into_record()?);
        }
    }
    tx.commit().await.map_err(backend)?;
    Ok(SessionTrace::from_records(records).into_iter().next())
}

async fn delete_session(pool: Pool, session_id: String, scope: Scope) -> Result<bool, ReadError> {
    let backend = |e: tokio_postgres::Error| ReadError::Backend(classify(&e));
    let mut client = pool
        .get()
        .await
        .map_err(|e| ReadError::Backend(pool_error(e)))?;
    let tx = client.transaction().await.map_err(backend)?;
    if !session_visible(&tx, &session_id, &scope)
        .await
        .map_err(backend)?
    {
        return Ok(false);
    }
    subtract_rollups(&tx, "session_id", &session_id)
        .await
        .map_err(backend)?;
    for table in Table::ALL
        .iter()
        .map(|t| t.name())
        .chain(["steps", "sessions"])
    {
        tx.execute(
            &format!("DELETE FROM {table} WHERE session_id = $1"),
            &[&session_id],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

/// `?1` → `$1`, outside string literals and quoted identifiers.
fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// Converts a JSON parameter to what the statement expects.
fn bind(value: &Value, ty: &Type, index: usize) -> Result<Param<'static>, QueryError> {
    let wrong = |expected: &str| QueryError::Param {
        index,
        reason: format!("expected {expected}, got {value}"),
    };
    if value.is_null() {
        return Ok(Box::new(Option::<String>::None));
    }
    Ok(match *ty {
        Type::INT2 => Box::new(
            value
                .as_i64()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(|| wrong("a small integer"))?,
        ),
        Type::INT4 => Box::new(
            value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| wrong("an integer"))?,
        ),
        Type::INT8 => Box::new(value.as_i64().ok_or_else(|| wrong("an integer"))?),
        Type::FLOAT4 => Box::new(value.as_f64().ok_or_else(|| wrong("a number"))? as f32),
        Type::FLOAT8 => Box::new(value.as_f64().ok_or_else(|| wrong("a number"))?),
        Type::BOOL => Box::new(value.as_bool().ok_or_else(|| wrong("true or false"))?),
        Type::JSON | Type::JSONB => Box::new(value.clone()),
        Type::TIMESTAMPTZ => {
            let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            let t: Timestamp = text.parse().map_err(|_| wrong("an RFC 3339 time"))?;
            Box::new(at(t.as_micros()))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Box::new(match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }
        ref other => {
            return Err(QueryError::Param {
                index,
                reason: format!(
                    "parameters of type {other} are not supported; cast it, e.g. ?{index}::text"
                ),
            });
        }
    })
}

fn sql_error(e: tokio_postgres::Error) -> QueryError {
    match e.code() {
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => QueryError::NotReadOnly,
        _ => QueryError::Sql(classify(&e).message),
    }
}

/// A statement of a read-only transaction, prepared, with its parameters bound.
async fn prepare_read_only(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params_json: &[Value],
) -> Result<(tokio_postgres::Statement, Vec<Param<'static>>), QueryError> {
    let inner = tx.prepare(sql).await.map_err(sql_error)?;
    if inner.params().len() != params_json.len() {
        return Err(QueryError::Param {
            index: params_json.len().min(inner.params().len()) + 1,
            reason: format!(
                "the query takes {} parameters, {} given",
                inner.params().len(),
                params_json.len()
            ),
        });
    }
    let bound: Vec<Param<'static>> = params_json
        .iter()
        .zip(inner.params())
        .enumerate()
        .map(|(i, (v, ty))| bind(v, ty, i + 1))
        .collect::<Result<_, _>>()?;
    Ok((inner, bound))
}

/// A pooled connection for a read-only statement, and the statement in `$n` form;
/// refuses anything that does not start as a read.
async fn read_only_client(pool: &Pool, sql: &str) -> Result<(Object, String), QueryError> {
    if !crate::starts_read_only(sql) {
        return Err(QueryError::NotReadOnly);
    }
    let client: Object = pool
        .get()
        .await
        .map_err(|e| QueryError::Sql(pool_error(e).message))?;
    Ok((client, dollar_params(sql.trim().trim_end_matches(';'))))
}

/// A read-only transaction: PostgreSQL itself refuses any write in it.
async fn read_only_tx(
    client: &mut Object,
) -> Result<deadpool_postgres::Transaction<'_>, QueryError> {
    client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(sql_error)
}

/// Runs a read-only statement whose last column is packed values (see
/// [`crate::latency_runs`]) and whose others are the group.
async fn read_values(
    pool: Pool,
    sql: String,
    params_json: Vec<Value>,
) -> Result<Vec<crate::GroupValues>, QueryError> {
    let (mut client, sql) = read_only_client(&pool, &sql).await?;
    let tx = read_only_tx(&mut client).await?;
    let (stmt, bound) = prepare_read_only(&tx, &sql, &params_json).await?;
    let n = stmt.columns().len();
    let mut out = Vec::new();
    for row in tx.query(&stmt, &params(&bound)).await.map_err(sql_error)? {
        let group = (0..n.saturating_sub(1))
            .map(|i| row.try_get::<_, Option<String>>(i))
            .collect::<Result<_, _>>()
            .map_err(sql_error)?;
        let mut values = Vec::new();
        if let Some(bytes) = row
            .try_get::<_, Option<&[u8]>>(n.saturating_sub(1))
            .map_err(sql_error)?
        {
            crate::latency_runs::unpack_into(bytes, &mut values);
        }
        out.push((group, values));
    }
    tx.rollback().await.map_err(sql_error)?;
    Ok(out)
}

/// Reads a column of a row as JSON.
type ReadJson = fn(&Row, usize) -> Result<Value, tokio_postgres::Error>;

/// How to read a column of `ty` as JSON without `row_to_json`, for the types whose
/// JSON form is plain: integers, doubles, text and booleans (the same values
/// `row_to_json` gives, without formatting and parsing them).
fn native_json(ty: &Type) -> Option<ReadJson> {
    Some(match *ty {
        Type::INT2 => |r, i| {
            Ok(r.try_get::<_, Option<i16>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::INT4 => |r, i| {
            Ok(r.try_get::<_, Option<i32>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::INT8 => |r, i| {
            Ok(r.try_get::<_, Option<i64>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::FLOAT8 => |r, i| {
            Ok(r.try_get::<_, Option<f64>>(i)?
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number))
        },
        Type::TEXT | Type::VARCHAR => |r, i| {
            Ok(r.try_get::<_, Option<String>>(i)?
                .map_or(Value::Null, Value::String))
        },
        Type::BOOL => |r, i| {
            Ok(r.try_get::<_, Option<bool>>(i)?
                .map_or(Value::Null, Value::Bool))
        },
        _ => return None,
    })
}

async fn run_query(
    pool: Pool,
    sql: String,
    params_json: Vec<Value>,
) -> Result<QueryResult, QueryError> {
    let (mut client, sql) = read_only_client(&pool, &sql).await?;
    let tx = read_only_tx(&mut client).await?;
    let (inner, bound) = prepare_read_only(&tx, &sql, &params_json).await?;
    let columns: Vec<String> = inner
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let explain = sql.trim_start().to_ascii_uppercase().starts_with("EXPLAIN");
    let native = inner
        .columns()
        .iter()
        .all(|c| native_json(c.type_()).is_some());
    let rows = if explain {
        tx.query(&inner, &params(&bound))
            .await
            .map_err(sql_error)?
            .iter()
            .map(|r| {
                (0..columns.len())
                    .map(|i| {
                        r.try_get::<_, Option<String>>(i)
                            .ok()
                            .flatten()
                            .map_or(Value::Null, Value::String)
                    })
                    .collect()
            })
            .collect()
    } else if native {
        // Integers, floats, text and booleans are read as they come.
        let mut rows = Vec::new();
        for row in tx.query(&inner, &params(&bound)).await.map_err(sql_error)? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in inner.columns().iter().enumerate() {
                let read = native_json(column.type_()).unwrap_or(|_, _| Ok(Value::Null));
                values.push(read(&row, i).map_err(sql_error)?);
            }
            rows.push(values);
        }
        rows
    } else {
        // Other values come back through row_to_json, so that every type (numeric,
        // arrays, timestamps...) has a JSON form.
        let wrapped = format!("SELECT row_to_json(q)::text FROM ({sql}) q");
        let stmt = tx
            .prepare_typed(&wrapped, inner.params())
            .await
            .map_err(sql_error)?;
        let mut rows = Vec::new();
        for row in tx.query(&stmt, &params(&bound)).await.map_err(sql_error)? {
            let text: String = row.try_get(0).map_err(sql_error)?;
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).map_err(|e| QueryError::Sql(e.to_string()))?;
            rows.push(
                columns
                    .iter()
                    .map(|c| object.get(c).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
        }
        rows
    };
    tx.rollback().await.map_err(sql_error)?;
    Ok(QueryResult { columns, rows })
}

#[async_trait]
impl TraceStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        self.write_in_mode(records, WriteMode::KeepStored).await
    }

    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        self.write_in_mode(records, WriteMode::Replace).await
    }

    async fn get_session(
        &self,
        session_id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError> {
        self.on_runtime(read_session(
            self.pool.clone(),
            session_id.to_owned(),
            scope.clone(),
        ))
        .await
        .ok_or(ReadError::Closed)?
    }

    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        self.on_runtime(delete_session(
            self.pool.clone(),
            session_id.to_owned(),
            scope.clone(),
        ))
        .await
        .ok_or(ReadError::Closed)?
    }

    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Postgres
    }

    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[crate::SyncCursor],
    ) -> Result<(), WriteError> {
        let (pool, source, cursors) = (self.pool.clone(), source.to_owned(), cursors.to_vec());
        self.on_runtime(async move {
            let backend = |e: tokio_postgres::Error| WriteError::Backend(classify(&e));
            let mut client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            let tx = client.transaction().await.map_err(backend)?;
            let [position_sql, state_sql] = crate::cursors::upsert_sql(|i| format!("${i}"));
            let positions = tx.prepare_cached(&position_sql).await.map_err(backend)?;
            let states = tx.prepare_cached(&state_sql).await.map_err(backend)?;
            for c in &cursors {
                tx.execute(&positions, &[&source, &c.path, &c.position])
                    .await
                    .map_err(backend)?;
                tx.execute(&states, &[&source, &c.path, &c.state])
                    .await
                    .map_err(backend)?;
            }
            tx.commit().await.map_err(backend)
        })
        .await
        .ok_or(WriteError::Closed)?
    }

    async fn create_api_key(&self, key: &crate::ApiKey) -> Result<(), WriteError> {
        let (pool, key) = (self.pool.clone(), key.clone());
        self.on_runtime(async move {
            let client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        crate::keys::KEY_COLUMNS
                    ),
                    &[
                        &key.id,
                        &key.name,
                        &key.org,
                        &key.workspace,
                        &i32::from(key.admin),
                        &key.secret_hash,
                        &key.created_at.as_micros(),
                        &key.revoked_at.map(|t| t.as_micros()),
                    ],
                )
                .await
                .map(|_| ())
                .map_err(|e| WriteError::Backend(classify(&e)))
        })
        .await
        .ok_or(WriteError::Closed)?
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        let (pool, id) = (self.pool.clone(), id.to_owned());
        self.on_runtime(async move {
            let client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            client
                .execute(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &Timestamp::now().as_micros()],
                )
                .await
                .map(|n| n > 0)
                .map_err(|e| WriteError::Backend(classify(&e)))
        })
        .await
        .ok_or(WriteError::Closed)?
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError> {
        self.on_runtime(run_query(
            self.pool.clone(),
            sql.to_owned(),
            params.to_vec(),
        ))
        .await
        .ok_or(QueryError::Closed)?
    }

    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::GroupValues>, QueryError> {
        self.on_runtime(read_values(
            self.pool.clone(),
            sql.to_owned(),
            params.to_vec(),
        ))
        .await
        .ok_or(QueryError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_parameters_become_dollar_parameters_outside_quotes() {
        assert_eq!(
            dollar_params("SELECT ?1, '?2', \"a?\" FROM t WHERE x = ?2"),
            "SELECT $1, '?2', \"a?\" FROM t WHERE x = $2"
        );
    }

    #[test]
    fn open_errors_carry_neither_the_password_nor_a_driver_message_echoing_it() {
        let echoed = BackendError::new(
            ErrorClass::Connection,
            "bad connection string postgres://u:s3cret@h/db or host=h password=s3cret",
        );
        let err = open_failed("postgres://u:s3cret@h/db", echoed).to_string();
        assert_eq!(
            err,
            "cannot open postgres://u:***@h/db: bad connection string postgres://u:***@h/db or host=h password=***"
        );
        let plain = BackendError::new(ErrorClass::Connection, "refused");
        let err = open_failed("postgres://u@h/db", plain).to_string();
        assert_eq!(err, "cannot open postgres://u@h/db: refused");
    }
}
