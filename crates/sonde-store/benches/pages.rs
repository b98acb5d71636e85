//! The data of each dashboard page at scale, on SQLite: the sessions page, a filtered
//! sessions page (model, words, errors), the calls page (and a filtered one), the stats
//! page for 30 days and a session of 5,000 events — beside a baseline measured in the
//! same run, one pass over the events table (`SELECT sum(input_tokens) FROM events`).
//!
//! `cargo bench -p sonde-store --bench pages` (default 1,000,000 sessions of 10 LLM
//! calls; `SONDE_BENCH_SESSIONS=100000` for a quicker run; `SONDE_BENCH_DB=PATH` to write
//! the database once and reuse it). Prints a Markdown table.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::Instant;

use sonde_model::*;
use sonde_store::*;

mod common;
use common::{ms, time};

const DAY: i64 = 86_400_000_000;
/// 2026-01-05T00:00:00Z.
const START: i64 = 1_767_571_200_000_000;
const CALLS_PER_SESSION: usize = 10;
const WORDS: [&str; 8] = [
    "refactor",
    "test",
    "deploy",
    "parser",
    "database",
    "cache",
    "migration",
    "review",
];

/// Session `i` of `total`, spread over 90 days: started, a prompt, 10 LLM calls of one
/// model, a tool call (failing in one session of 50).
fn session(i: usize, total: usize) -> Vec<Record> {
    let ctx = Context::session(format!("s-{i:08}"));
    let t0 = START + (i as i128 * 90 * DAY as i128 / total as i128) as i64;
    let at = |k: i64| Timestamp::from_micros(t0 + k * 1_000_000);
    let id = |k: &str| derived_id(&["pages", &i.to_string(), k]);
    let model = i % 50;
    let mut meta = Metadata::new();
    meta.insert("project".into(), format!("p-{}", i % 100).into());
    let mut records = vec![
        Record {
            id: id("start"),
            timestamp: at(0),
            context: ctx.clone(),
            body: Body::SessionStarted(SessionStarted {
                metadata: meta,
                session_metadata: vec![],
            }),
        },
        Record {
            id: id("prompt"),
            timestamp: at(1),
            context: ctx.clone(),
            body: Body::Message(Message {
                content: MessageContent::text(format!(
                    "please {} the {} and check ticket t{}",
                    WORDS[i % 8],
                    WORDS[(i / 8) % 8],
                    i % 10_000
                )),
                message_type: "user_prompt".into(),
                ..Default::default()
            }),
        },
        Record {
            id: id("tool"),
            timestamp: at(2),
            context: ctx.clone(),
            body: Body::Event(Event::Runtime(RuntimeAction {
                tool_name: Some("Bash".into()),
                arguments: Some(serde_json::json!({"command": "cargo test"})),
                status: if i.is_multiple_of(50) {
                    Status::Error
                } else {
                    Status::Ok
                },
                ..Default::default()
            })),
        },
    ];
    for c in 0..CALLS_PER_SESSION {
        records.push(Record {
            id: id(&format!("call-{c}")),
            timestamp: at(3 + c as i64),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                provider: Some("anthropic".into()),
                model_name: format!("model-{model:02}"),
                input_tokens: 100 + c as u64,
                output_tokens: 50,
                cache_read_tokens: 2_000,
                cost_usd: Some(0.001),
                latency_ms: Some(800.0 + (i % 1000) as f64),
                time_to_first_token_ms: Some(200.0),
                ..Default::default()
            })),
        });
    }
    records
}

/// A session of `n` events: LLM calls and tool calls in turns.
fn big_session(n: usize) -> Vec<Record> {
    let ctx = Context::session("big");
    let mut records = vec![Record::new(
        ctx.clone(),
        Body::SessionStarted(SessionStarted::default()),
    )];
    for k in 0..n {
        let body = if k % 2 == 0 {
            Body::Event(Event::Llm(LlmCall {
                model_name: "model-00".into(),
                input_tokens: 10,
                ..Default::default()
            }))
        } else {
            Body::Event(Event::Runtime(RuntimeAction {
                tool_name: Some("Read".into()),
                result: Some(serde_json::json!("x".repeat(400))),
                ..Default::default()
            }))
        };
        records.push(Record {
            id: derived_id(&["big", &k.to_string()]),
            timestamp: Timestamp::from_micros(START + 45 * DAY + k as i64 * 1000),
            context: ctx.clone(),
            body,
        });
    }
    records
}

async fn fill(store: &Arc<dyn TraceStore>, total: usize) -> f64 {
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..total {
        batch.extend(session(i, total));
        if batch.len() >= 20_000 || i + 1 == total {
            store.write(&std::mem::take(&mut batch)).await.unwrap();
        }
        if (i + 1).is_multiple_of(100_000) {
            eprintln!(
                "  {} sessions written ({:.0} records/s)",
                i + 1,
                ((i + 1) * (CALLS_PER_SESSION + 3)) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    store.write(&big_session(5_000)).await.unwrap();
    started.elapsed().as_secs_f64()
}

async fn bench(store: Arc<dyn TraceStore>, total: usize, written: bool) {
    let seconds = if written {
        eprintln!("SQLite: reusing the database SONDE_BENCH_DB names");
        0.0
    } else {
        eprintln!("SQLite: writing {total} sessions");
        fill(&store, total).await
    };
    let s = store.as_ref();
    let baseline = time(|| s.query("SELECT sum(input_tokens) FROM events", &[])).await;
    println!(
        "\n### SQLite: {total} sessions, {} LLM calls (written in {seconds:.0} s)\n",
        total * CALLS_PER_SESSION
    );
    println!(
        "Baseline, same run: one pass over the events table (`SELECT sum(input_tokens) FROM events`) = {}\n",
        ms(baseline)
    );
    println!("| page data | time | ratio to baseline |");
    println!("|---|---|---|");
    let row = |label: &str, d: std::time::Duration| {
        println!(
            "| {label} | {} | {:.3} |",
            ms(d),
            d.as_secs_f64() / baseline.as_secs_f64()
        );
    };
    let last_30 = Some(Timestamp::from_micros(START + 60 * DAY));
    let next = s
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .next_cursor;
    let sessions = [
        ("sessions page (newest 50)", SessionFilter::default()),
        (
            "sessions page 2 (by cursor)",
            SessionFilter {
                cursor: next,
                ..Default::default()
            },
        ),
        (
            "sessions filtered by model (1 in 50)",
            SessionFilter {
                model: Some("model-07".into()),
                ..Default::default()
            },
        ),
        (
            "sessions filtered by two words (1 in 64)",
            SessionFilter {
                search: Some("deploy parser".into()),
                ..Default::default()
            },
        ),
        (
            "sessions filtered by a rare word (1 in 10,000), last 30 days",
            SessionFilter {
                search: Some("t4242".into()),
                since: last_30,
                ..Default::default()
            },
        ),
        (
            "sessions with errors (1 in 50)",
            SessionFilter {
                has_errors: true,
                ..Default::default()
            },
        ),
    ];
    for (label, filter) in &sessions {
        row(label, time(|| s.list_sessions(filter)).await);
    }
    // The baseline of the two-word search: what it did before it probed the newest
    // sessions (gather every session holding each word, then take the newest).
    let gathered = |word: &str| {
        format!(
            "(s.tenant, s.session_id) IN (SELECT sd.tenant, sd.session_id FROM search_fts
                JOIN search_docs sd ON sd.id = search_fts.rowid WHERE search_fts MATCH '\"{word}\"')"
        )
    };
    let before = format!(
        "SELECT s.session_id FROM sessions s WHERE {} AND {}
         ORDER BY s.started_at DESC, s.session_id DESC LIMIT 51",
        gathered("deploy"),
        gathered("parser")
    );
    row(
        "sessions filtered by two words, gathered as before the probe (the statement alone)",
        time(|| s.query(&before, &[])).await,
    );
    let calls = [
        ("calls page (newest 50)", CallFilter::default()),
        (
            "calls filtered by model, latency ≥ 1.5 s",
            CallFilter {
                calls: AnalyticsFilter {
                    model: Some("model-07".into()),
                    ..Default::default()
                },
                min_latency_ms: Some(1500.0),
                ..Default::default()
            },
        ),
    ];
    for (label, filter) in &calls {
        row(label, time(|| s.list_calls(filter)).await);
    }
    let month = AnalyticsFilter {
        since: last_30,
        ..Default::default()
    };
    row(
        "stats page, 30 days (summary, series by model and day, keys, errors, and models with latency by model and by day at once)",
        time(|| async {
            tokio::try_join!(
                s.usage_summary(&month),
                s.usage_series(&month, GroupBy::Model, Bucket::Day),
                s.key_stats(&month),
                s.error_rates(&month, GroupBy::Model),
                s.latency_overview(&month, Bucket::Day),
            )
            .unwrap();
        })
        .await,
    );
    row(
        "the same with models, latency by model and by day asked apart (what the stats page did)",
        time(|| async {
            tokio::try_join!(
                s.usage_summary(&month),
                s.usage_series(&month, GroupBy::Model, Bucket::Day),
                s.model_stats(&month),
                s.key_stats(&month),
                s.error_rates(&month, GroupBy::Model),
                s.latency_percentiles(&month, GroupBy::Model),
                s.latency_series(&month, Bucket::Day),
            )
            .unwrap();
        })
        .await,
    );
    for (label, part) in [
        ("stats part: usage summary", 0),
        ("stats part: usage series by model and day", 1),
        ("stats part: models (with p95 latency)", 2),
        ("stats part: key stats", 3),
        ("stats part: error rates by model", 4),
        ("stats part: latency by model", 5),
        (
            "stats part: models, latency by model and by day at once (`latency_overview`)",
            6,
        ),
    ] {
        let d = time(|| async {
            match part {
                0 => drop(s.usage_summary(&month).await.unwrap()),
                1 => drop(
                    s.usage_series(&month, GroupBy::Model, Bucket::Day)
                        .await
                        .unwrap(),
                ),
                2 => drop(s.model_stats(&month).await.unwrap()),
                3 => drop(s.key_stats(&month).await.unwrap()),
                4 => drop(s.error_rates(&month, GroupBy::Model).await.unwrap()),
                5 => drop(s.latency_percentiles(&month, GroupBy::Model).await.unwrap()),
                _ => drop(s.latency_overview(&month, Bucket::Day).await.unwrap()),
            }
        })
        .await;
        row(label, d);
    }
    row(
        "latency by day over 30 days, one read per day (what the stats page did)",
        time(|| async {
            for d in 60..90 {
                let day = AnalyticsFilter {
                    since: Some(Timestamp::from_micros(START + d * DAY)),
                    until: Some(Timestamp::from_micros(START + (d + 1) * DAY)),
                    ..Default::default()
                };
                s.latency_percentiles(&day, GroupBy::None).await.unwrap();
            }
        })
        .await,
    );
    row(
        "latency by day over 30 days, one read (`latency_series`, what the stats page does)",
        time(|| s.latency_series(&month, Bucket::Day)).await,
    );
    row(
        "a session of 5,000 events (whole)",
        time(|| s.get_session("big", &Scope::All)).await,
    );
}

fn main() {
    let total: usize = std::env::var("SONDE_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must be quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // `SONDE_BENCH_DB=PATH` keeps the database between runs: written once when PATH does
    // not exist, read as it is when it does (the same SONDE_BENCH_SESSIONS, please).
    let path = std::env::var_os("SONDE_BENCH_DB")
        .map_or_else(|| dir.path().join("pages.db"), std::path::PathBuf::from);
    let written = path.exists();
    let store: Arc<dyn TraceStore> = Arc::new(rt.block_on(SqliteStore::open(&path)).unwrap());
    rt.block_on(bench(store, total, written));
}
