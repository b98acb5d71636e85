//! What the writer reports: a diagnostics snapshot, and callbacks at each step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sonde_model::Timestamp;

use crate::{ErrorClass, WriteError};

/// How full the writer's queue is: `ok` below 50 %, `elevated` from 50 %, `high` from
/// 80 %, `saturated` at 100 %.
///
/// ```
/// use sonde_store::Pressure;
/// assert_eq!(Pressure::from_utilisation(49), Pressure::Ok);
/// assert_eq!(Pressure::from_utilisation(50), Pressure::Elevated);
/// assert_eq!(Pressure::from_utilisation(80), Pressure::High);
/// assert_eq!(Pressure::from_utilisation(100), Pressure::Saturated);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pressure {
    /// Below 50 %.
    Ok,
    /// 50 % or more.
    Elevated,
    /// 80 % or more.
    High,
    /// Full: new records go to the spool.
    Saturated,
}

impl Pressure {
    /// The pressure at `percent` utilisation.
    pub fn from_utilisation(percent: u64) -> Self {
        match percent {
            0..50 => Pressure::Ok,
            50..80 => Pressure::Elevated,
            80..100 => Pressure::High,
            _ => Pressure::Saturated,
        }
    }

    /// `ok`, `elevated`, `high` or `saturated`.
    ///
    /// ```
    /// assert_eq!(sonde_store::Pressure::High.as_str(), "high");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Ok => "ok",
            Pressure::Elevated => "elevated",
            Pressure::High => "high",
            Pressure::Saturated => "saturated",
        }
    }
}

/// The most recent write failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastFailure {
    /// When.
    pub at: Timestamp,
    /// `connection`, `timeout`, `contention`, `constraint` or `unknown`.
    pub class: &'static str,
    /// The store's message.
    pub message: String,
}

/// A point-in-time snapshot of the writer.
///
/// ```
/// # fn show(d: &sonde_store::WriterDiagnostics) {
/// println!("{} of {} queued ({}), {} spooled, {} dropped", d.queue_depth, d.queue_capacity, d.pressure.as_str(), d.spooled, d.dropped);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterDiagnostics {
    /// The store written to.
    pub store_backend: &'static str,
    /// Records the queue holds before new ones go to the spool.
    pub queue_capacity: usize,
    /// Records queued now.
    pub queue_depth: usize,
    /// The most records ever queued at once.
    pub queue_high_watermark: usize,
    /// `queue_depth` as a percentage of `queue_capacity`.
    pub queue_utilisation_pct: u64,
    /// The pressure now.
    pub pressure: Pressure,
    /// The pressure at the high watermark.
    pub high_watermark_pressure: Pressure,
    /// Records handed to the writer.
    pub accepted: u64,
    /// Records stored for the first time (directly or replayed).
    pub written: u64,
    /// Records the store already had (idempotent rewrites, replays after a crash).
    pub duplicates: u64,
    /// Records put in the spool (store unreachable or queue full).
    pub spooled: u64,
    /// Hand-overs that waited for room in the queue ([`crate::Writer::enqueue_within`]):
    /// the writer slowing its callers down.
    pub enqueue_waits: u64,
    /// The time those hand-overs waited, in all.
    pub enqueue_wait_seconds: f64,
    /// Records replayed from the spool into the store.
    pub replayed: u64,
    /// Records lost because the spool was full or unwritable (never silently).
    pub dropped: u64,
    /// Records the store refused for good (a constraint, say), kept in `rejected.jsonl`
    /// in the spool folder.
    pub rejected: u64,
    /// Bytes in the spool waiting to be replayed.
    pub spool_pending_bytes: u64,
    /// Damaged spool stretches found and moved aside.
    pub spool_damaged: u64,
    /// Failed store writes by class.
    pub failures_by_class: BTreeMap<&'static str, u64>,
    /// The most recent failure.
    pub last_failure: Option<LastFailure>,
}

/// A batch that could not be stored, as [`crate::Writer::on_write_failure`] hands it to
/// its handler (the fields of the gateway seed's `WriteFailure`).
///
/// ```
/// let failure = sonde_store::WriteFailure {
///     operation: "write",
///     batch_size: 10,
///     failed_count: 10,
///     error: "connection refused".into(),
///     error_class: sonde_store::ErrorClass::Connection,
/// };
/// assert_eq!(serde_json::to_value(&failure).unwrap()["error_class"], "connection");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteFailure {
    /// `write` (a batch from the queue) or `replay` (a batch from the spool).
    pub operation: &'static str,
    /// Records in the batch.
    pub batch_size: usize,
    /// Records of it that were not stored.
    pub failed_count: usize,
    /// The store's error.
    pub error: String,
    /// Its class.
    pub error_class: ErrorClass,
}

/// Called when a write ends, with its outcome.
pub type WriteEnd = Box<dyn FnOnce(Result<(), &WriteError>) + Send>;

/// Callbacks the writer invokes at each step (all optional).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let enqueued = Arc::new(AtomicUsize::new(0));
/// let seen = enqueued.clone();
/// let metrics = sonde_store::WriterMetrics {
///     on_enqueue: Some(Arc::new(move |n| { seen.fetch_add(n, Ordering::Relaxed); })),
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Default)]
#[allow(clippy::type_complexity)]
pub struct WriterMetrics {
    /// Records accepted by `enqueue`.
    pub on_enqueue: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// Records dropped (spool full or unwritable).
    pub on_drop: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// A batch left the writer (stored, spooled or rejected), with its size and how
    /// long it took.
    pub on_flush: Option<Arc<dyn Fn(usize, Duration) + Send + Sync>>,
    /// A store write starts; the returned callback is called when it ends.
    pub on_write_start: Option<Arc<dyn Fn(usize) -> WriteEnd + Send + Sync>>,
    /// Records stored by a successful write.
    pub on_write_success: Option<Arc<dyn Fn(usize) + Send + Sync>>,
}
