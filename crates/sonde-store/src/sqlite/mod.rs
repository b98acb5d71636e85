//! The embedded SQLite backend.
//!
//! One dedicated thread owns the connection that writes; for a database file, two more
//! threads own read-only connections (WAL lets them read while the writer writes). Async
//! callers hand work to those threads and await the answer, so SQLite never runs on an
//! async runtime's worker threads.

mod backup;
mod cursors;
mod keys;
mod payload;
mod query;
mod read;
mod records;
mod rollups;
mod runs;
mod schema;
mod write;

pub use backup::{BackupError, backup_sqlite};

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags};

use crate::error::ClosedError;
use crate::{BackendError, CallPricer, ErrorClass, OpenError, WriteError};

/// Read-only connections kept for a database file.
const READER_THREADS: usize = 2;

/// Read-only connections kept for statements from outside
/// ([`SqlQuery::query_limited`](crate::SqlQuery::query_limited)), apart from the
/// readers: a runaway query holds one of these until its timeout, never a reader that
/// key lookups and the store's own reads need.
const QUERY_THREADS: usize = 2;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The embedded SQLite store: a database file in WAL mode, or a throwaway one in memory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = sonde_store::SqliteStore::open(dir.path().join("traces.db")).await?;
/// use sonde_store::SqlQuery;
/// assert_eq!(store.backend(), "sqlite");
/// # Ok(()) }
/// ```
pub struct SqliteStore {
    writer: Sender<Job>,
    readers: Sender<Job>,
    /// The threads of statements from outside (in memory: the one thread).
    queries: Sender<Job>,
    path: Option<PathBuf>,
    /// The checkpointer: dropping the sender stops it; the store's drop waits for it.
    checkpointer: Option<(Sender<Job>, std::thread::JoinHandle<()>)>,
    /// What computes the cost of an LLM call ([`SqliteStore::priced_by`]).
    pricer: Option<CallPricer>,
    /// Which database this is.
    database: crate::DatabaseIdentity,
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

/// A failed write's error.
fn write_failed(e: rusqlite::Error) -> WriteError {
    WriteError::Backend(classify(&e))
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

/// `count` threads named `sonde-sqlite-{role}-N`, each owning a read-only connection
/// to `path`, taking jobs from the returned sender.
fn spawn_readers(
    path: &Path,
    url: &str,
    role: &str,
    count: usize,
) -> Result<Sender<Job>, OpenError> {
    let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
    for n in 0..count {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| schema::open_failed(url, &e))?;
        configure(&conn, path)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| schema::open_failed(url, &e))?;
        spawn_thread(format!("sonde-sqlite-{role}-{n}"), conn, receiver.clone()).map_err(|e| {
            OpenError::Backend {
                url: url.to_owned(),
                cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
            }
        })?;
    }
    Ok(jobs)
}

/// How long a connection waits for a lock another connection holds (SQLite's busy
/// timeout), and how long opening waits to switch a new database to WAL.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Puts the database in WAL mode. A new file starts in rollback mode; switching reads
/// the header and then upgrades to a write, and SQLite never waits when upgrading a read
/// (its busy handler is skipped to avoid deadlocks): a second process opening the same
/// new file at that moment got "database is locked". It waits as for any lock.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let url = &path.display().to_string();
    conn.busy_timeout(LOCK_WAIT)
        .map_err(|e| schema::open_failed(url, &e))?;
    conn.execute_batch(
        &format!(
            "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{PAGE_CACHE_KIB};"
        ),
    )
    .map_err(|e| schema::open_failed(url, &e))?;
    register_functions(conn, Some(path)).map_err(|e| schema::open_failed(url, &e))
}

/// The store's own SQL functions: `sonde_payload(payload)`, `sonde_id_hash(id)`,
/// `sonde_packed(x)` and `sonde_sorted(run)`, on a connection to `file` (`None` in memory).
fn register_functions(conn: &Connection, file: Option<&Path>) -> rusqlite::Result<()> {
    payload::register(conn, file)?;
    crate::record_keys::register(conn)?;
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
        switch_to_wal(&conn).map_err(|e| schema::open_failed(&url, &e))?;
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
        let database = crate::DatabaseIdentity {
            id: schema::database_id(&conn).map_err(|e| schema::open_failed(&url, &e))?,
            url: format!("sqlite://{url}"),
        };
        let (writer, writer_jobs) = crossbeam_channel::unbounded::<Job>();
        spawn_thread("sonde-sqlite-writer".into(), conn, writer_jobs).map_err(|e| {
            OpenError::Backend {
                url: url.clone(),
                cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
            }
        })?;
        let readers = spawn_readers(path, &url, "reader", READER_THREADS)?;
        let queries = spawn_readers(path, &url, "query", QUERY_THREADS)?;
        Ok(Self {
            writer,
            readers,
            queries,
            path: Some(path.to_path_buf()),
            checkpointer: Some(checkpointer),
            pricer: None,
            database,
        })
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
        let database = crate::DatabaseIdentity {
            id: schema::database_id(&conn).map_err(|e| schema::open_failed(url, &e))?,
            url: url.to_owned(),
        };
        let (writer, jobs) = crossbeam_channel::unbounded::<Job>();
        spawn_thread("sonde-sqlite-memory".into(), conn, jobs).map_err(|e| OpenError::Backend {
            url: url.to_owned(),
            cause: BackendError::new(ErrorClass::Unknown, e.to_string()),
        })?;
        Ok(Self {
            readers: writer.clone(),
            queries: writer.clone(),
            writer,
            path: None,
            checkpointer: None,
            pricer: None,
            database,
        })
    }

    /// The store, computing the cost of each LLM call it stores with `pricer` (see
    /// [`CallPricer`]); with none, it computes no cost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = sonde_store::SqliteStore::open_in_memory().await.unwrap();
    /// let store = store.priced_by(Some(std::sync::Arc::new(|_: &sonde_model::LlmCall| Some(0.5))));
    /// # }
    /// ```
    pub fn priced_by(mut self, pricer: Option<CallPricer>) -> Self {
        self.pricer = pricer;
        self
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

    /// Runs `work` on one of the store's threads and waits for its answer; "closed"
    /// when the threads are gone.
    async fn run<T: Send + 'static, E: ClosedError + Send + 'static>(
        jobs: &Sender<Job>,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(work(conn));
        });
        if jobs.send(job).is_err() {
            return Err(E::closed());
        }
        rx.await.unwrap_or_else(|_| Err(E::closed()))
    }
}
