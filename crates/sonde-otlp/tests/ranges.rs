//! Values a span carries are stored exactly or refused, never changed: a negative,
//! fractional or too large token count, or a negative cost, rejects the span (OTLP's
//! partial success names the attribute), and the request's other spans are kept.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

/// An OTLP/JSON request with one chat span per entry: (span id, extra attribute).
fn request(spans: &[(&str, Value)]) -> String {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(id, extra)| {
            json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": id,
                "name": format!("chat {id}"),
                "startTimeUnixNano": "1763789160000000000",
                "endTimeUnixNano": "1763789161000000000",
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-5"}},
                    extra,
                ],
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

#[test]
fn out_of_range_values_reject_their_span_naming_the_attribute() {
    let body = request(&[
        (
            "0000000000000001",
            json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-5"}}),
        ),
        (
            "0000000000000002",
            json!({"key": "gen_ai.usage.output_tokens", "value": {"doubleValue": 2.5}}),
        ),
        (
            "0000000000000003",
            json!({"key": "gen_ai.usage.input_tokens", "value": {"stringValue": "18446744073709551615"}}),
        ),
        (
            "0000000000000004",
            json!({"key": "gen_ai.usage.cost", "value": {"doubleValue": -0.5}}),
        ),
        (
            "0000000000000005",
            json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9223372036854775807"}}),
        ),
    ]);
    let decoded = sonde_otlp::decode_json(&body).unwrap();
    let reasons: Vec<(String, String)> = decoded
        .rejected
        .iter()
        .map(|r| (r.name.clone(), r.reason.clone()))
        .collect();
    let max = i64::MAX;
    assert_eq!(
        reasons,
        vec![
            (
                "chat 0000000000000001".to_owned(),
                format!(
                    "gen_ai.usage.input_tokens: -5 is not a token count (a whole number from 0 to {max})"
                )
            ),
            (
                "chat 0000000000000002".to_owned(),
                format!(
                    "gen_ai.usage.output_tokens: 2.5 is not a token count (a whole number from 0 to {max})"
                )
            ),
            (
                "chat 0000000000000003".to_owned(),
                format!(
                    "gen_ai.usage.input_tokens: \"18446744073709551615\" is not a token count (a whole number from 0 to {max})"
                )
            ),
            (
                "chat 0000000000000004".to_owned(),
                "gen_ai.usage.cost: -0.5 is not a number from 0 up".to_owned()
            ),
        ]
    );
    assert_eq!(decoded.spans.len(), 1);
    let records: Vec<_> = decoded
        .spans
        .into_iter()
        .flat_map(sonde_otlp::span_to_records)
        .collect();
    let call = records
        .iter()
        .find_map(|r| match &r.body {
            sonde_model::Body::Event(sonde_model::Event::Llm(call)) => Some(call.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(call.input_tokens, i64::MAX as u64, "stored exactly");
}
