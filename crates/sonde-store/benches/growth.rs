//! Write throughput as the store grows: N LLM calls (default 10 million), with the
//! sessions, turns, prompts and tool calls around them in the proportions of agent
//! transcripts, written through the `Writer` (as `sonde import` and `sonde serve` write)
//! into SQLite and into PostgreSQL. Prints the throughput of each successive tenth of
//! N (calls/s and records/s), the process's peak memory and the bytes per call on disk,
//! so that a store whose writes slow down as its tables grow shows it as a falling
//! curve.
//!
//! `cargo bench -p sonde-store --bench growth` (`SONDE_BENCH_CALLS=1000000` for a
//! quicker run; `SONDE_BENCH_BACKENDS=sqlite` for one backend). Prints Markdown.
//!
//! Ids are random (UUID v5 from `derived_id`, as transcript sync makes them; senders'
//! v4 ids are as random), session ids too; 32 sessions are live at once, their records
//! interleaved in time order as ingestion sees them. `SONDE_BENCH_IDS=ordered` gives
//! record ids that sort by time instead (what random ids cost).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sonde_model::*;
use sonde_store::*;

/// 2026-01-05T00:00:00Z.
const START: i64 = 1_767_571_200_000_000;
/// Turns in a session; each a prompt, [`CALLS_PER_TURN`] LLM calls and
/// [`TOOLS_PER_TURN`] tool calls.
const TURNS: usize = 5;
const CALLS_PER_TURN: usize = 10;
const TOOLS_PER_TURN: usize = 8;
const CALLS_PER_SESSION: usize = TURNS * CALLS_PER_TURN;
/// Sessions recorded at once, their records interleaved.
const LIVE_SESSIONS: usize = 32;
/// Records handed to the writer at once (what one import file or request gives it).
const CHUNK: usize = 2_048;

/// `SONDE_BENCH_IDS=ordered`: record ids that sort by time (`derived_id_at`), to
/// measure what random ids cost against ids that append to the key index.
fn ordered_ids() -> bool {
    std::env::var("SONDE_BENCH_IDS").is_ok_and(|v| v == "ordered")
}

fn next(seed: &mut u64, m: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % m
}

/// Session `s`'s records (started, then per turn a prompt, 10 LLM calls each followed
/// by most of 8 tool calls, then ended), its clock starting at `t0` microseconds.
fn session(s: usize, t0: i64) -> Vec<Record> {
    let sid = derived_id(&["growth-session", &s.to_string()]);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (s as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let model = next(&mut seed, 50);
    let key = next(&mut seed, 1_000);
    let mut records = Vec::with_capacity(2 + TURNS * (1 + CALLS_PER_TURN + TOOLS_PER_TURN));
    let mut k = 0u64;
    let mut push = |records: &mut Vec<Record>, ctx: &Context, body: Body| {
        k += 1;
        let timestamp = Timestamp::from_micros(t0 + k as i64 * 2_000_000);
        let parts = ["growth", &s.to_string(), &k.to_string()];
        records.push(Record {
            id: if ordered_ids() {
                derived_id_at(timestamp, &parts)
            } else {
                derived_id(&parts)
            },
            timestamp,
            context: ctx.clone(),
            body,
        });
    };
    let session_ctx = Context::session(sid.clone());
    push(
        &mut records,
        &session_ctx,
        Body::SessionStarted(SessionStarted::default()),
    );
    for turn in 0..TURNS {
        let ctx = Context::session(sid.clone()).with_step(format!("turn-{turn}"));
        push(
            &mut records,
            &ctx,
            Body::Message(Message {
                content: MessageContent::text(format!(
                    "please look at the failing test in module {} and fix the parser so that ticket t{} passes",
                    next(&mut seed, 400),
                    next(&mut seed, 10_000)
                )),
                message_type: "user_prompt".into(),
                ..Default::default()
            }),
        );
        for c in 0..CALLS_PER_TURN {
            push(
                &mut records,
                &ctx,
                Body::Event(Event::Llm(LlmCall {
                    provider: Some("anthropic".into()),
                    model_name: format!("model-{model:02}"),
                    input_tokens: 200 + next(&mut seed, 4_000),
                    output_tokens: next(&mut seed, 1_000),
                    cache_read_tokens: next(&mut seed, 20_000),
                    cache_write_tokens: next(&mut seed, 500),
                    cost_usd: Some(next(&mut seed, 100_000) as f64 * 1e-6),
                    latency_ms: Some(next(&mut seed, 30_000) as f64),
                    time_to_first_token_ms: Some(next(&mut seed, 2_000) as f64),
                    stop_reason: Some("tool_use".into()),
                    api_key_hash: Some(format!("key-{key:04}")),
                    ..Default::default()
                })),
            );
            if c < TOOLS_PER_TURN {
                let failed = next(&mut seed, 30) == 0;
                push(
                    &mut records,
                    &ctx,
                    Body::Event(Event::Runtime(RuntimeAction {
                        tool_name: Some(["Bash", "Read", "Edit", "Grep"][c % 4].into()),
                        arguments: Some(serde_json::json!({
                            "command": format!("cargo test -p crate-{} parser::case_{}", next(&mut seed, 40), next(&mut seed, 900))
                        })),
                        result: Some(serde_json::json!(format!(
                            "running {} tests\ntest parser::case_{} ... {}\n",
                            next(&mut seed, 200),
                            next(&mut seed, 900),
                            if failed { "FAILED" } else { "ok" }
                        ))),
                        status: if failed { Status::Error } else { Status::Ok },
                        ..Default::default()
                    })),
                );
            }
        }
    }
    push(
        &mut records,
        &session_ctx,
        Body::SessionEnded(SessionEnded::default()),
    );
    records
}

/// Sessions `from..from + n`, [`LIVE_SESSIONS`] at a time with their records
/// interleaved (as concurrent agents' records arrive), in time order.
fn sessions(from: usize, n: usize) -> Vec<Record> {
    let mut out = Vec::new();
    let mut s = from;
    while s < from + n {
        let live = LIVE_SESSIONS.min(from + n - s);
        // Each group of live sessions starts where the previous one ended (~4 minutes).
        let t0 = START + (s / LIVE_SESSIONS) as i64 * 240_000_000;
        let each: Vec<Vec<Record>> = (s..s + live).map(|i| session(i, t0)).collect();
        let longest = each.iter().map(Vec::len).max().unwrap_or(0);
        for k in 0..longest {
            for records in &each {
                if let Some(r) = records.get(k) {
                    out.push(r.clone());
                }
            }
        }
        s += live;
    }
    out
}

/// The process's peak resident memory, in MiB (Linux's `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// What one backend's run measured.
struct Run {
    /// Per tenth: calls, records, seconds.
    tenths: Vec<(usize, usize, f64)>,
    total: Duration,
}

async fn fill(store: Arc<dyn TraceStore>, calls: usize) -> Run {
    let writer = Writer::start(
        store,
        WriterConfig {
            workers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let total_sessions = calls.div_ceil(CALLS_PER_SESSION);
    let tenth = total_sessions.div_ceil(10);
    let mut run = Run {
        tenths: Vec::new(),
        total: Duration::ZERO,
    };
    let mut written_sessions = 0;
    let mut gen_time = Duration::ZERO;
    let started = Instant::now();
    while written_sessions < total_sessions {
        let n = tenth.min(total_sessions - written_sessions);
        let mut records_in_tenth = 0;
        let part_started = Instant::now();
        let mut part_gen = Duration::ZERO;
        // Generate a few hundred sessions at a time (not timed), and write them.
        let mut s = written_sessions;
        while s < written_sessions + n {
            let m = 256.min(written_sessions + n - s);
            let g = Instant::now();
            let records = sessions(s, m);
            part_gen += g.elapsed();
            records_in_tenth += records.len();
            for chunk in records.chunks(CHUNK) {
                let enqueued = writer
                    .enqueue_within(chunk.to_vec(), Duration::from_secs(600))
                    .await;
                assert_eq!(enqueued, Enqueued::Queued);
            }
            s += m;
        }
        writer.flush().await;
        let secs = (part_started.elapsed() - part_gen).as_secs_f64();
        gen_time += part_gen;
        written_sessions += n;
        let part_calls = n * CALLS_PER_SESSION;
        eprintln!(
            "  {} calls: {:.0} calls/s, {:.0} records/s this tenth (peak RSS {:.0} MiB)",
            written_sessions * CALLS_PER_SESSION,
            part_calls as f64 / secs,
            records_in_tenth as f64 / secs,
            peak_rss_mib()
        );
        run.tenths.push((part_calls, records_in_tenth, secs));
    }
    run.total = started.elapsed() - gen_time;
    let d = writer.diagnostics();
    assert_eq!(d.total_dropped_total, 0);
    writer.shutdown(Duration::from_secs(60)).await;
    run
}

fn report(name: &str, calls: usize, run: &Run, disk_bytes: u64) {
    let records: usize = run.tenths.iter().map(|t| t.1).sum();
    println!(
        "\n### {name}: {calls} LLM calls, {records} records (written in {:.0} s: {:.0} calls/s, {:.0} records/s)\n",
        run.total.as_secs_f64(),
        calls as f64 / run.total.as_secs_f64(),
        records as f64 / run.total.as_secs_f64(),
    );
    println!(
        "| calls written | calls/s this tenth | records/s this tenth | against the first tenth |"
    );
    println!("|---|---|---|---|");
    let first = run.tenths.first().map_or(1.0, |t| t.0 as f64 / t.2);
    let mut done = 0;
    for (c, r, secs) in &run.tenths {
        done += c;
        let rate = *c as f64 / secs;
        println!(
            "| {done} | {rate:.0} | {:.0} | {:.2} |",
            *r as f64 / secs,
            rate / first
        );
    }
    println!(
        "\nPeak RSS of the benchmark process: {:.0} MiB. On disk: {:.1} MB, {:.0} bytes per call ({:.0} per record).",
        peak_rss_mib(),
        disk_bytes as f64 / 1e6,
        disk_bytes as f64 / calls as f64,
        disk_bytes as f64 / records as f64
    );
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let calls: usize = std::env::var("SONDE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let backends =
        std::env::var("SONDE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must be quick.
    if !std::env::args().any(|a| a == "--bench") {
        let records = sessions(0, 3);
        assert_eq!(
            records
                .iter()
                .filter(|r| matches!(r.body, Body::Event(Event::Llm(_))))
                .count(),
            3 * CALLS_PER_SESSION
        );
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    if backends.contains("sqlite") {
        // `SONDE_BENCH_KEEP=1` keeps the database (its folder is printed) to look into.
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TraceStore> = Arc::new(
            rt.block_on(SqliteStore::open(dir.path().join("growth.db")))
                .unwrap(),
        );
        eprintln!("SQLite: writing {calls} calls");
        let run = rt.block_on(fill(store.clone(), calls));
        drop(store);
        report("SQLite", calls, &run, dir_bytes(dir.path()));
        if std::env::var_os("SONDE_BENCH_KEEP").is_some() {
            eprintln!("kept {}", dir.keep().display());
        }
    }
    if backends.contains("postgres") {
        let server = sonde_pgtest::PgServer::running();
        let url = server.fresh_database().unwrap();
        let store: Arc<dyn TraceStore> = Arc::new(rt.block_on(PostgresStore::open(&url)).unwrap());
        eprintln!("PostgreSQL: writing {calls} calls");
        let run = rt.block_on(fill(store.clone(), calls));
        let size = rt
            .block_on(store.query("SELECT pg_database_size(current_database())", &[]))
            .unwrap();
        let bytes = size
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        report("PostgreSQL", calls, &run, bytes);
    }
}
