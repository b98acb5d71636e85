//! Fault tests against a real PostgreSQL: the server is stopped like a crash in the
//! middle of a stream and restarted seconds later; every record is stored exactly once.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde_model::*;
use sonde_store::*;

const RECORDS: usize = 100_000;

fn record(i: usize) -> Record {
    Record {
        id: format!("rec-{i:07}"),
        timestamp: Timestamp::from_micros(1_767_225_600_000_000 + i as i64 * 1000),
        context: Context::session(format!("session-{}", i / 1000)),
        body: Body::Event(Event::Llm(LlmCall {
            provider: Some("openai".into()),
            model_name: "gpt-5".into(),
            input_tokens: i as u64 % 1000,
            output_tokens: 10,
            latency_ms: Some(100.0),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_stream_loses_nothing_and_duplicates_nothing() {
    let server = Arc::new(sonde_pgtest::PgServer::started().await);
    assert!(
        server.is_local(),
        "this test stops and restarts the server itself"
    );
    let url = server.fresh_database().unwrap();
    let store: Arc<dyn TraceStore> = Arc::new(PostgresStore::open(&url).await.unwrap());
    let spool = tempfile::tempdir().unwrap();
    let writer = Writer::start(
        store.clone(),
        WriterConfig {
            spool_dir: Some(spool.path().into()),
            batch_size: 1_000,
            write_attempts: 2,
            ..Default::default()
        },
    )
    .unwrap();

    let mut stopped_at = None;
    for start in (0..RECORDS).step_by(500) {
        if start == 30_000 {
            writer.flush().await;
            let s = server.clone();
            tokio::task::spawn_blocking(move || s.stop_immediate())
                .await
                .unwrap()
                .unwrap();
            stopped_at = Some(Instant::now());
        }
        if start == 70_000 {
            // Seconds later, the server comes back.
            let down_for = stopped_at.unwrap().elapsed();
            if down_for < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_secs(2) - down_for).await;
            }
            let s = server.clone();
            tokio::task::spawn_blocking(move || s.start_again())
                .await
                .unwrap()
                .unwrap();
        }
        let batch: Vec<Record> = (start..start + 500).map(record).collect();
        assert_ne!(writer.enqueue(batch), Enqueued::Dropped);
        if start % 5_000 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let report = writer.shutdown(Duration::from_secs(120)).await;
    let d = writer.diagnostics();
    assert!(report.complete, "{report:?} {d:?}");
    assert_eq!(d.total_dropped_total, 0);
    assert!(d.spooled > 0, "the outage sent records to the spool: {d:?}");
    assert!(
        d.write_failures_by_class
            .get("connection")
            .copied()
            .unwrap_or(0)
            > 0,
        "{d:?}"
    );
    assert_eq!(d.written, RECORDS as u64, "{d:?}");

    let r = store
        .query(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.rows[0][0], RECORDS as i64);
    assert_eq!(r.rows[0][1], RECORDS as i64);
    assert_eq!(r.rows[0][2], "rec-0000000");
    assert_eq!(r.rows[0][3], format!("rec-{:07}", RECORDS - 1));
    let wrong = store
        .query(
            "SELECT s.session_id, s.event_count, (SELECT count(*) FROM events e WHERE e.session_id = s.session_id) AS actual
             FROM sessions s WHERE s.event_count <> (SELECT count(*) FROM events e WHERE e.session_id = s.session_id)",
            &[],
        )
        .await
        .unwrap();
    assert!(
        wrong.rows.is_empty(),
        "session counters disagree with events: {:?} {d:?}",
        wrong.rows
    );
    let r = store
        .query("SELECT sum(event_count) FROM sessions", &[])
        .await
        .unwrap();
    assert_eq!(
        r.rows[0][0], RECORDS as i64,
        "session counters were not bumped twice"
    );
}
