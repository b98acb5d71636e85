//! PostgreSQL's record tables are partitioned by week (issue 20, item 3): a query for a
//! range of time reads only the weeks it covers, writes make the weeks they need, an id
//! stays one record whatever week it moves to, and retention drops whole weeks that
//! only expired sessions use while keeping "whole sessions whose last record is older".
//! (The conformance suite runs on this layout too; the migration from the unpartitioned
//! one is in `tests/migrations.rs`.)
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sonde_model::*;
use sonde_store::{
    Analytics, AnalyticsFilter, PostgresStore, RecordStore, Scope, SessionFilter, TraceStore,
};

/// Monday 2026-01-05 00:00 UTC, in microseconds since the epoch.
const MONDAY: i64 = 1_767_571_200_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// A session: its start, then an LLM call and a message at each of `times`.
fn session(id: &str, times: &[i64]) -> Vec<Record> {
    let ctx = Context::session(id);
    let mut records = vec![Record {
        id: format!("{id}-start"),
        timestamp: Timestamp::from_micros(times[0]),
        context: ctx.clone(),
        body: Body::SessionStarted(SessionStarted::default()),
    }];
    for (i, ts) in times.iter().enumerate() {
        records.push(Record {
            id: format!("{id}-call-{i}"),
            timestamp: Timestamp::from_micros(*ts),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                provider: Some("openai".into()),
                model_name: "gpt-5".into(),
                input_tokens: 100,
                output_tokens: 10,
                latency_ms: Some(500.0 + i as f64),
                cost_usd: Some(0.01),
                ..Default::default()
            })),
        });
        records.push(Record {
            id: format!("{id}-said-{i}"),
            timestamp: Timestamp::from_micros(*ts + 1),
            context: ctx.clone(),
            body: Body::Message(Message {
                content: MessageContent::text(format!("weekly words {id}")),
                message_type: "assistant_reply".into(),
                ..Default::default()
            }),
        });
    }
    records
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The partitions of `table` a plan of `sql` reads.
async fn partitions_read(client: &tokio_postgres::Client, sql: &str, table: &str) -> Vec<String> {
    let plan: Vec<String> = client
        .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let mut read: Vec<String> = plan
        .join("\n")
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| {
            word.strip_prefix(&format!("{table}_"))
                .is_some_and(|part| part == "legacy" || is_week(part))
        })
        .map(str::to_owned)
        .collect();
    read.sort();
    read.dedup();
    read
}

/// Whether `part` names a week's partition (`w20260105`).
fn is_week(part: &str) -> bool {
    part.len() == 9 && part.starts_with('w') && part[1..].bytes().all(|b| b.is_ascii_digit())
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn exists(client: &tokio_postgres::Client, table: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_reads_only_its_weeks_and_writes_make_the_weeks_they_need() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    let times: Vec<i64> = (0..4).map(|w| MONDAY + w * WEEK + 2 * DAY).collect();
    store.write(&session("s-weeks", &times)).await.unwrap();
    let db = client(&url).await;
    let weeks: Vec<String> = db
        .query(
            // Opening the store made this week and the next too.
            "SELECT suffix FROM record_partitions WHERE ends <= '2026-06-01' ORDER BY starts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(weeks, ["w20260105", "w20260112", "w20260119", "w20260126"]);
    for table in [
        "lifecycle",
        "events",
        "messages",
        "outcome_rewards",
        "event_rewards",
    ] {
        assert!(exists(&db, &format!("{table}_w20260112")).await, "{table}");
    }

    // One day, and one week and a half: only their partitions are read.
    let one_day = "SELECT count(*) FROM events
                   WHERE ts >= '2026-01-14T00:00:00Z' AND ts < '2026-01-15T00:00:00Z'";
    assert_eq!(
        partitions_read(&db, one_day, "events").await,
        ["events_w20260112"]
    );
    assert_eq!(count(&db, one_day).await, 1);
    let ten_days = "SELECT model, sum(input_tokens) FROM events
                    WHERE event_type = 'llm' AND ts >= '2026-01-14T00:00:00Z'
                      AND ts < '2026-01-24T00:00:00Z' GROUP BY model";
    assert_eq!(
        partitions_read(&db, ten_days, "events").await,
        ["events_w20260112", "events_w20260119"]
    );
    // A statement with the range as parameters prunes when it runs.
    let prepared = db
        .query(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
             SELECT count(*) FROM events WHERE ts >= $1 AND ts < $2",
            &[
                &chrono::DateTime::from_timestamp_micros(MONDAY + WEEK).unwrap(),
                &chrono::DateTime::from_timestamp_micros(MONDAY + WEEK + DAY).unwrap(),
            ],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !prepared.contains("events_w20260105") && !prepared.contains("events_w20260126"),
        "{prepared}"
    );

    // The store's own range reads answer from the weeks alone, as before.
    let week_two = AnalyticsFilter {
        since: Some(Timestamp::from_micros(MONDAY + WEEK)),
        until: Some(Timestamp::from_micros(MONDAY + 2 * WEEK)),
        ..Default::default()
    };
    assert_eq!(store.usage_summary(&week_two).await.unwrap().calls, 1);
    let page = store
        .list_sessions(&SessionFilter {
            search: Some("weekly".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_is_one_record_in_every_week() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    let records = session("s-id", &[MONDAY + DAY, MONDAY + 2 * DAY]);
    store.write(&records).await.unwrap();
    let again = store.write(&records).await.unwrap();
    assert_eq!((again.written, again.duplicates), (0, records.len()));

    // A replacement that moves a call into the next week deletes it from the first.
    let mut moved = records[1].clone();
    moved.timestamp = Timestamp::from_micros(MONDAY + WEEK + HOUR);
    let outcome = store.replace(std::slice::from_ref(&moved)).await.unwrap();
    assert_eq!(outcome.written, 1);
    let db = client(&url).await;
    let id = &moved.id;
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM events WHERE id = '{id}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM events_w20260112 WHERE id = '{id}'")
        )
        .await,
        1
    );
    let summary = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(summary.calls, 2, "the roll-ups moved the call too");
    let session = store
        .get_session("s-id", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.events.len(), 2);
}

/// The LLM calls the events table holds, and those the roll-ups count.
async fn calls_stored_and_counted(store: &dyn TraceStore) -> (u64, u64) {
    let raw = store
        .query("SELECT count(*) FROM events WHERE event_type = 'llm'", &[])
        .await
        .unwrap()
        .rows[0][0]
        .as_u64()
        .unwrap();
    let summary = store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    (raw, summary.calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_weeks_only_expired_sessions_use() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    let (w0, w1, w2, w3) = (MONDAY, MONDAY + WEEK, MONDAY + 2 * WEEK, MONDAY + 3 * WEEK);
    // Wholly in week 0; across weeks 0 and 1; in week 1 beside a session that goes on
    // past the cutoff (which keeps week 1); and recent.
    let sessions = [
        session("old-a", &[w0 + DAY, w0 + 2 * DAY]),
        session("old-b", &[w1 - HOUR, w1 + HOUR]),
        session("old-c", &[w1 + 2 * DAY]),
        session("long", &[w1 + 3 * DAY, w3 + DAY]),
        session("new", &[w3 + 2 * DAY]),
    ];
    for records in &sessions {
        store.write(records).await.unwrap();
    }
    // Another process, which knows every week made so far.
    let other = PostgresStore::open(&url).await.unwrap();
    let cutoff = Timestamp::from_micros(w2 + 3 * DAY);
    let dropped = store.drop_expired_partitions(cutoff).await.unwrap();
    assert_eq!(
        dropped.partitions, 1,
        "week 0 only: week 1 holds a live session"
    );
    assert_eq!(
        (dropped.sessions, dropped.events, dropped.llm_calls),
        (1, 2, 2)
    );
    let db = client(&url).await;
    assert!(!exists(&db, "events_w20260105").await);
    assert!(!exists(&db, "messages_w20260105").await);
    assert!(exists(&db, "events_w20260112").await);
    let (raw, counted) = calls_stored_and_counted(&store).await;
    assert_eq!(
        raw, counted,
        "the roll-ups lost week 0's hours and nothing else"
    );
    assert_eq!(
        raw,
        1 + 1 + 2 + 1,
        "old-b's call in week 1, old-c, long, new"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM search_docs WHERE session_id = 'old-a'"
        )
        .await,
        0
    );

    // The rest goes session by session, as on SQLite: "whole sessions whose last
    // record is older" is kept exactly.
    let left = store
        .list_sessions(&SessionFilter {
            until: Some(cutoff),
            ..Default::default()
        })
        .await
        .unwrap();
    for s in left.sessions.iter().filter(|s| s.last_at < cutoff) {
        assert!(
            store
                .delete_session(&s.session_id, &Scope::All)
                .await
                .unwrap()
        );
    }
    let kept: Vec<String> = store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(kept, ["new", "long"]);
    let long = store
        .get_session("long", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(long.to_records().len(), sessions[3].len(), "kept whole");
    let (raw, counted) = calls_stored_and_counted(&store).await;
    assert_eq!((raw, counted), (3, 3));

    // The other process still believes week 0 exists: its insert of a late record
    // finds no partition, and it makes the week again.
    let late = session("late", &[w0 + 3 * DAY]);
    other.write(&session("warm", &[w3 + HOUR])).await.unwrap();
    let written = other.write(&late).await.unwrap();
    assert_eq!(written.written, late.len());
    assert!(exists(&db, "events_w20260105").await);

    // Once "long" has expired too, every week goes, and the sessions with it: dropped
    // oldest first, a session that crossed from a dropped week goes with the last one.
    let later = Timestamp::from_micros(w3 + WEEK + DAY);
    store.delete_session("late", &Scope::All).await.unwrap();
    let dropped = store.drop_expired_partitions(later).await.unwrap();
    assert_eq!(
        dropped.partitions, 3,
        "weeks 0, 1 and 3 (none was made for week 2)"
    );
    assert_eq!(dropped.sessions, 3, "long, new and warm");
    let (raw, counted) = calls_stored_and_counted(&store).await;
    assert_eq!((raw, counted), (0, 0));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM record_partitions WHERE ends <= '2026-06-01'"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM sessions").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM llm_hourly_runs").await, 0);
}

/// The layout docs/operations.md distributes on Citus by `tenant`: Citus, like
/// PostgreSQL's partitions, needs the distribution column in every unique index, and
/// joins between distributed tables on it. The same DDL is checked here on plain
/// PostgreSQL: every unique index of a table to distribute holds `tenant`, and every
/// unique index of a partitioned table is its partitions' own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unique_index_of_the_distributed_tables_holds_the_tenant() {
    let (_server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    store
        .write(&session("s-citus", &[MONDAY + DAY]))
        .await
        .unwrap();
    let db = client(&url).await;
    let distributed = [
        "sessions",
        "steps",
        "search_docs",
        "lifecycle",
        "events",
        "messages",
        "outcome_rewards",
        "event_rewards",
    ];
    let rows = db
        .query(
            "SELECT coalesce(parent.relname, t.relname), i.relname,
                    array_agg(a.attname::text ORDER BY a.attnum)
             FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
             LEFT JOIN pg_inherits h ON h.inhrelid = t.oid
             LEFT JOIN pg_class parent ON parent.oid = h.inhparent
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
             WHERE x.indisunique
             GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let mut checked = 0;
    for row in &rows {
        let (table, index, columns): (String, String, Vec<String>) =
            (row.get(0), row.get(1), row.get(2));
        if distributed.contains(&table.as_str()) {
            assert!(
                columns.contains(&"tenant".to_owned()),
                "{index} on {table}: {columns:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= distributed.len(), "{checked} unique indexes");
}
