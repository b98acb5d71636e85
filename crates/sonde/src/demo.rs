//! The demo session: what `sonde demo` records and `examples/quickstart.rs` shows —
//! one agent fixing a failing test in two turns, with LLM calls (tokens, cost,
//! latency), a tool call, messages both ways, an event reward and an outcome reward.

use serde_json::json;

use crate::{
    Event, EventReward, LlmCall, Message, MessageContent, Metadata, OutcomeReward, RecordError,
    RuntimeAction, SessionTrace, SessionTracer,
};

/// Records the demo session through `tracer` (which must have no active session) and
/// returns it as ended and saved.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde::store::StoreUrl::parse("sqlite::memory:")?.open().await?;
/// let trace = sonde::demo::record(&sonde::SessionTracer::new(store)?).await?;
/// assert_eq!((trace.steps.len(), trace.events.len(), trace.messages.len()), (2, 3, 2));
/// # Ok(()) }
/// ```
pub async fn record(tracer: &SessionTracer) -> Result<SessionTrace, RecordError> {
    let mut metadata = Metadata::new();
    metadata.insert("agent".into(), json!("quickstart"));
    metadata.insert("task".into(), json!("fix the failing test"));
    tracer.start_session(None, metadata).await?;

    // Turn 1: the user asks, the model answers with a tool call, the tool runs.
    tracer
        .start_timestep("turn-1", Some(1), Metadata::new())
        .await?;
    tracer
        .record_message_with(Message {
            content: MessageContent::text("The test `parses_dates` fails. Fix it."),
            message_type: "user_prompt".into(),
            from_role: Some("human".into()),
            to_role: Some("agent".into()),
            ..Default::default()
        })
        .await?;
    tracer
        .record_event(Event::Llm(LlmCall {
            provider: Some("anthropic".into()),
            model_name: "claude-sonnet-4-5".into(),
            input_tokens: 1_850,
            cache_write_tokens: 12_000,
            output_tokens: 160,
            cost_usd: Some(0.0529),
            latency_ms: Some(2_310.0),
            time_to_first_token_ms: Some(640.0),
            stop_reason: Some("tool_use".into()),
            ..Default::default()
        }))
        .await?;
    tracer
        .record_event(Event::Runtime(RuntimeAction {
            tool_name: Some("Bash".into()),
            tool_call_id: Some("toolu_01".into()),
            arguments: Some(json!({"command": "cargo test parses_dates"})),
            result: Some(json!("test parses_dates ... FAILED")),
            duration_ms: Some(4_200.0),
            ..Default::default()
        }))
        .await?;
    tracer.end_timestep().await?;

    // Turn 2: the model fixes the bug and replies.
    tracer
        .start_timestep("turn-2", Some(2), Metadata::new())
        .await?;
    let fix = tracer
        .record_event(Event::Llm(LlmCall {
            provider: Some("anthropic".into()),
            model_name: "claude-sonnet-4-5".into(),
            input_tokens: 420,
            cache_read_tokens: 13_850,
            output_tokens: 610,
            cost_usd: Some(0.0146),
            latency_ms: Some(5_020.0),
            time_to_first_token_ms: Some(580.0),
            stop_reason: Some("end_turn".into()),
            ..Default::default()
        }))
        .await?;
    tracer
        .record_message_with(Message {
            content: MessageContent::text("Fixed: the parser now accepts a trailing Z."),
            message_type: "assistant_reply".into(),
            from_role: Some("agent".into()),
            to_role: Some("human".into()),
            ..Default::default()
        })
        .await?;
    tracer
        .record_event_reward(
            &fix,
            EventReward {
                value: 1.0,
                reward_type: Some("tests_pass".into()),
                source: Some("runner".into()),
                ..Default::default()
            },
        )
        .await?;
    tracer.end_timestep().await?;

    tracer
        .record_outcome_reward(OutcomeReward {
            total_reward: 1.0,
            achievements: vec!["tests_pass".into()],
            total_steps: Some(2),
            ..Default::default()
        })
        .await?;
    tracer.end_session(true).await
}
