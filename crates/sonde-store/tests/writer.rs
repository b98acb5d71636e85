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
    /// A record id whose writes are refused for good.
    poison: std::sync::Mutex<Option<String>>,
    /// Writes of this session's records answer this long after they are committed (a
    /// store slow to acknowledge).
    slow_ack: std::sync::Mutex<Option<(String, Duration)>>,
}

impl Switchable {
    async fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: StoreUrl::SqliteMemory.open().await.unwrap(),
            down: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            poison: std::sync::Mutex::new(None),
            slow_ack: std::sync::Mutex::new(None),
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
    fn database(&self) -> Option<&DatabaseIdentity> {
        self.inner.database()
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
        let poisoned = self
            .poison
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|id| records.iter().any(|r| &r.id == id));
        if self.refuse.load(Ordering::SeqCst) || poisoned {
            return Err(WriteError::Backend(BackendError::new(
                ErrorClass::Constraint,
                "value too long",
            )));
        }
        let outcome = self.inner.write(records).await;
        let slow = self.slow_ack.lock().unwrap().clone();
        if let Some((session, wait)) = slow
            && records.iter().any(|r| r.context.session_id == session)
        {
            tokio::time::sleep(wait).await;
        }
        outcome
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
        (
            d.enqueue_accepted_total,
            d.written,
            d.spooled,
            d.total_dropped_total
        ),
        (3_500, 3_500, 0, 0)
    );
    assert_eq!(d.queue_depth, 0);
    assert_eq!(d.queue_pressure_state, Pressure::Ok);
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
    assert_eq!(d.total_dropped_total, 0);
    assert!(d.write_failures_by_class["connection"] > 0);
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
    assert_eq!(d.queue_high_watermark_pressure_state, Pressure::Saturated);
    assert_eq!(d.total_dropped_total, 0);
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
    assert_eq!((d.spooled, d.total_dropped_total), (0, 0));
    assert!(d.queue_depth_high_watermark <= 100, "{d:?}");
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
    let d = writer.diagnostics();
    assert_eq!(
        (
            d.write_dropped_total,
            d.enqueue_dropped_total,
            d.total_dropped_total
        ),
        (300, 0, 300)
    );
    assert_eq!(d.last_write_drop_operation, Some("write"));
    assert!(d.last_write_drop_at.is_some() && d.last_enqueue_drop_at.is_none());
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
    assert!(d.spooled > 0 && d.total_dropped_total > 0, "{d:?}");
    assert_eq!(d.spooled + d.total_dropped_total, 1_000);
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
    assert_eq!((d.rejected, d.spooled, d.total_dropped_total), (10, 0, 0));
    assert_eq!(
        d.write_failures_by_class["constraint"], 1,
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

/// A writer whose store is down spools `n` records in batches of 100 and stops.
async fn leave_spooled(store: &Arc<Switchable>, spool: &std::path::Path, session: &str, n: usize) {
    leave_spooled_in_chunks(store, spool, session, n, 100).await;
}

/// Spools `n` records of `session` as batches of `chunk` while the store is down, and
/// brings the store back up.
async fn leave_spooled_in_chunks(
    store: &Arc<Switchable>,
    spool: &std::path::Path,
    session: &str,
    n: usize,
    chunk: usize,
) {
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(spool))).unwrap();
    for chunk in events(session, n).chunks(chunk) {
        writer.enqueue(chunk.to_vec());
        writer.flush().await;
    }
    assert!(!writer.shutdown(Duration::from_millis(100)).await.complete);
    store.down.store(false, Ordering::SeqCst);
}

/// Counts the store writes of `writer` from now on.
fn count_writes(writer: &Writer) -> Arc<AtomicUsize> {
    let writes = Arc::new(AtomicUsize::new(0));
    let w = writes.clone();
    writer.set_metrics(WriterMetrics {
        on_write_start: Some(Arc::new(move |_| {
            w.fetch_add(1, Ordering::SeqCst);
            Box::new(|_| {})
        })),
        ..Default::default()
    });
    writes
}

/// A backlog is spooled as many small batches (one per acknowledged request); replaying
/// each in a transaction of its own was slower than ingest, so under load a backlog
/// never drained (the soak script showed it). Replay joins them up to the batch size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_small_batches_replays_in_writes_of_the_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    leave_spooled_in_chunks(&store, dir.path(), "s", 1_000, 10).await;
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    let writes = count_writes(&writer);
    assert!(writer.drain_spool(Duration::from_secs(20)).await);
    assert_eq!(stored(store.as_ref()).await, (1_000, 1_000));
    let writes = writes.load(Ordering::SeqCst);
    // 100 spooled batches of 10, joined into writes of 100 (the replay may start
    // before the metrics are set: at most a few more).
    assert!(writes <= 12, "{writes} writes replayed 100 batches");
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
}

/// When the store refuses a joined replay for good, the batches are tried one by one:
/// only the batch holding the refused record is set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_in_a_joined_replay_sets_aside_only_its_own_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    leave_spooled_in_chunks(&store, dir.path(), "s", 1_000, 10).await;
    *store.poison.lock().unwrap() = Some("s-000555".into());
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    assert!(writer.drain_spool(Duration::from_secs(20)).await);
    assert_eq!(stored(store.as_ref()).await, (990, 990));
    let kept = std::fs::read_to_string(dir.path().join(REJECTED_FILE)).unwrap();
    let ids: Vec<String> = kept
        .lines()
        .map(|l| Record::from_json_line(l).unwrap().id)
        .collect();
    assert_eq!(
        ids,
        (550..560).map(|i| format!("s-{i:06}")).collect::<Vec<_>>()
    );
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_is_never_replayed_into_another_database() {
    let dir = tempfile::tempdir().unwrap();
    let first = Switchable::new().await;
    leave_spooled(&first, dir.path(), "s", 300).await;
    let identity: DatabaseIdentity =
        serde_json::from_slice(&std::fs::read(dir.path().join(IDENTITY_FILE)).unwrap()).unwrap();
    assert_eq!(Some(&identity), first.database());

    let other = Switchable::new().await;
    assert_ne!(other.database(), first.database());
    match Writer::start(other.clone(), quick(Some(dir.path()))) {
        Err(WriterError::Spool(SpoolError::OtherDatabase { spool_id, .. })) => {
            assert_eq!(spool_id, identity.id)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a spool of another database was opened"),
    }
    assert_eq!(stored(other.as_ref()).await, (0, 0));

    // Its own database takes it.
    let writer = Writer::start(first.clone(), quick(Some(dir.path()))).unwrap();
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(first.as_ref()).await, (300, 300));
    // Empty now, it may serve another database.
    let writer = Writer::start(other.clone(), quick(Some(dir.path()))).unwrap();
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
}

/// Two writers on one spool folder while the store is down: `n` records of session `a`
/// left in the folder itself, `n` of `b` in the lane of the second writer (`lanes/1`).
async fn leave_two_lanes(store: &Arc<Switchable>, dir: &std::path::Path, n: usize) {
    store.down.store(true, Ordering::SeqCst);
    let one = Writer::start(store.clone(), quick(Some(dir))).unwrap();
    let two = Writer::start(store.clone(), quick(Some(dir))).unwrap();
    for (writer, session) in [(&one, "a"), (&two, "b")] {
        for chunk in events(session, n).chunks(100) {
            writer.enqueue(chunk.to_vec());
        }
        writer.flush().await;
    }
    assert_eq!(read_spool(dir).unwrap().0.len(), n, "one lane each");
    assert_eq!(
        read_spool(&dir.join(LANES_DIR).join("1")).unwrap().0.len(),
        n
    );
    assert!(!one.shutdown(Duration::from_millis(100)).await.complete);
    assert!(!two.shutdown(Duration::from_millis(100)).await.complete);
    store.down.store(false, Ordering::SeqCst);
}

/// Waits (up to 20 s) until the store holds `n` events.
async fn wait_until_stored(store: &Switchable, n: i64, poll: Duration) {
    let started = std::time::Instant::now();
    while stored(store).await.0 < n && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(poll).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_a_spool_in_use_gets_a_lane_of_its_own_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    leave_two_lanes(&store, dir.path(), 500).await;

    // The next writer replays its own lane and the one the other writer left.
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    wait_until_stored(&store, 1_000, Duration::from_millis(20)).await;
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (1_000, 1_000));
    assert_eq!(writer.diagnostics().replayed, 1_000);
}

/// A shutdown that comes while the replayer is writing the last batch of a lane another
/// writer left waits for that batch instead of cutting the replay between the store's
/// commit and the lane's note that the batch is replayed: that left the batch in the lane
/// (to be written a second time by the next writer), the lane locked, and the report
/// incomplete although every record was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_the_replay_of_another_writers_lane_finishes_it_and_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    leave_two_lanes(&store, dir.path(), 100).await;
    let lane = dir.path().join(LANES_DIR).join("1");

    // The lane's batch is committed at once, but its write answers 500 ms later.
    *store.slow_ack.lock().unwrap() = Some(("b".into(), Duration::from_millis(500)));
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    wait_until_stored(&store, 200, Duration::from_millis(5)).await;
    assert_eq!(stored(store.as_ref()).await, (200, 200));
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.left_in_spool_bytes, 0);
    assert_eq!(writer.diagnostics().replayed, 200);
    assert!(
        read_spool(&lane).unwrap().0.is_empty(),
        "nothing to write twice"
    );
    // The lane is let go at the shutdown, not when the writer is dropped.
    let lock = std::fs::File::open(lane.join(LOCK_FILE)).unwrap();
    assert!(lock.try_lock().is_ok(), "the lane is still locked");
    drop(lock);

    // The next writer has nothing to replay.
    *store.slow_ack.lock().unwrap() = None;
    let next = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    assert!(next.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(next.diagnostics().replayed, 0);
    assert_eq!(stored(store.as_ref()).await, (200, 200));
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_batch_in_the_middle_of_the_spool_is_set_aside_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    leave_spooled(&store, dir.path(), "s", 500).await;
    // Flip a byte in the payload of the third of five batches.
    let path = dir.path().join(SPOOL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"SPL1")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 5, "five batches of 100");
    bytes[starts[2] + 40] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (readable, damage) = read_spool(dir.path()).unwrap();
    assert_eq!(readable.len(), 400, "the batches after the damage are read");
    assert_eq!(damage.as_deref(), Some("checksum mismatch"));

    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    assert!(writer.opened_with_damage.is_none(), "not a damaged tail");
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (400, 400));
    let d = writer.diagnostics();
    assert_eq!(d.spool_damaged, 1);
    assert_eq!(d.records_set_aside, 100);
    let ids = store
        .query(
            "SELECT min(id), max(id) FROM events WHERE id >= 's-000200' AND id < 's-000300'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        ids.rows[0][0],
        Value::Null,
        "the damaged batch's records are not stored"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.starts_with("spool.damaged-").then_some(name)
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let set_aside = std::fs::metadata(dir.path().join(&aside[0])).unwrap().len() as usize;
    assert_eq!(
        set_aside,
        starts[3] - starts[2],
        "exactly the damaged batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_full_queue_cannot_take_without_a_spool_are_enqueue_drops() {
    let store = Switchable::new().await;
    let writer = Writer::start(
        store.clone(),
        WriterConfig {
            queue_capacity: 10,
            ..quick(None)
        },
    )
    .unwrap();
    assert_eq!(writer.enqueue(events("s", 5)), Enqueued::Queued);
    assert_eq!(writer.enqueue(events("t", 50)), Enqueued::Dropped);
    let d = writer.diagnostics();
    assert_eq!(
        (
            d.enqueue_accepted_total,
            d.enqueue_dropped_total,
            d.write_dropped_total,
            d.total_dropped_total
        ),
        (55, 50, 0, 50)
    );
    assert!(d.last_enqueue_drop_at.is_some());
    assert_eq!(d.queue_high_watermark_pressure_state, Pressure::Saturated);
    assert_eq!(d.queue_high_watermark_utilization_pct, 100);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["enqueue_dropped_total"], 50);
    assert_eq!(json["queue_high_watermark_pressure_state"], "saturated");
    assert_eq!(json["store_driver"], "switchable");
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_not_stored_reaches_the_failure_handler_and_a_panicking_one_does_no_harm() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    store.down.store(true, Ordering::SeqCst);
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    writer.on_write_failure(move |failure| {
        log.lock().unwrap().push(failure.clone());
        panic!("a handler that panics");
    });
    writer.enqueue(events("s", 100));
    writer.flush().await;
    store.refuse.store(true, Ordering::SeqCst);
    store.down.store(false, Ordering::SeqCst);
    // The spool replays into a store that now refuses: set aside in rejected.jsonl.
    assert!(writer.drain_spool(Duration::from_secs(10)).await);
    let started = std::time::Instant::now();
    while seen.lock().unwrap().len() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].operation, "write");
    assert_eq!((seen[0].batch_size, seen[0].failed_count), (100, 100));
    assert_eq!(seen[0].error_class, ErrorClass::Connection);
    assert!(
        seen[0].error.ends_with("connection refused"),
        "{}",
        seen[0].error
    );
    let refused = seen.last().unwrap();
    assert_eq!(
        (refused.operation, refused.error_class),
        ("replay", ErrorClass::Constraint)
    );
    // The writer goes on after the handler panicked.
    store.refuse.store(false, Ordering::SeqCst);
    writer.enqueue(events("t", 10));
    assert!(writer.shutdown(Duration::from_secs(5)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_answers_once_records_are_stored_or_fsynced_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let store = Switchable::new().await;
    let writer = Writer::start(store.clone(), quick(Some(dir.path()))).unwrap();
    let wait = Duration::from_secs(5);
    assert_eq!(
        writer.submit(events("stored", 30), wait).await,
        Ok(Accepted::Stored)
    );
    // No flush: the answer came after the commit.
    assert_eq!(stored(store.as_ref()).await, (30, 30));
    store.down.store(true, Ordering::SeqCst);
    assert_eq!(
        writer.submit(events("spooled", 20), wait).await,
        Ok(Accepted::Spooled)
    );
    let (spooled, _) = read_spool(dir.path()).unwrap();
    assert_eq!(spooled.len(), 20, "in the spool file when the answer came");
    store.down.store(false, Ordering::SeqCst);
    assert!(writer.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stored(store.as_ref()).await, (50, 50));

    // Acknowledging on queueing is asked for by name.
    let queued = Writer::start(
        store.clone(),
        WriterConfig {
            ack: Ack::Queued,
            ..quick(None)
        },
    )
    .unwrap();
    assert_eq!(
        queued.submit(events("queued", 5), wait).await,
        Ok(Accepted::Queued)
    );
    assert_eq!(queued.diagnostics().ack, Ack::Queued);
    assert!(queued.shutdown(Duration::from_secs(5)).await.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_who_arrive_during_a_write_share_the_next_one() {
    let store = Switchable::new().await;
    let writer = Arc::new(
        Writer::start(
            store.clone(),
            WriterConfig {
                batch_size: 10_000,
                ..quick(None)
            },
        )
        .unwrap(),
    );
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    writer.set_metrics(WriterMetrics {
        on_write_start: Some(Arc::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::new(|_| {})
        })),
        ..Default::default()
    });
    let callers: Vec<_> = (0..50)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .submit(events(&format!("c{i}"), 10), Duration::from_secs(5))
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(Accepted::Stored));
    }
    assert_eq!(stored(store.as_ref()).await, (500, 500));
    let writes = writes.load(Ordering::SeqCst);
    assert!(
        writes <= 25,
        "50 callers took {writes} store writes: they did not share commits"
    );
}
