//! End-to-end OTLP/HTTP ingest into SQLite: several concurrent clients send batches of
//! 512 GenAI spans (~900 bytes of varied message text each) to `sonde serve`, timed until every span is
//! queryable; beside a baseline measured in the same run — the same records written
//! straight into the store (no HTTP, no decoding, no writer).
//!
//! `cargo bench -p sonde-server --bench ingest` (`SONDE_BENCH_SPANS` to change the
//! 204,800 default). Prints a Markdown table, and the spans/s of each tenth of the
//! requests (answered: stored, or queued for the writer) as the store grows. The server runs in a child process (this
//! benchmark again) so that its peak memory is its own.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_store::{RecordStore, SqlQuery, SqliteStore, TraceStore, Writer};

/// The allocator `sonde` (the binary) runs with, so that the server half measures what
/// `sonde serve` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 512;
/// Concurrent clients, unless `SONDE_BENCH_CLIENTS` says otherwise.
const CLIENTS: usize = 4;

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// About 900 bytes of message JSON that reads like a conversation: words drawn from a
/// vocabulary by a fixed pseudo-random sequence, different for every span, so that it
/// compresses as real text does (a repeated character would flatter compression).
fn content(n: u64) -> String {
    const WORDS: [&str; 48] = [
        "the",
        "agent",
        "reads",
        "file",
        "src/main.rs",
        "and",
        "calls",
        "tool",
        "with",
        "arguments",
        "result",
        "error",
        "retry",
        "because",
        "test",
        "failed",
        "on",
        "line",
        "42",
        "fix",
        "import",
        "module",
        "function",
        "returns",
        "value",
        "expected",
        "actual",
        "assert",
        "cargo",
        "build",
        "warning",
        "unused",
        "variable",
        "please",
        "explain",
        "why",
        "this",
        "happens",
        "patch",
        "applied",
        "successfully",
        "next",
        "step",
        "is",
        "to",
        "run",
        "benchmarks",
        "again",
    ];
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = String::from(r#"[{"role":"user","parts":[{"type":"text","content":""#);
    while text.len() < 880 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    text.push_str(r#""}]}]"#);
    text
}

fn body(batch: usize) -> Vec<u8> {
    let spans = (0..BATCH)
        .map(|i| {
            let n = (batch * BATCH + i) as u64;
            let mut trace_id = vec![0u8; 16];
            trace_id[..8].copy_from_slice(&(n / 64 + 1).to_be_bytes());
            Span {
                trace_id,
                span_id: (n + 1).to_be_bytes().to_vec(),
                name: "chat gpt-5".into(),
                kind: 3,
                start_time_unix_nano: 1_763_789_160_000_000_000 + n * 1_000_000,
                end_time_unix_nano: 1_763_789_160_000_000_000 + n * 1_000_000 + 800_000_000,
                attributes: vec![
                    attr(
                        "gen_ai.operation.name",
                        any_value::Value::StringValue("chat".into()),
                    ),
                    attr(
                        "gen_ai.provider.name",
                        any_value::Value::StringValue("openai".into()),
                    ),
                    attr(
                        "gen_ai.request.model",
                        any_value::Value::StringValue(format!("gpt-5-{}", n % 8)),
                    ),
                    attr(
                        "gen_ai.usage.input_tokens",
                        any_value::Value::IntValue(1200),
                    ),
                    attr("gen_ai.usage.output_tokens", any_value::Value::IntValue(90)),
                    attr(
                        "gen_ai.input.messages",
                        any_value::Value::StringValue(content(n)),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The thread or process name and CPU seconds (user + system) of a `/proc/.../stat`
/// text, whose times are in the kernel's 100 Hz ticks.
fn stat_cpu(stat: &str) -> Option<(&str, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    // Fields after the name (which is in parentheses): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((name, ticks / 100.0))
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| Some(stat_cpu(&s)?.1))
        .unwrap_or(0.0)
}

/// CPU seconds of this process's threads whose name starts with `prefix`.
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|s| {
            let (name, seconds) = stat_cpu(&s)?;
            name.starts_with(prefix).then_some(seconds)
        })
        .sum()
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Set in the server process: the folder of its database.
const SERVE_ENV: &str = "SONDE_BENCH_SERVE_DIR";
/// Set in the server process: how many spans to wait for.
const EXPECT_ENV: &str = "SONDE_BENCH_EXPECT";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Some(dir) = std::env::var_os(SERVE_ENV) {
        let expect = std::env::var(EXPECT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        serve(std::path::Path::new(&dir), expect);
        return;
    }
    let total: usize = std::env::var("SONDE_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(204_800);
    let batches = total / BATCH;
    let bodies: Vec<Vec<u8>> = (0..batches).map(body).collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();

    // Baseline: the same records straight into a store.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base_dir = tempfile::tempdir().unwrap();
    let mut stages = Vec::new();
    let baseline = client_rt.block_on(async {
        let store = SqliteStore::open(base_dir.path().join("baseline.db"))
            .await
            .unwrap();
        // Each stage alone, on this thread, a body at a time as the server does (memory
        // is reused): decoding, mapping, then (below) storing.
        let started = Instant::now();
        for b in bodies.iter() {
            std::hint::black_box(sonde_otlp::decode_protobuf(b).unwrap());
        }
        let decoding = started.elapsed();
        let started = Instant::now();
        for b in bodies.iter() {
            let spans = sonde_otlp::decode_protobuf(b).unwrap().spans;
            std::hint::black_box(
                spans
                    .into_iter()
                    .flat_map(sonde_otlp::span_to_records)
                    .collect::<Vec<_>>(),
            );
        }
        stages.push(("decode the protobuf bodies", decoding));
        stages.push(("map spans to records", started.elapsed() - decoding));
        let records: Vec<Vec<_>> = bodies
            .iter()
            .map(|b| {
                sonde_otlp::decode_protobuf(b)
                    .unwrap()
                    .spans
                    .into_iter()
                    .flat_map(sonde_otlp::span_to_records)
                    .collect()
            })
            .collect();
        let started = Instant::now();
        for chunk in records.chunks(8) {
            let batch: Vec<_> = chunk.iter().flatten().cloned().collect();
            store.write(&batch).await.unwrap();
        }
        started.elapsed()
    });

    // Through the server, in a process of its own (this benchmark again, as a server),
    // so that its memory is measured alone.
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(SERVE_ENV, dir.path())
        .env(EXPECT_ENV, (batches * BATCH).to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answers = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    answers.read_line(&mut line).unwrap();
    let url = line.trim().to_owned();
    let bodies = Arc::new(bodies);
    let clients: usize = std::env::var("SONDE_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CLIENTS);
    let client_cpu_before = cpu_seconds();
    let started = Instant::now();
    // When each tenth of the requests had been answered: the curve of a store that
    // slows as it grows.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tenths = Arc::new(std::sync::Mutex::new(Vec::with_capacity(10)));
    client_rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, bodies, url) = (client.clone(), bodies.clone(), url.clone());
            let (answered, tenths) = (answered.clone(), tenths.clone());
            tasks.push(tokio::spawn(async move {
                for b in (c..bodies.len()).step_by(clients) {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(bodies[b].clone())
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    let n = answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n % (bodies.len() / 10).max(1) == 0 {
                        tenths.lock().unwrap().push((n, started.elapsed()));
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let sent = started.elapsed();
    // Ask the server to wait until every span is queryable; it answers with its peak.
    writeln!(server.stdin.as_mut().unwrap(), "stored?").unwrap();
    line.clear();
    answers.read_line(&mut line).unwrap();
    let stored = started.elapsed();
    let client_cpu = cpu_seconds() - client_cpu_before;
    let figures: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let [server_peak_mb, server_cpu, sqlite_writer_cpu] = figures[..] else {
        panic!("the server answered {line:?}")
    };
    server.wait().unwrap();
    let spans = (batches * BATCH) as f64;
    println!("| scenario | spans | time | spans/s |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: the same records written straight into SQLite | {} | {:.2} s | {:.0} |",
        spans,
        baseline.as_secs_f64(),
        spans / baseline.as_secs_f64()
    );
    println!(
        "| OTLP/HTTP protobuf, {clients} clients, {BATCH} spans per request, until queryable | {} | {:.2} s | {:.0} |",
        spans,
        stored.as_secs_f64(),
        spans / stored.as_secs_f64()
    );
    println!();
    println!("| spans answered | spans/s this tenth | against the first tenth |");
    println!("|---|---|---|");
    let tenths = tenths.lock().unwrap().clone();
    let mut previous = (0, Duration::ZERO);
    let mut first = None;
    for (n, at) in tenths {
        let rate = ((n - previous.0) * BATCH) as f64 / (at - previous.1).as_secs_f64();
        let first = *first.get_or_insert(rate);
        println!("| {} | {rate:.0} | {:.2} |", n * BATCH, rate / first);
        previous = (n, at);
    }
    println!();
    println!("| stage, one after another on one thread | µs per span |");
    println!("|---|---|");
    stages.push(("store the records (rows, compression, SQLite)", baseline));
    for (stage, took) in &stages {
        println!("| {stage} | {:.1} |", took.as_secs_f64() * 1e6 / spans);
    }
    println!();
    println!(
        "ratio to baseline: {:.2}; requests all answered after {:.2} s",
        baseline.as_secs_f64() / stored.as_secs_f64(),
        sent.as_secs_f64()
    );
    println!(
        "request bytes per span: {:.0}; on disk (database + WAL) per span: {:.0} bytes",
        body_bytes as f64 / spans,
        disk_bytes(dir.path()) as f64 / spans
    );
    println!(
        "server CPU: {server_cpu:.2} s in {:.2} s ({:.2} cores), {:.1} µs per span",
        stored.as_secs_f64(),
        server_cpu / stored.as_secs_f64(),
        server_cpu * 1e6 / spans
    );
    println!(
        "of which SQLite's writer thread: {sqlite_writer_cpu:.2} s (busy {:.0} % of the time)",
        100.0 * sqlite_writer_cpu / stored.as_secs_f64()
    );
    println!(
        "load generator CPU meanwhile: {client_cpu:.2} s ({:.2} cores)",
        client_cpu / stored.as_secs_f64()
    );
    println!(
        "peak memory of the server process: {server_peak_mb:.0} MB (of the benchmark process, with clients, requests and the baseline: {:.0} MB)",
        peak_rss_mb()
    );
    // Where the bytes go: each table and index, per span (after a final checkpoint).
    client_rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("ingest.db"))
            .await
            .unwrap();
        let rows = store
            .query(
                "SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC",
                &[],
            )
            .await
            .unwrap();
        println!();
        println!("| table or index | bytes per span |");
        println!("|---|---|");
        for row in rows.rows.iter().take(8) {
            let bytes = row[1].as_f64().unwrap_or(0.0);
            println!(
                "| {} | {:.0} |",
                row[0].as_str().unwrap_or("?"),
                bytes / spans
            );
        }
    });
}

/// The server half: serves OTLP/HTTP into a SQLite store in the folder `SERVE_ENV`
/// names, prints its URL, and on a line from stdin waits until `EXPECT_ENV` spans are
/// queryable, then prints its peak memory in MB and exits.
fn serve(dir: &std::path::Path, expect: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, writer) = rt.block_on(async {
        let store: Arc<dyn TraceStore> =
            Arc::new(SqliteStore::open(dir.join("ingest.db")).await.unwrap());
        let writer = Arc::new(
            Writer::start(store.clone(), {
                // What `sonde serve` runs, unless the environment says otherwise.
                let mut config = sonde_server::writer_config(dir.join("spool"));
                let knob = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
                if let Some(queue) = knob("SONDE_BENCH_QUEUE") {
                    config.queue_capacity = queue;
                }
                if let Some(batch) = knob("SONDE_BENCH_BATCH") {
                    config.batch_size = batch;
                }
                if let Some(workers) = knob("SONDE_BENCH_WORKERS") {
                    config.workers = workers;
                }
                config
            })
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(sonde_server::serve_on(
            listener,
            sonde_server::DEFAULT_BODY_LIMIT,
            writer.clone(),
            std::future::pending(),
        ));
        (store, writer)
    });
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    rt.block_on(async {
        writer.flush().await;
        loop {
            let n = store
                .query("SELECT count(*) FROM events", &[])
                .await
                .unwrap()
                .rows[0][0]
                .as_u64()
                .unwrap();
            if n >= expect {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    println!(
        "{:.1} {:.2} {:.2}",
        peak_rss_mb(),
        cpu_seconds(),
        thread_cpu_seconds("sonde-sqlite-wr")
    );
}
