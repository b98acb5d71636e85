//! The record vocabulary: every kind round-trips through JSON, tags are pinned, the
//! reader refuses what it cannot read, and the fold is lossless.
#![allow(missing_docs, clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use sonde_model::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_-]{0,12}", "\\PC{0,16}"]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1.0e12f64..1.0e12),
        Just(0.0),
        any::<i32>().prop_map(f64::from)
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        finite().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `Some(null)` reads back as `None` (JSON null is absence), so optional JSON is never null.
fn opt_json() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(json_value().prop_filter("null is absence", |v| !v.is_null()))
}

/// Message JSON as a value built in code, or kept as the text it arrived as.
fn opt_message_json() -> impl Strategy<Value = Option<Json>> {
    let value = json_value().prop_filter("null is absence", |v| !v.is_null());
    proptest::option::of((value, any::<bool>()).prop_map(|(value, as_text)| {
        if as_text {
            Json::from_text(&value.to_string()).unwrap_or_else(|| value.into())
        } else {
            value.into()
        }
    }))
}

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::btree_map(text(), json_value(), 0..3).prop_map(|m| m.into_iter().collect())
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Ok), Just(Status::Error)]
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Standard), Just(Level::Extended)]
}

fn llm_call() -> impl Strategy<Value = LlmCall> {
    (
        (opt_text(), opt_text(), text(), opt_text()),
        prop::array::uniform6(0u64..10_000_000),
        // Costs and times are never negative: a negative one is refused on reading.
        (
            proptest::option::of(finite().prop_map(f64::abs)),
            proptest::option::of(finite().prop_map(f64::abs)),
            proptest::option::of(finite().prop_map(f64::abs)),
        ),
        (status(), opt_text(), opt_text()),
        (opt_text(), opt_text(), proptest::option::of(100u16..600)),
        (opt_text(), opt_text()),
        prop::collection::vec((opt_message_json(), opt_message_json(), metadata()), 0..2),
        (opt_json(), metadata(), level()),
    )
        .prop_map(
            |(
                (system_instance_id, provider, model_name, operation),
                t,
                (cost_usd, latency_ms, time_to_first_token_ms),
                (status, error, stop_reason),
                (request_method, request_path, response_status),
                (api_key_hash, gateway_key_id),
                records,
                (state, metadata, level),
            )| LlmCall {
                system_instance_id,
                provider,
                model_name,
                operation,
                input_tokens: t[0],
                output_tokens: t[1],
                cache_read_tokens: t[2],
                cache_write_tokens: t[3],
                cache_write_1h_tokens: t[4],
                reasoning_tokens: t[5],
                cost_usd,
                latency_ms,
                time_to_first_token_ms,
                status,
                error,
                stop_reason,
                request_method,
                request_path,
                response_status,
                api_key_hash,
                gateway_key_id,
                call_records: records
                    .into_iter()
                    .map(|(request, response, metadata)| LlmCallRecord {
                        request,
                        response,
                        metadata,
                    })
                    .collect(),
                system_state_before: state.clone(),
                system_state_after: state,
                level,
                metadata,
                event_metadata: vec![],
            },
        )
}

fn runtime_action() -> impl Strategy<Value = RuntimeAction> {
    (
        opt_text(),
        prop::collection::vec(json_value(), 0..3),
        (opt_text(), opt_text()),
        (opt_json(), opt_json()),
        (
            status(),
            opt_text(),
            proptest::option::of(finite()),
            level(),
        ),
        metadata(),
        prop::collection::vec(json_value(), 0..2),
    )
        .prop_map(
            |(
                system_instance_id,
                actions,
                (tool_name, tool_call_id),
                (arguments, result),
                (status, error, duration_ms, level),
                metadata,
                event_metadata,
            )| RuntimeAction {
                system_instance_id,
                actions,
                tool_name,
                tool_call_id,
                arguments,
                result,
                status,
                error,
                duration_ms,
                level,
                metadata,
                event_metadata,
            },
        )
}

fn environment() -> impl Strategy<Value = EnvironmentFeedback> {
    (
        opt_text(),
        proptest::option::of(finite()),
        any::<bool>(),
        any::<bool>(),
        opt_json(),
        opt_json(),
        (metadata(), level()),
    )
        .prop_map(
            |(
                system_instance_id,
                reward,
                terminated,
                truncated,
                before,
                after,
                (metadata, level),
            )| {
                EnvironmentFeedback {
                    system_instance_id,
                    reward,
                    terminated,
                    truncated,
                    system_state_before: before,
                    system_state_after: after,
                    level,
                    metadata,
                    event_metadata: vec![],
                }
            },
        )
}

fn custom() -> impl Strategy<Value = CustomEvent> {
    (opt_text(), text(), json_value(), metadata(), level()).prop_map(
        |(system_instance_id, name, data, metadata, level)| CustomEvent {
            system_instance_id,
            name,
            data,
            level,
            metadata,
            event_metadata: vec![],
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (
        (opt_text(), opt_json()),
        text(),
        prop::array::uniform7(opt_text()),
        proptest::option::of(any::<i64>()),
        metadata(),
    )
        .prop_map(|((text, json), message_type, r, message_time, metadata)| {
            let [
                from_role,
                to_role,
                from_id,
                to_id,
                boundary_type,
                call_id,
                causal,
            ] = r;
            Message {
                content: MessageContent { text, json },
                message_type,
                from_role,
                to_role,
                from_system_instance_id: from_id,
                to_system_instance_id: to_id,
                boundary_type,
                call_id,
                causal_influence: causal,
                message_time,
                metadata,
            }
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (metadata(), prop::collection::vec(json_value(), 0..2)).prop_map(|(metadata, extra)| {
            Body::SessionStarted(SessionStarted {
                metadata,
                session_metadata: extra,
            })
        }),
        metadata().prop_map(|metadata| Body::SessionEnded(SessionEnded { metadata })),
        (any::<u32>(), proptest::option::of(any::<i64>()), metadata()).prop_map(
            |(step_index, turn_number, metadata)| Body::StepStarted(StepStarted {
                step_index,
                turn_number,
                metadata
            })
        ),
        metadata().prop_map(|metadata| Body::StepEnded(StepEnded { metadata })),
        llm_call().prop_map(|e| Body::Event(Event::Llm(e))),
        runtime_action().prop_map(|e| Body::Event(Event::Runtime(e))),
        environment().prop_map(|e| Body::Event(Event::Environment(e))),
        custom().prop_map(|e| Body::Event(Event::Custom(e))),
        (
            opt_text(),
            text(),
            opt_text(),
            opt_json(),
            level(),
            metadata()
        )
            .prop_map(
                |(system_instance_id, tool_name, tool_call_id, arguments, level, metadata)| {
                    Body::Event(Event::ToolCallStarted(ToolCallStarted {
                        system_instance_id,
                        tool_name,
                        tool_call_id,
                        arguments,
                        level,
                        metadata,
                    }))
                }
            ),
        (
            opt_text(),
            opt_text(),
            proptest::option::of(any::<u64>()),
            prop::collection::vec(json_value(), 0..3),
            level(),
            metadata()
        )
            .prop_map(
                |(system_instance_id, prompt_hash, prompt_chars, components, level, metadata)| {
                    Body::Event(Event::PromptBuilt(PromptBuilt {
                        system_instance_id,
                        prompt_hash,
                        prompt_chars,
                        components,
                        level,
                        metadata,
                    }))
                }
            ),
        (
            (opt_text(), text(), text()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(finite().prop_map(f64::abs)),
            json_value(),
            level(),
            metadata()
        )
            .prop_map(
                |(
                    (system_instance_id, source, name),
                    sequence,
                    elapsed_ms,
                    data,
                    level,
                    metadata,
                )| {
                    Body::Event(Event::Stream(StreamEvent {
                        system_instance_id,
                        source,
                        name,
                        sequence,
                        elapsed_ms,
                        data,
                        level,
                        metadata,
                    }))
                }
            ),
        message().prop_map(Body::Message),
        (
            text(),
            finite(),
            prop::collection::vec(text(), 0..3),
            proptest::option::of(any::<u64>()),
            opt_json(),
            metadata()
        )
            .prop_map(
                |(objective_key, total_reward, achievements, total_steps, annotation, metadata)| {
                    Body::OutcomeReward(OutcomeReward {
                        objective_key,
                        total_reward,
                        achievements,
                        total_steps,
                        annotation,
                        metadata,
                    })
                }
            ),
        (
            text(),
            finite(),
            opt_text(),
            opt_text(),
            opt_json(),
            opt_text()
        )
            .prop_map(|(event_id, value, reward_type, key, annotation, source)| {
                Body::EventReward(EventReward {
                    event_id,
                    value,
                    reward_type,
                    key,
                    annotation,
                    source,
                })
            }),
    ]
}

fn context() -> impl Strategy<Value = Context> {
    ("[a-z0-9-]{1,12}", prop::array::uniform6(opt_text())).prop_map(|(session_id, o)| {
        let [step_id, org, workspace, trace_id, span_id, parent_span_id] = o;
        Context {
            session_id,
            step_id,
            org,
            workspace,
            trace_id,
            span_id,
            parent_span_id,
        }
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        "[a-z0-9-]{1,36}",
        -4_000_000_000_000_000i64..4_000_000_000_000_000,
        context(),
        body(),
    )
        .prop_map(|(id, micros, context, body)| Record {
            id,
            timestamp: Timestamp::from_micros(micros),
            context,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_kind_round_trips_through_a_json_line(record in record()) {
        let line = record.to_json_line();
        prop_assert!(!line.contains('\n'));
        let back = Record::from_json_line(&line).unwrap();
        prop_assert_eq!(&back, &record);
        // and serde's own entry points agree with the line functions
        let via_serde: Record = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        prop_assert_eq!(via_serde, record);
    }

    #[test]
    fn payload_json_and_kind_rebuild_the_body(record in record()) {
        let body = Body::from_kind_and_payload(record.kind(), &record.body.payload_json()).unwrap();
        prop_assert_eq!(body, record.body);
    }

    #[test]
    fn the_fold_is_lossless_and_ignores_duplicates(records in prop::collection::vec(record(), 0..30)) {
        let mut unique = std::collections::HashMap::new();
        for r in &records {
            unique.entry(r.id.clone()).or_insert_with(|| r.clone());
        }
        let doubled: Vec<Record> = records.iter().chain(records.iter()).cloned().collect();
        let sessions = SessionTrace::from_records(doubled);
        let mut back: Vec<Record> = sessions.iter().flat_map(|s| s.to_records()).collect();
        // Lifecycle records beyond the first of their kind in a session/step are dropped
        // by design; every other record survives.
        let mut expected: Vec<Record> = SessionTrace::from_records(unique.into_values())
            .iter()
            .flat_map(|s| s.to_records())
            .collect();
        back.sort_by(|a, b| a.id.cmp(&b.id));
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        prop_assert_eq!(back, expected);
    }
}

#[test]
fn kind_tags_are_pinned() {
    let tags: Vec<&str> = [
        Body::SessionStarted(SessionStarted::default()),
        Body::SessionEnded(SessionEnded::default()),
        Body::StepStarted(StepStarted::default()),
        Body::StepEnded(StepEnded::default()),
        Body::Event(Event::Llm(LlmCall::default())),
        Body::Event(Event::Runtime(RuntimeAction::default())),
        Body::Event(Event::Environment(EnvironmentFeedback::default())),
        Body::Event(Event::Custom(CustomEvent::default())),
        Body::Message(Message::default()),
        Body::OutcomeReward(OutcomeReward::default()),
        Body::EventReward(EventReward::default()),
        Body::Event(Event::ToolCallStarted(ToolCallStarted::default())),
        Body::Event(Event::PromptBuilt(PromptBuilt::default())),
        Body::Event(Event::Stream(StreamEvent::default())),
    ]
    .iter()
    .map(Body::kind)
    .collect();
    assert_eq!(
        tags,
        [
            "session_started",
            "session_ended",
            "step_started",
            "step_ended",
            "llm_call",
            "runtime_event",
            "environment_event",
            "custom_event",
            "message",
            "outcome_reward",
            "event_reward",
            "tool_call_started",
            "prompt_built",
            "stream_event"
        ]
    );
    assert_eq!(tags, RECORD_KINDS);
}

#[test]
fn the_wire_format_of_a_level_and_the_tool_call_start_prompt_and_stream_kinds_is_pinned() {
    let at = "2026-11-22T05:26:00Z".parse::<Timestamp>().unwrap();
    let record = |id: &str, event: Event| Record {
        id: id.into(),
        timestamp: at,
        context: Context::session("s-1").with_step("turn-1"),
        body: Body::Event(event),
    };
    let cases = [
        (
            record(
                "a",
                Event::ToolCallStarted(ToolCallStarted {
                    tool_name: "read_file".into(),
                    tool_call_id: Some("call-1".into()),
                    arguments: Some(json!({"path": "README.md"})),
                    ..Default::default()
                }),
            ),
            json!({"kind": "tool_call_started", "payload": {
                "tool_name": "read_file", "tool_call_id": "call-1",
                "arguments": {"path": "README.md"}}}),
        ),
        (
            record(
                "b",
                Event::PromptBuilt(PromptBuilt {
                    prompt_hash: Some("cd01".into()),
                    prompt_chars: Some(5120),
                    components: vec![json!({"id": "system", "chars": 4096})],
                    ..Default::default()
                }),
            ),
            json!({"kind": "prompt_built", "payload": {
                "prompt_hash": "cd01", "prompt_chars": 5120,
                "components": [{"id": "system", "chars": 4096}]}}),
        ),
        (
            record(
                "c",
                Event::Stream(StreamEvent {
                    source: "provider".into(),
                    name: "content_block_delta".into(),
                    sequence: Some(2),
                    elapsed_ms: Some(180.0),
                    data: json!({"type": "content_block_delta"}),
                    level: Level::Extended,
                    ..Default::default()
                }),
            ),
            json!({"kind": "stream_event", "payload": {
                "source": "provider", "name": "content_block_delta", "sequence": 2,
                "elapsed_ms": 180.0, "data": {"type": "content_block_delta"},
                "level": "extended"}}),
        ),
        (
            record(
                "d",
                Event::Custom(CustomEvent {
                    name: "lash.protocol_step".into(),
                    level: Level::Extended,
                    ..Default::default()
                }),
            ),
            json!({"kind": "custom_event", "payload": {
                "name": "lash.protocol_step", "level": "extended"}}),
        ),
    ];
    for (record, kind_and_payload) in cases {
        let Body::Event(event) = &record.body else {
            unreachable!()
        };
        // the events.event_type column is the event's own `type` tag
        assert_eq!(
            serde_json::to_value(event).unwrap()["type"],
            event.event_type(),
            "{}",
            event.kind()
        );
        let mut want = json!({
            "schema_version": 1,
            "id": record.id,
            "timestamp": "2026-11-22T05:26:00.000000Z",
            "context": {"session_id": "s-1", "step_id": "turn-1"},
        });
        for (key, value) in kind_and_payload.as_object().unwrap() {
            want[key] = value.clone();
        }
        let line = record.to_json_line();
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), want);
        assert_eq!(Record::from_json_line(&line).unwrap(), record);
    }
}

#[test]
fn records_written_before_levels_read_as_standard() {
    let line = r#"{"schema_version":1,"id":"r1","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"runtime_event","payload":{"tool_name":"Read"}}"#;
    let record = Record::from_json_line(line).unwrap();
    let Body::Event(event) = &record.body else {
        panic!("not an event")
    };
    assert_eq!(event.level(), Level::Standard);
    assert_eq!(
        record.to_json_line(),
        line.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000000Z")
    );
    let bad = r#"{"schema_version":1,"id":"r1","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"stream_event","payload":{"level":"loud"}}"#;
    let err = Record::from_json_line(bad).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid field `payload.level`: unknown variant `loud`"),
        "{err}"
    );
}

#[test]
fn the_wire_format_of_an_llm_call_is_pinned() {
    let record = Record {
        id: "0193".into(),
        timestamp: "2026-11-22T05:26:00Z".parse().unwrap(),
        context: Context::session("s-1").with_step("turn-1"),
        body: Body::Event(Event::Llm(LlmCall {
            provider: Some("anthropic".into()),
            model_name: "claude-sonnet-4-5".into(),
            input_tokens: 10,
            output_tokens: 20,
            cache_read_tokens: 30,
            latency_ms: Some(12.5),
            ..Default::default()
        })),
    };
    assert_eq!(
        serde_json::from_str::<Value>(&record.to_json_line()).unwrap(),
        json!({
            "schema_version": 1,
            "id": "0193",
            "timestamp": "2026-11-22T05:26:00.000000Z",
            "context": {"session_id": "s-1", "step_id": "turn-1"},
            "kind": "llm_call",
            "payload": {
                "provider": "anthropic",
                "model_name": "claude-sonnet-4-5",
                "input_tokens": 10,
                "output_tokens": 20,
                "cache_read_tokens": 30,
                "latency_ms": 12.5
            }
        })
    );
}

#[test]
fn an_unknown_version_is_refused_naming_both_versions() {
    let line = r#"{"schema_version":2,"id":"x","kind":"brand_new","context":"whatever"}"#;
    let err = Record::from_json_line(line).unwrap_err();
    assert_eq!(
        err,
        ParseError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "unsupported schema_version 2: this sonde reads version 1"
    );
}

#[test]
fn errors_name_the_field_at_fault() {
    let line = r#"{"schema_version":1,"id":"x","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"llm_call","payload":{"model_name":"m","input_tokens":"many"}}"#;
    let err = Record::from_json_line(line).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid field `payload.input_tokens`"),
        "{err}"
    );

    let line = r#"{"schema_version":1,"id":"x","timestamp":"soon","context":{"session_id":"s"},"kind":"message"}"#;
    let err = Record::from_json_line(line).unwrap_err().to_string();
    assert!(err.starts_with("invalid field `timestamp`"), "{err}");

    let line = r#"{"schema_version":1,"id":"x","timestamp":"2026-01-01T00:00:00Z","context":{},"kind":"message"}"#;
    assert_eq!(
        Record::from_json_line(line).unwrap_err(),
        ParseError::MissingField("context.session_id")
    );

    let line = r#"{"schema_version":1,"id":"x","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"mystery"}"#;
    assert_eq!(
        Record::from_json_line(line).unwrap_err().to_string(),
        "unknown kind \"mystery\""
    );
    assert!(matches!(
        Record::from_json_line("{not json").unwrap_err(),
        ParseError::Json(_)
    ));
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let line = r#"{"schema_version":1,"id":"x","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s","future":1},"kind":"custom_event","payload":{"name":"n","added_later":true},"also_new":[]}"#;
    let record = Record::from_json_line(line).unwrap();
    assert_eq!(record.kind(), "custom_event");
}

#[test]
fn a_sessions_records_start_with_its_start_even_when_it_is_dated_later() {
    let ctx = Context::session("s");
    let record = |id: &str, micros: i64, body: Body| Record {
        id: id.into(),
        timestamp: Timestamp::from_micros(micros),
        context: ctx.clone(),
        body,
    };
    let records = vec![
        record("b-call", 1, Body::Event(Event::Llm(LlmCall::default()))),
        record(
            "a-start",
            5,
            Body::SessionStarted(SessionStarted {
                metadata: Metadata::new(),
                session_metadata: vec![],
            }),
        ),
        record("c-later", 9, Body::Event(Event::Llm(LlmCall::default()))),
    ];
    let session = SessionTrace::from_records(records).remove(0);
    let ids: Vec<String> = session.to_records().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["a-start", "b-call", "c-later"]);
}

#[test]
fn values_the_stores_cannot_keep_exactly_are_refused_naming_the_field() {
    let line = |timestamp: &str, payload: &str| {
        format!(
            r#"{{"schema_version":1,"id":"r","timestamp":{timestamp},"context":{{"session_id":"s"}},"kind":"llm_call","payload":{payload}}}"#
        )
    };
    let ok = r#""2026-01-01T00:00:00Z""#;
    for (timestamp, payload, expected) in [
        (
            ok,
            r#"{"model_name":"m","input_tokens":9223372036854775808}"#,
            "invalid field `payload.input_tokens`: 9223372036854775808 is above the largest count stored, 9223372036854775807",
        ),
        (
            ok,
            r#"{"model_name":"m","cost_usd":-0.01}"#,
            "invalid field `payload.cost_usd`: -0.01 is negative",
        ),
        (
            ok,
            r#"{"model_name":"m","latency_ms":-3}"#,
            "invalid field `payload.latency_ms`: -3 is negative",
        ),
        (
            "253402300800",
            r#"{"model_name":"m"}"#,
            "invalid field `timestamp`: timestamp out of range: expected a time from year 0001 to 9999 at line 1 column 12",
        ),
    ] {
        let err = Record::from_json_line(&line(timestamp, payload)).unwrap_err();
        assert_eq!(err.to_string(), expected, "{payload}");
    }
    // At the edges, values are kept exactly.
    let max = Record::from_json_line(&line(
        "253402300799",
        r#"{"model_name":"m","input_tokens":9223372036854775807,"cost_usd":0}"#,
    ))
    .unwrap();
    assert_eq!(max.timestamp.to_string(), "9999-12-31T23:59:59.000000Z");
    let again = Record::from_json_line(&max.to_json_line()).unwrap();
    assert_eq!(again, max);
}

// The import reader's fuzzing: any text, and record lines cut short or with bytes
// changed, are read or refused with an error, never a panic. `PROPTEST_CASES` sets
// how many cases run (CI's long run sets more).
proptest! {
    #[test]
    fn the_line_reader_never_panics_on_arbitrary_text(text in "\\PC{0,512}") {
        let _ = Record::from_json_line(&text);
    }

    #[test]
    fn the_line_reader_never_panics_on_damaged_lines(
        record in record(),
        cut in proptest::option::of(any::<usize>()),
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(b"{}[]\":,0-9.eE-tfn \\".to_vec())), 0..6),
    ) {
        let mut line = record.to_json_line().into_bytes();
        if let Some(cut) = cut {
            line.truncate(cut % (line.len() + 1));
        }
        let len = line.len();
        for (at, byte) in edits {
            if len > 0 {
                line[at % len] = byte;
            }
        }
        if let Ok(text) = std::str::from_utf8(&line) {
            let _ = Record::from_json_line(text);
        }
    }
}
