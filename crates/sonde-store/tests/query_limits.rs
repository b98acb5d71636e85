//! Statements from outside (`SqlQuery::query_limited`) run within limits: a runaway
//! statement is stopped at its timeout, a result over a cap is refused naming the cap,
//! and while runaway statements run, key lookups, writes and the store's own reads go
//! on. Both backends that keep connections apart: a SQLite file and PostgreSQL.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use sonde_model::*;
use sonde_store::*;

/// A statement that never ends by itself, on both backends.
const RUNAWAY: &str = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
                       SELECT count(*) FROM r";

async fn sqlite_file() -> (Arc<dyn TraceStore>, Box<dyn Send>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("limits.db"))
        .await
        .unwrap();
    (Arc::new(store), Box::new(dir))
}

async fn postgres() -> (Arc<dyn TraceStore>, Box<dyn Send>) {
    let (server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url).await.unwrap();
    (Arc::new(store), Box::new(server))
}

fn session(id: &str) -> Record {
    Record::new(
        Context::session(id),
        Body::SessionStarted(SessionStarted::default()),
    )
}

/// Two runaway statements (as many as a SQLite store has query connections) are
/// stopped at their timeout; while they run, a key is found, records are written and
/// read back.
async fn runaway_statements_stop_at_the_timeout_and_hold_up_nothing(store: Arc<dyn TraceStore>) {
    let (key, secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&key).await.unwrap();
    let limits = QueryLimits {
        timeout: Duration::from_secs(4),
        ..Default::default()
    };
    let runaways: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.query_limited(RUNAWAY, &[], &limits).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let found = store.find_api_key(&secret).await.unwrap().unwrap();
    assert_eq!(found.id, key.id);
    store.write(&[session("during-runaway")]).await.unwrap();
    assert!(
        store
            .get_session("during-runaway", &Scope::All)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        runaways.iter().all(|r| !r.is_finished()),
        "the runaway statements ended before the other work did: nothing was shown"
    );

    for runaway in runaways {
        let err = runaway.await.unwrap().unwrap_err();
        assert_eq!(
            err,
            QueryError::Timeout {
                limit: limits.timeout
            }
        );
        assert_eq!(
            err.to_string(),
            "query stopped: it ran longer than the 4000 ms statement timeout"
        );
    }
    // The query connections are usable again.
    let rows = store
        .query_limited("SELECT 1 AS n", &[], &limits)
        .await
        .unwrap();
    assert_eq!(rows.to_objects()[0]["n"], 1);
}

/// Results over the row or byte cap are refused, naming the cap; results at the cap
/// come back whole.
async fn results_over_a_cap_are_refused_naming_it(store: Arc<dyn TraceStore>) {
    let rows = QueryLimits {
        max_rows: 3,
        ..Default::default()
    };
    let three = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
                 SELECT n FROM r";
    assert_eq!(
        store
            .query_limited(three, &[], &rows)
            .await
            .unwrap()
            .rows
            .len(),
        3
    );
    let four = three.replace("n < 3", "n < 4");
    let err = store.query_limited(&four, &[], &rows).await.unwrap_err();
    assert_eq!(
        err,
        QueryError::TooLarge {
            what: "row",
            limit: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "the result is over the 3-row limit: add a LIMIT or select fewer columns"
    );

    let bytes = QueryLimits {
        max_bytes: 1024,
        ..Default::default()
    };
    let big = "SELECT replace(printf('%0*d', 2000, 0), '0', 'x') AS t";
    let big = if store.backend() == "postgres" {
        "SELECT repeat('x', 2000) AS t"
    } else {
        big
    };
    let err = store.query_limited(big, &[], &bytes).await.unwrap_err();
    assert_eq!(
        err,
        QueryError::TooLarge {
            what: "byte",
            limit: 1024
        }
    );
}

/// A statement ending in a `-- comment` runs, whatever types its columns have.
async fn a_statement_ending_in_a_comment_runs(store: Arc<dyn TraceStore>) {
    store.write(&[session("commented")]).await.unwrap();
    let sql = "SELECT session_id, started_at FROM sessions -- the sessions";
    let rows = store
        .query_limited(sql, &[], &QueryLimits::default())
        .await
        .unwrap();
    assert_eq!(rows.to_objects()[0]["session_id"], "commented");
    let rows = store.query(sql, &[]).await.unwrap();
    assert_eq!(rows.rows.len(), 1);
}

macro_rules! cases {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runaway_statements_stop_at_the_timeout_and_hold_up_nothing() {
                let (store, _guard) = $open.await;
                super::runaway_statements_stop_at_the_timeout_and_hold_up_nothing(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn results_over_a_cap_are_refused_naming_it() {
                let (store, _guard) = $open.await;
                super::results_over_a_cap_are_refused_naming_it(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_statement_ending_in_a_comment_runs() {
                let (store, _guard) = $open.await;
                super::a_statement_ending_in_a_comment_runs(store).await;
            }
        }
    };
}

cases!(sqlite_file_backend, sqlite_file());
cases!(postgres_backend, postgres());

/// On PostgreSQL, statements from outside run as a role of their own, not as the
/// connection's (a superuser in these tests): the server's files, its configuration and
/// its write-ahead log are out of reach, the role cannot be switched back from SQL, and
/// an advisory lock taken in a statement does not outlive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_from_outside_run_as_a_read_only_role_and_leave_nothing_behind() {
    let (store, _guard) = postgres().await;
    let limits = QueryLimits::default();
    let who = store
        .query_limited(
            "SELECT current_user::text AS who, \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser",
            &[],
            &limits,
        )
        .await
        .unwrap();
    let who = &who.to_objects()[0];
    assert!(
        who["who"].as_str().unwrap().starts_with("sonde_query_"),
        "{who:?}"
    );
    assert_eq!(who["superuser"], false);

    for sql in [
        "SELECT pg_read_file('PG_VERSION')",
        "SELECT pg_reload_conf()",
        "SELECT pg_switch_wal()::text",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "SELECT count(*) FROM sonde_query_role",
    ] {
        let err = store.query_limited(sql, &[], &limits).await.unwrap_err();
        assert!(
            matches!(&err, QueryError::Sql(m) if m.contains("permission denied")),
            "{sql}: {err:?}"
        );
    }

    store.write(&[session("readable")]).await.unwrap();
    let rows = store
        .query_limited("SELECT count(*) AS n FROM sessions", &[], &limits)
        .await
        .unwrap();
    assert_eq!(rows.to_objects()[0]["n"], 1);

    store
        .query_limited("SELECT pg_advisory_lock(42)::text", &[], &limits)
        .await
        .unwrap();
    let held = store
        .query(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(held.to_objects()[0]["n"], 0, "the advisory lock leaked");
}

/// When the database's role may not create roles (so it is no superuser either),
/// statements from outside run as it, still read-only and within their limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_createrole_runs_statements_as_the_owner_read_only() {
    let server = sonde_pgtest::PgServer::started().await;
    let admin_url = server.url();
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for sql in [
        "CREATE ROLE plain LOGIN NOSUPERUSER NOCREATEROLE",
        "CREATE DATABASE plain_db OWNER plain",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let url = admin_url
        .replace("postgres@", "plain@")
        .replace("/postgres", "/plain_db");
    let store = PostgresStore::open(&url).await.unwrap();
    let limits = QueryLimits::default();
    let who = store
        .query_limited("SELECT current_user::text AS who", &[], &limits)
        .await
        .unwrap();
    assert_eq!(who.to_objects()[0]["who"], "plain");
    let err = store
        .query_limited("SELECT pg_read_file('PG_VERSION')", &[], &limits)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QueryError::Sql(m) if m.contains("permission denied")),
        "{err:?}"
    );
    let err = store
        .query_limited("DELETE FROM sessions", &[], &limits)
        .await
        .unwrap_err();
    assert_eq!(err, QueryError::NotReadOnly);
}
