//! Batch-write throughput of LLM-call events through the `Writer`, into SQLite and
//! into PostgreSQL, each beside the raw driver writing the same rows into the same
//! tables (same schema, same indexes) in the same run: one prepared insert in one
//! transaction for SQLite, binary COPY for PostgreSQL.
//!
//! `cargo bench -p sonde-store --bench writer` (starts a throwaway PostgreSQL server).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sonde_model::*;
use sonde_store::*;

/// Events per measured iteration.
const EVENTS: usize = 50_000;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// `EVENTS` fresh LLM calls with unique UUID ids and ~300 bytes of JSON payload.
fn records() -> Vec<Record> {
    let base = NEXT.fetch_add(EVENTS as u64, Ordering::Relaxed);
    (0..EVENTS as u64)
        .map(|i| {
            let n = base + i;
            Record::new(
                Context::session(format!("session-{}", n / 500))
                    .with_step(format!("turn-{}", n % 7)),
                Body::Event(Event::Llm(LlmCall {
                    provider: Some("anthropic".into()),
                    model_name: format!("claude-model-{}", n % 50),
                    input_tokens: 1_000 + n % 100,
                    output_tokens: 250,
                    cache_read_tokens: 12_000,
                    cost_usd: Some(0.0123),
                    latency_ms: Some(1_840.0 + (n % 500) as f64),
                    time_to_first_token_ms: Some(420.0),
                    stop_reason: Some("end_turn".into()),
                    api_key_hash: Some(format!("key-{}", n % 1000)),
                    ..Default::default()
                })),
            )
        })
        .collect()
}

/// The rows the baselines write: the same columns the store writes for these records.
struct RawRow {
    id: String,
    ts: i64,
    session_id: String,
    step_id: String,
    payload: String,
    provider: String,
    model: String,
    tokens: [i64; 6],
    cost: f64,
    latency: f64,
    ttft: f64,
    api_key_hash: String,
}

fn raw_rows(records: &[Record]) -> Vec<RawRow> {
    records
        .iter()
        .map(|r| {
            let Body::Event(Event::Llm(c)) = &r.body else {
                unreachable!()
            };
            RawRow {
                id: r.id.clone(),
                ts: r.timestamp.as_micros(),
                session_id: r.context.session_id.clone(),
                step_id: r.context.step_id.clone().unwrap_or_default(),
                payload: r.body.payload_json(),
                provider: c.provider.clone().unwrap_or_default(),
                model: c.model_name.clone(),
                tokens: [
                    c.input_tokens as i64,
                    c.output_tokens as i64,
                    c.cache_read_tokens as i64,
                    0,
                    0,
                    c.total_tokens() as i64,
                ],
                cost: c.cost_usd.unwrap_or(0.0),
                latency: c.latency_ms.unwrap_or(0.0),
                ttft: c.time_to_first_token_ms.unwrap_or(0.0),
                api_key_hash: c.api_key_hash.clone().unwrap_or_default(),
            }
        })
        .collect()
}

const COLUMNS: &str = "id, kind, ts, session_id, step_id, payload, event_type, status, provider, model, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
    reported_cost_usd, latency_ms, ttft_ms, api_key_hash";

async fn through_writer(store: Arc<dyn TraceStore>, iters: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let batch = records();
        let writer = Writer::start(
            store.clone(),
            WriterConfig {
                workers: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let start = Instant::now();
        for chunk in batch.chunks(DEFAULT_BATCH_SIZE) {
            writer.enqueue(chunk.to_vec());
        }
        writer.flush().await;
        elapsed += start.elapsed();
        assert_eq!(writer.diagnostics().written, EVENTS as u64);
        writer.shutdown(Duration::from_secs(10)).await;
    }
    elapsed
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("write_sqlite");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    let baseline = dir.path().join("baseline.db");
    drop(rt.block_on(SqliteStore::open(&baseline)).unwrap()); // same schema and indexes
    let mut conn = rusqlite::Connection::open(&baseline).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .unwrap();
    group.bench_function(BenchmarkId::new("raw_prepared_insert", EVENTS), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let rows = raw_rows(&records());
                let start = Instant::now();
                let tx = conn.transaction().unwrap();
                {
                    let mut stmt = tx
                        .prepare(&format!("INSERT INTO events ({COLUMNS}) VALUES (?1, 'llm_call', ?2, ?3, ?4, ?5, 'llm', 'ok', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"))
                        .unwrap();
                    for r in &rows {
                        stmt.execute(rusqlite::params![
                            r.id, r.ts, r.session_id, r.step_id, r.payload, r.provider, r.model,
                            r.tokens[0], r.tokens[1], r.tokens[2], r.tokens[3], r.tokens[4], r.tokens[5],
                            r.cost, r.latency, r.ttft, r.api_key_hash
                        ])
                        .unwrap();
                    }
                }
                tx.commit().unwrap();
                elapsed += start.elapsed();
            }
            elapsed
        })
    });
    let store: Arc<dyn TraceStore> = Arc::new(
        rt.block_on(SqliteStore::open(dir.path().join("writer.db")))
            .unwrap(),
    );
    group.bench_function(BenchmarkId::new("writer", EVENTS), |b| {
        b.to_async(&rt)
            .iter_custom(|iters| through_writer(store.clone(), iters))
    });
    group.finish();
}

fn postgres(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = sonde_pgtest::PgServer::running();
    let mut group = c.benchmark_group("write_postgres");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    let baseline_url = server.fresh_database().unwrap();
    drop(rt.block_on(PostgresStore::open(&baseline_url)).unwrap()); // same schema and indexes
    let client = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&baseline_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    });
    group.bench_function(BenchmarkId::new("raw_binary_copy", EVENTS), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = &client;
            async move {
                use tokio_postgres::types::Type;
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let rows = raw_rows(&records());
                    let start = Instant::now();
                    let sink = client
                        .copy_in(&format!("COPY events ({COLUMNS}) FROM STDIN BINARY"))
                        .await
                        .unwrap();
                    let types = [
                        Type::TEXT,
                        Type::TEXT,
                        Type::TIMESTAMPTZ,
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::TEXT,
                        Type::INT8,
                        Type::INT8,
                        Type::INT8,
                        Type::INT8,
                        Type::INT8,
                        Type::INT8,
                        Type::FLOAT8,
                        Type::FLOAT8,
                        Type::FLOAT8,
                        Type::TEXT,
                    ];
                    let mut writer = pin!(tokio_postgres::binary_copy::BinaryCopyInWriter::new(
                        sink, &types
                    ));
                    for r in &rows {
                        let ts = chrono::DateTime::from_timestamp_micros(r.ts).unwrap();
                        writer
                            .as_mut()
                            .write(&[
                                &r.id,
                                &"llm_call",
                                &ts,
                                &r.session_id,
                                &r.step_id,
                                &r.payload,
                                &"llm",
                                &"ok",
                                &r.provider,
                                &r.model,
                                &r.tokens[0],
                                &r.tokens[1],
                                &r.tokens[2],
                                &r.tokens[3],
                                &r.tokens[4],
                                &r.tokens[5],
                                &r.cost,
                                &r.latency,
                                &r.ttft,
                                &r.api_key_hash,
                            ])
                            .await
                            .unwrap();
                    }
                    writer.finish().await.unwrap();
                    elapsed += start.elapsed();
                }
                elapsed
            }
        })
    });
    let url = server.fresh_database().unwrap();
    let store: Arc<dyn TraceStore> = Arc::new(rt.block_on(PostgresStore::open(&url)).unwrap());
    group.bench_function(BenchmarkId::new("writer", EVENTS), |b| {
        b.to_async(&rt)
            .iter_custom(|iters| through_writer(store.clone(), iters))
    });
    group.finish();
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
