//! Reading lash traces: lines per second through `sonde_lash::read`, beside a baseline
//! measured in the same run — parsing the same lines into `serde_json::Value`, which
//! any reader of JSON lines must do.
//!
//! `cargo bench -p sonde-lash --bench read`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Copies of the schema-7 fixture (47 lines each, one session per copy).
const COPIES: usize = 200;

/// The schema-7 fixture repeated, each copy a session of its own.
fn trace() -> (String, u64) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lash-v7.jsonl");
    let one = std::fs::read_to_string(path).unwrap();
    let mut text = String::new();
    for copy in 0..COPIES {
        text += &one
            .replace("\"lash-v7", &format!("\"lash-{copy}"))
            .replace("lash-v7-", &format!("lash-{copy}-"));
    }
    let lines = text.lines().count() as u64;
    (text, lines)
}

fn read(c: &mut Criterion) {
    let (text, lines) = trace();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("json_parse_baseline", |b| {
        b.iter(|| {
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .fold(0, |fields, v| fields + v.as_object().map_or(0, |o| o.len()))
        })
    });
    group.bench_function("lash_read", |b| {
        b.iter(|| {
            let import = sonde_lash::read("bench.jsonl", text.as_bytes()).unwrap();
            assert!(import.problems.is_empty());
            import.records.len()
        })
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
