//! `sonde sync` as a user runs it: real Claude Code transcripts give the token totals
//! that `ccusage` (the tool people already use) reports, a second run adds nothing,
//! records go to stdout with cursors in a state file, and `--watch` ships new turns.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn transcripts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sonde-sync/tests/data")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

fn sonde(db: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("SONDE_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sonde {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `ccusage` binary: `SONDE_TEST_CCUSAGE`, or the one `./scripts/test` installs
/// (`npm install --prefix target/ccusage ccusage@20.0.24`). Missing is a failure.
fn ccusage() -> PathBuf {
    if let Some(path) = std::env::var_os("SONDE_TEST_CCUSAGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/ccusage/node_modules/.bin/ccusage");
    assert!(
        path.exists(),
        "ccusage is missing: run ./scripts/test, or npm install --prefix target/ccusage ccusage@20.0.24"
    );
    path
}

/// Per model: [input, output, cache creation, cache read].
type Totals = BTreeMap<String, [u64; 4]>;

/// What `ccusage daily` reports per model for the Claude Code logs under `config_dir`.
fn ccusage_totals(config_dir: &Path) -> Totals {
    let report = Command::new(ccusage())
        .args(["daily", "--json", "--offline"])
        .env("CLAUDE_CONFIG_DIR", config_dir)
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let mut want = Totals::new();
    for day in report["daily"].as_array().unwrap() {
        for m in day["modelBreakdowns"].as_array().unwrap() {
            let t = want
                .entry(m["modelName"].as_str().unwrap().to_owned())
                .or_default();
            for (i, field) in [
                "inputTokens",
                "outputTokens",
                "cacheCreationTokens",
                "cacheReadTokens",
            ]
            .iter()
            .enumerate()
            {
                t[i] += m[*field].as_u64().unwrap();
            }
        }
    }
    want
}

/// What `sonde stats models` reports per model: token totals, and calls.
fn sonde_totals(db: &str) -> (Totals, BTreeMap<String, u64>) {
    let models = json(&sonde(db, &["stats", "models", "--json"]));
    let mut got = Totals::new();
    let mut calls = BTreeMap::new();
    for m in models.as_array().unwrap() {
        let model = m["model"].as_str().unwrap().to_owned();
        got.insert(
            model.clone(),
            [
                m["input_tokens"].as_u64().unwrap(),
                m["output_tokens"].as_u64().unwrap(),
                m["cache_write_tokens"].as_u64().unwrap(),
                m["cache_read_tokens"].as_u64().unwrap(),
            ],
        );
        assert!(m["cost_usd"].as_f64().unwrap() > 0.0, "priced: {m}");
        calls.insert(model, m["calls"].as_u64().unwrap());
    }
    (got, calls)
}

/// API responses per model in the Claude Code logs under `root`, counted apart from
/// Sonde: distinct (message.id, requestId) pairs of assistant lines.
fn responses_per_model(root: &Path) -> BTreeMap<String, u64> {
    let mut seen = std::collections::BTreeSet::new();
    let mut per_model = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let line: Value = serde_json::from_str(line).unwrap();
                let (Some(id), Some(model)) = (
                    line["message"]["id"].as_str(),
                    line["message"]["model"].as_str(),
                ) else {
                    continue;
                };
                let request = line["requestId"].as_str().unwrap_or_default();
                if line["type"] == "assistant" && seen.insert((id.to_owned(), request.to_owned())) {
                    *per_model.entry(model.to_owned()).or_default() += 1;
                }
            }
        }
    }
    per_model
}

#[test]
fn sync_then_stats_models_gives_ccusage_token_totals_and_a_second_sync_adds_nothing() {
    let home = tempfile::tempdir().unwrap();
    let projects = home.path().join("projects");
    copy_tree(&transcripts("claude-code"), &projects);
    let want = ccusage_totals(home.path());
    assert_eq!(want.len(), 5, "ccusage saw every model: {want:?}");

    let db = format!("sqlite://{}/sonde.db", home.path().display());
    let projects_arg = projects.display().to_string();
    let first = json(&sonde(
        &db,
        &["sync", "claude", "--path", &projects_arg, "--json"],
    ));
    assert_eq!(first["files_updated"], 8);
    assert_eq!(first["errors"], 0);
    let (got, calls) = sonde_totals(&db);
    assert_eq!(got, want);
    assert_eq!(calls, responses_per_model(&projects));
    let models = json(&sonde(&db, &["stats", "models", "--json"]));

    let second = json(&sonde(
        &db,
        &["sync", "claude", "--path", &projects_arg, "--json"],
    ));
    assert_eq!(second["files_updated"], 0);
    assert_eq!(second["spans_synced"], 0);
    assert_eq!(json(&sonde(&db, &["stats", "models", "--json"])), models);

    // CLAUDE_CONFIG_DIR is where `sonde sync claude` looks by default, as ccusage does.
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", &db, "sync", "claude", "--json"])
        .env("CLAUDE_CONFIG_DIR", home.path())
        .output()
        .unwrap();
    let by_default: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_default["files_scanned"], 8);
    assert_eq!(by_default["spans_synced"], 0);
}

/// Claude Code 2.1 writes one API response as one line per content block, with tool
/// results, attachments, progress and system lines between them; parallel subagents
/// split theirs the same way; a resumed session copies responses of the first; an
/// inline sidechain is copied into an agent file. Each response is one call, in one
/// run or synced in pieces cut inside responses.
#[test]
fn responses_written_as_many_lines_give_ccusage_totals_whole_and_in_pieces() {
    let home = tempfile::tempdir().unwrap();
    let projects = home.path().join("projects");
    copy_tree(&transcripts("claude-code-split"), &projects);
    std::fs::remove_file(projects.join("make_fixtures.py")).unwrap();
    let want = ccusage_totals(home.path());
    assert_eq!(want.len(), 3, "ccusage saw every model: {want:?}");
    let responses = responses_per_model(&projects);
    assert_eq!(responses.values().sum::<u64>(), 17);

    let db = format!("sqlite://{}/whole.db", home.path().display());
    let projects_arg = projects.display().to_string();
    let first = json(&sonde(
        &db,
        &["sync", "claude", "--path", &projects_arg, "--json"],
    ));
    assert_eq!(first["errors"], 0);
    let (got, calls) = sonde_totals(&db);
    assert_eq!(got, want);
    assert_eq!(calls, responses);

    // Where each record came from: in `show --json`, and in SQL.
    let shown = json(&sonde(
        &db,
        &["show", "5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11", "--json"],
    ));
    let first_call = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["value"]["metadata"]["message_id"] == "msg_01SplitA7kq3Vn2")
        .unwrap();
    let metadata = &first_call["value"]["metadata"];
    assert_eq!(
        metadata["source_file"],
        "-home-dev-shop/5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11.jsonl"
    );
    assert_eq!(
        metadata["source_lines"],
        serde_json::json!([3, 4, 5, 8, 11, 12])
    );
    assert_eq!(metadata["streamed"], true);
    let rows = json(&sonde(
        &db,
        &[
            "query",
            "--json",
            "SELECT json_extract(sonde_payload(payload), '$.metadata.source_line') AS line \
             FROM events WHERE kind = 'runtime_event' \
             AND json_extract(sonde_payload(payload), '$.tool_call_id') = 'toolu_01B2bash'",
        ],
    ));
    assert_eq!(rows, serde_json::json!([{"line": 18}]));

    // The same files written in three steps, each cut inside a response (between two
    // lines of one response, between a tool_use line and its result), each step
    // synced as it stands.
    let pieces = home.path().join("pieces");
    let main = "-home-dev-shop/5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11.jsonl";
    let agent =
        "-home-dev-shop/5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11/subagents/agent-b7d2e9a4.jsonl";
    let db = format!("sqlite://{}/pieces.db", home.path().display());
    let pieces_arg = pieces.display().to_string();
    copy_tree(&projects, &pieces);
    for cut in [[4, 3], [17, 5], [usize::MAX, usize::MAX]] {
        for (file, lines) in [(main, cut[0]), (agent, cut[1])] {
            let text = std::fs::read_to_string(projects.join(file)).unwrap();
            let kept: String = text.split_inclusive('\n').take(lines).collect();
            // Rewritten in place (same inode): a file that grew, as a log does.
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(pieces.join(file))
                .and_then(|mut f| std::io::Write::write_all(&mut f, kept.as_bytes()))
                .unwrap();
        }
        let run = json(&sonde(
            &db,
            &["sync", "claude", "--path", &pieces_arg, "--json"],
        ));
        assert_eq!(run["errors"], 0, "{run}");
    }
    let (got, calls) = sonde_totals(&db);
    assert_eq!(got, want);
    assert_eq!(calls, responses);
}

#[test]
fn records_go_to_stdout_with_cursors_in_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let db = format!("sqlite://{}/unused.db", dir.path().display());
    let path = transcripts("codex").display().to_string();
    let state_arg = state.display().to_string();
    let args = [
        "sync", "codex", "--path", &path, "--to", "-", "--state", &state_arg,
    ];
    let first = sonde(&db, &args);
    let lines: Vec<sonde::Record> = String::from_utf8(first.stdout)
        .unwrap()
        .lines()
        .map(|l| sonde::Record::from_json_line(l).unwrap())
        .collect();
    assert!(lines.len() >= 13, "{}", lines.len());
    assert!(lines.iter().any(|r| r.body.kind() == "llm_call"));
    assert!(String::from_utf8_lossy(&first.stderr).contains("codex: 3 files scanned"));
    assert!(state.exists());
    assert!(
        !dir.path().join("unused.db").exists(),
        "no database is made for --to"
    );
    let second = sonde(&db, &args);
    assert!(second.stdout.is_empty());
    // --dry-run counts and sends nothing.
    let other_state = dir.path().join("other.json").display().to_string();
    let dry = sonde(
        &db,
        &[
            "sync",
            "codex",
            "--path",
            &path,
            "--to",
            "-",
            "--state",
            &other_state,
            "--dry-run",
            "--json",
        ],
    );
    assert!(dry.stdout.is_empty());
    let summary: Value = serde_json::from_slice(&dry.stderr).unwrap();
    assert_eq!(
        summary["spans_synced"].as_u64().unwrap() as usize,
        lines.len()
    );
    assert_eq!(summary["dry_run"], true);
}

#[test]
fn sync_all_reads_both_agents_from_their_homes() {
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("claude");
    let codex = dir.path().join("codex");
    copy_tree(&transcripts("claude-code"), &claude.join("projects"));
    copy_tree(&transcripts("codex"), &codex.join("sessions"));
    let db = format!("sqlite://{}/all.db", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", &db, "sync", "all", "--json"])
        .env("CLAUDE_CONFIG_DIR", &claude)
        .env("CODEX_HOME", &codex)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_source: BTreeMap<&str, u64> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap(),
                r["files_updated"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_source, BTreeMap::from([("claude", 8), ("codex", 3)]));
    let models = json(&sonde(&db, &["stats", "models", "--json"]));
    let providers: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["provider"].as_str())
        .collect();
    assert!(providers.contains(&"anthropic") && providers.contains(&"openai"));
}

#[test]
fn bad_arguments_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/s.db", dir.path().display());
    let missing = dir.path().join("nope").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", &db, "sync", "claude", "--path", &missing])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read") && err.contains("nope"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", &db, "sync", "claude", "--to", "ftp://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to ftp://x"));
}

#[test]
fn watch_ships_new_turns_as_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects/demo");
    std::fs::create_dir_all(&projects).unwrap();
    let session = transcripts("claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let bytes = std::fs::read(&session).unwrap();
    let half = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(9)
        .unwrap()
        .0
        + 1;
    let file = projects.join("f48d4407-3211-4227-9787-2fba4bc7c9bb.jsonl");
    std::fs::write(&file, &bytes[..half]).unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let root = dir.path().join("projects").display().to_string();
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", &db, "sync", "claude", "--path", &root, "--watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let calls = || -> u64 {
        let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
            .args(["--db", &db, "stats", "summary", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["calls"].as_u64())
            .unwrap_or(0)
    };
    let wait_for = |want: u64| {
        let started = Instant::now();
        while calls() != want {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never reached {want} calls"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(3);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes[half..]))
        .unwrap();
    wait_for(8);
    watcher.kill().unwrap();
    let _ = watcher.wait();
}
