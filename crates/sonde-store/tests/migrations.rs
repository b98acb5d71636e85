//! Migrations keep and derive from existing data: a database from before the latency
//! runs (schema version 5) answers percentiles exactly once opened by this build, and
//! one from before the one cost column (version 7) reports the same costs in SQL.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sonde_model::*;
use sonde_store::{AnalyticsFilter, GroupBy, LatencyStats, RecordStore, TraceStore, UsageSummary};

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

/// Prices calls as `sonde` does: by the shipped price table.
fn shipped_prices() -> sonde_store::CallPricer {
    std::sync::Arc::new(|call: &LlmCall| sonde_pricing::PriceTable::global().cost(call))
}

/// The sum of `events.cost_usd`, read past the store.
const COST_SUM: &str = "SELECT coalesce(sum(cost_usd), 0) FROM events";

/// Runs `sql` (taking the database back to an older schema) on the SQLite file at
/// `path`, past the store; returns [`COST_SUM`] then.
fn sqlite_downgrade(path: &std::path::Path, sql: &str) -> f64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
    conn.query_row(COST_SUM, [], |r| r.get(0)).unwrap()
}

/// Runs `sql` (taking the database back to an older schema) on the PostgreSQL
/// database at `url`, past the store; returns [`COST_SUM`] then.
async fn postgres_downgrade(url: &str, sql: &str) -> f64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    let sum = client.query_one(COST_SUM, &[]).await.unwrap().get(0);
    drop(client);
    connection.await.unwrap().unwrap();
    sum
}

/// SQL that takes a database back to schema version 5.
const BACK_TO_VERSION_5: &str = "DROP TABLE llm_hourly_runs; DROP TABLE llm_key_daily_runs;
     DELETE FROM schema_migrations WHERE version = 6;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_latency_runs_are_filled_from_existing_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = sonde_store::SqliteStore::open(&path)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    store.write(&calls()).await.unwrap();
    let want = percentiles(&store).await;
    assert!(want[2].len() == 5, "four keys and none: {:?}", want[2]);
    drop(store);

    sqlite_downgrade(&path, BACK_TO_VERSION_5);
    let store = sonde_store::SqliteStore::open(&path)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    assert_eq!(percentiles(&store).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_latency_runs_are_filled_from_existing_events() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    store.write(&calls()).await.unwrap();
    let want = percentiles(&store).await;
    assert!(want[2].len() == 5, "four keys and none: {:?}", want[2]);
    drop(store);

    postgres_downgrade(&url, BACK_TO_VERSION_5).await;
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    assert_eq!(percentiles(&store).await, want);
}

/// [`calls`], a third of them with a cost their source reported.
fn costed_calls() -> Vec<Record> {
    let mut calls = calls();
    for (i, record) in calls.iter_mut().enumerate() {
        if let Body::Event(Event::Llm(call)) = &mut record.body {
            call.output_tokens = 1_000;
            call.cost_usd = (i % 3 == 0).then_some(0.25);
        }
    }
    calls
}

/// Every call's three costs and their sums, in SQL.
async fn costs(store: &dyn TraceStore) -> (Vec<Vec<serde_json::Value>>, UsageSummary) {
    let rows = store
        .query(
            "SELECT id, cost_usd, reported_cost_usd, computed_cost_usd FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .rows;
    let summary = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    (rows, summary)
}

/// SQL that takes a database back to schema version 7, when `events.cost_usd` was the
/// reported cost.
const BACK_TO_VERSION_7: &str = "ALTER TABLE events DROP COLUMN cost_usd;
     ALTER TABLE events RENAME COLUMN reported_cost_usd TO cost_usd;
     DELETE FROM schema_migrations WHERE version = 8;";

fn check_costs(want: &(Vec<Vec<serde_json::Value>>, UsageSummary)) {
    let (rows, summary) = want;
    assert_eq!(rows.len(), 900);
    let cost: f64 = rows.iter().filter_map(|r| r[1].as_f64()).sum();
    assert!((cost - summary.cost_usd).abs() < 1e-9, "{cost} {summary:?}");
    assert!(summary.reported_cost_usd > 0.0 && summary.computed_cost_usd > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cost_columns_are_migrated_with_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = sonde_store::SqliteStore::open(&path)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    store.write(&costed_calls()).await.unwrap();
    let want = costs(&store).await;
    check_costs(&want);
    drop(store);

    let old = sqlite_downgrade(&path, BACK_TO_VERSION_7);
    assert!(
        (old - want.1.reported_cost_usd).abs() < 1e-9,
        "version 7 sums reported costs"
    );
    let store = sonde_store::SqliteStore::open(&path)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    assert_eq!(costs(&store).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cost_columns_are_migrated_with_their_values() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    store.write(&costed_calls()).await.unwrap();
    let want = costs(&store).await;
    check_costs(&want);
    drop(store);

    let old = postgres_downgrade(&url, BACK_TO_VERSION_7).await;
    assert!(
        (old - want.1.reported_cost_usd).abs() < 1e-9,
        "version 7 sums reported costs"
    );
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    assert_eq!(costs(&store).await, want);
}
