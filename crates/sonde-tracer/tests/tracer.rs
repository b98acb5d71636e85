//! SessionTracer: the seed's tests as a floor, then concurrency, hooks that panic,
//! sinks, and the fold of a tracer's JSONL equal to the session the store returns.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use serde_json::json;
use sonde_model::*;
use sonde_store::{Scope, StoreUrl, TraceStore};
use sonde_tracer::*;

async fn memory_store() -> Arc<dyn TraceStore> {
    StoreUrl::SqliteMemory.open().await.unwrap()
}

fn llm(model: &str, input: u64) -> Event {
    Event::Llm(LlmCall {
        provider: Some("openai".into()),
        model_name: model.into(),
        input_tokens: input,
        output_tokens: 7,
        cost_usd: Some(0.001),
        latency_ms: Some(321.0),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_session_lifecycle_is_recorded_and_read_back_whole() {
    let store = memory_store().await;
    let tracer = SessionTracer::new(store.clone()).unwrap();
    let mut meta = Metadata::new();
    meta.insert("experiment".into(), json!("e1"));
    let id = tracer.start_session(None, meta).await.unwrap();
    assert_eq!(
        tracer.current_session_id().await.as_deref(),
        Some(id.as_str())
    );
    tracer
        .start_timestep("turn-1", Some(1), Metadata::new())
        .await
        .unwrap();
    assert_eq!(tracer.current_step_id().await.as_deref(), Some("turn-1"));
    let event_id = tracer.record_event(llm("gpt-5", 10)).await.unwrap();
    let mut m = Metadata::new();
    m.insert("from_system_role".into(), json!("human"));
    m.insert("to_system_role".into(), json!("agent"));
    m.insert("note".into(), json!(1));
    tracer
        .record_message(MessageContent::text("hi"), "user_prompt", m)
        .await
        .unwrap();
    tracer
        .record_event_reward(
            &event_id,
            EventReward {
                value: 0.5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tracer.end_timestep().await.unwrap();
    assert_eq!(tracer.current_step_id().await, None);
    tracer
        .record_outcome_reward(OutcomeReward {
            total_reward: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    let trace = tracer.end_session(true).await.unwrap();
    assert_eq!(tracer.current_session_id().await, None);

    assert_eq!(trace.session_id, id);
    assert_eq!(trace.metadata()["experiment"], "e1");
    assert_eq!(trace.steps.len(), 1);
    assert!(trace.steps[0].completed_at().is_some());
    assert_eq!(trace.events[0].context.step_id.as_deref(), Some("turn-1"));
    let message = &trace.messages[0].value;
    assert_eq!(message.from_role.as_deref(), Some("human"));
    assert_eq!(message.to_role.as_deref(), Some("agent"));
    assert_eq!(message.metadata.keys().collect::<Vec<_>>(), ["note"]);
    assert_eq!(trace.event_rewards[0].value.event_id, event_id);
    assert_eq!(trace.outcome_rewards.len(), 1);
    assert!(trace.ended.is_some());
    // get_session loads everything, events included (the seed's did not).
    assert_eq!(tracer.get_session(&id).await.unwrap(), Some(trace));
    assert!(tracer.delete_session(&id).await.unwrap());
    assert_eq!(tracer.get_session(&id).await.unwrap(), None);
}

#[tokio::test]
async fn a_custom_session_id_is_kept_and_a_second_start_is_refused() {
    let tracer = SessionTracer::new(memory_store().await).unwrap();
    assert_eq!(
        tracer
            .start_session(Some("my-run"), Metadata::new())
            .await
            .unwrap(),
        "my-run"
    );
    let err = tracer
        .start_session(Some("other"), Metadata::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RecordError::SessionAlreadyActive { ref session_id } if session_id == "my-run")
    );
    // A clone shares the current session.
    let err = tracer
        .clone()
        .start_session(None, Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RecordError::SessionAlreadyActive { .. }));
    tracer.end_session(true).await.unwrap();
    assert!(matches!(
        tracer.end_session(true).await.unwrap_err(),
        RecordError::NoActiveSession
    ));
    assert!(matches!(
        tracer.record_event(llm("m", 1)).await.unwrap_err(),
        RecordError::NoActiveSession
    ));
}

#[tokio::test]
async fn starting_a_timestep_ends_the_open_one() {
    let tracer = SessionTracer::new(memory_store().await).unwrap();
    tracer.start_session(None, Metadata::new()).await.unwrap();
    tracer
        .start_timestep("a", Some(1), Metadata::new())
        .await
        .unwrap();
    tracer
        .start_timestep("b", Some(2), Metadata::new())
        .await
        .unwrap();
    let trace = tracer.end_session(true).await.unwrap();
    let steps: Vec<(&str, u32, bool)> = trace
        .steps
        .iter()
        .map(|s| {
            (
                s.step_id.as_str(),
                s.started.as_ref().unwrap().value.step_index,
                s.completed_at().is_some(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [("a", 0, true), ("b", 1, true)],
        "end_session also ends the open step"
    );
    assert!(trace.steps[0].completed_at() <= trace.steps[1].started_at());
}

#[tokio::test]
async fn hooks_run_by_priority_and_a_panicking_hook_is_contained() {
    let tracer = SessionTracer::new(memory_store().await).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [("low", -5), ("high", 10), ("mid", 0), ("mid-later", 0)] {
        let order = order.clone();
        tracer
            .register_hook(
                HookEvent::EventRecorded,
                Arc::new(move |_| order.lock().unwrap().push(name)),
                priority,
            )
            .await;
    }
    tracer
        .register_hook(
            HookEvent::EventRecorded,
            Arc::new(|_| panic!("hook bug")),
            5,
        )
        .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    for event in [
        HookEvent::SessionStart,
        HookEvent::TimestepStart,
        HookEvent::MessageRecorded,
        HookEvent::TimestepEnd,
        HookEvent::SessionEnd,
    ] {
        let seen = seen.clone();
        tracer
            .register_hook(
                event,
                Arc::new(move |ctx| seen.lock().unwrap().push((ctx.event, ctx.record.kind()))),
                0,
            )
            .await;
    }
    tracer.start_session(None, Metadata::new()).await.unwrap();
    tracer
        .start_timestep("t", None, Metadata::new())
        .await
        .unwrap();
    tracer.record_event(llm("m", 1)).await.unwrap();
    tracer
        .record_message(MessageContent::text("x"), "obs", Metadata::new())
        .await
        .unwrap();
    let trace = tracer.end_session(true).await.unwrap();

    assert_eq!(*order.lock().unwrap(), ["high", "mid", "mid-later", "low"]);
    assert_eq!(tracer.hooks().panics(), 1);
    assert_eq!(
        trace.events.len(),
        1,
        "the panicking hook did not stop recording"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (HookEvent::SessionStart, "session_started"),
            (HookEvent::TimestepStart, "step_started"),
            (HookEvent::MessageRecorded, "message"),
            (HookEvent::TimestepEnd, "step_ended"),
            (HookEvent::SessionEnd, "session_ended"),
        ]
    );
}

#[tokio::test]
async fn with_auto_save_off_nothing_is_written_until_end_session_saves() {
    let store = memory_store().await;
    let tracer = SessionTracer::new(store.clone()).unwrap();
    tracer.set_auto_save(false);
    tracer
        .start_session(Some("kept"), Metadata::new())
        .await
        .unwrap();
    tracer.record_event(llm("m", 1)).await.unwrap();
    tracer.flush().await.unwrap();
    assert!(
        store
            .get_session("kept", &Scope::All)
            .await
            .unwrap()
            .is_none()
    );
    let trace = tracer.end_session(true).await.unwrap();
    assert_eq!(
        store.get_session("kept", &Scope::All).await.unwrap(),
        Some(trace)
    );

    tracer
        .start_session(Some("discarded"), Metadata::new())
        .await
        .unwrap();
    tracer.record_event(llm("m", 1)).await.unwrap();
    let trace = tracer.end_session(false).await.unwrap();
    assert_eq!(trace.events.len(), 1, "the trace is still returned");
    tracer.flush().await.unwrap();
    assert!(
        store
            .get_session("discarded", &Scope::All)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_record_concurrently_through_handles() {
    let store = memory_store().await;
    let tracer = SessionTracer::new(store.clone()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let tracer = tracer.clone();
        tasks.push(tokio::spawn(async move {
            let session = tracer
                .session(Some(&format!("agent-{i}")), Metadata::new())
                .await
                .unwrap();
            for turn in 0..5 {
                session
                    .start_timestep(&format!("turn-{turn}"), Some(turn), Metadata::new())
                    .await
                    .unwrap();
                for _ in 0..20 {
                    session.record_event(llm("gpt-5", 3)).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            session.end(true).await.unwrap()
        }));
    }
    for task in tasks {
        let trace = task.await.unwrap();
        assert_eq!(trace.events.len(), 100);
        assert_eq!(trace.steps.len(), 5);
        let stored = store
            .get_session(&trace.session_id, &Scope::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, trace);
    }
}

#[tokio::test]
async fn the_fold_of_the_tracers_jsonl_equals_the_session_the_store_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/trace.jsonl");
    let store = memory_store().await;
    let tracer = SessionTracer::builder()
        .store(store.clone())
        .sink(Arc::new(JsonlSink::create(&path).unwrap()))
        .tenant("acme", "prod")
        .build()
        .unwrap();
    let id = tracer.start_session(None, Metadata::new()).await.unwrap();
    for turn in 0..3 {
        tracer
            .start_timestep(&format!("t{turn}"), Some(turn), Metadata::new())
            .await
            .unwrap();
        let e = tracer
            .record_event(llm("claude-sonnet-4-5", 100 + turn as u64))
            .await
            .unwrap();
        tracer
            .record_event(Event::Runtime(RuntimeAction {
                tool_name: Some("Read".into()),
                arguments: Some(json!({"p": turn})),
                ..Default::default()
            }))
            .await
            .unwrap();
        tracer
            .record_event_reward(
                &e,
                EventReward {
                    value: 1.0,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    tracer.end_session(true).await.unwrap();

    let records: Vec<Record> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| Record::from_json_line(l).unwrap())
        .collect();
    let folded = SessionTrace::from_records(records).remove(0);
    let stored = tracer.get_session(&id).await.unwrap().unwrap();
    assert_eq!(folded, stored);
    assert_eq!(stored.events[0].context.org.as_deref(), Some("acme"));
    // The tenant scope hides nothing of its own, and other tenants see nothing.
    assert!(
        store
            .get_session(&id, &Scope::tenant("other", "prod"))
            .await
            .unwrap()
            .is_none()
    );
}

struct Failing;
impl TraceSink for Failing {
    fn write(&self, _: &[Record]) -> Result<(), SinkError> {
        Err(SinkError::Io {
            path: "failing".into(),
            cause: std::io::Error::other("disk on fire"),
        })
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Record>>);
impl TraceSink for Collect {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

#[test]
fn a_failing_sink_in_a_tee_does_not_stop_the_sinks_after_it() {
    let collect = Arc::new(Collect::default());
    let tee = TeeSink::new(vec![Arc::new(Failing), collect.clone(), Arc::new(Failing)]);
    let r = Record::new(
        Context::session("s"),
        Body::SessionStarted(SessionStarted::default()),
    );
    let err = tee.write(std::slice::from_ref(&r)).unwrap_err();
    assert!(err.to_string().contains("disk on fire"));
    assert_eq!(*collect.0.lock().unwrap(), vec![r]);
}

#[test]
fn a_tee_set_to_stop_at_the_first_error_gives_the_batch_to_no_sink_after_it() {
    let before = Arc::new(Collect::default());
    let after = Arc::new(Collect::default());
    let tee =
        TeeSink::new(vec![before.clone(), Arc::new(Failing), after.clone()]).stop_at_first_error();
    let r = Record::new(
        Context::session("s"),
        Body::SessionStarted(SessionStarted::default()),
    );
    let err = tee.write(std::slice::from_ref(&r)).unwrap_err();
    assert!(err.to_string().contains("disk on fire"));
    assert_eq!(
        *before.0.lock().unwrap(),
        vec![r],
        "the sink before it has the batch"
    );
    assert!(
        after.0.lock().unwrap().is_empty(),
        "the sink after it does not"
    );
}

#[tokio::test]
async fn end_session_reports_a_sink_failure() {
    let tracer = SessionTracer::with_sink(Arc::new(Failing)).unwrap();
    tracer.start_session(None, Metadata::new()).await.unwrap();
    let err = tracer.end_session(true).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(matches!(
        tracer.get_session("x").await.unwrap_err(),
        LookupError::NoStore
    ));
}

#[test]
fn jsonl_sink_appends_across_reopenings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c.jsonl");
    for _ in 0..2 {
        let sink = JsonlSink::create(&path).unwrap();
        sink.write(&[Record::new(
            Context::session("s"),
            Body::SessionEnded(SessionEnded::default()),
        )])
        .unwrap();
        sink.flush().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| Record::from_json_line(l).is_ok()));
}

#[tokio::test]
async fn dropping_the_tracer_writes_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    {
        let tracer = SessionTracer::with_sink(Arc::new(JsonlSink::create(&path).unwrap())).unwrap();
        let s = tracer.session(None, Metadata::new()).await.unwrap();
        for _ in 0..1000 {
            s.record_event(llm("m", 1)).await.unwrap();
        }
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        1001
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracer_can_record_through_the_writer_and_its_spool() {
    let dir = tempfile::tempdir().unwrap();
    let store = memory_store().await;
    let writer = Arc::new(
        sonde_store::Writer::start(
            store.clone(),
            sonde_store::WriterConfig {
                spool_dir: Some(dir.path().join("spool")),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let tracer = SessionTracer::builder()
        .writer(writer.clone())
        .build()
        .unwrap();
    let session = tracer
        .session(Some("through-writer"), Metadata::new())
        .await
        .unwrap();
    for i in 0..500 {
        session.record_event(llm("gpt-5", i)).await.unwrap();
    }
    let trace = session.end(true).await.unwrap();
    assert_eq!(
        tracer.get_session("through-writer").await.unwrap(),
        Some(trace)
    );
    let d = writer.diagnostics();
    assert_eq!(
        (d.enqueue_accepted_total, d.written, d.total_dropped_total),
        (502, 502, 0)
    );
    assert!(
        writer
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .complete
    );
}
