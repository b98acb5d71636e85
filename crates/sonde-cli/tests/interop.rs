//! Interop with a real OpenTelemetry client: the Python SDK's OTLP/HTTP exporter sends
//! GenAI spans to a `sonde serve` started here, configured by nothing but
//! `OTEL_EXPORTER_OTLP_ENDPOINT`. The Python environment comes from `./scripts/test`
//! (`target/otel-venv`) or `SONDE_TEST_PYTHON`; without it the test fails, it never
//! skips. And Sonde's own exporter: a round trip through another `sonde serve` keeps
//! every number.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

mod common;

fn python() -> PathBuf {
    common::test_python(
        "SONDE_TEST_PYTHON",
        "otel-venv",
        "the OpenTelemetry Python SDK is",
    )
}

fn sonde(db: &str, args: &[&str]) -> Value {
    common::sonde_json(db, args)
}

#[test]
fn the_python_sdk_sends_genai_spans_by_setting_one_environment_variable() {
    python_sdk_round_trip("http/protobuf");
}

#[test]
fn the_python_sdk_sends_genai_spans_over_grpc() {
    python_sdk_round_trip("grpc");
}

fn python_sdk_round_trip(protocol: &str) {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env("SONDE_SPOOL", dir.path().join("spool"))
        .stderr(Stdio::null());
    let (mut server, addr, grpc_addr) = common::spawn_serve(command, &db);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/genai_agent.py");
    let out = Command::new(&python)
        .arg(&script)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!(
                "http://{}",
                if protocol == "grpc" {
                    &grpc_addr
                } else {
                    &addr
                }
            ),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());

    let sessions = sonde(&db, &["sessions", "--json"]);
    let session = &sessions["sessions"][0];
    assert_eq!(session["session_id"], "py-conversation");
    assert_eq!(session["models"], serde_json::json!(["gpt-5"]));
    assert_eq!(
        (session["events"].as_u64(), session["llm_calls"].as_u64()),
        (Some(4), Some(2))
    );
    let summary = sonde(&db, &["stats", "summary", "--json"]);
    assert_eq!(
        (
            summary["input_tokens"].as_u64(),
            summary["cache_read_tokens"].as_u64(),
            summary["output_tokens"].as_u64(),
            summary["errors"].as_u64()
        ),
        (Some(200), Some(1000), Some(90), Some(1)),
        "OTel's input includes the cached tokens; Sonde's does not"
    );
    let show = sonde(&db, &["show", "py-conversation", "--json"]);
    let tool = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["value"]["type"] == "runtime")
        .unwrap();
    assert_eq!(tool["value"]["tool_name"], "search");
    assert!(
        tool["context"]["parent_span_id"].is_string(),
        "the tool span keeps its parent, the agent span"
    );
    assert_eq!(
        tool["value"]["metadata"]["otel"]["resource"]["service.name"],
        "python-agent"
    );
}

/// A sum of doubles depends on the order it is added in: costs are compared to the
/// nano-dollar.
fn nano_dollars(cost: &Value) -> Value {
    cost.as_f64()
        .map_or(Value::Null, |c| json!((c * 1e9).round() as i64))
}

/// Every session as `sonde sessions --json` lists it, by id.
fn listed(db: &str) -> BTreeMap<String, Value> {
    let listing = sonde(db, &["sessions", "--json", "--limit", "1000"]);
    assert_eq!(listing["next_cursor"], Value::Null);
    listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s["cost_usd"] = nano_dollars(&s["cost_usd"]);
            (s["session_id"].as_str().unwrap().to_owned(), s)
        })
        .collect()
}

/// A start or end record of `sonde show --json`: its time and payload (ids are the
/// receiver's own).
fn lifecycle(record: &Value) -> Value {
    json!({"timestamp": record["timestamp"], "value": record["value"]})
}

/// What `sonde show --json` says of a session: start, end, steps and messages (records
/// of the same microsecond are in the order of their ids, which are the receiver's own,
/// so steps and messages are compared sorted).
fn shown(db: &str, id: &str) -> Value {
    let show = sonde(db, &["show", id, "--json"]);
    let sorted = |mut values: Vec<Value>| {
        values.sort_by_key(Value::to_string);
        values
    };
    let steps: Vec<Value> = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["step_id"],
                lifecycle(&s["started"]),
                lifecycle(&s["ended"])
            ])
        })
        .collect();
    let messages: Vec<Value> = show["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!([m["timestamp"], m["context"]["step_id"], m["value"]]))
        .collect();
    json!({
        "started": lifecycle(&show["started"]),
        "ended": lifecycle(&show["ended"]),
        "steps": sorted(steps),
        "messages": sorted(messages),
    })
}

/// Per model: calls and every kind of token, the one-hour cache writes apart.
const TOKENS_PER_MODEL: &str = "SELECT model, count(*) AS calls, sum(input_tokens) AS input,
    sum(output_tokens) AS output, sum(cache_read_tokens) AS cache_read,
    sum(cache_write_tokens) AS cache_write,
    sum(coalesce(json_extract(sonde_payload(payload), '$.cache_write_1h_tokens'), 0)) AS cache_write_1h,
    sum(reasoning_tokens) AS reasoning
    FROM events WHERE event_type = 'llm' GROUP BY model ORDER BY model";

/// Tool calls by tool, with their failures.
const TOOL_CALLS: &str = "SELECT tool_name, count(*) AS calls,
    sum(status = 'error') AS failed
    FROM events WHERE event_type = 'runtime' GROUP BY tool_name ORDER BY tool_name";

#[test]
fn sonde_export_to_another_sonde_serve_keeps_sessions_tokens_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("source.db").display());
    let target = format!("sqlite://{}", dir.path().join("target.db").display());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data");
    for (agent, folder) in [("claude", "claude-code"), ("codex", "codex")] {
        let path = data.join(folder);
        sonde(
            &source,
            &["sync", agent, "--path", path.to_str().unwrap(), "--json"],
        );
    }

    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env("SONDE_SPOOL", dir.path().join("spool"))
        .stderr(Stdio::null());
    let (mut server, addr, _) = common::spawn_serve(command, &target);
    sonde(&source, &["export", "--to", &format!("http://{addr}")]);
    let stopped = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(
        server.wait().unwrap().success(),
        "the server drains and exits"
    );

    let sessions = listed(&source);
    assert!(
        sessions.len() >= 8,
        "both agents' sessions: {:?}",
        sessions.keys()
    );
    assert_eq!(
        listed(&target),
        sessions,
        "every session keeps its start, end, last record, counts, tokens and cost"
    );
    for id in sessions.keys() {
        assert_eq!(
            shown(&target, id),
            shown(&source, id),
            "session {id} keeps its start, end, steps and messages"
        );
    }

    for stats in ["summary", "models"] {
        let (mut got, mut want) = (
            sonde(&target, &["stats", stats, "--json"]),
            sonde(&source, &["stats", stats, "--json"]),
        );
        for stats in [&mut got, &mut want] {
            for row in stats.as_array_mut().into_iter().flatten() {
                row["cost_usd"] = nano_dollars(&row["cost_usd"]);
            }
        }
        assert_eq!(got, want, "stats {stats}: calls, tokens, cost and latency");
    }
    for sql in [TOKENS_PER_MODEL, TOOL_CALLS] {
        let want = sonde(&source, &["query", sql, "--json"]);
        assert!(want.as_array().is_some_and(|rows| !rows.is_empty()));
        assert_eq!(sonde(&target, &["query", sql, "--json"]), want, "{sql}");
    }
    let one_hour = sonde(&source, &["query", TOKENS_PER_MODEL, "--json"]);
    assert!(
        one_hour
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["cache_write_1h"].as_u64() > Some(0)),
        "the transcripts write to the one-hour cache: {one_hour}"
    );
}
