//! An operator's view of a real `sonde serve` over a real PostgreSQL that is stopped in
//! the middle of an OTLP load and started again: `/api/v1/diagnostics`, `/metrics` and
//! `sonde status` agree on the failures by class, the spool's growth and the replay;
//! every acknowledged span is stored; `sonde status` on the database and on a server
//! that is not there.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const SPANS: usize = 100;

/// GET `path` of the server at `addr`: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn diagnostics(addr: &str) -> Value {
    let (status, body) = get(addr, "/api/v1/diagnostics");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the sample `name` in the server's `/metrics`.
fn metric(addr: &str, name: &str) -> f64 {
    let (_, text) = get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn connection_failures(d: &Value) -> u64 {
    d["writer"]["write_failures_by_class"]["connection"]
        .as_u64()
        .unwrap_or(0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_store_stopped_mid_load_shows_the_same_in_json_metrics_and_status() {
    let pg = Arc::new(sonde_pgtest::PgServer::running());
    assert!(pg.is_local(), "this test stops and starts the server");
    let db = pg.fresh_database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", &spool)
        .stderr(Stdio::null());
    let (mut server, addr, _) = common::spawn_serve(command, &db);

    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..2)
        .map(|s| {
            let (addr, stop, count, acked) = (
                addr.clone(),
                stop.clone(),
                acked_count.clone(),
                acked.clone(),
            );
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (body, ids) = common::otlp_request(s, n, SPANS);
                    if common::try_post(&addr, "/v1/traces", "application/json", &body) == Some(200)
                    {
                        count.fetch_add(ids.len(), Ordering::SeqCst);
                        acked.lock().unwrap().extend(ids);
                    }
                }
            })
        })
        .collect();
    wait_for("a first load", || {
        acked_count.load(Ordering::SeqCst) >= 5_000
    });
    let before = diagnostics(&addr);
    assert_eq!(before["store"]["reachable"], true);
    assert_eq!(connection_failures(&before), 0);

    // PostgreSQL stops, as in a crash: the writer spools (and keeps acknowledging).
    pg.stop_immediate().unwrap();
    let at_stop = acked_count.load(Ordering::SeqCst);
    wait_for("acknowledgements from the spool", || {
        acked_count.load(Ordering::SeqCst) >= at_stop + 2_000
    });
    let during = diagnostics(&addr);
    let w = &during["writer"];
    assert_eq!(during["store"]["reachable"], false, "{during}");
    assert!(connection_failures(&during) > 0, "{during}");
    assert!(w["spooled"].as_u64().unwrap() > 0, "{during}");
    assert!(w["spool_pending_bytes"].as_u64().unwrap() > 0, "{during}");
    assert_eq!(w["spool_files"], 1);
    assert!(w["spool_oldest_age_seconds"].as_f64().is_some());
    assert_eq!(w["total_dropped_total"], 0);
    // The metrics say the same (failures only grow: between two JSON readings).
    let failures = metric(&addr, "sonde_writer_failures_total{class=\"connection\"}");
    let after = diagnostics(&addr);
    assert!(
        connection_failures(&during) as f64 <= failures
            && failures <= connection_failures(&after) as f64
    );
    assert!(metric(&addr, "sonde_writer_spool_pending_bytes") > 0.0);
    // And so does `sonde status`.
    let status = common::sonde_on(&db)
        .args(["status", "--addr", &addr])
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(text.contains("NOT reachable"), "{text}");
    assert!(text.contains("failures: connection "), "{text}");
    assert!(text.contains("pressure "), "{text}");
    let status_json: Value = serde_json::from_slice(
        &common::sonde_on(&db)
            .args(["status", "--addr", &addr, "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(connection_failures(&status_json) >= connection_failures(&after));

    // PostgreSQL comes back: the spool is replayed.
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    pg.start_again().unwrap();
    wait_for("the spool replayed", || {
        let d = diagnostics(&addr);
        d["writer"]["spool_pending_bytes"] == 0 && d["store"]["reachable"] == true
    });
    let replayed = diagnostics(&addr)["writer"]["replayed"].as_u64().unwrap();
    assert!(replayed > 0);
    assert_eq!(
        metric(&addr, "sonde_writer_replayed_total"),
        replayed as f64
    );
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());

    // Every acknowledged span is stored, once.
    let stored = common::query_column(&db, "SELECT span_id FROM events", "span_id");
    let unique: HashSet<&str> = stored.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), stored.len(), "no span stored twice");
    let acked = acked.lock().unwrap();
    let lost = acked
        .iter()
        .filter(|id| !unique.contains(id.as_str()))
        .count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged spans lost", acked.len());

    // `sonde status` on the database itself.
    let local: Value = serde_json::from_slice(
        &common::sonde_on(&db)
            .env("SONDE_SPOOL", &spool)
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(local["store"]["driver"], "postgres");
    assert_eq!(local["calls"], stored.len());
    assert_eq!(local["spool"]["pending_records"], 0);
    assert!(local["store"]["size_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn status_of_a_server_that_is_not_there_is_one_line_and_exit_1() {
    let port = common::free_port();
    let out = common::sonde_on("sqlite::memory:")
        .args(["status", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sonde: cannot reach the server at http://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_spool_batch_is_set_aside_and_json_metrics_and_status_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let spool = dir.path().join("spool");
    let input = dir.path().join("in.jsonl");
    common::write_llm_records(&input, "d", "s", 300_000);
    // An import with a tiny queue spools what it reads; killed, it leaves the spool.
    let mut import = common::sonde_on(&db)
        .env("SONDE_SPOOL", &spool)
        .args(["import", "--queue-capacity", "100", input.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = spool.join("spool.log");
    // Where the batches waiting in the spool start (past the replayed part, whose
    // offset is kept).
    let waiting = || {
        let offset = std::fs::read(spool.join("spool.offset"))
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes) as usize;
        let bytes = std::fs::read(&log).unwrap_or_default();
        let starts: Vec<usize> = bytes
            .get(offset..)
            .unwrap_or_default()
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"SPL1")
            .map(|(i, _)| offset + i)
            .collect();
        (bytes, starts)
    };
    // The import replays while it spools, so the batches waiting are counted with it
    // stopped (SIGSTOP): three are needed (one damaged, one cut, one whole), and a
    // replay that caught up between the count and the stop means one more try.
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([name, &import.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {name}");
    };
    loop {
        wait_for("five batches waiting in the spool", || {
            waiting().1.len() >= 5
        });
        signal("-STOP");
        if waiting().1.len() >= 3 {
            break;
        }
        signal("-CONT");
    }
    import.kill().unwrap();
    import.wait().unwrap();
    // Damage the second waiting batch; the last one, perhaps half written by the killed
    // import, is cut off first.
    let (mut bytes, batches) = waiting();
    assert!(batches.len() >= 3, "{} batches", batches.len());
    bytes.truncate(batches[batches.len() - 1]);
    std::fs::write(&log, &bytes).unwrap();
    let (before, damage) = sonde::store::read_spool(&spool).unwrap();
    assert!(damage.is_none());
    bytes[batches[1] + 100] ^= 0x01;
    std::fs::write(&log, bytes).unwrap();
    let (after, damage) = sonde::store::read_spool(&spool).unwrap();
    assert_eq!(damage.as_deref(), Some("checksum mismatch"));
    let set_aside = (before.len() - after.len()) as u64;

    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", &spool)
        .stderr(Stdio::null());
    let (mut server, addr, _) = common::spawn_serve(command, &db);
    wait_for("the spool replayed", || {
        diagnostics(&addr)["writer"]["spool_pending_bytes"] == 0
    });
    let w = diagnostics(&addr)["writer"].clone();
    assert_eq!(w["spool_damaged"], 1, "{w}");
    assert_eq!(w["records_set_aside"], set_aside, "{w}");
    assert_eq!(
        metric(&addr, "sonde_writer_spool_damaged_batches_total"),
        1.0
    );
    assert_eq!(
        metric(&addr, "sonde_writer_spool_set_aside_records_total"),
        set_aside as f64
    );
    let status = common::sonde_on(&db)
        .args(["status", "--addr", &addr])
        .output()
        .unwrap();
    let text = String::from_utf8(status.stdout).unwrap();
    let shown: u64 = text
        .split_once("damaged batches set aside: 1 (")
        .and_then(|(_, rest)| rest.split_once(" records)"))
        .map(|(n, _)| n.replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(shown, set_aside, "{text}");
    server.kill().unwrap();
    server.wait().unwrap();
    // Every intact batch was stored; the damaged one alone was not.
    let stored: HashSet<String> = common::query_column(&db, "SELECT id FROM events", "id")
        .into_iter()
        .collect();
    assert!(after.iter().all(|r| stored.contains(&r.id)));
}
