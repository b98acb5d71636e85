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

/// A point-in-time snapshot of the writer: every field of the gateway seed's
/// `TracePipelineDiagnostics` (same names, snake_case in JSON), then what Sonde has
/// beyond it (the spool, replays, the store's latency, acknowledgement).
///
/// ```
/// # fn show(d: &sonde_store::WriterDiagnostics) {
/// println!(
///     "{} of {} queued ({}), {} spooled, {} dropped",
///     d.queue_depth, d.queue_capacity, d.queue_pressure_state.as_str(), d.spooled, d.total_dropped_total
/// );
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriterDiagnostics {
    /// Records the queue holds before new ones go to the spool.
    pub queue_capacity: usize,
    /// Records queued now.
    pub queue_depth: usize,
    /// The most records ever queued at once.
    pub queue_depth_high_watermark: usize,
    /// `queue_depth` as a percentage of `queue_capacity`.
    pub queue_utilization_pct: u64,
    /// `queue_depth_high_watermark` as a percentage of `queue_capacity`.
    pub queue_high_watermark_utilization_pct: u64,
    /// The pressure now.
    pub queue_pressure_state: Pressure,
    /// The pressure at the high watermark.
    pub queue_high_watermark_pressure_state: Pressure,
    /// Records handed to the writer.
    pub enqueue_accepted_total: u64,
    /// Records dropped when handed over: the queue was full and the spool too (or
    /// there is none).
    pub enqueue_dropped_total: u64,
    /// Records dropped after a store write failed: the spool could not take them.
    pub write_dropped_total: u64,
    /// Both.
    pub total_dropped_total: u64,
    /// When records were last dropped at hand-over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_enqueue_drop_at: Option<Timestamp>,
    /// When records were last dropped after a failed write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_write_drop_at: Option<Timestamp>,
    /// The operation of that write: `write`, `replay` or `shutdown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_write_drop_operation: Option<&'static str>,
    /// Failed store writes (each attempt) by class: `connection`, `timeout`,
    /// `contention`, `constraint`, `unknown`.
    pub write_failures_by_class: BTreeMap<&'static str, u64>,
    /// The store written to: `sqlite` or `postgres`.
    pub store_driver: &'static str,

    /// When callers hear "accepted" ([`crate::Ack`]).
    pub ack: crate::Ack,
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
    /// Records the store refused for good (a constraint, say), kept in `rejected.jsonl`
    /// in the spool folder.
    pub rejected: u64,
    /// The spool folder (lane) this writer appends to, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Spool files with records waiting to be replayed (this writer's, and a lane left
    /// by another writer that it is replaying).
    pub spool_files: u64,
    /// Bytes in them waiting to be replayed.
    pub spool_pending_bytes: u64,
    /// How long records have been waiting in this writer's spool (since it last was
    /// empty; after a restart, since the spool file was last written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_oldest_age_seconds: Option<f64>,
    /// Damaged spool batches found and set aside.
    pub spool_damaged: u64,
    /// Records in them.
    pub records_set_aside: u64,
    /// The median time of the store writes that ended in the last minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_latency_p50_seconds: Option<f64>,
    /// Their 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_latency_p99_seconds: Option<f64>,
    /// Records handed to the writer per second, over the last minute.
    pub accepted_per_second: f64,
    /// Records stored per second, over the last minute.
    pub written_per_second: f64,
    /// The most recent failure.
    #[serde(skip_serializing_if = "Option::is_none")]
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

/// Seconds of history behind a [`Rate`].
const RATE_WINDOW_SECONDS: u64 = 60;

/// Counts per second over the last minute, for "records per second" figures.
pub(crate) struct Rate {
    started: std::time::Instant,
    /// (second since `started`, count in it), oldest first.
    seconds: std::sync::Mutex<std::collections::VecDeque<(u64, u64)>>,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            started: std::time::Instant::now(),
            seconds: std::sync::Mutex::default(),
        }
    }
}

impl Rate {
    /// Counts `n` now.
    pub(crate) fn add(&self, n: u64) {
        let now = self.started.elapsed().as_secs();
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        match seconds.back_mut() {
            Some((second, count)) if *second == now => *count += n,
            _ => seconds.push_back((now, n)),
        }
        while seconds
            .front()
            .is_some_and(|(second, _)| second + RATE_WINDOW_SECONDS <= now)
        {
            seconds.pop_front();
        }
    }

    /// The mean per second over the last minute (or since the start, when younger).
    pub(crate) fn per_second(&self) -> f64 {
        let elapsed = self.started.elapsed();
        let now = elapsed.as_secs();
        let total: u64 = self
            .seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(second, _)| second + RATE_WINDOW_SECONDS > now)
            .map(|(_, count)| count)
            .sum();
        let span = elapsed.as_secs_f64().clamp(1.0, RATE_WINDOW_SECONDS as f64);
        total as f64 / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_the_mean_per_second_since_the_start_within_a_minute() {
        let rate = Rate::default();
        rate.add(30);
        rate.add(30);
        // Younger than a second: the span counts as one second.
        assert_eq!(rate.per_second(), 60.0);
    }
}
