//! What more than one test binary needs.
// Each test binary uses its own part of this.
#![allow(dead_code)]

pub mod http;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A spool folder of the test's own for `db`, outside the user's data folder.
pub fn spool_for(db: &str) -> PathBuf {
    std::env::temp_dir()
        .join("sonde-cli-tests")
        .join(sonde::derived_id(&[db]))
}

/// The `sonde` under test: this build's, or the one `SONDE_TEST_BIN` names (to run the
/// specifications against another build, such as the one before a fix).
pub fn sonde_bin() -> PathBuf {
    std::env::var_os("SONDE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sonde")))
}

/// `sonde --db DB`, with neither the user's SONDE_DB nor their spool folder.
pub fn sonde_on(db: &str) -> Command {
    let mut command = Command::new(sonde_bin());
    command
        .arg("--db")
        .arg(db)
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", spool_for(db));
    command
}

/// Runs `command` (`sonde` with the caller's environment and output set) as
/// `--db DB serve` on two free loopback ports and waits until both listen; returns the
/// server, its OTLP/HTTP address and its OTLP/gRPC address.
pub fn spawn_serve(command: Command, db: &str) -> (Child, String, String) {
    spawn_serve_with(command, db, &[])
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// [`spawn_serve`] with more `serve` flags.
pub fn spawn_serve_with(mut command: Command, db: &str, flags: &[&str]) -> (Child, String, String) {
    let (addr, grpc_addr) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let server = command
        .args([
            "--db",
            db,
            "serve",
            "--addr",
            &addr,
            "--grpc-addr",
            &grpc_addr,
        ])
        .args(flags)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err()
        || std::net::TcpStream::connect(&grpc_addr).is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, addr, grpc_addr)
}

/// A `sonde serve` process, killed when the test ends however it ends.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sonde --db DB serve` with `flags` (its output but errors dropped): the server, its
/// OTLP/HTTP address and its OTLP/gRPC address.
pub fn serve(db: &str, flags: &[&str]) -> (Served, String, String) {
    let mut command = Command::new(sonde_bin());
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", spool_for(db))
        .stdout(std::process::Stdio::null());
    let (child, addr, grpc) = spawn_serve_with(command, db, flags);
    (Served(child), addr, grpc)
}

/// A new key's secret, of tenant acme/prod (`sonde keys create --json`).
pub fn create_key(db: &str, admin: bool) -> String {
    let mut command = sonde_on(db);
    command.args([
        "keys",
        "create",
        "--org",
        "acme",
        "--workspace",
        "prod",
        "--json",
    ]);
    if admin {
        command.arg("--admin");
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    key["secret"].as_str().unwrap().to_owned()
}

/// A minimal HTTP/1.1 POST; returns the status code, or `None` when the server could not
/// be reached or closed the connection without an answer.
pub fn try_post(addr: &str, path: &str, content_type: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// [`try_post`], for a server that must answer.
pub fn post(addr: &str, path: &str, content_type: &str, body: &[u8]) -> u16 {
    try_post(addr, path, content_type, body).unwrap_or_else(|| panic!("no answer from {addr}"))
}

/// Writes `n` LLM-call records as JSONL to `path`: ids `{tag}-0000000`..., 2,000 to a
/// session (`{session}-0`, ...).
pub fn write_llm_records(path: &std::path::Path, tag: &str, session: &str, n: usize) {
    use sonde::*;
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let record = Record {
            id: format!("{tag}-{i:07}"),
            timestamp: Timestamp::from_micros(1_767_225_600_000_000 + i as i64),
            context: Context::session(format!("{session}-{}", i / 2_000)),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: "gpt-5".into(),
                input_tokens: 3,
                output_tokens: 4,
                ..Default::default()
            })),
        };
        writeln!(out, "{}", record.to_json_line()).unwrap();
    }
    out.flush().unwrap();
}

/// An OTLP/JSON request of `spans` GenAI spans from `sender`, its `n`th; and the span
/// ids it carries (unique across senders and requests).
pub fn otlp_request(sender: usize, n: usize, spans: usize) -> (Vec<u8>, Vec<String>) {
    let ids: Vec<String> = (0..spans)
        .map(|i| format!("{:04x}{:012x}", sender + 1, n * spans + i + 1))
        .collect();
    let spans: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let start = 1_763_789_160_000_000_000u64 + (n * spans + i) as u64 * 1_000;
            serde_json::json!({
                "traceId": format!("{:032x}", sender * 1_000_000 + n + 1),
                "spanId": id,
                "name": "chat",
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 500_000).to_string(),
                "attributes": [
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "7"}}
                ]
            })
        })
        .collect();
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    (body.to_string().into_bytes(), ids)
}

/// The column `column` of every row `sonde query SQL --json` gives on `db`, as text.
pub fn query_column(db: &str, sql: &str, column: &str) -> Vec<String> {
    let out = sonde_on(db)
        .args(["query", sql, "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[column].as_str().unwrap().to_owned())
        .collect()
}

/// The Python the environment variable `env` names, else `target/VENV/bin/python` (made
/// by `./scripts/test`); fails (never skips) when neither exists, saying it lacks `what`.
pub fn test_python(env: &str, venv: &str, what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(venv)
        .join("bin/python");
    assert!(
        python.exists(),
        "{what} missing: run ./scripts/test (it creates target/{venv}), or set {env}"
    );
    python
}

/// `sonde --db DB ARGS...`'s JSON output (null when it prints nothing); fails the test
/// when the command fails.
pub fn sonde_json(db: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(sonde_bin())
        .args(["--db", db])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}
