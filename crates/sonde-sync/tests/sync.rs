//! Transcript sync into a real store: the mapping of real Claude Code and Codex logs,
//! and incremental runs that end exactly where one run over the whole data would.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sonde_model::{Body, Event, Record};
use sonde_store::{Scope, SessionFilter, StoreUrl, TraceStore};
use sonde_sync::{Source, StoreTarget, SyncOptions, SyncResult, Syncer};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// A store in memory and the runtime its futures run on; syncs run on the test's
/// own thread, outside the runtime, as the CLI runs them in `spawn_blocking`.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn TraceStore>,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(StoreUrl::SqliteMemory.open()).unwrap();
        Self { runtime, store }
    }

    fn sync(&self, source: Source, root: &Path) -> SyncResult {
        let mut target = StoreTarget::new(self.store.clone(), self.runtime.handle().clone());
        Syncer::new(&mut target, SyncOptions::default())
            .run(source, &[root.to_path_buf()])
            .unwrap()
    }

    /// Every stored record, by id.
    fn records(&self) -> Vec<Record> {
        self.runtime.block_on(async {
            let mut all = Vec::new();
            let mut filter = SessionFilter {
                limit: 1000,
                ..SessionFilter::default()
            };
            loop {
                let page = self.store.list_sessions(&filter).await.unwrap();
                for s in &page.sessions {
                    let trace = self
                        .store
                        .get_session(&s.session_id, &Scope::All)
                        .await
                        .unwrap()
                        .unwrap();
                    all.extend(trace.to_records());
                }
                match page.next_cursor {
                    Some(c) => filter.cursor = Some(c),
                    None => break,
                }
            }
            all.sort_by(|a, b| a.id.cmp(&b.id));
            all
        })
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn events<'a>(records: &'a [Record], session: &str) -> Vec<(&'a Record, &'a Event)> {
    records
        .iter()
        .filter(|r| r.context.session_id == session)
        .filter_map(|r| match &r.body {
            Body::Event(e) => Some((r, e)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_second_sync_opens_no_file_and_adds_nothing() {
    let f = Fixture::new();
    let first = f.sync(Source::Claude, &data("claude-code"));
    assert_eq!(first.files_scanned, 8);
    assert_eq!(first.files_updated, 8);
    assert_eq!(first.errors, 0, "{:?}", first.error_messages);
    let stored = f.records();
    let second = f.sync(Source::Claude, &data("claude-code"));
    assert_eq!(second.files_scanned, 8);
    assert_eq!(second.files_updated, 0);
    assert_eq!(second.bytes_read, 0);
    assert_eq!(second.spans_synced, 0);
    assert_eq!(f.records(), stored);
}

#[test]
fn the_same_data_synced_anywhere_gives_the_same_records() {
    let (a, b) = (Fixture::new(), Fixture::new());
    a.sync(Source::Claude, &data("claude-code"));
    // Another machine: the same files under another path.
    // (The project is the folder that holds a session file: keep its name.)
    let elsewhere = tempfile::tempdir().unwrap();
    let root = elsewhere.path().join("claude-code");
    copy_tree(&data("claude-code"), &root);
    b.sync(Source::Claude, &root);
    let (ra, rb) = (a.records(), b.records());
    assert!(ra.len() > 400);
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x, y);
    }
}

/// Syncs `lines` of a file written in pieces, cut at `cuts` (byte offsets, some inside
/// a line), and returns the records; compares with one run over the whole file.
fn piecewise_equals_whole_of(kind: Source, name: &str, source: &Path, cuts: &[usize]) {
    let bytes = std::fs::read(source).unwrap();
    let whole = {
        let f = Fixture::new();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("project")).unwrap();
        std::fs::write(dir.path().join("project").join(name), &bytes).unwrap();
        f.sync(kind, dir.path());
        f.records()
    };
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("project")).unwrap();
    let path = dir.path().join("project").join(name);
    let mut written = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &bytes[written..cut]).unwrap();
        written = cut;
        let result = f.sync(kind, dir.path());
        assert_eq!(
            result.errors, 0,
            "cut at {cut}: {:?}",
            result.error_messages
        );
    }
    let pieces = f.records();
    assert_eq!(pieces.len(), whole.len(), "{name} cut at {cuts:?}");
    for (p, w) in pieces.iter().zip(&whole) {
        assert_eq!(p, w, "{name} cut at {cuts:?}");
    }
}

fn piecewise_equals_whole(name: &str, source: &Path, cuts: &[usize]) {
    piecewise_equals_whole_of(Source::Claude, name, source, cuts);
}

fn line_starts(path: &Path) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .filter(|i| *i < bytes.len()),
    );
    starts
}

#[test]
fn appending_lines_adds_exactly_the_new_events_wherever_the_file_is_cut() {
    // Every line boundary of a session with an inline subagent, and a cut inside
    // every line (a half-written line waits for the next run); responses split over
    // two runs end with their largest copy.
    let source = data("claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let starts = line_starts(&source);
    for (i, start) in starts.iter().enumerate().skip(1) {
        piecewise_equals_whole("01.jsonl", &source, &[*start]);
        let middle = (starts[i - 1] + start) / 2;
        piecewise_equals_whole("01.jsonl", &source, &[middle]);
    }
    // A longer session, in five pieces.
    let source = data(
        "claude-code/05_v2.1.42_progress_hooks/-experiments-ideas/03eb5929-52b3-4b13-ada3-b93ae35806b8.jsonl",
    );
    let starts = line_starts(&source);
    for step in [3, 7, 11] {
        let cuts: Vec<usize> = starts
            .iter()
            .copied()
            .step_by(step)
            .skip(1)
            .take(4)
            .collect();
        piecewise_equals_whole("03eb5929-52b3-4b13-ada3-b93ae35806b8.jsonl", &source, &cuts);
    }
}

#[test]
fn codex_rollouts_cut_anywhere_end_as_one_sync() {
    // A tool call and its output, token counts and replies, split over runs.
    for name in [
        "claude-code-log_synthetic_rollout-2026-01-02T03-04-05-11111111-1111-4111-8111-111111111111.jsonl",
        "ccusage_fixture_codex_session-alpha.jsonl",
    ] {
        let source = data("codex").join(name);
        let starts = line_starts(&source);
        for (i, start) in starts.iter().enumerate().skip(1) {
            piecewise_equals_whole_of(Source::Codex, name, &source, &[*start]);
            let middle = (starts[i - 1] + start) / 2;
            piecewise_equals_whole_of(Source::Codex, name, &source, &[middle]);
        }
    }
}

#[test]
fn a_response_split_over_two_runs_keeps_its_largest_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("7c6b8f0e-0000-4000-8000-000000000001.jsonl");
    let line = |output: u64, block: &str| {
        format!(
            r#"{{"type":"assistant","uuid":"u-{output}","sessionId":"7c6b8f0e-0000-4000-8000-000000000001","timestamp":"2026-01-01T00:00:0{}Z","requestId":"req_1","message":{{"id":"msg_1","model":"claude-sonnet-4-5","content":[{block}],"usage":{{"input_tokens":10,"output_tokens":{output},"cache_read_input_tokens":100}}}}}}"#,
            output % 10
        ) + "\n"
    };
    std::fs::write(&path, line(1, r#"{"type":"text","text":"Hello"}"#)).unwrap();
    let f = Fixture::new();
    let first = f.sync(Source::Claude, dir.path());
    // The open response is sent for the first time: nothing is updated yet.
    assert!(first.spans_synced > 0);
    assert_eq!(first.spans_replaced, 0);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        line(
            7,
            r#"{"type":"tool_use","id":"toolu_1","name":"Read","input":{}}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    let second = f.sync(Source::Claude, dir.path());
    assert!(second.spans_replaced >= 1);
    let records = f.records();
    let calls: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Llm(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1, "one call per response");
    assert_eq!(calls[0].output_tokens, 7);
    assert_eq!(calls[0].cache_read_tokens, 100);
    let summary = f
        .runtime
        .block_on(f.store.usage_summary(&Default::default()))
        .unwrap();
    assert_eq!(summary.calls, 1);
    assert_eq!(summary.output_tokens, 7);
}

#[test]
fn a_replaced_or_truncated_file_is_read_again_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let source = data("claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let path = dir
        .path()
        .join("f48d4407-3211-4227-9787-2fba4bc7c9bb.jsonl");
    let bytes = std::fs::read(&source).unwrap();
    let f = Fixture::new();
    std::fs::write(&path, &bytes).unwrap();
    f.sync(Source::Claude, dir.path());
    let full = f.records();
    // Truncated to its first half: read again, nothing is lost or doubled.
    std::fs::write(&path, &bytes[..line_starts(&source)[10]]).unwrap();
    let again = f.sync(Source::Claude, dir.path());
    assert_eq!(again.files_updated, 1);
    assert_eq!(f.records(), full);
    // Replaced by a new file (another inode) with the whole content.
    let tmp = dir.path().join("new.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let replaced = f.sync(Source::Claude, dir.path());
    assert_eq!(replaced.files_updated, 1);
    assert_eq!(f.records(), full);
}

#[test]
fn claude_code_sessions_map_to_full_traces() {
    let f = Fixture::new();
    let result = f.sync(Source::Claude, &data("claude-code"));
    assert_eq!(result.errors, 0);
    assert!(result.skipped["file-history-snapshot"] > 0);
    assert!(result.skipped["progress"] > 0);
    let records = f.records();

    // Tool calls are paired with their results; failures are errors.
    let session = "2b4ed4c0-b905-41de-9238-273db3ec737a";
    let tools: Vec<_> = events(&records, session)
        .into_iter()
        .filter_map(|(r, e)| match e {
            Event::Runtime(a) => Some((r, a)),
            _ => None,
        })
        .collect();
    assert!(!tools.is_empty());
    assert!(
        tools
            .iter()
            .all(|(_, a)| a.result.is_some() && a.duration_ms.is_some())
    );
    let failed: Vec<_> = tools.iter().filter(|(_, a)| !a.status.is_ok()).collect();
    assert_eq!(failed.len(), 6);
    assert!(
        failed
            .iter()
            .all(|(_, a)| a.error.as_deref().is_some_and(|e| !e.is_empty()))
    );

    // Session metadata, steps per prompt, prompts and replies as messages.
    let started = records
        .iter()
        .find_map(|r| match &r.body {
            Body::SessionStarted(s) if r.context.session_id == session => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(started.metadata["project"], "-src-experiments-claude_p");
    assert_eq!(started.metadata["cwd"], "/src/experiments/claude_p");
    assert_eq!(started.metadata["agent_version"], "2.1.17");
    assert_eq!(started.metadata["source"], "claude-code");
    let in_session = |kind: &str| {
        records
            .iter()
            .filter(|r| r.context.session_id == session && r.body.kind() == kind)
            .count()
    };
    assert!(in_session("step_started") >= 1);
    assert!(in_session("message") >= 2);

    // Subagents nest under the Task call that spawned them, in both file layouts.
    for (session, agent) in [
        ("29ccd257-68b1-427f-ae5f-6524b7cb6f20", "a2271d1"),
        ("a7da6a22-facc-4fcd-8bab-f83c87862004", "c8d9b115"),
    ] {
        let all = events(&records, session);
        let task = all
            .iter()
            .find(|(_, e)| {
                matches!(e, Event::Runtime(a) if a.tool_name.as_deref() == Some("Task")
                    && a.metadata.get("agent_id").and_then(|v| v.as_str()) == Some(agent))
            })
            .unwrap_or_else(|| panic!("Task call of {agent}"));
        let span = task.0.context.span_id.clone();
        let children: Vec<_> = all
            .iter()
            .filter(|(r, _)| r.context.step_id.as_deref() == Some(&format!("agent-{agent}")))
            .collect();
        assert!(children.len() > 5, "{agent}: {} records", children.len());
        let llm_children: Vec<_> = children
            .iter()
            .filter(|(_, e)| matches!(e, Event::Llm(_)))
            .collect();
        assert!(!llm_children.is_empty());
        assert!(
            llm_children
                .iter()
                .all(|(r, _)| r.context.parent_span_id == span)
        );
        // The subagent's tools are children of its calls.
        assert!(children.iter().any(|(r, e)| {
            matches!(e, Event::Runtime(_))
                && llm_children
                    .iter()
                    .any(|(l, _)| l.context.span_id == r.context.parent_span_id)
        }));
    }

    // An inline sidechain (Claude Code 1.0) nests under the pending Task call.
    let session = "f48d4407-3211-4227-9787-2fba4bc7c9bb";
    let all = events(&records, session);
    let task = all
        .iter()
        .find(|(_, e)| matches!(e, Event::Runtime(a) if a.tool_name.as_deref() == Some("Task")))
        .unwrap();
    let side: Vec<_> = all
        .iter()
        .filter(|(_, e)| matches!(e, Event::Llm(c) if c.metadata.get("sidechain").is_some()))
        .collect();
    assert_eq!(side.len(), 2);
    assert!(
        side.iter()
            .all(|(r, _)| r.context.parent_span_id == task.0.context.span_id)
    );
    assert!(
        side.iter()
            .all(|(_, e)| e.as_llm().unwrap().model_name == "claude-sonnet-4-20250514")
    );
}

#[test]
fn every_synthetic_shape_is_read_or_counted_never_fatal() {
    let f = Fixture::new();
    let result = f.sync(Source::Claude, &data("claude-code-synthetic"));
    assert_eq!(result.errors, 0, "{:?}", result.error_messages);
    assert!(result.files_scanned > 15);
    assert!(result.skipped.contains_key("attachment"));
    let records = f.records();
    // A compaction boundary and a summary are custom events.
    let names: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Custom(c)) => Some(c.name.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        names.contains(&"claude_code.away_summary")
            || names.contains(&"claude_code.stop_hook_summary")
    );
    let f2 = Fixture::new();
    f2.sync(Source::Claude, &data("claude-code"));
    let names: Vec<String> = f2
        .records()
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Custom(c)) => Some(c.name.clone()),
            _ => None,
        })
        .collect();
    assert!(names.iter().any(|n| n == "claude_code.compact_boundary"));
    assert!(names.iter().any(|n| n == "claude_code.summary"));
}

#[test]
fn codex_rollouts_map_tokens_tools_and_replies() {
    let f = Fixture::new();
    let result = f.sync(Source::Codex, &data("codex"));
    assert_eq!(result.errors, 0, "{:?}", result.error_messages);
    assert_eq!(result.files_scanned, 3);
    assert!(result.skipped.contains_key("future_synthetic_record"));
    let records = f.records();

    // token_count: last usage per response; cached tokens apart from input.
    let calls: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Llm(c)) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2);
    let first = calls
        .iter()
        .find(|c| c.model_name == "gpt-5.2-codex")
        .unwrap();
    assert_eq!(
        (
            first.input_tokens,
            first.cache_read_tokens,
            first.output_tokens,
            first.reasoning_tokens
        ),
        (750, 250, 125, 75)
    );
    let second = calls
        .iter()
        .find(|c| c.model_name == "gpt-5.3-codex")
        .unwrap();
    assert_eq!((second.input_tokens, second.cache_read_tokens), (2000, 500));
    // The second count comes a day after the first with nothing between: when its
    // request went out is unknown, so it has no latency (it had 24 h 59 m).
    assert_eq!(second.latency_ms, None);

    // Tool calls paired with their outputs by call_id; replies and prompts.
    let session = "11111111-1111-4111-8111-111111111111";
    let mut tools: Vec<_> = events(&records, session)
        .into_iter()
        .filter_map(|(r, e)| match e {
            Event::Runtime(a) => Some((r.timestamp, a)),
            _ => None,
        })
        .collect();
    tools.sort_by_key(|(t, _)| *t);
    let tools: Vec<_> = tools.into_iter().map(|(_, a)| a).collect();
    let names: Vec<_> = tools
        .iter()
        .filter_map(|a| a.tool_name.as_deref())
        .collect();
    assert_eq!(
        names,
        ["exec_command", "apply_patch", "mcp__synthetic__lookup"]
    );
    assert!(
        tools
            .iter()
            .all(|a| a.result.is_some() && a.duration_ms == Some(1000.0))
    );
    assert_eq!(
        tools[0].arguments.as_ref().unwrap()["cmd"],
        "find . -maxdepth 1 -type f"
    );
    let mut messages: Vec<_> = records
        .iter()
        .filter(|r| r.context.session_id == session)
        .filter_map(|r| match &r.body {
            Body::Message(m) => Some((r.timestamp, m.message_type.as_str())),
            _ => None,
        })
        .collect();
    messages.sort();
    let messages: Vec<_> = messages.into_iter().map(|(_, m)| m).collect();
    assert_eq!(messages, ["user_prompt", "assistant_reply"]);
}

/// The Claude Code 2.1 fixtures: one response written as many lines.
fn split(file: &str) -> PathBuf {
    data("claude-code-split/-home-dev-shop").join(file)
}

#[test]
fn responses_written_as_many_lines_cut_anywhere_end_as_one_sync() {
    // Every line boundary and the middle of every line of each file: between two
    // lines of one response, between a tool_use and its result, inside a subagent's
    // response, inside an inline sidechain.
    for file in [
        "5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11.jsonl",
        "5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11/subagents/agent-a5f1c2e9.jsonl",
        "5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11/subagents/agent-b7d2e9a4.jsonl",
        "9e4a7b20-3c1d-4f5e-8a6b-7c8d9e0f1a22.jsonl",
        "c3f8e1d2-5a6b-4c7d-8e9f-0a1b2c3d4e33.jsonl",
    ] {
        let source = split(file);
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        let starts = line_starts(&source);
        for (i, start) in starts.iter().enumerate().skip(1) {
            piecewise_equals_whole(&name, &source, &[*start]);
            let middle = (starts[i - 1] + start) / 2;
            piecewise_equals_whole(&name, &source, &[middle]);
        }
        // And in many pieces at once.
        piecewise_equals_whole(&name, &source, &starts[1..]);
    }
}

#[test]
fn a_response_written_as_many_lines_is_one_call_with_its_blocks_tools_and_lines() {
    let f = Fixture::new();
    let result = f.sync(Source::Claude, &data("claude-code-split"));
    assert_eq!(result.errors, 0, "{:?}", result.error_messages);
    let records = f.records();
    let calls = |message_id: &str| -> Vec<(&Record, &sonde_model::LlmCall)> {
        records
            .iter()
            .filter_map(|r| match &r.body {
                Body::Event(Event::Llm(c)) if c.metadata["message_id"] == message_id => {
                    Some((r, c))
                }
                _ => None,
            })
            .collect()
    };
    let found = calls("msg_01SplitA7kq3Vn2");
    assert_eq!(found.len(), 1, "one call for six lines");
    let (record, call) = found[0];
    assert_eq!(
        call.metadata["source_file"],
        "-home-dev-shop/5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11.jsonl"
    );
    assert_eq!(call.metadata["source_line"], 3);
    assert_eq!(
        call.metadata["source_lines"],
        serde_json::json!([3, 4, 5, 8, 11, 12])
    );
    assert_eq!(call.metadata["streamed"], true);
    assert_eq!(call.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(call.output_tokens, 1290);
    // From the prompt (09:00:00) to the response's last line (09:00:06.9).
    assert_eq!(
        record.timestamp,
        "2026-11-20T09:00:00Z"
            .parse::<sonde_model::Timestamp>()
            .unwrap()
    );
    assert_eq!(call.latency_ms, Some(6900.0));
    let thinking = call.call_records[0].response.as_ref().unwrap();
    assert_eq!(thinking["content"][0]["type"], "thinking");

    // Its four tool calls are children of the one call, whatever their order.
    let span = record.context.span_id.clone();
    let mut tools: Vec<_> = records
        .iter()
        .filter(|r| r.context.parent_span_id == span)
        .filter_map(|r| match &r.body {
            Body::Event(Event::Runtime(a)) => Some((r, a)),
            _ => None,
        })
        .collect();
    tools.sort_by_key(|(r, _)| r.timestamp);
    let names: Vec<_> = tools
        .iter()
        .map(|(_, a)| a.tool_name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["Read", "Grep", "Task", "Task"]);
    assert_eq!(tools[0].1.duration_ms, Some(300.0));
    assert_eq!(
        tools[0].1.metadata["source_lines"],
        serde_json::json!([5, 6])
    );
    // Each Task is the parent of its subagent's calls, themselves split in lines.
    for (agent, responses) in [("a5f1c2e9", 3), ("b7d2e9a4", 2)] {
        let task = tools
            .iter()
            .find(|(_, a)| a.metadata.get("agent_id").and_then(|v| v.as_str()) == Some(agent))
            .unwrap();
        let subagent_calls: Vec<_> = records
            .iter()
            .filter(|r| {
                r.context.parent_span_id == task.0.context.span_id
                    && matches!(r.body, Body::Event(Event::Llm(_)))
            })
            .collect();
        assert_eq!(subagent_calls.len(), responses, "{agent}");
    }
    let (_, first) = calls("msg_01SubA1tz5Hq")[0];
    assert_eq!(first.metadata["agent_type"], "Explore");
    assert_eq!(first.metadata["source_lines"], serde_json::json!([2, 3, 4]));

    // The reply is the response's text, once.
    let reply = records
        .iter()
        .find_map(|r| match &r.body {
            Body::Message(m)
                if m.message_type == "assistant_reply" && r.context.span_id == span =>
            {
                Some(m)
            }
            _ => None,
        })
        .unwrap();
    assert!(
        reply
            .content
            .as_text()
            .starts_with("I'll read the checkout module")
    );

    // A failed test run is an error of the second response's second tool.
    let (b, _) = calls("msg_01SplitB2hd8Rt")[0];
    let failed = records
        .iter()
        .find_map(|r| match &r.body {
            Body::Event(Event::Runtime(a))
                if r.context.parent_span_id == b.context.span_id && !a.status.is_ok() =>
            {
                Some(a)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(failed.tool_name.as_deref(), Some("Bash"));

    // Responses a resumed session copied, and sidechain copies in an agent file, are
    // stored once.
    for copied in ["msg_01SplitF9ee2Ya", "msg_01OldJ7kk9Mm", "msg_01OldK3ss5Tt"] {
        assert_eq!(calls(copied).len(), 1, "{copied}");
    }
}

#[test]
fn a_codex_response_is_one_call_whatever_stands_between_its_items() {
    let f = Fixture::new();
    let result = f.sync(Source::Codex, &data("codex-split"));
    assert_eq!(result.errors, 0, "{:?}", result.error_messages);
    assert_eq!(result.skipped["event_msg.token_count.repeated"], 1);
    let records = f.records();
    let mut calls: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Llm(c)) => Some((r, c)),
            _ => None,
        })
        .collect();
    calls.sort_by_key(|(r, _)| r.timestamp);
    assert_eq!(calls.len(), 2, "one call per response");
    let (first, second) = (calls[0], calls[1]);
    assert_eq!(
        (
            first.1.input_tokens,
            first.1.cache_read_tokens,
            first.1.output_tokens
        ),
        (1104, 4096, 180)
    );
    // From the prompt to the token count; the second from the last tool output.
    assert_eq!(
        first.0.timestamp,
        "2026-11-21T14:00:01.200Z"
            .parse::<sonde_model::Timestamp>()
            .unwrap()
    );
    assert_eq!(first.1.latency_ms, Some(3200.0));
    assert_eq!(second.1.latency_ms, Some(3700.0));
    assert_eq!(
        first.1.metadata["source_lines"],
        serde_json::json!([6, 7, 8, 10])
    );
    assert!(
        first.1.metadata["source_file"]
            .as_str()
            .unwrap()
            .starts_with("rollout-2026-11-21T14-00-00-")
    );
    // Both tool calls are children of the first call, the reply of the second.
    let children = |call: &Record| -> Vec<&str> {
        let mut kinds: Vec<&str> = records
            .iter()
            .filter(|r| r.context.parent_span_id == call.context.span_id)
            .map(|r| r.body.kind())
            .collect();
        kinds.sort_unstable();
        kinds
    };
    assert_eq!(children(first.0), ["runtime_event", "runtime_event"]);
    assert_eq!(children(second.0), ["message"]);

    // Cut anywhere, it ends as one sync.
    let name = "rollout-2026-11-21T14-00-00-0b9f3e2a-6c1d-4e7f-9a8b-1c2d3e4f5a66.jsonl";
    let source = data("codex-split").join(name);
    let starts = line_starts(&source);
    for (i, start) in starts.iter().enumerate().skip(1) {
        piecewise_equals_whole_of(Source::Codex, name, &source, &[*start]);
        let middle = (starts[i - 1] + start) / 2;
        piecewise_equals_whole_of(Source::Codex, name, &source, &[middle]);
    }
}

#[test]
fn a_line_over_the_limit_is_skipped_naming_file_and_offset_and_the_rest_is_read() {
    let original = data("claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let text = std::fs::read(&original).unwrap();
    let second_line = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain/-home-dev-shop");
    let long = dir.path().join("long/-home-dev-shop");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(plain.join("s.jsonl"), &text).unwrap();
    // The same file with two lines of more than MAX_LINE_BYTES after its first line:
    // one just over (it ends in the read that reaches the limit), one that goes on for
    // reads after it (never held whole).
    let mut with_long = text[..second_line].to_vec();
    with_long.extend(std::iter::repeat_n(b'x', sonde_sync::MAX_LINE_BYTES + 10));
    with_long.push(b'\n');
    let third_line = with_long.len();
    with_long.extend(std::iter::repeat_n(
        b'y',
        sonde_sync::MAX_LINE_BYTES + (3 << 20),
    ));
    with_long.push(b'\n');
    with_long.extend_from_slice(&text[second_line..]);
    let long_file = long.join("s.jsonl");
    std::fs::write(&long_file, &with_long).unwrap();

    let (a, b) = (Fixture::new(), Fixture::new());
    let plain_run = a.sync(Source::Claude, &dir.path().join("plain"));
    assert_eq!(plain_run.errors, 0, "{:?}", plain_run.error_messages);
    let long_run = b.sync(Source::Claude, &dir.path().join("long"));
    assert_eq!(long_run.errors, 2, "{:?}", long_run.error_messages);
    assert_eq!(
        long_run.error_messages,
        [second_line, third_line]
            .map(|at| format!(
                "{}: byte {at}: a line longer than 64 MiB was skipped",
                long_file.display()
            ))
            .to_vec()
    );
    assert!(!a.records().is_empty());
    assert_eq!(a.records().len(), b.records().len());
}

#[test]
fn a_token_count_the_stores_cannot_keep_is_refused_never_clamped() {
    let original = data("claude-code/01_cclogviewer_v1.0.61_inline_sidechain.jsonl");
    let text = std::fs::read_to_string(&original).unwrap();
    let huge = text.replacen(
        "\"input_tokens\":3,",
        "\"input_tokens\":18446744073709551615,",
        1,
    );
    assert_ne!(huge, text);
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("-home-dev-shop");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("s.jsonl"), huge).unwrap();

    let f = Fixture::new();
    let run = f.sync(Source::Claude, dir.path());
    assert!(run.errors >= 1, "{:?}", run.error_messages);
    assert!(
        run.error_messages.iter().all(|m| m.starts_with("s.jsonl: the LLM call ")
            && m.ends_with(": input_tokens: 18446744073709551615 is above the largest count stored, 9223372036854775807; not stored")),
        "{:?}",
        run.error_messages
    );
    let clamped = f
        .records()
        .into_iter()
        .filter(
            |r| matches!(&r.body, Body::Event(Event::Llm(c)) if c.input_tokens >= i64::MAX as u64),
        )
        .count();
    assert_eq!(clamped, 0, "a count was stored clamped");
}
