//! The `sonde` command as a user runs it: import, export, sessions, show, query, rm,
//! exit codes and error messages.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sonde::*;

mod common;

use common::{post, spool_for};

fn sonde(db: &str, args: &[&str]) -> Output {
    common::sonde_on(db).args(args).output().unwrap()
}

fn sonde_stdin(db: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("SONDE_SPOOL", spool_for(db))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Three sessions of every record kind, as record JSONL lines.
fn sample_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for s in 0..3 {
        let ctx = Context::session(format!("session-{s}"));
        let step = ctx.clone().with_step("turn-1");
        let mut meta = Metadata::new();
        meta.insert("user".into(), json!(format!("u{s}")));
        let bodies = vec![
            (
                ctx.clone(),
                Body::SessionStarted(SessionStarted {
                    metadata: meta,
                    session_metadata: vec![],
                }),
            ),
            (
                step.clone(),
                Body::StepStarted(StepStarted {
                    step_index: 0,
                    turn_number: Some(1),
                    metadata: Metadata::new(),
                }),
            ),
            (
                step.clone(),
                Body::Message(Message {
                    content: MessageContent::text("hello"),
                    message_type: "user_prompt".into(),
                    from_role: Some("human".into()),
                    to_role: Some("agent".into()),
                    ..Default::default()
                }),
            ),
            (
                step.clone(),
                Body::Event(Event::Llm(LlmCall {
                    provider: Some("openai".into()),
                    model_name: format!("gpt-5-{s}"),
                    input_tokens: 100,
                    output_tokens: 20,
                    cost_usd: Some(0.25),
                    latency_ms: Some(800.0),
                    ..Default::default()
                })),
            ),
            (
                step.clone(),
                Body::Event(Event::Runtime(RuntimeAction {
                    tool_name: Some("grep".into()),
                    arguments: Some(json!({"q": "x"})),
                    ..Default::default()
                })),
            ),
            (step.clone(), Body::StepEnded(StepEnded::default())),
            (
                ctx.clone(),
                Body::OutcomeReward(OutcomeReward {
                    total_reward: 1.0,
                    ..Default::default()
                }),
            ),
            (ctx.clone(), Body::SessionEnded(SessionEnded::default())),
        ];
        for (i, (context, body)) in bodies.into_iter().enumerate() {
            let record = Record {
                id: format!("r-{s}-{i}"),
                timestamp: Timestamp::from_micros(
                    1_767_225_600_000_000 + s * 60_000_000 + i as i64 * 1000,
                ),
                context,
                body,
            };
            lines.push(record.to_json_line());
        }
    }
    lines
}

fn write_file(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn db_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[test]
fn export_then_import_into_a_fresh_database_then_export_gives_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let first = db_url(dir.path(), "first.db");
    let out = sonde(&first, &["import", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("imported 24 records (0 already stored)"),
        "{}",
        text(&out.stderr)
    );

    let export1 = dir.path().join("export1.jsonl");
    assert!(
        sonde(&first, &["export", "--out", export1.to_str().unwrap()])
            .status
            .success()
    );
    let second = db_url(dir.path(), "nested/second.db");
    assert!(
        sonde(&second, &["import", export1.to_str().unwrap()])
            .status
            .success()
    );
    let export2 = sonde(&second, &["export"]);
    assert!(export2.status.success());
    let export1 = std::fs::read_to_string(&export1).unwrap();
    assert_eq!(export1, text(&export2.stdout));
    assert_eq!(export1.lines().count(), 24);
    // Same records as the input, whatever the order.
    let mut a: Vec<Value> = export1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut b: Vec<Value> = sample_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    a.sort_by_key(|v| v["id"].to_string());
    b.sort_by_key(|v| v["id"].to_string());
    assert_eq!(a, b);

    // Importing again stores nothing new.
    let again = sonde(&second, &["import", input.to_str().unwrap()]);
    assert!(
        text(&again.stderr).contains("imported 0 records (24 already stored)"),
        "{}",
        text(&again.stderr)
    );
    // One session alone.
    let one = sonde(&second, &["export", "--session", "session-1"]);
    assert_eq!(text(&one.stdout).lines().count(), 8);
}

#[test]
fn a_corrupt_line_is_named_and_every_other_line_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = sample_lines();
    lines[4] = r#"{"schema_version":1,"id":"broken","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"session-0"},"kind":"llm_call","payload":{"input_tokens":"lots"}}"#.into();
    lines.insert(10, "{this is not json".into());
    lines.insert(12, r#"{"schema_version":7,"id":"x"}"#.into());
    let input = write_file(dir.path(), "bad.jsonl", &lines);
    let db = db_url(dir.path(), "t.db");

    let strict = sonde(&db, &["import", "--strict", input.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        text(&strict.stderr).contains("nothing imported: 3 bad lines"),
        "{}",
        text(&strict.stderr)
    );
    let count = sonde(
        &db,
        &["query", "SELECT count(*) AS n FROM events", "--json"],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&count.stdout).unwrap()[0]["n"],
        0
    );

    let out = sonde(&db, &["import", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "bad lines make the exit code 1");
    let err = text(&out.stderr);
    let name = input.display();
    assert!(
        err.contains(&format!("{name}:5: invalid field `payload.input_tokens`")),
        "{err}"
    );
    assert!(err.contains(&format!("{name}:11: invalid json")), "{err}");
    assert!(
        err.contains(&format!(
            "{name}:13: unsupported schema_version 7: this sonde reads version 1"
        )),
        "{err}"
    );
    assert!(err.contains("imported 23 records"), "{err}");
    let export = sonde(&db, &["export"]);
    assert_eq!(text(&export.stdout).lines().count(), 23);
}

#[test]
fn stdin_imports_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path(), "t.db");
    let out = sonde_stdin(&db, &["import", "-"], &sample_lines().join("\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bad = sonde_stdin(&db, &["import", "--strict", "-"], "\n{oops}\n");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("<stdin>:2: invalid json"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_query_that_writes_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let db = db_url(dir.path(), "t.db");
    sonde(&db, &["import", input.to_str().unwrap()]);
    let before = text(&sonde(&db, &["export"]).stdout);
    for sql in [
        "DELETE FROM events",
        "UPDATE sessions SET metadata = '{}'",
        "DROP TABLE messages",
        "SELECT 1; DELETE FROM events",
    ] {
        let out = sonde(&db, &["query", sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        assert!(
            text(&out.stderr).contains("refused"),
            "{sql}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(text(&sonde(&db, &["export"]).stdout), before);

    let out = sonde(
        &db,
        &[
            "query",
            "SELECT model, input_tokens FROM events WHERE model = ?1",
            "--param",
            "gpt-5-1",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "model    input_tokens\ngpt-5-1           100\n"
    );
    let out = sonde(
        &db,
        &[
            "query",
            "SELECT session_id FROM sessions ORDER BY session_id",
            "--json",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([{"session_id": "session-0"}, {"session_id": "session-1"}, {"session_id": "session-2"}])
    );
}

/// A database holding [`sample_lines`], in a folder that lives as long as the guard.
fn sample_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let db = db_url(dir.path(), "t.db");
    sonde(&db, &["import", input.to_str().unwrap()]);
    (dir, db)
}

/// What `sonde ARGS` printed, as JSON; it must have succeeded.
fn json_of(db: &str, args: &[&str]) -> Value {
    let out = sonde(db, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn calls_list_with_filters_and_pages_and_sessions_are_searched_by_words() {
    let (_dir, db) = sample_db();
    let json = |args: &[&str]| json_of(&db, args);
    let ids = |page: &Value, list: &str, id: &str| -> Vec<String> {
        page[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[id].as_str().unwrap().to_owned())
            .collect()
    };

    let all = json(&["calls", "--json"]);
    assert_eq!(ids(&all, "calls", "id"), ["r-2-3", "r-1-3", "r-0-3"]);
    assert_eq!(all["calls"][0]["input_tokens"], 100);
    assert_eq!(all["calls"][0]["cost_usd"], 0.25);
    assert_eq!(all["next_cursor"], Value::Null);
    for (args, want) in [
        (vec!["--model", "gpt-5-1"], vec!["r-1-3"]),
        (vec!["--meta", "user=u2"], vec!["r-2-3"]),
        (
            vec!["--session", "session-0", "--status", "ok"],
            vec!["r-0-3"],
        ),
        (vec!["--min-latency", "900"], vec![]),
        (vec!["--failed"], vec![]),
    ] {
        let page = json(&[&["calls", "--json"], args.as_slice()].concat());
        assert_eq!(ids(&page, "calls", "id"), want, "{args:?}");
    }
    let table = text(&sonde(&db, &["calls", "--limit", "1", "--provider", "openai"]).stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("TIME") && rows[0].contains("CACHE READ"),
        "{table}"
    );
    assert!(
        rows[1].contains("gpt-5-2") && rows[1].contains("$0.25"),
        "{table}"
    );
    let more = rows[2].strip_prefix("more: sonde ").unwrap();
    assert!(
        more.contains("calls --limit 1 --provider openai --cursor "),
        "{more}"
    );
    let cursor = more.rsplit(' ').next().unwrap();
    let next = json(&["calls", "--json", "--limit", "1", "--cursor", cursor]);
    assert_eq!(ids(&next, "calls", "id"), ["r-1-3"]);
    assert_eq!(
        text(&sonde(&db, &["calls", "--min-cost", "1"]).stdout),
        "no LLM calls\n"
    );
    let bad = sonde(&db, &["calls", "--meta", "nokey"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("invalid --meta \"nokey\""));

    let found = json(&["sessions", "--json", "--search", "HELLO grep"]);
    assert_eq!(ids(&found, "sessions", "session_id").len(), 3);
    assert_eq!(found["sessions"][0]["tool_calls"], 1);
    let none = text(&sonde(&db, &["sessions", "--search", "goodbye"]).stdout);
    assert_eq!(none, "no sessions\n");
}

#[test]
fn sessions_show_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let db = db_url(dir.path(), "t.db");
    sonde(&db, &["import", input.to_str().unwrap()]);

    let list = text(&sonde(&db, &["sessions"]).stdout);
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[0].starts_with("SESSION"), "{list}");
    assert!(
        rows[1].starts_with("session-2") && rows[3].starts_with("session-0"),
        "{list}"
    );
    assert!(
        rows[1].contains("$0.25") && rows[1].contains("gpt-5-2"),
        "{list}"
    );

    let page: Value =
        serde_json::from_slice(&sonde(&db, &["sessions", "--limit", "2", "--json"]).stdout)
            .unwrap();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value =
        serde_json::from_slice(&sonde(&db, &["sessions", "--json", "--cursor", cursor]).stdout)
            .unwrap();
    assert_eq!(rest["sessions"][0]["session_id"], "session-0");
    let bad = sonde(&db, &["sessions", "--cursor", "nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid cursor"),
        "{}",
        text(&bad.stderr)
    );
    let filtered: Value = serde_json::from_slice(
        &sonde(
            &db,
            &[
                "sessions", "--json", "--model", "gpt-5-1", "--meta", "user=u1",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(filtered["sessions"].as_array().unwrap().len(), 1);

    let show = sonde(&db, &["show", "session-1"]);
    let shown = text(&show.stdout);
    assert!(shown.contains("openai/gpt-5-1 in=100 out=20"), "{shown}");
    assert!(shown.contains("user_prompt human→agent: hello"), "{shown}");
    let json: Value =
        serde_json::from_slice(&sonde(&db, &["show", "session-1", "--json"]).stdout).unwrap();
    assert_eq!(json["events"].as_array().unwrap().len(), 2);

    assert!(sonde(&db, &["rm", "session-1", "--yes"]).status.success());
    let gone = sonde(&db, &["show", "session-1"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone.stderr).contains("no session session-1"));
    assert_eq!(
        sonde(&db, &["rm", "session-1", "--yes"]).status.code(),
        Some(1)
    );
    assert_eq!(text(&sonde(&db, &["export"]).stdout).lines().count(), 16);
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sonde("mysql://nowhere", &["sessions"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unsupported database url"),
        "{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = sonde(
        &db_url(dir.path(), "t.db"),
        &["import", "/no/such/file.jsonl"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read /no/such/file.jsonl"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_default_database_lives_in_the_users_data_folder() {
    let home = tempfile::tempdir().unwrap();
    let default = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sonde"))
            .args(args)
            .env_remove("SONDE_DB")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let db = home.path().join(".local/share/sonde/sonde.db");
    // Before anything is recorded, a command that reads says so and how to record, and
    // creates nothing.
    let out = default(&["sessions"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "nothing recorded yet",
        &db.display().to_string(),
        "sonde sync all",
        "sonde serve",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!home.path().join(".local").exists());
    // A command that stores creates it there.
    let out = default(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(db.exists());
    assert_eq!(text(&default(&["sessions"]).stdout), "no sessions\n");
    let memory = sonde("sqlite::memory:", &["sessions"]);
    assert_eq!(text(&memory.stdout), "no sessions\n");
}

#[test]
fn commands_that_read_refuse_a_missing_database_and_commands_that_store_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nested/typo.db");
    let expected = format!(
        "sonde: no database at {} (commands that read do not create one; check --db or SONDE_DB)\n",
        missing.display()
    );
    let reads: [&[&str]; 16] = [
        &["sessions"],
        &["sessions", "--json"],
        &["show", "s-1"],
        &["query", "SELECT 1", "--json"],
        &["export"],
        &["stats", "summary"],
        &["stats", "usage"],
        &["stats", "cost"],
        &["stats", "models", "--json"],
        &["stats", "keys"],
        &["stats", "latency"],
        &["stats", "errors"],
        &["keys", "list"],
        &["keys", "revoke", "k-1"],
        &["rm", "s-1", "--yes"],
        &["export", "--to", "http://127.0.0.1:1"],
    ];
    for db in [
        format!("sqlite://{}", missing.display()),
        missing.display().to_string(),
    ] {
        for args in reads {
            let out = sonde(&db, args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert_eq!(text(&out.stderr), expected, "{args:?}");
            assert!(out.stdout.is_empty(), "{args:?}");
            assert!(!dir.path().join("nested").exists(), "{args:?} created it");
        }
    }
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let codex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data/codex");
    let writes: [(&str, &[&str]); 4] = [
        ("import", &["import", input.to_str().unwrap()]),
        ("migrate", &["migrate"]),
        (
            "keys",
            &["keys", "create", "--org", "acme", "--workspace", "prod"],
        ),
        (
            "sync",
            &["sync", "codex", "--path", codex.to_str().unwrap()],
        ),
    ];
    for (name, args) in writes {
        let path = dir.path().join(format!("new-{name}/t.db"));
        let db = format!("sqlite://{}", path.display());
        let out = sonde(&db, args);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(path.exists(), "{name} creates the database");
        assert!(sonde(&db, &["sessions"]).status.success(), "{name}");
    }
    let served = dir.path().join("new-serve/t.db");
    let (mut server, _) = spawn_server(&format!("sqlite://{}", served.display()));
    assert!(served.exists(), "serve creates the database");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

#[test]
fn sqlite_and_postgres_export_the_same_records_identically() {
    let server = sonde_pgtest::PgServer::running();
    let pg = server.fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    let sqlite = db_url(dir.path(), "t.db");

    let migrate = sonde(&pg, &["migrate"]);
    assert!(migrate.status.success(), "{}", text(&migrate.stderr));
    let sqlite_version = text(&sonde(&sqlite, &["migrate"]).stdout).replace("sqlite", "postgres");
    assert!(
        sqlite_version.starts_with("postgres database at schema version "),
        "{sqlite_version}"
    );
    assert_eq!(
        text(&migrate.stdout),
        sqlite_version,
        "both backends reach the same schema version"
    );
    for db in [&sqlite, &pg] {
        let out = sonde(db, &["import", input.to_str().unwrap()]);
        assert!(out.status.success(), "{db}: {}", text(&out.stderr));
    }
    let from_sqlite = text(&sonde(&sqlite, &["export"]).stdout);
    let from_postgres = text(&sonde(&pg, &["export"]).stdout);
    assert_eq!(from_sqlite.lines().count(), 24);
    assert_eq!(from_sqlite, from_postgres);
    // Every command works against PostgreSQL.
    assert_eq!(
        text(&sonde(&sqlite, &["sessions", "--json"]).stdout),
        text(&sonde(&pg, &["sessions", "--json"]).stdout)
    );
    assert_eq!(
        text(&sonde(&sqlite, &["show", "session-1"]).stdout),
        text(&sonde(&pg, &["show", "session-1"]).stdout)
    );
    let q = "SELECT session_id, event_count, total_tokens FROM sessions ORDER BY session_id";
    assert_eq!(
        text(&sonde(&sqlite, &["query", q, "--json"]).stdout),
        text(&sonde(&pg, &["query", q, "--json"]).stdout)
    );
    assert_eq!(
        sonde(&pg, &["query", "DELETE FROM events"]).status.code(),
        Some(1)
    );
    assert!(sonde(&pg, &["rm", "session-1", "--yes"]).status.success());
    assert_eq!(text(&sonde(&pg, &["export"]).stdout).lines().count(), 16);
}

#[test]
fn stats_print_the_documented_json_fields() {
    let (_dir, db) = sample_db();
    let json = |args: &[&str]| json_of(&db, args);
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    let has = |v: &Value, fields: &[&str]| {
        for f in fields {
            assert!(keys(v).iter().any(|k| k == f), "{f} missing in {v}");
        }
    };
    let summary = json(&["stats", "summary", "--json"]);
    has(
        &summary,
        &[
            "calls",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_usd",
            "errors",
            "error_rate",
        ],
    );
    assert_eq!(summary["calls"], 3);
    assert_eq!(summary["input_tokens"], 300);
    assert!((summary["cost_usd"].as_f64().unwrap() - 0.75).abs() < 1e-12);
    for report in ["usage", "cost"] {
        let series = json(&[
            "stats",
            report,
            "--json",
            "--group-by",
            "model",
            "--bucket",
            "week",
        ]);
        assert_eq!(series.as_array().unwrap().len(), 3);
        has(
            &series[0],
            &[
                "bucket",
                "group",
                "calls",
                "input_tokens",
                "output_tokens",
                "total_tokens",
                "cost_usd",
            ],
        );
        assert_eq!(
            series[0]["bucket"], "2025-12-29T00:00:00.000000Z",
            "weeks start on Monday"
        );
    }
    let models = json(&["stats", "models", "--json"]);
    has(
        &models[0],
        &[
            "provider",
            "model",
            "calls",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "avg_latency_ms",
            "p95_latency_ms",
            "error_rate",
        ],
    );
    let latency = json(&["stats", "latency", "--json", "--group-by", "provider"]);
    has(
        &latency[0],
        &[
            "group",
            "count",
            "p50_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "ttft_p50_ms",
            "ttft_p95_ms",
        ],
    );
    assert_eq!(latency[0]["p50_ms"], 800.0);
    let errors = json(&["stats", "errors", "--json", "--group-by", "model"]);
    has(&errors[0], &["group", "calls", "errors", "error_rate"]);
    assert_eq!(
        json(&["stats", "keys", "--json"]),
        json!([]),
        "calls without a key are left out"
    );
    let filtered = json(&[
        "stats",
        "summary",
        "--json",
        "--model",
        "gpt-5-1",
        "--since",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(filtered["calls"], 1);
    let table = text(&sonde(&db, &["stats", "models"]).stdout);
    assert!(
        table.lines().next().unwrap().starts_with("PROVIDER"),
        "{table}"
    );
    assert!(table.contains("$0.25"), "{table}");
}

#[test]
fn a_price_file_overrides_the_shipped_table() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(
        &prices,
        "[models.\"gpt-5-1\"]\ninput = 1000.0\noutput = 0\n",
    )
    .unwrap();
    let db = db_url(dir.path(), "t.db");
    let mut lines = sample_lines();
    // No reported cost: the cost is computed from the price file, at $1,000 per million input tokens.
    lines = lines
        .into_iter()
        .map(|l| l.replace(",\"cost_usd\":0.25", ""))
        .collect();
    let input = write_file(dir.path(), "in.jsonl", &lines);
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args([
            "--db",
            &db,
            "--prices",
            prices.to_str().unwrap(),
            "import",
            input.to_str().unwrap(),
        ])
        .env("SONDE_SPOOL", spool_for(&db))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(
        &sonde(&db, &["stats", "summary", "--json", "--model", "gpt-5-1"]).stdout,
    )
    .unwrap();
    assert!(
        (summary["computed_cost_usd"].as_f64().unwrap() - 0.1).abs() < 1e-12,
        "{summary}"
    );
    assert_eq!(summary["reported_cost_usd"], 0.0);

    let pricing = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args([
            "--prices",
            prices.to_str().unwrap(),
            "pricing",
            "gpt-5-1",
            "--json",
        ])
        .output()
        .unwrap();
    let pricing: Value = serde_json::from_slice(&pricing.stdout).unwrap();
    assert_eq!(pricing["source"], "override");
    assert_eq!(pricing["per_million_tokens"]["input"], 1000.0);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[models.x]\ninptu = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--prices", bad.to_str().unwrap(), "pricing", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.toml: line 2: unknown field `inptu`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn otlp_json_files_import_as_sessions_and_bad_spans_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path(), "t.db");
    let spec = "../../../shared/data/otlp/opentelemetry-proto_examples_trace.json";
    let spec = if Path::new(spec).exists() {
        spec.to_owned()
    } else {
        "../sonde-otlp/tests/data/spec_trace.json".to_owned()
    };
    let out = sonde(&db, &["import", "--format", "otlp-json", &spec]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let show: Value = serde_json::from_slice(
        &sonde(&db, &["show", "5b8efff798038103d269b633813fc60c", "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(show["events"][0]["value"]["name"], "I'm a server span");

    // One request per line, as OTel file exporters write: a bad line and a bad span are
    // named, the good request is imported.
    let chat = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat gpt-5",
         "startTimeUnixNano": "1763789160000000000", "endTimeUnixNano": "1763789162000000000",
         "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "30"}},
            {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-1"}}]},
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "zz", "name": "broken"}]}]}]});
    let lines = write_file(
        dir.path(),
        "spans.jsonl",
        &[chat.to_string(), "{not json".into()],
    );
    let out = sonde(
        &db,
        &["import", "--format", "otlp-json", lines.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("spans.jsonl:1: span \"broken\": spanId must be 16 hex digits"),
        "{err}"
    );
    assert!(err.contains("spans.jsonl:2: invalid OTLP/JSON"), "{err}");
    let summary: Value =
        serde_json::from_slice(&sonde(&db, &["stats", "summary", "--json"]).stdout).unwrap();
    assert_eq!(
        (
            summary["calls"].as_u64(),
            summary["input_tokens"].as_u64(),
            summary["output_tokens"].as_u64()
        ),
        (Some(1), Some(120), Some(30))
    );
    let sessions: Value =
        serde_json::from_slice(&sonde(&db, &["sessions", "--json", "--model", "gpt-5"]).stdout)
            .unwrap();
    assert_eq!(sessions["sessions"][0]["session_id"], "conv-1");
}

/// Starts `sonde serve` on a free loopback port and waits until it listens.
fn spawn_server(db: &str) -> (std::process::Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env("SONDE_SPOOL", spool_for(db))
        .stderr(Stdio::null());
    let (server, addr, _) = common::spawn_serve(command, db);
    (server, addr)
}

#[test]
fn sonde_serve_receives_otlp_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path(), "t.db");
    let (mut server, addr) = spawn_server(&db);
    let span = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": "chat",
        "startTimeUnixNano": "1763789160000000000", "endTimeUnixNano": "1763789160900000000",
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
                       {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "7"}}]}]}]}]});
    assert_eq!(
        post(
            &addr,
            "/v1/traces",
            "application/json",
            span.to_string().as_bytes()
        ),
        200
    );
    assert_eq!(
        post(&addr, "/v1/traces", "application/json", b"{broken"),
        400
    );
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "a SIGTERM drains and exits 0");
    let show: Value = serde_json::from_slice(
        &sonde(&db, &["show", "4bf92f3577b34da6a3ce929d0e0e4736", "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(show["events"][0]["value"]["output_tokens"], 7);
}

#[test]
fn keys_are_created_listed_and_revoked_and_the_secret_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_url(dir.path(), "t.db");
    let created = sonde(
        &db,
        &[
            "keys",
            "create",
            "--org",
            "acme",
            "--workspace",
            "prod",
            "--name",
            "ci",
        ],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let secret = text(&created.stdout).trim().to_owned();
    assert!(
        secret.starts_with("sonde_") && secret.len() > 40,
        "{secret}"
    );
    let listed: Value =
        serde_json::from_slice(&sonde(&db, &["keys", "list", "--json"]).stdout).unwrap();
    let listed_text = listed.to_string();
    assert_eq!(listed[0]["org"], "acme");
    assert_eq!(listed[0]["name"], "ci");
    assert!(
        !listed_text.contains(&secret),
        "the secret is never shown again"
    );
    let stored = text(&sonde(&db, &["query", "SELECT * FROM api_keys", "--json"]).stdout);
    assert!(!stored.contains(&secret), "only its hash is stored");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(sonde(&db, &["keys", "revoke", &id]).status.success());
    assert_eq!(sonde(&db, &["keys", "revoke", &id]).status.code(), Some(1));
    let table = text(&sonde(&db, &["keys", "list"]).stdout);
    assert!(table.lines().nth(1).unwrap().contains("acme"), "{table}");
}

#[test]
fn sonde_export_to_sends_spans_to_another_sonde() {
    let dir = tempfile::tempdir().unwrap();
    let source = db_url(dir.path(), "source.db");
    let target = db_url(dir.path(), "target.db");
    let input = write_file(dir.path(), "in.jsonl", &sample_lines());
    assert!(
        sonde(&source, &["import", input.to_str().unwrap()])
            .status
            .success()
    );
    let (mut server, addr) = spawn_server(&target);
    let out = sonde(&source, &["export", "--to", &format!("http://{addr}")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        // Per session: its session and turn spans, a message, two events, a reward.
        text(&out.stderr).contains("exported 18 spans of 3 sessions"),
        "{}",
        text(&out.stderr)
    );
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let summary: Value =
        serde_json::from_slice(&sonde(&target, &["stats", "summary", "--json"]).stdout).unwrap();
    assert_eq!(
        (summary["calls"].as_u64(), summary["input_tokens"].as_u64()),
        (Some(3), Some(300))
    );
    let sessions: Value =
        serde_json::from_slice(&sonde(&target, &["sessions", "--json"]).stdout).unwrap();
    let mut ids: Vec<String> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["session-0", "session-1", "session-2"],
        "sessions keep their ids through gen_ai.conversation.id"
    );
}

#[test]
fn otlp_targets_send_the_headers_otel_exporter_otlp_headers_names() {
    let dir = tempfile::tempdir().unwrap();
    let target = db_url(dir.path(), "target.db");
    let created = sonde(
        &target,
        &["keys", "create", "--org", "acme", "--workspace", "prod"],
    );
    let secret = text(&created.stdout).trim().to_owned();
    let (mut server, addr) = spawn_server(&target);
    let codex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data/codex");
    let sync = |headers: Option<&str>, state: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
        command
            .args([
                "--db",
                &db_url(dir.path(), "unused.db"),
                "sync",
                "codex",
                "--path",
            ])
            .arg(&codex)
            .args(["--to", &format!("http://{addr}"), "--state"])
            .arg(dir.path().join(state))
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS");
        if let Some(h) = headers {
            command.env("OTEL_EXPORTER_OTLP_HEADERS", h);
        }
        command.output().unwrap()
    };
    // Without the key the server refuses, and the error says so (without the secret).
    let refused = sync(None, "a.json");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("401"),
        "{}",
        text(&refused.stderr)
    );
    // A malformed variable is a one-line error naming it.
    let bad = sync(Some("no-equals"), "b.json");
    assert!(
        text(&bad.stderr).contains("OTEL_EXPORTER_OTLP_HEADERS"),
        "{}",
        text(&bad.stderr)
    );
    let sent = sync(Some(&format!("Authorization=Bearer%20{secret}")), "c.json");
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(!text(&sent.stderr).contains(&secret));
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let summary: Value =
        serde_json::from_slice(&sonde(&target, &["stats", "summary", "--json"]).stdout).unwrap();
    assert_eq!(summary["calls"].as_u64(), Some(2), "{summary}");
}
