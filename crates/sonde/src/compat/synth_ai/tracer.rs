//! Seed 000's `SessionTracer`, `LibsqlTraceStorage`, `TracingError` and `QueryParams`
//! over Sonde's tracer and store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::convert::{content_to_sonde, event_to_sonde, metadata, trace_from_sonde};
use super::hooks::{HookCallback, HookContext, HookEvent, HookManager};
use super::models::{
    EventReward, MarkovBlanketMessage, MessageContent, OutcomeReward, SessionTrace, TimeRecord,
    TracingEvent,
};
use crate::store::TraceStore;

/// Why a tracing operation failed (seed 000's variants).
///
/// ```
/// assert_eq!(sonde::compat::synth_ai::TracingError::NoActiveSession.to_string(), "no active session");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The store failed.
    #[error("database error: {0}")]
    Database(String),
    /// Nothing can be recorded outside a session.
    #[error("no active session")]
    NoActiveSession,
    /// No timestep is open.
    #[error("no active timestep")]
    NoActiveTimestep,
    /// A session is already active.
    #[error("session already active: {0}")]
    SessionAlreadyActive(String),
    /// An argument or state the operation cannot take.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// A value could not be converted.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// The store was not opened.
    #[error("storage not initialized")]
    NotInitialized,
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<serde_json::Error> for TracingError {
    fn from(e: serde_json::Error) -> Self {
        TracingError::Serialization(e.to_string())
    }
}

impl From<crate::RecordError> for TracingError {
    fn from(e: crate::RecordError) -> Self {
        match e {
            crate::RecordError::NoActiveSession => TracingError::NoActiveSession,
            crate::RecordError::SessionAlreadyActive { session_id } => {
                TracingError::SessionAlreadyActive(session_id)
            }
            other => TracingError::Database(other.to_string()),
        }
    }
}

impl From<crate::LookupError> for TracingError {
    fn from(e: crate::LookupError) -> Self {
        TracingError::Database(e.to_string())
    }
}

impl From<crate::store::OpenError> for TracingError {
    fn from(e: crate::store::OpenError) -> Self {
        TracingError::Database(e.to_string())
    }
}

/// Parameters of a raw SQL query: none, positional (`?`), or named (refused: Sonde's
/// stores bind positional parameters only).
///
/// ```
/// let p: sonde::compat::synth_ai::QueryParams = vec![serde_json::json!(1)].into();
/// assert!(matches!(p, sonde::compat::synth_ai::QueryParams::Positional(_)));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub enum QueryParams {
    /// No parameters.
    #[default]
    None,
    /// `?` parameters in order.
    Positional(Vec<Value>),
    /// `:name` parameters.
    Named(HashMap<String, Value>),
}

impl From<Vec<Value>> for QueryParams {
    fn from(values: Vec<Value>) -> Self {
        QueryParams::Positional(values)
    }
}

/// Seed 000's libSQL storage, here a Sonde store (SQLite by default; any URL the
/// `sonde` command takes with [`LibsqlTraceStorage::open`]).
pub struct LibsqlTraceStorage {
    store: Arc<dyn TraceStore>,
}

impl LibsqlTraceStorage {
    /// A throwaway database in memory.
    pub async fn new_memory() -> Result<Self, TracingError> {
        Self::open("sqlite::memory:").await
    }

    /// A SQLite database file (created when missing).
    pub async fn new_file(path: &str) -> Result<Self, TracingError> {
        Self::open(&format!("sqlite://{path}")).await
    }

    /// The store `url` names (`sqlite://PATH`, `postgres://...`), pricing calls as
    /// the `sonde` command does.
    pub async fn open(url: &str) -> Result<Self, TracingError> {
        Ok(Self {
            store: crate::open(url).await?,
        })
    }

    /// Sonde's store underneath.
    pub fn store(&self) -> &Arc<dyn TraceStore> {
        &self.store
    }
}

/// Seed 000's integer ids for Sonde's record ids, within one tracer.
#[derive(Default)]
struct Ids {
    records: Vec<String>,
}

impl Ids {
    fn number(&mut self, record_id: String) -> i64 {
        self.records.push(record_id);
        i64::try_from(self.records.len()).unwrap_or(i64::MAX)
    }

    fn record_id(&self, number: i64) -> Option<&String> {
        usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.records.get(i))
    }
}

/// Seed 000's session tracer: one session at a time, integer ids, the seed's hooks and
/// types, recording through Sonde's [`SessionTracer`](crate::SessionTracer).
pub struct SessionTracer {
    inner: Result<crate::SessionTracer, String>,
    hooks: Mutex<HookManager>,
    ids: Mutex<Ids>,
    auto_save: bool,
}

impl SessionTracer {
    /// A tracer recording into `storage`.
    pub fn new(storage: Arc<LibsqlTraceStorage>) -> SessionTracer {
        Self::with_hooks(storage, HookManager::new())
    }

    /// A tracer recording into `storage`, with these hooks.
    pub fn with_hooks(storage: Arc<LibsqlTraceStorage>, hooks: HookManager) -> SessionTracer {
        SessionTracer {
            inner: crate::SessionTracer::new(storage.store.clone()).map_err(|e| e.to_string()),
            hooks: Mutex::new(hooks),
            ids: Mutex::new(Ids::default()),
            auto_save: true,
        }
    }

    fn inner(&self) -> Result<&crate::SessionTracer, TracingError> {
        self.inner.as_ref().map_err(|e| {
            TracingError::Internal(format!("the tracer's writer thread did not start: {e}"))
        })
    }

    fn trigger(&self, event: HookEvent, context: HookContext) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trigger(event, &context);
    }

    fn number(&self, record_id: String) -> Option<i64> {
        self.auto_save.then(|| {
            self.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .number(record_id)
        })
    }

    async fn context(&self) -> HookContext {
        let mut context = HookContext::new();
        context.session_id = self.current_session_id().await;
        context.step_id = self.current_step_id().await;
        context
    }

    /// Whether records are written as they are made (default) or only at the end.
    pub fn set_auto_save(&mut self, auto_save: bool) {
        self.auto_save = auto_save;
        if let Ok(inner) = &self.inner {
            inner.set_auto_save(auto_save);
        }
    }

    /// Registers a hook; higher priorities run first.
    pub async fn register_hook(&self, event: HookEvent, callback: HookCallback, priority: i32) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(event, callback, priority);
    }

    /// Starts the session (`session_id` or a fresh one).
    pub async fn start_session(
        &self,
        session_id: Option<&str>,
        metadata: HashMap<String, Value>,
    ) -> Result<String, TracingError> {
        let id = self
            .inner()?
            .start_session(session_id, super::convert::metadata(metadata))
            .await?;
        self.trigger(
            HookEvent::SessionStart,
            HookContext::new().with_session(&id),
        );
        Ok(id)
    }

    /// Ends the session (and its open timestep); with `save`, waits until it is written.
    pub async fn end_session(&self, save: bool) -> Result<SessionTrace, TracingError> {
        let context = self.context().await;
        if save {
            self.trigger(HookEvent::BeforeSave, context.clone());
        }
        let trace = self.inner()?.end_session(save).await?;
        if save {
            self.trigger(HookEvent::AfterSave, context.clone());
        }
        self.trigger(HookEvent::SessionEnd, context);
        Ok(trace_from_sonde(&trace))
    }

    /// The current session's id.
    pub async fn current_session_id(&self) -> Option<String> {
        match self.inner() {
            Ok(inner) => inner.current_session_id().await,
            Err(_) => None,
        }
    }

    /// Runs read-only SQL on the store; rows as JSON objects.
    pub async fn query(&self, sql: &str, params: QueryParams) -> Result<Vec<Value>, TracingError> {
        let params = match params {
            QueryParams::None => Vec::new(),
            QueryParams::Positional(values) => values,
            QueryParams::Named(_) => {
                return Err(TracingError::InvalidState(
                    "named query parameters are not supported: use ? and QueryParams::Positional"
                        .into(),
                ));
            }
        };
        let rows = self.inner()?.query(sql, &params).await?;
        Ok(rows.into_iter().map(Value::Object).collect())
    }

    /// Starts a timestep, ending the open one.
    pub async fn start_timestep(
        &self,
        step_id: &str,
        turn_number: Option<i32>,
        metadata: HashMap<String, Value>,
    ) -> Result<(), TracingError> {
        let inner = self.inner()?;
        if inner.current_session_id().await.is_none() {
            return Err(TracingError::NoActiveSession);
        }
        if inner.current_step_id().await.is_some() {
            self.end_timestep().await?;
        }
        inner
            .start_timestep(
                step_id,
                turn_number.map(i64::from),
                super::convert::metadata(metadata),
            )
            .await?;
        self.trigger(HookEvent::TimestepStart, self.context().await);
        Ok(())
    }

    /// Ends the open timestep.
    pub async fn end_timestep(&self) -> Result<(), TracingError> {
        let inner = self.inner()?;
        if inner.current_session_id().await.is_none() {
            return Err(TracingError::NoActiveSession);
        }
        let context = self.context().await;
        if context.step_id.is_none() {
            return Err(TracingError::NoActiveTimestep);
        }
        inner.end_timestep().await?;
        self.trigger(HookEvent::TimestepEnd, context);
        Ok(())
    }

    /// The open timestep's id.
    pub async fn current_step_id(&self) -> Option<String> {
        match self.inner() {
            Ok(inner) => inner.current_step_id().await,
            Err(_) => None,
        }
    }

    /// Records an event; returns its id (when auto-saving).
    pub async fn record_event(&self, event: TracingEvent) -> Result<Option<i64>, TracingError> {
        let (sonde_event, occurrence) = event_to_sonde(event.clone())?;
        let id = self
            .inner()?
            .record_event_at(sonde_event, occurrence)
            .await?;
        self.trigger(
            HookEvent::EventRecorded,
            self.context().await.with_event(event),
        );
        Ok(self.number(id))
    }

    /// Records a message; returns its id (when auto-saving).
    pub async fn record_message(
        &self,
        content: MessageContent,
        message_type: &str,
        metadata: HashMap<String, Value>,
    ) -> Result<Option<i64>, TracingError> {
        let message = MarkovBlanketMessage {
            content,
            message_type: message_type.to_owned(),
            time_record: TimeRecord::now(),
            metadata,
        };
        let sonde_message = crate::Message::from_seed(
            content_to_sonde(message.content.clone()),
            message_type,
            super::convert::metadata(message.metadata.clone()),
        );
        let id = self.inner()?.record_message_with(sonde_message).await?;
        self.trigger(
            HookEvent::MessageRecorded,
            self.context().await.with_message(message),
        );
        Ok(self.number(id))
    }

    /// Records a session-level reward; returns its id (when auto-saving).
    pub async fn record_outcome_reward(
        &self,
        reward: OutcomeReward,
    ) -> Result<Option<i64>, TracingError> {
        let mut extra = metadata(reward.reward_metadata);
        extra.insert(
            "achievements_count".into(),
            reward.achievements_count.into(),
        );
        let objective_key = if reward.objective_key.is_empty() {
            "reward".to_owned()
        } else {
            reward.objective_key
        };
        let id = self
            .inner()?
            .record_outcome_reward(crate::OutcomeReward {
                objective_key,
                total_reward: reward.total_reward,
                total_steps: u64::try_from(reward.total_steps).ok(),
                annotation: reward.annotation,
                metadata: extra,
                ..Default::default()
            })
            .await?;
        Ok(self.number(id))
    }

    /// Records a reward on event `event_id` (an id `record_event` returned).
    pub async fn record_event_reward(
        &self,
        event_id: i64,
        reward: EventReward,
    ) -> Result<Option<i64>, TracingError> {
        let record_id = self
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_id(event_id)
            .cloned()
            .ok_or_else(|| {
                TracingError::InvalidState(format!(
                    "no event {event_id} was recorded by this tracer"
                ))
            })?;
        let id = self
            .inner()?
            .record_event_reward(
                &record_id,
                crate::EventReward {
                    value: reward.reward_value,
                    reward_type: reward.reward_type,
                    key: reward.key,
                    annotation: reward.annotation,
                    source: reward.source,
                    ..Default::default()
                },
            )
            .await?;
        Ok(self.number(id))
    }

    /// The session from the store, in the seed's shape (with its events, which the seed
    /// itself did not load).
    pub async fn get_session(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionTrace>, TracingError> {
        let trace = self.inner()?.get_session(session_id).await?;
        Ok(trace.as_ref().map(trace_from_sonde))
    }

    /// Deletes a session; false if there was none.
    pub async fn delete_session(&self, session_id: &str) -> Result<bool, TracingError> {
        Ok(self.inner()?.delete_session(session_id).await?)
    }
}
