//! `sonde serve` stays available under hostile queries and clients, and when its store
//! goes away: a runaway SQL statement is stopped and holds up nothing else, an answer
//! over the cap is refused naming it, slow clients are cut off and cannot hold every
//! connection, and a store that cannot be reached is 503 with `Retry-After` (never
//! 401) while keys it confirmed before keep being accepted into the spool.
//!
//! Every case runs the real `sonde` binary and talks to it over TCP.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{self, Reply};
use common::{create_key, serve};

/// A statement that never ends by itself.
const RUNAWAY: &str = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) \
                       SELECT count(*) FROM r";

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn post_query(addr: &str, secret: &str, sql: &str) -> Reply {
    let auth = bearer(secret);
    http::request(
        addr,
        "POST",
        "/api/v1/query",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        serde_json::json!({"sql": sql}).to_string().as_bytes(),
    )
}

fn post_spans(addr: &str, authorization: Option<&str>, session: &str, span_id: &str) -> Reply {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    http::request(
        addr,
        "POST",
        "/v1/traces",
        &headers,
        http::otlp_json(session, span_id).as_bytes(),
    )
}

#[test]
fn runaway_queries_hold_up_neither_keyed_ingest_nor_the_api_and_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let admin = create_key(&db, true);
    let tenant = create_key(&db, false);
    let (_server, addr, _) = serve(&db, &["--statement-timeout", "4s"]);

    let runaways: Vec<_> = (0..2)
        .map(|_| {
            let (addr, admin) = (addr.clone(), admin.clone());
            std::thread::spawn(move || post_query(&addr, &admin, RUNAWAY))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let sent = post_spans(
        &addr,
        Some(&bearer(&tenant)),
        "during-runaway",
        "0102030405060708",
    );
    assert_eq!(sent.status, 200, "{}", sent.text());
    let listed = http::get(&addr, "/api/v1/sessions", Some(&tenant));
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(
        runaways.iter().all(|r| !r.is_finished()),
        "the runaway queries were answered before the others: nothing was shown"
    );

    for runaway in runaways {
        let reply = runaway.join().unwrap();
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(
            reply.json(),
            serde_json::json!({
                "error": "query stopped: it ran longer than the 4000 ms statement timeout",
                "code": "query_timeout",
            })
        );
    }
}

#[test]
fn query_answers_over_the_row_cap_are_refused_naming_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let admin = create_key(&db, true);
    let (_server, addr, _) = serve(&db, &["--max-result-rows", "10"]);
    let ten = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) \
               SELECT n FROM r";
    let reply = post_query(&addr, &admin, ten);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().as_array().unwrap().len(), 10);

    let reply = post_query(&addr, &admin, &ten.replace("n < 10", "n < 11"));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "error": "the result is over the 10-row limit: add a LIMIT or select fewer columns",
            "code": "result_too_large",
        })
    );
}

/// Reads what the server sends on `stream` until it closes the connection; fails when
/// it is still open after [`http::ANSWER_WAIT`].
fn read_until_closed(mut stream: TcpStream, what: &str) -> Vec<u8> {
    stream.set_read_timeout(Some(http::ANSWER_WAIT)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("{what}: the server kept the connection open ({e})"),
    }
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (_server, addr, grpc) = serve(
        &db,
        &[
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-connections",
            "3",
        ],
    );

    // Three slow-header clients hold every connection the server allows...
    let slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // ...so a fourth client waits until the header timeout frees one: it is answered.
    let waiting = {
        let addr = addr.clone();
        std::thread::spawn(move || http::request(&addr, "GET", "/healthz", &[], b""))
    };
    for stream in slow {
        read_until_closed(stream, "slow headers");
    }
    let reply = waiting.join().unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok\n"));

    // A body that stops arriving is cut off at the body timeout.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"resourceSpans\"",
        )
        .unwrap();
    let answer = read_until_closed(stream, "a stalled body");
    if let Some(reply) = http::parse(&answer) {
        assert!(reply.status >= 400, "{}", reply.text());
    }

    // On OTLP/gRPC, a client that connects and never sends the HTTP/2 preface is let go
    // too (it would hold one of the connections the limit allows).
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&grpc).unwrap()).collect();
    for stream in silent {
        read_until_closed(stream, "a silent gRPC client");
    }

    // An idle keep-alive connection is closed after the header timeout too.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(stream, "an idle keep-alive connection");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

#[test]
fn a_store_that_cannot_be_reached_is_503_with_retry_after_and_known_keys_keep_sending() {
    let pg = sonde_pgtest::PgServer::running();
    let db = pg.fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let known = create_key(&db, false);
    let (_server, addr, _) = serve(&db, &[]);
    let reply = post_spans(&addr, Some(&bearer(&known)), "before", "0102030405060701");
    assert_eq!(reply.status, 200, "{}", reply.text());

    pg.stop_immediate().unwrap();

    let reply = post_spans(&addr, Some(&bearer(&known)), "during", "0102030405060702");
    assert_eq!(
        reply.status,
        200,
        "a known key while the store is down: {}",
        reply.text()
    );

    let unknown = "sk-never-confirmed";
    for (what, authorization) in [
        ("a key never confirmed", Some(bearer(unknown))),
        ("no key", None),
    ] {
        let reply = post_spans(
            &addr,
            authorization.as_deref(),
            "refused",
            "0102030405060703",
        );
        assert_eq!(reply.status, 503, "{what}: {}", reply.text());
        assert_eq!(
            reply.header("retry-after").as_deref(),
            Some("5"),
            "{what}: {}",
            reply.head
        );
        let secret = authorization.as_ref().map(|_| unknown);
        let api = http::get(&addr, "/api/v1/sessions", secret);
        assert_eq!(api.status, 503, "{what}, the API: {}", api.text());
        assert_eq!(api.json()["code"], "store_unavailable", "{what}");
        assert_eq!(api.header("retry-after").as_deref(), Some("5"), "{what}");
    }

    pg.start_again().unwrap();
    let started = Instant::now();
    loop {
        let listed = http::get(&addr, "/api/v1/sessions", Some(&known));
        let ids: Vec<String> = if listed.status == 200 {
            listed.json()["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        } else {
            Vec::new()
        };
        if ids.contains(&"before".to_owned()) && ids.contains(&"during".to_owned()) {
            assert!(!ids.contains(&"refused".to_owned()), "{ids:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the spans sent while the store was down never reached it: {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
