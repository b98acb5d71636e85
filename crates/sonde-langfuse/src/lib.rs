//! Langfuse's ingestion API (`POST /api/public/ingestion`): records become a trace per
//! session and observations in it — generations for LLM calls (usage and cost
//! details), spans for tool calls, events for messages and custom events — nested by
//! span id. Batches stay under Langfuse's 3.5 MB limit.
//!
//! Each ingestion event has a fresh envelope id (Langfuse de-duplicates envelopes) and
//! the observation's own id in its body, so sending a record again updates it.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};
use sonde_model::{Body, Event, Record, Timestamp, new_id};

use sonde_model::{Attempt, SinkError, TraceSink};

/// Langfuse refuses batches over 3.5 MB; stay well under it.
pub const MAX_BATCH_BYTES: usize = 3_000_000;

/// Where and as whom to send. Its `Debug` form hides the secret key.
///
/// ```
/// let config = sonde_langfuse::LangfuseConfig {
///     host: "http://127.0.0.1:3000".into(),
///     public_key: "pk-lf-1".into(),
///     secret_key: "sk-lf-2".into(),
/// };
/// assert!(!format!("{config:?}").contains("sk-lf-2"));
/// ```
#[derive(Clone)]
pub struct LangfuseConfig {
    /// The Langfuse base URL, e.g. `https://cloud.langfuse.com`.
    pub host: String,
    /// The project's public key.
    pub public_key: String,
    /// The project's secret key.
    pub secret_key: String,
}

impl std::fmt::Debug for LangfuseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LangfuseConfig")
            .field("host", &self.host)
            .field("public_key", &self.public_key)
            .field("secret_key", &"***")
            .finish()
    }
}

impl LangfuseConfig {
    /// From `LANGFUSE_HOST` (default `https://cloud.langfuse.com`),
    /// `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY`.
    pub fn from_env() -> Result<Self, MissingVariable> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| MissingVariable { name });
        Ok(Self {
            host: std::env::var("LANGFUSE_HOST")
                .unwrap_or_else(|_| "https://cloud.langfuse.com".into()),
            public_key: var("LANGFUSE_PUBLIC_KEY")?,
            secret_key: var("LANGFUSE_SECRET_KEY")?,
        })
    }
}

/// A variable [`LangfuseConfig::from_env`] needs is not set.
///
/// ```
/// let e = sonde_langfuse::MissingVariable { name: "LANGFUSE_SECRET_KEY" };
/// assert_eq!(e.to_string(), "langfuse: LANGFUSE_SECRET_KEY is not set");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("langfuse: {name} is not set")]
pub struct MissingVariable {
    /// The variable.
    pub name: &'static str,
}

/// Sends records to Langfuse (a [`TraceSink`]: a sync sends through it, wrapped in
/// `sonde_sync::SinkTarget`; a tracer can use it too).
pub struct LangfuseSink {
    config: LangfuseConfig,
    url: String,
    client: reqwest::blocking::Client,
}

impl LangfuseSink {
    /// A sink for `config`.
    pub fn new(config: LangfuseConfig) -> Result<Self, SinkError> {
        let url = format!("{}/api/public/ingestion", config.host.trim_end_matches('/'));
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SinkError::Export {
                endpoint: url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            config,
            url,
            client,
        })
    }

    fn fail(&self, reason: impl Into<String>) -> SinkError {
        SinkError::Export {
            endpoint: self.url.clone(),
            reason: reason.into(),
        }
    }

    fn post(&self, batch: &[Value]) -> Result<(), SinkError> {
        let body =
            serde_json::to_vec(&json!({ "batch": batch })).map_err(|e| self.fail(e.to_string()))?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.config.public_key, self.config.secret_key
        ));
        sonde_otlp::EXPORT_RETRY
            .run_blocking(|| {
                let answer = self
                    .client
                    .post(&self.url)
                    .header("authorization", format!("Basic {auth}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send();
                let response = sonde_otlp::export_answer(answer)?;
                // 207: per-event results; input errors come back here, not as 4xx.
                let answer: Value = response.json().unwrap_or(Value::Null);
                match answer["errors"].as_array() {
                    Some(errors) if !errors.is_empty() => Err(Attempt::Fail(format!(
                        "{} of {} events refused, first: {}",
                        errors.len(),
                        batch.len(),
                        errors[0]
                    ))),
                    _ => Ok(()),
                }
            })
            .map_err(|reason| self.fail(reason))
    }
}

fn iso(ts: Timestamp) -> String {
    ts.to_string()
}

fn plus_ms(ts: Timestamp, ms: Option<f64>) -> String {
    let end = ms.map_or(ts.as_micros(), |ms| ts.as_micros() + (ms * 1000.0) as i64);
    iso(Timestamp::from_micros(end))
}

/// The observation id of a record: its span id, else its record id.
fn observation_id(record: &Record) -> String {
    record
        .context
        .span_id
        .clone()
        .unwrap_or_else(|| record.id.clone())
}

fn trace_of(record: &Record) -> String {
    record
        .context
        .trace_id
        .clone()
        .unwrap_or_else(|| record.context.session_id.clone())
}

fn envelope(kind: &str, ts: Timestamp, body: Value) -> Value {
    json!({"id": new_id(), "timestamp": iso(ts), "type": kind, "body": body})
}

/// The ingestion events of some records: a `trace-create` per session they touch, then
/// an observation per record that has one.
pub fn ingestion_events(records: &[Record]) -> Vec<Value> {
    let mut events = Vec::with_capacity(records.len() + 1);
    // Per trace: the record that opens it, and its session metadata when known.
    type Opening<'a> = (&'a Record, Option<&'a Map<String, Value>>);
    let mut traces: BTreeMap<String, Opening<'_>> = BTreeMap::new();
    for record in records {
        let entry = traces.entry(trace_of(record)).or_insert((record, None));
        if let Body::SessionStarted(s) = &record.body {
            *entry = (record, Some(&s.metadata));
        }
    }
    for (trace, (record, metadata)) in &traces {
        let mut body = json!({
            "id": trace,
            "sessionId": record.context.session_id,
            "name": metadata
                .and_then(|m| m.get("source"))
                .and_then(Value::as_str)
                .map_or("session".to_owned(), |s| format!("{s} session")),
        });
        if let Some(metadata) = metadata {
            body["timestamp"] = json!(iso(record.timestamp));
            body["metadata"] = Value::Object((*metadata).clone());
        }
        events.push(envelope("trace-create", record.timestamp, body));
    }
    for record in records {
        let mut body = json!({
            "id": observation_id(record),
            "traceId": trace_of(record),
            "startTime": iso(record.timestamp),
        });
        if let Some(parent) = &record.context.parent_span_id {
            body["parentObservationId"] = json!(parent);
        }
        let kind = match &record.body {
            Body::Event(Event::Llm(call)) => {
                body["name"] = json!(format!("chat {}", call.model_name));
                body["model"] = json!(call.model_name);
                body["endTime"] = json!(plus_ms(record.timestamp, call.latency_ms));
                body["usageDetails"] = json!({
                    "input": call.input_tokens,
                    "output": call.output_tokens,
                    "cache_read_input_tokens": call.cache_read_tokens,
                    "cache_creation_input_tokens": call.cache_write_tokens,
                });
                let cost = call
                    .cost_usd
                    .or_else(|| sonde_pricing::PriceTable::global().cost(call));
                if let Some(cost) = cost {
                    body["costDetails"] = json!({"total": cost});
                }
                if !call.status.is_ok() {
                    body["level"] = json!("ERROR");
                    body["statusMessage"] = json!(call.error);
                }
                body["metadata"] = Value::Object(call.metadata.clone());
                "generation-create"
            }
            Body::Event(Event::Runtime(action)) => {
                body["name"] = json!(action.tool_name.as_deref().unwrap_or("action"));
                body["endTime"] = json!(plus_ms(record.timestamp, action.duration_ms));
                body["input"] = action.arguments.clone().unwrap_or(Value::Null);
                body["output"] = action.result.clone().unwrap_or(Value::Null);
                if !action.status.is_ok() {
                    body["level"] = json!("ERROR");
                    body["statusMessage"] = json!(action.error);
                }
                body["metadata"] = Value::Object(action.metadata.clone());
                "span-create"
            }
            Body::Event(Event::Custom(custom)) => {
                body["name"] = json!(custom.name);
                body["input"] = custom.data.clone();
                "event-create"
            }
            Body::Event(Event::ToolCallStarted(start)) => {
                body["name"] = json!(format!("{} started", start.tool_name));
                body["input"] = start.arguments.clone().unwrap_or(Value::Null);
                body["metadata"] = Value::Object(start.metadata.clone());
                "event-create"
            }
            Body::Event(Event::PromptBuilt(prompt)) => {
                body["name"] = json!("prompt_built");
                body["input"] = json!({
                    "prompt_hash": prompt.prompt_hash,
                    "prompt_chars": prompt.prompt_chars,
                    "components": prompt.components,
                });
                "event-create"
            }
            Body::Event(Event::Stream(stream)) => {
                body["name"] = json!(format!("{} stream: {}", stream.source, stream.name));
                body["input"] = stream.data.clone();
                if !stream.level.is_standard() {
                    body["level"] = json!("DEBUG");
                }
                "event-create"
            }
            Body::Message(message) => {
                body["id"] = json!(record.id);
                body["name"] = json!(message.message_type);
                let text = message.content.as_text();
                if message.from_role.as_deref() == Some("human") {
                    body["input"] = json!(text);
                } else {
                    body["output"] = json!(text);
                }
                "event-create"
            }
            _ => continue,
        };
        events.push(envelope(kind, record.timestamp, body));
    }
    events
}

impl TraceSink for LangfuseSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for event in ingestion_events(records) {
            let size = event.to_string().len();
            if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
                self.post(&batch)?;
                batch.clear();
                bytes = 0;
            }
            bytes += size;
            batch.push(event);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.post(&batch)
    }
}
