//! `sonde import --format lash`: lash traces of every schema version lash-trace has
//! published become Sonde sessions, the same in SQLite and PostgreSQL; a lash trace
//! read as another format (or another format read as lash) is named with what to run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod common;

fn fixtures() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sonde-lash/tests/data");
    (1..=sonde_lash::NEWEST_SCHEMA_VERSION)
        .map(|v| dir.join(format!("lash-v{v}.jsonl")).display().to_string())
        .collect()
}

fn sonde(db: &str, args: &[&str]) -> Output {
    common::sonde_on(db).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn import_all(db: &str) -> Value {
    let files = fixtures();
    let mut args = vec!["import", "--format", "lash", "--json"];
    args.extend(files.iter().map(String::as_str));
    json(&sonde(db, &args))
}

#[test]
fn every_lash_schema_version_imports_into_sessions_alike_in_sqlite_and_postgres() {
    let server = sonde_pgtest::PgServer::running();
    let pg = server.fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("lash.db").display());

    for db in [&sqlite, &pg] {
        let summary = import_all(db);
        assert_eq!(summary["bad"], 0, "{db}: {summary}");
        let lash = &summary["lash"];
        assert_eq!(lash["records_read"], 337, "{db}: {summary}");
        assert_eq!(
            lash["sessions"], 9,
            "schema 2 has a session of May, of June and of August"
        );
        assert_eq!(lash["llm_calls"], 27);
        assert_eq!(lash["tool_calls"], 25);
        let versions: Vec<&String> = lash["schema_versions"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(versions, ["1", "2", "3", "4", "5", "6", "7"]);
        assert_eq!(lash["unknown_kinds"], serde_json::json!({}));
        assert_eq!(summary["records_written"], 285, "{db}: {summary}");

        // The same files again: every record is already stored.
        let again = import_all(db);
        assert_eq!(again["records_written"], 0, "{db}: {again}");
        assert_eq!(again["already_stored"], 285, "{db}: {again}");
    }

    let sessions = json(&sonde(&sqlite, &["sessions", "--json"]));
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 9);
    for session in sessions {
        let id = session["session_id"].as_str().unwrap();
        // as written until June 2026 (tools) and July (usage): see sonde-lash's tests
        let old = matches!(id, "lash-v1" | "lash-v2-may");
        let old_usage = old || id == "lash-v2-june";
        assert_eq!(session["llm_calls"], 3, "{id}");
        assert_eq!(session["tool_calls"], if old { 2 } else { 3 }, "{id}");
        assert_eq!(
            session["total_tokens"],
            if old_usage { 5_570 } else { 6_070 },
            "{id}"
        );
        // a failed LLM call, a failed tool call, and (from schema 2) a cancelled one
        assert_eq!(session["errors"], if old { 2 } else { 3 }, "{id}");
        assert_eq!(session["metadata"]["agent"], "lash-cli", "{id}");
    }
    assert_eq!(
        text(&sonde(&sqlite, &["sessions", "--json"]).stdout),
        text(&sonde(&pg, &["sessions", "--json"]).stdout),
        "both backends hold the same sessions"
    );
    // The dashboard draws the new kinds: a prompt build and both stream events.
    let (_served, addr, _) = common::serve(&sqlite, &[]);
    let nodes = common::http::get(&addr, "/sessions/lash-v7/nodes.json", None);
    assert_eq!(nodes.status, 200, "{}", nodes.text());
    for name in [
        "prompt built",
        "provider stream: content_block_delta",
        "runtime stream: delta",
        "lash.agent_frame_switch",
    ] {
        assert!(nodes.text().contains(name), "{name}: {}", nodes.text());
    }
    let show = json(&sonde(&pg, &["show", "lash-v7", "--json"]));
    assert_eq!(show["steps"].as_array().unwrap().len(), 2, "{show}");
    let q = "SELECT event_type, count(*) AS n FROM events WHERE session_id = 'lash-v7' GROUP BY event_type ORDER BY event_type";
    for db in [&sqlite, &pg] {
        let kinds = json(&sonde(db, &["query", q, "--json"]));
        assert_eq!(
            kinds,
            serde_json::json!([
                {"event_type": "custom", "n": 27},
                {"event_type": "llm", "n": 3},
                {"event_type": "prompt_built", "n": 1},
                {"event_type": "runtime", "n": 3},
                {"event_type": "stream", "n": 2},
            ]),
            "{db}"
        );
    }
}

#[test]
fn a_lash_trace_without_format_lash_and_records_with_it_are_named_with_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let lash = &fixtures()[6];
    let out = sonde(&db, &["import", lash]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "sonde: {lash}: this looks like a lash trace: add --format lash"
        )),
        "{}",
        text(&out.stderr)
    );

    let records = dir.path().join("records.jsonl");
    let line = r#"{"schema_version":1,"id":"r1","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"custom_event","payload":{"name":"x"}}"#;
    std::fs::write(&records, format!("{line}\n")).unwrap();
    let out = sonde(
        &db,
        &["import", "--format", "lash", records.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this looks like record JSONL: drop --format lash"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_lash_lines_are_named_by_file_and_line_and_strict_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let good = std::fs::read_to_string(&fixtures()[6]).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(
        3,
        r#"{"schema_version":7,"id":"x","timestamp":"soon","type":"custom"}"#,
    );
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let name = path.to_str().unwrap();

    let strict = sonde(&db, &["import", "--format", "lash", "--strict", name]);
    assert_eq!(strict.status.code(), Some(1));
    let err = text(&strict.stderr);
    assert!(
        err.contains(&format!(
            "{name}:4: invalid field `timestamp`: invalid timestamp \"soon\""
        )),
        "{err}"
    );
    assert!(
        err.contains("nothing imported: 1 bad line (--strict)"),
        "{err}"
    );
    let none = json(&sonde(&db, &["sessions", "--json"]));
    assert_eq!(none["sessions"].as_array().unwrap().len(), 0);

    let out = sonde(&db, &["import", "--format", "lash", name]);
    assert_eq!(out.status.code(), Some(1), "a bad line fails the import");
    assert!(
        text(&out.stderr).contains("1 bad line skipped"),
        "{}",
        text(&out.stderr)
    );
    let sessions = json(&sonde(&db, &["sessions", "--json"]));
    assert_eq!(
        sessions["sessions"][0]["llm_calls"], 3,
        "the other lines are imported"
    );
}

#[test]
fn unknown_kinds_and_a_newer_schema_are_read_with_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let path = dir.path().join("future.jsonl");
    std::fs::write(
        &path,
        [
            r#"{"schema_version":8,"id":"f1","timestamp":"2026-10-01T10:00:00Z","context":{"session_id":"future"},"type":"session_started"}"#,
            r#"{"schema_version":8,"id":"f2","timestamp":"2026-10-01T10:00:01Z","context":{"session_id":"future"},"type":"teleport","to":"mars"}"#,
            r#"{"schema_version":8,"id":"f3","timestamp":"2026-10-01T10:00:02Z","context":{"session_id":"future"},"type":"tool_call_started","call_id":"c9","name":"shell","args":{"cmd":"make"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let name = path.to_str().unwrap();
    let out = sonde(&db, &["import", "--format", "lash", name]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "sonde: {name}: lash trace schema version 8 is newer than this reader knows (7); read as far as it is understood"
        )),
        "{err}"
    );
    assert!(
        err.contains("sonde: 1 lash record of kinds this reader does not know kept as custom events: teleport (1)"),
        "{err}"
    );
    let show = json(&sonde(&db, &["show", "future", "--json"]));
    assert_eq!(
        show["events"][0]["value"]["name"], "lash.teleport",
        "{show}"
    );
}
