//! Recording through `SessionTracer`: the caller's per-event cost, and end-to-end
//! throughput into SQLite and JSONL, each beside a baseline measured in the same run
//! (the same records written straight to the store or the sink, without the tracer).
//!
//! `cargo bench -p sonde --bench tracer`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sonde::store::{SqliteStore, TraceStore};
use sonde::*;

/// Events per end-to-end sample.
const EVENTS: u64 = 20_000;
/// Events per session in the caller-overhead scenario (sessions keep their records).
const EVENTS_PER_SESSION: u64 = 10_000;

fn llm_event(i: u64) -> Event {
    Event::Llm(LlmCall {
        provider: Some("anthropic".into()),
        model_name: "claude-sonnet-4-5".into(),
        input_tokens: 1_000 + i % 100,
        output_tokens: 250,
        cache_read_tokens: 12_000,
        cost_usd: Some(0.0123),
        latency_ms: Some(1_840.0),
        time_to_first_token_ms: Some(420.0),
        stop_reason: Some("end_turn".into()),
        api_key_hash: Some("3f1c9a".into()),
        ..Default::default()
    })
}

/// Discards everything: isolates the tracer's own cost on the caller's thread.
struct Discard;
impl TraceSink for Discard {
    fn write(&self, _: &[Record]) -> Result<(), SinkError> {
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn caller_overhead(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("caller_overhead");
    group.throughput(Throughput::Elements(1));
    // Baseline: building the event the caller passes in; the tracer's own cost is
    // record_event minus this.
    group.bench_function("build_event_baseline", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                std::hint::black_box(llm_event(i));
            }
            start.elapsed()
        })
    });
    // Building the event and the record around it (id, timestamp) and one copy.
    group.bench_function("make_record_baseline", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let r = Record::new(
                    Context::session("s").with_step("t"),
                    Body::Event(llm_event(i)),
                );
                std::hint::black_box(r.clone());
            }
            start.elapsed()
        })
    });
    group.bench_function("record_event", |b| {
        let tracer = SessionTracer::with_sink(Arc::new(Discard)).unwrap();
        b.to_async(&rt).iter_custom(|iters| {
            let tracer = tracer.clone();
            async move {
                let mut elapsed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let session = tracer.session(None, Metadata::new()).await.unwrap();
                    session
                        .start_timestep("t", None, Metadata::new())
                        .await
                        .unwrap();
                    let n = (iters - done).min(EVENTS_PER_SESSION);
                    let start = Instant::now();
                    for i in 0..n {
                        session.record_event(llm_event(i)).await.unwrap();
                    }
                    elapsed += start.elapsed();
                    done += n;
                    session.end(true).await.unwrap();
                }
                elapsed
            }
        })
    });
    group.finish();
}

fn records(n: u64) -> Vec<Record> {
    let ctx = Context::session(new_id()).with_step("t");
    (0..n)
        .map(|i| Record::new(ctx.clone(), Body::Event(llm_event(i))))
        .collect()
}

fn end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);

    let store: Arc<dyn TraceStore> = Arc::new(
        rt.block_on(SqliteStore::open(dir.path().join("baseline.db")))
            .unwrap(),
    );
    group.bench_function(BenchmarkId::new("sqlite", "store_write_baseline"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let batch = records(EVENTS);
                    let start = Instant::now();
                    for chunk in batch.chunks(sonde::MAX_BATCH) {
                        store.write(chunk).await.unwrap();
                    }
                    elapsed += start.elapsed();
                }
                elapsed
            }
        })
    });
    let tracer_store: Arc<dyn TraceStore> = Arc::new(
        rt.block_on(SqliteStore::open(dir.path().join("tracer.db")))
            .unwrap(),
    );
    let tracer = SessionTracer::new(tracer_store).unwrap();
    group.bench_function(BenchmarkId::new("sqlite", "tracer"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let tracer = tracer.clone();
            async move { record_through(&tracer, iters).await }
        })
    });

    let jsonl = Arc::new(JsonlSink::create(dir.path().join("baseline.jsonl")).unwrap());
    group.bench_function(BenchmarkId::new("jsonl", "sink_write_baseline"), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let batch = records(EVENTS);
                let start = Instant::now();
                for chunk in batch.chunks(sonde::MAX_BATCH) {
                    jsonl.write(chunk).unwrap();
                }
                jsonl.flush().unwrap();
                elapsed += start.elapsed();
            }
            elapsed
        })
    });
    let tracer = SessionTracer::with_sink(Arc::new(
        JsonlSink::create(dir.path().join("tracer.jsonl")).unwrap(),
    ))
    .unwrap();
    group.bench_function(BenchmarkId::new("jsonl", "tracer"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let tracer = tracer.clone();
            async move { record_through(&tracer, iters).await }
        })
    });
    group.finish();
}

/// Records `EVENTS` events per iteration and waits until they are written.
async fn record_through(tracer: &SessionTracer, iters: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let session = tracer.session(None, Metadata::new()).await.unwrap();
        session
            .start_timestep("t", None, Metadata::new())
            .await
            .unwrap();
        let start = Instant::now();
        for i in 0..EVENTS {
            session.record_event(llm_event(i)).await.unwrap();
        }
        tracer.flush().await.unwrap();
        elapsed += start.elapsed();
        session.end(false).await.unwrap();
    }
    elapsed
}

criterion_group!(benches, caller_overhead, end_to_end);
criterion_main!(benches);
