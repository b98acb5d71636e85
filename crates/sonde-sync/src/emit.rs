//! What a source parser hands the syncer: new records, records that replace ones sent
//! before, and counts of what it read; and the deterministic ids every source uses.

use std::collections::BTreeMap;

use serde_json::Value;
use sonde_model::{Body, Context, Metadata, Record, Timestamp, derived_id};

/// The most error messages a run keeps (the count goes on).
pub const MAX_ERROR_MESSAGES: usize = 20;

/// Records a parser produced from some lines.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Records seen for the first time.
    pub records: Vec<Record>,
    /// Records that replace versions sent before (a response that grew, a tool call
    /// whose result arrived); a store replaces them, other targets send them again.
    pub replacements: Vec<Record>,
    /// How many of `replacements` replace a version an earlier run sent (the others
    /// are still open and sent for the first time, as replacements so that a store
    /// overwrites whatever it has).
    pub updates: u64,
    /// Lines read.
    pub lines: u64,
    /// Lines and fields skipped, by what they were (`progress`, `user.meta`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Lines that could not be read, as `file:line: reason`.
    pub errors: Vec<String>,
    /// How many lines could not be read (more than `errors` keeps).
    pub error_count: u64,
}

impl Emitted {
    /// Counts a skipped line or field.
    pub(crate) fn skip(&mut self, what: &str) {
        *self.skipped.entry(what.to_owned()).or_default() += 1;
    }

    /// Counts a line that could not be read.
    pub(crate) fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < MAX_ERROR_MESSAGES {
            self.errors.push(message);
        }
    }

    /// Takes out the LLM calls added since `records` new and `replacements` replacing
    /// records were there whose values the stores cannot keep exactly (see
    /// [`LlmCall::out_of_range`](sonde_model::LlmCall::out_of_range)), and counts each as
    /// a line of `file` that could not be read: never a number changed silently.
    pub(crate) fn refuse_out_of_range(&mut self, records: usize, replacements: usize, file: &str) {
        let mut refused = Vec::new();
        for (list, from) in [
            (&mut self.records, records),
            (&mut self.replacements, replacements),
        ] {
            // Called after every line: look at the line's records alone, and walk the
            // whole list only to take one out (a scan of everything waiting, per line,
            // cost 2 % of a cold sync).
            let problem = |record: &Record| match &record.body {
                Body::Event(sonde_model::Event::Llm(call)) => call.out_of_range().is_some(),
                _ => false,
            };
            if !list.get(from..).is_some_and(|new| new.iter().any(problem)) {
                continue;
            }
            let mut index = 0;
            list.retain(|record| {
                index += 1;
                let problem = match &record.body {
                    Body::Event(sonde_model::Event::Llm(call)) if index > from => {
                        call.out_of_range()
                    }
                    _ => None,
                };
                match problem {
                    Some((field, reason)) => {
                        refused.push(format!(
                            "{file}: the LLM call {}: {field}: {reason}; not stored",
                            record.id
                        ));
                        false
                    }
                    None => true,
                }
            });
        }
        for message in refused {
            self.error(message);
        }
    }

    /// Records in this batch, new and replacing.
    pub fn len(&self) -> usize {
        self.records.len() + self.replacements.len()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.replacements.is_empty()
    }

    /// Moves the records out, keeping the counts.
    pub(crate) fn take_records(&mut self) -> (Vec<Record>, Vec<Record>) {
        (
            std::mem::take(&mut self.records),
            std::mem::take(&mut self.replacements),
        )
    }
}

/// `len` hex digits derived from `parts`.
fn hex_id(parts: &[&str], len: usize) -> String {
    let mut id = derived_id(parts).replace('-', "");
    id.truncate(len);
    id
}

/// A span id (16 hex digits) derived from `parts`: the same on every machine.
pub(crate) fn span_id(parts: &[&str]) -> String {
    hex_id(parts, 16)
}

/// The trace id (32 hex digits) of a session: every span of a session is in one trace,
/// so that a subagent's spans nest under the tool call that spawned it.
pub(crate) fn trace_id(session_id: &str) -> String {
    thread_local! {
        /// The last session's trace id: records come a session at a time.
        static LAST: std::cell::RefCell<(String, String)> = const {
            std::cell::RefCell::new((String::new(), String::new()))
        };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != session_id || last.1.is_empty() {
            *last = (session_id.to_owned(), hex_id(&["trace", session_id], 32));
        }
        last.1.clone()
    })
}

/// The context of a record in `session_id`.
pub(crate) fn context(
    session_id: &str,
    step_id: Option<&str>,
    span: String,
    parent: Option<String>,
) -> Context {
    Context {
        session_id: session_id.to_owned(),
        step_id: step_id.map(str::to_owned),
        trace_id: Some(trace_id(session_id)),
        span_id: Some(span),
        parent_span_id: parent,
        ..Context::default()
    }
}

/// A record at `ts` microseconds.
pub(crate) fn record(id: String, ts: i64, context: Context, body: Body) -> Record {
    Record {
        id,
        timestamp: Timestamp::from_micros(ts),
        context,
        body,
    }
}

/// The first line of `text`, cut to 200 characters: an error message from tool output.
pub(crate) fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

/// Notes where a record came from: the transcript file and its line numbers (seed
/// 003's `source_file` / `source_line`; `source_lines` when a record was read from
/// more than one line).
pub(crate) fn note_source(metadata: &mut Metadata, file: &str, lines: &[u64]) {
    metadata.insert("source_file".into(), Value::String(file.to_owned()));
    if let Some(first) = lines.first() {
        metadata.insert("source_line".into(), Value::from(*first));
    }
    if lines.len() > 1 {
        metadata.insert("source_lines".into(), Value::from(lines.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_right_length_and_deterministic() {
        assert_eq!(span_id(&["a"]).len(), 16);
        assert_eq!(trace_id("s").len(), 32);
        assert_eq!(span_id(&["a"]), span_id(&["a"]));
        assert_ne!(span_id(&["a"]), span_id(&["b"]));
        assert!(trace_id("s").chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn error_lines_are_the_first_non_empty_line() {
        assert_eq!(first_line("\n  \nboom\nmore"), "boom");
        assert_eq!(first_line(&"x".repeat(500)).len(), 200);
    }
}
