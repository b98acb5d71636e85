//! The conformance suite: every backend must pass every case here, with the same
//! assertions. A new backend gets all of it with one `conformance!` line at the bottom.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;
use sonde_model::*;
use sonde_store::*;

/// A store under test, and whatever must live as long as it.
pub struct Fixture {
    pub store: Arc<dyn TraceStore>,
    _guard: Box<dyn Send>,
}

fn at(micros: i64) -> Timestamp {
    // 2026-01-01T00:00:00Z plus `micros`.
    Timestamp::from_micros(1_767_225_600_000_000 + micros)
}

fn rec(id: &str, ts: i64, ctx: &Context, body: Body) -> Record {
    Record {
        id: id.to_owned(),
        timestamp: at(ts),
        context: ctx.clone(),
        body,
    }
}

/// A session with every kind of record: two steps, an LLM call per step, a tool call,
/// environment feedback, a custom event, messages both ways and both rewards.
fn full_session(session_id: &str, start: i64, model: &str, ctx: Context) -> Vec<Record> {
    let ctx = Context {
        session_id: session_id.to_owned(),
        ..ctx
    };
    let step1 = ctx.clone().with_step("turn-1");
    let step2 = ctx.clone().with_step("turn-2");
    let p = |n: &str| format!("{session_id}-{n}");
    let mut meta = Metadata::new();
    meta.insert("user_id".into(), json!("u-42"));
    meta.insert("experiment".into(), json!(7));
    let llm = |tokens: u64, cost: f64| {
        Body::Event(Event::Llm(LlmCall {
            provider: Some("anthropic".into()),
            model_name: model.to_owned(),
            input_tokens: tokens,
            output_tokens: tokens / 2,
            cache_read_tokens: 1000,
            cache_write_tokens: 10,
            reasoning_tokens: 3,
            cost_usd: Some(cost),
            latency_ms: Some(1234.5),
            time_to_first_token_ms: Some(200.0),
            stop_reason: Some("end_turn".into()),
            call_records: vec![LlmCallRecord {
                // As OTLP ingest keeps messages: the text they came as.
                request: Json::from_text(r#"{ "messages": [{"role": "user", "content": "hi"}] }"#),
                response: Some(json!({"content": "hello"}).into()),
                metadata: Metadata::new(),
            }],
            ..Default::default()
        }))
    };
    vec![
        rec(
            &p("start"),
            start,
            &ctx,
            Body::SessionStarted(SessionStarted {
                metadata: meta,
                session_metadata: vec![],
            }),
        ),
        rec(
            &p("s1"),
            start + 1,
            &step1,
            Body::StepStarted(StepStarted {
                step_index: 0,
                turn_number: Some(1),
                metadata: Metadata::new(),
            }),
        ),
        rec(
            &p("m1"),
            start + 2,
            &step1,
            Body::Message(Message {
                content: MessageContent::text("fix the test"),
                message_type: "user_prompt".into(),
                from_role: Some("human".into()),
                to_role: Some("agent".into()),
                ..Default::default()
            }),
        ),
        rec(&p("llm1"), start + 3, &step1, llm(100, 0.01)),
        rec(
            &p("tool1"),
            start + 4,
            &step1,
            Body::Event(Event::Runtime(RuntimeAction {
                tool_name: Some("Bash".into()),
                tool_call_id: Some("toolu_1".into()),
                arguments: Some(json!({"command": "cargo test"})),
                result: Some(json!("1 failed")),
                status: Status::Error,
                error: Some("exit 101".into()),
                duration_ms: Some(5000.0),
                ..Default::default()
            })),
        ),
        rec(
            &p("env1"),
            start + 5,
            &step1,
            Body::Event(Event::Environment(EnvironmentFeedback {
                reward: Some(-1.0),
                system_state_after: Some(json!({"failing": 1})),
                ..Default::default()
            })),
        ),
        rec(
            &p("s1e"),
            start + 6,
            &step1,
            Body::StepEnded(StepEnded::default()),
        ),
        rec(
            &p("s2"),
            start + 7,
            &step2,
            Body::StepStarted(StepStarted {
                step_index: 1,
                turn_number: Some(2),
                metadata: Metadata::new(),
            }),
        ),
        rec(&p("llm2"), start + 8, &step2, llm(200, 0.02)),
        rec(
            &p("custom"),
            start + 9,
            &step2,
            Body::Event(Event::Custom(CustomEvent {
                name: "checkpoint".into(),
                data: json!({"n": 1}),
                ..Default::default()
            })),
        ),
        rec(
            &p("m2"),
            start + 10,
            &step2,
            Body::Message(Message {
                content: MessageContent {
                    text: Some("fixed".into()),
                    json: Some(json!({"files": 1})),
                },
                message_type: "assistant_reply".into(),
                from_role: Some("agent".into()),
                to_role: Some("human".into()),
                ..Default::default()
            }),
        ),
        rec(
            &p("er"),
            start + 11,
            &step2,
            Body::EventReward(EventReward {
                event_id: p("llm2"),
                value: 0.5,
                reward_type: Some("shaped".into()),
                source: Some("judge".into()),
                ..Default::default()
            }),
        ),
        rec(
            &p("s2e"),
            start + 12,
            &step2,
            Body::StepEnded(StepEnded::default()),
        ),
        rec(
            &p("or"),
            start + 13,
            &ctx,
            Body::OutcomeReward(OutcomeReward {
                total_reward: 1.0,
                achievements: vec!["green".into()],
                total_steps: Some(2),
                ..Default::default()
            }),
        ),
        rec(
            &p("end"),
            start + 14,
            &ctx,
            Body::SessionEnded(SessionEnded::default()),
        ),
    ]
}

fn folded(records: &[Record]) -> SessionTrace {
    SessionTrace::from_records(records.to_vec()).remove(0)
}

/// The session `id` as the store gives it back, whole.
async fn stored_trace(store: &dyn TraceStore, id: &str) -> SessionTrace {
    store.get_session(id, &Scope::All).await.unwrap().unwrap()
}

/// The first page of sessions, newest first, unfiltered.
async fn newest_sessions(store: &dyn TraceStore) -> Vec<SessionSummary> {
    store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap()
        .sessions
}

async fn count(store: &dyn TraceStore, table: &str, session_id: &str) -> i64 {
    let r = store
        .query(
            &format!("SELECT count(*) AS n FROM {table} WHERE session_id = ?1"),
            &[json!(session_id)],
        )
        .await
        .unwrap();
    r.rows[0][0].as_i64().unwrap()
}

pub async fn a_whole_session_round_trips(f: Fixture) {
    let records = full_session("s-1", 0, "claude-sonnet-4-5", Context::default());
    let outcome = f.store.write(&records).await.unwrap();
    assert_eq!(
        outcome,
        WriteOutcome {
            written: records.len(),
            duplicates: 0
        }
    );
    let session = stored_trace(f.store.as_ref(), "s-1").await;
    assert_eq!(session, folded(&records));
    assert_eq!(session.steps.len(), 2);
    assert_eq!(session.events.len(), 5);
    assert_eq!(session.messages.len(), 2);
    assert_eq!(session.to_records(), records);
    assert!(
        f.store
            .get_session("nope", &Scope::All)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn writing_a_record_twice_stores_it_once(f: Fixture) {
    let records = full_session("s-1", 0, "m", Context::default());
    f.store.write(&records).await.unwrap();
    let again = f.store.write(&records[3..6]).await.unwrap();
    assert_eq!(
        again,
        WriteOutcome {
            written: 0,
            duplicates: 3
        }
    );
    // Within one batch, too.
    let doubled = [records[0].clone(), records[0].clone()];
    assert_eq!(f.store.write(&doubled).await.unwrap().duplicates, 2);
    assert_eq!(
        stored_trace(f.store.as_ref(), "s-1").await,
        folded(&records)
    );
    let sessions = newest_sessions(f.store.as_ref()).await;
    assert_eq!(
        sessions[0].events, 5,
        "counters are not bumped by duplicates"
    );
    assert_eq!(sessions[0].llm_calls, 2);
    assert_eq!(sessions[0].total_tokens, 100 + 50 + 1010 + 200 + 100 + 1010);
    assert!((sessions[0].cost_usd.unwrap() - 0.03).abs() < 1e-12);
}

/// A batch holding stored records among new ones (in the same tables) stores the new
/// ones, counts the rest as duplicates, and counts each record once everywhere.
pub async fn a_batch_of_stored_and_new_records_stores_only_the_new(f: Fixture) {
    let records = full_session("s-1", 0, "m", Context::default());
    let first = f.store.write(&records[..4]).await.unwrap();
    let all = f.store.write(&records).await.unwrap();
    assert_eq!(
        all,
        WriteOutcome {
            written: records.len() - first.written,
            duplicates: first.written
        }
    );
    assert_eq!(
        stored_trace(f.store.as_ref(), "s-1").await,
        folded(&records)
    );
    let sessions = newest_sessions(f.store.as_ref()).await;
    assert_eq!(sessions[0].events, 5);
    assert_eq!(sessions[0].llm_calls, 2);
    let summary = f
        .store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(summary.calls, 2);
    let found = f
        .store
        .list_sessions(&SessionFilter {
            search: Some("hello".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.sessions.len(), 1);
}

pub async fn sessions_list_newest_first_with_filters(f: Fixture) {
    let hour = 3_600_000_000;
    f.store
        .write(&full_session("old", 0, "gpt-5", Context::default()))
        .await
        .unwrap();
    f.store
        .write(&full_session(
            "mid",
            hour,
            "claude-opus-4-1",
            Context::default(),
        ))
        .await
        .unwrap();
    let mut late = full_session("new", 2 * hour, "gpt-5", Context::default());
    if let Body::SessionStarted(s) = &mut late[0].body {
        s.metadata.insert("user_id".into(), json!("u-7"));
    }
    f.store.write(&late).await.unwrap();

    let ids = |page: SessionPage| {
        page.sessions
            .into_iter()
            .map(|s| s.session_id)
            .collect::<Vec<_>>()
    };
    let all = f
        .store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.sessions[0].models, vec!["gpt-5".to_owned()]);
    assert_eq!(all.sessions[0].metadata["user_id"], "u-7");
    assert_eq!(all.sessions[0].started_at, at(2 * hour));
    assert_eq!(all.sessions[0].ended_at, Some(at(2 * hour + 14)));
    assert_eq!(ids(all), ["new", "mid", "old"]);

    let filter = |f: SessionFilter| f;
    let by_model = f
        .store
        .list_sessions(&filter(SessionFilter {
            model: Some("gpt-5".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(ids(by_model), ["new", "old"]);
    let by_time = f
        .store
        .list_sessions(&SessionFilter {
            since: Some(at(hour)),
            until: Some(at(2 * hour)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(by_time), ["mid"]);
    let by_meta = f
        .store
        .list_sessions(&SessionFilter {
            metadata: vec![("user_id".into(), json!("u-42"))],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(by_meta), ["mid", "old"]);
    let by_number = f
        .store
        .list_sessions(&SessionFilter {
            metadata: vec![("experiment".into(), json!(7))],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_number.sessions.len(), 3);
    let none = f
        .store
        .list_sessions(&SessionFilter {
            model: Some("absent".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.sessions.is_empty());
}

pub async fn pages_cover_every_session_once_and_bad_cursors_are_refused(f: Fixture) {
    for i in 0..7 {
        // Two sessions share each start time, so the cursor must break ties by id.
        let records = full_session(&format!("s{i}"), (i / 2) * 1000, "m", Context::default());
        f.store.write(&records).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = f
            .store
            .list_sessions(&SessionFilter {
                limit: 3,
                cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.sessions.len() <= 3);
        seen.extend(page.sessions.into_iter().map(|s| s.session_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
    for bad in ["garbage!", "e30", ""] {
        let err = f
            .store
            .list_sessions(&SessionFilter {
                cursor: Some(bad.into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err, ReadError::InvalidCursor, "cursor {bad:?}");
    }
}

pub async fn deleting_a_session_removes_all_of_it_and_nothing_else(f: Fixture) {
    f.store
        .write(&full_session("doomed", 0, "m", Context::default()))
        .await
        .unwrap();
    let kept = full_session("kept", 10, "m", Context::default());
    f.store.write(&kept).await.unwrap();
    assert!(f.store.delete_session("doomed", &Scope::All).await.unwrap());
    assert!(
        f.store
            .get_session("doomed", &Scope::All)
            .await
            .unwrap()
            .is_none()
    );
    for table in [
        "events",
        "messages",
        "lifecycle",
        "outcome_rewards",
        "event_rewards",
        "steps",
        "sessions",
    ] {
        assert_eq!(count(f.store.as_ref(), table, "doomed").await, 0, "{table}");
    }
    assert!(!f.store.delete_session("doomed", &Scope::All).await.unwrap());
    assert_eq!(stored_trace(f.store.as_ref(), "kept").await, folded(&kept));
    // Once deleted, the same records can be written again.
    let again = f
        .store
        .write(&full_session("doomed", 0, "m", Context::default()))
        .await
        .unwrap();
    assert_eq!(again.duplicates, 0);
}

pub async fn queries_read_and_never_write(f: Fixture) {
    let records = full_session("s-1", 0, "gpt-5", Context::default());
    f.store.write(&records).await.unwrap();
    let r = f
        .store
        .query("SELECT model, sum(total_tokens) AS tokens FROM events WHERE event_type = ?1 GROUP BY model", &[json!("llm")])
        .await
        .unwrap();
    assert_eq!(r.columns, ["model", "tokens"]);
    assert_eq!(r.rows, vec![vec![json!("gpt-5"), json!(2470)]]);
    assert_eq!(r.to_objects()[0]["tokens"], 2470);

    for sql in [
        "DELETE FROM events",
        "delete from events",
        "UPDATE events SET model = 'x'",
        "DROP TABLE events",
        "INSERT INTO sessions (session_id, started_at, last_at) VALUES ('x', 0, 0)",
        "SELECT 1; DELETE FROM events",
        "WITH d AS (DELETE FROM events RETURNING id) SELECT * FROM d",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE 'other.db' AS other",
        "VACUUM",
        "CREATE TABLE t (x)",
    ] {
        let err = f.store.query(sql, &[]).await.unwrap_err();
        assert!(
            matches!(err, QueryError::NotReadOnly | QueryError::Sql(_)),
            "{sql}: {err:?}"
        );
    }
    assert_eq!(
        stored_trace(f.store.as_ref(), "s-1").await,
        folded(&records)
    );
    assert_eq!(count(f.store.as_ref(), "events", "s-1").await, 5);
    // Writing still works after refused statements.
    let more = full_session("s-2", 100, "m", Context::default());
    assert_eq!(f.store.write(&more).await.unwrap().written, more.len());

    let err = f
        .store
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Sql(_)));
    let err = f
        .store
        .query("SELECT ?1, ?2", &[json!(1)])
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Param { .. }), "{err:?}");
}

pub async fn tenants_see_only_their_own_sessions(f: Fixture) {
    let acme = Context::default().with_tenant("acme", "prod");
    let globex = Context::default().with_tenant("globex", "prod");
    f.store
        .write(&full_session("a", 0, "m", acme))
        .await
        .unwrap();
    f.store
        .write(&full_session("g", 10, "m", globex))
        .await
        .unwrap();
    let acme_scope = Scope::tenant("acme", "prod");
    assert!(
        f.store
            .get_session("a", &acme_scope)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        f.store
            .get_session("g", &acme_scope)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .get_session("g", &Scope::tenant("globex", "dev"))
            .await
            .unwrap()
            .is_none()
    );
    let page = f
        .store
        .list_sessions(&SessionFilter {
            scope: acme_scope.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.sessions
            .iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(page.sessions[0].org.as_deref(), Some("acme"));
    assert!(!f.store.delete_session("g", &acme_scope).await.unwrap());
    assert!(
        f.store
            .get_session("g", &Scope::All)
            .await
            .unwrap()
            .is_some()
    );
}

/// Issue 17 item 7: a tenant reusing another tenant's session and record ids writes
/// its own session, never into the other's, and neither write is dropped.
pub async fn two_tenants_with_the_same_ids_each_keep_their_own(f: Fixture) {
    let acme = Context::default().with_tenant("acme", "prod");
    let globex = Context::default().with_tenant("globex", "prod");
    let acme_records = full_session("s", 0, "acme-model", acme);
    let globex_records = full_session("s", 5, "globex-model", globex);
    assert_eq!(acme_records.len(), globex_records.len());
    let ids = |records: &[Record]| records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&acme_records),
        ids(&globex_records),
        "the same record ids"
    );
    let first = f.store.write(&acme_records).await.unwrap();
    let second = f.store.write(&globex_records).await.unwrap();
    assert_eq!(first.written, acme_records.len());
    assert_eq!(
        (second.written, second.duplicates),
        (globex_records.len(), 0),
        "the second tenant's records are stored, not taken for duplicates"
    );
    // Written again, each tenant's records are its duplicates.
    let again = f.store.write(&globex_records).await.unwrap();
    assert_eq!(again.duplicates, globex_records.len());

    for (scope, model) in [
        (Scope::tenant("acme", "prod"), "acme-model"),
        (Scope::tenant("globex", "prod"), "globex-model"),
    ] {
        let session = f.store.get_session("s", &scope).await.unwrap().unwrap();
        let records = session.to_records();
        assert_eq!(records.len(), acme_records.len(), "{scope:?}");
        for record in &records {
            if let Body::Event(Event::Llm(call)) = &record.body {
                assert_eq!(call.model_name, model, "{scope:?} sees only its own calls");
            }
        }
        let page = f
            .store
            .list_sessions(&SessionFilter {
                scope: scope.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.sessions.len(), 1, "{scope:?}");
        let own = &page.sessions[0];
        assert_eq!(
            (own.session_id.as_str(), own.llm_calls),
            ("s", 2),
            "{scope:?}"
        );
        assert_eq!(own.models, [model], "{scope:?}");
        let usage = f
            .store
            .usage_summary(&AnalyticsFilter {
                scope: scope.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(usage.calls, 2, "{scope:?}");
        let call = f.store.get_call("s-llm1", &scope).await.unwrap().unwrap();
        assert_eq!(call.summary.model.as_deref(), Some(model), "{scope:?}");
    }

    // The local view sees both sessions, and asks which one to read.
    let all = f
        .store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.sessions.len(), 2);
    let ambiguous = f.store.get_session("s", &Scope::All).await.unwrap_err();
    assert!(ambiguous.to_string().contains("2 tenants"), "{ambiguous}");
    assert!(f.store.get_call("s-llm1", &Scope::All).await.is_err());

    // Deleting one tenant's session leaves the other's whole.
    assert!(
        f.store
            .delete_session("s", &Scope::tenant("acme", "prod"))
            .await
            .unwrap()
    );
    let left = stored_trace(f.store.as_ref(), "s").await;
    assert_eq!(left.to_records().len(), globex_records.len());
    let usage = f
        .store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    assert_eq!(
        usage.calls, 2,
        "the roll-ups lost only the deleted tenant's calls"
    );
}

pub async fn large_and_unicode_payloads_round_trip(f: Fixture) {
    let ctx = Context::session("séance-🚀-会话").with_step("шаг-1");
    let big = "🙂 ünïcödé \u{0} \"quoted\" \\ ".repeat(40_000); // ~1 MB
    assert!(big.len() >= 1_000_000);
    let records = vec![
        rec(
            "unicode-é-1",
            0,
            &ctx,
            Body::Message(Message {
                content: MessageContent::text(big.clone()),
                message_type: "观察".into(),
                ..Default::default()
            }),
        ),
        rec(
            "unicode-é-2",
            1,
            &ctx,
            Body::Event(Event::Llm(LlmCall {
                model_name: "模型-ü".into(),
                metadata: [("ключ".to_owned(), json!(big.clone()))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            })),
        ),
    ];
    f.store.write(&records).await.unwrap();
    let session = stored_trace(f.store.as_ref(), "séance-🚀-会话").await;
    assert_eq!(session, folded(&records));
    assert_eq!(
        session.messages[0].value.content.text.as_deref(),
        Some(big.as_str())
    );
}

pub async fn concurrent_writers_store_each_record_once(f: Fixture) {
    let sessions: Vec<Vec<Record>> = (0..8)
        .map(|i| full_session(&format!("c{i}"), i * 100, "m", Context::default()))
        .collect();
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = f.store.clone();
        let sessions = sessions.clone();
        tasks.push(tokio::spawn(async move {
            // Every writer writes every session, in a different order, record by record.
            let mut written = 0;
            for k in 0..sessions.len() {
                let s = &sessions[(k + writer) % sessions.len()];
                for r in s.chunks(4) {
                    written += store.write(r).await.unwrap().written;
                }
            }
            written
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let expected: usize = sessions.iter().map(Vec::len).sum();
    assert_eq!(
        total, expected,
        "each record is newly written exactly once across writers"
    );
    for s in &sessions {
        let stored = f
            .store
            .get_session(s[0].session_id(), &Scope::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, folded(s));
    }
    let sessions = newest_sessions(f.store.as_ref()).await;
    assert!(sessions.iter().all(|s| s.events == 5 && s.messages == 2));
}

// ---------------------------------------------------------------------------------
// Analytics: a generated dataset whose true answers are computed here, in plain Rust
// over the generated values (chrono for buckets, a percentile of our own).

/// One generated LLM call, as the test knows it.
#[derive(Clone)]
struct Call {
    ts: i64,
    session: usize,
    tenant: bool,
    provider: Option<&'static str>,
    model: &'static str,
    key: Option<String>,
    route: Option<&'static str>,
    tokens: [u64; 5], // input, output, cache read, cache write, reasoning
    cost: Option<f64>,
    latency: Option<f64>,
    ttft: Option<f64>,
    failed: bool,
    http: Option<u16>,
}

const MODELS: [(Option<&str>, &str); 5] = [
    (Some("openai"), "gpt-5"),
    (Some("openai"), "zz-omega"),
    (Some("anthropic"), "zz-alpha"),
    (Some("anthropic"), "zz-beta"),
    (None, "zz-local"),
];

impl Call {
    fn total(&self) -> u64 {
        self.tokens[0] + self.tokens[1] + self.tokens[2] + self.tokens[3]
    }
    /// The price of gpt-5 in the shipped table (per token); other models are unpriced.
    fn computed(&self) -> Option<f64> {
        (self.model == "gpt-5").then(|| {
            self.tokens[0] as f64 * 1.25e-6
                + self.tokens[2] as f64 * 1.25e-7
                + self.tokens[3] as f64 * 1.25e-6
                + self.tokens[1] as f64 * 1e-5
        })
    }
    fn effective_cost(&self) -> f64 {
        self.cost.or(self.computed()).unwrap_or(0.0)
    }
    fn is_error(&self) -> bool {
        self.failed || self.http.is_some_and(|h| h >= 400)
    }
}

fn generate() -> Vec<Call> {
    // 2026-01-04T00:00:00Z is a Sunday; the data spans three weeks around it.
    let base = 1_767_484_800_000_000i64;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut calls = Vec::new();
    for i in 0..1_200usize {
        let (provider, model) = MODELS[next(5) as usize];
        let day = 86_400_000_000i64;
        let ts = match i {
            // Bucket edges: midnight, a microsecond before, Monday 00:00 exactly.
            0 => base,
            1 => base - 1,
            2 => base + day,
            3 => base + day - 1,
            4 => base + 8 * day,
            _ => base - 3 * day + (next(21 * 86_400_000) as i64) * 1000 + next(1000) as i64,
        };
        let input = next(5_000);
        let output = next(2_000);
        calls.push(Call {
            ts,
            session: next(8) as usize,
            tenant: i % 9 == 0,
            provider,
            model,
            key: (i % 5 != 0).then(|| format!("key-{}", next(4))),
            route: match next(3) {
                0 => Some("/v1/chat/completions"),
                1 => Some("/v1/messages"),
                _ => None,
            },
            tokens: [
                input,
                output,
                next(20_000),
                next(3) * next(1_000),
                output.min(next(500)),
            ],
            cost: (i % 2 == 0).then(|| next(1_000_000) as f64 * 1e-7),
            latency: (i % 7 != 0).then(|| next(100_000) as f64 / 10.0),
            ttft: (i % 3 != 0).then(|| next(5_000) as f64 / 4.0),
            failed: i % 11 == 0,
            http: match i % 17 {
                0 => Some(503),
                5 => Some(429),
                9 => None,
                _ => Some(200),
            },
        });
    }
    // A route used once: a one-element group.
    let mut one = calls[10].clone();
    one.route = Some("/v1/once");
    one.latency = Some(123.25);
    one.ttft = Some(7.5);
    calls.push(one);
    calls
}

fn analytics_records(calls: &[Call]) -> Vec<Record> {
    let mut records = Vec::new();
    for s in 0..8 {
        let mut meta = Metadata::new();
        meta.insert(
            "team".into(),
            json!(if s % 2 == 0 { "red" } else { "blue" }),
        );
        // Ids are scoped by tenant: the tenant's calls of session a-{s} are its own
        // session of that id, started with the same metadata.
        let plain = Context::session(format!("a-{s}"));
        let tenant = plain.clone().with_tenant("acme", "prod");
        for (id, ctx) in [
            (format!("a-start-{s}"), plain),
            (format!("a-start-{s}"), tenant),
        ] {
            records.push(rec(
                &id,
                -10_000_000_000,
                &ctx,
                Body::SessionStarted(SessionStarted {
                    metadata: meta.clone(),
                    session_metadata: vec![],
                }),
            ));
        }
    }
    for (i, c) in calls.iter().enumerate() {
        let mut ctx = Context::session(format!("a-{}", c.session));
        if c.tenant {
            ctx = ctx.with_tenant("acme", "prod");
        }
        records.push(Record {
            id: format!("call-{i:05}"),
            timestamp: Timestamp::from_micros(c.ts),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                provider: c.provider.map(Into::into),
                model_name: c.model.into(),
                input_tokens: c.tokens[0],
                output_tokens: c.tokens[1],
                cache_read_tokens: c.tokens[2],
                cache_write_tokens: c.tokens[3],
                reasoning_tokens: c.tokens[4],
                cost_usd: c.cost,
                latency_ms: c.latency,
                time_to_first_token_ms: c.ttft,
                status: if c.failed { Status::Error } else { Status::Ok },
                response_status: c.http,
                request_path: c.route.map(Into::into),
                api_key_hash: c.key.clone(),
                ..Default::default()
            })),
        });
        if i % 10 == 0 {
            // Tool calls are not LLM calls: analytics leave them out.
            records.push(Record {
                id: format!("tool-{i:05}"),
                timestamp: Timestamp::from_micros(c.ts),
                context: ctx,
                body: Body::Event(Event::Runtime(RuntimeAction {
                    tool_name: Some("Read".into()),
                    duration_ms: Some(1e9),
                    ..Default::default()
                })),
            });
        }
    }
    records
}

/// Every way a breakdown can group.
const ALL_GROUPINGS: [GroupBy; 5] = [
    GroupBy::None,
    GroupBy::Provider,
    GroupBy::Model,
    GroupBy::Key,
    GroupBy::Route,
];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn close_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// `percentile_cont`: linear interpolation between the closest ranks, rank = p·(n−1).
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = p * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

fn expected_summary(calls: &[&Call]) -> UsageSummary {
    let sum = |f: &dyn Fn(&Call) -> u64| calls.iter().map(|c| f(c)).sum::<u64>();
    let errors = calls.iter().filter(|c| c.is_error()).count() as u64;
    UsageSummary {
        calls: calls.len() as u64,
        input_tokens: sum(&|c| c.tokens[0]),
        output_tokens: sum(&|c| c.tokens[1]),
        total_tokens: sum(&|c| c.total()),
        cache_read_tokens: sum(&|c| c.tokens[2]),
        cache_write_tokens: sum(&|c| c.tokens[3]),
        reasoning_tokens: sum(&|c| c.tokens[4]),
        cost_usd: calls.iter().map(|c| c.effective_cost()).sum(),
        reported_cost_usd: calls.iter().filter_map(|c| c.cost).sum(),
        computed_cost_usd: calls.iter().filter_map(|c| c.computed()).sum(),
        errors,
        error_rate: if calls.is_empty() {
            0.0
        } else {
            errors as f64 / calls.len() as f64
        },
    }
}

fn assert_summary(got: &UsageSummary, want: &UsageSummary, what: &str) {
    assert_eq!(
        (
            got.calls,
            got.input_tokens,
            got.output_tokens,
            got.total_tokens,
            got.cache_read_tokens,
            got.cache_write_tokens,
            got.reasoning_tokens,
            got.errors
        ),
        (
            want.calls,
            want.input_tokens,
            want.output_tokens,
            want.total_tokens,
            want.cache_read_tokens,
            want.cache_write_tokens,
            want.reasoning_tokens,
            want.errors
        ),
        "{what}"
    );
    for (g, w) in [
        (got.cost_usd, want.cost_usd),
        (got.reported_cost_usd, want.reported_cost_usd),
        (got.computed_cost_usd, want.computed_cost_usd),
        (got.error_rate, want.error_rate),
    ] {
        assert!(close(g, w), "{what}: {got:?} != {want:?}");
    }
}

fn bucket_start(ts: i64, bucket: Bucket) -> i64 {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_micros(ts).unwrap();
    let day = t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let start = match bucket {
        Bucket::Hour => day + chrono::Duration::hours(i64::from(t.hour())),
        Bucket::Day => day,
        Bucket::Week => day - chrono::Duration::days(i64::from(t.weekday().num_days_from_monday())),
    };
    start.timestamp_micros()
}

fn group_of(c: &Call, g: GroupBy) -> Option<String> {
    match g {
        GroupBy::None => None,
        GroupBy::Provider => c.provider.map(Into::into),
        GroupBy::Model => Some(c.model.into()),
        GroupBy::Key => c.key.clone(),
        GroupBy::Route => c.route.map(Into::into),
    }
}

pub async fn analytics_match_an_independent_computation(f: Fixture) {
    let calls = generate();
    f.store.write(&analytics_records(&calls)).await.unwrap();
    let store = f.store.as_ref();

    // Summaries under every filter.
    let since = Timestamp::from_micros(1_767_484_800_000_000);
    let until = Timestamp::from_micros(1_767_484_800_000_000 + 5 * 86_400_000_000);
    type Keep = Box<dyn Fn(&Call) -> bool>;
    let cases: Vec<(AnalyticsFilter, Keep)> = vec![
        (AnalyticsFilter::default(), Box::new(|_| true)),
        (
            AnalyticsFilter {
                provider: Some("openai".into()),
                ..Default::default()
            },
            Box::new(|c| c.provider == Some("openai")),
        ),
        (
            AnalyticsFilter {
                model: Some("gpt-5".into()),
                ..Default::default()
            },
            Box::new(|c| c.model == "gpt-5"),
        ),
        (
            AnalyticsFilter {
                api_key_hash: Some("key-2".into()),
                ..Default::default()
            },
            Box::new(|c| c.key.as_deref() == Some("key-2")),
        ),
        (
            AnalyticsFilter {
                session_id: Some("a-3".into()),
                ..Default::default()
            },
            Box::new(|c| c.session == 3),
        ),
        (
            AnalyticsFilter {
                status: Some(Status::Error),
                ..Default::default()
            },
            Box::new(|c| c.failed),
        ),
        (
            AnalyticsFilter {
                since: Some(since),
                until: Some(until),
                ..Default::default()
            },
            Box::new(move |c| c.ts >= since.as_micros() && c.ts < until.as_micros()),
        ),
        (
            AnalyticsFilter {
                metadata: vec![("team".into(), json!("red"))],
                ..Default::default()
            },
            Box::new(|c| c.session % 2 == 0),
        ),
        (
            AnalyticsFilter {
                scope: Scope::tenant("acme", "prod"),
                ..Default::default()
            },
            Box::new(|c| c.tenant),
        ),
        (
            AnalyticsFilter {
                model: Some("no-such-model".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (filter, keep) in &cases {
        let want: Vec<&Call> = calls.iter().filter(|c| keep(c)).collect();
        assert_summary(
            &store.usage_summary(filter).await.unwrap(),
            &expected_summary(&want),
            &format!("{filter:?}"),
        );
    }

    // The same answers through the roll-ups alone (no filter), through the roll-ups and
    // the events of a partial first hour (a start off the hour, before every call), and
    // through the roll-ups for whole hours and days plus the events for the partial
    // ones at both edges of a range that cuts through the data.
    let raw_all = AnalyticsFilter {
        since: Some(Timestamp::from_micros(
            1_767_484_800_000_000 - 30 * 86_400_000_000 + 1,
        )),
        ..Default::default()
    };
    let (hour, day) = (3_600_000_000i64, 86_400_000_000i64);
    let (cut_since, cut_until) = (
        1_767_484_800_000_000 - 2 * day + 10 * hour + 300_000_123,
        1_767_484_800_000_000 + 9 * day + 13 * hour + 3_300_000_007,
    );
    // Each partial hour and day at the edges holds calls, so that leaving one out shows.
    for (from, to) in [
        (cut_since, cut_since - cut_since.rem_euclid(hour) + hour),
        (cut_since, cut_since - cut_since.rem_euclid(day) + day),
        (cut_until - cut_until.rem_euclid(hour), cut_until),
        (cut_until - cut_until.rem_euclid(day), cut_until),
    ] {
        assert!(
            calls.iter().any(|c| c.ts >= from && c.ts < to),
            "no call in [{from}, {to})"
        );
    }
    let cut = AnalyticsFilter {
        since: Some(Timestamp::from_micros(cut_since)),
        until: Some(Timestamp::from_micros(cut_until)),
        ..Default::default()
    };
    let every_call = calls.clone();
    for (base, keep) in [
        (AnalyticsFilter::default(), None),
        (raw_all.clone(), None),
        (cut, Some((cut_since, cut_until))),
    ] {
        let calls: Vec<Call> = every_call
            .iter()
            .filter(|c| keep.is_none_or(|(a, b)| c.ts >= a && c.ts < b))
            .cloned()
            .collect();
        assert!(calls.len() > 100 && calls.len() <= every_call.len());
        let all: Vec<&Call> = calls.iter().collect();
        assert_summary(
            &store.usage_summary(&base).await.unwrap(),
            &expected_summary(&all),
            &format!("{base:?}"),
        );
        // Series: every bucket and grouping.
        for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week] {
            for group_by in ALL_GROUPINGS {
                let got = store.usage_series(&base, group_by, bucket).await.unwrap();
                let mut want: std::collections::BTreeMap<(i64, Option<String>), Vec<&Call>> =
                    Default::default();
                for c in &all {
                    want.entry((bucket_start(c.ts, bucket), group_of(c, group_by)))
                        .or_default()
                        .push(c);
                }
                assert_eq!(got.len(), want.len(), "{bucket:?} {group_by:?}");
                for (point, ((b, g), cs)) in got.iter().zip(&want) {
                    let s = expected_summary(cs);
                    assert_eq!(
                        (point.bucket.as_micros(), &point.group),
                        (*b, g),
                        "{bucket:?} {group_by:?}"
                    );
                    assert_eq!(
                        (
                            point.calls,
                            point.input_tokens,
                            point.output_tokens,
                            point.total_tokens
                        ),
                        (s.calls, s.input_tokens, s.output_tokens, s.total_tokens)
                    );
                    assert!(close(point.cost_usd, s.cost_usd));
                }
            }
        }
        // The edges: a call at Monday 00:00 opens a week; one a microsecond before closes the last.
        let weeks = store
            .usage_series(&base, GroupBy::None, Bucket::Week)
            .await
            .unwrap();
        assert!(
            weeks
                .iter()
                .any(|p| p.bucket.to_string() == "2026-01-05T00:00:00.000000Z")
        );
        assert!(weeks.iter().all(
            |p| p.bucket.to_datetime().format("%a %H:%M:%S%.6f").to_string()
                == "Mon 00:00:00.000000"
        ));

        // Models.
        let models = store.model_stats(&base).await.unwrap();
        assert_eq!(models.len(), MODELS.len());
        for m in &models {
            let cs: Vec<&Call> = calls
                .iter()
                .filter(|c| c.model == m.model && c.provider.map(String::from) == m.provider)
                .collect();
            let s = expected_summary(&cs);
            let latencies: Vec<f64> = cs.iter().filter_map(|c| c.latency).collect();
            assert_eq!(
                (
                    m.calls,
                    m.input_tokens,
                    m.output_tokens,
                    m.cache_read_tokens,
                    m.cache_write_tokens
                ),
                (
                    s.calls,
                    s.input_tokens,
                    s.output_tokens,
                    s.cache_read_tokens,
                    s.cache_write_tokens
                )
            );
            assert!(close(m.cost_usd, s.cost_usd));
            assert!(close_opt(
                m.avg_latency_ms,
                Some(latencies.iter().sum::<f64>() / latencies.len() as f64)
            ));
            assert!(
                close_opt(m.p95_latency_ms, percentile(&latencies, 0.95)),
                "{m:?}"
            );
            assert!(close(m.error_rate, s.error_rate));
        }
        assert!(
            models.windows(2).all(|w| w[0].calls >= w[1].calls),
            "ordered by calls"
        );

        // Keys: calls without a key are left out.
        let keys = store.key_stats(&base).await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.calls).sum::<u64>(),
            calls.iter().filter(|c| c.key.is_some()).count() as u64
        );
        for k in &keys {
            let cs: Vec<&Call> = calls
                .iter()
                .filter(|c| c.key.as_deref() == Some(k.api_key_hash.as_str()))
                .collect();
            let s = expected_summary(&cs);
            assert_eq!((k.calls, k.total_tokens), (s.calls, s.total_tokens));
            assert!(close(k.cost_usd, s.cost_usd));
        }

        // Latency percentiles and error rates for every grouping.
        for group_by in ALL_GROUPINGS {
            let latency = store.latency_percentiles(&base, group_by).await.unwrap();
            let errors = store.error_rates(&base, group_by).await.unwrap();
            let mut groups: Vec<Option<String>> =
                calls.iter().map(|c| group_of(c, group_by)).collect();
            groups.sort();
            groups.dedup();
            assert_eq!(
                latency.iter().map(|l| l.group.clone()).collect::<Vec<_>>(),
                groups,
                "{group_by:?}"
            );
            assert_eq!(
                errors.iter().map(|e| e.group.clone()).collect::<Vec<_>>(),
                groups,
                "{group_by:?}"
            );
            for l in &latency {
                let cs: Vec<&Call> = calls
                    .iter()
                    .filter(|c| group_of(c, group_by) == l.group)
                    .collect();
                let lat: Vec<f64> = cs.iter().filter_map(|c| c.latency).collect();
                let ttft: Vec<f64> = cs.iter().filter_map(|c| c.ttft).collect();
                assert_eq!(l.count, lat.len() as u64, "NULL latencies are not counted");
                for (got, p) in [
                    (l.p50_ms, 0.5),
                    (l.p90_ms, 0.9),
                    (l.p95_ms, 0.95),
                    (l.p99_ms, 0.99),
                ] {
                    assert!(
                        close_opt(got, percentile(&lat, p)),
                        "{group_by:?} {l:?} p{p}"
                    );
                }
                assert!(close_opt(l.ttft_p50_ms, percentile(&ttft, 0.5)));
                assert!(close_opt(l.ttft_p95_ms, percentile(&ttft, 0.95)));
            }
            for e in &errors {
                let cs: Vec<&Call> = calls
                    .iter()
                    .filter(|c| group_of(c, group_by) == e.group)
                    .collect();
                let want = (
                    cs.len() as u64,
                    cs.iter().filter(|c| c.is_error()).count() as u64,
                    cs.iter().filter(|c| c.http == Some(429)).count() as u64,
                    cs.iter().filter(|c| c.http == Some(503)).count() as u64,
                );
                assert_eq!(
                    (e.calls, e.errors, e.http_4xx, e.http_5xx),
                    want,
                    "{group_by:?}"
                );
            }
        }
    }
    // A one-element group: every percentile is its one value.
    let routes = store
        .latency_percentiles(&AnalyticsFilter::default(), GroupBy::Route)
        .await
        .unwrap();
    let once = routes
        .iter()
        .find(|l| l.group.as_deref() == Some("/v1/once"))
        .unwrap();
    assert_eq!(
        (once.count, once.p50_ms, once.p99_ms, once.ttft_p95_ms),
        (1, Some(123.25), Some(123.25), Some(7.5))
    );
    // Empty results.
    let none = AnalyticsFilter {
        model: Some("no-such-model".into()),
        ..Default::default()
    };
    assert!(
        store
            .usage_series(&none, GroupBy::Model, Bucket::Day)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.model_stats(&none).await.unwrap().is_empty());
    assert!(store.key_stats(&none).await.unwrap().is_empty());
    assert!(
        store
            .latency_percentiles(&none, GroupBy::None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .error_rates(&none, GroupBy::Model)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn api_keys_store_only_a_hash_and_can_be_revoked(f: Fixture) {
    let store = f.store.as_ref();
    assert!(!store.has_api_keys().await.unwrap());
    let (acme, acme_secret) = ApiKey::generate("acme", "prod", Some("ci".into()), false);
    let (admin, admin_secret) = ApiKey::generate("ops", "all", None, true);
    store.create_api_key(&acme).await.unwrap();
    store.create_api_key(&admin).await.unwrap();
    assert!(store.has_api_keys().await.unwrap());
    assert_eq!(
        store.find_api_key(&acme_secret).await.unwrap(),
        Some(acme.clone())
    );
    assert!(
        store
            .find_api_key(&admin_secret)
            .await
            .unwrap()
            .unwrap()
            .admin
    );
    assert_eq!(store.find_api_key("sonde_wrong").await.unwrap(), None);
    let all = store.api_keys().await.unwrap();
    assert_eq!(all.len(), 2);
    // Only the hash is stored: the secret appears nowhere in the table.
    let dump = store.query("SELECT * FROM api_keys", &[]).await.unwrap();
    assert!(!serde_json::to_string(&dump).unwrap().contains(&acme_secret));
    assert!(store.revoke_api_key(&acme.id).await.unwrap());
    assert!(
        !store.revoke_api_key(&acme.id).await.unwrap(),
        "already revoked"
    );
    assert_eq!(store.find_api_key(&acme_secret).await.unwrap(), None);
    assert!(
        store
            .api_keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == acme.id && !k.is_active())
    );
    assert!(
        store.has_api_keys().await.unwrap(),
        "the admin key is still active"
    );
}

/// A resumed Claude Code session copies its parent's responses under the same ids: a
/// replacement may move a record from one session to another, and both sessions'
/// counters then agree with the events they hold.
pub async fn a_record_replaced_from_another_session_leaves_both_sessions_counted(f: Fixture) {
    let parent = full_session("s-parent", 0, "claude-sonnet-4-5", Context::default());
    f.store.write(&parent).await.unwrap();
    let call = parent
        .iter()
        .find(|r| matches!(r.body, Body::Event(Event::Llm(_))))
        .unwrap();
    let child = Context::session("s-child");
    let started = rec(
        "s-child-start",
        500,
        &child,
        Body::SessionStarted(SessionStarted::default()),
    );
    let copy = Record {
        context: child.clone(),
        ..call.clone()
    };
    f.store.write(std::slice::from_ref(&started)).await.unwrap();
    f.store.replace(&[copy]).await.unwrap();

    let stored = |session: &'static str| {
        let store = f.store.clone();
        async move {
            let row = store
                .query(
                    "SELECT llm_calls, event_count FROM sessions WHERE session_id = ?1",
                    &[json!(session)],
                )
                .await
                .unwrap();
            (
                row.rows[0][0].as_i64().unwrap(),
                row.rows[0][1].as_i64().unwrap(),
            )
        }
    };
    for session in ["s-parent", "s-child"] {
        let llm = f
            .store
            .query(
                "SELECT count(*) FROM events WHERE session_id = ?1 AND event_type = 'llm'",
                &[json!(session)],
            )
            .await
            .unwrap()
            .rows[0][0]
            .as_i64()
            .unwrap();
        let (llm_calls, events) = stored(session).await;
        assert_eq!(llm_calls, llm, "{session}: llm_calls against its events");
        assert_eq!(
            events,
            count(&*f.store, "events", session).await,
            "{session}"
        );
    }
    assert_eq!(
        stored("s-child").await.0,
        1,
        "the copy now belongs to the child"
    );
}

pub async fn replacing_a_record_updates_it_and_every_count(f: Fixture) {
    let mut records = full_session("s-1", 0, "claude-sonnet-4-5", Context::default());
    f.store.write(&records).await.unwrap();
    // A streamed response learned more: its usage grew and its stop reason arrived.
    let position = records
        .iter()
        .position(|r| matches!(&r.body, Body::Event(Event::Llm(_))))
        .unwrap();
    let mut grown = records[position].clone();
    if let Body::Event(Event::Llm(call)) = &mut grown.body {
        call.output_tokens += 500;
        call.cost_usd = Some(0.5);
        call.stop_reason = Some("tool_use".into());
    }
    records[position] = grown.clone();
    let new_message = rec(
        "s-1-late",
        99,
        &Context::session("s-1"),
        Body::Message(Message {
            content: MessageContent::text("late"),
            message_type: "assistant_reply".into(),
            ..Default::default()
        }),
    );
    records.push(new_message.clone());
    // Lifecycle records are kept as first stored.
    let mut restarted = records[0].clone();
    if let Body::SessionStarted(s) = &mut restarted.body {
        s.metadata.insert("changed".into(), json!(true));
    }
    let outcome = f
        .store
        .replace(&[grown.clone(), new_message, restarted])
        .await
        .unwrap();
    assert_eq!(outcome.written, 2);
    assert_eq!(outcome.duplicates, 1);
    let session = stored_trace(f.store.as_ref(), "s-1").await;
    assert_eq!(session, folded(&records));

    let calls: Vec<&LlmCall> = records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event(Event::Llm(c)) => Some(c),
            _ => None,
        })
        .collect();
    let tokens: u64 = calls.iter().map(|c| c.total_tokens()).sum();
    let cost: f64 = calls.iter().filter_map(|c| c.cost_usd).sum();
    let sessions = newest_sessions(f.store.as_ref()).await;
    assert_eq!(sessions[0].events, 5);
    assert_eq!(sessions[0].llm_calls, 2);
    assert_eq!(sessions[0].messages, 3);
    assert_eq!(sessions[0].total_tokens, tokens);
    assert!((sessions[0].cost_usd.unwrap() - cost).abs() < 1e-12);
    // The roll-up (no filter) and the raw events (a filter off the hour) agree.
    let raw = AnalyticsFilter {
        since: Some(at(-1)),
        ..Default::default()
    };
    for filter in [AnalyticsFilter::default(), raw] {
        let summary = f.store.usage_summary(&filter).await.unwrap();
        assert_eq!(summary.calls, 2);
        assert_eq!(summary.total_tokens, tokens);
        assert!((summary.reported_cost_usd - cost).abs() < 1e-12);
    }
}

/// In SQL, `events.cost_usd` is the cost Sonde reports everywhere else: the reported
/// one, else the one computed from the price table; both are beside it by name.
pub async fn sql_cost_is_the_reported_cost_else_the_computed_one(f: Fixture) {
    let call = |id: &str, model: &str, cost: Option<f64>| {
        rec(
            id,
            1,
            &Context::session("s-cost"),
            Body::Event(Event::Llm(LlmCall {
                provider: Some("openai".into()),
                model_name: model.into(),
                input_tokens: 1_000_000,
                output_tokens: 100_000,
                cost_usd: cost,
                ..Default::default()
            })),
        )
    };
    f.store
        .write(&[
            call("reported", "gpt-5", Some(0.5)),
            call("computed", "gpt-5", None),
            call("unpriced", "no-such-model-xyz", None),
        ])
        .await
        .unwrap();
    let rows = f
        .store
        .query(
            "SELECT id, cost_usd, reported_cost_usd, computed_cost_usd FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .rows;
    let computed = rows[0][3].as_f64().expect("gpt-5 is priced");
    assert!(computed > 0.0);
    assert_eq!(
        rows,
        vec![
            vec![
                json!("computed"),
                json!(computed),
                json!(null),
                json!(computed)
            ],
            vec![json!("reported"), json!(0.5), json!(0.5), json!(computed)],
            vec![json!("unpriced"), json!(null), json!(null), json!(null)],
        ]
    );
    let sums = f
        .store
        .query(
            "SELECT sum(cost_usd), sum(reported_cost_usd), sum(computed_cost_usd) FROM events",
            &[],
        )
        .await
        .unwrap()
        .rows;
    let summary = f
        .store
        .usage_summary(&AnalyticsFilter::default())
        .await
        .unwrap();
    let sum = |i: usize| sums[0][i].as_f64().unwrap();
    assert!(close(sum(0), summary.cost_usd), "{sums:?} {summary:?}");
    assert!(close(sum(1), summary.reported_cost_usd));
    assert!(close(sum(2), summary.computed_cost_usd));
    assert!(close(summary.cost_usd, 0.5 + computed));
    let sessions = newest_sessions(f.store.as_ref()).await;
    assert!(close(sessions[0].cost_usd.unwrap(), summary.cost_usd));
}

pub async fn sync_cursors_are_kept_per_source_and_path(f: Fixture) {
    let cursor = |path: &str, position: &str, state: &str| SyncCursor {
        path: path.into(),
        position: position.into(),
        state: state.into(),
    };
    assert!(f.store.sync_cursors("claude").await.unwrap().is_empty());
    let first = vec![
        cursor("/a.jsonl", r#"{"offset":10}"#, "s-a"),
        cursor("/b.jsonl", r#"{"offset":20}"#, "s-b"),
    ];
    f.store.save_sync_cursors("claude", &first).await.unwrap();
    f.store
        .save_sync_cursors("codex", &[cursor("/a.jsonl", "other", "")])
        .await
        .unwrap();
    f.store
        .save_sync_cursors("claude", &[cursor("/a.jsonl", r#"{"offset":99}"#, "s-a2")])
        .await
        .unwrap();
    let stored = f.store.sync_cursors("claude").await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored["/a.jsonl"], r#"{"offset":99}"#);
    assert_eq!(stored["/b.jsonl"], r#"{"offset":20}"#);
    assert_eq!(
        f.store.sync_cursors("codex").await.unwrap()["/a.jsonl"],
        "other"
    );
    let state = |source: &'static str, path: &'static str| {
        let store = f.store.clone();
        async move { store.sync_state(source, path).await.unwrap() }
    };
    assert_eq!(state("claude", "/a.jsonl").await.as_deref(), Some("s-a2"));
    assert_eq!(state("claude", "/b.jsonl").await.as_deref(), Some("s-b"));
    assert_eq!(state("claude", "/c.jsonl").await, None);
}

/// One LLM call of the percentile case, as the test knows it.
#[derive(Clone)]
struct Timed {
    id: String,
    ts: i64,
    session: usize,
    model: &'static str,
    key: Option<&'static str>,
    latency: Option<f64>,
    ttft: Option<f64>,
}

impl Timed {
    fn record(&self) -> Record {
        Record {
            id: self.id.clone(),
            timestamp: Timestamp::from_micros(self.ts),
            // Session 3 belongs to a tenant.
            context: if self.session == 3 {
                Context::session(format!("p-{}", self.session)).with_tenant("acme", "prod")
            } else {
                Context::session(format!("p-{}", self.session))
            },
            body: Body::Event(Event::Llm(LlmCall {
                provider: Some("openai".into()),
                model_name: self.model.into(),
                input_tokens: 1,
                latency_ms: self.latency,
                time_to_first_token_ms: self.ttft,
                api_key_hash: self.key.map(Into::into),
                ..Default::default()
            })),
        }
    }
}

/// Checks latency percentiles under `filter` against the calls it keeps, for every
/// grouping the runs serve.
async fn assert_percentiles(
    store: &dyn TraceStore,
    calls: &[Timed],
    filter: &AnalyticsFilter,
    keep: &dyn Fn(&Timed) -> bool,
    when: &str,
) {
    for group_by in [GroupBy::None, GroupBy::Model, GroupBy::Key] {
        let group = |c: &Timed| match group_by {
            GroupBy::Model => Some(c.model.to_owned()),
            GroupBy::Key => c.key.map(str::to_owned),
            _ => None,
        };
        let mut want: std::collections::BTreeMap<Option<String>, (Vec<f64>, Vec<f64>)> =
            Default::default();
        for c in calls.iter().filter(|c| keep(c)) {
            let entry = want.entry(group(c)).or_default();
            entry.0.extend(c.latency);
            entry.1.extend(c.ttft);
        }
        want.retain(|_, (l, t)| !l.is_empty() || !t.is_empty());
        let got = store.latency_percentiles(filter, group_by).await.unwrap();
        assert_eq!(
            got.iter().map(|l| l.group.clone()).collect::<Vec<_>>(),
            want.keys().cloned().collect::<Vec<_>>(),
            "{when}: groups by {group_by:?}"
        );
        for (l, (lat, ttft)) in got.iter().zip(want.values()) {
            let what = format!("{when}: {group_by:?} {l:?}");
            assert_eq!(l.count, lat.len() as u64, "{what}");
            for (got, p) in [
                (l.p50_ms, 0.5),
                (l.p90_ms, 0.9),
                (l.p95_ms, 0.95),
                (l.p99_ms, 0.99),
            ] {
                assert!(close_opt(got, percentile(lat, p)), "{what} p{p}");
            }
            assert!(
                close_opt(l.ttft_p50_ms, percentile(ttft, 0.5)),
                "{what} ttft p50"
            );
            assert!(
                close_opt(l.ttft_p95_ms, percentile(ttft, 0.95)),
                "{what} ttft p95"
            );
        }
    }
    for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week] {
        let mut want: std::collections::BTreeMap<Timestamp, (Vec<f64>, Vec<f64>)> =
            Default::default();
        for c in calls.iter().filter(|c| keep(c)) {
            let entry = want
                .entry(bucket.start_of(Timestamp::from_micros(c.ts)))
                .or_default();
            entry.0.extend(c.latency);
            entry.1.extend(c.ttft);
        }
        want.retain(|_, (l, t)| !l.is_empty() || !t.is_empty());
        let got = store.latency_series(filter, bucket).await.unwrap();
        assert_eq!(
            got.iter().map(|p| p.bucket).collect::<Vec<_>>(),
            want.keys().copied().collect::<Vec<_>>(),
            "{when}: buckets of {bucket:?}"
        );
        for (point, (lat, ttft)) in got.iter().zip(want.values()) {
            let (l, what) = (&point.latency, format!("{when}: {bucket:?} {point:?}"));
            assert_eq!(l.count, lat.len() as u64, "{what}");
            assert!(close_opt(l.p50_ms, percentile(lat, 0.5)), "{what} p50");
            assert!(close_opt(l.p99_ms, percentile(lat, 0.99)), "{what} p99");
            assert!(
                close_opt(l.ttft_p50_ms, percentile(ttft, 0.5)),
                "{what} ttft p50"
            );
        }
    }
    let models = store.model_stats(filter).await.unwrap();
    for m in &models {
        let lat: Vec<f64> = calls
            .iter()
            .filter(|c| keep(c) && c.model == m.model)
            .filter_map(|c| c.latency)
            .collect();
        assert!(
            close_opt(m.p95_latency_ms, percentile(&lat, 0.95)),
            "{when}: {m:?}"
        );
    }
    // The stats page's one read answers each part as its own query does, to the bit.
    let by_model = store
        .latency_percentiles(filter, GroupBy::Model)
        .await
        .unwrap();
    for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week] {
        let overview = store.latency_overview(filter, bucket).await.unwrap();
        assert_eq!(overview.models, models, "{when}: overview's models");
        assert_eq!(overview.by_model, by_model, "{when}: overview by model");
        assert_eq!(
            overview.series,
            store.latency_series(filter, bucket).await.unwrap(),
            "{when}: overview's series by {bucket:?}"
        );
    }
}

/// Percentiles read the stored latency runs for whole hours and days and the events for
/// the partial ones at a range's edges; the runs follow every write (more values than
/// one run holds, appended over many batches), deletion and replacement.
pub async fn percentiles_stay_exact_through_appends_deletions_and_replacements(f: Fixture) {
    // 2026-03-02T00:00:00Z, a Monday.
    let day0 = 1_772_409_600_000_000i64;
    let (hour, day) = (3_600_000_000i64, 86_400_000_000i64);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut calls: Vec<Timed> = (0..6_000)
        .map(|i| Timed {
            id: format!("p-{i:05}"),
            // Most in one hour of one model (more than one run holds), the rest over two days.
            ts: if i % 3 == 0 {
                day0 + next(2 * day as u64) as i64
            } else {
                day0 + 10 * hour + next(hour as u64) as i64
            },
            session: i % 4,
            model: if i % 3 == 0 && i % 2 == 0 {
                "m-b"
            } else {
                "m-a"
            },
            key: [Some("k-1"), Some("k-2"), None][i % 3],
            latency: (i % 13 != 0).then(|| next(1_000_000) as f64 / 8.0),
            ttft: (i % 4 != 0).then(|| next(10_000) as f64 / 3.0),
        })
        .collect();
    for batch in calls.chunks(700) {
        let records: Vec<Record> = batch.iter().map(Timed::record).collect();
        f.store.write(&records).await.unwrap();
    }
    let store = f.store.as_ref();
    type Keep = Box<dyn Fn(&Timed) -> bool>;
    let (mid_since, mid_until) = (day0 + 10 * hour + 1_234_567, day0 + day + 13 * hour + 7);
    let cases: Vec<(&str, AnalyticsFilter, Keep)> = vec![
        ("everything", AnalyticsFilter::default(), Box::new(|_| true)),
        (
            "partial hours and days at both edges",
            AnalyticsFilter {
                since: Some(Timestamp::from_micros(mid_since)),
                until: Some(Timestamp::from_micros(mid_until)),
                ..Default::default()
            },
            Box::new(move |c| c.ts >= mid_since && c.ts < mid_until),
        ),
        (
            "inside one hour",
            AnalyticsFilter {
                since: Some(Timestamp::from_micros(day0 + 10 * hour + 5)),
                until: Some(Timestamp::from_micros(day0 + 10 * hour + hour / 2)),
                ..Default::default()
            },
            Box::new(move |c| c.ts >= day0 + 10 * hour + 5 && c.ts < day0 + 10 * hour + hour / 2),
        ),
        (
            "one key",
            AnalyticsFilter {
                api_key_hash: Some("k-2".into()),
                ..Default::default()
            },
            Box::new(|c| c.key == Some("k-2")),
        ),
        (
            "one model",
            AnalyticsFilter {
                model: Some("m-b".into()),
                ..Default::default()
            },
            Box::new(|c| c.model == "m-b"),
        ),
        (
            "one tenant",
            AnalyticsFilter {
                scope: Scope::tenant("acme", "prod"),
                ..Default::default()
            },
            Box::new(|c| c.session == 3),
        ),
        (
            "one tenant and a week cut through hours",
            AnalyticsFilter {
                scope: Scope::tenant("acme", "prod"),
                since: Some(Timestamp::from_micros(mid_since)),
                until: Some(Timestamp::from_micros(mid_until)),
                ..Default::default()
            },
            Box::new(move |c| c.session == 3 && c.ts >= mid_since && c.ts < mid_until),
        ),
        (
            "one session (from the events)",
            AnalyticsFilter {
                session_id: Some("p-2".into()),
                ..Default::default()
            },
            Box::new(|c| c.session == 2),
        ),
    ];
    let check = |calls: Vec<Timed>, stage: &'static str| {
        let cases = &cases;
        async move {
            for (name, filter, keep) in cases {
                assert_percentiles(
                    store,
                    &calls,
                    filter,
                    keep.as_ref(),
                    &format!("{stage}, {name}"),
                )
                .await;
            }
        }
    };
    check(calls.clone(), "written in batches").await;

    assert!(f.store.delete_session("p-1", &Scope::All).await.unwrap());
    calls.retain(|c| c.session != 1);
    check(calls.clone(), "after a deletion").await;

    let mut changed: Vec<Timed> = calls
        .iter()
        .filter(|c| c.session == 0)
        .take(300)
        .cloned()
        .collect();
    for (i, c) in changed.iter_mut().enumerate() {
        c.latency = (i % 2 == 0).then_some(99_999.5 + i as f64);
        c.ttft = None;
    }
    let records: Vec<Record> = changed.iter().map(Timed::record).collect();
    f.store.replace(&records).await.unwrap();
    for c in &changed {
        if let Some(stored) = calls.iter_mut().find(|s| s.id == c.id) {
            *stored = c.clone();
        }
    }
    check(calls.clone(), "after a replacement").await;
}

/// A session of one message saying `text`, at `ts`.
fn said(session_id: &str, ts: i64, text: &str, ctx: Context) -> Vec<Record> {
    let ctx = Context {
        session_id: session_id.to_owned(),
        ..ctx
    };
    vec![
        rec(
            &format!("{session_id}-start"),
            ts,
            &ctx,
            Body::SessionStarted(SessionStarted::default()),
        ),
        rec(
            &format!("{session_id}-said"),
            ts + 1,
            &ctx,
            Body::Message(Message {
                content: MessageContent::text(text),
                message_type: "user_prompt".into(),
                ..Default::default()
            }),
        ),
    ]
}

/// A failed LLM call of `session_id` at `ts`: HTTP 500 after 9 s, 5 USD.
fn failed_call(session_id: &str, ts: i64) -> Record {
    rec(
        &format!("{session_id}-failed"),
        ts,
        &Context::session(session_id),
        Body::Event(Event::Llm(LlmCall {
            provider: Some("openai".into()),
            model_name: "gpt-5".into(),
            input_tokens: 7,
            cost_usd: Some(5.0),
            latency_ms: Some(9000.0),
            status: Status::Error,
            error: Some("upstream <b>overloaded</b>".into()),
            response_status: Some(500),
            api_key_hash: Some("kh-1".into()),
            gateway_key_id: Some("gw-1".into()),
            ..Default::default()
        })),
    )
}

pub async fn calls_list_newest_first_with_filters_cursors_and_tenants(f: Fixture) {
    let hour = 3_600_000_000;
    let acme = Context::default().with_tenant("acme", "prod");
    let globex = Context::default().with_tenant("globex", "prod");
    f.store
        .write(&full_session("a", 0, "claude-sonnet-4-5", acme))
        .await
        .unwrap();
    f.store
        .write(&full_session("g", hour, "claude-opus-4-1", globex))
        .await
        .unwrap();
    f.store.write(&[failed_call("x", 2 * hour)]).await.unwrap();
    let ids = |page: &CallPage| page.calls.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let list = |filter: CallFilter| {
        let store = f.store.clone();
        async move { store.list_calls(&filter).await.unwrap() }
    };

    let all = list(CallFilter::default()).await;
    assert_eq!(
        ids(&all),
        ["x-failed", "g-llm2", "g-llm1", "a-llm2", "a-llm1"]
    );
    assert_eq!(all.next_cursor, None);
    let first = &all.calls[3];
    assert_eq!(first.session_id, "a");
    assert_eq!(first.step_id.as_deref(), Some("turn-2"));
    assert_eq!(first.org.as_deref(), Some("acme"));
    assert_eq!(first.ts, at(8));
    assert_eq!(first.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(first.provider.as_deref(), Some("anthropic"));
    assert_eq!(
        (
            first.input_tokens,
            first.output_tokens,
            first.cache_read_tokens,
            first.cache_write_tokens,
            first.reasoning_tokens,
            first.total_tokens
        ),
        (200, 100, 1000, 10, 3, 1310)
    );
    assert_eq!(first.cost_usd, Some(0.02));
    assert_eq!(first.latency_ms, Some(1234.5));
    assert_eq!(first.ttft_ms, Some(200.0));
    assert!(!first.failed());
    assert!(all.calls[0].failed());
    assert_eq!(all.calls[0].response_status, Some(500));

    // Pages of two cover every call once, in order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(CallFilter {
            limit: 2,
            cursor: cursor.clone(),
            ..Default::default()
        })
        .await;
        assert!(page.calls.len() <= 2);
        seen.extend(ids(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ids(&all));
    let bad = f
        .store
        .list_calls(&CallFilter {
            cursor: Some("not a cursor".into()),
            ..Default::default()
        })
        .await;
    assert!(matches!(bad, Err(ReadError::InvalidCursor)), "{bad:?}");

    let by = |calls: AnalyticsFilter| CallFilter {
        calls,
        ..Default::default()
    };
    let model = AnalyticsFilter {
        model: Some("claude-opus-4-1".into()),
        ..Default::default()
    };
    assert_eq!(ids(&list(by(model)).await), ["g-llm2", "g-llm1"]);
    let tenant = AnalyticsFilter {
        scope: Scope::tenant("acme", "prod"),
        ..Default::default()
    };
    assert_eq!(ids(&list(by(tenant)).await), ["a-llm2", "a-llm1"]);
    let provider = AnalyticsFilter {
        provider: Some("openai".into()),
        ..Default::default()
    };
    assert_eq!(ids(&list(by(provider)).await), ["x-failed"]);
    for filter in [
        AnalyticsFilter {
            api_key_hash: Some("kh-1".into()),
            ..Default::default()
        },
        AnalyticsFilter {
            gateway_key_id: Some("gw-1".into()),
            ..Default::default()
        },
        AnalyticsFilter {
            status: Some(Status::Error),
            ..Default::default()
        },
        AnalyticsFilter {
            session_id: Some("x".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(
            ids(&list(by(filter.clone())).await),
            ["x-failed"],
            "{filter:?}"
        );
    }
    let metadata = AnalyticsFilter {
        metadata: vec![("user_id".into(), json!("u-42"))],
        since: Some(at(hour)),
        ..Default::default()
    };
    assert_eq!(ids(&list(by(metadata)).await), ["g-llm2", "g-llm1"]);
    let failed = CallFilter {
        failed: true,
        ..Default::default()
    };
    assert_eq!(ids(&list(failed).await), ["x-failed"]);
    let slow = CallFilter {
        min_latency_ms: Some(2000.0),
        ..Default::default()
    };
    assert_eq!(ids(&list(slow).await), ["x-failed"]);
    let fast = CallFilter {
        max_latency_ms: Some(1234.5),
        ..Default::default()
    };
    assert_eq!(list(fast).await.calls.len(), 4);
    let cheap = CallFilter {
        min_cost_usd: Some(0.015),
        max_cost_usd: Some(1.0),
        ..Default::default()
    };
    assert_eq!(ids(&list(cheap).await), ["g-llm2", "a-llm2"]);
}

pub async fn a_call_is_read_whole_only_in_its_tenant(f: Fixture) {
    let acme = Context::default().with_tenant("acme", "prod");
    f.store
        .write(&full_session("a", 0, "claude-sonnet-4-5", acme))
        .await
        .unwrap();
    f.store.write(&[failed_call("x", 100)]).await.unwrap();
    let call = f
        .store
        .get_call("a-llm1", &Scope::tenant("acme", "prod"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.summary.id, "a-llm1");
    assert_eq!(call.summary.input_tokens, 100);
    assert_eq!(call.call.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        call.call.call_records[0].request.as_ref().unwrap()["messages"][0]["content"],
        "hi"
    );
    let failed = f
        .store
        .get_call("x-failed", &Scope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.call.error.as_deref(),
        Some("upstream <b>overloaded</b>")
    );
    assert!(failed.summary.failed());
    for (id, scope) in [
        ("a-llm1", Scope::tenant("globex", "prod")),
        ("a-tool1", Scope::All),
        ("nope", Scope::All),
    ] {
        assert!(
            f.store.get_call(id, &scope).await.unwrap().is_none(),
            "{id} in {scope:?}"
        );
    }
}

pub async fn search_finds_sessions_by_the_words_in_their_records(f: Fixture) {
    let acme = Context::default().with_tenant("acme", "prod");
    let globex = Context::default().with_tenant("globex", "prod");
    f.store
        .write(&full_session("a", 0, "m", acme))
        .await
        .unwrap();
    f.store
        .write(&full_session("g", 100, "m", globex))
        .await
        .unwrap();
    f.store
        .write(&said(
            "r",
            200,
            "Deploy the rocket <script>alert(1)</script>",
            Context::default(),
        ))
        .await
        .unwrap();
    let search = |q: &str, scope: Scope| {
        let store = f.store.clone();
        let q = q.to_owned();
        async move {
            let page = store
                .list_sessions(&SessionFilter {
                    scope,
                    search: Some(q),
                    ..Default::default()
                })
                .await
                .unwrap();
            page.sessions
                .into_iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>()
        }
    };
    // A tool call's input and output, a message, an LLM response, an error, an event.
    for q in [
        "cargo test",
        "1 FAILED",
        "fix the test",
        "hello",
        "exit",
        "checkpoint",
    ] {
        assert_eq!(search(q, Scope::All).await, ["g", "a"], "{q}");
    }
    assert_eq!(search("rocket", Scope::All).await, ["r"]);
    assert_eq!(search("<script>", Scope::All).await, ["r"]);
    assert_eq!(search("cargo", Scope::tenant("acme", "prod")).await, ["a"]);
    // Every word must occur in the session (in any of its records); keys of JSON are
    // not text; prefixes are not words.
    assert!(search("rocket cargo", Scope::All).await.is_empty());
    assert_eq!(
        search("hello checkpoint BASH", Scope::All).await,
        ["g", "a"]
    );
    // Page by page: a page whose sessions are among the newest is found by probing
    // them, the last page by gathering the sessions holding each word; both agree.
    for (q, scope, want) in [
        ("cargo test", Scope::All, vec!["g", "a"]),
        ("hello checkpoint", Scope::All, vec!["g", "a"]),
        ("cargo", Scope::tenant("acme", "prod"), vec!["a"]),
        ("deploy", Scope::All, vec!["r"]),
    ] {
        let (mut seen, mut cursor) = (Vec::new(), None);
        loop {
            let page = f
                .store
                .list_sessions(&SessionFilter {
                    scope: scope.clone(),
                    search: Some(q.into()),
                    limit: 1,
                    cursor: cursor.take(),
                    ..Default::default()
                })
                .await
                .unwrap();
            seen.extend(page.sessions.into_iter().map(|s| s.session_id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, want, "{q}, one per page");
    }
    assert!(search("command", Scope::All).await.is_empty());
    assert!(search("rock", Scope::All).await.is_empty());
    // A search without words filters nothing.
    assert_eq!(search(" -- ", Scope::All).await.len(), 3);

    // Replacing a record reindexes it; deleting a session unindexes it.
    let mut changed = said("r", 200, "launch the satellite", Context::default());
    f.store.replace(&changed.split_off(1)).await.unwrap();
    assert!(search("rocket", Scope::All).await.is_empty());
    assert_eq!(search("satellite", Scope::All).await, ["r"]);
    assert!(f.store.delete_session("r", &Scope::All).await.unwrap());
    assert!(search("satellite", Scope::All).await.is_empty());
    // Writing a record again changes nothing.
    f.store
        .write(&full_session(
            "a",
            0,
            "m",
            Context::default().with_tenant("acme", "prod"),
        ))
        .await
        .unwrap();
    assert_eq!(search("cargo", Scope::All).await, ["g", "a"]);
}

pub async fn sessions_list_their_tool_calls_token_kinds_and_errors(f: Fixture) {
    f.store
        .write(&full_session(
            "a",
            0,
            "claude-sonnet-4-5",
            Context::default(),
        ))
        .await
        .unwrap();
    let mut x = said("x", 100, "hi", Context::default());
    x.push(failed_call("x", 102));
    f.store.write(&x).await.unwrap();
    f.store
        .write(&said("quiet", 200, "nothing", Context::default()))
        .await
        .unwrap();
    let list = |filter: SessionFilter| {
        let store = f.store.clone();
        async move { store.list_sessions(&filter).await.unwrap().sessions }
    };
    let all = list(SessionFilter::default()).await;
    let a = all.iter().find(|s| s.session_id == "a").unwrap();
    assert_eq!(
        (
            a.tool_calls,
            a.input_tokens,
            a.cache_read_tokens,
            a.cache_write_tokens,
            a.output_tokens,
            a.errors
        ),
        (1, 300, 2000, 20, 150, 1)
    );
    let quiet = all.iter().find(|s| s.session_id == "quiet").unwrap();
    assert_eq!(
        (quiet.tool_calls, quiet.errors, quiet.input_tokens),
        (0, 0, 0)
    );
    let ids = |sessions: Vec<SessionSummary>| {
        sessions
            .into_iter()
            .map(|s| s.session_id)
            .collect::<Vec<_>>()
    };
    let errors = SessionFilter {
        has_errors: true,
        ..Default::default()
    };
    assert_eq!(ids(list(errors).await), ["x", "a"]);
    let provider = SessionFilter {
        provider: Some("openai".into()),
        ..Default::default()
    };
    assert_eq!(ids(list(provider).await), ["x"]);
    let costly = SessionFilter {
        min_cost_usd: Some(0.03),
        ..Default::default()
    };
    assert_eq!(ids(list(costly).await), ["x", "a"]);
    let costlier = SessionFilter {
        min_cost_usd: Some(1.0),
        ..Default::default()
    };
    assert_eq!(ids(list(costlier).await), ["x"]);
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let fixture: Fixture = $open.await;
                        super::$name(fixture).await;
                    }
                };
            }
            case!(a_whole_session_round_trips);
            case!(writing_a_record_twice_stores_it_once);
            case!(a_batch_of_stored_and_new_records_stores_only_the_new);
            case!(replacing_a_record_updates_it_and_every_count);
            case!(a_record_replaced_from_another_session_leaves_both_sessions_counted);
            case!(sql_cost_is_the_reported_cost_else_the_computed_one);
            case!(sync_cursors_are_kept_per_source_and_path);
            case!(sessions_list_newest_first_with_filters);
            case!(pages_cover_every_session_once_and_bad_cursors_are_refused);
            case!(deleting_a_session_removes_all_of_it_and_nothing_else);
            case!(queries_read_and_never_write);
            case!(tenants_see_only_their_own_sessions);
            case!(two_tenants_with_the_same_ids_each_keep_their_own);
            case!(large_and_unicode_payloads_round_trip);
            case!(concurrent_writers_store_each_record_once);
            case!(analytics_match_an_independent_computation);
            case!(percentiles_stay_exact_through_appends_deletions_and_replacements);
            case!(api_keys_store_only_a_hash_and_can_be_revoked);
            case!(calls_list_newest_first_with_filters_cursors_and_tenants);
            case!(a_call_is_read_whole_only_in_its_tenant);
            case!(search_finds_sessions_by_the_words_in_their_records);
            case!(sessions_list_their_tool_calls_token_kinds_and_errors);
        }
    };
}

/// Prices calls as `sonde` does: by the shipped price table.
fn shipped_prices() -> CallPricer {
    Arc::new(|call: &LlmCall| sonde_pricing::PriceTable::global().cost(call))
}

async fn sqlite_file() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("conformance.db"))
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

async fn sqlite_memory() -> Fixture {
    Fixture {
        store: StoreUrl::SqliteMemory
            .open_with(Some(shipped_prices()))
            .await
            .unwrap(),
        _guard: Box::new(()),
    }
}

conformance!(sqlite_file_backend, sqlite_file());
conformance!(sqlite_memory_backend, sqlite_memory());

async fn postgres() -> Fixture {
    let (server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store = PostgresStore::open(&url)
        .await
        .unwrap()
        .priced_by(Some(shipped_prices()));
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
}

conformance!(postgres_backend, postgres());
