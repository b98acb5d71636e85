//! Seed 000's code on Sonde (`sonde::compat::synth_ai`): its example runs, and its
//! tracer, model and hook behaviour holds, with integer ids and the seed's errors; what
//! it records is an ordinary Sonde session.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/synth_ai_compat.rs"]
mod example;

use std::sync::{Arc, Mutex};

use sonde::compat::synth_ai::*;

async fn create_test_tracer() -> SessionTracer {
    let storage = Arc::new(LibsqlTraceStorage::new_memory().await.unwrap());
    SessionTracer::new(storage)
}

fn llm_event(model: &str) -> TracingEvent {
    TracingEvent::Cais(LMCAISEvent {
        base: BaseEventFields::new("test-system"),
        model_name: model.to_string(),
        provider: Some("openai".to_string()),
        input_tokens: Some(100),
        output_tokens: Some(50),
        ..Default::default()
    })
}

#[test]
fn the_seeds_example_runs() {
    example::main().unwrap();
}

#[tokio::test]
async fn a_session_starts_and_ends() {
    let tracer = create_test_tracer().await;
    let session_id = tracer
        .start_session(None, Default::default())
        .await
        .unwrap();
    assert!(!session_id.is_empty());
    assert_eq!(tracer.current_session_id().await, Some(session_id.clone()));
    let trace = tracer.end_session(true).await.unwrap();
    assert_eq!(trace.session_id, session_id);
    assert!(tracer.current_session_id().await.is_none());
}

#[tokio::test]
async fn timesteps_events_and_messages_land_in_their_step() {
    let tracer = create_test_tracer().await;
    tracer
        .start_session(None, Default::default())
        .await
        .unwrap();
    tracer
        .start_timestep("step-1", Some(1), Default::default())
        .await
        .unwrap();
    assert_eq!(tracer.current_step_id().await, Some("step-1".to_string()));
    let event_id = tracer.record_event(llm_event("gpt-4")).await.unwrap();
    assert_eq!(event_id, Some(1));
    let message_id = tracer
        .record_message(
            MessageContent::from_text("Hello, world!"),
            "user",
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(message_id, Some(2));
    tracer.end_timestep().await.unwrap();
    assert!(tracer.current_step_id().await.is_none());
    let trace = tracer.end_session(true).await.unwrap();
    assert_eq!(trace.session_time_steps.len(), 1);
    assert_eq!(trace.session_time_steps[0].turn_number, Some(1));
    assert_eq!(trace.session_time_steps[0].events.len(), 1);
    assert_eq!(trace.event_history.len(), 1);
    assert_eq!(trace.markov_blanket_message_history.len(), 1);
    let TracingEvent::Cais(call) = &trace.event_history[0] else {
        panic!("not an LLM call: {:?}", trace.event_history[0]);
    };
    assert_eq!(
        (call.input_tokens, call.output_tokens, call.total_tokens),
        (Some(100), Some(50), Some(150))
    );
}

#[tokio::test]
async fn a_custom_session_id_is_kept_and_a_second_session_is_refused() {
    let tracer = create_test_tracer().await;
    let session_id = tracer
        .start_session(Some("my-custom-id"), Default::default())
        .await
        .unwrap();
    assert_eq!(session_id, "my-custom-id");
    let again = tracer.start_session(None, Default::default()).await;
    assert!(matches!(again, Err(TracingError::SessionAlreadyActive(id)) if id == "my-custom-id"));
}

#[tokio::test]
async fn errors_are_the_seeds() {
    let tracer = create_test_tracer().await;
    let err = tracer.record_event(llm_event("gpt-4")).await.unwrap_err();
    assert!(matches!(err, TracingError::NoActiveSession));
    assert_eq!(err.to_string(), "no active session");
    tracer
        .start_session(None, Default::default())
        .await
        .unwrap();
    assert!(matches!(
        tracer.end_timestep().await,
        Err(TracingError::NoActiveTimestep)
    ));
    assert!(matches!(
        tracer.record_event_reward(99, EventReward::default()).await,
        Err(TracingError::InvalidState(_))
    ));
}

#[tokio::test]
async fn a_stored_session_comes_back_with_its_events_and_rewards_by_integer_id() {
    let tracer = create_test_tracer().await;
    let session_id = tracer
        .start_session(None, Default::default())
        .await
        .unwrap();
    tracer
        .start_timestep("step-1", Some(1), Default::default())
        .await
        .unwrap();
    let event_id = tracer
        .record_event(llm_event("gpt-4"))
        .await
        .unwrap()
        .unwrap();
    let reward = EventReward {
        reward_value: 0.5,
        source: Some("judge".into()),
        ..Default::default()
    };
    assert!(
        tracer
            .record_event_reward(event_id, reward)
            .await
            .unwrap()
            .is_some()
    );
    let outcome = OutcomeReward {
        total_reward: 1.0,
        total_steps: 1,
        ..Default::default()
    };
    assert!(
        tracer
            .record_outcome_reward(outcome)
            .await
            .unwrap()
            .is_some()
    );
    tracer.end_session(true).await.unwrap();

    // Unlike the seed's, the retrieved session has its events.
    let retrieved = tracer.get_session(&session_id).await.unwrap().unwrap();
    assert_eq!(retrieved.session_id, session_id);
    assert_eq!(retrieved.num_events(), 1);
    assert_eq!(retrieved.session_time_steps[0].events.len(), 1);
    let rows = tracer
        .query(
            "SELECT value FROM event_rewards WHERE session_id = ?",
            vec![session_id.clone().into()].into(),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(tracer.delete_session(&session_id).await.unwrap());
    assert!(tracer.get_session(&session_id).await.unwrap().is_none());
}

#[tokio::test]
async fn hooks_run_by_priority_with_the_seeds_context() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut hooks = HookManager::new();
    for (n, priority) in [(1, 10), (2, 20), (3, 5)] {
        let order = order.clone();
        hooks.register(
            HookEvent::EventRecorded,
            Arc::new(move |_| order.lock().unwrap().push(n)),
            priority,
        );
    }
    let seen = Arc::new(Mutex::new(None));
    let seen_by_hook = seen.clone();
    hooks.on(
        HookEvent::EventRecorded,
        Arc::new(move |ctx: &HookContext| {
            *seen_by_hook.lock().unwrap() = Some((
                ctx.session_id.clone(),
                ctx.step_id.clone(),
                ctx.event.is_some(),
            ));
        }),
    );
    assert_eq!(hooks.hook_count(HookEvent::EventRecorded), 4);
    let storage = Arc::new(LibsqlTraceStorage::new_memory().await.unwrap());
    let tracer = SessionTracer::with_hooks(storage, hooks);
    tracer
        .start_session(Some("s"), Default::default())
        .await
        .unwrap();
    tracer
        .start_timestep("t", None, Default::default())
        .await
        .unwrap();
    tracer.record_event(llm_event("gpt-4")).await.unwrap();
    assert_eq!(*order.lock().unwrap(), vec![2, 1, 3]);
    assert_eq!(
        *seen.lock().unwrap(),
        Some((Some("s".into()), Some("t".into()), true))
    );
}

#[test]
fn the_seeds_models_serialise_as_the_seeds() {
    let json = serde_json::to_string(&llm_event("gpt-4")).unwrap();
    assert!(json.contains("\"event_type\":\"cais\""));
    let parsed: TracingEvent = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.event_type(), EventType::Cais);
    assert_eq!(MessageContent::from_text("hello").as_text(), Some("hello"));
    assert!(
        MessageContent::from_json(&serde_json::json!({"key": "value"}))
            .json_payload
            .is_some()
    );
    let mut trace = SessionTrace::new("test-session");
    trace
        .session_time_steps
        .push(SessionTimeStep::new("step-1", 0));
    assert_eq!(trace.num_timesteps(), 1);
    let round = serde_json::to_value(&trace).unwrap();
    let back: SessionTrace = serde_json::from_value(round).unwrap();
    assert_eq!(back, trace);
    assert_eq!(
        LLMMessage::new("user", "Hello, world!").text(),
        Some("Hello, world!")
    );
}

#[tokio::test]
async fn what_the_seeds_code_records_is_an_ordinary_sonde_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.db");
    let storage = Arc::new(
        LibsqlTraceStorage::new_file(path.to_str().unwrap())
            .await
            .unwrap(),
    );
    let tracer = SessionTracer::new(storage);
    let session_id = tracer
        .start_session(None, Default::default())
        .await
        .unwrap();
    tracer.record_event(llm_event("gpt-4")).await.unwrap();
    tracer.end_session(true).await.unwrap();
    let store = sonde::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let trace = store
        .get_session(&session_id, &sonde::store::Scope::All)
        .await
        .unwrap()
        .unwrap();
    let call = trace.events[0].value.as_llm().unwrap();
    assert_eq!(
        (
            call.model_name.as_str(),
            call.input_tokens,
            call.output_tokens
        ),
        ("gpt-4", 100, 50)
    );
}
