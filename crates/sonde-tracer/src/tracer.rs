//! `SessionTracer`: the seed's session-trace API, with many concurrent sessions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sonde_model::{
    Body, Context, Event, EventReward, Message, MessageContent, Metadata, OutcomeReward, Record,
    SessionEnded, SessionStarted, SessionTrace, StepEnded, StepStarted, Timestamp,
};

use crate::worker::SinkWorker;
use crate::{HookCallback, HookEvent, HookManager, SinkError, TeeSink, TraceSink};

/// Why recording failed.
///
/// ```
/// assert_eq!(sonde_tracer::RecordError::NoActiveSession.to_string(), "no active session: call start_session first");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Nothing can be recorded outside a session.
    #[error("no active session: call start_session first")]
    NoActiveSession,
    /// The tracer already has a session; end it first, or use [`SessionTracer::session`]
    /// for concurrent sessions.
    #[error(
        "session {session_id} is already active: end it first, or use SessionTracer::session for concurrent sessions"
    )]
    SessionAlreadyActive {
        /// The active session.
        session_id: String,
    },
    /// This session handle was already ended.
    #[error("session {session_id} has ended")]
    SessionEnded {
        /// The session.
        session_id: String,
    },
    /// The sink failed to save the session (reported by `end_session(true)` and `flush`).
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// When an event or message happened, and where in a distributed trace, for a caller
/// that knows better than the moment it records it (seed 002's `time_record`, an
/// OpenTelemetry span). What it leaves `None` is filled as usual: the time is now, the
/// trace ids are none.
///
/// ```
/// let at = sonde_tracer::Occurrence {
///     timestamp: Some(sonde_model::Timestamp::from_micros(1_700_000_000_000_000)),
///     ..Default::default()
/// };
/// assert!(at.span_id.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Occurrence {
    /// When it happened (default: when it is recorded).
    pub timestamp: Option<Timestamp>,
    /// The distributed trace it belongs to.
    pub trace_id: Option<String>,
    /// Its span in that trace.
    pub span_id: Option<String>,
}

impl Occurrence {
    fn apply(self, record: &mut Record) {
        if let Some(timestamp) = self.timestamp {
            record.timestamp = timestamp;
        }
        if self.trace_id.is_some() {
            record.context.trace_id = self.trace_id;
        }
        if self.span_id.is_some() {
            record.context.span_id = self.span_id;
        }
    }
}

pub(crate) struct TracerCore {
    pub(crate) worker: SinkWorker,
    #[cfg(feature = "store")]
    pub(crate) store: Option<Arc<dyn sonde_store::TraceStore>>,
    hooks: Arc<HookManager>,
    auto_save: AtomicBool,
    pub(crate) tenant: Option<(String, String)>,
}

/// Builds a [`SessionTracer`] writing to a store, to sinks, or to both.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// let dir = tempfile::tempdir()?;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let tracer = sonde_tracer::SessionTracer::builder()
///     .store(store)
///     .sink(Arc::new(sonde_tracer::JsonlSink::create(dir.path().join("t.jsonl"))?))
///     .tenant("acme", "prod")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct TracerBuilder {
    #[cfg(feature = "store")]
    pub(crate) store: Option<Arc<dyn sonde_store::TraceStore>>,
    #[cfg(feature = "store")]
    pub(crate) writer: Option<Arc<sonde_store::Writer>>,
    sinks: Vec<Arc<dyn TraceSink>>,
    hooks: Option<HookManager>,
    tenant: Option<(String, String)>,
    auto_save: Option<bool>,
}

impl TracerBuilder {
    /// Records also go to `sink` (any number of sinks, in order).
    pub fn sink(mut self, sink: Arc<dyn TraceSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Starts with these hooks.
    pub fn hooks(mut self, hooks: HookManager) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Every record belongs to tenant `org` / `workspace`.
    pub fn tenant(mut self, org: impl Into<String>, workspace: impl Into<String>) -> Self {
        self.tenant = Some((org.into(), workspace.into()));
        self
    }

    /// Whether records are written as they are made (the default) or only by
    /// `end_session(true)`.
    pub fn auto_save(mut self, auto_save: bool) -> Self {
        self.auto_save = Some(auto_save);
        self
    }

    /// Starts the tracer's sink worker thread.
    pub fn build(self) -> Result<SessionTracer, std::io::Error> {
        #[cfg_attr(not(feature = "store"), allow(unused_mut))]
        let mut sinks = self.sinks;
        #[cfg(feature = "store")]
        match (&self.writer, &self.store) {
            (Some(writer), _) => {
                sinks.insert(0, Arc::new(sonde_store::WriterSink::new(writer.clone())?))
            }
            (None, Some(store)) => {
                sinks.insert(0, Arc::new(sonde_store::StoreSink::new(store.clone())))
            }
            (None, None) => {}
        }
        let sink: Arc<dyn TraceSink> = match sinks.len() {
            1 => sinks.remove(0),
            _ => Arc::new(TeeSink::new(sinks)),
        };
        Ok(SessionTracer {
            core: Arc::new(TracerCore {
                worker: SinkWorker::spawn(sink)?,
                #[cfg(feature = "store")]
                store: self.store,
                hooks: Arc::new(self.hooks.unwrap_or_default()),
                auto_save: AtomicBool::new(self.auto_save.unwrap_or(true)),
                tenant: self.tenant,
            }),
            current: Arc::new(Mutex::new(None)),
        })
    }
}

/// Records session traces: sessions → timesteps → events, messages and rewards.
///
/// The seed's API works on the tracer's *current* session (one at a time, like the
/// seed). For many concurrent sessions in one process, [`SessionTracer::session`] hands
/// out independent [`SessionHandle`]s. The tracer is cheap to clone; clones share the
/// sinks, the hooks and the current session.
///
/// Recording never waits on storage: records go to a worker thread that writes them in
/// batches; only when its queue is full does recording wait (asynchronously).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_model::*;
/// use sonde_tracer::SessionTracer;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let tracer = SessionTracer::new(store)?;
/// let session_id = tracer.start_session(None, Default::default()).await?;
/// tracer.start_timestep("step-1", Some(1), Default::default()).await?;
/// tracer.record_event(Event::Llm(LlmCall { model_name: "gpt-5".into(), input_tokens: 10, ..Default::default() })).await?;
/// tracer.end_timestep().await?;
/// let trace = tracer.end_session(true).await?;
/// assert_eq!(trace.events.len(), 1);
/// assert_eq!(tracer.get_session(&session_id).await?, Some(trace));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionTracer {
    pub(crate) core: Arc<TracerCore>,
    current: Arc<Mutex<Option<SessionHandle>>>,
}

impl SessionTracer {
    /// A tracer that writes to `sink` only (no store: reads return
    /// [`LookupError::NoStore`]).
    ///
    /// ```
    /// let tracer = sonde_tracer::SessionTracer::with_sink(std::sync::Arc::new(sonde_tracer::StderrSink)).unwrap();
    /// ```
    pub fn with_sink(sink: Arc<dyn TraceSink>) -> Result<Self, std::io::Error> {
        Self::builder().sink(sink).build()
    }

    /// Builds a tracer from parts.
    pub fn builder() -> TracerBuilder {
        TracerBuilder::default()
    }

    /// Whether records are written as they are made (`true`, the default) or kept in
    /// memory until `end_session(true)`. Applies to sessions started afterwards.
    pub fn set_auto_save(&self, auto_save: bool) {
        self.core.auto_save.store(auto_save, Ordering::Relaxed);
    }

    /// Registers a hook; higher priorities run first.
    pub async fn register_hook(&self, event: HookEvent, callback: HookCallback, priority: i32) {
        self.core.hooks.register(event, callback, priority);
    }

    /// The tracer's hooks (to read their panic count, say).
    pub fn hooks(&self) -> &HookManager {
        &self.core.hooks
    }

    /// Starts an independent session, not the tracer's current one: many can be open
    /// at once, each recorded through its own handle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
    /// let tracer = sonde_tracer::SessionTracer::new(store)?;
    /// let a = tracer.session(None, Default::default()).await?;
    /// let b = tracer.session(None, Default::default()).await?;
    /// assert_ne!(a.session_id(), b.session_id());
    /// a.end(true).await?;
    /// b.end(true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn session(
        &self,
        session_id: Option<&str>,
        metadata: Metadata,
    ) -> Result<SessionHandle, RecordError> {
        let session_id = session_id.map_or_else(sonde_model::new_id, str::to_owned);
        let mut context = Context::session(session_id);
        if let Some((org, workspace)) = &self.core.tenant {
            context = context.with_tenant(org.clone(), workspace.clone());
        }
        let handle = SessionHandle {
            core: self.core.clone(),
            state: Arc::new(Mutex::new(SessionState {
                context,
                records: Vec::new(),
                step_id: None,
                steps_started: 0,
                ended: false,
                auto_save: self.core.auto_save.load(Ordering::Relaxed),
            })),
        };
        handle
            .emit(
                |_| {
                    Ok(Body::SessionStarted(SessionStarted {
                        metadata,
                        session_metadata: Vec::new(),
                    }))
                },
                Some(HookEvent::SessionStart),
            )
            .await?;
        Ok(handle)
    }

    /// Starts the tracer's current session, with `session_id` or a fresh one.
    pub async fn start_session(
        &self,
        session_id: Option<&str>,
        metadata: Metadata,
    ) -> Result<String, RecordError> {
        if let Some(active) = self.current_handle() {
            return Err(RecordError::SessionAlreadyActive {
                session_id: active.session_id(),
            });
        }
        let handle = self.session(session_id, metadata).await?;
        let id = handle.session_id();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(active) = current.as_ref() {
            // Another clone started one meanwhile.
            return Err(RecordError::SessionAlreadyActive {
                session_id: active.session_id(),
            });
        }
        *current = Some(handle);
        Ok(id)
    }

    /// Ends the current session (and its open timestep). With `save`, waits until the
    /// session is written (or writes it now, when auto-save is off).
    pub async fn end_session(&self, save: bool) -> Result<SessionTrace, RecordError> {
        let handle = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(RecordError::NoActiveSession)?;
        handle.end(save).await
    }

    fn current_handle(&self) -> Option<SessionHandle> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn require_current(&self) -> Result<SessionHandle, RecordError> {
        self.current_handle().ok_or(RecordError::NoActiveSession)
    }

    /// The current session's id, if one is active.
    pub async fn current_session_id(&self) -> Option<String> {
        self.current_handle().map(|h| h.session_id())
    }

    /// The current timestep's id, if one is open.
    pub async fn current_step_id(&self) -> Option<String> {
        self.current_handle().and_then(|h| h.current_step_id())
    }

    /// Starts a timestep in the current session, ending the open one first.
    pub async fn start_timestep(
        &self,
        step_id: &str,
        turn_number: Option<i64>,
        metadata: Metadata,
    ) -> Result<(), RecordError> {
        self.require_current()?
            .start_timestep(step_id, turn_number, metadata)
            .await
    }

    /// Ends the current timestep (no-op when none is open).
    pub async fn end_timestep(&self) -> Result<(), RecordError> {
        self.require_current()?.end_timestep().await
    }

    /// Records an event in the current session and step; returns its id.
    pub async fn record_event(&self, event: Event) -> Result<String, RecordError> {
        self.require_current()?.record_event(event).await
    }

    /// Records an event in the current session and step as it happened at
    /// `occurrence`; returns its id.
    pub async fn record_event_at(
        &self,
        event: Event,
        occurrence: Occurrence,
    ) -> Result<String, RecordError> {
        self.require_current()?
            .record_event_at(event, occurrence)
            .await
    }

    /// Records a message (seed API). The metadata keys seed 002 recommends
    /// (`from_system_role`, `to_system_role`, `from_system_instance_id`,
    /// `to_system_instance_id`, `boundary_type`, `call_id`, `causal_influence`) become
    /// the message's typed fields; other keys stay metadata.
    pub async fn record_message(
        &self,
        content: MessageContent,
        message_type: &str,
        metadata: Metadata,
    ) -> Result<String, RecordError> {
        self.require_current()?
            .record_message(content, message_type, metadata)
            .await
    }

    /// Records a fully specified message.
    pub async fn record_message_with(&self, message: Message) -> Result<String, RecordError> {
        self.require_current()?.record_message_with(message).await
    }

    /// Records a fully specified message as it happened at `occurrence`.
    pub async fn record_message_at(
        &self,
        message: Message,
        occurrence: Occurrence,
    ) -> Result<String, RecordError> {
        self.require_current()?
            .record_message_at(message, occurrence)
            .await
    }

    /// Records a session-level reward; returns its id.
    pub async fn record_outcome_reward(
        &self,
        reward: OutcomeReward,
    ) -> Result<String, RecordError> {
        self.require_current()?.record_outcome_reward(reward).await
    }

    /// Records a reward on event `event_id`; returns the reward's id.
    pub async fn record_event_reward(
        &self,
        event_id: &str,
        reward: EventReward,
    ) -> Result<String, RecordError> {
        self.require_current()?
            .record_event_reward(event_id, reward)
            .await
    }

    /// Waits until everything recorded so far is written; returns the first write
    /// error since the last flush.
    pub async fn flush(&self) -> Result<(), RecordError> {
        Ok(self.core.worker.flush().await?)
    }
}

struct SessionState {
    context: Context,
    records: Vec<Record>,
    step_id: Option<String>,
    steps_started: u32,
    ended: bool,
    auto_save: bool,
}

/// One session being recorded. Handles are cheap to clone and may be used from many
/// tasks; different sessions never contend with each other.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_model::*;
/// # let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let tracer = sonde_tracer::SessionTracer::new(store)?;
/// let session = tracer.session(Some("run-7"), Default::default()).await?;
/// session.start_timestep("turn-1", Some(1), Default::default()).await?;
/// let event_id = session.record_event(Event::Custom(CustomEvent { name: "ping".into(), ..Default::default() })).await?;
/// session.record_event_reward(&event_id, EventReward { value: 1.0, ..Default::default() }).await?;
/// let trace = session.end(true).await?;
/// assert_eq!(trace.event_rewards[0].value.event_id, event_id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionHandle {
    core: Arc<TracerCore>,
    state: Arc<Mutex<SessionState>>,
}

impl SessionHandle {
    /// The session id.
    pub fn session_id(&self) -> String {
        self.lock().context.session_id.clone()
    }

    /// The open timestep, if any.
    pub fn current_step_id(&self) -> Option<String> {
        self.lock().step_id.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a record in this session (with `body` built under the session's lock),
    /// keeps it, queues it for the sink when auto-saving, and runs the hooks.
    async fn emit(
        &self,
        body: impl FnOnce(&mut SessionState) -> Result<Body, RecordError>,
        hook: Option<HookEvent>,
    ) -> Result<String, RecordError> {
        self.emit_at(body, hook, Occurrence::default()).await
    }

    /// [`Self::emit`], with the record's time and trace ids from `occurrence`.
    async fn emit_at(
        &self,
        body: impl FnOnce(&mut SessionState) -> Result<Body, RecordError>,
        hook: Option<HookEvent>,
        occurrence: Occurrence,
    ) -> Result<String, RecordError> {
        let (record, save) = {
            let mut state = self.lock();
            if state.ended {
                return Err(RecordError::SessionEnded {
                    session_id: state.context.session_id.clone(),
                });
            }
            let body = body(&mut state)?;
            let mut context = state.context.clone();
            if !matches!(body, Body::SessionStarted(_) | Body::SessionEnded(_)) {
                context.step_id.clone_from(&state.step_id);
            }
            if let Body::StepEnded(_) = body {
                context.step_id = state.step_id.take();
            }
            let mut record = Record::new(context, body);
            occurrence.apply(&mut record);
            state.records.push(record.clone());
            (record, state.auto_save)
        };
        if let Some(event) = hook {
            self.core.hooks.fire(event, &record);
        }
        let id = record.id.clone();
        if save {
            self.core.worker.send(record).await?;
        }
        Ok(id)
    }

    /// Starts a timestep, ending the open one first.
    pub async fn start_timestep(
        &self,
        step_id: &str,
        turn_number: Option<i64>,
        metadata: Metadata,
    ) -> Result<(), RecordError> {
        self.end_timestep().await?;
        let step_id = step_id.to_owned();
        self.emit(
            |state| {
                state.step_id = Some(step_id);
                let step_index = state.steps_started;
                state.steps_started += 1;
                Ok(Body::StepStarted(StepStarted {
                    step_index,
                    turn_number,
                    metadata,
                }))
            },
            Some(HookEvent::TimestepStart),
        )
        .await?;
        Ok(())
    }

    /// Ends the open timestep (no-op when none is open).
    pub async fn end_timestep(&self) -> Result<(), RecordError> {
        if self.lock().step_id.is_none() {
            return Ok(());
        }
        self.emit(
            |_| Ok(Body::StepEnded(StepEnded::default())),
            Some(HookEvent::TimestepEnd),
        )
        .await?;
        Ok(())
    }

    /// Records an event in the open timestep (if any); returns its id.
    pub async fn record_event(&self, event: Event) -> Result<String, RecordError> {
        self.emit(|_| Ok(Body::Event(event)), Some(HookEvent::EventRecorded))
            .await
    }

    /// Records an event in the open timestep as it happened at `occurrence`.
    pub async fn record_event_at(
        &self,
        event: Event,
        occurrence: Occurrence,
    ) -> Result<String, RecordError> {
        self.emit_at(
            |_| Ok(Body::Event(event)),
            Some(HookEvent::EventRecorded),
            occurrence,
        )
        .await
    }

    /// Records a message (seed API); see [`SessionTracer::record_message`].
    pub async fn record_message(
        &self,
        content: MessageContent,
        message_type: &str,
        metadata: Metadata,
    ) -> Result<String, RecordError> {
        let message = Message::from_seed(content, message_type, metadata);
        self.record_message_with(message).await
    }

    /// Records a fully specified message; returns its id.
    pub async fn record_message_with(&self, message: Message) -> Result<String, RecordError> {
        self.record_message_at(message, Occurrence::default()).await
    }

    /// Records a fully specified message as it happened at `occurrence`.
    pub async fn record_message_at(
        &self,
        message: Message,
        occurrence: Occurrence,
    ) -> Result<String, RecordError> {
        self.emit_at(
            |_| Ok(Body::Message(message)),
            Some(HookEvent::MessageRecorded),
            occurrence,
        )
        .await
    }

    /// Records a session-level reward; returns its id.
    pub async fn record_outcome_reward(
        &self,
        reward: OutcomeReward,
    ) -> Result<String, RecordError> {
        self.emit(|_| Ok(Body::OutcomeReward(reward)), None).await
    }

    /// Records a reward on event `event_id`; returns the reward's id.
    pub async fn record_event_reward(
        &self,
        event_id: &str,
        reward: EventReward,
    ) -> Result<String, RecordError> {
        let reward = EventReward {
            event_id: event_id.to_owned(),
            ..reward
        };
        self.emit(|_| Ok(Body::EventReward(reward)), None).await
    }

    /// Ends the session (and its open timestep) and returns it. With `save`, waits
    /// until it is written — writing it now when auto-save is off; without `save` and
    /// with auto-save off, nothing of it is written.
    pub async fn end(&self, save: bool) -> Result<SessionTrace, RecordError> {
        self.end_timestep().await?;
        self.emit(
            |_| Ok(Body::SessionEnded(SessionEnded::default())),
            Some(HookEvent::SessionEnd),
        )
        .await?;
        let (records, auto_save) = {
            let mut state = self.lock();
            state.ended = true;
            (std::mem::take(&mut state.records), state.auto_save)
        };
        if save {
            if !auto_save {
                for record in &records {
                    self.core.worker.send(record.clone()).await?;
                }
            }
            self.core.worker.flush().await?;
        }
        let session_id = self.session_id();
        Ok(SessionTrace::from_records(records)
            .into_iter()
            .next()
            .unwrap_or_else(|| SessionTrace::new(session_id)))
    }
}
