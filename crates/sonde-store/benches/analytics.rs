//! Analytics over many LLM calls (default 10 million: 50 models, 1,000 keys, 90 days),
//! on SQLite and on PostgreSQL: each query over the whole 90 days and over one day,
//! beside a baseline measured in the same run — one pass over the events table, `SELECT sum(input_tokens) FROM events`.
//!
//! `cargo bench -p sonde-store --bench analytics` (`SONDE_BENCH_CALLS=1000000` for a
//! quicker run; `SONDE_BENCH_BACKENDS=sqlite` for one backend). Prints a Markdown table.
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

mod common;
use common::{ms, time};

const DAY: i64 = 86_400_000_000;
/// 2026-01-05T00:00:00Z, a Monday.
const START: i64 = 1_767_571_200_000_000;
const BATCH: usize = 20_000;

/// Calls `from..from + n` of `total`, in time order (as ingestion sees them) with a few
/// minutes of jitter, spread over 90 days.
fn calls(from: usize, n: usize, total: usize) -> Vec<Record> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ from as u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    (from..from + n)
        .map(|i| {
            let model = next(50);
            Record {
                id: derived_id(&["bench", &i.to_string()]),
                timestamp: Timestamp::from_micros(
                    START
                        + (i as i128 * 90 * DAY as i128 / total as i128) as i64
                        + next(300_000_000) as i64,
                ),
                context: Context::session(format!("s-{}", i / 200)),
                body: Body::Event(Event::Llm(LlmCall {
                    provider: Some(
                        ["openai", "anthropic", "google", "mistral", "local"][model as usize % 5]
                            .into(),
                    ),
                    model_name: format!("model-{model:02}"),
                    input_tokens: next(4_000),
                    output_tokens: next(1_000),
                    cache_read_tokens: next(20_000),
                    cache_write_tokens: next(500),
                    cost_usd: Some(next(100_000) as f64 * 1e-6),
                    latency_ms: (next(20) != 0).then(|| next(30_000) as f64),
                    time_to_first_token_ms: (next(3) != 0).then(|| next(2_000) as f64),
                    status: if next(50) == 0 {
                        Status::Error
                    } else {
                        Status::Ok
                    },
                    response_status: Some(if next(100) == 0 { 429 } else { 200 }),
                    api_key_hash: Some(format!("key-{:04}", next(1_000))),
                    request_path: Some("/v1/chat/completions".into()),
                    ..Default::default()
                })),
            }
        })
        .collect()
}

async fn fill(store: &Arc<dyn TraceStore>, total: usize) -> Duration {
    let started = Instant::now();
    let mut from = 0;
    while from < total {
        let n = BATCH.min(total - from);
        store.write(&calls(from, n, total)).await.unwrap();
        from += n;
        if from % 1_000_000 == 0 {
            eprintln!(
                "  {} calls written ({:.0}/s)",
                from,
                from as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}

async fn bench(name: &str, store: Arc<dyn TraceStore>, total: usize) {
    eprintln!("{name}: writing {total} calls");
    let fill_time = fill(&store, total).await;
    let s = store.as_ref();
    let all = AnalyticsFilter::default();
    let day = AnalyticsFilter {
        since: Some(Timestamp::from_micros(START + 45 * DAY)),
        until: Some(Timestamp::from_micros(START + 46 * DAY)),
        ..Default::default()
    };
    // `--since 7d` style: a week that starts and ends inside an hour.
    let week = AnalyticsFilter {
        since: Some(Timestamp::from_micros(START + 60 * DAY + 49_384_123_456)),
        until: Some(Timestamp::from_micros(START + 67 * DAY + 49_384_123_456)),
        ..Default::default()
    };
    let baseline = time(|| s.query("SELECT sum(input_tokens) FROM events", &[])).await;
    println!(
        "\n### {name}: {total} LLM calls (written in {:.0} s, {:.0} calls/s)\n",
        fill_time.as_secs_f64(),
        total as f64 / fill_time.as_secs_f64()
    );
    println!(
        "Baseline, same run: one pass over the events table (`SELECT sum(input_tokens) FROM events`) = {}\n",
        ms(baseline)
    );
    println!("| query | 90 days | ratio to baseline | one day | 7 days from 13:43:04 |");
    println!("|---|---|---|---|---|");
    macro_rules! row {
        ($label:expr, $f:ident $(, $arg:expr)*) => {{
            let whole = time(|| s.$f(&all $(, $arg)*)).await;
            let one = time(|| s.$f(&day $(, $arg)*)).await;
            let seven = time(|| s.$f(&week $(, $arg)*)).await;
            println!("| {} | {} | {:.1} | {} | {} |", $label, ms(whole), whole.as_secs_f64() / baseline.as_secs_f64(), ms(one), ms(seven));
        }};
    }
    row!("summary (usage and cost)", usage_summary);
    row!(
        "usage / cost series, by day",
        usage_series,
        GroupBy::None,
        Bucket::Day
    );
    row!(
        "usage / cost series, by hour and model",
        usage_series,
        GroupBy::Model,
        Bucket::Hour
    );
    row!(
        "usage / cost series, by week and provider",
        usage_series,
        GroupBy::Provider,
        Bucket::Week
    );
    row!("model stats (with p95)", model_stats);
    row!("key stats", key_stats);
    row!("latency percentiles", latency_percentiles, GroupBy::None);
    row!(
        "latency percentiles by model",
        latency_percentiles,
        GroupBy::Model
    );
    row!(
        "latency percentiles by key",
        latency_percentiles,
        GroupBy::Key
    );
    row!("error rates by model", error_rates, GroupBy::Model);
}

fn main() {
    let total: usize = std::env::var("SONDE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let backends =
        std::env::var("SONDE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must be quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    if backends.contains("sqlite") {
        let store: Arc<dyn TraceStore> = Arc::new(
            rt.block_on(SqliteStore::open(dir.path().join("analytics.db")))
                .unwrap(),
        );
        rt.block_on(bench("SQLite", store, total));
    }
    if backends.contains("postgres") {
        let server = sonde_pgtest::PgServer::running();
        let url = server.fresh_database().unwrap();
        let store: Arc<dyn TraceStore> = Arc::new(rt.block_on(PostgresStore::open(&url)).unwrap());
        rt.block_on(bench("PostgreSQL", store, total));
    }
}
