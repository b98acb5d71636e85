//! What `sonde serve` acknowledges survives `kill -9`: under a steady OTLP/HTTP load the
//! server is killed with SIGKILL, and every span it had answered 200 for is in the
//! database (or in its spool, replayed by the next process into that database).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

/// Concurrent senders, each with one request in flight, as OTLP exporters do.
const SENDERS: usize = 4;
/// Spans per request.
const SPANS: usize = 200;
/// Spans acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 20_000;

/// Sends requests until `stop` (or the server is gone); returns the acknowledged span ids.
fn send(
    addr: String,
    sender: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<usize>>,
) -> Vec<String> {
    let mut mine = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (body, ids) = common::otlp_request(sender, n, SPANS);
        match common::try_post(&addr, "/v1/traces", "application/json", &body) {
            Some(200) => {
                *acked.lock().unwrap() += ids.len();
                mine.extend(ids);
            }
            Some(_) => {}
            None => break,
        }
    }
    mine
}

/// Runs the load against a fresh `sonde serve` (with `options`), kills it with SIGKILL
/// once `ACKED_BEFORE_KILL` spans are acknowledged, replays its spool, and returns the
/// acknowledged span ids and the stored ones.
fn kill_under_load(options: &[&str]) -> (Vec<String>, HashSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let spool = dir.path().join("spool");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", &spool)
        .stderr(Stdio::null());
    let (mut server, addr, _) = common::spawn_serve_with(command, &db, options);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (addr, stop, acked) = (addr.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || send(addr, s, stop, acked))
        })
        .collect();
    let started = Instant::now();
    while *acked.lock().unwrap() < ACKED_BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the server acknowledged too little"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap(); // SIGKILL, mid-load
    server.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let acknowledged: Vec<String> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();

    // The next process into this database replays what the spool holds.
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let replay = common::sonde_on(&db)
        .env("SONDE_SPOOL", &spool)
        .args(["import", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let stored = common::query_column(&db, "SELECT span_id FROM events", "span_id");
    (acknowledged, stored.into_iter().collect())
}

#[test]
fn every_span_acknowledged_before_a_kill_9_is_stored() {
    let (acknowledged, stored) = kill_under_load(&[]);
    assert!(acknowledged.len() >= ACKED_BEFORE_KILL);
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged spans were lost (e.g. {:?}); {} stored",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(3).collect::<Vec<_>>(),
        stored.len()
    );
}
