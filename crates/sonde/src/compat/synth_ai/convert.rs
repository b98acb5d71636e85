//! Seed 000's types to Sonde's and back.

use std::collections::HashMap;

use serde_json::Value;

use super::models::{
    BaseEventFields, EnvironmentEvent, LMCAISEvent, MarkovBlanketMessage, MessageContent,
    RuntimeEvent, SessionTimeStep, SessionTrace, TimeRecord, TracingEvent,
};
use super::tracer::TracingError;
use crate::{
    Context, Entry, EnvironmentFeedback, Event, LlmCall, LlmCallRecord, Message, Metadata,
    Occurrence, RuntimeAction, Timestamp,
};

pub(super) fn metadata(map: HashMap<String, Value>) -> Metadata {
    map.into_iter().collect()
}

fn map(metadata: &Metadata) -> HashMap<String, Value> {
    metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn timestamp(time: &TimeRecord) -> Result<Timestamp, TracingError> {
    let micros = (time.event_time * 1e6).round();
    if !micros.is_finite()
        || micros < Timestamp::MIN.as_micros() as f64
        || micros > Timestamp::MAX.as_micros() as f64
    {
        return Err(TracingError::InvalidState(format!(
            "time_record.event_time: {} is not a time in seconds since the epoch",
            time.event_time
        )));
    }
    Ok(Timestamp::from_micros(micros as i64))
}

fn time_record(at: Timestamp, message_time: Option<i64>) -> TimeRecord {
    TimeRecord {
        event_time: at.as_micros() as f64 / 1e6,
        message_time,
    }
}

fn count(value: Option<i32>, field: &str) -> Result<u64, TracingError> {
    u64::try_from(value.unwrap_or(0))
        .map_err(|_| TracingError::InvalidState(format!("{field}: {value:?} is negative")))
}

fn small(n: u64) -> Option<i32> {
    Some(i32::try_from(n).unwrap_or(i32::MAX))
}

/// The Sonde event a seed event records, and when and where it happened.
// Fields added to the model's payloads later (a record level, say) take their defaults.
#[allow(clippy::needless_update)]
pub(super) fn event_to_sonde(event: TracingEvent) -> Result<(Event, Occurrence), TracingError> {
    let at = timestamp(event.time_record())?;
    let mut occurrence = Occurrence {
        timestamp: Some(at),
        ..Default::default()
    };
    let base = |b: BaseEventFields| {
        (
            Some(b.system_instance_id),
            metadata(b.metadata),
            b.event_metadata.unwrap_or_default(),
        )
    };
    let event = match event {
        TracingEvent::Cais(e) => {
            let call_records = e
                .call_records
                .unwrap_or_default()
                .into_iter()
                .map(|r| match serde_json::to_value(r) {
                    Ok(Value::Object(map)) => Ok(LlmCallRecord {
                        metadata: map,
                        ..Default::default()
                    }),
                    Ok(_) => Ok(LlmCallRecord::default()),
                    Err(e) => Err(TracingError::Serialization(e.to_string())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            occurrence.span_id = e.span_id;
            occurrence.trace_id = e.trace_id;
            let (system_instance_id, metadata, event_metadata) = base(e.base);
            Event::Llm(LlmCall {
                system_instance_id,
                provider: e.provider,
                model_name: e.model_name,
                input_tokens: count(e.input_tokens, "input_tokens")?,
                output_tokens: count(e.output_tokens, "output_tokens")?,
                cost_usd: e.cost_usd,
                latency_ms: e.latency_ms.map(f64::from),
                call_records,
                system_state_before: e.system_state_before,
                system_state_after: e.system_state_after,
                metadata,
                event_metadata,
                ..Default::default()
            })
        }
        TracingEvent::Environment(e) => {
            let (system_instance_id, metadata, event_metadata) = base(e.base);
            Event::Environment(EnvironmentFeedback {
                system_instance_id,
                reward: Some(e.reward),
                terminated: e.terminated,
                truncated: e.truncated,
                system_state_before: e.system_state_before,
                system_state_after: e.system_state_after,
                metadata,
                event_metadata,
                ..Default::default()
            })
        }
        TracingEvent::Runtime(e) => {
            let (system_instance_id, metadata, event_metadata) = base(e.base);
            Event::Runtime(RuntimeAction {
                system_instance_id,
                actions: e.actions.into_iter().map(Value::from).collect(),
                metadata,
                event_metadata,
                ..Default::default()
            })
        }
    };
    Ok((event, occurrence))
}

fn base_of(
    system_instance_id: &Option<String>,
    metadata: &Metadata,
    event_metadata: &[Value],
    at: Timestamp,
) -> BaseEventFields {
    BaseEventFields {
        system_instance_id: system_instance_id.clone().unwrap_or_default(),
        time_record: time_record(at, None),
        metadata: map(metadata),
        event_metadata: (!event_metadata.is_empty()).then(|| event_metadata.to_vec()),
    }
}

/// The seed's view of a Sonde event; `None` for kinds the seed does not have.
pub(super) fn event_from_sonde(entry: &Entry<Event>) -> Option<TracingEvent> {
    let at = entry.timestamp;
    Some(match &entry.value {
        Event::Llm(c) => TracingEvent::Cais(LMCAISEvent {
            base: base_of(&c.system_instance_id, &c.metadata, &c.event_metadata, at),
            model_name: c.model_name.clone(),
            provider: c.provider.clone(),
            input_tokens: small(c.input_tokens),
            output_tokens: small(c.output_tokens),
            total_tokens: small(c.input_tokens.saturating_add(c.output_tokens)),
            cost_usd: c.cost_usd,
            latency_ms: c.latency_ms.map(|ms| ms.round() as i32),
            span_id: entry.context.span_id.clone(),
            trace_id: entry.context.trace_id.clone(),
            call_records: (!c.call_records.is_empty()).then(|| {
                c.call_records
                    .iter()
                    .filter_map(|r| serde_json::from_value(Value::Object(r.metadata.clone())).ok())
                    .collect()
            }),
            system_state_before: c.system_state_before.clone(),
            system_state_after: c.system_state_after.clone(),
        }),
        Event::Environment(f) => TracingEvent::Environment(EnvironmentEvent {
            base: base_of(&f.system_instance_id, &f.metadata, &f.event_metadata, at),
            reward: f.reward.unwrap_or(0.0),
            terminated: f.terminated,
            truncated: f.truncated,
            system_state_before: f.system_state_before.clone(),
            system_state_after: f.system_state_after.clone(),
        }),
        Event::Runtime(a) => TracingEvent::Runtime(RuntimeEvent {
            base: base_of(&a.system_instance_id, &a.metadata, &a.event_metadata, at),
            actions: a
                .actions
                .iter()
                .filter_map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect(),
        }),
        _ => return None,
    })
}

/// Sonde's message content for the seed's (its JSON text parsed when it is JSON).
pub(super) fn content_to_sonde(content: MessageContent) -> crate::MessageContent {
    crate::MessageContent {
        json: content
            .json_payload
            .as_deref()
            .map(|text| serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()))),
        text: content.text,
    }
}

fn message_from_sonde(entry: &Entry<Message>) -> MarkovBlanketMessage {
    let m = &entry.value;
    MarkovBlanketMessage {
        content: MessageContent {
            text: m.content.text.clone(),
            json_payload: m.content.json.as_ref().map(Value::to_string),
        },
        message_type: m.message_type.clone(),
        time_record: time_record(entry.timestamp, m.message_time),
        metadata: map(&m.seed_metadata()),
    }
}

/// A Sonde session in the seed's shape.
pub(super) fn trace_from_sonde(trace: &crate::SessionTrace) -> SessionTrace {
    let created_at = trace
        .created_at()
        .unwrap_or(Timestamp::from_micros(0))
        .to_datetime();
    let in_step = |ctx: &Context, step: &str| ctx.step_id.as_deref() == Some(step);
    let steps = trace
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let started = step.started.as_ref();
            SessionTimeStep {
                step_id: step.step_id.clone(),
                step_index: started.map_or(i as i32, |s| {
                    i32::try_from(s.value.step_index).unwrap_or(i32::MAX)
                }),
                timestamp: step.started_at().map_or(created_at, Timestamp::to_datetime),
                turn_number: started
                    .and_then(|s| s.value.turn_number)
                    .and_then(|n| i32::try_from(n).ok()),
                events: trace
                    .events
                    .iter()
                    .filter(|e| in_step(&e.context, &step.step_id))
                    .filter_map(event_from_sonde)
                    .collect(),
                markov_blanket_messages: trace
                    .messages
                    .iter()
                    .filter(|m| in_step(&m.context, &step.step_id))
                    .map(message_from_sonde)
                    .collect(),
                step_metadata: started.map(|s| map(&s.value.metadata)).unwrap_or_default(),
                completed_at: step.completed_at().map(Timestamp::to_datetime),
            }
        })
        .collect();
    SessionTrace {
        session_id: trace.session_id.clone(),
        created_at,
        session_time_steps: steps,
        event_history: trace.events.iter().filter_map(event_from_sonde).collect(),
        markov_blanket_message_history: trace.messages.iter().map(message_from_sonde).collect(),
        metadata: map(trace.metadata()),
    }
}
