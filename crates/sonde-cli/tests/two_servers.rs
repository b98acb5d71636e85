//! More than one server (issue 17, item 13): two `sonde serve` processes over one
//! PostgreSQL database both ingest, and both answer reads with every record once — no
//! roll-up counted twice, no write lost.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::http;

/// Requests each server receives, of [`SPANS`] spans each.
const REQUESTS: usize = 25;
const SPANS: usize = 100;

#[test]
fn two_servers_over_one_postgres_both_ingest_and_answer_every_record_once() {
    let pg = sonde_pgtest::PgServer::running();
    let db = pg.fresh_database().unwrap();
    // Both start at once: migrations and the spool are shared and must not collide.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| common::serve(&db, &[]));
        let b = s.spawn(|| common::serve(&db, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (_a, addr_a, _) = a;
    let (_b, addr_b, _) = b;

    // Each server gets its own senders' spans, at the same time.
    std::thread::scope(|s| {
        for (sender, addr) in [&addr_a, &addr_b].into_iter().enumerate() {
            s.spawn(move || {
                for n in 0..REQUESTS {
                    let (body, _) = common::otlp_request(sender, n, SPANS);
                    let status = common::post(addr, "/v1/traces", "application/json", &body);
                    assert_eq!(status, 200, "server {sender}, request {n}");
                }
            });
        }
    });

    // Acknowledged means stored: both servers read every record, once, at once.
    let calls = (2 * REQUESTS * SPANS) as u64;
    for addr in [&addr_a, &addr_b] {
        let reply = http::request(addr, "GET", "/api/v1/stats/summary", &[], b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let summary = reply.json();
        assert_eq!(summary["calls"], calls, "{addr}: {summary}");
        assert_eq!(summary["output_tokens"], calls * 7, "{addr}: {summary}");
    }
    let stored = common::query_column(
        &db,
        "SELECT count(*)::text AS n FROM events WHERE event_type = 'llm'",
        "n",
    );
    assert_eq!(stored, [calls.to_string()]);
}
