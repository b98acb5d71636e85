//! Seed 002's event model (`synth_ai.core.tracing_v3.abstractions`) as immutable Python
//! classes over Sonde's record types: `TimeRecord`, `SessionMessageContent`,
//! `SessionEventMarkovBlanketMessage`, `BaseEvent` and its subclasses `RuntimeEvent`,
//! `EnvironmentEvent`, `LMCAISEvent` (and Sonde's `CustomEvent`), `SessionTimeStep`
//! and `SessionTrace`, each with the seed's fields and `to_dict()` in the seed's shape.
//!
//! Every event holds the [`sonde::Event`] it records, built when it is constructed, so
//! that recording it costs a clone.

// Sonde's payloads are built with `..Default::default()` even where every field is set:
// fields added to the model later (a record level, say) take their defaults here.
#![allow(clippy::needless_update)]

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::{Value, json};
use sonde::{
    CustomEvent as SondeCustom, EnvironmentFeedback, Event, LlmCall, LlmCallRecord, Message,
    MessageContent, Metadata, Occurrence, RuntimeAction, Timestamp,
};

use crate::convert::{
    from_py, list_from, metadata_from, metadata_to_py, seconds, timestamp_from_seconds, to_py,
};

/// Adds the model's classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TimeRecord>()?;
    m.add_class::<SessionMessageContent>()?;
    m.add_class::<SessionEventMarkovBlanketMessage>()?;
    m.add_class::<BaseEvent>()?;
    m.add_class::<RuntimeEvent>()?;
    m.add_class::<EnvironmentEvent>()?;
    m.add_class::<LMCAISEvent>()?;
    m.add_class::<CustomEvent>()?;
    m.add_class::<SessionTimeStep>()?;
    m.add_class::<SessionTrace>()?;
    Ok(())
}

/// Timing of an event or message: `event_time` in seconds since the epoch,
/// `message_time` an optional integer (an external id or sequence number).
#[pyclass(frozen, eq, module = "sonde", from_py_object)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeRecord {
    #[pyo3(get)]
    event_time: f64,
    #[pyo3(get)]
    message_time: Option<i64>,
    at: Timestamp,
}

impl TimeRecord {
    fn at(at: Timestamp, message_time: Option<i64>) -> Self {
        Self {
            event_time: seconds(at),
            message_time,
            at,
        }
    }

    fn to_json(self) -> Value {
        json!({"event_time": self.event_time, "message_time": self.message_time})
    }
}

#[pymethods]
impl TimeRecord {
    #[new]
    #[pyo3(signature = (event_time, message_time=None))]
    fn new(event_time: f64, message_time: Option<i64>) -> PyResult<Self> {
        let at = timestamp_from_seconds(event_time, "TimeRecord.event_time")?;
        Ok(Self {
            event_time,
            message_time,
            at,
        })
    }

    /// The seed's `asdict` shape.
    #[allow(clippy::wrong_self_convention)] // seed 002's name; Python methods take &self
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_json())
    }

    fn __repr__(&self) -> String {
        format!(
            "TimeRecord(event_time={}, message_time={})",
            self.event_time,
            self.message_time
                .map_or_else(|| "None".to_owned(), |t| t.to_string())
        )
    }
}

/// A message's payload: text, JSON, or both.
#[pyclass(frozen, eq, module = "sonde", from_py_object)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionMessageContent {
    content: MessageContent,
}

#[pymethods]
impl SessionMessageContent {
    #[new]
    #[pyo3(signature = (text=None, json=None))]
    fn new(text: Option<String>, json: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let json = match json.map(|j| from_py(j, "SessionMessageContent.json")) {
            Some(Ok(Value::Null)) | None => None,
            Some(other) => Some(other?),
        };
        Ok(Self {
            content: MessageContent { text, json },
        })
    }

    #[getter]
    fn text(&self) -> Option<String> {
        self.content.text.clone()
    }

    #[getter]
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.content.json.as_ref().unwrap_or(&Value::Null))
    }

    /// The text, else the JSON serialised, else the empty string.
    fn as_text(&self) -> String {
        self.content.as_text()
    }

    /// Whether structured content is present.
    fn has_json(&self) -> bool {
        self.content.has_json()
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &content_json(&self.content))
    }

    fn __repr__(&self) -> String {
        format!("SessionMessageContent({})", content_json(&self.content))
    }
}

fn content_json(content: &MessageContent) -> Value {
    json!({"text": content.text, "json": content.json})
}

/// A message crossing a boundary between systems (human → agent, runtime →
/// environment, ...). The seed's recommended metadata keys become Sonde's typed
/// message fields when recorded, and come back as metadata.
#[pyclass(frozen, eq, module = "sonde")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionEventMarkovBlanketMessage {
    pub(crate) message: Message,
    time: TimeRecord,
    message_id: Option<String>,
}

impl SessionEventMarkovBlanketMessage {
    /// The message and when it happened.
    pub(crate) fn parts(&self) -> (Message, Occurrence) {
        let mut message = self.message.clone();
        message.message_time = self.time.message_time;
        let occurrence = Occurrence {
            timestamp: Some(self.time.at),
            ..Default::default()
        };
        (message, occurrence)
    }

    fn from_entry(entry: &sonde::Entry<Message>) -> Self {
        Self {
            time: TimeRecord::at(entry.timestamp, entry.value.message_time),
            message: entry.value.clone(),
            message_id: Some(entry.id.clone()),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "content": content_json(&self.message.content),
            "message_type": self.message.message_type,
            "time_record": self.time.to_json(),
            "metadata": self.message.seed_metadata(),
        })
    }
}

/// `content` as message content: a `SessionMessageContent`, or a `str` (its text).
pub(crate) fn content_from(obj: &Bound<'_, PyAny>) -> PyResult<MessageContent> {
    if let Ok(content) = obj.cast::<SessionMessageContent>() {
        return Ok(content.get().content.clone());
    }
    if let Ok(text) = obj.extract::<String>() {
        return Ok(MessageContent::text(text));
    }
    Err(PyTypeError::new_err(format!(
        "content must be a SessionMessageContent or a str, not {}",
        obj.get_type().name()?
    )))
}

#[pymethods]
impl SessionEventMarkovBlanketMessage {
    #[new]
    #[pyo3(signature = (content, message_type, time_record, metadata=None))]
    fn new(
        content: &Bound<'_, PyAny>,
        message_type: &str,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let metadata = metadata_from(metadata, "SessionEventMarkovBlanketMessage.metadata")?;
        Ok(Self {
            message: Message::from_seed(content_from(content)?, message_type, metadata),
            time: time_record,
            message_id: None,
        })
    }

    #[getter]
    fn content(&self) -> SessionMessageContent {
        SessionMessageContent {
            content: self.message.content.clone(),
        }
    }

    #[getter]
    fn message_type(&self) -> String {
        self.message.message_type.clone()
    }

    #[getter]
    fn time_record(&self) -> TimeRecord {
        self.time
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(metadata_to_py(py, &self.message.seed_metadata())?.into_any())
    }

    /// The record id, for a message loaded from a store (`None` for a new one).
    #[getter]
    fn message_id(&self) -> Option<String> {
        self.message_id.clone()
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_json())
    }

    fn __repr__(&self) -> String {
        format!("SessionEventMarkovBlanketMessage({})", self.to_json())
    }
}

/// The fields every event shares, read from any kind of [`Event`]: the one place that
/// matches on the event kinds of `sonde-model` (kinds added there fall to the last arm).
struct Common<'a> {
    system_instance_id: Option<&'a str>,
    metadata: &'a Metadata,
    event_metadata: &'a [Value],
}

fn common(event: &Event) -> Common<'_> {
    fn of<'a>(id: &'a Option<String>, metadata: &'a Metadata, more: &'a [Value]) -> Common<'a> {
        Common {
            system_instance_id: id.as_deref(),
            metadata,
            event_metadata: more,
        }
    }
    match event {
        Event::Llm(e) => of(&e.system_instance_id, &e.metadata, &e.event_metadata),
        Event::Runtime(e) => of(&e.system_instance_id, &e.metadata, &e.event_metadata),
        Event::Environment(e) => of(&e.system_instance_id, &e.metadata, &e.event_metadata),
        Event::Custom(e) => of(&e.system_instance_id, &e.metadata, &e.event_metadata),
        #[allow(unreachable_patterns)]
        other => Common {
            system_instance_id: None,
            metadata: other.metadata(),
            event_metadata: &[],
        },
    }
}

/// Which Python class shows an event.
enum Class {
    Llm,
    Runtime,
    Environment,
    Custom,
    Base,
}

fn class_of(event: &Event) -> Class {
    match event {
        Event::Llm(_) => Class::Llm,
        Event::Runtime(_) => Class::Runtime,
        Event::Environment(_) => Class::Environment,
        Event::Custom(e) if e.name.is_empty() && e.data.is_null() => Class::Base,
        _ => Class::Custom,
    }
}

/// The base of every event: `system_instance_id`, `time_record`, `metadata`,
/// `event_metadata`. A `BaseEvent` itself records as a custom event without a name.
#[pyclass(subclass, frozen, eq, module = "sonde")]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BaseEvent {
    event: Event,
    time: TimeRecord,
    trace_id: Option<String>,
    span_id: Option<String>,
    event_id: Option<String>,
}

impl BaseEvent {
    fn build(
        event: Event,
        time: TimeRecord,
        trace_id: Option<String>,
        span_id: Option<String>,
    ) -> Self {
        Self {
            event,
            time,
            trace_id,
            span_id,
            event_id: None,
        }
    }

    /// The event to record, and when and where it happened.
    pub(crate) fn parts(&self) -> (Event, Occurrence) {
        (
            self.event.clone(),
            Occurrence {
                timestamp: Some(self.time.at),
                trace_id: self.trace_id.clone(),
                span_id: self.span_id.clone(),
            },
        )
    }

    fn from_entry(entry: &sonde::Entry<Event>) -> Self {
        Self {
            event: entry.value.clone(),
            time: TimeRecord::at(entry.timestamp, None),
            trace_id: entry.context.trace_id.clone(),
            span_id: entry.context.span_id.clone(),
            event_id: Some(entry.id.clone()),
        }
    }

    /// The seed's `asdict` shape of this event, with Sonde's extra fields beside.
    fn to_json(&self) -> Value {
        let c = common(&self.event);
        let mut out = json!({
            "system_instance_id": c.system_instance_id.unwrap_or_default(),
            "time_record": self.time.to_json(),
            "metadata": c.metadata,
            "event_metadata": if c.event_metadata.is_empty() { Value::Null } else { Value::from(c.event_metadata.to_vec()) },
        });
        let more = match &self.event {
            Event::Llm(call) => json!({
                "model_name": call.model_name,
                "provider": call.provider,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "total_tokens": seed_total(call),
                "cost_usd": call.cost_usd,
                "latency_ms": call.latency_ms,
                "span_id": self.span_id,
                "trace_id": self.trace_id,
                "system_state_before": call.system_state_before,
                "system_state_after": call.system_state_after,
                "call_records": call.call_records.iter().map(call_record_json).collect::<Vec<_>>(),
                "cache_read_tokens": call.cache_read_tokens,
                "cache_write_tokens": call.cache_write_tokens,
                "reasoning_tokens": call.reasoning_tokens,
            }),
            Event::Runtime(action) => json!({
                "actions": action.actions,
                "tool_name": action.tool_name,
                "tool_call_id": action.tool_call_id,
                "arguments": action.arguments,
                "result": action.result,
                "error": action.error,
                "duration_ms": action.duration_ms,
            }),
            Event::Environment(feedback) => json!({
                "reward": feedback.reward.unwrap_or(0.0),
                "terminated": feedback.terminated,
                "truncated": feedback.truncated,
                "system_state_before": feedback.system_state_before,
                "system_state_after": feedback.system_state_after,
            }),
            Event::Custom(custom) if !matches!(class_of(&self.event), Class::Base) => json!({
                "name": custom.name,
                "data": custom.data,
            }),
            _ => json!({}),
        };
        if let (Value::Object(out), Value::Object(more)) = (&mut out, more) {
            out.extend(more);
        }
        out
    }

    /// This event as a Python object of its class.
    pub(crate) fn into_object(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let base = PyClassInitializer::from(self.clone());
        Ok(match class_of(&self.event) {
            Class::Llm => Bound::new(py, base.add_subclass(LMCAISEvent))?.into_any(),
            Class::Runtime => Bound::new(py, base.add_subclass(RuntimeEvent))?.into_any(),
            Class::Environment => Bound::new(py, base.add_subclass(EnvironmentEvent))?.into_any(),
            Class::Custom => Bound::new(py, base.add_subclass(CustomEvent))?.into_any(),
            Class::Base => Bound::new(py, base)?.into_any(),
        })
    }
}

/// Seed 002's `total_tokens`: input + output (Sonde's input counts uncached input
/// only; its cache counts are beside).
fn seed_total(call: &LlmCall) -> u64 {
    call.input_tokens.saturating_add(call.output_tokens)
}

fn call_record_json(record: &LlmCallRecord) -> Value {
    if record.request.is_none() && record.response.is_none() {
        // A record of the seed's own shape, kept whole.
        return Value::Object(record.metadata.clone());
    }
    json!({
        "request": record.request.as_deref(),
        "response": record.response.as_deref(),
        "metadata": record.metadata,
    })
}

fn call_record_from(value: Value) -> PyResult<LlmCallRecord> {
    let Value::Object(mut map) = value else {
        return Err(PyTypeError::new_err(
            "LMCAISEvent.call_records: each call record must be a dict (or a dataclass)",
        ));
    };
    let typed = map
        .keys()
        .all(|k| matches!(k.as_str(), "request" | "response" | "metadata"));
    if !typed {
        return Ok(LlmCallRecord {
            metadata: map,
            ..Default::default()
        });
    }
    let take = |v: Option<Value>| v.filter(|v| !v.is_null()).map(sonde::Json::from);
    let request = take(map.remove("request"));
    let response = take(map.remove("response"));
    let metadata = match map.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Metadata::new(),
    };
    Ok(LlmCallRecord {
        request,
        response,
        metadata,
        ..Default::default()
    })
}

fn optional_json(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Value>> {
    Ok(obj
        .map(|o| from_py(o, what))
        .transpose()?
        .filter(|v| !v.is_null()))
}

fn count(value: Option<i64>, what: &str) -> PyResult<u64> {
    match value {
        None => Ok(0),
        Some(n) => {
            u64::try_from(n).map_err(|_| PyValueError::new_err(format!("{what}: {n} is negative")))
        }
    }
}

#[pymethods]
impl BaseEvent {
    #[new]
    #[pyo3(signature = (system_instance_id, time_record, metadata=None, event_metadata=None))]
    fn new(
        system_instance_id: String,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
        event_metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let event = Event::Custom(SondeCustom {
            system_instance_id: Some(system_instance_id),
            metadata: metadata_from(metadata, "BaseEvent.metadata")?,
            event_metadata: list_from(event_metadata, "BaseEvent.event_metadata")?,
            ..Default::default()
        });
        Ok(Self::build(event, time_record, None, None))
    }

    #[getter]
    fn system_instance_id(&self) -> String {
        common(&self.event)
            .system_instance_id
            .unwrap_or_default()
            .to_owned()
    }

    #[getter]
    fn time_record(&self) -> TimeRecord {
        self.time
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(metadata_to_py(py, common(&self.event).metadata)?.into_any())
    }

    #[getter]
    fn event_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let more = common(&self.event).event_metadata;
        if more.is_empty() {
            return Ok(py.None().into_bound(py));
        }
        to_py(py, &Value::from(more.to_vec()))
    }

    /// The record id, for an event loaded from a store (`None` for a new one): what
    /// `record_event_reward` takes.
    #[getter]
    fn event_id(&self) -> Option<String> {
        self.event_id.clone()
    }

    /// The seed's `asdict` shape, with Sonde's extra fields beside.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_json())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Ok(format!(
            "{}({})",
            slf.get_type().name()?,
            slf.get().to_json()
        ))
    }
}

/// Reads the [`LlmCall`] (or other payload) of a subclass's event.
fn payload<T>(
    slf: &Bound<'_, impl pyo3::PyClass<BaseType = BaseEvent>>,
    f: impl FnOnce(&Event) -> T,
) -> T {
    f(&slf.as_super().get().event)
}

/// A decision or action of the runtime, such as choosing a tool (`actions`), with
/// Sonde's tool-call fields beside.
#[pyclass(extends = BaseEvent, frozen, module = "sonde")]
pub(crate) struct RuntimeEvent;

#[pymethods]
impl RuntimeEvent {
    #[new]
    #[pyo3(signature = (system_instance_id, time_record, metadata=None, event_metadata=None, actions=None, *, tool_name=None, tool_call_id=None, arguments=None, result=None, error=None, duration_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        system_instance_id: String,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
        event_metadata: Option<&Bound<'_, PyAny>>,
        actions: Option<&Bound<'_, PyAny>>,
        tool_name: Option<String>,
        tool_call_id: Option<String>,
        arguments: Option<&Bound<'_, PyAny>>,
        result: Option<&Bound<'_, PyAny>>,
        error: Option<String>,
        duration_ms: Option<f64>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let status = if error.is_some() {
            sonde::Status::Error
        } else {
            sonde::Status::Ok
        };
        let event = Event::Runtime(RuntimeAction {
            system_instance_id: Some(system_instance_id),
            actions: list_from(actions, "RuntimeEvent.actions")?,
            tool_name,
            tool_call_id,
            arguments: optional_json(arguments, "RuntimeEvent.arguments")?,
            result: optional_json(result, "RuntimeEvent.result")?,
            status,
            error,
            duration_ms,
            metadata: metadata_from(metadata, "RuntimeEvent.metadata")?,
            event_metadata: list_from(event_metadata, "RuntimeEvent.event_metadata")?,
            ..Default::default()
        });
        Ok(
            PyClassInitializer::from(BaseEvent::build(event, time_record, None, None))
                .add_subclass(Self),
        )
    }

    #[getter]
    fn actions<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let actions = payload(slf, |e| match e {
            Event::Runtime(a) => a.actions.clone(),
            _ => Vec::new(),
        });
        to_py(slf.py(), &Value::from(actions))
    }

    #[getter]
    fn tool_name(slf: &Bound<'_, Self>) -> Option<String> {
        payload(slf, |e| match e {
            Event::Runtime(a) => a.tool_name.clone(),
            _ => None,
        })
    }

    #[getter]
    fn arguments<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = payload(slf, |e| match e {
            Event::Runtime(a) => a.arguments.clone(),
            _ => None,
        });
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }

    #[getter]
    fn result<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = payload(slf, |e| match e {
            Event::Runtime(a) => a.result.clone(),
            _ => None,
        });
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }

    #[getter]
    fn duration_ms(slf: &Bound<'_, Self>) -> Option<f64> {
        payload(slf, |e| match e {
            Event::Runtime(a) => a.duration_ms,
            _ => None,
        })
    }
}

/// Feedback from the environment, Gymnasium style: `reward`, `terminated`,
/// `truncated`, and the state before and after.
#[pyclass(extends = BaseEvent, frozen, module = "sonde")]
pub(crate) struct EnvironmentEvent;

fn feedback<T>(
    slf: &Bound<'_, EnvironmentEvent>,
    f: impl FnOnce(&EnvironmentFeedback) -> T,
) -> Option<T> {
    payload(slf, |e| match e {
        Event::Environment(x) => Some(f(x)),
        _ => None,
    })
}

#[pymethods]
impl EnvironmentEvent {
    #[new]
    #[pyo3(signature = (system_instance_id, time_record, metadata=None, event_metadata=None, reward=0.0, terminated=false, truncated=false, system_state_before=None, system_state_after=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        system_instance_id: String,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
        event_metadata: Option<&Bound<'_, PyAny>>,
        reward: f64,
        terminated: bool,
        truncated: bool,
        system_state_before: Option<&Bound<'_, PyAny>>,
        system_state_after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = Event::Environment(EnvironmentFeedback {
            system_instance_id: Some(system_instance_id),
            reward: Some(reward),
            terminated,
            truncated,
            system_state_before: optional_json(
                system_state_before,
                "EnvironmentEvent.system_state_before",
            )?,
            system_state_after: optional_json(
                system_state_after,
                "EnvironmentEvent.system_state_after",
            )?,
            metadata: metadata_from(metadata, "EnvironmentEvent.metadata")?,
            event_metadata: list_from(event_metadata, "EnvironmentEvent.event_metadata")?,
            ..Default::default()
        });
        Ok(
            PyClassInitializer::from(BaseEvent::build(event, time_record, None, None))
                .add_subclass(Self),
        )
    }

    #[getter]
    fn reward(slf: &Bound<'_, Self>) -> f64 {
        feedback(slf, |f| f.reward.unwrap_or(0.0)).unwrap_or(0.0)
    }

    #[getter]
    fn terminated(slf: &Bound<'_, Self>) -> bool {
        feedback(slf, |f| f.terminated).unwrap_or(false)
    }

    #[getter]
    fn truncated(slf: &Bound<'_, Self>) -> bool {
        feedback(slf, |f| f.truncated).unwrap_or(false)
    }

    #[getter]
    fn system_state_before<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = feedback(slf, |f| f.system_state_before.clone()).flatten();
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }

    #[getter]
    fn system_state_after<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = feedback(slf, |f| f.system_state_after.clone()).flatten();
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }
}

/// A language-model call: model, provider, tokens, cost, latency, trace ids, call
/// records. `total_tokens` is the seed's input + output; Sonde's cache counts
/// (`cache_read_tokens`, `cache_write_tokens`) and `reasoning_tokens` are beside it.
#[pyclass(extends = BaseEvent, frozen, module = "sonde")]
pub(crate) struct LMCAISEvent;

fn llm<T>(slf: &Bound<'_, LMCAISEvent>, f: impl FnOnce(&LlmCall) -> T) -> Option<T> {
    payload(slf, |e| match e {
        Event::Llm(call) => Some(f(call)),
        _ => None,
    })
}

#[pymethods]
impl LMCAISEvent {
    #[new]
    #[pyo3(signature = (system_instance_id, time_record, metadata=None, event_metadata=None, model_name=String::new(), provider=None, input_tokens=None, output_tokens=None, total_tokens=None, cost_usd=None, latency_ms=None, span_id=None, trace_id=None, system_state_before=None, system_state_after=None, call_records=None, *, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        system_instance_id: String,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
        event_metadata: Option<&Bound<'_, PyAny>>,
        model_name: String,
        provider: Option<String>,
        input_tokens: Option<i64>,
        output_tokens: Option<i64>,
        total_tokens: Option<i64>,
        cost_usd: Option<f64>,
        latency_ms: Option<f64>,
        span_id: Option<String>,
        trace_id: Option<String>,
        system_state_before: Option<&Bound<'_, PyAny>>,
        system_state_after: Option<&Bound<'_, PyAny>>,
        call_records: Option<&Bound<'_, PyAny>>,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        reasoning_tokens: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        let call_records = list_from(call_records, "LMCAISEvent.call_records")?
            .into_iter()
            .map(call_record_from)
            .collect::<PyResult<Vec<_>>>()?;
        let call = LlmCall {
            system_instance_id: Some(system_instance_id),
            provider,
            model_name,
            input_tokens: count(input_tokens, "LMCAISEvent.input_tokens")?,
            output_tokens: count(output_tokens, "LMCAISEvent.output_tokens")?,
            cache_read_tokens: count(Some(cache_read_tokens), "LMCAISEvent.cache_read_tokens")?,
            cache_write_tokens: count(Some(cache_write_tokens), "LMCAISEvent.cache_write_tokens")?,
            reasoning_tokens: count(Some(reasoning_tokens), "LMCAISEvent.reasoning_tokens")?,
            cost_usd,
            latency_ms,
            call_records,
            system_state_before: optional_json(
                system_state_before,
                "LMCAISEvent.system_state_before",
            )?,
            system_state_after: optional_json(
                system_state_after,
                "LMCAISEvent.system_state_after",
            )?,
            metadata: metadata_from(metadata, "LMCAISEvent.metadata")?,
            event_metadata: list_from(event_metadata, "LMCAISEvent.event_metadata")?,
            ..Default::default()
        };
        if let Some(total) = total_tokens {
            let expected = seed_total(&call);
            if u64::try_from(total).ok() != Some(expected) {
                return Err(PyValueError::new_err(format!(
                    "LMCAISEvent.total_tokens: {total} is not input_tokens + output_tokens ({expected}); leave it out and it is computed"
                )));
            }
        }
        if let Some((field, why)) = call.out_of_range() {
            return Err(PyValueError::new_err(format!("LMCAISEvent.{field}: {why}")));
        }
        Ok(PyClassInitializer::from(BaseEvent::build(
            Event::Llm(call),
            time_record,
            trace_id,
            span_id,
        ))
        .add_subclass(Self))
    }

    #[getter]
    fn model_name(slf: &Bound<'_, Self>) -> String {
        llm(slf, |c| c.model_name.clone()).unwrap_or_default()
    }

    #[getter]
    fn provider(slf: &Bound<'_, Self>) -> Option<String> {
        llm(slf, |c| c.provider.clone()).flatten()
    }

    #[getter]
    fn input_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, |c| c.input_tokens).unwrap_or(0)
    }

    #[getter]
    fn output_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, |c| c.output_tokens).unwrap_or(0)
    }

    /// Input + output tokens, as seed 002 defines it.
    #[getter]
    fn total_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, seed_total).unwrap_or(0)
    }

    #[getter]
    fn cache_read_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, |c| c.cache_read_tokens).unwrap_or(0)
    }

    #[getter]
    fn cache_write_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, |c| c.cache_write_tokens).unwrap_or(0)
    }

    #[getter]
    fn reasoning_tokens(slf: &Bound<'_, Self>) -> u64 {
        llm(slf, |c| c.reasoning_tokens).unwrap_or(0)
    }

    #[getter]
    fn cost_usd(slf: &Bound<'_, Self>) -> Option<f64> {
        llm(slf, |c| c.cost_usd).flatten()
    }

    #[getter]
    fn latency_ms(slf: &Bound<'_, Self>) -> Option<f64> {
        llm(slf, |c| c.latency_ms).flatten()
    }

    #[getter]
    fn span_id(slf: &Bound<'_, Self>) -> Option<String> {
        slf.as_super().get().span_id.clone()
    }

    #[getter]
    fn trace_id(slf: &Bound<'_, Self>) -> Option<String> {
        slf.as_super().get().trace_id.clone()
    }

    #[getter]
    fn system_state_before<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = llm(slf, |c| c.system_state_before.clone()).flatten();
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }

    #[getter]
    fn system_state_after<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = llm(slf, |c| c.system_state_after.clone()).flatten();
        to_py(slf.py(), &v.unwrap_or(Value::Null))
    }

    #[getter]
    fn call_records<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let records: Vec<Value> = llm(slf, |c| {
            c.call_records.iter().map(call_record_json).collect()
        })
        .unwrap_or_default();
        to_py(slf.py(), &Value::from(records))
    }
}

/// Any other event, by `name`, with JSON `data` (Sonde's, beside the seed's classes).
#[pyclass(extends = BaseEvent, frozen, module = "sonde")]
pub(crate) struct CustomEvent;

#[pymethods]
impl CustomEvent {
    #[new]
    #[pyo3(signature = (system_instance_id, time_record, metadata=None, event_metadata=None, name=String::new(), data=None))]
    fn new(
        system_instance_id: String,
        time_record: TimeRecord,
        metadata: Option<&Bound<'_, PyAny>>,
        event_metadata: Option<&Bound<'_, PyAny>>,
        name: String,
        data: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let event = Event::Custom(SondeCustom {
            system_instance_id: Some(system_instance_id),
            name,
            data: optional_json(data, "CustomEvent.data")?.unwrap_or(Value::Null),
            metadata: metadata_from(metadata, "CustomEvent.metadata")?,
            event_metadata: list_from(event_metadata, "CustomEvent.event_metadata")?,
            ..Default::default()
        });
        Ok(
            PyClassInitializer::from(BaseEvent::build(event, time_record, None, None))
                .add_subclass(Self),
        )
    }

    #[getter]
    fn name(slf: &Bound<'_, Self>) -> String {
        payload(slf, |e| match e {
            Event::Custom(c) => c.name.clone(),
            _ => String::new(),
        })
    }

    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let v = payload(slf, |e| match e {
            Event::Custom(c) => c.data.clone(),
            _ => Value::Null,
        });
        to_py(slf.py(), &v)
    }
}

/// The event to record from any event object, and when it happened.
pub(crate) fn event_parts(obj: &Bound<'_, PyAny>) -> PyResult<(Event, Occurrence)> {
    match obj.cast::<BaseEvent>() {
        Ok(event) => Ok(event.get().parts()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "record_event takes an event (LMCAISEvent, RuntimeEvent, EnvironmentEvent, CustomEvent or BaseEvent), not {}",
            obj.get_type().name()?
        ))),
    }
}

/// The message to record from a `SessionEventMarkovBlanketMessage`.
pub(crate) fn message_parts(obj: &Bound<'_, PyAny>) -> PyResult<(Message, Occurrence)> {
    match obj.cast::<SessionEventMarkovBlanketMessage>() {
        Ok(message) => Ok(message.get().parts()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "expected a SessionEventMarkovBlanketMessage, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// ISO 8601 as Python's `datetime.isoformat()` writes a UTC time.
fn isoformat(at: Timestamp) -> String {
    let micros = at.as_micros().rem_euclid(1_000_000);
    let date = at.to_datetime().format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        format!("{date}+00:00")
    } else {
        format!("{date}.{micros:06}+00:00")
    }
}

/// A logical step of a session (a turn, an environment step) with its events and
/// messages.
#[pyclass(frozen, module = "sonde")]
pub(crate) struct SessionTimeStep {
    step_id: String,
    step_index: u32,
    started: Timestamp,
    turn_number: Option<i64>,
    events: Vec<BaseEvent>,
    messages: Vec<SessionEventMarkovBlanketMessage>,
    metadata: Metadata,
    completed: Option<Timestamp>,
}

impl SessionTimeStep {
    fn to_json(&self) -> Value {
        json!({
            "step_id": self.step_id,
            "step_index": self.step_index,
            "timestamp": isoformat(self.started),
            "turn_number": self.turn_number,
            "events": self.events.iter().map(BaseEvent::to_json).collect::<Vec<_>>(),
            "step_messages": self.messages.iter().map(SessionEventMarkovBlanketMessage::to_json).collect::<Vec<_>>(),
            "step_metadata": self.metadata,
            "completed_at": self.completed.map(isoformat),
        })
    }
}

fn event_list<'py>(py: Python<'py>, events: &[BaseEvent]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for event in events {
        list.append(event.clone().into_object(py)?)?;
    }
    Ok(list)
}

fn message_list<'py>(
    py: Python<'py>,
    messages: &[SessionEventMarkovBlanketMessage],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for message in messages {
        list.append(Bound::new(py, message.clone())?)?;
    }
    Ok(list)
}

#[pymethods]
impl SessionTimeStep {
    #[getter]
    fn step_id(&self) -> String {
        self.step_id.clone()
    }

    #[getter]
    fn step_index(&self) -> u32 {
        self.step_index
    }

    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::datetime(py, self.started)
    }

    #[getter]
    fn turn_number(&self) -> Option<i64> {
        self.turn_number
    }

    #[getter]
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        event_list(py, &self.events)
    }

    #[getter]
    fn step_messages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        message_list(py, &self.messages)
    }

    #[getter]
    fn step_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(metadata_to_py(py, &self.metadata)?.into_any())
    }

    #[getter]
    fn completed_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.completed
            .map(|t| crate::convert::datetime(py, t))
            .transpose()
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_json())
    }

    fn __repr__(&self) -> String {
        format!(
            "SessionTimeStep(step_id={:?}, step_index={}, events={}, step_messages={})",
            self.step_id,
            self.step_index,
            self.events.len(),
            self.messages.len()
        )
    }
}

/// A whole session: its steps, every event and message in order, and its metadata.
/// Loaded with `sonde.load_session` or `SessionTracer.get_session`, returned by
/// `end_session`.
#[pyclass(frozen, module = "sonde")]
pub(crate) struct SessionTrace {
    session_id: String,
    created_at: Timestamp,
    steps: Vec<SessionTimeStep>,
    events: Vec<BaseEvent>,
    messages: Vec<SessionEventMarkovBlanketMessage>,
    metadata: Metadata,
    session_metadata: Vec<Value>,
    trace: sonde::SessionTrace,
}

impl SessionTrace {
    /// The seed's view of a Sonde session.
    pub(crate) fn from_trace(trace: sonde::SessionTrace) -> Self {
        let created_at = trace.created_at().unwrap_or(Timestamp::from_micros(0));
        let events: Vec<BaseEvent> = trace.events.iter().map(BaseEvent::from_entry).collect();
        let messages: Vec<SessionEventMarkovBlanketMessage> = trace
            .messages
            .iter()
            .map(SessionEventMarkovBlanketMessage::from_entry)
            .collect();
        let steps = trace
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let in_step = |ctx: &sonde::Context| ctx.step_id.as_deref() == Some(&step.step_id);
                let started = step.started.as_ref();
                SessionTimeStep {
                    step_id: step.step_id.clone(),
                    step_index: started.map_or(i as u32, |s| s.value.step_index),
                    started: step
                        .started_at()
                        .or(step.completed_at())
                        .unwrap_or(created_at),
                    turn_number: started.and_then(|s| s.value.turn_number),
                    events: trace
                        .events
                        .iter()
                        .filter(|e| in_step(&e.context))
                        .map(BaseEvent::from_entry)
                        .collect(),
                    messages: trace
                        .messages
                        .iter()
                        .filter(|m| in_step(&m.context))
                        .map(SessionEventMarkovBlanketMessage::from_entry)
                        .collect(),
                    metadata: started
                        .map(|s| s.value.metadata.clone())
                        .unwrap_or_default(),
                    completed: step.completed_at(),
                }
            })
            .collect();
        Self {
            session_id: trace.session_id.clone(),
            created_at,
            steps,
            events,
            messages,
            metadata: trace.metadata().clone(),
            session_metadata: trace
                .started
                .as_ref()
                .map(|s| s.value.session_metadata.clone())
                .unwrap_or_default(),
            trace,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "session_id": self.session_id,
            "created_at": isoformat(self.created_at),
            "session_time_steps": self.steps.iter().map(SessionTimeStep::to_json).collect::<Vec<_>>(),
            "event_history": self.events.iter().map(BaseEvent::to_json).collect::<Vec<_>>(),
            "message_history": self.messages.iter().map(SessionEventMarkovBlanketMessage::to_json).collect::<Vec<_>>(),
            "metadata": self.metadata,
            "session_metadata": self.session_metadata,
        })
    }
}

#[pymethods]
impl SessionTrace {
    #[getter]
    fn session_id(&self) -> String {
        self.session_id.clone()
    }

    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::datetime(py, self.created_at)
    }

    #[getter]
    fn session_time_steps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for step in &self.steps {
            let copy = SessionTimeStep {
                step_id: step.step_id.clone(),
                step_index: step.step_index,
                started: step.started,
                turn_number: step.turn_number,
                events: step.events.clone(),
                messages: step.messages.clone(),
                metadata: step.metadata.clone(),
                completed: step.completed,
            };
            list.append(Bound::new(py, copy)?)?;
        }
        Ok(list)
    }

    #[getter]
    fn event_history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        event_list(py, &self.events)
    }

    #[getter]
    fn message_history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        message_list(py, &self.messages)
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(metadata_to_py(py, &self.metadata)?.into_any())
    }

    #[getter]
    fn session_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &Value::from(self.session_metadata.clone()))
    }

    /// Sonde's outcome rewards of the session, as dicts.
    #[getter]
    fn outcome_rewards<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(
            py,
            &serde_json::to_value(&self.trace.outcome_rewards).unwrap_or_default(),
        )
    }

    /// Sonde's event rewards of the session, as dicts.
    #[getter]
    fn event_rewards<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(
            py,
            &serde_json::to_value(&self.trace.event_rewards).unwrap_or_default(),
        )
    }

    /// Every record of the session as Sonde writes them (JSON lines' objects).
    fn to_records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let records: Vec<Value> = self
            .trace
            .to_records()
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        to_py(py, &Value::from(records))
    }

    /// The seed's shape: `session_id`, `created_at` (ISO 8601), `session_time_steps`,
    /// `event_history`, `message_history`, `metadata`, `session_metadata`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_json())
    }

    fn __repr__(&self) -> String {
        format!(
            "SessionTrace(session_id={:?}, session_time_steps={}, event_history={}, message_history={})",
            self.session_id,
            self.steps.len(),
            self.events.len(),
            self.messages.len()
        )
    }
}
