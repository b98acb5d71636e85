//! Interop with a real OpenTelemetry client: the Python SDK's OTLP/HTTP exporter sends
//! GenAI spans to a `sonde serve` started here, configured by nothing but
//! `OTEL_EXPORTER_OTLP_ENDPOINT`. The Python environment comes from `./scripts/test`
//! (`target/otel-venv`) or `SONDE_TEST_PYTHON`; without it the test fails, it never
//! skips.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SONDE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/otel-venv/bin/python");
    assert!(
        venv.exists(),
        "the OpenTelemetry Python SDK is missing: run ./scripts/test (it creates target/otel-venv), or set SONDE_TEST_PYTHON"
    );
    venv
}

fn sonde(db: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sonde"))
        .args(["--db", db])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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
