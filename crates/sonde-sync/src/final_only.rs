//! Final records only, for targets that cannot replace what they were sent (OTLP
//! backends keep the first span of an id and drop later copies).
//!
//! A file's parser sends a response once the next line proves it complete, a tool call
//! once its result arrives; what is still open at the end of a run waits in the parser
//! state until the file has been quiet for the quiet period (it stopped growing: the
//! session ended), and is then sent as it is. A session's and a step's start are held
//! here too, and sent with their end — a step ends when the next one starts, a session
//! when its file goes quiet — the end records carrying what their spans show: the
//! step's prompt and reply, the session's totals
//! (see `sonde_otlp::STEP_PROMPT`, `STEP_REPLY`, `SESSION_TOTALS`; the keys are
//! written out here, as the sync imports no sink).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sonde_model::{
    Body, Context, Metadata, Record, SessionEnded, SessionTotals, StepEnded, Timestamp, derived_id,
};

use crate::emit::Emitted;

/// The metadata key of an end record carrying its step's (or session's) prompt.
const PROMPT: &str = "prompt";
/// ... and its reply.
const REPLY: &str = "reply";
/// The metadata key of a session's end carrying its totals.
const TOTALS: &str = "totals";

/// A session or step whose end is not sent yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    context: Context,
    /// Its start record, held (a JSON line), unless an earlier quiet end sent it.
    #[serde(default)]
    start: Option<String>,
    prompt: Option<String>,
    reply: Option<String>,
    /// The time of its latest record, in microseconds.
    last: i64,
    #[serde(default)]
    totals: SessionTotals,
}

impl Open {
    fn new(record: &Record, start: bool) -> Self {
        Self {
            context: record.context.clone(),
            start: start.then(|| record.to_json_line()),
            prompt: None,
            reply: None,
            last: record.timestamp.as_micros(),
            totals: SessionTotals::default(),
        }
    }

    fn saw(&mut self, record: &Record) {
        self.last = self.last.max(record.timestamp.as_micros());
        match &record.body {
            Body::Message(m) => match (m.message_type.as_str(), m.to_role.as_deref()) {
                ("user_prompt", _) if self.prompt.is_none() => {
                    self.prompt = Some(m.content.as_text());
                }
                ("assistant_reply", Some("human") | None) => self.reply = Some(m.content.as_text()),
                _ => {}
            },
            Body::Event(event) => self.totals.add(event),
            _ => {}
        }
    }

    /// Its start (if held) and an end at its latest record.
    fn close(self, step: bool, records: &mut Vec<Record>) {
        records.extend(
            self.start
                .as_deref()
                .and_then(|line| Record::from_json_line(line).ok()),
        );
        let mut metadata = Metadata::new();
        if let Some(prompt) = self.prompt {
            metadata.insert(PROMPT.into(), Value::String(prompt));
        }
        if let Some(reply) = self.reply {
            metadata.insert(REPLY.into(), Value::String(reply));
        }
        let ctx = &self.context;
        let (id, body) = if step {
            let id = derived_id(&[
                "final",
                &ctx.session_id,
                ctx.step_id.as_deref().unwrap_or_default(),
                "step_ended",
            ]);
            (id, Body::StepEnded(StepEnded { metadata }))
        } else {
            metadata.insert(TOTALS.into(), json!(self.totals));
            let id = derived_id(&["final", &ctx.session_id, "session_ended"]);
            (id, Body::SessionEnded(SessionEnded { metadata }))
        };
        records.push(Record {
            id,
            timestamp: Timestamp::from_micros(self.last),
            context: self.context,
            body,
        });
    }
}

/// A file's sessions and steps whose start is held until their end, carried from one
/// run to the next beside the parser's state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct FinalOnly {
    sessions: Vec<Open>,
    steps: Vec<Open>,
}

impl FinalOnly {
    /// Whether anything waits for its end (the file must be looked at again once it is
    /// quiet, even unchanged).
    pub(crate) fn holding(&self) -> bool {
        !self.sessions.is_empty() || !self.steps.is_empty()
    }

    /// The session of `record` when this file started it (a subagent's file, or lines
    /// after an earlier quiet end, send no session end of their own: one root per
    /// session).
    fn started(&mut self, record: &Record) -> Option<&mut Open> {
        let id = &record.context.session_id;
        self.sessions
            .iter_mut()
            .find(|s| &s.context.session_id == id)
    }

    fn session(&mut self, record: &Record) -> &mut Open {
        let id = &record.context.session_id;
        let at = match self
            .sessions
            .iter()
            .position(|s| &s.context.session_id == id)
        {
            Some(at) => at,
            None => {
                let mut open = Open::new(record, false);
                open.context = Context {
                    step_id: None,
                    span_id: None,
                    parent_span_id: None,
                    ..record.context.clone()
                };
                self.sessions.push(open);
                self.sessions.len() - 1
            }
        };
        &mut self.sessions[at]
    }

    /// Takes the new records of `out` (from `from` on) through: starts held, a step's
    /// end sent when the next step of its session starts, the rest noted and let by.
    pub(crate) fn absorb(&mut self, out: &mut Emitted, from: usize) {
        if out.records.len() <= from {
            return;
        }
        let new = out.records.split_off(from);
        for record in new {
            match &record.body {
                Body::SessionStarted(_) => {
                    let open = self.session(&record);
                    open.start = Some(record.to_json_line());
                    open.last = open.last.max(record.timestamp.as_micros());
                    continue;
                }
                Body::StepStarted(_) => {
                    let session = &record.context.session_id;
                    let ending: Vec<Open> = {
                        let (ending, staying) = std::mem::take(&mut self.steps)
                            .into_iter()
                            .partition(|s| &s.context.session_id == session);
                        self.steps = staying;
                        ending
                    };
                    for step in ending {
                        step.close(true, &mut out.records);
                    }
                    if let Some(session) = self.started(&record) {
                        session.saw(&record);
                    }
                    self.steps.push(Open::new(&record, true));
                    continue;
                }
                _ => {}
            }
            if let Some(session) = self.started(&record) {
                session.saw(&record);
            }
            if let Some(step) = record.context.step_id.as_deref()
                && let Some(open) = self
                    .steps
                    .iter_mut()
                    .find(|s| s.context.step_id.as_deref() == Some(step))
            {
                open.saw(&record);
            }
            out.records.push(record);
        }
    }

    /// Sends every held start with its end: the file is quiet, its sessions ended.
    pub(crate) fn close(&mut self, out: &mut Emitted) {
        for step in std::mem::take(&mut self.steps) {
            step.close(true, &mut out.records);
        }
        for session in std::mem::take(&mut self.sessions) {
            session.close(false, &mut out.records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_model::{Message, MessageContent, SessionStarted, StepStarted};

    fn at(second: i64, ctx: Context, body: Body) -> Record {
        let mut r = Record::new(ctx, body);
        r.timestamp = Timestamp::from_micros(second * 1_000_000);
        r
    }

    fn prompt(second: i64, step: &str, text: &str) -> Vec<Record> {
        let ctx = Context::session("s").with_step(step);
        vec![
            at(
                second,
                ctx.clone(),
                Body::StepStarted(StepStarted::default()),
            ),
            at(
                second,
                ctx,
                Body::Message(Message {
                    content: MessageContent::text(text),
                    message_type: "user_prompt".into(),
                    ..Default::default()
                }),
            ),
        ]
    }

    #[test]
    fn starts_wait_for_their_ends_which_carry_the_prompt_and_the_totals() {
        let mut held = FinalOnly::default();
        let mut out = Emitted::default();
        out.records.push(at(
            0,
            Context::session("s"),
            Body::SessionStarted(SessionStarted::default()),
        ));
        out.records.extend(prompt(1, "t1", "first"));
        held.absorb(&mut out, 0);
        assert_eq!(out.records.len(), 1, "only the prompt's message goes");
        assert!(held.holding());

        let from = out.records.len();
        out.records.extend(prompt(5, "t2", "second"));
        held.absorb(&mut out, from);
        let kinds: Vec<&str> = out.records[from..].iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds,
            ["step_started", "step_ended", "message"],
            "the first step ends"
        );
        match &out.records[from + 1].body {
            Body::StepEnded(end) => assert_eq!(end.metadata[PROMPT], "first"),
            other => panic!("{other:?}"),
        }

        let from = out.records.len();
        held.close(&mut out);
        let kinds: Vec<&str> = out.records[from..].iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds,
            [
                "step_started",
                "step_ended",
                "session_started",
                "session_ended"
            ]
        );
        match &out.records.last().map(|r| &r.body) {
            Some(Body::SessionEnded(end)) => {
                assert_eq!(end.metadata[TOTALS]["llm_calls"], 0);
                assert_eq!(end.metadata[PROMPT], "first");
            }
            other => panic!("{other:?}"),
        }
        assert!(!held.holding());
    }
}
