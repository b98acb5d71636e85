//! The writer: batching, diagnostics, spooling when the store is unreachable or the
//! queue is full, replay in order, crash recovery, damaged spools, and the cap.
//! The store underneath is a real SQLite store; `Switchable` can make it unreachable.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sonde_model::*;
use sonde_store::*;

/// A real store that can be made to answer like an unreachable (or refusing) database.
struct Switchable {
    inner: Arc<dyn TraceStore>,
    down: AtomicBool,
    refuse: AtomicBool,
}

impl Switchable {
    async fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: StoreUrl::SqliteMemory.open().await.unwrap(),
            down: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl SqlQuery for Switchable {
    fn backend(&self) -> &'static str {
        "switchable"
    }
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError> {
        self.inner.query(sql, params).await
    }
    async fn query_limited(
        &self,
        sql: &str,
        params: &[Value],
        limits: &sonde_store::QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        self.inner.query_limited(sql, params, limits).await
    }
    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<sonde_store::GroupValues>, QueryError> {
        self.inner.read_values(sql, params).await
    }
}

#[async_trait]
impl RecordStore for Switchable {
    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(WriteError::Backend(BackendError::new(
                ErrorClass::Connection,
                "connection refused",
            )));
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(WriteError::Backend(BackendError::new(
                ErrorClass::Constraint,
                "value too long",
            )));
        }
        self.inner.write(records).await
    }
    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        self.inner.replace(records).await
    }
    async fn get_session(
        &self,
        id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError> {
        self.inner.get_session(id, scope).await
    }
    async fn list_sessions(&self, filter: &SessionFilter) -> Result<SessionPage, ReadError> {
        self.inner.list_sessions(filter).await
    }
    async fn delete_session(&self, id: &str, scope: &Scope) -> Result<bool, ReadError> {
        self.inner.delete_session(id, scope).await
    }
}

#[async_trait]
impl KeyStore for Switchable {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), WriteError> {
        self.inner.create_api_key(key).await
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        self.inner.revoke_api_key(id).await
    }
}

#[async_trait]
impl CursorStore for Switchable {
    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[sonde_store::SyncCursor],
    ) -> Result<(), WriteError> {
        self.inner.save_sync_cursors(source, cursors).await
    }
}

fn events(session: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            id: format!("{session}-{i:06}"),
            timestamp: Timestamp::from_micros(1_767_225_600_000_000 + i as i64),
            context: Context::session(session),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: "m".into(),
                input_tokens: 1,
                ..Default::default()
            })),
        })
        .collect()
}

async fn stored(store: &dyn TraceStore) -> (i64, i64) {
    let r = store
        .query("SELECT count(*), count(DISTINCT id) FROM events", &[])
        .await
        .unwrap();
    (
        r.rows[0][0].as_i64().unwrap(),
        r.rows[0][1].as_i64().unwrap(),
    )
}

fn quick(spool: Option<&std::path::Path>) -> WriterConfig {
    WriterConfig {
        batch_size: 100,
        batch_timeout: Duration::from_millis(5),
        spool_dir: spool.map(Into::into),
        write_attempts: 2,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_written_in_batches_no_larger_than_the_batch_size() {
    let store = Switchable::new().await;
    let writer = Writer::start(
        store.clone(),
        WriterConfig {
            workers: 2,
            ..quick(None)
        },
    )
    .unwrap();
    let largest = Arc::new(AtomicUsize::new(0));
    let (l, enqueued) = (largest.clone(), Arc::new(AtomicUsize::new(0)));
    let e = enqueued.clone();
    writer.set_metrics(WriterMetrics {
        on_write_start: Some(Arc::new(move |n| {
            l.fetch_max(n, Ordering::SeqCst);
            Box::new(|result| assert!(result.is_ok()))
        })),
        on_enqueue: Some(Arc::new(move |n| {
            e.fetch_add(n, Ordering::SeqCst);
        })),
        ..Default::default()
    });
    for chunk in events("s", 2_500).chunks(7) {
        assert_eq!(writer.enqueue(chunk.to_vec()), Enqueued::Queued);
    }
    writer.enqueue(events("big", 1_000)); // one enqueue larger than a batch
    writer.flush().await;
    assert_eq!(stored(store.as_ref()).await, (3_500, 3_500));
    assert!(largest.load(Ordering::SeqCst) <= 100);
    assert_eq!(enqueued.load(Ordering::SeqCst), 3_500);
    let d = writer.diagnostics();
    assert_eq!(
        (d.accepted, d.written, d.spooled, d.dropped),
        (3_500, 3_500, 0, 0)
    );
    assert_eq!(d.queue_depth, 0);
    assert_eq!(d.pressure, Pressure::Ok);
    let report = writer.shutdown(Duration::from_secs(5)).await;
    assert!(report.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_spools_and_replays_in_order_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    for chunk in events("s", 1_000).chunks(50) {
        writer.enqueue(chunk.to_vec());
    }
    writer.flush().await;
    let d = writer.diagnostics();
    assert_eq!(d.spooled, 1_000, "{d:?}");
    assert_eq!(d.dropped, 0);
    assert!(d.failures_by_class["connection"] > 0);
    assert_eq!(d.last_failure.as_ref().unwrap().class, "connection");
    assert!(d.spool_pending_bytes > 0);
    assert_eq!(stored(store.as_ref()).await, (0, 0));
    // While the backlog is spooled, new records queue behind it in the spool.
    writer.enqueue(events("later", 10));
    store.down.store(false, Ordering::SeqCst);
    assert!(writer.drain_spool(Duration::from_secs(20)).await);
    assert_eq!(stored(store.as_ref()).await, (1_010, 1_010));
    let d = writer.diagnostics();
    assert_eq!(d.replayed, 1_010);
    assert_eq!(d.written, 1_010);
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_spools_instead_of_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(
        store.clone(),
        WriterConfig {
            queue_capacity: 100,
            write_attempts: 50,
            ..quick(Some(dir.path()))
        },
    )
    .unwrap();
    let mut outcomes = Vec::new();
    for chunk in events("s", 1_000).chunks(40) {
        outcomes.push(writer.enqueue(chunk.to_vec()));
    }
    assert!(outcomes.contains(&Enqueued::Spooled), "{outcomes:?}");
    let d = writer.diagnostics();
    assert_eq!(d.high_watermark_pressure, Pressure::Saturated);
    assert_eq!(d.dropped, 0);
    store.down.store(false, Ordering::SeqCst);
    assert!(writer.shutdown(Duration::from_secs(30)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (1_000, 1_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_may_wait_are_slowed_down_instead_of_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    let config = WriterConfig {
        queue_capacity: 100,
        write_attempts: 50,
        ..quick(Some(dir.path()))
    };
    // A store that is down for a moment: callers wait for room, nothing is spooled.
    store.down.store(true, Ordering::SeqCst);
    let writer = Arc::new(Writer::start(store.clone(), config.clone()).unwrap());
    let up_again = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.down.store(false, Ordering::SeqCst);
        })
    };
    let mut senders = Vec::new();
    for (i, chunk) in events("s", 1_000).chunks(40).enumerate() {
        let (writer, chunk) = (writer.clone(), chunk.to_vec());
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i as u64)).await;
            writer.enqueue_within(chunk, Duration::from_secs(30)).await
        }));
    }
    for sender in senders {
        assert_eq!(sender.await.unwrap(), Enqueued::Queued);
    }
    up_again.await.unwrap();
    writer.flush().await;
    let d = writer.diagnostics();
    assert_eq!((d.spooled, d.dropped), (0, 0));
    assert!(d.queue_high_watermark <= 100, "{d:?}");
    assert!(d.enqueue_waits > 0 && d.enqueue_wait_seconds > 0.0, "{d:?}");
    assert_eq!(stored(store.as_ref()).await, (1_000, 1_000));

    // Past the wait, what finds no room goes to the spool and is not lost; once the
    // spool holds records, callers no longer wait at all.
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), config).unwrap();
    let mut outcomes = Vec::new();
    let started = std::time::Instant::now();
    for chunk in events("t", 400).chunks(40) {
        outcomes.push(
            writer
                .enqueue_within(chunk.to_vec(), Duration::from_secs(2))
                .await,
        );
    }
    assert!(outcomes.contains(&Enqueued::Spooled), "{outcomes:?}");
    // Ten calls that each waited their 2 s would take 14 s and more.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    store.down.store(false, Ordering::SeqCst);
    assert!(writer.shutdown(Duration::from_secs(30)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (400, 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_room_in_the_spool_losses_are_counted_and_reported() {
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(None)).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d2 = dropped.clone();
    writer.set_metrics(WriterMetrics {
        on_drop: Some(Arc::new(move |n| {
            d2.fetch_add(n, Ordering::SeqCst);
        })),
        ..Default::default()
    });
    writer.enqueue(events("s", 300));
    writer.flush().await;
    assert_eq!(writer.diagnostics().dropped, 300);
    assert_eq!(dropped.load(Ordering::SeqCst), 300);

    // A spool with a cap drops only what passes the cap.
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::start(
        store.clone(),
        WriterConfig {
            spool_cap: 40_000,
            ..quick(Some(dir.path()))
        },
    )
    .unwrap();
    for chunk in events("t", 1_000).chunks(100) {
        writer.enqueue(chunk.to_vec());
    }
    writer.flush().await;
    let d = writer.diagnostics();
    assert!(d.spooled > 0 && d.dropped > 0, "{d:?}");
    assert_eq!(d.spooled + d.dropped, 1_000);
    store.down.store(false, Ordering::SeqCst);
    writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(stored(store.as_ref()).await.0 as u64, d.spooled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_left_behind_replays_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    {
        let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
        writer.enqueue(events("s", 500));
        let report = writer.shutdown(Duration::from_millis(500)).await;
        assert!(!report.complete);
        assert!(report.left_in_spool_bytes > 0);
    }
    let (spooled, damage) = read_spool(dir.path()).unwrap();
    assert_eq!(spooled.len(), 500);
    assert!(damage.is_none());
    store.down.store(false, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (500, 500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_tail_is_reported_and_the_intact_batches_still_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    {
        let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
        for chunk in events("s", 300).chunks(100) {
            writer.enqueue(chunk.to_vec());
            writer.flush().await;
        }
        writer.shutdown(Duration::from_millis(100)).await;
    }
    // Cut the last batch in half, as a crash during its write would.
    let path = dir.path().join(SPOOL_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 2_000).unwrap();
    drop(file);
    let (readable, damage) = read_spool(dir.path()).unwrap();
    assert_eq!(readable.len(), 200);
    assert!(damage.unwrap().starts_with("truncated batch"));

    store.down.store(false, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    let damage = writer.opened_with_damage.clone().expect("reported");
    assert!(damage.quarantined_to.exists());
    assert_eq!(writer.diagnostics().spool_damaged, 1);
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_store_refuses_for_good_are_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.refuse.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    writer.enqueue(events("s", 10));
    writer.flush().await;
    let d = writer.diagnostics();
    assert_eq!((d.rejected, d.spooled, d.dropped), (10, 0, 0));
    assert_eq!(
        d.failures_by_class["constraint"], 1,
        "constraint errors are not retried"
    );
    let kept = std::fs::read_to_string(dir.path().join(REJECTED_FILE)).unwrap();
    assert_eq!(kept.lines().count(), 10);
    assert!(kept.lines().all(|l| Record::from_json_line(l).is_ok()));
}

#[test]
fn write_errors_are_classified() {
    let e = |class| WriteError::Backend(BackendError::new(class, "x"));
    for class in [
        ErrorClass::Connection,
        ErrorClass::Timeout,
        ErrorClass::Contention,
        ErrorClass::Constraint,
        ErrorClass::Unknown,
    ] {
        assert_eq!(classify_write_error(&e(class)), class);
    }
    assert_eq!(
        classify_write_error(&WriteError::Closed),
        ErrorClass::Connection
    );
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(StoreUrl::SqliteMemory.open())
        .unwrap();
    assert!(matches!(
        Writer::start(store, WriterConfig::default()),
        Err(WriterError::NoRuntime)
    ));
}
