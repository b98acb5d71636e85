//! Final records only, for targets that cannot replace (OTLP backends keep the first
//! span of an id): each record is sent once, when it is final; what a file leaves open
//! waits until the file has been quiet for the quiet period. And the spans those
//! records make: valid OTLP protobuf, with attribute names the conventions know.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use serde_json::Value;
use sonde_model::{Body, Event, Record, SinkError, TraceSink};
use sonde_sync::{CursorFile, SinkTarget, Source, SyncOptions, Syncer};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// A sink that keeps what it is sent.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Record>>>);

impl TraceSink for Kept {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

impl Kept {
    fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn sync(kept: &Kept, state: &Path, source: Source, root: &Path, quiet: Duration) {
    let mut target =
        SinkTarget::new("kept", Box::new(kept.clone()), CursorFile::new(state)).final_only();
    let options = SyncOptions {
        quiet_period: quiet,
        ..SyncOptions::default()
    };
    let result = Syncer::new(&mut target, options)
        .run(source, &[root.to_path_buf()])
        .unwrap();
    assert_eq!(result.errors, 0, "{:?}", result.error_messages);
}

fn tool<'a>(records: &'a [Record], id: &str) -> Vec<&'a sonde_model::RuntimeAction> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Runtime(a)) if a.tool_call_id.as_deref() == Some(id) => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_synced_in_two_halves_sends_each_record_once_and_final() {
    let dir = tempfile::tempdir().unwrap();
    let name = "2b4ed4c0-b905-41de-9238-273db3ec737a.jsonl";
    let whole = std::fs::read_to_string(
        data("claude-code/04_v2.1.17_subagents_dir/-src-experiments-claude_p").join(name),
    )
    .unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    // Cut right after the first tool call whose result is an error.
    let failed = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_result" && b["is_error"] == true)
        .and_then(|b| b["tool_use_id"].as_str().map(str::to_owned))
        .unwrap();
    let cut = 1 + lines
        .iter()
        .position(|l| l.contains(&format!("\"id\":\"{failed}\"")))
        .unwrap();
    let root = dir.path().join("projects/-src-experiments-claude_p");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join(name);
    std::fs::write(&file, lines[..cut].join("\n") + "\n").unwrap();
    let state = dir.path().join("state.json");
    let kept = Kept::default();
    let minutes = Duration::from_secs(600);

    sync(&kept, &state, Source::Claude, &root, minutes);
    let first = kept.take();
    assert!(!first.is_empty());
    assert!(
        tool(&first, &failed).is_empty(),
        "no tool call before its result"
    );
    assert!(
        !first
            .iter()
            .any(|r| matches!(r.body, Body::SessionStarted(_))),
        "the session's start waits for its end"
    );

    // Nothing new, the file not quiet: nothing is sent.
    sync(&kept, &state, Source::Claude, &root, minutes);
    assert!(kept.take().is_empty());

    std::fs::write(&file, whole.clone()).unwrap();
    sync(&kept, &state, Source::Claude, &root, minutes);
    let second = kept.take();
    let tools = tool(&second, &failed);
    assert_eq!(
        tools.len(),
        1,
        "the tool call goes once its result has come"
    );
    assert_eq!(tools[0].status, sonde_model::Status::Error);
    assert!(tools[0].result.is_some());

    // Quiet: the last response, the last step and the session go, with their ends.
    std::thread::sleep(Duration::from_millis(20));
    sync(
        &kept,
        &state,
        Source::Claude,
        &root,
        Duration::from_millis(1),
    );
    let last = kept.take();
    let kinds: BTreeSet<&str> = last.iter().map(Record::kind).collect();
    for kind in [
        "session_started",
        "session_ended",
        "step_started",
        "step_ended",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    // And then nothing more, even unchanged.
    sync(
        &kept,
        &state,
        Source::Claude,
        &root,
        Duration::from_millis(1),
    );
    assert!(kept.take().is_empty());

    let all: Vec<Record> = first.into_iter().chain(second).chain(last).collect();
    let mut ids = BTreeMap::new();
    for r in &all {
        *ids.entry(r.id.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let starts = all
        .iter()
        .filter(|r| matches!(r.body, Body::StepStarted(_)))
        .count();
    let ends = all
        .iter()
        .filter(|r| matches!(r.body, Body::StepEnded(_)))
        .count();
    assert_eq!(starts, ends, "every step's start went with its end");

    // The same file synced whole into a replacing target has the same calls.
    let replacing = Kept::default();
    let mut target = SinkTarget::new(
        "whole",
        Box::new(replacing.clone()),
        CursorFile::new(dir.path().join("whole.json")),
    );
    Syncer::new(&mut target, SyncOptions::default())
        .run(Source::Claude, std::slice::from_ref(&root))
        .unwrap();
    let calls = |records: &[Record]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r.kind() == "llm_call")
            .map(|r| r.id.clone())
            .collect()
    };
    assert_eq!(calls(&all), calls(&replacing.take()));
}

/// Every attribute name an exported span may carry: the GenAI conventions' (v1.37+),
/// OpenInference's (Phoenix reads them), and Sonde's own under `sonde.`.
fn known(name: &str) -> bool {
    const GENAI: &[&str] = &[
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.conversation.id",
        "gen_ai.agent.name",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    ];
    const OPENINFERENCE: &[&str] = &[
        "openinference.span.kind",
        "session.id",
        "user.id",
        "metadata",
        "input.value",
        "input.mime_type",
        "output.value",
        "output.mime_type",
        "llm.model_name",
        "llm.provider",
        "llm.system",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.prompt_details.cache_write",
        "llm.token_count.completion_details.reasoning",
        "llm.cost.total",
        "tool.name",
    ];
    if GENAI.contains(&name) || OPENINFERENCE.contains(&name) || name.starts_with("sonde.") {
        return true;
    }
    // llm.input_messages.{i}.message.role ... .tool_calls.{j}.tool_call.function.name
    let Some(rest) = name
        .strip_prefix("llm.input_messages.")
        .or_else(|| name.strip_prefix("llm.output_messages."))
    else {
        return false;
    };
    let shape: Vec<&str> = rest
        .split('.')
        .map(|p| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                "N"
            } else {
                p
            }
        })
        .collect();
    matches!(
        shape.join(".").as_str(),
        "N.message.role"
            | "N.message.content"
            | "N.message.tool_call_id"
            | "N.message.tool_calls.N.tool_call.id"
            | "N.message.tool_calls.N.tool_call.function.name"
            | "N.message.tool_calls.N.tool_call.function.arguments"
    )
}

#[test]
fn exported_spans_are_otlp_protobuf_with_only_known_attribute_names() {
    // The Codex rollouts with calls and content (the real ones have no token counts).
    for (source, root) in [
        (Source::Claude, "claude-code"),
        (Source::Codex, "codex-split"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let kept = Kept::default();
        sync(
            &kept,
            &dir.path().join("s.json"),
            source,
            &data(root),
            Duration::from_millis(1),
        );
        let records = kept.take();
        let request = sonde_otlp::export_request(&records, "sonde");
        let bytes = request.encode_to_vec();
        let decoded =
            sonde_otlp::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("OTLP protobuf");
        assert_eq!(decoded, request);
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        assert!(spans.len() > 5, "{root}: {} spans", spans.len());
        let mut names = BTreeSet::new();
        for span in spans {
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(span.span_id.len(), 8);
            assert!(span.parent_span_id.is_empty() || span.parent_span_id.len() == 8);
            for kv in &span.attributes {
                names.insert(kv.key.clone());
            }
            let kind = span
                .attributes
                .iter()
                .find(|kv| kv.key == "openinference.span.kind");
            assert!(kind.is_some(), "{root}: {} has no kind", span.name);
        }
        let unknown: Vec<&String> = names.iter().filter(|n| !known(n)).collect();
        assert!(
            unknown.is_empty(),
            "{root}: unknown attribute names {unknown:?}"
        );
        for needed in [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.usage.input_tokens",
        ] {
            assert!(names.contains(needed), "{root}: no {needed}");
        }
        // One root per session.
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        let sessions: BTreeSet<&str> = records.iter().map(Record::session_id).collect();
        assert_eq!(roots, sessions.len(), "{root}");
    }
}
