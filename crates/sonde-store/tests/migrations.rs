//! Migrations keep and derive from existing data: a database from before the latency
//! runs (schema version 5) answers percentiles exactly once opened by this build, and
//! one from before the one cost column (version 7) reports the same costs in SQL.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sonde_model::*;
use sonde_store::{
    Analytics, AnalyticsFilter, GroupBy, LatencyStats, RecordStore, TraceStore, UsageSummary,
};

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

/// The records of `schema-v9.sqlite`: one session without a tenant, the same session
/// (its ids prefixed `t-`) in tenant acme / prod, and again (`e-`) in tenant `a/b` /
/// `c\d`, whose names hold the characters the tenant key escapes. The database was
/// written from them by the `sonde import` of schema version 9 (commit ef20b78).
fn v9_records() -> Vec<Record> {
    include_str!("data/schema-v9.jsonl")
        .lines()
        .map(|line| Record::from_json_line(line).unwrap())
        .collect()
}

/// The tenants of the three sessions of [`v9_records`], and their session ids.
fn v9_sessions() -> Vec<(sonde_store::Scope, String)> {
    let id = v9_records()[0].context.session_id.clone();
    vec![
        (sonde_store::Scope::All, id.clone()),
        (
            sonde_store::Scope::tenant("acme", "prod"),
            format!("t-{id}"),
        ),
        (sonde_store::Scope::tenant("a/b", "c\\d"), format!("e-{id}")),
    ]
}

/// What a store holds of [`v9_records`] once migrated: each session whole in its
/// tenant, no other tenant's, the analytics unchanged; then another tenant writes the
/// acme session's ids and both keep their own.
async fn check_v9_migrated(store: &dyn TraceStore) {
    let records = v9_records();
    let per_session = records.len() / 3;
    let before = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(before.calls, 6);
    for (scope, id) in v9_sessions() {
        let session = store.get_session(&id, &scope).await.unwrap();
        assert_eq!(
            session.map(|s| s.to_records().len()),
            Some(per_session),
            "{id} in {scope:?}"
        );
    }
    assert!(
        store
            .get_session(
                &v9_sessions()[1].1,
                &sonde_store::Scope::tenant("a/b", "c\\d")
            )
            .await
            .unwrap()
            .is_none(),
        "a tenant does not see another's session"
    );
    let acme: Vec<Record> = records
        .iter()
        .filter(|r| r.context.org.as_deref() == Some("acme"))
        .map(|r| {
            let mut r = r.clone();
            r.context.org = Some("globex".into());
            r
        })
        .collect();
    let outcome = store.write(&acme).await.unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (per_session, 0));
    let again = store.write(&records).await.unwrap();
    assert_eq!(
        again.duplicates,
        records.len(),
        "migrated rows are found by their keys"
    );
    let after = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(after.calls, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ids_become_scoped_by_tenant_in_a_version_9_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v9.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema-v9.sqlite"),
        &path,
    )
    .unwrap();
    let version = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT max(version) FROM schema_migrations WHERE version < 1000",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(version(&path), 9);
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    check_v9_migrated(&store).await;
    drop(store);
    assert!(version(&path) >= 10, "migrated past version 10");
}

/// SQL that takes a PostgreSQL database back to schema version 9, when ids were
/// unique across tenants.
const BACK_TO_VERSION_9: &str = "
    ALTER TABLE sessions DROP CONSTRAINT sessions_pkey, ADD PRIMARY KEY (session_id);
    ALTER TABLE steps DROP CONSTRAINT steps_pkey, ADD PRIMARY KEY (session_id, step_id);
    ALTER TABLE lifecycle DROP CONSTRAINT lifecycle_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE events DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE messages DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE outcome_rewards DROP CONSTRAINT outcome_rewards_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE event_rewards DROP CONSTRAINT event_rewards_pkey, ADD PRIMARY KEY (id);
    ALTER TABLE search_docs DROP CONSTRAINT search_docs_pkey, ADD PRIMARY KEY (record_id);
    ALTER TABLE sessions DROP COLUMN tenant;
    ALTER TABLE steps DROP COLUMN tenant;
    ALTER TABLE lifecycle DROP COLUMN tenant;
    ALTER TABLE events DROP COLUMN tenant;
    ALTER TABLE messages DROP COLUMN tenant;
    ALTER TABLE outcome_rewards DROP COLUMN tenant;
    ALTER TABLE event_rewards DROP COLUMN tenant;
    ALTER TABLE search_docs DROP COLUMN tenant;
    DELETE FROM schema_migrations WHERE version = 10;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ids_become_scoped_by_tenant_in_a_version_9_database() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    store.write(&v9_records()).await.unwrap();
    drop(store);
    postgres_downgrade(&url, BEFORE_VERSION_17).await;
    postgres_downgrade(&url, BACK_TO_VERSION_10).await;
    postgres_downgrade(&url, BACK_TO_VERSION_9).await;
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    check_v9_migrated(&store).await;
}

/// SQL that takes a PostgreSQL database back to schema version 10: each record table
/// one plain table again (its rows copied out of its partitions), keyed by
/// `(tenant, id)`, with the indexes it had (version 13 made again when opened: it
/// changes only `events_calls`).
const BACK_TO_VERSION_10: &str = "
DO $$
DECLARE
    t TEXT;
    cols TEXT;
    defs TEXT[];
    def TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['lifecycle', 'events', 'messages', 'outcome_rewards', 'event_rewards'] LOOP
        SELECT coalesce(array_agg(replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')), '{}')
            INTO defs FROM pg_index i WHERE i.indrelid = t::regclass;
        SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) INTO cols
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = t AND is_generated = 'NEVER';
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING GENERATED)', t || '_plain', t);
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %I', t || '_plain', cols, cols, t);
        EXECUTE format('DROP TABLE %I', t);
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t || '_plain', t);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (tenant, id)', t, t || '_pkey');
        FOREACH def IN ARRAY defs LOOP
            EXECUTE def;
        END LOOP;
    END LOOP;
END
$$;
DROP TABLE record_partitions;
DELETE FROM schema_migrations WHERE version IN (11, 13);";

/// What a store answers about its records, to compare before and after a migration.
async fn answers(store: &dyn TraceStore) -> serde_json::Value {
    let mut sessions = Vec::new();
    let page = store
        .list_sessions(&sonde_store::SessionFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    for s in &page.sessions {
        let whole = store
            .get_session(&s.session_id, &sonde_store::Scope::All)
            .await
            .unwrap()
            .unwrap();
        sessions.push(serde_json::to_value(whole.to_records()).unwrap());
    }
    let calls = store
        .list_calls(&sonde_store::CallFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let week = AnalyticsFilter {
        since: Some(Timestamp::from_micros(
            1_772_409_600_000_000 + 86_400_000_000,
        )),
        until: Some(Timestamp::from_micros(
            1_772_409_600_000_000 + 2 * 86_400_000_000,
        )),
        ..Default::default()
    };
    serde_json::json!({
        "listed": serde_json::to_value(&page.sessions).unwrap(),
        "sessions": sessions,
        "calls": serde_json::to_value(&calls.calls).unwrap(),
        "summary": serde_json::to_value(store.usage_summary(&AnalyticsFilter::default()).await.unwrap()).unwrap(),
        "one_day": serde_json::to_value(store.usage_summary(&week).await.unwrap()).unwrap(),
        "percentiles": serde_json::to_value(percentiles(store).await).unwrap(),
        "found": store.list_sessions(&sonde_store::SessionFilter {
            search: Some("hello".into()),
            ..Default::default()
        }).await.unwrap().sessions.len(),
    })
}

/// Rows per record table, and the kind of table each is (`r` plain, `p` partitioned).
async fn layout(url: &str) -> Vec<(String, i64, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut tables = Vec::new();
    for t in [
        "lifecycle",
        "events",
        "messages",
        "outcome_rewards",
        "event_rewards",
    ] {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), (SELECT relkind::text FROM pg_class WHERE oid = '{t}'::regclass) FROM {t}"
                ),
                &[],
            )
            .await
            .unwrap();
        tables.push((t.to_owned(), row.get(0), row.get(1)));
    }
    tables
}

/// Schema version 11 partitions the record tables of a database that has rows: each
/// becomes the `_legacy` partition of its new table (nothing copied), every answer is
/// the same, records already stored are still found by id, and new weeks follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_record_tables_are_partitioned_with_their_rows() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    let mut records = calls();
    records.extend(v9_records());
    store.write(&records).await.unwrap();
    drop(store);
    postgres_downgrade(&url, BACK_TO_VERSION_10).await;
    let before = layout(&url).await;
    assert!(before.iter().all(|(_, _, kind)| kind == "r"), "{before:?}");
    assert!(
        before
            .iter()
            .all(|(t, n, _)| *n > 0 || t == "event_rewards"),
        "{before:?}"
    );
    // Today's layout answers.
    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    let after = layout(&url).await;
    let want: Vec<(String, i64, String)> = before
        .iter()
        .map(|(t, n, _)| (t.clone(), *n, "p".to_owned()))
        .collect();
    assert_eq!(after, want, "every row kept, every table partitioned");
    let migrated = answers(&store).await;
    drop(store);

    // The same records written into a database that was partitioned from the start.
    let fresh_url = _server.fresh_database().unwrap();
    let fresh = sonde_store::PostgresStore::open(&fresh_url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    fresh.write(&records).await.unwrap();
    // Sums of costs may differ in the last bits: the migrated roll-ups added them in
    // another order.
    assert!(
        same_but_rounding(&migrated, &answers(&fresh).await),
        "a migrated version 11 database answers as one written now"
    );

    let store = sonde_store::PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    let again = store.write(&records).await.unwrap();
    assert_eq!(
        again.duplicates,
        records.len(),
        "found by id in the legacy partition"
    );
    // The newest row was on Wednesday 2026-12-02: the legacy partition holds all time
    // before the Monday after it; later records (Wednesday 2027-01-06) make weeks of
    // their own.
    let late = Record {
        id: "after-migration".into(),
        timestamp: Timestamp::from_micros(1_799_193_600_000_000),
        context: Context::session("s-0"),
        body: Body::Event(Event::Llm(LlmCall {
            model_name: "gpt-5".into(),
            ..Default::default()
        })),
    };
    store.write(std::slice::from_ref(&late)).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let weeks: Vec<(String, Option<String>, String)> = client
        .query(
            "SELECT suffix, to_char(starts AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                    to_char(ends AT TIME ZONE 'UTC', 'YYYY-MM-DD')
             FROM record_partitions WHERE suffix IN ('legacy', 'w20270104') ORDER BY ends",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        weeks,
        [
            ("legacy".to_owned(), None, "2026-12-07".to_owned()),
            (
                "w20270104".to_owned(),
                Some("2027-01-04".to_owned()),
                "2027-01-11".to_owned()
            ),
        ]
    );
    let plan: Vec<String> = client
        .query(
            "EXPLAIN (COSTS OFF) SELECT count(*) FROM events
             WHERE ts >= '2026-03-03T00:00:00Z' AND ts < '2026-03-04T00:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("events_legacy") && !plan.contains("w20270104"),
        "{plan}"
    );
}

/// A new database file starts in rollback mode. Switching it to WAL reads the header,
/// then upgrades to a write, and SQLite does not wait for a lock when upgrading a read:
/// a process opening a new database while another was switching it failed at once with
/// "database is locked" (two `sonde import` runs started together). Opening waits for
/// the other writer instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_new_database_waits_for_another_writer_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("CREATE TABLE early (x); BEGIN IMMEDIATE; INSERT INTO early VALUES (1);")
        .unwrap();
    let open = tokio::spawn(sonde_store::SqliteStore::open(path.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!open.is_finished(), "opening did not wait for the writer");
    writer.execute_batch("COMMIT").unwrap();
    let opened = open.await.unwrap();
    assert!(opened.is_ok(), "{:?}", opened.err());
}

/// SQL that takes a database back to schema version 11: no daily roll-up.
const BACK_TO_VERSION_11: &str = "DROP TABLE llm_daily; DROP TABLE llm_daily_runs;
     DELETE FROM schema_migrations WHERE version = 12;";

/// What the daily roll-up answers: sums, a daily series and percentiles over the whole
/// range (whole days only: read from `llm_daily` and `llm_daily_runs` alone), and over a
/// range that starts and ends within hours (days, hours and events together).
async fn daily_answers(store: &dyn TraceStore) -> serde_json::Value {
    let day0 = 1_772_409_600_000_000i64;
    let ragged = AnalyticsFilter {
        since: Some(Timestamp::from_micros(day0 + 5 * 3_600_000_000 + 1_234)),
        until: Some(Timestamp::from_micros(
            day0 + 2 * 86_400_000_000 + 7 * 3_600_000_000 + 99,
        )),
        ..Default::default()
    };
    let mut answers = Vec::new();
    for f in [AnalyticsFilter::default(), ragged] {
        answers.push(serde_json::json!({
            "summary": store.usage_summary(&f).await.unwrap(),
            "series": store.usage_series(&f, GroupBy::Model, sonde_store::Bucket::Day).await.unwrap(),
            "models": store.model_stats(&f).await.unwrap(),
            "latency": store.latency_percentiles(&f, GroupBy::Model).await.unwrap(),
            "by_day": store.latency_series(&f, sonde_store::Bucket::Day).await.unwrap(),
        }));
    }
    serde_json::Value::Array(answers)
}

/// The latency run tables.
const RUN_TABLES: [&str; 3] = ["llm_hourly_runs", "llm_daily_runs", "llm_key_daily_runs"];

/// Each packed run of the run tables of the SQLite database at `path`, as values.
fn sqlite_runs(path: &std::path::Path) -> Vec<Vec<f64>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut runs = Vec::new();
    for table in RUN_TABLES {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT latencies FROM {table} UNION ALL SELECT ttfts FROM {table}"
            ))
            .unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        for packed in rows {
            let packed = packed.unwrap();
            runs.push(
                packed
                    .chunks_exact(8)
                    .map(|c| f64::from_be_bytes(c.try_into().unwrap()))
                    .collect(),
            );
        }
    }
    runs
}

/// Schema version 14 sorts SQLite's latency runs (the writer keeps them sorted from
/// then on): runs written in any order, as before it, come out sorted, with the same
/// percentiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_latency_runs_written_before_version_14_are_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    store.write(&calls()).await.unwrap();
    let want = daily_answers(&store).await;
    drop(store);

    // Every run of more than one value reversed, as an older writer could leave it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut reversed = 0;
    for table in RUN_TABLES {
        for column in ["latencies", "ttfts"] {
            reversed += conn
                .execute(
                    &format!(
                        "UPDATE {table} SET {column} = (
                           WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i
                                                    WHERE n + 1 < length({column}) / 8)
                           SELECT CAST(group_concat(substr({column}, length({column}) - 8 * n - 7, 8), x'') AS BLOB)
                           FROM (SELECT n FROM i ORDER BY n))
                         WHERE length({column}) > 8"
                    ),
                    [],
                )
                .unwrap();
        }
    }
    conn.execute("DELETE FROM schema_migrations WHERE version = 14", [])
        .unwrap();
    drop(conn);
    assert!(reversed > 0);
    let unsorted = |runs: Vec<Vec<f64>>| {
        runs.iter()
            .filter(|r| !r.is_sorted_by(|a, b| a.total_cmp(b).is_le()))
            .count()
    };
    assert!(unsorted(sqlite_runs(&path)) > 0, "the runs were reversed");

    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(daily_answers(&store).await, want);
    drop(store);
    assert_eq!(unsorted(sqlite_runs(&path)), 0);
}

/// Schema version 12 adds the daily roll-up, filled from the hourly one: a database
/// written before it answers the same afterwards (the daily sums and latency runs are
/// what the hours held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_daily_rollups_are_filled_from_the_hourly_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    store.write(&calls()).await.unwrap();
    let want = daily_answers(&store).await;
    drop(store);

    sqlite_downgrade(&path, BACK_TO_VERSION_11);
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(daily_answers(&store).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_daily_rollups_are_filled_from_the_hourly_ones() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    store.write(&calls()).await.unwrap();
    let want = daily_answers(&store).await;
    drop(store);

    postgres_downgrade(&url, BACK_TO_VERSION_11).await;
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    assert_eq!(daily_answers(&store).await, want);
}

/// `schema-v11.sqlite`: [`calls`] and [`v9_records`], written by the `sonde import` of
/// schema version 11 (commit f6f5f83; `calls` dumped as record JSONL first).
const V11_SQLITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schema-v11.sqlite");

/// Whether `a` and `b` are equal, numbers within a relative 1e-12 of each other.
fn same_but_rounding(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_but_rounding(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_but_rounding(v, w)))
        }
        _ => a == b,
    }
}

/// Reads one integer past the store.
fn sqlite_count(path: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Schema version 13 builds SQLite's record tables anew, keyed by an appending `seq`
/// and found by a hash of their id: a database written at version 11 answers exactly
/// as one written now, its stored records are still found by id (written again, each
/// is a duplicate; each call is read by its id), and replacing them replaces their
/// search documents instead of adding to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_are_found_by_a_hash_of_their_id_in_a_version_11_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v11.db");
    std::fs::copy(V11_SQLITE, &path).unwrap();
    let version = "SELECT max(version) FROM schema_migrations WHERE version < 1000";
    assert_eq!(sqlite_count(&path, version), 11);
    let mut records = calls();
    records.extend(v9_records());
    let docs = sqlite_count(&path, "SELECT count(*) FROM search_docs");
    assert!(docs > 0);

    let store = sonde_store::SqliteStore::open(&path)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    let migrated = answers(&store).await;
    let fresh = sonde_store::SqliteStore::open(dir.path().join("fresh.db"))
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    fresh.write(&records).await.unwrap();
    // Sums of costs may differ in the last bits: the migrated roll-ups added them in
    // another order.
    assert!(
        same_but_rounding(&migrated, &answers(&fresh).await),
        "a migrated version 11 database answers as one written now"
    );

    let again = store.write(&records).await.unwrap();
    assert_eq!(
        (again.written, again.duplicates),
        (0, records.len()),
        "stored records are found by their id's hash"
    );
    for record in records
        .iter()
        .filter(|r| matches!(r.body, Body::Event(Event::Llm(_))))
    {
        let call = store
            .get_call(&record.id, &sonde_store::Scope::All)
            .await
            .unwrap();
        assert_eq!(call.map(|c| c.summary.id), Some(record.id.clone()));
    }
    store.replace(&records).await.unwrap();
    let replaced = answers(&store).await;
    // Replaced with themselves: the same records, calls and search answers (session
    // costs are summed afresh, so they may differ in the last bits).
    for part in ["sessions", "calls", "found"] {
        assert_eq!(migrated[part], replaced[part], "{part} once replaced");
    }
    drop(store);
    drop(fresh);
    assert_eq!(
        sqlite_count(&path, version),
        sqlite_count(&dir.path().join("fresh.db"), version),
        "migrated to the newest version"
    );
    assert_eq!(
        sqlite_count(&path, "SELECT count(*) FROM search_docs"),
        docs,
        "a replaced record's search document found through its seq"
    );
    assert_eq!(
        sqlite_count(
            &path,
            "SELECT count(*) FROM search_docs d WHERE NOT EXISTS
                (SELECT 1 FROM events e WHERE d.record = e.seq * 8 + 1)
              AND NOT EXISTS (SELECT 1 FROM messages m WHERE d.record = m.seq * 8 + 2)"
        ),
        0,
        "every search document points at its record"
    );
}

/// SQL that takes a SQLite database back to before schema version 15: FTS5's own
/// merging.
const BEFORE_VERSION_15: &str = "DELETE FROM search_fts_config WHERE k = 'automerge';
     DELETE FROM schema_migrations WHERE version = 15;";

/// Messages of sessions `from..to`, each saying a word of its own and a shared one.
fn said(from: usize, to: usize) -> Vec<Record> {
    (from..to)
        .map(|i| {
            Record::new(
                Context::session(format!("said-{i}")),
                Body::Message(Message {
                    content: MessageContent::text(format!("Shared word{i}, shared")),
                    ..Default::default()
                }),
            )
        })
        .collect()
}

/// How many sessions a search for `word` finds.
async fn found(store: &dyn TraceStore, word: &str) -> usize {
    let filter = sonde_store::SessionFilter {
        search: Some(word.into()),
        limit: 1000,
        ..Default::default()
    };
    store.list_sessions(&filter).await.unwrap().sessions.len()
}

/// Schema version 15 has SQLite's full-text index merge 16 segments at a time instead
/// of 4: a database indexed before keeps its words, and words written after it (one
/// segment per write) are found alongside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_text_index_merges_more_segments_at_once_after_version_15() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v14.db");
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    for batch in 0..10 {
        store
            .write(&said(batch * 10, batch * 10 + 10))
            .await
            .unwrap();
    }
    drop(store);
    let automerge = "SELECT coalesce(max(v), 0) FROM search_fts_config WHERE k = 'automerge'";
    sqlite_downgrade(&path, BEFORE_VERSION_15);
    assert_eq!(sqlite_count(&path, automerge), 0);

    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(sqlite_count(&path, automerge), 16);
    assert_eq!(found(&store, "shared").await, 100);
    for batch in 10..30 {
        store
            .write(&said(batch * 10, batch * 10 + 10))
            .await
            .unwrap();
    }
    assert_eq!(found(&store, "SHARED").await, 300);
    for i in [0, 99, 100, 299] {
        assert_eq!(found(&store, &format!("word{i}")).await, 1, "word{i}");
    }
    assert_eq!(found(&store, "word300").await, 0);
    drop(store);
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    assert_eq!(found(&store, "shared").await, 300);
}

/// SQL that takes a SQLite database back to before schema version 16: each record
/// table found by the hash of its id alone, no hours listed.
const BEFORE_VERSION_16: &str = "
DROP TABLE record_hours;
DROP INDEX lifecycle_id; ALTER TABLE lifecycle DROP COLUMN key_hour;
CREATE INDEX lifecycle_id ON lifecycle (id_hash);
DROP INDEX events_id; ALTER TABLE events DROP COLUMN key_hour;
CREATE INDEX events_id ON events (id_hash);
DROP INDEX messages_id; ALTER TABLE messages DROP COLUMN key_hour;
CREATE INDEX messages_id ON messages (id_hash);
DROP INDEX outcome_rewards_id; ALTER TABLE outcome_rewards DROP COLUMN key_hour;
CREATE INDEX outcome_rewards_id ON outcome_rewards (id_hash);
DROP INDEX event_rewards_id; ALTER TABLE event_rewards DROP COLUMN key_hour;
CREATE INDEX event_rewards_id ON event_rewards (id_hash);
DELETE FROM schema_migrations WHERE version = 16;";

/// Schema version 16 finds SQLite's records by the hour of their time and the hash of
/// their id: a database written before lists the hours of its records, its records
/// sent again are duplicates, each call is read by its id, and a replacement that moves
/// a call ten days on leaves one version of it, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_are_found_by_their_hour_and_id_hash_in_a_version_15_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v15.db");
    let records = calls();
    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    store.write(&records).await.unwrap();
    let want = answers(&store).await;
    drop(store);
    sqlite_downgrade(&path, BEFORE_VERSION_16);
    let hours = "SELECT count(*) FROM record_hours";
    assert!(
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(hours, [], |r| r.get::<_, i64>(0))
            .is_err(),
        "taken back to version 15"
    );

    let store = sonde_store::SqliteStore::open(&path).await.unwrap();
    // 900 calls 277.8 s apart: 70 hours.
    assert_eq!(sqlite_count(&path, hours), 70);
    assert_eq!(answers(&store).await, want);
    let again = store.write(&records).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, records.len()));
    for record in &records {
        let call = store
            .get_call(&record.id, &sonde_store::Scope::All)
            .await
            .unwrap();
        assert_eq!(call.map(|c| c.summary.id), Some(record.id.clone()));
    }

    let mut moved = records[5].clone();
    moved.timestamp = Timestamp::from_micros(moved.timestamp.as_micros() + 10 * 86_400_000_000);
    assert_eq!(
        store
            .replace(std::slice::from_ref(&moved))
            .await
            .unwrap()
            .written,
        1
    );
    let stored = format!("SELECT count(*) FROM events WHERE id = '{}'", moved.id);
    assert_eq!(sqlite_count(&path, &stored), 1);
    let usage = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(usage.calls, records.len() as u64);
    let call = store
        .get_call(&moved.id, &sonde_store::Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.summary.ts, moved.timestamp);
    assert_eq!(sqlite_count(&path, hours), 71, "the moved call's hour");
}

/// SQL that takes a PostgreSQL database back to before schema version 17 (version 16
/// changes nothing on PostgreSQL): the latency runs
/// compressed with `pglz` (each run rewritten, so that its stored values are too) and
/// the search documents keyed by `(tenant, record_id)`.
const BEFORE_VERSION_17: &str = "
DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['llm_hourly_runs', 'llm_daily_runs', 'llm_key_daily_runs'] LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN latencies SET COMPRESSION pglz,
                        ALTER COLUMN ttfts SET COMPRESSION pglz', t);
        EXECUTE format('UPDATE %I SET latencies = latencies || ''''::bytea,
                        ttfts = ttfts || ''''::bytea', t);
    END LOOP;
END
$$;
ALTER TABLE search_docs ADD PRIMARY KEY (tenant, record_id);
DELETE FROM schema_migrations WHERE version IN (17, 18);";

/// How the runs' values are compressed (`p` pglz, `l` lz4; one per column) and whether
/// `search_docs` has a primary key.
async fn write_layout(url: &str) -> (Vec<String>, bool) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let compression = client
        .query(
            "SELECT attcompression::text FROM pg_attribute
             WHERE attrelid IN ('llm_hourly_runs'::regclass, 'llm_daily_runs'::regclass,
                                'llm_key_daily_runs'::regclass)
               AND attname IN ('latencies', 'ttfts')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keyed = client
        .query_opt(
            "SELECT 1 FROM pg_constraint WHERE conrelid = 'search_docs'::regclass AND contype = 'p'",
            &[],
        )
        .await
        .unwrap()
        .is_some();
    (compression, keyed)
}

/// Schema versions 17 (the latency runs compressed with LZ4) and 18 (search documents
/// without a key on their record id) change only how PostgreSQL stores what it has: a
/// database with data answers the same after both, and its records are still replaced
/// and searched as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_and_search_documents_keep_their_answers_through_versions_17_and_18() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    store.write(&calls()).await.unwrap();
    store.write(&v9_records()).await.unwrap();
    store.write(&said(0, 40)).await.unwrap();
    let want = answers(&store).await;
    let found_before = found(&store, "word7").await;
    assert!(found_before > 0);
    drop(store);
    assert_eq!(write_layout(&url).await, (vec!["l".to_owned(); 6], false));

    postgres_downgrade(&url, BEFORE_VERSION_17).await;
    assert_eq!(write_layout(&url).await, (vec!["p".to_owned(); 6], true));
    let store = sonde_store::PostgresStore::open(&url).await.unwrap();
    assert_eq!(write_layout(&url).await, (vec!["l".to_owned(); 6], false));
    assert_eq!(answers(&store).await, want);
    assert_eq!(found(&store, "word7").await, found_before);

    // New values append to the runs written before; a record written again is not
    // indexed twice; a replaced one is indexed by its new text only.
    store.write(&calls()).await.unwrap();
    assert_eq!(answers(&store).await, want);
    let extra = said(40, 41);
    store.write(&extra).await.unwrap();
    assert_eq!(found(&store, "word40").await, 1);
    let mut replaced = extra.clone();
    for r in &mut replaced {
        if let Body::Message(m) = &mut r.body {
            m.content = MessageContent::text("an entirely different sentence");
        }
    }
    store.replace(&replaced).await.unwrap();
    assert_eq!(found(&store, "entirely").await, 1);
    assert_eq!(found(&store, "word40").await, 0);
    assert_eq!(found(&store, "word7").await, found_before);
}
