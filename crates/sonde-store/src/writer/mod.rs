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
pub use diagnostics::{
    LastFailure, Pressure, WriteEnd, WriteFailure, WriterDiagnostics, WriterMetrics,
};
use spool::{Appended, Next, Spool};
pub use spool::{Corruption, IDENTITY_FILE, LOCK_FILE, SPOOL_FILE, SpoolError};

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
/// Spool folders (lanes) tried before a writer gives up: the spool folder itself, then
/// `lanes/1`... inside it, each taken by one writer at a time.
pub const MAX_SPOOL_LANES: usize = 64;
/// The folder, inside the spool folder, of the lanes of writers that found it taken.
pub const LANES_DIR: &str = "lanes";
/// How often a writer whose spool is empty looks for lanes other writers left.
pub const ADOPT_EVERY: Duration = Duration::from_secs(10);
/// The window of the store latency figures in the diagnostics.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(60);
/// The most store write times kept for them.
pub const LATENCY_SAMPLES: usize = 4_096;
/// Write failure notices waiting for a slow handler ([`Writer::on_write_failure`]) before
/// new ones are skipped.
pub const FAILURE_NOTICES: usize = 1_024;
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
    /// When [`Writer::submit`] answers: once the records are durable (the default), or
    /// as soon as they are queued in memory.
    pub ack: Ack,
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
            ack: Ack::Durable,
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

/// When [`Writer::submit`] answers.
///
/// ```
/// assert_eq!(sonde_store::Ack::default(), sonde_store::Ack::Durable);
/// assert_eq!(sonde_store::Ack::Queued.as_str(), "queued");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// Once the records are committed to the store, or appended to the spool and
    /// fsynced: a crash after the answer loses nothing. Requests that arrive while a
    /// store write is in progress share the next one (group commit).
    #[default]
    Durable,
    /// As soon as the records are in the writer's memory queue: faster, but a crash
    /// loses what was queued and not yet written.
    Queued,
}

impl Ack {
    /// `durable` or `queued`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ack::Durable => "durable",
            Ack::Queued => "queued",
        }
    }
}

/// Where records handed to [`Writer::submit`] are when it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Committed to the store.
    Stored,
    /// Appended to the spool and fsynced; replayed into the store later.
    Spooled,
    /// Refused by the store for good (a constraint, say) and kept, fsynced, in
    /// [`REJECTED_FILE`] in the spool folder.
    SetAside,
    /// In the memory queue only ([`Ack::Queued`]).
    Queued,
}

/// Why [`Writer::submit`] could not accept records.
///
/// ```
/// assert!(sonde_store::SubmitError::Dropped.to_string().contains("full"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue and the spool were full (or there is no spool): the records were
    /// dropped, and counted.
    #[error("the writer's queue and spool are full; the records were not kept")]
    Dropped,
    /// The writer stopped before it could say where the records are.
    #[error("the writer stopped before the records were stored")]
    Stopped,
}

/// What happened to a batch, for the callers waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Stored,
    Spooled,
    SetAside,
    Dropped,
}

impl Outcome {
    fn answer(self) -> Result<Accepted, SubmitError> {
        match self {
            Outcome::Stored => Ok(Accepted::Stored),
            Outcome::Spooled => Ok(Accepted::Spooled),
            Outcome::SetAside => Ok(Accepted::SetAside),
            Outcome::Dropped => Err(SubmitError::Dropped),
        }
    }
}

impl From<Enqueued> for Outcome {
    fn from(e: Enqueued) -> Self {
        match e {
            Enqueued::Queued => Outcome::Stored,
            Enqueued::Spooled => Outcome::Spooled,
            Enqueued::Dropped => Outcome::Dropped,
        }
    }
}

/// Records in the queue, and who waits to hear where they ended up.
struct Item {
    records: Vec<Record>,
    ack: Option<tokio::sync::oneshot::Sender<Outcome>>,
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

/// The operation of a batch written from the queue.
const OPERATION_WRITE: &str = "write";
/// The operation of a batch replayed from the spool.
const OPERATION_REPLAY: &str = "replay";
/// The operation of a batch still being written when a shutdown's deadline passed.
const OPERATION_SHUTDOWN: &str = "shutdown";

/// Where records were dropped: when handed over, or after a store write failed.
#[derive(Debug, Clone, Copy)]
enum Site {
    Enqueue,
    Write(&'static str),
}

/// Store write times over the last [`LATENCY_WINDOW`], at most [`LATENCY_SAMPLES`].
#[derive(Default)]
struct Latencies(Mutex<std::collections::VecDeque<(Instant, Duration)>>);

impl Latencies {
    fn add(&self, took: Duration) {
        let now = Instant::now();
        let mut samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while samples.len() >= LATENCY_SAMPLES
            || samples
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > LATENCY_WINDOW)
        {
            samples.pop_front();
        }
        samples.push_back((now, took));
    }

    /// The median and the 99th percentile, in seconds, of the last minute's writes.
    fn percentiles(&self) -> (Option<f64>, Option<f64>) {
        let now = Instant::now();
        let mut took: Vec<Duration> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= LATENCY_WINDOW)
            .map(|(_, took)| *took)
            .collect();
        if took.is_empty() {
            return (None, None);
        }
        took.sort_unstable();
        let at = |q: f64| {
            let i = ((took.len() - 1) as f64 * q).round() as usize;
            took.get(i).map(Duration::as_secs_f64)
        };
        (at(0.5), at(0.99))
    }
}

/// Drops by site, and when the last ones happened.
#[derive(Default)]
struct Drops {
    enqueue_dropped: u64,
    write_dropped: u64,
    last_enqueue_drop_at: Option<Timestamp>,
    last_write_drop_at: Option<Timestamp>,
    last_write_drop_operation: Option<&'static str>,
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
    rejected: AtomicU64,
    spool_damaged: AtomicU64,
    set_aside_damaged: AtomicU64,
}

struct Shared {
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    queue: Mutex<Option<mpsc::UnboundedSender<Item>>>,
    depth: AtomicUsize,
    high_watermark: AtomicUsize,
    counters: Counters,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    last_failure: Mutex<Option<LastFailure>>,
    drops: Mutex<Drops>,
    /// Store write times of the last minute.
    latencies: Latencies,
    accepted_rate: diagnostics::Rate,
    written_rate: diagnostics::Rate,
    /// A lane another writer left, while this one replays it.
    adopting: Mutex<Option<Arc<Spool>>>,
    /// Where write failures go to the handler's thread ([`Writer::on_write_failure`]).
    failure_hook: Mutex<Option<std::sync::mpsc::SyncSender<WriteFailure>>>,
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
    /// Set by [`Writer::shutdown`] once the writer's own spool is replayed: the replayer
    /// finishes the lane it is replaying (if any), adopts no other, and returns.
    replay_stop: AtomicBool,
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

/// What reports a writer pipeline's diagnostics (the gateway seed's
/// `TracePipelineDiagnosticsReader`): a server can read them without knowing what
/// writes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_store::DiagnosticsReader;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let writer = sonde_store::Writer::start(store, Default::default())?;
/// let reader: &dyn DiagnosticsReader = &writer;
/// assert_eq!(reader.pipeline_diagnostics().queue_depth, 0);
/// # Ok(()) }
/// ```
pub trait DiagnosticsReader: Send + Sync {
    /// A point-in-time snapshot of the pipeline.
    fn pipeline_diagnostics(&self) -> WriterDiagnostics;
}

impl DiagnosticsReader for Writer {
    fn pipeline_diagnostics(&self) -> WriterDiagnostics {
        self.diagnostics()
    }
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
                let (spool, damage) = open_lane(dir, config.spool_cap, store.database())?;
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
            drops: Mutex::new(Drops::default()),
            latencies: Latencies::default(),
            accepted_rate: diagnostics::Rate::default(),
            written_rate: diagnostics::Rate::default(),
            adopting: Mutex::new(None),
            failure_hook: Mutex::new(None),
            spool,
            metrics: RwLock::new(WriterMetrics::default()),
            in_flight: Mutex::new(HashMap::new()),
            replay_wake: Notify::new(),
            idle: Notify::new(),
            room: Notify::new(),
            shutting_down: AtomicBool::new(false),
            replay_stop: AtomicBool::new(false),
            config,
        });
        if let Some(damage) = &damage {
            shared.count_damage(damage);
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

    /// Calls `handler` for every batch that could not be stored — spooled after its
    /// retries, refused by the store for good, or failed while being replayed — with the
    /// operation (`write`, `replay`), the batch size, the records that failed, the error
    /// and its class. The handler runs on a thread of its own, never on the writer's
    /// path; a slow handler misses notices (logged) rather than slowing the writer, and a
    /// handler that panics is caught and logged. A second call replaces the handler.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
    /// let writer = sonde_store::Writer::start(store, Default::default())?;
    /// writer.on_write_failure(|failure| {
    ///     eprintln!("{} of {} records not stored ({}): {}", failure.failed_count, failure.batch_size, failure.error_class.as_str(), failure.error);
    /// });
    /// # Ok(()) }
    /// ```
    pub fn on_write_failure(&self, handler: impl Fn(WriteFailure) + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<WriteFailure>(FAILURE_NOTICES);
        let spawned = std::thread::Builder::new()
            .name("sonde-write-failures".into())
            .spawn(move || {
                for failure in rx {
                    let call = std::panic::AssertUnwindSafe(|| handler(failure));
                    if std::panic::catch_unwind(call).is_err() {
                        tracing::error!(
                            "the write failure handler panicked; it keeps being called"
                        );
                    }
                }
            });
        match spawned {
            Ok(_) => {
                // Replacing the sender ends the previous handler's thread.
                *self
                    .shared
                    .failure_hook
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(tx);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the write failure handler's thread")
            }
        }
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
        let fits = self.reserve(n, wait).await;
        self.queue_or_spool(records, fits)
    }

    /// Hands records to the writer and answers as [`WriterConfig::ack`] says: with
    /// [`Ack::Durable`] (the default) once they are committed to the store or fsynced in
    /// the spool, so that a crash after the answer loses none of them; with
    /// [`Ack::Queued`] once they are queued. Waits up to `wait` for room in the queue,
    /// as [`Writer::enqueue_within`] does. Callers that arrive while a store write is in
    /// progress share the next write and its commit (group commit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sonde_model::*;
    /// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
    /// let writer = sonde_store::Writer::start(store, Default::default())?;
    /// let record = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
    /// let wait = std::time::Duration::from_secs(5);
    /// assert_eq!(writer.submit(vec![record], wait).await?, sonde_store::Accepted::Stored);
    /// # Ok(()) }
    /// ```
    pub async fn submit(
        &self,
        records: Vec<Record>,
        wait: Duration,
    ) -> Result<Accepted, SubmitError> {
        if self.shared.config.ack == Ack::Queued {
            return match self.enqueue_within(records, wait).await {
                Enqueued::Queued => Ok(Accepted::Queued),
                Enqueued::Spooled => Ok(Accepted::Spooled),
                Enqueued::Dropped => Err(SubmitError::Dropped),
            };
        }
        let n = records.len();
        if n == 0 {
            return Ok(Accepted::Stored);
        }
        self.count_accepted(n);
        let fits = self.reserve(n, wait).await;
        let shared = &self.shared;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let item = Item {
            records,
            ack: Some(tx),
        };
        let unqueued = {
            let queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            match queue.as_ref() {
                Some(sender) if fits => {
                    shared
                        .high_watermark
                        .fetch_max(shared.depth.load(Ordering::Relaxed), Ordering::Relaxed);
                    sender
                        .send(item)
                        .err()
                        .map(|e| (e.0.records, "writer stopped"))
                }
                Some(_) => Some((item.records, "queue full")),
                None => Some((item.records, "writer stopped")),
            }
        };
        if let Some((records, why)) = unqueued {
            shared.depth.fetch_sub(n, Ordering::AcqRel);
            if why == "queue full" {
                shared
                    .high_watermark
                    .fetch_max(shared.config.queue_capacity, Ordering::Relaxed);
            }
            // The spool's append fsyncs: off the runtime's threads.
            let spooler = shared.clone();
            return match tokio::task::spawn_blocking(move || {
                spooler.spool_or_drop(&records, why, Site::Enqueue)
            })
            .await
            {
                Ok(enqueued) => Outcome::from(enqueued).answer(),
                Err(_) => Err(SubmitError::Stopped),
            };
        }
        match rx.await {
            Ok(outcome) => outcome.answer(),
            Err(_) => Err(SubmitError::Stopped),
        }
    }

    /// Waits (up to `wait`) for room for `n` records in the queue and counts them in
    /// its depth; true when they fit, false when they must go to the spool.
    async fn reserve(&self, n: usize, wait: Duration) -> bool {
        let shared = &self.shared;
        let capacity = shared.config.queue_capacity;
        let started = tokio::time::Instant::now();
        let until = started + wait;
        let mut waited = false;
        let fits = loop {
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
                    break true;
                }
                continue;
            }
            // With records in the spool the store is out or behind: waiting would only
            // stall the caller (an exporter with one request in flight would drop spans).
            let spooling = shared.spool.as_ref().is_some_and(|s| s.pending_bytes() > 0);
            if spooling || tokio::time::Instant::now() >= until {
                let depth = shared.depth.fetch_add(n, Ordering::AcqRel) + n;
                break depth <= capacity;
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
        fits
    }

    fn count_accepted(&self, n: usize) {
        self.shared
            .counters
            .accepted
            .fetch_add(n as u64, Ordering::Relaxed);
        self.shared.accepted_rate.add(n as u64);
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
                match tx.send(Item { records, ack: None }) {
                    Ok(()) => Enqueued::Queued,
                    Err(mpsc::error::SendError(Item { records, .. })) => {
                        // The workers are gone: keep the records in the spool.
                        drop(queue);
                        shared.depth.fetch_sub(n, Ordering::AcqRel);
                        shared.spool_or_drop(&records, "writer stopped", Site::Enqueue)
                    }
                }
            }
            _ => {
                drop(queue);
                shared.depth.fetch_sub(n, Ordering::AcqRel);
                shared
                    .high_watermark
                    .fetch_max(shared.config.queue_capacity, Ordering::Relaxed);
                shared.spool_or_drop(&records, "queue full", Site::Enqueue)
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
        let drops = s.drops.lock().unwrap_or_else(|p| p.into_inner());
        let (enqueue_dropped, write_dropped) = (drops.enqueue_dropped, drops.write_dropped);
        let adopting = s.adopting.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let spools: Vec<&Arc<Spool>> = s.spool.iter().chain(adopting.iter()).collect();
        let pending: Vec<u64> = spools.iter().map(|sp| sp.pending_bytes()).collect();
        let (p50, p99) = s.latencies.percentiles();
        WriterDiagnostics {
            queue_capacity: s.config.queue_capacity,
            queue_depth: depth,
            queue_depth_high_watermark: high,
            queue_utilization_pct: pct(depth),
            queue_high_watermark_utilization_pct: pct(high),
            queue_pressure_state: Pressure::from_utilisation(pct(depth)),
            queue_high_watermark_pressure_state: Pressure::from_utilisation(pct(high)),
            enqueue_accepted_total: c.accepted.load(Ordering::Relaxed),
            enqueue_dropped_total: enqueue_dropped,
            write_dropped_total: write_dropped,
            total_dropped_total: enqueue_dropped + write_dropped,
            last_enqueue_drop_at: drops.last_enqueue_drop_at,
            last_write_drop_at: drops.last_write_drop_at,
            last_write_drop_operation: drops.last_write_drop_operation,
            write_failures_by_class: s.failures.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            store_driver: s.store.backend(),
            ack: s.config.ack,
            written: c.written.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            enqueue_waits: c.enqueue_waits.load(Ordering::Relaxed),
            enqueue_wait_seconds: c.enqueue_wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
            replayed: c.replayed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            spool_dir: s.spool.as_ref().map(|sp| sp.dir().to_path_buf()),
            spool_files: pending.iter().filter(|b| **b > 0).count() as u64,
            spool_pending_bytes: pending.iter().sum(),
            spool_oldest_age_seconds: spools
                .iter()
                .filter_map(|sp| sp.pending_since())
                .min()
                .map(|since| since.elapsed().map_or(0.0, |age| age.as_secs_f64())),
            spool_damaged: c.spool_damaged.load(Ordering::Relaxed),
            records_set_aside: c.set_aside_damaged.load(Ordering::Relaxed),
            store_latency_p50_seconds: p50,
            store_latency_p99_seconds: p99,
            accepted_per_second: s.accepted_rate.per_second(),
            written_per_second: s.written_rate.per_second(),
            last_failure: s
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Stops accepting into the queue (later records go to the spool), writes what is
    /// queued, replays the spool — and the rest of a lane another writer left, if it is
    /// replaying one — and stops, by `deadline`. What could not be written by then is in
    /// the spool (or that lane), replayed at the next start; the report says how much.
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
            self.shared
                .spool_or_drop(&batch, "shutdown deadline", Site::Write(OPERATION_SHUTDOWN));
        }
        if self.shared.spool.is_some() {
            let left = until.saturating_duration_since(Instant::now());
            if !self.drain_spool(left).await {
                complete = false;
            }
        }
        // Stop the replayer between batches, not in the middle of one: aborted between
        // a store write and the spool's note that it was replayed, it would leave that
        // batch in the lane it was replaying (to be written again) and the report
        // incomplete although everything was stored.
        self.shared.replay_stop.store(true, Ordering::Release);
        self.shared.replay_wake.notify_one();
        let replayer = self
            .replayer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut replayer) = replayer {
            let left = until.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut replayer).await.is_err() {
                // Past the deadline: what it did not replay stays in its spool (counted
                // below) and replays at the next start; a batch written but not yet
                // marked replayed is written again then, which is harmless.
                replayer.abort();
                let _ = replayer.await;
            }
        }
        if let Some(spool) = &self.shared.spool {
            spool.release();
        }
        let d = self.diagnostics();
        // Let go of a lane the replayer was stopped in: its lock goes with the last
        // reference (a blocking spool task still running may hold one a little longer).
        *self
            .shared
            .adopting
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if !complete {
            tracing::warn!(
                left_in_spool_bytes = d.spool_pending_bytes,
                "writer shut down before everything was written; the spool replays at the next start"
            );
        }
        ShutdownReport {
            written: d.written,
            dropped: d.total_dropped_total,
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

    fn count_damage(&self, damage: &Corruption) {
        self.counters.spool_damaged.fetch_add(1, Ordering::Relaxed);
        self.counters
            .set_aside_damaged
            .fetch_add(damage.records, Ordering::Relaxed);
    }

    fn in_flight_is_empty(&self) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Tells the failure handler, if any, about a batch that could not be stored. Never
    /// waits: when the handler is behind, the notice is skipped (and logged).
    fn note_write_failure(&self, batch: &[Record], error: &WriteError, operation: &'static str) {
        let hook = self.failure_hook.lock().unwrap_or_else(|p| p.into_inner());
        let Some(hook) = hook.as_ref() else {
            return;
        };
        let failure = WriteFailure {
            operation,
            batch_size: batch.len(),
            failed_count: batch.len(),
            error: error.to_string(),
            error_class: error.class(),
        };
        if hook.try_send(failure).is_err() {
            tracing::warn!(
                operation,
                records = batch.len(),
                "the write failure handler is behind; a notice was skipped"
            );
        }
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
    fn spool_or_drop(&self, records: &[Record], why: &'static str, site: Site) -> Enqueued {
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
                self.drop_records(n, why, "spool full or not configured", site);
                Enqueued::Dropped
            }
            Err(e) => {
                self.drop_records(n, why, &e.to_string(), site);
                Enqueued::Dropped
            }
        }
    }

    fn drop_records(&self, n: usize, why: &str, reason: &str, site: Site) {
        let now = Some(Timestamp::now());
        let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        match site {
            Site::Enqueue => {
                drops.enqueue_dropped += n as u64;
                drops.last_enqueue_drop_at = now;
            }
            Site::Write(operation) => {
                drops.write_dropped += n as u64;
                drops.last_write_drop_at = now;
                drops.last_write_drop_operation = Some(operation);
            }
        }
        drop(drops);
        if let Some(f) = &self.metrics().on_drop {
            f(n);
        }
        tracing::error!(records = n, cause = why, reason, "records dropped");
    }

    /// Keeps records the store refused for good in `rejected.jsonl`.
    fn reject(&self, records: &[Record], error: &WriteError, operation: &'static str) -> Outcome {
        self.note_write_failure(records, error, operation);
        self.counters
            .rejected
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::error!(records = records.len(), error = %error, "store refused records for good");
        let Some(dir) = &self.config.spool_dir else {
            self.drop_records(
                records.len(),
                "rejected",
                "no spool folder to keep them in",
                Site::Write(operation),
            );
            return Outcome::Dropped;
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
        match kept {
            Ok(()) => Outcome::SetAside,
            Err(e) => {
                self.drop_records(
                    records.len(),
                    "rejected",
                    &e.to_string(),
                    Site::Write(operation),
                );
                Outcome::Dropped
            }
        }
    }

    /// One store write, timed out, with the metrics callbacks.
    async fn write_once(&self, records: &[Record]) -> Result<crate::WriteOutcome, WriteError> {
        let metrics = self.metrics();
        let end = metrics.on_write_start.as_ref().map(|f| f(records.len()));
        let started = Instant::now();
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
        self.latencies.add(started.elapsed());
        if let Some(end) = end {
            end(result.as_ref().map(|_| ()));
        }
        match &result {
            Ok(outcome) => {
                self.counters
                    .written
                    .fetch_add(outcome.written as u64, Ordering::Relaxed);
                self.written_rate.add(outcome.written as u64);
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
    /// holds a backlog, or after the retries — to the spool. Says where it went.
    async fn handle(self: &Arc<Self>, batch: Arc<Vec<Record>>) -> Outcome {
        let started = Instant::now();
        let backlog = self.spool.as_ref().is_some_and(|s| s.pending_bytes() > 0);
        let outcome = if backlog {
            self.spool_blocking(batch.clone(), "spool backlog").await
        } else {
            let mut delays = retry_policy(&self.config).delays();
            loop {
                match self.write_once(&batch).await {
                    Ok(_) => break Outcome::Stored,
                    Err(e) if !e.class().is_transient() => {
                        break self.reject(&batch, &e, OPERATION_WRITE);
                    }
                    Err(e) => match delays.next() {
                        Some(wait) if !self.shutting_down.load(Ordering::Acquire) => {
                            tokio::time::sleep(wait).await;
                        }
                        _ => {
                            tracing::warn!(records = batch.len(), error = %e, "store unavailable; spooling");
                            self.note_write_failure(&batch, &e, OPERATION_WRITE);
                            break self
                                .spool_blocking(batch.clone(), "store unavailable")
                                .await;
                        }
                    },
                }
            }
        };
        if let Some(f) = &self.metrics().on_flush {
            f(batch.len(), started.elapsed());
        }
        outcome
    }

    async fn spool_blocking(
        self: &Arc<Self>,
        batch: Arc<Vec<Record>>,
        why: &'static str,
    ) -> Outcome {
        let shared = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            shared.spool_or_drop(&batch, why, Site::Write(OPERATION_WRITE))
        })
        .await;
        match done {
            Ok(enqueued) => enqueued.into(),
            Err(_) => {
                tracing::error!("spooling task failed");
                Outcome::Dropped
            }
        }
    }
}

/// A worker: takes batches from the queue and writes them, then tells the callers
/// waiting on them where their records are.
///
/// Group commit: while any caller in the batch waits for its answer, the worker takes
/// what is queued already and — when other writes are in progress, so that the store is
/// busy — the callers who arrive until one of those writes ends (at most
/// [`WriterConfig::batch_timeout`]), then writes; with the store idle it writes at once.
/// With nobody waiting it lingers up to [`WriterConfig::batch_timeout`] for a fuller
/// batch.
async fn work(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Item>>>,
    id: usize,
) {
    loop {
        let (batch, acks) = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut acks = Vec::new();
            acks.extend(first.ack);
            let mut batch = first.records;
            let until = tokio::time::Instant::now() + shared.config.batch_timeout;
            while batch.len() < shared.config.batch_size {
                let more = if acks.is_empty() {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(more)) => more,
                        Ok(None) | Err(_) => break,
                    }
                } else {
                    // Made before looking, so that a write ending in between still
                    // counts.
                    let write_ended = shared.idle.notified();
                    match rx.try_recv() {
                        Ok(more) => more,
                        // Nothing more queued and the store idle: write now.
                        Err(_) if shared.in_flight_is_empty() => break,
                        // Other writes are in progress, so this one would wait behind
                        // them anyway: gather the callers arriving meanwhile until one
                        // of those writes ends (group commit).
                        Err(_) => tokio::select! {
                            more = tokio::time::timeout_at(until, rx.recv()) => match more {
                                Ok(Some(more)) => more,
                                Ok(None) | Err(_) => break,
                            },
                            () = write_ended => break,
                        },
                    }
                };
                acks.extend(more.ack);
                batch.extend(more.records);
            }
            (batch, acks)
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
        let outcome = if batch.len() > shared.config.batch_size {
            let mut worst = Outcome::Stored;
            for part in batch.chunks(shared.config.batch_size) {
                worst = worst.max(shared.handle(Arc::new(part.to_vec())).await);
            }
            worst
        } else {
            shared.handle(batch).await
        };
        for ack in acks {
            let _ = ack.send(outcome);
        }
        shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        shared.idle.notify_waiters();
    }
}

/// The spool folder (a lane) a writer uses: `dir` itself, or — when another writer holds
/// it — the first free one of `dir/lanes/1`, `dir/lanes/2`... Every lane records the
/// same database; writers replay the lanes nobody holds ([`adopt_lanes`]).
fn open_lane(
    dir: &std::path::Path,
    cap: u64,
    database: Option<&crate::DatabaseIdentity>,
) -> Result<(Spool, Option<Corruption>), SpoolError> {
    let lanes = std::iter::once(dir.to_path_buf())
        .chain((1..MAX_SPOOL_LANES).map(|n| dir.join(LANES_DIR).join(n.to_string())));
    for lane in lanes {
        match Spool::open(&lane, cap, database) {
            Err(SpoolError::Locked { .. }) => continue,
            Ok(opened) => {
                if lane != dir {
                    tracing::info!(spool = %dir.display(), lane = %lane.display(), "the spool is in use by another writer; this one spools into a lane of its own");
                }
                return Ok(opened);
            }
            Err(e) => return Err(e),
        }
    }
    Err(SpoolError::Locked {
        path: dir.display().to_string(),
    })
}

/// The lanes of the spool folder `root` other than `own`.
fn other_lanes(root: &std::path::Path, own: &std::path::Path) -> Vec<PathBuf> {
    let mut lanes = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root.join(LANES_DIR)) {
        lanes.extend(entries.filter_map(|e| Some(e.ok()?.path())));
    }
    lanes.retain(|lane| lane != own);
    lanes
}

/// Replays every lane of the spool folder that no writer holds and that has records
/// (left by a writer that stopped), then lets it go. Once a shutdown asks the replayer
/// to stop, no further lane is taken; the one being replayed is finished.
async fn adopt_lanes(shared: &Arc<Shared>, own: &Spool) {
    let Some(root) = shared.config.spool_dir.clone() else {
        return;
    };
    for lane in other_lanes(&root, own.dir()) {
        if shared.replay_stop.load(Ordering::Acquire) {
            return;
        }
        if !spool::has_pending(&lane) {
            continue;
        }
        let (cap, database) = (shared.config.spool_cap, shared.store.database().cloned());
        let opened =
            tokio::task::spawn_blocking(move || Spool::open(&lane, cap, database.as_ref())).await;
        let spool = match opened {
            Ok(Ok((spool, damage))) => {
                if let Some(damage) = &damage {
                    shared.count_damage(damage);
                }
                Arc::new(spool)
            }
            Ok(Err(SpoolError::Locked { .. })) => continue,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot replay a spool lane");
                continue;
            }
            Err(_) => return,
        };
        if spool.pending_bytes() == 0 {
            continue;
        }
        tracing::info!(lane = %spool.dir().display(), bytes = spool.pending_bytes(), "replaying a spool lane another writer left");
        *shared.adopting.lock().unwrap_or_else(|p| p.into_inner()) = Some(spool.clone());
        let policy = retry_policy(&shared.config);
        let mut delays: Delays = Box::new(policy.endless_delays());
        let mut pace = ReplayPace::new(&shared.config);
        loop {
            match replay_next(shared, &spool, &policy, &mut delays, &mut pace).await {
                Replayed::Empty | Replayed::Stopped => break,
                Replayed::More => {}
            }
        }
        *shared.adopting.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The waits between replay attempts.
type Delays = Box<dyn Iterator<Item = Duration> + Send>;

/// What one step of the replay did.
enum Replayed {
    /// The spool is empty.
    Empty,
    /// A batch was replayed, set aside or retried: there may be more.
    More,
    /// The runtime is going away.
    Stopped,
}

/// How much the replayer joins into one store write.
struct ReplayPace {
    /// Join spool batches up to the writer's batch size.
    joined_records: usize,
    /// After the store refused a joined write for good: batches one at a time up to
    /// this offset, so that only the refused batch is set aside.
    one_by_one_until: Option<u64>,
}

impl ReplayPace {
    fn new(config: &WriterConfig) -> Self {
        Self {
            joined_records: config.batch_size,
            one_by_one_until: None,
        }
    }
}

/// Replays the next batches of `spool` (or sets them aside when damaged, or waits out a
/// failure).
async fn replay_next(
    shared: &Arc<Shared>,
    spool: &Arc<Spool>,
    policy: &RetryPolicy,
    delays: &mut Delays,
    pace: &mut ReplayPace,
) -> Replayed {
    let s = spool.clone();
    let max = if pace.one_by_one_until.is_some() {
        1
    } else {
        pace.joined_records
    };
    let next = match tokio::task::spawn_blocking(move || s.next_batch(max)).await {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the spool");
            tokio::time::sleep(MAX_BACKOFF).await;
            return Replayed::More;
        }
        Err(_) => return Replayed::Stopped,
    };
    match next {
        Next::Empty => {
            *delays = Box::new(policy.endless_delays());
            pace.one_by_one_until = None;
            Replayed::Empty
        }
        Next::Damaged(c) => {
            shared.count_damage(&c);
            tracing::error!("{}", damage_line(&spool.dir().join(SPOOL_FILE), &c));
            Replayed::More
        }
        Next::Batch {
            records,
            next,
            batches,
        } => {
            match shared.write_once(&records).await {
                Err(e) if e.class().is_transient() => {
                    shared.note_write_failure(&records, &e, OPERATION_REPLAY);
                    tokio::time::sleep(delays.next().unwrap_or(MAX_BACKOFF)).await;
                    return Replayed::More;
                }
                Err(_) if batches > 1 => {
                    // Which batch was refused? Again, one at a time.
                    pace.one_by_one_until = Some(next);
                    return Replayed::More;
                }
                Err(e) => {
                    shared.reject(&records, &e, OPERATION_REPLAY);
                }
                Ok(_) => {
                    *delays = Box::new(policy.endless_delays());
                    shared
                        .counters
                        .replayed
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                }
            }
            if pace.one_by_one_until.is_some_and(|until| next >= until) {
                pace.one_by_one_until = None;
            }
            let s = spool.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.consumed(next)).await {
                tracing::error!(error = %e, "cannot record replay progress; batches may replay twice (harmless)");
            }
            Replayed::More
        }
    }
}

/// The one line that tells an operator which spool batch was set aside and where it is.
///
/// ```text
/// spool /var/lib/sonde/spool/spool.log: the batch at byte 4096 is damaged (checksum mismatch); 512 records set aside in /var/lib/sonde/spool/spool.damaged-…-4096.bin
/// ```
pub fn damage_line(file: &std::path::Path, c: &Corruption) -> String {
    format!(
        "spool {}: the batch at byte {} is damaged ({}); {} set aside in {}",
        file.display(),
        c.offset,
        c.reason,
        if c.records == 1 {
            "1 record".to_owned()
        } else {
            format!("{} records", c.records)
        },
        c.quarantined_to.display()
    )
}

/// The replayer: writes spooled batches back into the store, oldest first; when its own
/// spool is empty, replays the lanes other writers left ([`adopt_lanes`]). Once a
/// shutdown asks it to stop, it returns when its own spool is empty and the lane it is
/// replaying (if any) is done.
async fn replay(shared: Arc<Shared>, spool: Arc<Spool>) {
    let policy = retry_policy(&shared.config);
    let mut delays: Delays = Box::new(policy.endless_delays());
    let mut adopted_at: Option<Instant> = None;
    let mut pace = ReplayPace::new(&shared.config);
    loop {
        match replay_next(&shared, &spool, &policy, &mut delays, &mut pace).await {
            Replayed::Stopped => return,
            Replayed::More => {}
            Replayed::Empty => {
                if shared.replay_stop.load(Ordering::Acquire) {
                    return;
                }
                if adopted_at.is_none_or(|at| at.elapsed() >= ADOPT_EVERY) {
                    adopt_lanes(&shared, &spool).await;
                    adopted_at = Some(Instant::now());
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), shared.replay_wake.notified())
                    .await;
            }
        }
    }
}
