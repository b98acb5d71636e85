//! The assembled view of a session, and the fold that builds it from records.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Serialize;

use crate::{
    Body, Context, Event, EventReward, Message, Metadata, OutcomeReward, Record, SessionEnded,
    SessionStarted, StepEnded, StepStarted, Timestamp,
};

/// A record's envelope around a typed payload.
///
/// ```
/// use sonde_model::{Context, Entry, Timestamp};
/// let e = Entry { id: "m1".into(), timestamp: Timestamp::from_micros(0), context: Context::session("s"), value: 42 };
/// assert_eq!(e.value, 42);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry<T> {
    /// The record id.
    pub id: String,
    /// The record timestamp.
    pub timestamp: Timestamp,
    /// The record context.
    pub context: Context,
    /// The payload.
    pub value: T,
}

impl<T> Entry<T> {
    fn into_record(self, body: impl FnOnce(T) -> Body) -> Record {
        Record {
            id: self.id,
            timestamp: self.timestamp,
            context: self.context,
            body: body(self.value),
        }
    }
}

/// One timestep of a session: its start and end records.
///
/// ```
/// let step = sonde_model::StepTrace { step_id: "turn-1".into(), started: None, ended: None };
/// assert!(step.completed_at().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTrace {
    /// The step id.
    pub step_id: String,
    /// The `step_started` record, if one was recorded.
    pub started: Option<Entry<StepStarted>>,
    /// The `step_ended` record, if one was recorded.
    pub ended: Option<Entry<StepEnded>>,
}

impl StepTrace {
    /// When the step started.
    ///
    /// ```
    /// let step = sonde_model::StepTrace { step_id: "s".into(), started: None, ended: None };
    /// assert!(step.started_at().is_none());
    /// ```
    pub fn started_at(&self) -> Option<Timestamp> {
        self.started.as_ref().map(|e| e.timestamp)
    }

    /// When the step completed (`None` while it is still open).
    ///
    /// ```
    /// let step = sonde_model::StepTrace { step_id: "s".into(), started: None, ended: None };
    /// assert!(step.completed_at().is_none());
    /// ```
    pub fn completed_at(&self) -> Option<Timestamp> {
        self.ended.as_ref().map(|e| e.timestamp)
    }
}

/// A whole session: steps, events, messages and rewards, each in timestamp order.
///
/// Built by [`SessionTrace::from_records`] (the fold) or loaded from a store; both give
/// the same value for the same records. [`SessionTrace::to_records`] gives them back.
///
/// ```
/// use sonde_model::*;
/// let ctx = Context::session("s-1");
/// let records = vec![
///     Record::new(ctx.clone(), Body::SessionStarted(SessionStarted::default())),
///     Record::new(ctx.clone(), Body::Event(Event::Llm(LlmCall { model_name: "m".into(), ..Default::default() }))),
///     Record::new(ctx, Body::SessionEnded(SessionEnded::default())),
/// ];
/// let sessions = SessionTrace::from_records(records.clone());
/// assert_eq!(sessions.len(), 1);
/// assert_eq!(sessions[0].events.len(), 1);
/// assert_eq!(sessions[0].to_records(), records);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionTrace {
    /// The session id.
    pub session_id: String,
    /// The `session_started` record (the earliest, if several were written).
    pub started: Option<Entry<SessionStarted>>,
    /// The `session_ended` record (the earliest, if several were written).
    pub ended: Option<Entry<SessionEnded>>,
    /// Steps in the order they started.
    pub steps: Vec<StepTrace>,
    /// Every event of the session, in timestamp order.
    pub events: Vec<Entry<Event>>,
    /// Every message of the session, in timestamp order.
    pub messages: Vec<Entry<Message>>,
    /// Outcome rewards.
    pub outcome_rewards: Vec<Entry<OutcomeReward>>,
    /// Event rewards.
    pub event_rewards: Vec<Entry<EventReward>>,
}

impl SessionTrace {
    /// An empty session with this id.
    ///
    /// ```
    /// assert!(sonde_model::SessionTrace::new("s").events.is_empty());
    /// ```
    pub fn new(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            started: None,
            ended: None,
            steps: Vec::new(),
            events: Vec::new(),
            messages: Vec::new(),
            outcome_rewards: Vec::new(),
            event_rewards: Vec::new(),
        }
    }

    /// Folds records into sessions: duplicates (same record id) count once, and each
    /// session's parts are ordered by timestamp, then id. Sessions come out ordered by
    /// their earliest record.
    ///
    /// ```
    /// use sonde_model::*;
    /// let r = Record::new(Context::session("s"), Body::StepEnded(StepEnded::default()));
    /// let sessions = SessionTrace::from_records([r.clone(), r]);
    /// assert_eq!(sessions[0].to_records().len(), 1);
    /// ```
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Vec<SessionTrace> {
        let mut fold = TraceFold::default();
        for record in records {
            fold.push(record);
        }
        fold.finish()
    }

    /// Builds one session from records that all belong to it, already free of
    /// duplicate ids.
    fn assemble(session_id: String, mut records: Vec<Record>) -> Self {
        records.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let mut trace = Self::new(session_id);
        let mut step_index: HashMap<String, usize> = HashMap::new();
        for record in records {
            let Record {
                id,
                timestamp,
                context,
                body,
            } = record;
            macro_rules! entry {
                ($value:expr) => {
                    Entry {
                        id,
                        timestamp,
                        context,
                        value: $value,
                    }
                };
            }
            match body {
                Body::SessionStarted(v) => {
                    if trace.started.is_none() {
                        trace.started = Some(entry!(v));
                    }
                }
                Body::SessionEnded(v) => {
                    if trace.ended.is_none() {
                        trace.ended = Some(entry!(v));
                    }
                }
                Body::StepStarted(v) => {
                    let step = trace.step_mut(&mut step_index, context.step_id.clone());
                    if step.started.is_none() {
                        step.started = Some(entry!(v));
                    }
                }
                Body::StepEnded(v) => {
                    let step = trace.step_mut(&mut step_index, context.step_id.clone());
                    if step.ended.is_none() {
                        step.ended = Some(entry!(v));
                    }
                }
                Body::Event(v) => trace.events.push(entry!(v)),
                Body::Message(v) => trace.messages.push(entry!(v)),
                Body::OutcomeReward(v) => trace.outcome_rewards.push(entry!(v)),
                Body::EventReward(v) => trace.event_rewards.push(entry!(v)),
            }
        }
        trace
    }

    fn step_mut(
        &mut self,
        index: &mut HashMap<String, usize>,
        step_id: Option<String>,
    ) -> &mut StepTrace {
        let step_id = step_id.unwrap_or_default();
        let position = *index.entry(step_id.clone()).or_insert_with(|| {
            self.steps.push(StepTrace {
                step_id,
                started: None,
                ended: None,
            });
            self.steps.len() - 1
        });
        &mut self.steps[position]
    }

    /// Every record of the session: `session_started` first, then the others ordered by
    /// timestamp, then id.
    ///
    /// ```
    /// assert!(sonde_model::SessionTrace::new("s").to_records().is_empty());
    /// ```
    pub fn to_records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.record_count());
        let s = self.clone();
        records.extend(s.started.map(|e| e.into_record(Body::SessionStarted)));
        records.extend(s.ended.map(|e| e.into_record(Body::SessionEnded)));
        for step in s.steps {
            records.extend(step.started.map(|e| e.into_record(Body::StepStarted)));
            records.extend(step.ended.map(|e| e.into_record(Body::StepEnded)));
        }
        records.extend(s.events.into_iter().map(|e| e.into_record(Body::Event)));
        records.extend(s.messages.into_iter().map(|e| e.into_record(Body::Message)));
        records.extend(
            s.outcome_rewards
                .into_iter()
                .map(|e| e.into_record(Body::OutcomeReward)),
        );
        records.extend(
            s.event_rewards
                .into_iter()
                .map(|e| e.into_record(Body::EventReward)),
        );
        // A source may date its session's start after its first records (a transcript
        // names its session on a later line); the start still comes first.
        fn key(r: &Record) -> (bool, Timestamp, &str) {
            (
                !matches!(r.body, Body::SessionStarted(_)),
                r.timestamp,
                r.id.as_str(),
            )
        }
        records.sort_by(|a, b| key(a).cmp(&key(b)));
        records
    }

    /// How many records the session holds.
    ///
    /// ```
    /// assert_eq!(sonde_model::SessionTrace::new("s").record_count(), 0);
    /// ```
    pub fn record_count(&self) -> usize {
        usize::from(self.started.is_some())
            + usize::from(self.ended.is_some())
            + self
                .steps
                .iter()
                .map(|s| usize::from(s.started.is_some()) + usize::from(s.ended.is_some()))
                .sum::<usize>()
            + self.events.len()
            + self.messages.len()
            + self.outcome_rewards.len()
            + self.event_rewards.len()
    }

    /// When the session started: its `session_started` record, else its earliest record.
    ///
    /// ```
    /// assert!(sonde_model::SessionTrace::new("s").created_at().is_none());
    /// ```
    pub fn created_at(&self) -> Option<Timestamp> {
        if let Some(started) = &self.started {
            return Some(started.timestamp);
        }
        let steps = self
            .steps
            .iter()
            .flat_map(|s| [s.started_at(), s.completed_at()])
            .flatten();
        self.ended
            .iter()
            .map(|e| e.timestamp)
            .chain(steps)
            .chain(self.events.iter().map(|e| e.timestamp))
            .chain(self.messages.iter().map(|e| e.timestamp))
            .chain(self.outcome_rewards.iter().map(|e| e.timestamp))
            .chain(self.event_rewards.iter().map(|e| e.timestamp))
            .min()
    }

    /// Session metadata (from `session_started`; empty when there is none).
    ///
    /// ```
    /// assert!(sonde_model::SessionTrace::new("s").metadata().is_empty());
    /// ```
    pub fn metadata(&self) -> &Metadata {
        static EMPTY: OnceLock<Metadata> = OnceLock::new();
        self.started
            .as_ref()
            .map(|s| &s.value.metadata)
            .unwrap_or_else(|| EMPTY.get_or_init(Metadata::new))
    }

    /// The events recorded in step `step_id`.
    ///
    /// ```
    /// assert_eq!(sonde_model::SessionTrace::new("s").step_events("turn-1").count(), 0);
    /// ```
    pub fn step_events<'a>(&'a self, step_id: &'a str) -> impl Iterator<Item = &'a Entry<Event>> {
        self.events
            .iter()
            .filter(move |e| e.context.step_id.as_deref() == Some(step_id))
    }

    /// The messages recorded in step `step_id`.
    ///
    /// ```
    /// assert_eq!(sonde_model::SessionTrace::new("s").step_messages("turn-1").count(), 0);
    /// ```
    pub fn step_messages<'a>(
        &'a self,
        step_id: &'a str,
    ) -> impl Iterator<Item = &'a Entry<Message>> {
        self.messages
            .iter()
            .filter(move |e| e.context.step_id.as_deref() == Some(step_id))
    }
}

/// An incremental fold of records into sessions.
///
/// ```
/// use sonde_model::*;
/// let mut fold = TraceFold::default();
/// let r = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
/// assert!(fold.push(r.clone()));
/// assert!(!fold.push(r), "a record id counts once");
/// assert_eq!(fold.finish().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct TraceFold {
    seen: HashSet<String>,
    sessions: HashMap<String, Vec<Record>>,
}

impl TraceFold {
    /// Adds a record; returns false if a record with the same id was already added.
    ///
    /// ```
    /// let mut fold = sonde_model::TraceFold::default();
    /// assert_eq!(fold.finish().len(), 0);
    /// ```
    pub fn push(&mut self, record: Record) -> bool {
        if !self.seen.insert(record.id.clone()) {
            return false;
        }
        self.sessions
            .entry(record.context.session_id.clone())
            .or_default()
            .push(record);
        true
    }

    /// The sessions, ordered by their earliest record, then id.
    ///
    /// ```
    /// let fold = sonde_model::TraceFold::default();
    /// assert!(fold.finish().is_empty());
    /// ```
    pub fn finish(self) -> Vec<SessionTrace> {
        let mut sessions: Vec<(Option<Timestamp>, SessionTrace)> = self
            .sessions
            .into_iter()
            .map(|(id, records)| {
                let first = records.iter().map(|r| r.timestamp).min();
                (first, SessionTrace::assemble(id, records))
            })
            .collect();
        sessions.sort_by(|a, b| (a.0, &a.1.session_id).cmp(&(b.0, &b.1.session_id)));
        sessions.into_iter().map(|(_, s)| s).collect()
    }
}
