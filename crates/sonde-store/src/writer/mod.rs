//! The writer: a bounded queue in front of any store that batches, retries, and —
//! where a plain writer would drop — spools to local disk and replays later.
//!
//! ```text
//! enqueue ─► queue (bounded) ─► workers ─► batch by size / time ─► store.write
//!    │ full                         │ store unreachable after retries
//!    ▼                              ▼
//!  spool (fsynced, checksummed) ◄───┘ ──► replay in order once the store answers
//! ```
//!
//! While the spool holds anything, new batches are appended to it too, so that records
//! reach the store in the order they were accepted. Only when the spool's cap is
//! reached is anything dropped — counted, logged and shown in the diagnostics.

mod diagnostics;
mod spool;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sonde_model::{Record, RetryPolicy, Timestamp};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::{ErrorClass, TraceStore, WriteError};
pub use diagnostics::{LastFailure, Pressure, WriteEnd, WriterDiagnostics, WriterMetrics};
use spool::{Appended, Next, Spool};
pub use spool::{Corruption, SPOOL_FILE, SpoolError};

/// Records the queue holds before new ones go to the spool.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// The most records in one store write.
pub const DEFAULT_BATCH_SIZE: usize = 8_192;
/// How long a partial batch waits for more records.
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_millis(50);
/// The spool's size cap.
pub const DEFAULT_SPOOL_CAP: u64 = 1 << 30;
/// Attempts of a failing write before its batch is spooled.
pub const DEFAULT_WRITE_ATTEMPTS: u32 = 3;
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`], each with jitter
/// (the retry policy every sink shares: [`sonde_model::RetryPolicy`]).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// The longest delay between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A store write that takes longer counts as a timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The file, in the spool folder, that keeps batches the store refused for good.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// How a writer behaves. `Default` gives the named constants and no spool.
///
/// ```
/// let config = sonde_store::WriterConfig { spool_dir: Some("/var/lib/sonde/spool".into()), ..Default::default() };
/// assert_eq!(config.batch_size, sonde_store::DEFAULT_BATCH_SIZE);
/// ```
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records the queue holds before new ones go to the spool.
    pub queue_capacity: usize,
    /// The most records in one store write.
    pub batch_size: usize,
    /// How long a partial batch waits for more records.
    pub batch_timeout: Duration,
    /// Concurrent store writes.
    pub workers: usize,
    /// Where to spool; without one, what the store cannot take is dropped (counted).
    pub spool_dir: Option<PathBuf>,
    /// The spool's size cap in bytes.
    pub spool_cap: u64,
    /// Attempts of a failing write before its batch is spooled.
    pub write_attempts: u32,
    /// A store write that takes longer counts as a timeout.
    pub write_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_timeout: DEFAULT_BATCH_TIMEOUT,
            workers: 1,
            spool_dir: None,
            spool_cap: DEFAULT_SPOOL_CAP,
            write_attempts: DEFAULT_WRITE_ATTEMPTS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// Why a writer could not start.
///
/// ```
/// assert!(sonde_store::WriterError::NoRuntime.to_string().contains("tokio"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The writer's tasks need a Tokio runtime.
    #[error("the writer must be started inside a tokio runtime")]
    NoRuntime,
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// What happened to records handed to [`Writer::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// In the queue.
    Queued,
    /// The queue was full (or closing): durably in the spool.
    Spooled,
    /// The queue was full and the spool too (or there is none): lost, and counted.
    Dropped,
}

/// What [`Writer::shutdown`] could and could not do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShutdownReport {
    /// Records stored over the writer's life.
    pub written: u64,
    /// Records dropped over the writer's life.
    pub dropped: u64,
    /// Bytes left in the spool (replayed at the next start).
    pub left_in_spool_bytes: u64,
    /// Whether everything was written before the deadline.
    pub complete: bool,
}

use serde::Serialize;

/// The records waiting in the spool folder `dir`, in replay order, and the damage (if
/// any) that ends them. Reads only: nothing is moved or replayed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let (records, damage) = sonde_store::read_spool(dir.path()).unwrap();
/// assert!(records.is_empty() && damage.is_none());
/// ```
pub fn read_spool(dir: &std::path::Path) -> Result<(Vec<Record>, Option<String>), SpoolError> {
    spool::read_all(dir)
}

/// Maps a write error to its class: `connection`, `timeout`, `contention`,
/// `constraint` or `unknown`.
///
/// ```
/// use sonde_store::{classify_write_error, ErrorClass, WriteError};
/// assert_eq!(classify_write_error(&WriteError::Closed), ErrorClass::Connection);
/// ```
pub fn classify_write_error(error: &WriteError) -> ErrorClass {
    error.class()
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    spooled: AtomicU64,
    enqueue_waits: AtomicU64,
    enqueue_wait_micros: AtomicU64,
    replayed: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    spool_damaged: AtomicU64,
}

struct Shared {
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    queue: Mutex<Option<mpsc::UnboundedSender<Vec<Record>>>>,
    depth: AtomicUsize,
    high_watermark: AtomicUsize,
    counters: Counters,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    last_failure: Mutex<Option<LastFailure>>,
    spool: Option<Arc<Spool>>,
    metrics: RwLock<WriterMetrics>,
    /// Batches being written, by worker, so that a shutdown past its deadline can spool
    /// them.
    in_flight: Mutex<HashMap<usize, Arc<Vec<Record>>>>,
    replay_wake: Notify,
    idle: Notify,
    /// Woken whenever workers take records off the queue.
    room: Notify,
    shutting_down: AtomicBool,
}

/// The writer. Cheap to share (`Arc`); dropping it without [`Writer::shutdown`] leaves
/// queued records unwritten (spooled ones replay at the next start).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_model::*;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let writer = sonde_store::Writer::start(store.clone(), Default::default())?;
/// writer.enqueue(vec![Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()))]);
/// let report = writer.shutdown(std::time::Duration::from_secs(5)).await;
/// assert!(report.complete);
/// assert_eq!(report.written, 1);
/// # Ok(()) }
/// ```
pub struct Writer {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    replayer: Mutex<Option<JoinHandle<()>>>,
    /// Damage found in the spool when it was opened.
    pub opened_with_damage: Option<Corruption>,
}

/// The writer's retries: [`WriterConfig::write_attempts`] attempts, waits from
/// [`INITIAL_BACKOFF`] doubling up to [`MAX_BACKOFF`], with jitter (the policy every
/// sink shares).
fn retry_policy(config: &WriterConfig) -> RetryPolicy {
    RetryPolicy::new(config.write_attempts, INITIAL_BACKOFF, MAX_BACKOFF)
}

impl Writer {
    /// Starts the writer's workers (and, with a spool, its replayer, which first
    /// replays what a previous process left). Must be called inside a Tokio runtime.
    pub fn start(store: Arc<dyn TraceStore>, config: WriterConfig) -> Result<Self, WriterError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WriterError::NoRuntime)?;
        let (spool, damage) = match &config.spool_dir {
            Some(dir) => {
                let (spool, damage) = Spool::open(dir, config.spool_cap)?;
                (Some(Arc::new(spool)), damage)
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store,
            queue: Mutex::new(Some(tx)),
            depth: AtomicUsize::new(0),
            high_watermark: AtomicUsize::new(0),
            counters: Counters::default(),
            failures: Mutex::new(BTreeMap::new()),
            last_failure: Mutex::new(None),
            spool,
            metrics: RwLock::new(WriterMetrics::default()),
            in_flight: Mutex::new(HashMap::new()),
            replay_wake: Notify::new(),
            idle: Notify::new(),
            room: Notify::new(),
            shutting_down: AtomicBool::new(false),
            config,
        });
        if damage.is_some() {
            shared
                .counters
                .spool_damaged
                .fetch_add(1, Ordering::Relaxed);
        }
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let workers = (0..shared.config.workers.max(1))
            .map(|id| runtime.spawn(work(shared.clone(), rx.clone(), id)))
            .collect();
        let replayer = shared
            .spool
            .as_ref()
            .map(|spool| runtime.spawn(replay(shared.clone(), spool.clone())));
        Ok(Self {
            shared,
            workers: Mutex::new(workers),
            replayer: Mutex::new(replayer),
            opened_with_damage: damage,
        })
    }

    /// The store the writer writes into.
    pub fn store(&self) -> &Arc<dyn TraceStore> {
        &self.shared.store
    }

    /// Replaces the metrics callbacks.
    pub fn set_metrics(&self, metrics: WriterMetrics) {
        *self
            .shared
            .metrics
            .write()
            .unwrap_or_else(|p| p.into_inner()) = metrics;
    }

    /// Hands records to the writer. Never waits for the store: when the queue is full
    /// the records go to the spool (a disk write on this thread), and only when the
    /// spool is full too are they dropped (counted, logged, in the diagnostics).
    pub fn enqueue(&self, records: Vec<Record>) -> Enqueued {
        let n = records.len();
        if n == 0 {
            return Enqueued::Queued;
        }
        self.count_accepted(n);
        let depth = self.shared.depth.fetch_add(n, Ordering::AcqRel) + n;
        self.queue_or_spool(records, depth <= self.shared.config.queue_capacity)
    }

    /// Hands records to the writer, first waiting up to `wait` for room in the queue:
    /// a writer behind slows its callers down (back-pressure) instead of spooling, so
    /// that the spool only takes what the store cannot take in time (an outage, a long
    /// stall). Once the spool holds records, nobody waits: they go to it at once. A
    /// queue that is empty takes any number of records at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sonde_model::*;
    /// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
    /// let writer = sonde_store::Writer::start(store, Default::default())?;
    /// let record = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
    /// let wait = std::time::Duration::from_secs(5);
    /// assert_eq!(writer.enqueue_within(vec![record], wait).await, sonde_store::Enqueued::Queued);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_within(&self, records: Vec<Record>, wait: Duration) -> Enqueued {
        let n = records.len();
        if n == 0 {
            return Enqueued::Queued;
        }
        self.count_accepted(n);
        let shared = &self.shared;
        let capacity = shared.config.queue_capacity;
        let started = tokio::time::Instant::now();
        let until = started + wait;
        let mut waited = false;
        let outcome = loop {
            // Made before looking, so that room made in between still wakes it.
            let room = shared.room.notified();
            let depth = shared.depth.load(Ordering::Acquire);
            if depth + n <= capacity || depth == 0 {
                // Reserve the room, unless another caller took it first.
                if shared
                    .depth
                    .compare_exchange(depth, depth + n, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    break self.queue_or_spool(records, true);
                }
                continue;
            }
            // With records in the spool the store is out or behind: waiting would only
            // stall the caller (an exporter with one request in flight would drop spans).
            let spooling = shared.spool.as_ref().is_some_and(|s| s.pending_bytes() > 0);
            if spooling || tokio::time::Instant::now() >= until {
                let depth = shared.depth.fetch_add(n, Ordering::AcqRel) + n;
                break self.queue_or_spool(records, depth <= capacity);
            }
            waited = true;
            let _ = tokio::time::timeout_at(until, room).await;
        };
        if waited {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            shared
                .counters
                .enqueue_waits
                .fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .enqueue_wait_micros
                .fetch_add(micros, Ordering::Relaxed);
        }
        outcome
    }

    fn count_accepted(&self, n: usize) {
        self.shared
            .counters
            .accepted
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Some(f) = &self.shared.metrics().on_enqueue {
            f(n);
        }
    }

    /// Queues `records` (already counted in the depth) when `fits`, else spools them.
    fn queue_or_spool(&self, records: Vec<Record>, fits: bool) -> Enqueued {
        let shared = &self.shared;
        let n = records.len();
        let queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        match queue.as_ref() {
            Some(tx) if fits => {
                shared
                    .high_watermark
                    .fetch_max(shared.depth.load(Ordering::Relaxed), Ordering::Relaxed);
                match tx.send(records) {
                    Ok(()) => Enqueued::Queued,
                    Err(mpsc::error::SendError(records)) => {
                        // The workers are gone: keep the records in the spool.
                        drop(queue);
                        shared.depth.fetch_sub(n, Ordering::AcqRel);
                        shared.spool_or_drop(&records, "writer stopped")
                    }
                }
            }
            _ => {
                drop(queue);
                shared.depth.fetch_sub(n, Ordering::AcqRel);
                shared
                    .high_watermark
                    .fetch_max(shared.config.queue_capacity, Ordering::Relaxed);
                shared.spool_or_drop(&records, "queue full")
            }
        }
    }

    /// Waits until every record enqueued so far has been written, spooled or dropped.
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.depth.load(Ordering::Acquire) == 0 && self.shared.in_flight_is_empty() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), idle).await;
        }
    }

    /// Waits until the spool is replayed (or `timeout` passes); true when it is empty.
    pub async fn drain_spool(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            self.flush().await;
            let pending = self.shared.spool.as_ref().map_or(0, |s| s.pending_bytes());
            if pending == 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            self.shared.replay_wake.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A snapshot of the queue, the counters and the failures.
    pub fn diagnostics(&self) -> WriterDiagnostics {
        let s = &self.shared;
        let capacity = s.config.queue_capacity.max(1);
        let depth = s.depth.load(Ordering::Relaxed);
        let high = s.high_watermark.load(Ordering::Relaxed);
        let pct = |n: usize| (n as u64 * 100) / capacity as u64;
        let c = &s.counters;
        WriterDiagnostics {
            store_backend: s.store.backend(),
            queue_capacity: s.config.queue_capacity,
            queue_depth: depth,
            queue_high_watermark: high,
            queue_utilisation_pct: pct(depth),
            pressure: Pressure::from_utilisation(pct(depth)),
            high_watermark_pressure: Pressure::from_utilisation(pct(high)),
            accepted: c.accepted.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            enqueue_waits: c.enqueue_waits.load(Ordering::Relaxed),
            enqueue_wait_seconds: c.enqueue_wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
            replayed: c.replayed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            spool_pending_bytes: s.spool.as_ref().map_or(0, |sp| sp.pending_bytes()),
            spool_damaged: c.spool_damaged.load(Ordering::Relaxed),
            failures_by_class: s.failures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            last_failure: s
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Stops accepting into the queue (later records go to the spool), writes what is
    /// queued, replays the spool, and stops — by `deadline`. What could not be written
    /// by then is in the spool, replayed at the next start; the report says how much.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now() + deadline;
        self.shared.shutting_down.store(true, Ordering::Release);
        drop(
            self.shared
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let workers: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        let mut complete = true;
        for worker in workers {
            let left = until.saturating_duration_since(Instant::now());
            let abort = worker.abort_handle();
            if tokio::time::timeout(left, worker).await.is_err() {
                abort.abort();
                complete = false;
            }
        }
        // Batches a worker was still writing when it was stopped: keep them.
        let stranded: Vec<Arc<Vec<Record>>> = self
            .shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, batch)| batch)
            .collect();
        for batch in stranded {
            self.shared.spool_or_drop(&batch, "shutdown deadline");
        }
        if self.shared.spool.is_some() {
            let left = until.saturating_duration_since(Instant::now());
            if !self.drain_spool(left).await {
                complete = false;
            }
        }
        if let Some(replayer) = self
            .replayer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            replayer.abort();
        }
        let d = self.diagnostics();
        if !complete {
            tracing::warn!(
                left_in_spool_bytes = d.spool_pending_bytes,
                "writer shut down before everything was written; the spool replays at the next start"
            );
        }
        ShutdownReport {
            written: d.written,
            dropped: d.dropped,
            left_in_spool_bytes: d.spool_pending_bytes,
            complete: complete && d.spool_pending_bytes == 0,
        }
    }
}

impl Shared {
    fn metrics(&self) -> WriterMetrics {
        self.metrics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn in_flight_is_empty(&self) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn note_failure(&self, error: &WriteError) {
        let class = error.class().as_str();
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(class)
            .or_default() += 1;
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastFailure {
            at: Timestamp::now(),
            class,
            message: error.to_string(),
        });
    }

    /// Puts records in the spool, or counts them dropped when there is no room.
    fn spool_or_drop(&self, records: &[Record], why: &'static str) -> Enqueued {
        let n = records.len();
        let appended = match &self.spool {
            Some(spool) => spool.append(records),
            None => Ok(Appended::Full),
        };
        match appended {
            Ok(Appended::Yes) => {
                self.counters.spooled.fetch_add(n as u64, Ordering::Relaxed);
                self.replay_wake.notify_one();
                Enqueued::Spooled
            }
            Ok(Appended::Full) => {
                self.drop_records(n, why, "spool full or not configured");
                Enqueued::Dropped
            }
            Err(e) => {
                self.drop_records(n, why, &e.to_string());
                Enqueued::Dropped
            }
        }
    }

    fn drop_records(&self, n: usize, why: &str, reason: &str) {
        self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(f) = &self.metrics().on_drop {
            f(n);
        }
        tracing::error!(records = n, cause = why, reason, "records dropped");
    }

    /// Keeps records the store refused for good in `rejected.jsonl`.
    fn reject(&self, records: &[Record], error: &WriteError) {
        self.counters
            .rejected
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::error!(records = records.len(), error = %error, "store refused records for good");
        let Some(dir) = &self.config.spool_dir else {
            self.drop_records(records.len(), "rejected", "no spool folder to keep them in");
            return;
        };
        let path = dir.join(REJECTED_FILE);
        let kept = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                for r in records {
                    f.write_all(r.to_json_line().as_bytes())?;
                    f.write_all(b"\n")?;
                }
                f.sync_data()
            });
        if let Err(e) = kept {
            self.drop_records(records.len(), "rejected", &e.to_string());
        }
    }

    /// One store write, timed out, with the metrics callbacks.
    async fn write_once(&self, records: &[Record]) -> Result<crate::WriteOutcome, WriteError> {
        let metrics = self.metrics();
        let end = metrics.on_write_start.as_ref().map(|f| f(records.len()));
        let result = match tokio::time::timeout(
            self.config.write_timeout,
            self.store.write(records),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(WriteError::Backend(crate::BackendError::new(
                ErrorClass::Timeout,
                format!(
                    "store write took longer than {:?}",
                    self.config.write_timeout
                ),
            ))),
        };
        if let Some(end) = end {
            end(result.as_ref().map(|_| ()));
        }
        match &result {
            Ok(outcome) => {
                self.counters
                    .written
                    .fetch_add(outcome.written as u64, Ordering::Relaxed);
                self.counters
                    .duplicates
                    .fetch_add(outcome.duplicates as u64, Ordering::Relaxed);
                if let Some(f) = &metrics.on_write_success {
                    f(outcome.written);
                }
            }
            Err(e) => self.note_failure(e),
        }
        result
    }

    /// Writes a batch taken from the queue: straight to the store, or — while the spool
    /// holds a backlog, or after the retries — to the spool.
    async fn handle(self: &Arc<Self>, batch: Arc<Vec<Record>>) {
        let started = Instant::now();
        let backlog = self.spool.as_ref().is_some_and(|s| s.pending_bytes() > 0);
        if backlog {
            self.spool_blocking(batch.clone(), "spool backlog").await;
        } else {
            let mut delays = retry_policy(&self.config).delays();
            loop {
                match self.write_once(&batch).await {
                    Ok(_) => break,
                    Err(e) if !e.class().is_transient() => {
                        self.reject(&batch, &e);
                        break;
                    }
                    Err(e) => match delays.next() {
                        Some(wait) if !self.shutting_down.load(Ordering::Acquire) => {
                            tokio::time::sleep(wait).await;
                        }
                        _ => {
                            tracing::warn!(records = batch.len(), error = %e, "store unavailable; spooling");
                            self.spool_blocking(batch.clone(), "store unavailable")
                                .await;
                            break;
                        }
                    },
                }
            }
        }
        if let Some(f) = &self.metrics().on_flush {
            f(batch.len(), started.elapsed());
        }
    }

    async fn spool_blocking(self: &Arc<Self>, batch: Arc<Vec<Record>>, why: &'static str) {
        let shared = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            shared.spool_or_drop(&batch, why);
        })
        .await;
        if done.is_err() {
            tracing::error!("spooling task failed");
        }
    }
}

/// A worker: takes batches from the queue and writes them.
async fn work(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<Record>>>>,
    id: usize,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = first;
            let until = tokio::time::Instant::now() + shared.config.batch_timeout;
            while batch.len() < shared.config.batch_size {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(more)) => batch.extend(more),
                    Ok(None) | Err(_) => break,
                }
            }
            batch
        };
        let batch = Arc::new(batch);
        shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, batch.clone());
        shared.depth.fetch_sub(batch.len(), Ordering::AcqRel);
        shared.room.notify_waiters();
        // Batches larger than the store batch size (one big enqueue) are written in parts.
        if batch.len() > shared.config.batch_size {
            for part in batch.chunks(shared.config.batch_size) {
                shared.handle(Arc::new(part.to_vec())).await;
            }
        } else {
            shared.handle(batch).await;
        }
        shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        shared.idle.notify_waiters();
    }
}

/// The replayer: writes spooled batches back into the store, oldest first.
async fn replay(shared: Arc<Shared>, spool: Arc<Spool>) {
    let policy = retry_policy(&shared.config);
    let mut delays = policy.endless_delays();
    loop {
        let s = spool.clone();
        let next = tokio::task::spawn_blocking(move || s.next_batch()).await;
        let next = match next {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the spool");
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            }
            Err(_) => return,
        };
        match next {
            Next::Empty => {
                delays = policy.endless_delays();
                let _ = tokio::time::timeout(Duration::from_secs(1), shared.replay_wake.notified())
                    .await;
            }
            Next::Damaged(c) => {
                shared
                    .counters
                    .spool_damaged
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(offset = c.offset, bytes = c.bytes, reason = %c.reason, quarantined_to = %c.quarantined_to.display(), "damaged spool batch moved aside");
            }
            Next::Batch { records, next } => {
                let result = shared.write_once(&records).await;
                match result {
                    Err(e) if e.class().is_transient() => {
                        tokio::time::sleep(delays.next().unwrap_or(MAX_BACKOFF)).await;
                        continue;
                    }
                    Err(e) => shared.reject(&records, &e),
                    Ok(_) => {
                        delays = policy.endless_delays();
                        shared
                            .counters
                            .replayed
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                    }
                }
                let s = spool.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.consumed(next)).await {
                    tracing::error!(error = %e, "cannot record replay progress; batches may replay twice (harmless)");
                }
            }
        }
    }
}
