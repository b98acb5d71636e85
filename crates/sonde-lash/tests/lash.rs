//! lash traces of every published schema version, read into Sonde sessions.
//!
//! The fixtures (tests/data/lash-vN.jsonl, written by make_fixtures.py from
//! lash-trace's definitions at each version, and checked against lash-trace itself by
//! tests/data/check/check_with_lash.sh) hold every kind their version wrote.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use sonde_lash::{KNOWN_KINDS, LashImport, NEWEST_SCHEMA_VERSION};
use sonde_model::{Event, Level, SessionTrace, Status};

/// The events of `session` of one variant of [`Event`].
macro_rules! events {
    ($session:expr, $variant:path) => {
        $session
            .events
            .iter()
            .filter_map(|e| match &e.value {
                $variant(x) => Some(x),
                _ => None,
            })
            .collect()
    };
}

fn fixture(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/lash-v{version}.jsonl"))
}

fn import(version: u32) -> LashImport {
    let path = fixture(version);
    let file = std::fs::File::open(&path).unwrap();
    sonde_lash::read(&path.display().to_string(), std::io::BufReader::new(file)).unwrap()
}

fn kinds_in(version: u32) -> BTreeSet<String> {
    std::fs::read_to_string(fixture(version))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn each_fixture_holds_every_kind_its_schema_version_wrote() {
    for version in 1..=NEWEST_SCHEMA_VERSION {
        let published: BTreeSet<String> = KNOWN_KINDS
            .iter()
            .filter(|k| k.since <= version && version <= k.until)
            .map(|k| k.tag.to_owned())
            .collect();
        assert_eq!(kinds_in(version), published, "schema {version}");
    }
}

/// What one fixture session is expected to become. Schema 2 was written from May to
/// August 2026 while its shapes changed: its fixture has a session of May, of June and
/// of August.
struct Expected {
    tool_calls: usize,
    tokens: u64,
    /// Provider request records (August 2026 on) name the provider.
    provider: Option<&'static str>,
    /// Responses say why they ended (June 2026 on).
    stop_reason: Option<&'static str>,
}

fn expected(session_id: &str) -> Expected {
    // Until June: tool results as `result` + `success` (no cancelled tool call).
    let old_tools = matches!(session_id, "lash-v1" | "lash-v2-may");
    // Until July: usage with the cached input inside the input, no cache-write bucket.
    let old_usage = old_tools || session_id == "lash-v2-june";
    Expected {
        tool_calls: if old_tools { 2 } else { 3 },
        // call l1: 1200 in + 4000 cache read (+ 500 cache write) + 300 out; l3: 50 + 20
        tokens: if old_usage { 5_500 + 70 } else { 6_000 + 70 },
        provider: (!old_usage).then_some("anthropic"),
        stop_reason: (!old_tools).then_some("end_turn"),
    }
}

#[test]
fn every_schema_version_imports_into_sessions_with_steps_calls_tokens_and_tool_outcomes() {
    for version in 1..=NEWEST_SCHEMA_VERSION {
        let import = import(version);
        assert!(
            import.problems.is_empty(),
            "schema {version}: {:?}",
            import.problems
        );
        let report = &import.report;
        assert!(
            report.warnings.is_empty(),
            "schema {version}: {:?}",
            report.warnings
        );
        assert_eq!(report.unknown_total(), 0, "schema {version}");
        let lines = std::fs::read_to_string(fixture(version))
            .unwrap()
            .lines()
            .count();
        assert_eq!(report.records_read, lines, "schema {version}");
        assert_eq!(
            report.versions.keys().copied().collect::<Vec<_>>(),
            [version]
        );

        let sessions = SessionTrace::from_records(import.records.clone());
        let want_sessions = if version == 2 { 3 } else { 1 };
        assert_eq!(sessions.len(), want_sessions, "schema {version}");
        for session in &sessions {
            let id = session.session_id.as_str();
            let want = expected(id);
            let started = session.started.as_ref().expect("session_started");
            assert_eq!(started.value.metadata["agent"], "lash-cli", "{id}");
            assert_eq!(session.steps.len(), 2, "{id}: one step per turn");
            assert!(
                session
                    .steps
                    .iter()
                    .all(|s| s.started.is_some() && s.ended.is_some())
            );
            assert_eq!(
                session.steps[1].ended.as_ref().unwrap().value.metadata["status"],
                "failed"
            );

            let calls: Vec<_> = session
                .events
                .iter()
                .filter_map(|e| e.value.as_llm())
                .collect();
            assert_eq!(calls.len(), 3, "{id}: three LLM calls");
            let tokens: u64 = calls.iter().map(|c| c.total_tokens()).sum();
            assert_eq!(tokens, want.tokens, "{id}: tokens");
            let failed: Vec<_> = calls.iter().filter(|c| c.status == Status::Error).collect();
            assert_eq!(failed.len(), 1, "{id}");
            assert_eq!(failed[0].error.as_deref(), Some("rate limited"));
            let first = calls
                .iter()
                .find(|c| c.model_name == "claude-sonnet-4-5")
                .unwrap();
            assert_eq!(first.latency_ms, Some(2_400.0));
            assert_eq!(first.cache_read_tokens, 4_000);
            let request = first.call_records[0].request.as_ref().unwrap();
            assert_eq!(request["tools"][0]["name"], "read_file", "tool specs kept");
            assert_eq!(
                request["attachments"][0]["filename"], "screen.png",
                "attachments kept"
            );
            assert_eq!(first.provider.as_deref(), want.provider, "{id}");
            assert_eq!(first.stop_reason.as_deref(), want.stop_reason, "{id}");

            let tools: Vec<_> = events!(session, Event::Runtime);
            assert_eq!(tools.len(), want.tool_calls, "{id}: tool calls");
            let outcomes: Vec<_> = tools
                .iter()
                .map(|t| t.metadata["outcome"].as_str().unwrap())
                .collect();
            let mut want_outcomes = vec!["success", "failure"];
            if want.tool_calls == 3 {
                want_outcomes.push("cancelled");
            }
            assert_eq!(outcomes, want_outcomes, "{id}");
            assert_eq!(tools[0].duration_ms, Some(35.0));
            assert!(tools[0].status.is_ok());
            assert_eq!(tools[1].status, Status::Error);
            assert_eq!(tools[1].error.as_deref(), Some("no such file: missing"));

            let customs: Vec<_> = events!(session, Event::Custom);
            let names: BTreeSet<&str> = customs.iter().map(|c| c.name.as_str()).collect();
            assert!(names.contains("lash.agent_frame_switch"), "{id}: {names:?}");
            assert!(names.contains("host.checkpoint"), "{id}: {names:?}");
            // the token_usage naming no call is kept; the one naming l3 became its usage
            assert_eq!(
                customs
                    .iter()
                    .filter(|c| c.name == "lash.token_usage")
                    .count(),
                1,
                "{id}"
            );
            assert!(
                customs
                    .iter()
                    .all(|c| c.metadata["lash_type"] != "prompt_built")
            );

            let prompts: Vec<_> = events!(session, Event::PromptBuilt);
            assert_eq!(prompts.len(), 1, "{id}");
            assert_eq!(prompts[0].prompt_chars, Some(5120));
            assert_eq!(prompts[0].components.len(), 2, "its parts kept");
            assert_eq!(prompts[0].level, Level::Standard);

            let streams: Vec<_> = events!(session, Event::Stream);
            if version == 1 {
                assert!(streams.is_empty());
            } else {
                let sources: Vec<&str> = streams.iter().map(|s| s.source.as_str()).collect();
                assert_eq!(sources, ["provider", "runtime"], "{id}");
                assert!(streams.iter().all(|s| s.level == Level::Extended));
                assert_eq!(streams[0].name, "content_block_delta");
                assert_eq!(streams[0].data["raw_json"]["type"], "content_block_delta");
                assert_eq!(streams[1].elapsed_ms, Some(181.0));
            }
            if let Some(request) = customs.iter().find(|c| c.name == "lash.provider_request") {
                assert_eq!(request.level, Level::Extended, "{id}");
                assert_eq!(request.data["event"]["provider"], "anthropic");
            }
        }
        // every record a Sonde store accepts: the JSON line reads back the same
        for record in &import.records {
            let line = record.to_json_line();
            assert_eq!(&sonde_model::Record::from_json_line(&line).unwrap(), record);
        }
    }
}

#[test]
fn graph_updates_and_durable_failures_are_custom_events_marked_failed() {
    let import = import(7);
    let failed: Vec<_> = import
        .records
        .iter()
        .filter_map(|r| match &r.body {
            sonde_model::Body::Event(Event::Custom(c)) if c.metadata.get("failed").is_some() => {
                Some(c.name.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [
            "lash.language_execution", // node_failed
            "lash.language_execution", // execution_finished: failed
            "lash.effect_envelope_diff",
            "lash.journaled_effect_settled",
            "lash.store_error_observed",
        ]
    );
}

#[test]
fn reading_twice_makes_the_same_records() {
    let a = import(5).records;
    let b = import(5).records;
    assert_eq!(
        a, b,
        "ids are lash's own or derived from them: a re-import is a duplicate"
    );
}

const HEAD: &str = r#"{"schema_version":7,"id":"h1","timestamp":"2026-08-22T10:00:00Z","context":{"session_id":"s"},"type":"session_started"}"#;

#[test]
fn an_unknown_kind_is_kept_as_a_custom_event_and_counted() {
    let trace = format!(
        "{HEAD}\n{}\n{}\n",
        r#"{"schema_version":7,"id":"u1","timestamp":"2026-08-22T10:00:01Z","context":{"session_id":"s"},"type":"brand_new_event","x":1}"#,
        r#"{"schema_version":7,"id":"u2","timestamp":"2026-08-22T10:00:02Z","context":{"session_id":"s"},"type":"brand_new_event","x":2}"#,
    );
    let import = sonde_lash::read("t.jsonl", trace.as_bytes()).unwrap();
    assert!(import.problems.is_empty());
    assert_eq!(import.report.unknown_kinds["brand_new_event"], 2);
    let sessions = SessionTrace::from_records(import.records);
    let Event::Custom(custom) = &sessions[0].events[1].value else {
        panic!("not a custom event")
    };
    assert_eq!(custom.name, "lash.brand_new_event");
    assert_eq!(custom.data["x"], 2);
    assert_eq!(custom.metadata["lash_unknown_kind"], true);
}

#[test]
fn a_newer_schema_version_is_read_as_far_as_understood_with_a_warning_naming_it() {
    let trace = r#"{"schema_version":9,"id":"n1","timestamp":"2026-09-01T10:00:00Z","context":{"session_id":"s9","turn_id":"t"},"type":"tool_call_started","call_id":"c","name":"grep","args":{},"new_field":true}
{"schema_version":9,"id":"n2","timestamp":"2026-09-01T10:00:01Z","context":{"session_id":"s9","turn_id":"t"},"type":"tool_call_completed","call_id":"c","name":"grep","args":{},"output":{"outcome":{"status":"success","payload":[]}},"duration_ms":1000}
{"schema_version":9,"id":"n3","timestamp":"2026-09-01T10:00:02Z","context":{"session_id":"s9"},"type":"quantum_event"}"#;
    let import = sonde_lash::read("future.jsonl", trace.as_bytes()).unwrap();
    assert!(import.problems.is_empty());
    assert_eq!(
        import.report.warnings,
        [
            "future.jsonl: lash trace schema version 9 is newer than this reader knows (7); read as far as it is understood"
        ]
    );
    assert_eq!(import.report.tool_calls, 1);
    assert_eq!(import.report.unknown_total(), 1);
}

#[test]
fn bad_lines_name_file_line_and_field_and_the_others_are_read() {
    let trace = format!(
        "{HEAD}\nnot json\n{}\n{}\n\n{}\n",
        r#"{"schema_version":7,"id":"b1","timestamp":"2026-08-22T10:00:01Z","context":{"session_id":"s"},"type":"tool_call_completed","name":"x","output":{"outcome":{"status":"exploded"}},"duration_ms":1}"#,
        r#"{"schema_version":7,"id":"b2","timestamp":"2026-08-22T10:00:02Z","context":{"session_id":"s"},"type":"llm_call_completed","response":{"text":"","duration_ms":1},"usage":{"input_tokens":"many"}}"#,
        r#"{"schema_version":7,"id":"ok","timestamp":"2026-08-22T10:00:03Z","context":{"session_id":"s"},"type":"custom","name":"fine","payload":null}"#,
    );
    let import = sonde_lash::read("bad.jsonl", trace.as_bytes()).unwrap();
    let problems: Vec<String> = import.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "bad.jsonl:2: invalid json: expected ident at line 1 column 2",
            "bad.jsonl:3: tool_call_completed: invalid field `output.outcome.status`: \"exploded\" is not success, failure or cancelled",
            "bad.jsonl:4: llm_call_completed: invalid field `usage.input_tokens`: expected an integer, found a string",
        ]
    );
    assert_eq!(import.report.records_read, 2);
    assert_eq!(
        import.records.len(),
        2,
        "the session's start and the custom event"
    );
}

#[test]
fn a_call_the_trace_never_finishes_is_a_failed_llm_call_or_a_tool_call_start() {
    let trace = format!(
        "{HEAD}\n{}\n{}\n",
        r#"{"schema_version":7,"id":"o1","timestamp":"2026-08-22T10:00:01Z","context":{"session_id":"s","llm_call_id":"l"},"type":"llm_call_started","request":{"model":"gpt-5","messages":[],"tool_choice":"auto","stream":false}}"#,
        r#"{"schema_version":7,"id":"o2","timestamp":"2026-08-22T10:00:02Z","context":{"session_id":"s"},"type":"tool_call_started","call_id":"c","name":"shell","args":{"cmd":"make"}}"#,
    );
    let import = sonde_lash::read("cut.jsonl", trace.as_bytes()).unwrap();
    assert_eq!(import.report.llm_calls, 1);
    assert_eq!(import.report.tool_calls, 0);
    assert_eq!(
        import.report.warnings,
        [
            "cut.jsonl: the trace ends before 1 LLM call(s) and 1 tool call(s) finished; the LLM calls are kept as failed, the tool calls as tool_call_started records"
        ]
    );
    let sessions = SessionTrace::from_records(import.records);
    let events = &sessions[0].events;
    assert_eq!(events[0].value.status(), Status::Error);
    let Event::ToolCallStarted(start) = &events[1].value else {
        panic!("not a tool call start: {:?}", events[1].value)
    };
    assert_eq!(
        (start.tool_name.as_str(), start.tool_call_id.as_deref()),
        ("shell", Some("c"))
    );
    assert_eq!(start.arguments.as_ref().unwrap()["cmd"], "make");
}
