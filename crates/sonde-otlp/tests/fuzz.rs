//! The OTLP decoders take any bytes without panicking: arbitrary bytes, and valid
//! requests (protobuf and JSON) cut short or with bytes changed. Whatever decodes maps
//! to records without panicking either.
//!
//! A property test: `PROPTEST_CASES` sets how many cases each property runs (256 by
//! default; CI's long run sets more). Failures are kept beside this file
//! (`fuzz.proptest-regressions`) and run again first.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::json;

/// A valid OTLP/JSON request with the attribute shapes the mapping reads.
fn valid_json() -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "0000000000000001",
            "parentSpanId": "0000000000000002",
            "name": "chat gpt-5",
            "kind": 3,
            "startTimeUnixNano": "1763789160000000000",
            "endTimeUnixNano": "1763789161000000000",
            "status": {"code": 2, "message": "boom"},
            "events": [{"name": "gen_ai.content.prompt", "timeUnixNano": "1763789160000000000",
                        "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": "[{\"role\":\"user\"}]"}}]}],
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
                {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.5}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\":\"user\",\"parts\":[]}]"}},
                {"key": "gen_ai.tool.name", "value": {"arrayValue": {"values": [{"boolValue": true}]}}},
                {"key": "sonde.records", "value": {"kvlistValue": {"values": [{"key": "a", "value": {"bytesValue": "AAEC"}}]}}}
            ]
        }]}]
    }]})
    .to_string()
}

/// A valid OTLP/protobuf request: the JSON request's records, as Sonde's exporter sends
/// them.
fn valid_protobuf() -> Vec<u8> {
    use prost::Message;
    let decoded = sonde_otlp::decode_json(&valid_json()).unwrap();
    let records: Vec<_> = decoded
        .spans
        .into_iter()
        .flat_map(sonde_otlp::span_to_records)
        .collect();
    assert!(!records.is_empty());
    sonde_otlp::export_request(&records, "agent").encode_to_vec()
}

/// Maps whatever decoded, as the server does.
fn map(decoded: sonde_otlp::Decoded) {
    for span in decoded.spans {
        for record in sonde_otlp::span_to_records(span) {
            let _ = record.to_json_line();
        }
    }
}

/// `bytes` with `edits` applied: (position, new byte), positions taken modulo the length.
fn edited(mut bytes: Vec<u8>, cut: Option<usize>, edits: &[(usize, u8)]) -> Vec<u8> {
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    let len = bytes.len();
    for (at, byte) in edits {
        if len > 0 {
            bytes[at % len] = *byte;
        }
    }
    bytes
}

/// `text` with its `nth` run of digits (modulo how many there are) replaced by `number`.
fn with_number(text: &str, nth: usize, number: &str) -> String {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    let (start, end) = runs[nth % runs.len()];
    format!("{}{number}{}", &text[..start], &text[end..])
}

proptest! {
    #[test]
    fn extreme_numbers_never_panic_the_decoders_or_the_mapping(
        nth in any::<usize>(),
        number in prop::sample::select(vec![
            "18446744073709551615", "9223372036854775808", "99999999999999999999999",
            "0", "1e308", "1e400", "-0",
        ]),
    ) {
        let text = with_number(&valid_json(), nth, number);
        if let Ok(decoded) = sonde_otlp::decode_json(&text) {
            map(decoded);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_protobuf_decoder(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(decoded) = sonde_otlp::decode_protobuf(&bytes) {
            map(decoded);
        }
    }

    #[test]
    fn damaged_protobuf_requests_never_panic(
        cut in proptest::option::of(any::<usize>()),
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
    ) {
        let bytes = edited(valid_protobuf(), cut, &edits);
        if let Ok(decoded) = sonde_otlp::decode_protobuf(&bytes) {
            map(decoded);
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_json_decoder(text in "\\PC{0,512}") {
        if let Ok(decoded) = sonde_otlp::decode_json(&text) {
            map(decoded);
        }
    }

    #[test]
    fn damaged_json_requests_never_panic(
        cut in proptest::option::of(any::<usize>()),
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(b"{}[]\":,0-9.eE-tfn \\".to_vec())), 0..8),
    ) {
        let bytes = edited(valid_json().into_bytes(), cut, &edits);
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(decoded) = sonde_otlp::decode_json(text)
        {
            map(decoded);
        }
    }
}
