//! The command line as a whole: completions and the man page name every command,
//! help has examples and only the options that apply, `rm` asks first, `schema`
//! lists what `query` reads, `sync --path` tells whose logs it reads, `show` and
//! `sessions` agree, times and durations read like times, JSON costs are rounded.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

mod common;

const SUBCOMMANDS: [&str; 20] = [
    "demo",
    "import",
    "export",
    "sessions",
    "show",
    "query",
    "serve",
    "stats",
    "keys",
    "pricing",
    "migrate",
    "schema",
    "sync",
    "rm",
    "prune",
    "backup",
    "calls",
    "status",
    "completions",
    "man",
];

fn sonde(db: &str, args: &[&str]) -> Output {
    common::sonde_on(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn transcripts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sonde-sync/tests/data")
        .join(name)
}

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    (dir, db)
}

/// A database holding the Claude Code transcripts of the sync tests.
fn synced_claude_db() -> (tempfile::TempDir, String) {
    let (dir, db) = temp_db();
    let path = transcripts("claude-code");
    ok(sonde(&db, &["sync", "--path", path.to_str().unwrap()]));
    (dir, db)
}

#[test]
fn completions_and_the_man_page_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = text(&ok(sonde("sqlite::memory:", &["completions", shell])).stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let page = text(&ok(sonde("sqlite::memory:", &["man"])).stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH sonde"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("sonde\\-{sub}")) || page.contains(sub),
            "man lacks {sub}"
        );
    }
}

#[test]
fn every_subcommand_has_a_man_page_of_its_own() {
    let page = text(&ok(sonde("sqlite::memory:", &["man", "sync"])).stdout);
    assert!(page.contains(".TH sonde-sync 1"), "{page}");
    assert!(
        page.contains("\\-\\-watch"),
        "the sync page documents its options"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    ok(sonde(
        "sqlite::memory:",
        &["man", "--dir", out.to_str().unwrap()],
    ));
    assert!(out.join("sonde.1").is_file());
    for sub in SUBCOMMANDS {
        assert!(
            out.join(format!("sonde-{sub}.1")).is_file(),
            "no page for {sub}"
        );
    }

    let unknown = sonde("sqlite::memory:", &["man", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no subcommand nope: expected one of"));
}

#[test]
fn colour_only_on_terminals_or_when_forced_and_never_with_no_color() {
    let run = |env: &[(&str, &str)]| {
        let mut command = common::sonde_on("sqlite::memory:");
        command.args(["man", "nope"]).stdin(Stdio::null());
        command.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            command.env(k, v);
        }
        text(&command.output().unwrap().stderr)
    };
    let escape = "\u{1b}[";
    assert!(
        run(&[]).starts_with("sonde: no subcommand"),
        "a pipe gets plain text"
    );
    assert!(run(&[("CLICOLOR_FORCE", "1")]).contains(escape));
    let no_color = run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!no_color.contains(escape), "{no_color}");
}

#[test]
fn every_command_has_examples_and_only_the_global_options_it_uses() {
    for sub in SUBCOMMANDS {
        let help = text(&ok(sonde("sqlite::memory:", &[sub, "--help"])).stdout);
        assert!(
            help.contains("EXAMPLES:\n  sonde"),
            "sonde {sub} --help: {help}"
        );
    }
    let help = |args: &[&str]| text(&ok(sonde("sqlite::memory:", args)).stdout);
    assert!(!help(&["pricing", "--help"]).contains("--db"));
    assert!(!help(&["man", "--help"]).contains("--db"));
    assert!(help(&["sessions", "--help"]).contains("--db"));
    assert!(!help(&["sessions", "--help"]).contains("--prices"));
    assert!(!help(&["stats", "cost", "--help"]).contains("--prices"));
    assert!(help(&["stats", "cost", "--help"]).contains("--db"));
    assert!(help(&["import", "--help"]).contains("--prices"));
    assert!(help(&["pricing", "--help"]).contains("--prices"));
}

#[test]
fn rm_asks_first_and_without_a_terminal_needs_yes() {
    let (_dir, db) = temp_db();
    ok(sonde(&db, &["demo"]));
    let id = json(&ok(sonde(&db, &["sessions", "--json"])))["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = sonde(&db, &["rm", &id]);
    assert_eq!(refused.status.code(), Some(2));
    let message = text(&refused.stderr);
    assert!(
        message.contains("--yes") && message.lines().count() == 1,
        "{message}"
    );
    assert_eq!(
        json(&ok(sonde(&db, &["sessions", "--json"])))["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let deleted = json(&ok(sonde(&db, &["rm", &id, "--yes", "--json"])));
    assert_eq!(deleted["deleted"], id.as_str());
    assert_eq!(text(&ok(sonde(&db, &["sessions"])).stdout), "no sessions\n");
}

#[test]
fn schema_lists_the_tables_query_reads_and_says_which_cost_is_which() {
    let (_dir, db) = temp_db();
    ok(sonde(&db, &["migrate"]));
    let shown = text(&ok(sonde(&db, &["schema"])).stdout);
    for word in [
        "sessions",
        "events",
        "outcome_rewards",
        "reported_cost_usd",
        "computed_cost_usd",
        "sonde_payload(payload)",
        "payload::jsonb",
    ] {
        assert!(shown.contains(word), "{word}: {shown}");
    }
    let schema = json(&ok(sonde(&db, &["schema", "--json"])));
    let tables = schema["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 6);
    let events = tables.iter().find(|t| t["table"] == "events").unwrap();
    // Every column listed is one `query` can read.
    for column in events["columns"].as_array().unwrap() {
        let sql = format!("SELECT {} FROM events LIMIT 1", column.as_str().unwrap());
        ok(sonde(&db, &["query", &sql]));
    }
}

#[test]
fn sync_path_without_an_agent_tells_whose_logs_they_are() {
    let (_dir, db) = temp_db();
    for (data, source) in [("claude-code", "claude"), ("codex", "codex")] {
        let path = transcripts(data);
        let out = ok(sonde(
            &db,
            &["sync", "--path", path.to_str().unwrap(), "--json"],
        ));
        let result = json(&out);
        assert_eq!(result["source"], source, "{result}");
        assert!(result["spans_synced"].as_u64().unwrap() > 0, "{result}");
    }
    let both = json(&ok(sonde(
        &db,
        &[
            "sync",
            "--path",
            transcripts("claude-code").to_str().unwrap(),
            "--path",
            transcripts("codex").to_str().unwrap(),
            "--json",
            "--dry-run",
        ],
    )));
    assert_eq!(both.as_array().unwrap().len(), 2, "{both}");
    let unknown = tempfile::tempdir().unwrap();
    std::fs::write(unknown.path().join("x.jsonl"), "{\"hello\": 1}\n").unwrap();
    let out = sonde(&db, &["sync", "--path", unknown.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("name the agent"));
    assert_eq!(sonde(&db, &["sync"]).status.code(), Some(2));
}

/// `started   2026-... UTC` and the totals' cost, from `sonde show`.
fn shown_start_and_cost(shown: &str) -> (String, String) {
    let start = shown
        .lines()
        .find_map(|l| l.strip_prefix("started   "))
        .unwrap()
        .to_owned();
    let totals = shown.lines().find(|l| l.starts_with("totals")).unwrap();
    let cost = totals.rsplit(", ").next().unwrap().to_owned();
    (start, cost)
}

#[test]
fn show_and_sessions_agree_on_start_and_cost() {
    let (_dir, db) = temp_db();
    for data in ["claude-code", "claude-code-synthetic", "codex"] {
        ok(sonde(
            &db,
            &["sync", "--path", transcripts(data).to_str().unwrap()],
        ));
    }
    let listed = json(&ok(sonde(&db, &["sessions", "--json", "--limit", "1000"])));
    let table = text(&ok(sonde(&db, &["sessions", "--limit", "1000", "--tz", "UTC"])).stdout);
    let sessions = listed["sessions"].as_array().unwrap();
    assert!(sessions.len() > 3);
    for s in sessions {
        let id = s["session_id"].as_str().unwrap();
        let shown = text(&ok(sonde(&db, &["show", id, "--tz", "UTC"])).stdout);
        let (start, cost) = shown_start_and_cost(&shown);
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap();
        assert!(
            row.contains(&start),
            "{id}: show says {start}, sessions {row}"
        );
        let listed_cost = if cost == "cost unknown" {
            "-".to_owned()
        } else {
            cost.clone()
        };
        assert!(
            row.split("  ").any(|cell| cell.trim() == listed_cost),
            "{id}: show says {cost}, sessions {row}"
        );
    }
}

#[test]
fn times_take_dates_date_times_and_spans_and_durations_read_like_durations() {
    let (_dir, db) = synced_claude_db();
    for since in [
        "2020-01-01",
        "2020-01-01T10:00",
        "2020-01-01T10:00:00Z",
        "10000d",
    ] {
        let page = json(&ok(sonde(&db, &["sessions", "--json", "--since", since])));
        assert!(!page["sessions"].as_array().unwrap().is_empty(), "{since}");
    }
    let none = ok(sonde(&db, &["sessions", "--until", "2000-01-01"]));
    assert_eq!(text(&none.stdout), "no sessions\n");
    assert_eq!(
        sonde(&db, &["sessions", "--since", "yesterday"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        sonde(&db, &["sessions", "--tz", "Mars/Olympus"])
            .status
            .code(),
        Some(2)
    );
    let listing = text(&ok(sonde(&db, &["sessions", "--tz", "UTC"])).stdout);
    // Minutes and seconds, never fractions of minutes (`326.1m`).
    assert!(
        !listing.contains(".1m")
            && !listing.lines().skip(1).any(|l| l.contains("m ")
                && l.contains(".")
                && l.split_whitespace()
                    .any(|w| w.ends_with('m') && w.contains('.'))),
        "{listing}"
    );
    assert!(listing.contains(" UTC"), "{listing}");
}

#[test]
fn stats_series_show_a_group_only_when_grouped_and_say_when_empty() {
    let (_dir, db) = synced_claude_db();
    let usage = text(&ok(sonde(&db, &["stats", "usage", "--since", "100000d"])).stdout);
    assert!(!usage.contains("GROUP"), "{usage}");
    // Dates align left: the header starts where the dates do.
    let lines: Vec<&str> = usage.lines().collect();
    assert!(
        lines[0].starts_with("BUCKET") && lines[1].starts_with("20"),
        "{usage}"
    );
    let grouped = text(
        &ok(sonde(
            &db,
            &["stats", "cost", "--since", "100000d", "--group-by", "model"],
        ))
        .stdout,
    );
    assert!(grouped.contains("GROUP"), "{grouped}");
    for report in ["usage", "cost", "models", "latency", "errors", "keys"] {
        let empty = text(&ok(sonde(&db, &["stats", report, "--until", "2000-01-01"])).stdout);
        assert_eq!(empty, "no LLM calls in this range\n", "{report}");
    }
}

/// Whether `value` has a cost with more than 9 decimals.
fn noisy_cost(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k.ends_with("cost_usd")
                && v.as_f64().is_some_and(|f| {
                    let s = v.to_string();
                    s.split_once('.').is_some_and(|(_, d)| d.len() > 9) && f.is_finite()
                }))
                || noisy_cost(v)
        }),
        Value::Array(items) => items.iter().any(noisy_cost),
        _ => false,
    }
}

#[test]
fn every_command_that_prints_speaks_json_with_costs_rounded() {
    let (_dir, db) = synced_claude_db();
    let id = json(&ok(sonde(&db, &["sessions", "--json"])))["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("e.jsonl");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sessions", "--json"],
        vec!["show", &id, "--json"],
        vec!["stats", "summary", "--json"],
        vec!["stats", "usage", "--json"],
        vec!["stats", "models", "--json"],
        vec![
            "query",
            "SELECT sum(cost_usd) AS cost_usd FROM events",
            "--json",
        ],
        vec!["keys", "list", "--json"],
        vec!["pricing", "gpt-5", "--json"],
        vec!["migrate", "--json"],
        vec!["schema", "--json"],
        vec!["export", "--out", export.to_str().unwrap(), "--json"],
    ];
    for args in &commands {
        let value = json(&ok(sonde(&db, args)));
        assert!(!noisy_cost(&value), "{args:?}: {value}");
    }
    let imported = json(&ok(sonde(
        &format!("sqlite://{}", dir.path().join("copy.db").display()),
        &["import", export.to_str().unwrap(), "--json"],
    )));
    assert!(
        imported["records_written"].as_u64().unwrap() > 0,
        "{imported}"
    );
    let demo = json(&ok(sonde(
        &format!("sqlite://{}", dir.path().join("demo.db").display()),
        &["demo", "--json"],
    )));
    assert_eq!(demo["sessions"].as_array().unwrap().len(), 1);
}
