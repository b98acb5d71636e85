//! Keeping data for as long as wanted (issue 17, item 12): `sonde prune` deletes whole
//! sessions older than a limit and keeps the analytics equal to what is stored, on both
//! backends; `sonde backup` copies a SQLite database while it is being written.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

mod common;

fn transcripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data/claude-code")
}

fn sonde(db: &str, args: &[&str]) -> Output {
    let out = common::sonde_on(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sonde {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(db: &str, args: &[&str]) -> Value {
    serde_json::from_slice(&sonde(db, args).stdout).unwrap()
}

/// Old transcripts (2025) and the demo session (now) in one database: a prune of what
/// is older than 30 days deletes the transcripts' sessions, keeps the demo's, and the
/// roll-ups (`stats summary`) then count exactly the calls the events table holds.
fn prune_keeps_recent_sessions_and_the_analytics_whole(db: &str) {
    sonde(db, &["sync", "--path", transcripts().to_str().unwrap()]);
    sonde(db, &["demo"]);
    let before = json(db, &["sessions", "--json", "--limit", "1000"]);
    let sessions = before["sessions"].as_array().unwrap().len();
    assert!(sessions > 1);

    let refused = common::sonde_on(db)
        .args(["prune", "--older-than", "30d"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "asks first, and there is no terminal"
    );

    let pruned = json(db, &["prune", "--older-than", "30d", "--yes", "--json"]);
    assert_eq!(pruned["sessions"], (sessions - 1) as u64, "{pruned}");
    if db.starts_with("postgres") {
        // The transcripts' weeks hold nothing recent: they go whole.
        assert!(pruned["partitions"].as_u64().unwrap() >= 1, "{pruned}");
    }
    let after = json(db, &["sessions", "--json"]);
    let kept = after["sessions"].as_array().unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0]["models"].to_string().contains("claude-sonnet-4-5"),
        "{after}"
    );

    let summary = json(db, &["stats", "summary", "--json"]);
    let calls = common::query_column(
        db,
        "SELECT CAST(count(*) AS TEXT) AS n FROM events WHERE event_type = 'llm'",
        "n",
    );
    assert_eq!(summary["calls"].to_string(), calls[0], "{summary}");
    assert_eq!(summary["calls"], kept[0]["llm_calls"]);
}

#[test]
fn prune_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    prune_keeps_recent_sessions_and_the_analytics_whole(&db);
}

#[test]
fn prune_on_postgres() {
    let pg = sonde_pgtest::PgServer::running();
    let db = pg.fresh_database().unwrap();
    prune_keeps_recent_sessions_and_the_analytics_whole(&db);
}

/// A backup taken while `sonde import` writes into the database is a database of its
/// own: it opens, and it holds whole sessions (every count agrees with its events).
#[test]
fn a_backup_taken_while_the_database_is_written_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    sonde(&db, &["demo"]);
    let records = dir.path().join("records.jsonl");
    common::write_llm_records(&records, "busy", "s-busy", 200_000);
    let mut import = common::sonde_on(&db)
        .args(["import", records.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let copy = dir.path().join("copy.db");
    sonde(&db, &["backup", copy.to_str().unwrap()]);
    assert!(import.wait().unwrap().success());

    let copied = format!("sqlite://{}", copy.display());
    let sessions = json(&copied, &["sessions", "--json", "--limit", "1000"]);
    for s in sessions["sessions"].as_array().unwrap() {
        let id = s["session_id"].as_str().unwrap();
        let events = common::query_column(
            &copied,
            &format!("SELECT CAST(count(*) AS TEXT) AS n FROM events WHERE session_id = '{id}'"),
            "n",
        );
        assert_eq!(s["events"].to_string(), events[0], "{id} in the copy");
    }
    let again = sonde_on_fails(&db, &["backup", copy.to_str().unwrap()]);
    assert!(again.contains("exists already"), "{again}");
}

/// `sonde backup` of a PostgreSQL URL points to pg_dump at once, without trying to
/// connect (nothing listens on port 1: connecting would fail with a connection error).
#[test]
fn a_backup_of_postgresql_points_to_pg_dump_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::sonde_on("postgres://sonde:secret@127.0.0.1:1/sonde")
        .args(["backup", dir.path().join("copy.db").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use pg_dump"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is shown: {stderr}"
    );
}

fn sonde_on_fails(db: &str, args: &[&str]) -> String {
    let out = common::sonde_on(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sonde serve --retention 30d` prunes as `sonde prune` does, from its start on.
#[test]
fn serve_with_retention_prunes_old_sessions_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    sonde(&db, &["sync", "--path", transcripts().to_str().unwrap()]);
    sonde(&db, &["demo"]);
    let (_server, _, _) = common::serve(&db, &["--retention", "30d"]);
    let started = std::time::Instant::now();
    loop {
        let left = json(&db, &["sessions", "--json", "--limit", "1000"]);
        if left["sessions"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "old sessions were not pruned: {left}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
