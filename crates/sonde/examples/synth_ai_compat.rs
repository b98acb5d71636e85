//! Seed 000's example (`synth_ai_core::tracing::SessionTracer`'s documentation), adapted
//! only in its `use` lines: the same program records into a Sonde store through
//! `sonde::compat::synth_ai`. The seed elides the event's fields (`LMCAISEvent { ... }`);
//! they are filled in here as its own tests fill them. Its statements run in `main`,
//! as a documentation example's do.
//!
//! ```text
//! cargo run --example synth_ai_compat
//! ```
#![allow(clippy::print_stdout)]

use sonde::compat::synth_ai::{
    BaseEventFields, LMCAISEvent, LibsqlTraceStorage, SessionTracer, TracingEvent,
};
use std::sync::Arc;

/// The seed's example (public, so that `tests/synth_ai_compat.rs` runs it).
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let storage = Arc::new(LibsqlTraceStorage::new_memory().await?);
    let tracer = SessionTracer::new(storage);
    let session_id = tracer.start_session(None, Default::default()).await?;
    tracer
        .start_timestep("step-1", Some(1), Default::default())
        .await?;
    tracer
        .record_event(TracingEvent::Cais(LMCAISEvent {
            base: BaseEventFields::new("llm-agent"),
            model_name: "gpt-4".to_string(),
            provider: Some("openai".to_string()),
            input_tokens: Some(150),
            output_tokens: Some(50),
            cost_usd: Some(0.006),
            latency_ms: Some(1200),
            ..Default::default()
        }))
        .await?;
    tracer.end_timestep().await?;
    let trace = tracer.end_session(true).await?;

    println!(
        "session {session_id}: {} events in {} timesteps",
        trace.event_history.len(),
        trace.session_time_steps.len()
    );
    Ok(())
}
