//! How `sonde` ends, as the README's table of exit codes says: 0 success, 1 an error
//! (after storing what was good), 2 a usage error, 130 a sync cut short by Ctrl-C (its
//! summary printed and its cursors saved), 141 a closed standard output — quietly, for
//! every command.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;

fn sonde(db: &str, args: &[&str]) -> Output {
    common::sonde_on(db).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Claude Code transcript from the sync tests' data.
fn transcript() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sonde-sync/tests/data/claude-code/07_SYNTHETIC_compaction_dag_compact_after_rewind.jsonl")
}

/// A projects folder of `n` copies of one transcript, one per project.
fn projects(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("projects");
    let text = std::fs::read(transcript()).unwrap();
    for i in 0..n {
        let project = root.join(format!("-home-p{i:05}"));
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(
            project.join(format!("00000000-0000-4000-8000-{i:012}.jsonl")),
            &text,
        )
        .unwrap();
    }
    root
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn demo_records_the_demo_session_and_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let out = sonde(&db, &["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.contains("claude-sonnet-4-5"), "{listing}");
    let out = sonde(&db, &["sessions", "--json"]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = page["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["llm_calls"], 2);
}

#[test]
fn every_command_ends_quietly_with_141_when_its_reader_has_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let demo = sonde(&db, &["demo"]);
    assert!(demo.status.success(), "{}", stderr(&demo));
    let session = sonde(&db, &["sessions", "--json"]);
    let page: Value = serde_json::from_slice(&session.stdout).unwrap();
    let session = page["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let transcripts = transcript().display().to_string();
    let state = dir.path().join("state.json").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["demo"],
        vec!["sessions", "--limit", "500"],
        vec!["sessions", "--json"],
        vec!["show", &session],
        vec!["show", &session, "--json"],
        vec!["query", "SELECT * FROM events"],
        vec!["export"],
        vec!["stats", "summary"],
        vec!["stats", "models", "--json"],
        vec!["keys", "list"],
        vec!["pricing", "gpt-5"],
        vec!["migrate"],
        vec!["sync", "claude", "--path", &transcripts, "--dry-run"],
        vec!["sync", "claude", "--path", &transcripts, "--json"],
        vec![
            "sync",
            "claude",
            "--path",
            &transcripts,
            "--to",
            "-",
            "--state",
            &state,
        ],
    ];
    for args in commands {
        let mut child = common::sonde_on(&db)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(141),
            "sonde {args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("Broken pipe"),
            "sonde {args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_sync_with_unreadable_lines_exits_1_after_storing_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let readme = workspace().join("README.md").display().to_string();
    let out = sonde(&db, &["sync", "claude", "--path", &readme, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["errors"].as_u64().unwrap() > 0, "{summary}");

    let out = sonde(
        &db,
        &[
            "sync",
            "claude",
            "--path",
            &transcript().display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    assert!(sonde(&db, &["demo"]).status.success());
    for args in [
        vec!["sync", "all", "--path", "x"],
        vec!["sync", "claude", "--to", "ftp://x"],
        vec!["sessions", "--since", "yesterday"],
        vec!["sessions", "--meta", "agent"],
        vec!["stats", "summary", "--since", "yesterday"],
        vec!["sessions", "--no-such-option"],
    ] {
        let out = sonde(&db, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "sonde {args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).is_empty());
    }
}

/// Runs `sonde sync claude --path ROOT --to - --state STATE ...` and sends `signal`
/// once the first records are out; returns its output (stdout read to the end).
fn sync_interrupted(root: &Path, state: &Path, extra: &[&str], signal: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["sync", "claude", "--path"])
        .arg(root)
        .args(["--to", "-", "--state"])
        .arg(state)
        .args(extra)
        .env_remove("SONDE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    assert!(stdout.read_line(&mut line).unwrap() > 0, "no records");
    kill(signal, child.id());
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_stops_a_sync_between_files_saves_their_cursors_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let files = 600;
    let root = projects(dir.path(), files);
    let state = dir.path().join("state.json");

    let out = sync_interrupted(&root, &state, &["--json"], "-INT");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let first: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(first["interrupted"], true, "{first}");
    let read_first = first["files_updated"].as_u64().unwrap();
    assert!(read_first > 0 && read_first < files as u64, "{first}");

    // The next run reads only the files the first did not finish.
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["sync", "claude", "--path"])
        .arg(&root)
        .args(["--to", "-", "--state"])
        .arg(&state)
        .arg("--json")
        .env_remove("SONDE_DB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let second: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(second["interrupted"], false);
    assert_eq!(
        second["files_updated"].as_u64().unwrap(),
        files as u64 - read_first,
        "{second}"
    );
}

#[test]
fn sigterm_stops_a_sync_as_ctrl_c_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = projects(dir.path(), 600);
    let out = sync_interrupted(&root, &dir.path().join("state.json"), &[], "-TERM");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let summary = stderr(&out);
    assert!(
        summary.contains("files scanned") && summary.contains("interrupted"),
        "{summary}"
    );
}

#[test]
fn ctrl_c_ends_a_watch_with_its_totals_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let root = projects(dir.path(), 300);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["sync", "claude", "--path"])
        .arg(&root)
        .args(["--to", "-", "--state"])
        .arg(dir.path().join("state.json"))
        .args(["--watch", "--json"])
        .env_remove("SONDE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let records = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // The first round's summary: every file has been read.
    let mut line = String::new();
    while !line.contains("files scanned") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no summary");
    }
    kill("-INT", child.id());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
    let status = child.wait().unwrap();
    records.join().unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    let totals: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(totals["files_scanned"], 300, "{totals}");
    assert_eq!(totals["files_updated"], 300, "{totals}");
    assert_eq!(totals["interrupted"], false, "{totals}");
}

/// The README's first command: `sonde demo --open` records the demo session, then
/// serves the dashboard on it until Ctrl-C (a machine without a browser is told the
/// address instead), and ends with 0.
#[test]
fn demo_open_serves_the_dashboard_with_the_demo_session_until_ctrl_c() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg("--db")
        .arg(format!("sqlite://{}", dir.path().join("demo.db").display()))
        .args(["demo", "--open", "--json", "--addr", &addr])
        .env("SONDE_SPOOL", dir.path().join("spool"))
        // No browser here: the command says where the dashboard is instead.
        .env("BROWSER", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("the dashboard is at") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the dashboard never served"
        );
    }
    assert!(line.contains(&format!("http://{addr}/")), "{line}");
    let mut listed = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut page = String::new();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream.read_to_string(&mut page).unwrap();
    kill("-INT", child.id());
    stdout.read_to_string(&mut listed).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let sessions: Value = serde_json::from_str(&listed).unwrap();
    let id = sessions["sessions"][0]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains(&id),
        "the dashboard lists the demo session {id}"
    );
}
