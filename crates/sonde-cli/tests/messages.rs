//! What `sonde` tells its user: errors that say what failed, where and why, once;
//! imports that name a file of another format and cap their list of bad lines; pages
//! that keep their filters; sessions shown in order, within the terminal's width; and
//! counts that read as words.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sonde::*;

fn sonde(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("SONDE_DB")
        .env(
            "SONDE_SPOOL",
            std::env::temp_dir()
                .join("sonde-message-tests")
                .join(derived_id(&[db])),
        )
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Asserts `output` failed with one line on stderr, saying `cause` once.
fn fails_saying_once(output: &Output, cause: &str) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    assert_eq!(
        text.to_lowercase().matches(&cause.to_lowercase()).count(),
        1,
        "{cause:?} said once: {text}"
    );
    text
}

#[test]
fn errors_say_what_failed_where_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "this is not sqlite").unwrap();
    let text = fails_saying_once(
        &sonde(junk.to_str().unwrap(), &["sessions"]),
        "file is not a database",
    );
    assert!(text.contains("junk.db"), "{text}");

    let folder = dir.path().to_str().unwrap();
    let text = fails_saying_once(&sonde(folder, &["migrate"]), "unable to open database file");
    assert_eq!(
        text.matches(folder).count(),
        1,
        "the path said once: {text}"
    );

    let db = format!("{}/x.db", folder);
    let missing = dir.path().join("no-such-folder");
    let text = fails_saying_once(
        &sonde(
            &db,
            &["sync", "claude", "--path", missing.to_str().unwrap()],
        ),
        "No such file or directory",
    );
    assert!(text.contains("no-such-folder"), "{text}");

    // Nothing listens on port 1: the driver's "error connecting to server" and the
    // reason under it, each once, and no password.
    let text = fails_saying_once(
        &sonde("postgres://bob:hunter2@127.0.0.1:1/x", &["sessions"]),
        "error connecting to server",
    );
    assert!(text.contains("postgres://bob:***@127.0.0.1:1/x"), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}

/// `n` record JSONL lines, none of them a record.
fn bad_lines(n: usize) -> String {
    (1..=n).map(|i| format!("{{\"bad\": {i}}}\n")).collect()
}

#[test]
fn an_import_prints_the_first_20_bad_lines_and_writes_all_of_them_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, bad_lines(30)).unwrap();
    let errors = dir.path().join("errors.txt");
    let out = sonde(
        &db,
        &[
            "import",
            input.to_str().unwrap(),
            "--errors",
            errors.to_str().unwrap(),
        ],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("bad.jsonl:").count(), 20, "{text}");
    assert!(text.contains("bad.jsonl:20: "), "{text}");
    assert!(!text.contains("bad.jsonl:21: "), "{text}");
    assert!(text.contains("… and 10 more"), "{text}");
    assert!(text.contains("30 bad lines skipped"), "{text}");
    let all = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(all.lines().count(), 30);
    assert!(
        all.lines()
            .last()
            .unwrap()
            .starts_with(&format!("{}:30: ", input.display()))
    );
}

#[test]
fn a_file_of_another_format_is_named_with_what_to_run_instead() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let records = dir.path().join("records.jsonl");
    let record = Record {
        id: "r-1".into(),
        timestamp: Timestamp::from_micros(1_767_225_600_000_000),
        context: Context::session("s-1"),
        body: Body::Message(Message {
            content: MessageContent::text("hello"),
            message_type: "user_prompt".into(),
            ..Default::default()
        }),
    };
    std::fs::write(&records, record.to_json_line() + "\n").unwrap();
    let codex = fixture(
        "sonde-sync/tests/data/codex-split/rollout-2026-11-21T14-00-00-0b9f3e2a-6c1d-4e7f-9a8b-1c2d3e4f5a66.jsonl",
    );
    let claude =
        fixture("sonde-sync/tests/data/claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let otlp = fixture("sonde-otlp/tests/data/spec_trace.json");
    let cases: [(&Path, &[&str], String); 4] = [
        (
            &codex,
            &[],
            format!(
                "this looks like a Codex rollout: use sonde sync codex --path {}",
                codex.display()
            ),
        ),
        (
            &claude,
            &[],
            format!(
                "this looks like a Claude Code transcript: use sonde sync claude --path {}",
                claude.display()
            ),
        ),
        (
            &otlp,
            &[],
            "this looks like OTLP/JSON: add --format otlp-json".into(),
        ),
        (
            &records,
            &["--format", "otlp-json"],
            "this looks like record JSONL: drop --format otlp-json".into(),
        ),
    ];
    for (input, options, hint) in cases {
        let mut args = vec!["import", input.to_str().unwrap()];
        args.extend(options);
        let out = sonde(&db, &args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("sonde: {}: {hint}\n", input.display())),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2, "the hint and the summary: {text}");
        assert!(text.contains("imported 0 records"), "{text}");
    }
    // The same files in their own format import.
    assert!(
        sonde(&db, &["import", records.to_str().unwrap()])
            .status
            .success()
    );
    let out = sonde(
        &db,
        &["import", "--format", "otlp-json", otlp.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Five sessions of each source, one LLM call each, a minute apart.
fn sessions_from_two_sources(dir: &Path) -> PathBuf {
    let mut lines = String::new();
    for i in 0..10i64 {
        let source = if i % 2 == 0 { "codex" } else { "claude" };
        let ctx = Context::session(format!("{source}-{i}"));
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), json!(source));
        metadata.insert("project".into(), json!("it's mine"));
        let at = |n: i64| Timestamp::from_micros(1_767_225_600_000_000 + i * 60_000_000 + n);
        for record in [
            Record {
                id: format!("start-{i}"),
                timestamp: at(0),
                context: ctx.clone(),
                body: Body::SessionStarted(SessionStarted {
                    metadata,
                    session_metadata: vec![],
                }),
            },
            Record {
                id: format!("call-{i}"),
                timestamp: at(1),
                context: ctx.clone(),
                body: Body::Event(Event::Llm(LlmCall {
                    model_name: format!("{source}-model"),
                    input_tokens: 10,
                    ..Default::default()
                })),
            },
        ] {
            lines += &(record.to_json_line() + "\n");
        }
    }
    let path = dir.join("sessions.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

/// The words of a command line as a POSIX shell reads them (single quotes and
/// backslashes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut started) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if !quoted => {
                word.extend(chars.next());
                started = true;
            }
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[test]
fn the_next_page_hint_repeats_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let input = sessions_from_two_sources(dir.path());
    assert!(
        sonde(&db, &["import", input.to_str().unwrap()])
            .status
            .success()
    );

    let mut args: Vec<String> = [
        "sessions",
        "--limit",
        "2",
        "--meta",
        "source=codex",
        "--meta",
        "project=it's mine",
        "--model",
        "codex-model",
    ]
    .map(String::from)
    .to_vec();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sonde(&db, &refs);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        for line in text.lines().skip(1).filter(|l| !l.starts_with("more: ")) {
            seen.push(line.split_whitespace().next().unwrap().to_owned());
        }
        let Some(hint) = text.lines().find_map(|l| l.strip_prefix("more: ")) else {
            break;
        };
        let words = shell_words(hint);
        assert_eq!(words[..3], ["sonde", "--db", db.as_str()], "{hint}");
        args = words[3..].to_vec();
        for filter in ["source=codex", "project=it's mine", "codex-model", "2"] {
            assert!(args.iter().any(|a| a == filter), "{filter} kept: {hint}");
        }
    }
    assert_eq!(
        seen,
        ["codex-8", "codex-6", "codex-4", "codex-2", "codex-0"],
        "every codex session once, and nothing else"
    );

    let out = sonde(&db, &["sessions", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn show_starts_with_the_session_start_says_its_zone_and_fits_100_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let ctx = Context::session("s-1");
    let at = |n: i64| Timestamp::from_micros(1_767_225_600_000_000 + n * 1_000_000);
    let records = [
        // The transcript named its session after its first reply.
        Record {
            id: "reply".into(),
            timestamp: at(1),
            context: ctx.clone(),
            body: Body::Message(Message {
                content: MessageContent::text("a long reply ".repeat(40)),
                message_type: "assistant_reply".into(),
                ..Default::default()
            }),
        },
        Record {
            id: "start".into(),
            timestamp: at(2),
            context: ctx.clone(),
            body: Body::SessionStarted(SessionStarted {
                metadata: [("cwd".to_owned(), json!("/x/".repeat(80)))]
                    .into_iter()
                    .collect(),
                session_metadata: vec![],
            }),
        },
        Record {
            id: "call".into(),
            timestamp: at(3),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: "gpt-5".into(),
                input_tokens: 1_000_000,
                error: Some("overloaded ".repeat(30)),
                ..Default::default()
            })),
        },
    ];
    let input = dir.path().join("s.jsonl");
    let lines: String = records.iter().map(|r| r.to_json_line() + "\n").collect();
    std::fs::write(&input, lines).unwrap();
    assert!(
        sonde(&db, &["import", input.to_str().unwrap()])
            .status
            .success()
    );

    let out = sonde(&db, &["show", "s-1", "--tz", "UTC"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.len()
        );
    }
    // Its earliest record, as `sonde sessions` says, though `session_started` is listed
    // first.
    assert!(text.contains("started   2026-01-01 00:00:01 UTC"), "{text}");
    assert!(text.contains("TIME (UTC)"), "{text}");
    let kinds: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("TIME"))
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(kinds, ["session_started", "message", "llm_call"], "{text}");
    // A call without a reported cost shows the price table's.
    assert!(text.contains("1 LLM call"), "{text}");
    assert!(!text.contains("cost unknown"), "{text}");

    let out = sonde(&db, &["export"]);
    let ids: Vec<String> = stdout(&out)
        .lines()
        .map(|l| Record::from_json_line(l).unwrap().id)
        .collect();
    assert_eq!(ids, ["start", "reply", "call"]);
}

#[test]
fn counts_of_one_are_singular_and_prices_say_how_they_matched() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let input = dir.path().join("one.jsonl");
    let mut lines = bad_lines(1);
    lines += &(Record {
        id: "m".into(),
        timestamp: Timestamp::from_micros(1_767_225_600_000_000),
        context: Context::session("s"),
        body: Body::Message(Message::default()),
    }
    .to_json_line()
        + "\n");
    std::fs::write(&input, lines).unwrap();
    let text = stderr(&sonde(&db, &["import", input.to_str().unwrap()]));
    assert!(
        text.contains("imported 1 record (0 already stored) from 1 file; 1 bad line skipped"),
        "{text}"
    );

    let text = stdout(&sonde(&db, &["pricing", "gpt-5"]));
    assert!(text.contains("matched by its exact name"), "{text}");
    let text = stdout(&sonde(&db, &["pricing", "openai/gpt-5"]));
    assert!(
        text.contains("matched by its name without the provider prefix"),
        "{text}"
    );
}
