//! The embedded SQLite backend.
//!
//! One dedicated thread owns the connection that writes; for a database file, two more
//! threads own read-only connections (WAL lets them read while the writer writes). Async
//! callers hand work to those threads and await the answer, so SQLite never runs on an
//! async runtime's worker threads.

mod payload;
mod runs;
mod schema;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use crossbeam_channel::{Receiver, Sender};
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};
use serde_json::Value;
use sonde_model::{Record, SessionTrace, Timestamp};

use crate::rows::{
    Extra, Lifecycle, ROLLUP_COLUMNS, RecordRow, RollupDelta, RollupKey, SHARED_COLUMNS,
    StoredColumns, Table,
};
use crate::rows::{Rollups, WriteMode};
use crate::{
    BackendError, ErrorClass, OpenError, QueryError, QueryResult, ReadError, Scope, TraceStore,
    WriteError, WriteOutcome,
};

/// Read-only connections kept for a database file.
const READER_THREADS: usize = 2;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The embedded SQLite store: a database file in WAL mode, or a throwaway one in memory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = sonde_store::SqliteStore::open(dir.path().join("traces.db")).await?;
/// use sonde_store::TraceStore;
/// assert_eq!(store.backend(), "sqlite");
/// # Ok(()) }
/// ```
pub struct SqliteStore {
    writer: Sender<Job>,
    readers: Sender<Job>,
    path: Option<PathBuf>,
    /// The checkpointer: dropping the sender stops it; the store's drop waits for it.
    checkpointer: Option<(Sender<Job>, std::thread::JoinHandle<()>)>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Wait for the last checkpoint, so that the next open finds an empty log
        // instead of replaying it.
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// How often the checkpointer copies the write-ahead log into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// How long the last checkpoint waits for other connections' transactions.
const FINAL_CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// WAL pages after which the writer checkpoints by itself (when the checkpointer
/// falls behind): 64 MiB at 4 KiB pages.
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;

/// Page cache per connection, in KiB. The operating system caches the file too; a
/// larger cache bought no speed (OTLP ingest 26,300 spans/s at 16 MiB and 25,400 at 64;
/// a 1 GB transcript sync 7.5–8.0 s at both) but cost memory (`sonde serve` peaked at
/// 157 MB instead of 217 under the ingest benchmark).
const PAGE_CACHE_KIB: i64 = 16 * 1024;

/// Checkpoints the WAL on a thread and connection of its own, so that the writer
/// appends while pages are copied and synced (SQLite's own checkpoints run inside the
/// commit that crosses the limit, stalling the writer for the fsyncs).
fn spawn_checkpointer(
    conn: Connection,
) -> std::io::Result<(Sender<Job>, std::thread::JoinHandle<()>)> {
    let (stop, stopped) = crossbeam_channel::bounded::<Job>(0);
    let thread = std::thread::Builder::new()
        .name("sonde-sqlite-checkpointer".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint failed; retrying");
                }
            }
            // The store is gone: leave an empty log behind when nobody else writes (and
            // do not hold its drop for long if another process is reading).
            let _ = conn.busy_timeout(FINAL_CHECKPOINT_WAIT);
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        })?;
    Ok((stop, thread))
}

/// Maps a rusqlite error to a classified backend error.
pub(crate) fn classify(e: &rusqlite::Error) -> BackendError {
    use rusqlite::ffi::ErrorCode;
    let class = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorClass::Contention,
        Some(ErrorCode::ConstraintViolation) => ErrorClass::Constraint,
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull,
        ) => ErrorClass::Connection,
        _ => ErrorClass::Unknown,
    };
    BackendError::new(class, e.to_string())
}

fn spawn_thread(name: String, mut conn: Connection, jobs: Receiver<Job>) -> std::io::Result<()> {
    std::thread::Builder::new().name(name).spawn(move || {
        // The thread ends when every sender (the store) is gone.
        for job in jobs {
            job(&mut conn);
        }
    })?;
    Ok(())
}

fn configure(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let url = &path.display().to_string();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| schema::open_failed(url, &e))?;
    conn.execute_batch(
        &format!(
            "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{PAGE_CACHE_KIB};"
        ),
    )
    .map_err(|e| schema::open_failed(url, &e))?;
    register_functions(conn, Some(path)).map_err(|e| schema::open_failed(url, &e))
}

/// The store's own SQL functions: `sonde_payload(payload)` and `sonde_packed(x)`, on a
/// connection to `file` (`None` in memory).
fn register_functions(conn: &Connection, file: Option<&Path>) -> rusqlite::Result<()> {
    payload::register(conn, file)?;
    runs::register(conn)
}

impl SqliteStore {
    /// Opens (creating it and its folder when needed) the database file at `path`, in
    /// WAL mode, and applies pending migrations.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = dir.path().join("nested/folder/t.db");
    /// sonde_store::SqliteStore::open(&db).await.unwrap();
    /// assert!(db.exists());
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Opening and migrating do file I/O: keep them off the caller's runtime too.
        std::thread::spawn(move || {
            let _ = tx.send(Self::open_blocking(&open_path));
        });
        rx.await.unwrap_or_else(|_| {
            Err(OpenError::Backend {
                url: crate::redact_url(&path.display().to_string()),
                cause: BackendError::new(ErrorClass::Unknown, "open thread ended"),
            })
        })
    }

    fn open_blocking(path: &Path) -> Result<Self, OpenError> {
        let url = crate::redact_url(&path.display().to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|cause| OpenError::CreateDir {
                path: crate::redact_url(&dir.display().to_string()),
                cause,
            })?;
        }
        let mut conn = Connection::open(path).map_err(|e| schema::open_failed(&url, &e))?;
        configure(&conn, path)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| schema::open_failed(&url, &e))?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(|e| schema::open_failed(&url, &e))?;
        let checkpoints = Connection::open(path).map_err(|e| schema::open_failed(&url, &e))?;
        configure(&checkpoints, path)?;
        // Checkpoints stream pages through; a small cache is enough.
        checkpoints
            .pragma_update(None, "cache_size", -2048)
            .map_err(|e| schema::open_failed(&url, &e))?;
        let checkpointer = spawn_checkpointer(checkpoints).map_err(|e| OpenError::Backend {
            url: url.clone(),
            cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
        })?;
        schema::migrate(&mut conn)?;
        let (writer, writer_jobs) = crossbeam_channel::unbounded::<Job>();
        spawn_thread("sonde-sqlite-writer".into(), conn, writer_jobs).map_err(|e| {
            OpenError::Backend {
                url: url.clone(),
                cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
            }
        })?;
        let (readers, reader_jobs) = crossbeam_channel::unbounded::<Job>();
        for n in 0..READER_THREADS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| schema::open_failed(&url, &e))?;
            configure(&conn, path)?;
            conn.pragma_update(None, "query_only", true)
                .map_err(|e| schema::open_failed(&url, &e))?;
            spawn_thread(
                format!("sonde-sqlite-reader-{n}"),
                conn,
                reader_jobs.clone(),
            )
            .map_err(|e| OpenError::Backend {
                url: url.clone(),
                cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
            })?;
        }
        Ok(Self {
            writer,
            readers,
            path: Some(path.to_path_buf()),
            checkpointer: Some(checkpointer),
        })
    }

    /// Stores records on the writer thread (rows and compressed payloads are made on
    /// the caller's).
    async fn write_in_mode(
        &self,
        records: &[Record],
        mode: WriteMode,
    ) -> Result<WriteOutcome, WriteError> {
        if records.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let mut rows: Vec<RecordRow> = records.iter().map(RecordRow::from_record).collect();
        // Blocks need a file: `sonde_payload()` reads them through a second connection,
        // which a database in memory cannot have.
        let blocks = self.path.is_some();
        // Compression is CPU work: on a Tokio runtime, off its async threads; under any
        // other executor (the tracer's sink thread), right here.
        let pack = move || {
            let packed = payload::pack(&mut rows, blocks);
            (rows, packed)
        };
        let (rows, packed) = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(pack)
                .await
                .map_err(|_| WriteError::Closed)?,
            Err(_) => pack(),
        };
        Self::run(&self.writer, move |conn| {
            write_rows(conn, rows, packed, mode)
        })
        .await
        .ok_or(WriteError::Closed)?
        .map_err(|e| WriteError::Backend(classify(&e)))
    }

    /// A throwaway database in memory: one connection, on one dedicated thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// assert!(store.path().is_none());
    /// # }
    /// ```
    pub async fn open_in_memory() -> Result<Self, OpenError> {
        let url = "sqlite::memory:";
        let mut conn = Connection::open_in_memory().map_err(|e| schema::open_failed(url, &e))?;
        register_functions(&conn, None).map_err(|e| schema::open_failed(url, &e))?;
        schema::migrate(&mut conn)?;
        let (writer, jobs) = crossbeam_channel::unbounded::<Job>();
        spawn_thread("sonde-sqlite-memory".into(), conn, jobs).map_err(|e| OpenError::Backend {
            url: url.to_owned(),
            cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
        })?;
        Ok(Self {
            readers: writer.clone(),
            writer,
            path: None,
            checkpointer: None,
        })
    }

    /// The database file, or `None` in memory.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// assert_eq!(store.path(), None);
    /// # }
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `work` on one of the store's threads and waits for its answer.
    async fn run<T: Send + 'static>(
        jobs: &Sender<Job>,
        work: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(work(conn));
        });
        jobs.send(job).ok()?;
        rx.await.ok()
    }
}

fn insert_sql(table: Table) -> String {
    let columns = table.columns();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
        table.name(),
        columns.join(", "),
        placeholders.join(", ")
    )
}

type Bound<'a> = rusqlite::types::ToSqlOutput<'a>;

fn text(value: &str) -> Bound<'_> {
    Bound::Borrowed(ValueRef::Text(value.as_bytes()))
}

fn opt_text(value: &Option<String>) -> Bound<'_> {
    value.as_deref().map_or(Bound::Owned(Sql::Null), text)
}

fn real(value: Option<f64>) -> Bound<'static> {
    Bound::Owned(value.map_or(Sql::Null, Sql::Real))
}

fn int(value: i64) -> Bound<'static> {
    Bound::Owned(Sql::Integer(value))
}

/// The row's values in [`Table::columns`] order, borrowing its text; `payload` is the
/// payload column's.
fn values<'a>(row: &'a RecordRow, payload: Bound<'a>) -> Vec<Bound<'a>> {
    let ctx = &row.context;
    let mut values = Vec::with_capacity(30);
    values.extend([
        text(&row.id),
        text(row.kind),
        int(row.ts),
        text(&ctx.session_id),
        opt_text(&ctx.step_id),
        opt_text(&ctx.org),
        opt_text(&ctx.workspace),
        opt_text(&ctx.trace_id),
        opt_text(&ctx.span_id),
        opt_text(&ctx.parent_span_id),
        payload,
    ]);
    match &row.extra {
        Extra::Lifecycle(_) => {}
        Extra::Event(e) => {
            values.extend([
                text(e.event_type),
                text(e.status),
                opt_text(&e.provider),
                opt_text(&e.model),
            ]);
            match e.tokens {
                Some(tokens) => values.extend(tokens.map(int)),
                None => values.extend(std::iter::repeat_n(Bound::Owned(Sql::Null), 6)),
            }
            values.extend([
                real(e.reported_cost_usd),
                real(e.computed_cost_usd),
                real(e.latency_ms),
                real(e.ttft_ms),
                e.response_status
                    .map_or(Bound::Owned(Sql::Null), |s| int(i64::from(s))),
                opt_text(&e.request_path),
                opt_text(&e.api_key_hash),
                opt_text(&e.gateway_key_id),
                opt_text(&e.tool_name),
            ]);
        }
        Extra::Message {
            message_type,
            from_role,
            to_role,
        } => values.extend([text(message_type), opt_text(from_role), opt_text(to_role)]),
        Extra::OutcomeReward {
            objective_key,
            total_reward,
        } => values.extend([text(objective_key), real(Some(*total_reward))]),
        Extra::EventReward { event_id, value } => {
            values.extend([text(event_id), real(Some(*value))]);
        }
    }
    values
}

fn write_rows(
    conn: &mut Connection,
    rows: Vec<RecordRow>,
    packed: payload::Packed,
    mode: WriteMode,
) -> Result<WriteOutcome, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let replaced_sessions = match mode {
        WriteMode::KeepStored => Vec::new(),
        WriteMode::Replace => remove_replaced(&tx, &rows)?,
    };
    let mut outcome = WriteOutcome::default();
    let mut inserted: Vec<RecordRow> = Vec::with_capacity(rows.len());
    {
        let mut block_ids = Vec::with_capacity(packed.blocks.len());
        let mut insert_block = tx.prepare_cached(
            "INSERT INTO payload_blocks (session_id, live, data) VALUES (?1, ?2, ?3)",
        )?;
        for block in &packed.blocks {
            insert_block.execute(rusqlite::params![block.session_id, block.rows, block.data])?;
            block_ids.push(tx.last_insert_rowid());
        }
        // Rows a block counts that turn out to be duplicates (never inserted).
        let mut not_inserted: std::collections::BTreeMap<i64, i64> = Default::default();
        let mut inserts: Vec<rusqlite::CachedStatement<'_>> = Vec::with_capacity(5);
        for table in Table::ALL {
            inserts.push(tx.prepare_cached(&insert_sql(table))?);
        }
        for (row, slot) in rows.into_iter().zip(&packed.slots) {
            let mut block_id = None;
            let payload = match slot {
                payload::Slot::Text => text(&row.payload),
                payload::Slot::Frame(frame) => Bound::Borrowed(ValueRef::Blob(frame)),
                payload::Slot::InBlock { block, offset, len } => {
                    let id = block_ids.get(*block).copied().unwrap_or_default();
                    block_id = Some(id);
                    Bound::Owned(Sql::Blob(payload::block_ref(id, *offset, *len)))
                }
            };
            let position = Table::ALL.iter().position(|t| *t == row.table).unwrap_or(0);
            let stored = inserts[position].execute(params_from_iter(values(&row, payload)))?;
            if stored == 0 {
                outcome.duplicates += 1;
                if let Some(id) = block_id {
                    *not_inserted.entry(id).or_default() += 1;
                }
            } else {
                outcome.written += 1;
                inserted.push(row);
            }
        }
        for (id, rows) in not_inserted {
            release_block(&tx, id, rows)?;
        }
    }
    {
        let mut upsert = tx.prepare_cached(&format!(
            "{} {}",
            "INSERT INTO sessions (session_id, org, workspace, started_at, last_at, event_count,
                 llm_calls, message_count, total_tokens, cost_usd)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            crate::rows::session_upsert_tail("min", "max")
        ))?;
        for (session_id, d) in crate::rows::session_deltas(&inserted) {
            upsert.execute(rusqlite::params![
                session_id,
                d.org,
                d.workspace,
                d.first,
                d.last,
                d.events,
                d.llm_calls,
                d.messages,
                d.total_tokens,
                d.cost_usd
            ])?;
        }
    }
    for row in &inserted {
        if let Extra::Lifecycle(change) = &row.extra {
            apply_lifecycle(&tx, &row.context.session_id, &row.id, row.ts, change)?;
        }
    }
    let rollups = crate::rows::rollup_deltas(&inserted);
    apply_rollups(&tx, &rollups)?;
    runs::append(&tx, "llm_hourly_runs", &rollups.hourly_runs)?;
    runs::append(&tx, "llm_key_daily_runs", &rollups.key_daily_runs)?;
    for session_id in &replaced_sessions {
        tx.prepare_cached(&crate::rows::recount_session_sql("?1"))?
            .execute([session_id])?;
    }
    tx.commit()?;
    Ok(outcome)
}

/// Deletes the stored versions of `rows` that [`WriteMode::Replace`] replaces, and takes
/// them out of the roll-ups; returns the sessions whose counters must be recounted.
fn remove_replaced(
    tx: &rusqlite::Transaction<'_>,
    rows: &[RecordRow],
) -> Result<Vec<String>, rusqlite::Error> {
    let mut sessions = std::collections::BTreeSet::new();
    for row in rows.iter().filter(|r| r.table != Table::Lifecycle) {
        if row.table == Table::Events {
            subtract_rollups(tx, "id", &row.id)?;
        }
        let removed: Option<Sql> = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE id = ?1 RETURNING payload",
                row.table.name()
            ))?
            .query_row([&row.id], |r| r.get(0))
            .optional()?;
        if let Some(payload) = removed {
            sessions.insert(row.context.session_id.clone());
            if let Sql::Blob(blob) = payload
                && let Some((block, _, _)) = payload::parse_block_ref(&blob)
            {
                release_block(tx, block, 1)?;
            }
        }
    }
    Ok(sessions.into_iter().collect())
}

/// Takes `rows` rows out of block `id`'s count, and the block away when none is left.
fn release_block(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    rows: i64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("UPDATE payload_blocks SET live = live - ?2 WHERE id = ?1")?
        .execute(rusqlite::params![id, rows])?;
    tx.prepare_cached("DELETE FROM payload_blocks WHERE id = ?1 AND live <= 0")?
        .execute([id])?;
    Ok(())
}

/// Adds deltas to both roll-ups.
fn apply_rollups(tx: &rusqlite::Transaction<'_>, rollups: &Rollups) -> Result<(), rusqlite::Error> {
    apply_rollup(tx, "llm_hourly", &rollups.hourly)?;
    apply_rollup(tx, "llm_key_daily", &rollups.key_daily)
}

/// Adds deltas to one roll-up table.
fn apply_rollup(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    deltas: &std::collections::BTreeMap<RollupKey, RollupDelta>,
) -> Result<(), rusqlite::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=ROLLUP_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect();
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {table} ({}) VALUES ({}) {}",
        ROLLUP_COLUMNS.join(", "),
        placeholders.join(", "),
        crate::rows::rollup_upsert_tail(table)
    ))?;
    for (k, d) in deltas {
        let t = d.tokens;
        upsert.execute(rusqlite::params![
            k.hour,
            k.org,
            k.workspace,
            k.provider,
            k.model,
            k.api_key_hash,
            k.request_path,
            d.calls,
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            t[5],
            d.cost,
            d.reported_cost,
            d.computed_cost,
            d.errors,
            d.http_4xx,
            d.http_5xx,
            d.latency_sum,
            d.latency_count
        ])?;
    }
    Ok(())
}

/// Takes the LLM calls whose `column` equals `value` (a session's, or one event) out
/// of the roll-ups.
fn subtract_rollups(
    tx: &rusqlite::Transaction<'_>,
    column: &str,
    value: &str,
) -> Result<(), rusqlite::Error> {
    let mut rollups = crate::rows::RollupsBuilder::default();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT ts, {} FROM events WHERE {column} = ?1 AND event_type = 'llm'",
        crate::rows::ROLLUP_SOURCE_COLUMNS
    ))?;
    let mut rows = stmt.query([value])?;
    while let Some(r) = rows.next()? {
        let columns = crate::rows::stored_llm_columns(
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            [
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
            ],
            r.get(13)?,
            r.get(14)?,
            &r.get::<_, String>(15)?,
            r.get(16)?,
            r.get(17)?,
            r.get(18)?,
        );
        rollups.add(r.get(0)?, &r.get(1)?, &r.get(2)?, &columns, -1);
    }
    drop(rows);
    drop(stmt);
    let rollups = rollups.finish();
    if rollups.is_empty() {
        return Ok(());
    }
    apply_rollups(tx, &rollups)?;
    runs::remove(tx, "llm_hourly_runs", &rollups.hourly_runs)?;
    runs::remove(tx, "llm_key_daily_runs", &rollups.key_daily_runs)?;
    tx.execute("DELETE FROM llm_hourly WHERE calls <= 0", [])?;
    tx.execute("DELETE FROM llm_key_daily WHERE calls <= 0", [])?;
    Ok(())
}

/// Keeps the derived tables pointing at the earliest lifecycle record of each kind,
/// as the fold does.
fn apply_lifecycle(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    id: &str,
    ts: i64,
    change: &Lifecycle,
) -> Result<(), rusqlite::Error> {
    match change {
        Lifecycle::SessionStarted { metadata } => {
            tx.prepare_cached(
                "UPDATE sessions SET metadata = ?3, start_ts = ?4, start_id = ?2
                 WHERE session_id = ?1 AND (start_ts IS NULL OR (start_ts, start_id) > (?4, ?2))",
            )?
            .execute(rusqlite::params![session_id, id, metadata, ts])?;
        }
        Lifecycle::SessionEnded => {
            tx.prepare_cached(
                "UPDATE sessions SET ended_at = ?3, end_id = ?2
                 WHERE session_id = ?1 AND (ended_at IS NULL OR (ended_at, end_id) > (?3, ?2))",
            )?
            .execute(rusqlite::params![session_id, id, ts])?;
        }
        Lifecycle::StepStarted {
            step_id,
            step_index,
            turn_number,
            metadata,
        } => {
            tx.prepare_cached(
                "INSERT INTO steps (session_id, step_id, step_index, turn_number, started_at, start_id, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (session_id, step_id) DO UPDATE SET
                     step_index = excluded.step_index, turn_number = excluded.turn_number,
                     started_at = excluded.started_at, start_id = excluded.start_id,
                     metadata = excluded.metadata
                 WHERE steps.started_at IS NULL
                    OR (steps.started_at, steps.start_id) > (excluded.started_at, excluded.start_id)",
            )?
            .execute(rusqlite::params![session_id, step_id, step_index, turn_number, ts, id, metadata])?;
        }
        Lifecycle::StepEnded { step_id } => {
            tx.prepare_cached(
                "INSERT INTO steps (session_id, step_id, completed_at, end_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (session_id, step_id) DO UPDATE SET
                     completed_at = excluded.completed_at, end_id = excluded.end_id
                 WHERE steps.completed_at IS NULL
                    OR (steps.completed_at, steps.end_id) > (excluded.completed_at, excluded.end_id)",
            )?
            .execute(rusqlite::params![session_id, step_id, ts, id])?;
        }
    }
    Ok(())
}

fn session_visible(
    conn: &Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, rusqlite::Error> {
    let tenant: Option<(Option<String>, Option<String>)> = conn
        .query_row(
            "SELECT org, workspace FROM sessions WHERE session_id = ?1",
            [session_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(tenant.is_some_and(|(org, workspace)| scope.allows(org.as_deref(), workspace.as_deref())))
}

fn read_session(
    conn: &mut Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<Option<SessionTrace>, ReadError> {
    let backend = |e: rusqlite::Error| ReadError::Backend(classify(&e));
    // One read transaction: a consistent snapshot across the tables.
    let tx = conn.transaction().map_err(backend)?;
    if !session_visible(&tx, session_id, scope).map_err(backend)? {
        return Ok(None);
    }
    let mut records: Vec<Record> = Vec::new();
    let mut payloads = payload::PayloadReader::default();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE session_id = ?1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([session_id]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            records.push(
                stored_columns(row, &tx, &mut payloads)
                    .map_err(backend)?
                    .into_record()?,
            );
        }
    }
    Ok(SessionTrace::from_records(records).into_iter().next())
}

/// A stored row's shared columns; `conn` and `payloads` read the blocks its payload may
/// point into.
fn stored_columns(
    row: &rusqlite::Row<'_>,
    conn: &Connection,
    payloads: &mut payload::PayloadReader,
) -> Result<StoredColumns, rusqlite::Error> {
    Ok(StoredColumns {
        id: row.get(0)?,
        kind: row.get(1)?,
        ts: row.get(2)?,
        context: sonde_model::Context {
            session_id: row.get(3)?,
            step_id: row.get(4)?,
            org: row.get(5)?,
            workspace: row.get(6)?,
            trace_id: row.get(7)?,
            span_id: row.get(8)?,
            parent_span_id: row.get(9)?,
        },
        payload: payloads.unpack(Some(conn), row.get_ref(10)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Blob, e.into())
        })?,
    })
}

fn delete_session(
    conn: &mut Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !session_visible(&tx, session_id, scope)? {
        return Ok(false);
    }
    subtract_rollups(&tx, "session_id", session_id)?;
    for table in Table::ALL
        .iter()
        .map(|t| t.name())
        .chain(["payload_blocks", "steps", "sessions"])
    {
        tx.execute(
            &format!("DELETE FROM {table} WHERE session_id = ?1"),
            [session_id],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

/// Binds a JSON value: booleans as 0 / 1 (as SQLite stores them), arrays and objects as
/// JSON text.
fn json_to_sql(value: &Value) -> Sql {
    match value {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Sql::Integer)
            .unwrap_or_else(|| Sql::Real(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

fn sql_to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(b.iter().map(|byte| format!("{byte:02x}")).collect()),
    }
}

fn sql_error(e: rusqlite::Error) -> QueryError {
    match e {
        rusqlite::Error::MultipleStatement => QueryError::NotReadOnly,
        other => QueryError::Sql(other.to_string()),
    }
}

/// Runs one read-only statement, turning each row into a `T` with `row_of` (given the
/// column count); refuses anything that could write.
fn read_only<T>(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    mut row_of: impl FnMut(&rusqlite::Row<'_>, usize) -> Result<T, rusqlite::Error>,
) -> Result<(Vec<String>, Vec<T>), QueryError> {
    if !crate::starts_read_only(sql) {
        return Err(QueryError::NotReadOnly);
    }
    // query_only makes SQLite itself refuse any write, whatever the statement says.
    conn.pragma_update(None, "query_only", true)
        .map_err(sql_error)?;
    let result = (|| {
        let mut stmt = conn.prepare(sql).map_err(sql_error)?;
        if !stmt.readonly() {
            return Err(QueryError::NotReadOnly);
        }
        let expected = stmt.parameter_count();
        if params.len() != expected {
            return Err(QueryError::Param {
                index: params.len().min(expected) + 1,
                reason: format!(
                    "the query takes {expected} parameters, {} given",
                    params.len()
                ),
            });
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let bound: Vec<Sql> = params.iter().map(json_to_sql).collect();
        let mut rows = stmt
            .query(params_from_iter(bound.iter()))
            .map_err(sql_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            out.push(row_of(row, columns.len()).map_err(sql_error)?);
        }
        Ok((columns, out))
    })();
    conn.pragma_update(None, "query_only", false)
        .map_err(sql_error)?;
    result
}

fn run_query(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
) -> Result<QueryResult, QueryError> {
    let (columns, rows) = read_only(conn, sql, params, |row, n| {
        (0..n).map(|i| row.get_ref(i).map(sql_to_json)).collect()
    })?;
    Ok(QueryResult { columns, rows })
}

/// Runs a read-only statement whose last column is packed values (see
/// [`crate::latency_runs`]) and whose others are the group.
fn read_values(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<crate::GroupValues>, QueryError> {
    let (_, rows) = read_only(conn, sql, params, |row, n| {
        let group = (0..n.saturating_sub(1))
            .map(|i| row.get::<_, Option<String>>(i))
            .collect::<Result<_, _>>()?;
        let mut values = Vec::new();
        if let ValueRef::Blob(bytes) = row.get_ref(n.saturating_sub(1))? {
            crate::latency_runs::unpack_into(bytes, &mut values);
        }
        Ok((group, values))
    })?;
    Ok(rows)
}

#[async_trait]
impl TraceStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let (session_id, scope) = (session_id.to_owned(), scope.clone());
        Self::run(&self.readers, move |conn| {
            read_session(conn, &session_id, &scope)
        })
        .await
        .ok_or(ReadError::Closed)?
    }

    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        let (session_id, scope) = (session_id.to_owned(), scope.clone());
        Self::run(&self.writer, move |conn| {
            delete_session(conn, &session_id, &scope)
        })
        .await
        .ok_or(ReadError::Closed)?
        .map_err(|e| ReadError::Backend(classify(&e)))
    }

    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Sqlite
    }

    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[crate::SyncCursor],
    ) -> Result<(), WriteError> {
        let (source, cursors) = (source.to_owned(), cursors.to_vec());
        Self::run(&self.writer, move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let [position_sql, state_sql] = crate::cursors::upsert_sql(|i| format!("?{i}"));
                let mut positions = tx.prepare_cached(&position_sql)?;
                let mut states = tx.prepare_cached(&state_sql)?;
                for c in &cursors {
                    positions.execute(rusqlite::params![source, c.path, c.position])?;
                    states.execute(rusqlite::params![source, c.path, c.state])?;
                }
            }
            tx.commit()
        })
        .await
        .ok_or(WriteError::Closed)?
        .map_err(|e| WriteError::Backend(classify(&e)))
    }

    async fn create_api_key(&self, key: &crate::ApiKey) -> Result<(), WriteError> {
        let key = key.clone();
        Self::run(&self.writer, move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO api_keys ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    crate::keys::KEY_COLUMNS
                ),
                rusqlite::params![
                    key.id,
                    key.name,
                    key.org,
                    key.workspace,
                    i64::from(key.admin),
                    key.secret_hash,
                    key.created_at.as_micros(),
                    key.revoked_at.map(|t| t.as_micros())
                ],
            )
        })
        .await
        .ok_or(WriteError::Closed)?
        .map(|_| ())
        .map_err(|e| WriteError::Backend(classify(&e)))
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        let id = id.to_owned();
        Self::run(&self.writer, move |conn| {
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                rusqlite::params![id, Timestamp::now().as_micros()],
            )
        })
        .await
        .ok_or(WriteError::Closed)?
        .map(|n| n > 0)
        .map_err(|e| WriteError::Backend(classify(&e)))
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        Self::run(&self.readers, move |conn| run_query(conn, &sql, &params))
            .await
            .ok_or(QueryError::Closed)?
    }

    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::GroupValues>, QueryError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        Self::run(&self.readers, move |conn| read_values(conn, &sql, &params))
            .await
            .ok_or(QueryError::Closed)?
    }
}
