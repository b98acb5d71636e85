//! Migrations that derive tables from existing events fill them in: a database from
//! before the latency runs (schema version 5) answers percentiles exactly once opened
//! by this build.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sonde_model::*;
use sonde_store::{AnalyticsFilter, GroupBy, LatencyStats, TraceStore};

/// LLM calls over three days, some without a latency, a time to first token or a key.
fn calls() -> Vec<Record> {
    let day0 = 1_772_409_600_000_000i64;
    (0..900i64)
        .map(|i| Record {
            id: format!("m-{i:04}"),
            timestamp: Timestamp::from_micros(day0 + i * 277_777_777),
            context: Context::session(format!("s-{}", i % 3)),
            body: Body::Event(Event::Llm(LlmCall {
                provider: Some("openai".into()),
                model_name: if i % 2 == 0 { "gpt-5" } else { "gpt-5-mini" }.into(),
                input_tokens: 10,
                latency_ms: (i % 7 != 0).then(|| ((i * 7919) % 10_007) as f64 / 4.0),
                time_to_first_token_ms: (i % 3 != 0).then(|| ((i * 104_729) % 997) as f64),
                api_key_hash: (i % 5 != 0).then(|| format!("key-{}", i % 4)),
                ..Default::default()
            })),
        })
        .collect()
}

async fn percentiles(store: &dyn TraceStore) -> Vec<Vec<LatencyStats>> {
    let mut all = Vec::new();
    for group_by in [GroupBy::None, GroupBy::Model, GroupBy::Key] {
        all.push(
            store
                .latency_percentiles(&AnalyticsFilter::default(), group_by)
                .await
                .unwrap(),
        );
    }
    all
}

/// SQL that takes a database back to schema version 5.
const BACK_TO_VERSION_5: &str = "DROP TABLE llm_hourly_runs; DROP TABLE llm_key_daily_runs;
     DELETE FROM schema_migrations WHERE version = 6;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_latency_runs_are_filled_from_existing_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    store.write(&calls()).await.unwrap();
    let want = percentiles(&store).await;
    assert!(want[2].len() == 5, "four keys and none: {:?}", want[2]);
    drop(store);

    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(BACK_TO_VERSION_5)
        .unwrap();
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(percentiles(&store).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_latency_runs_are_filled_from_existing_events() {
    let server = tokio::task::spawn_blocking(sonde_pgtest::PgServer::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = server.fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    store.write(&calls()).await.unwrap();
    let want = percentiles(&store).await;
    assert!(want[2].len() == 5, "four keys and none: {:?}", want[2]);
    drop(store);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(BACK_TO_VERSION_5).await.unwrap();
    drop(client);
    connection.await.unwrap().unwrap();
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    assert_eq!(percentiles(&store).await, want);
}
