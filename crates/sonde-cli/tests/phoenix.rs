//! `sonde sync --to` into a real Arize Phoenix, read back through Phoenix's REST API:
//! each synced Claude Code and Codex session is one trace under an AGENT root with its
//! turns under it, every LLM span has input and output messages, no span is of unknown
//! kind, the per-model token totals are those of `sonde stats models`, and a session
//! synced in two halves, cut between a tool call and its result, shows the tool's final
//! status and result.
//!
//! Phoenix comes from `./scripts/test` (`target/phoenix-venv`) or `SONDE_TEST_PHOENIX`
//! (its `phoenix` executable); without it the test fails, it never skips. It runs
//! offline on loopback, on free ports, its working folder a temporary one. The
//! transcripts are the real ones under `crates/sonde-sync/tests/data` (see their
//! `SOURCE.txt`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn phoenix_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SONDE_TEST_PHOENIX").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/phoenix-venv/bin/phoenix");
    assert!(
        venv.exists(),
        "Arize Phoenix is missing: run ./scripts/test (it creates target/phoenix-venv), or set SONDE_TEST_PHOENIX to its phoenix executable"
    );
    venv
}

/// A Phoenix of the test's own; killed when dropped.
struct Phoenix {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Phoenix {
    fn start(dir: &Path) -> Self {
        let port = common::free_port();
        let log = dir.join("phoenix.log");
        let child = Command::new(phoenix_bin())
            .arg("serve")
            .current_dir(dir)
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", common::free_port().to_string())
            .env("PHOENIX_WORKING_DIR", dir)
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .env("HF_HUB_OFFLINE", "1")
            .env("DO_NOT_TRACK", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let phoenix = Phoenix {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        // A loaded machine starts it slowly (migrations, imports).
        let deadline = Instant::now() + Duration::from_secs(300);
        while get(&format!("{}/v1/projects", phoenix.url)).is_none() {
            assert!(
                Instant::now() < deadline,
                "Phoenix did not start: {}",
                std::fs::read_to_string(&phoenix.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        phoenix
    }

    /// Every span of the default project.
    fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/projects/default/spans?limit=1000", self.url);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = get(&url).unwrap_or_else(|| panic!("GET {url} failed"));
            spans.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return spans,
            }
        }
    }

    /// The spans once Phoenix has taken them all in (their count has not moved for a
    /// few seconds and is at least `least`).
    /// Phoenix's spans once it holds at least `least`, with `whole` every trace in them
    /// has its root (Phoenix stores what it is sent some time later, longer on a busy
    /// machine, and roots are sent last), and the count has not moved for 3 s.
    fn settled_spans(&self, least: usize, whole: bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut last = usize::MAX;
        let mut steady_since = Instant::now();
        loop {
            let spans = self.spans();
            if spans.len() != last {
                last = spans.len();
                steady_since = Instant::now();
            } else if spans.len() >= least
                && (!whole || every_trace_has_a_root(&spans))
                && steady_since.elapsed() > Duration::from_secs(3)
            {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "Phoenix holds {} spans, expected at least {least}",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Whether every trace among `spans` has a span without a parent.
fn every_trace_has_a_root(spans: &[Value]) -> bool {
    let traces = |root_only: bool| {
        spans
            .iter()
            .filter(|s| !root_only || s["parent_id"].is_null())
            .filter_map(|s| s["context"]["trace_id"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
    };
    traces(true) == traces(false)
}

/// A GET's JSON answer, `None` when it fails.
fn get(url: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "30", url])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `sonde` on `db` with `args`; its standard output, after checking it succeeded.
fn sonde(db: &str, args: &[&str]) -> String {
    let out = common::sonde_on(db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sonde {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An attribute of a Phoenix span, by its dotted name (as Phoenix answers), or nested
/// (`llm` → `token_count` → `prompt`).
fn attr<'a>(span: &'a Value, name: &str) -> Option<&'a Value> {
    let attributes = &span["attributes"];
    if let Some(v) = attributes.get(name) {
        return Some(v);
    }
    name.split('.')
        .try_fold(attributes, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

fn number(span: &Value, name: &str) -> u64 {
    attr(span, name).and_then(Value::as_u64).unwrap_or(0)
}

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sonde-sync/tests/data")
        .join(path)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The real session with failing tool calls: the line of its first tool call whose
/// result is an error, and that tool call's id.
fn cut_before_a_failed_result(lines: &[&str]) -> (usize, String) {
    let failed: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "tool_result" && b["is_error"] == true)
        .filter_map(|b| b["tool_use_id"].as_str().map(str::to_owned))
        .collect();
    let id = failed.first().expect("a failed tool call").clone();
    let call = lines
        .iter()
        .position(|l| l.contains(&format!("\"id\":\"{id}\"")))
        .expect("its tool_use line");
    (call + 1, id)
}

#[test]
fn synced_sessions_are_whole_readable_traces_in_phoenix() {
    let dir = tempfile::tempdir().unwrap();
    let phoenix = Phoenix::start(dir.path());
    let claude = dir.path().join("claude");
    copy_dir(&data("claude-code"), &claude);
    // Codex: the real rollout (no calls in it), the synthetic one with tool calls, and
    // Sonde's own with calls, content and token counts. Not ccusage's fixture: token
    // counts with no conversation at all, nothing to read.
    let codex = dir.path().join("codex");
    copy_dir(&data("codex"), &codex);
    copy_dir(&data("codex-split"), &codex);
    for gone in [
        "SOURCE.txt",
        "make_fixtures.py",
        "ccusage_fixture_codex_session-alpha.jsonl",
    ] {
        std::fs::remove_file(codex.join(gone)).unwrap();
    }
    std::fs::remove_file(claude.join("SOURCE.txt")).unwrap();

    // The session synced in two halves: cut after a tool call whose result failed.
    let halves = claude.join("04_v2.1.17_subagents_dir/-src-experiments-claude_p");
    let session_file = halves.join("2b4ed4c0-b905-41de-9238-273db3ec737a.jsonl");
    let whole = std::fs::read_to_string(&session_file).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    let (cut, failed_tool) = cut_before_a_failed_result(&lines);
    assert!(cut < lines.len());
    std::fs::write(&session_file, lines[..cut].join("\n") + "\n").unwrap();

    let db = format!("sqlite://{}", dir.path().join("sonde.db").display());
    let state = dir.path().join("state.json");
    let state = state.to_str().unwrap();
    let to = phoenix.url.clone();
    let claude_path = claude.to_str().unwrap();
    let sync_to = |agent: &str, path: &str, quiet: &str| {
        sonde(
            &db,
            &[
                "sync",
                agent,
                "--path",
                path,
                "--to",
                &to,
                "--state",
                state,
                "--quiet-period",
                quiet,
                "--json",
            ],
        )
    };
    // First half: the file was written just now, so it is not quiet; the tool call
    // has no result yet and must not be sent.
    let first: Value = serde_json::from_str(&sync_to("claude", claude_path, "10m")).unwrap();
    assert_eq!(first["errors"], 0, "{first}");
    let early = phoenix.settled_spans(1, false);
    assert!(
        !early
            .iter()
            .any(|s| attr(s, "gen_ai.tool.call.id").and_then(Value::as_str) == Some(&failed_tool)),
        "a tool call without its result is not sent"
    );
    assert!(
        !early.iter().any(|s| s["span_kind"] == "AGENT"),
        "no session is over yet"
    );

    // Second half; then every file is quiet (the sessions are over).
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&session_file)
        .unwrap();
    file.write_all((lines[cut..].join("\n") + "\n").as_bytes())
        .unwrap();
    drop(file);
    assert_eq!(
        std::fs::read_to_string(&session_file).unwrap().trim_end(),
        whole.trim_end()
    );
    std::thread::sleep(Duration::from_millis(50));
    sync_to("claude", claude_path, "1ms");
    sync_to("codex", codex.to_str().unwrap(), "1ms");

    // The same files into a database, for `sonde stats models` and the sessions.
    sonde(&db, &["sync", "claude", "--path", claude_path, "--json"]);
    sonde(
        &db,
        &["sync", "codex", "--path", codex.to_str().unwrap(), "--json"],
    );
    let sessions: Value =
        serde_json::from_str(&sonde(&db, &["sessions", "--json", "--limit", "1000"])).unwrap();
    let sessions = sessions["sessions"].as_array().cloned().unwrap_or_default();
    assert!(sessions.len() >= 5, "{sessions:?}");

    let spans = phoenix.settled_spans(early.len() + 1, true);
    // No span of unknown kind.
    let unknown: Vec<&str> = spans
        .iter()
        .filter(|s| s["span_kind"] == "UNKNOWN")
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(unknown.is_empty(), "spans of unknown kind: {unknown:?}");

    // One root per trace, an AGENT span, and one trace per session.
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .filter_map(|s| Some((s["context"]["span_id"].as_str()?, s)))
        .collect();
    let mut roots: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for span in &spans {
        if span["parent_id"].is_null() {
            roots
                .entry(span["context"]["trace_id"].as_str().unwrap())
                .or_default()
                .push(span);
        }
    }
    for (trace, roots) in &roots {
        assert_eq!(roots.len(), 1, "trace {trace} has {} roots", roots.len());
        assert_eq!(
            roots[0]["span_kind"], "AGENT",
            "trace {trace}: {}",
            roots[0]["name"]
        );
        assert!(
            attr(roots[0], "sonde.session.source").is_some(),
            "trace {trace}: the root is the session's own, with its metadata: {}",
            roots[0]
        );
    }
    let traces: std::collections::BTreeSet<&str> = spans
        .iter()
        .filter_map(|s| s["context"]["trace_id"].as_str())
        .collect();
    assert_eq!(roots.len(), traces.len(), "every trace has its root");
    assert_eq!(
        roots.len(),
        sessions.len(),
        "one trace per session: {:?}",
        roots
            .values()
            .map(|r| r[0]["name"].clone())
            .collect::<Vec<_>>()
    );
    // Every span but a root has its parent in Phoenix.
    for span in &spans {
        if let Some(parent) = span["parent_id"].as_str() {
            assert!(
                by_id.contains_key(parent),
                "{} has no parent in Phoenix",
                span["name"]
            );
        }
    }
    // Turns under their root, with the prompt as input.
    let turns: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("turn ")))
        .collect();
    assert!(!turns.is_empty());
    for turn in &turns {
        assert_eq!(turn["span_kind"], "CHAIN");
        let parent = by_id[turn["parent_id"].as_str().unwrap()];
        assert_eq!(
            parent["span_kind"], "AGENT",
            "a turn sits under its session"
        );
        assert!(attr(turn, "input.value").is_some(), "{turn}");
    }
    let named = roots
        .values()
        .filter(|r| {
            r[0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("claude-code "))
        })
        .count();
    assert!(named > 0, "roots are named for the agent and project");

    // Every LLM span reads as a conversation.
    let llm: Vec<&Value> = spans.iter().filter(|s| s["span_kind"] == "LLM").collect();
    assert!(!llm.is_empty());
    for span in &llm {
        for list in ["llm.input_messages", "llm.output_messages"] {
            // Phoenix answers with OpenInference's flat names: `llm.input_messages.0.message.role`.
            let role = attr(span, &format!("{list}.0.message.role"))
                .or_else(|| attr(span, list).and_then(|m| m.get(0)));
            assert!(
                role.is_some(),
                "{} has no {list}: {}",
                span["name"],
                span["attributes"]
            );
        }
        for name in ["gen_ai.input.messages", "gen_ai.output.messages"] {
            assert!(attr(span, name).is_some(), "{} has no {name}", span["name"]);
        }
    }

    // Per-model token totals as `sonde stats models` counts them.
    let models: Value = serde_json::from_str(&sonde(&db, &["stats", "models", "--json"])).unwrap();
    let mut want: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for m in models.as_array().unwrap() {
        let n = |k: &str| m[k].as_u64().unwrap_or(0);
        let input = n("input_tokens") + n("cache_read_tokens") + n("cache_write_tokens");
        want.insert(
            m["model"].as_str().unwrap().to_owned(),
            (n("calls"), input, n("output_tokens")),
        );
    }
    let mut got: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for span in &llm {
        let model = attr(span, "llm.model_name")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let entry = got.entry(model).or_default();
        entry.0 += 1;
        entry.1 += number(span, "llm.token_count.prompt");
        entry.2 += number(span, "llm.token_count.completion");
    }
    assert_eq!(got, want, "per model: (calls, input with cache, output)");

    // The session synced in two halves: its failed tool call, once, final.
    let tools: Vec<&Value> = spans
        .iter()
        .filter(|s| attr(s, "gen_ai.tool.call.id").and_then(Value::as_str) == Some(&failed_tool))
        .collect();
    assert_eq!(tools.len(), 1, "the tool call is in Phoenix once");
    assert_eq!(tools[0]["span_kind"], "TOOL");
    assert_eq!(tools[0]["status_code"], "ERROR", "{}", tools[0]);
    assert!(
        attr(tools[0], "output.value")
            .and_then(Value::as_str)
            .is_some_and(|o| !o.is_empty()),
        "the tool's result is shown: {}",
        tools[0]
    );
}
