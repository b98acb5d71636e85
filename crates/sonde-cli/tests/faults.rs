//! A writing process killed with SIGKILL mid-stream: every record it had accepted into
//! its spool is stored exactly once after it is started again. Real processes: the
//! `sonde` binary and a throwaway PostgreSQL server.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sonde::*;

mod common;

const RECORDS: usize = 200_000;

fn sonde(db: &str, spool: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sonde"));
    c.arg("--db")
        .arg(db)
        .args(args)
        .env("SONDE_SPOOL", spool)
        .env_remove("SONDE_DB");
    c
}

fn run(mut c: Command) -> Output {
    c.output().unwrap()
}

#[test]
fn a_writer_killed_mid_stream_loses_nothing_it_had_spooled() {
    let server = sonde_pgtest::PgServer::running();
    let db = server.fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let input = dir.path().join("big.jsonl");
    common::write_llm_records(&input, "k", "s", RECORDS);
    assert!(run(sonde(&db, &spool, &["migrate"])).status.success());

    // A small queue makes the importer spool most of what it reads.
    let mut child = sonde(
        &db,
        &spool,
        &[
            "import",
            "--queue-capacity",
            "2000",
            input.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let spool_file = spool.join(sonde::store::SPOOL_FILE);
    let started = Instant::now();
    while std::fs::metadata(&spool_file).map_or(0, |m| m.len()) < 2_000_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the importer never spooled"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the importer finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What it had accepted into the spool (intact batches; a half-written tail is not
    // accepted: its append never returned).
    let (spooled, _damage) = sonde::store::read_spool(&spool).unwrap();
    assert!(!spooled.is_empty());
    let spooled_ids: HashSet<String> = spooled.iter().map(|r| r.id.clone()).collect();

    // Started again, it replays the spool before it finishes.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let again = run(sonde(&db, &spool, &["import", empty.to_str().unwrap()]));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        sonde::store::read_spool(&spool).unwrap().0.len(),
        0,
        "the spool is replayed"
    );

    let export = run(sonde(&db, &spool, &["export"]));
    let stored: Vec<String> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| Record::from_json_line(l).unwrap().id)
        .collect();
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "no record is stored twice");
    let missing: Vec<&String> = spooled_ids
        .iter()
        .filter(|id| !stored_set.contains(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "spooled records missing after restart: {missing:?}"
    );
    let counts = run(sonde(
        &db,
        &spool,
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT id) AS d, (SELECT sum(event_count) FROM sessions) AS c FROM events",
            "--json",
        ],
    ));
    let counts: Value = serde_json::from_slice(&counts.stdout).unwrap();
    assert_eq!(counts[0]["n"], stored.len());
    assert_eq!(counts[0]["d"], stored.len());
    assert_eq!(
        counts[0]["c"],
        stored.len(),
        "session counters agree with the events"
    );

    // And importing the whole file again completes it, exactly once.
    let full = run(sonde(&db, &spool, &["import", input.to_str().unwrap()]));
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let counts = run(sonde(
        &db,
        &spool,
        &[
            "query",
            "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events",
            "--json",
        ],
    ));
    let counts: Value = serde_json::from_slice(&counts.stdout).unwrap();
    assert_eq!(counts[0]["n"], RECORDS);
    assert_eq!(counts[0]["d"], RECORDS);
}
