//! Every error `sonde serve` answers is in one format: JSON `{"error": MESSAGE, "code":
//! CODE}` as `application/json` from the API (axum's own refusals and 405 included),
//! and OTLP's status body on `POST /v1/traces`, in the request's encoding. `Bearer` is
//! matched in any case.
//!
//! Every case runs the real `sonde` binary and talks to it over TCP.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::http;

/// `sonde serve` on `db`, and its OTLP/HTTP address.
fn serve(db: &str) -> (common::Served, String) {
    let (server, addr, _) = common::serve(db, &[]);
    (server, addr)
}

#[test]
fn every_api_error_is_json_with_an_error_and_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (_server, addr) = serve(&db);
    let json = [("Content-Type", "application/json")];
    /// What is asked (name, method, path, headers, body) and the answer (status, code).
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [u8],
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "a method the route does not take",
            "DELETE",
            "/api/v1/sessions",
            &[],
            b"",
            405,
            "method_not_allowed",
        ),
        (
            "GET on the OTLP route",
            "GET",
            "/v1/traces",
            &[],
            b"",
            405,
            "method_not_allowed",
        ),
        (
            "an unknown route",
            "GET",
            "/nope",
            &[],
            b"",
            404,
            "not_found",
        ),
        (
            "a limit that is not a number",
            "GET",
            "/api/v1/sessions?limit=many",
            &[],
            b"",
            400,
            "bad_parameter",
        ),
        (
            "a query body that is not JSON",
            "POST",
            "/api/v1/query",
            &json,
            b"{",
            400,
            "bad_body",
        ),
        (
            "a query without a content type",
            "POST",
            "/api/v1/query",
            &[],
            b"{\"sql\": \"SELECT 1\"}",
            400,
            "bad_body",
        ),
        (
            "a bad cursor",
            "GET",
            "/api/v1/sessions?cursor=nonsense",
            &[],
            b"",
            400,
            "invalid_cursor",
        ),
    ];
    for (what, method, path, headers, body, status, code) in cases {
        let reply = http::request(&addr, method, path, headers, body);
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json"),
            "{what}"
        );
        let value = reply.json();
        assert_eq!(value["code"], code, "{what}: {value}");
        let message = value["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {value}"));
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{what}: one line: {message:?}"
        );
    }
}

#[test]
fn otlp_errors_are_otlp_status_bodies_in_the_request_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (_server, addr) = serve(&db);
    let reply = http::request(
        &addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        b"{\"resourceSpans\": [",
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let status = reply.json();
    assert_eq!(status["code"], 3, "INVALID_ARGUMENT: {status}");
    assert!(
        status["message"].as_str().unwrap().contains("JSON"),
        "{status}"
    );

    let reply = http::request(
        &addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &[0xff, 0xff, 0xff, 0x01],
    );
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    // google.rpc.Status: field 1 (code) = 3, then field 2 (message).
    assert_eq!(&reply.body[..3], &[0x08, 0x03, 0x12], "{:?}", reply.body);
}

#[test]
fn bearer_is_matched_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let secret = common::create_key(&db, false);
    let (_server, addr) = serve(&db);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let authorization = format!("{scheme} {secret}");
        let reply = http::request(
            &addr,
            "GET",
            "/api/v1/sessions",
            &[("Authorization", &authorization)],
            b"",
        );
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text());
    }
    let reply = http::request(
        &addr,
        "GET",
        "/api/v1/sessions",
        &[("Authorization", "bearer not-a-key")],
        b"",
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["code"], "unauthorized");
}
