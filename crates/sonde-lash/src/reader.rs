//! The reader: lash trace lines in, Sonde records out.
//!
//! It keeps what a line cannot say alone: which sessions have started, how many turns
//! each has had, and the LLM calls and tool calls that have started but not finished
//! (a call becomes one Sonde record when it completes, carrying the start's time).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;

use serde_json::{Map, Value};
use sonde_model::{
    Body, Context, CustomEvent, Event, Level, LlmCall, LlmCallRecord, Metadata, PromptBuilt,
    Record, RuntimeAction, SessionStarted, Status, StepEnded, StepStarted, StreamEvent, Timestamp,
    ToolCallStarted, derived_id,
};

use crate::kinds::{NEWEST_SCHEMA_VERSION, is_known, level_of};
use crate::usage::Usage;
use crate::wire::{
    LashLine, Reason, object, optional_object, optional_string, optional_u64, parse_line, string,
};

/// A line that is not a lash trace record, or whose event is malformed: where, and why.
///
/// ```
/// let mut reader = sonde_lash::LashReader::new("run.jsonl");
/// let err = reader.read_line(3, "{").unwrap_err();
/// assert!(err.to_string().starts_with("run.jsonl:3: invalid json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct LineError {
    /// The file, as given to [`LashReader::new`].
    pub file: String,
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong, naming the field.
    pub reason: String,
}

/// What a read found besides its records.
///
/// ```
/// let report = sonde_lash::Report::default();
/// assert_eq!(report.unknown_total(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Lines read as records (blank lines and bad lines not counted).
    pub records_read: usize,
    /// Each schema version seen, with its record count.
    pub versions: BTreeMap<u32, usize>,
    /// Each kind this reader does not know, with its record count: kept as custom
    /// events named `lash.KIND`.
    pub unknown_kinds: BTreeMap<String, usize>,
    /// The lash sessions read.
    pub sessions: BTreeSet<String>,
    /// LLM calls made (a start and its completion or failure are one).
    pub llm_calls: usize,
    /// Tool calls that finished (a start and its completion are one; a start alone
    /// stays a `tool_call_started` record).
    pub tool_calls: usize,
    /// One line per thing worth saying that is not an error: a schema version newer
    /// than this reader knows, calls a trace ends before completing.
    pub warnings: Vec<String>,
}

impl Report {
    /// Records of kinds this reader does not know.
    ///
    /// ```
    /// let mut report = sonde_lash::Report::default();
    /// report.unknown_kinds.insert("new_thing".into(), 2);
    /// assert_eq!(report.unknown_total(), 2);
    /// ```
    pub fn unknown_total(&self) -> usize {
        self.unknown_kinds.values().sum()
    }

    /// Adds what another read found (another file of the same import).
    ///
    /// ```
    /// let mut all = sonde_lash::Report::default();
    /// let mut one = sonde_lash::Report::default();
    /// one.llm_calls = 2;
    /// one.versions.insert(7, 10);
    /// all.merge(one.clone());
    /// all.merge(one);
    /// assert_eq!((all.llm_calls, all.versions[&7]), (4, 20));
    /// ```
    pub fn merge(&mut self, other: Report) {
        self.records_read += other.records_read;
        for (version, n) in other.versions {
            *self.versions.entry(version).or_insert(0) += n;
        }
        for (kind, n) in other.unknown_kinds {
            *self.unknown_kinds.entry(kind).or_insert(0) += n;
        }
        self.sessions.extend(other.sessions);
        self.llm_calls += other.llm_calls;
        self.tool_calls += other.tool_calls;
        self.warnings.extend(other.warnings);
    }
}

/// The records made from a whole lash trace, with its report and bad lines.
#[derive(Debug, Clone, Default)]
pub struct LashImport {
    /// Sonde records, in the order their lash records completed.
    pub records: Vec<Record>,
    /// What was read.
    pub report: Report,
    /// Lines that were skipped, each naming file, line and field.
    pub problems: Vec<LineError>,
}

/// Reads a whole lash trace. Bad lines are skipped and listed in
/// [`LashImport::problems`]; only failing to read the input is an error.
///
/// ```
/// let trace = r#"{"schema_version":7,"id":"r1","timestamp":"2026-08-22T10:00:00Z","context":{"session_id":"s1"},"type":"session_started"}
/// {"schema_version":7,"id":"r2","timestamp":"2026-08-22T10:00:01Z","context":{"session_id":"s1"},"type":"custom","name":"hello","payload":{"n":1}}"#;
/// let import = sonde_lash::read("trace.jsonl", trace.as_bytes()).unwrap();
/// assert_eq!(import.records.len(), 2);
/// assert!(import.problems.is_empty());
/// ```
pub fn read(file: &str, input: impl BufRead) -> std::io::Result<LashImport> {
    let mut reader = LashReader::new(file);
    let mut problems = Vec::new();
    for (index, line) in input.lines().enumerate() {
        if let Err(problem) = reader.read_line(index + 1, &line?) {
            problems.push(problem);
        }
    }
    let (records, report) = reader.finish();
    Ok(LashImport {
        records,
        report,
        problems,
    })
}

/// An LLM call that has started and not finished.
#[derive(Debug)]
struct PendingLlm {
    id: String,
    timestamp: Timestamp,
    context: Context,
    request: Map<String, Value>,
    metadata: Metadata,
}

/// A tool call that has started and not finished.
#[derive(Debug)]
struct PendingTool {
    id: String,
    timestamp: Timestamp,
    context: Context,
    name: String,
    call_id: Option<String>,
    args: Value,
    metadata: Metadata,
}

#[derive(Debug, Default)]
struct SessionState {
    started: bool,
    turns: u32,
    llm: HashMap<String, PendingLlm>,
    tools: HashMap<String, PendingTool>,
    /// The provider a `provider_request` named, by LLM call id.
    providers: HashMap<String, String>,
    /// Completed LLM calls that came without usage, by LLM call id: where their
    /// record is, for a later `token_usage` record.
    wanting_usage: HashMap<String, usize>,
}

/// Reads a lash trace line by line into Sonde records.
///
/// ```
/// let mut reader = sonde_lash::LashReader::new("trace.jsonl");
/// reader.read_line(1, r#"{"schema_version":2,"id":"a","timestamp":"2026-06-01T00:00:00Z","context":{"session_id":"s","turn_index":0},"type":"tool_call_started","call_id":"c1","name":"read_file","args":{"path":"x"}}"#).unwrap();
/// reader.read_line(2, r#"{"schema_version":2,"id":"b","timestamp":"2026-06-01T00:00:01Z","context":{"session_id":"s","turn_index":0},"type":"tool_call_completed","call_id":"c1","name":"read_file","args":{"path":"x"},"output":{"outcome":{"status":"success","payload":"text"}},"duration_ms":1000}"#).unwrap();
/// let (records, report) = reader.finish();
/// assert_eq!(report.tool_calls, 1);
/// // the session's start, and one tool call
/// assert_eq!(records.len(), 2);
/// ```
#[derive(Debug)]
pub struct LashReader {
    file: String,
    out: Vec<Record>,
    sessions: HashMap<String, SessionState>,
    last_session: Option<String>,
    report: Report,
}

impl LashReader {
    /// A reader for the trace named `file` (used in errors and warnings).
    ///
    /// ```
    /// let reader = sonde_lash::LashReader::new("-");
    /// assert!(reader.finish().0.is_empty());
    /// ```
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            out: Vec::new(),
            sessions: HashMap::new(),
            last_session: None,
            report: Report::default(),
        }
    }

    /// Reads line `line_number` (from 1). Blank lines are skipped; a bad line changes
    /// nothing and is the error.
    ///
    /// ```
    /// let mut reader = sonde_lash::LashReader::new("t.jsonl");
    /// reader.read_line(1, "").unwrap();
    /// let err = reader.read_line(2, r#"{"schema_version":7,"id":"a","timestamp":"2026-06-01T00:00:00Z","type":"tool_call_started","args":{}}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "t.jsonl:2: tool_call_started: missing field `name`");
    /// ```
    pub fn read_line(&mut self, line_number: usize, line: &str) -> Result<(), LineError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let error = |reason| LineError {
            file: self.file.clone(),
            line: line_number,
            reason,
        };
        let parsed = parse_line(line).map_err(error)?;
        let kind = parsed.kind.clone();
        let version = parsed.schema_version;
        self.take(parsed).map_err(|reason| LineError {
            file: self.file.clone(),
            line: line_number,
            reason: format!("{kind}: {reason}"),
        })?;
        self.report.records_read += 1;
        let seen = self.report.versions.entry(version).or_insert(0);
        *seen += 1;
        if *seen == 1 && version > NEWEST_SCHEMA_VERSION {
            self.report.warnings.push(format!(
                "{}: lash trace schema version {version} is newer than this reader knows ({NEWEST_SCHEMA_VERSION}); read as far as it is understood",
                self.file
            ));
        }
        Ok(())
    }

    /// Ends the read: LLM calls still open become failed LLM calls, tool calls still
    /// open `tool_call_started` records (a warning says how many), and the records and
    /// report are returned.
    ///
    /// ```
    /// let (records, report) = sonde_lash::LashReader::new("t").finish();
    /// assert!(records.is_empty() && report.warnings.is_empty());
    /// ```
    pub fn finish(mut self) -> (Vec<Record>, Report) {
        let mut open_llm = Vec::new();
        let mut open_tools = Vec::new();
        for state in self.sessions.values_mut() {
            open_llm.extend(state.llm.drain().map(|(_, p)| p));
            open_tools.extend(state.tools.drain().map(|(_, p)| p));
        }
        open_llm.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        open_tools.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let (llm, tools) = (open_llm.len(), open_tools.len());
        for pending in open_llm {
            let mut call = llm_call(&pending.request, pending.metadata.clone());
            call.status = Status::Error;
            call.error = Some("the trace ends before this call finished".to_owned());
            call.call_records = vec![LlmCallRecord {
                request: Some(Value::Object(pending.request).into()),
                ..Default::default()
            }];
            self.report.llm_calls += 1;
            self.out.push(Record {
                id: pending.id,
                timestamp: pending.timestamp,
                context: pending.context,
                body: Body::Event(Event::Llm(call)),
            });
        }
        for pending in open_tools {
            let start = ToolCallStarted {
                tool_name: pending.name,
                tool_call_id: pending.call_id,
                arguments: Some(pending.args).filter(|v| !v.is_null()),
                metadata: pending.metadata,
                ..Default::default()
            };
            self.out.push(Record {
                id: pending.id,
                timestamp: pending.timestamp,
                context: pending.context,
                body: Body::Event(Event::ToolCallStarted(start)),
            });
        }
        if llm + tools > 0 {
            self.report.warnings.push(format!(
                "{}: the trace ends before {llm} LLM call(s) and {tools} tool call(s) finished; the LLM calls are kept as failed, the tool calls as tool_call_started records",
                self.file
            ));
        }
        (self.out, self.report)
    }

    /// Maps one parsed line. Everything is read and checked before any state changes.
    fn take(&mut self, line: LashLine) -> Result<(), Reason> {
        let session_id = line
            .context
            .session_id
            .clone()
            .or_else(|| self.last_session.clone())
            .unwrap_or_else(|| format!("lash:{}", self.file));
        let step_id = line
            .context
            .turn_id
            .clone()
            .or_else(|| line.context.turn_index.map(|i| format!("turn-{i}")));
        let mut context = Context::session(&session_id);
        context.step_id = step_id.clone();
        let metadata = base_metadata(&line);
        let fields = &line.fields;
        let body = match line.kind.as_str() {
            "session_started" => {
                let mut meta = metadata;
                if let Some(m) = optional_object(fields, "metadata")? {
                    meta.extend(m.clone());
                }
                if self.state(&session_id).started {
                    Some(custom_event("lash.session_started", fields, meta))
                } else {
                    self.state(&session_id).started = true;
                    Some(Body::SessionStarted(SessionStarted {
                        metadata: meta,
                        ..Default::default()
                    }))
                }
            }
            "turn_started" => {
                let mut meta = metadata;
                if let Some(m) = optional_object(fields, "metadata")? {
                    meta.extend(m.clone());
                }
                let state = self.state(&session_id);
                let step_index = state.turns;
                state.turns += 1;
                if context.step_id.is_none() {
                    context.step_id = Some(format!("turn-{step_index}"));
                }
                Some(Body::StepStarted(StepStarted {
                    step_index,
                    turn_number: line.context.turn_index.and_then(|i| i64::try_from(i).ok()),
                    metadata: meta,
                }))
            }
            "turn_completed" => {
                let status = string(fields, "status")?;
                let done_reason = optional_string(fields, "done_reason")?;
                // schema 1: `handoff`; 2 to 7: `agent_frame_switch`.
                let switch = match optional_object(fields, "agent_frame_switch")? {
                    Some(s) => Some(("agent_frame_switch", s)),
                    None => optional_object(fields, "handoff")?.map(|s| ("handoff", s)),
                };
                let mut meta = metadata.clone();
                meta.insert("status".into(), status.into());
                if let Some(reason) = done_reason {
                    meta.insert("done_reason".into(), reason.into());
                }
                if let Some((name, switch)) = switch {
                    let mut data = Map::new();
                    data.insert(name.to_owned(), Value::Object(switch.clone()));
                    self.push_started(&session_id, &line);
                    self.out.push(Record {
                        id: derived_id(&["lash", &line.id, name]),
                        timestamp: line.timestamp,
                        context: context.clone(),
                        body: custom_event("lash.agent_frame_switch", &data, metadata),
                    });
                }
                Some(Body::StepEnded(StepEnded { metadata: meta }))
            }
            "llm_call_started" => {
                let request = object(fields, "request")?.clone();
                optional_string(&request, "request.model")?;
                let key = line.context.llm_call_id.clone().unwrap_or(line.id.clone());
                self.push_started(&session_id, &line);
                let pending = PendingLlm {
                    id: line.id.clone(),
                    timestamp: line.timestamp,
                    context: context.clone(),
                    request,
                    metadata,
                };
                if let Some(earlier) = self.state(&session_id).llm.insert(key, pending) {
                    self.restarted("LLM call", &earlier.id);
                }
                None
            }
            "llm_call_completed" | "llm_call_failed" => {
                self.llm_finished(&line, &session_id, context.clone(), metadata)?;
                None
            }
            "token_usage" => {
                let usage = Usage::read(object(fields, "usage")?, "usage")?;
                optional_object(fields, "cumulative")?;
                let target = line
                    .context
                    .llm_call_id
                    .as_deref()
                    .and_then(|key| self.state(&session_id).wanting_usage.remove(key));
                match target.and_then(|i| self.out.get_mut(i)) {
                    Some(Record {
                        body: Body::Event(Event::Llm(call)),
                        ..
                    }) => {
                        usage.apply(call);
                        call.metadata
                            .insert("usage_from".into(), "token_usage".into());
                        None
                    }
                    _ => Some(custom_event("lash.token_usage", fields, metadata)),
                }
            }
            "tool_call_started" => {
                let name = string(fields, "name")?;
                let call_id = optional_string(fields, "call_id")?;
                let args = fields.get("args").cloned().unwrap_or(Value::Null);
                let key = tool_key(call_id.as_deref(), &name);
                self.push_started(&session_id, &line);
                let pending = PendingTool {
                    id: line.id.clone(),
                    timestamp: line.timestamp,
                    context: context.clone(),
                    name,
                    call_id,
                    args,
                    metadata,
                };
                if let Some(earlier) = self.state(&session_id).tools.insert(key, pending) {
                    self.restarted("tool call", &earlier.id);
                }
                None
            }
            "tool_call_completed" => {
                self.tool_finished(&line, &session_id, context.clone(), metadata)?;
                None
            }
            "custom" => {
                let name = string(fields, "name")?;
                let data = fields.get("payload").cloned().unwrap_or(Value::Null);
                Some(Body::Event(Event::Custom(CustomEvent {
                    name,
                    data,
                    metadata,
                    ..Default::default()
                })))
            }
            "prompt_built" => {
                let components = match fields.get("components") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(parts)) => parts.clone(),
                    Some(other) => {
                        return Err(format!(
                            "invalid field `components`: expected an array, found {}",
                            crate::wire::type_name(other)
                        ));
                    }
                };
                Some(Body::Event(Event::PromptBuilt(PromptBuilt {
                    prompt_hash: optional_string(fields, "prompt_hash")?,
                    prompt_chars: optional_u64(fields, "prompt_chars")?,
                    components,
                    level: level_of(&line.kind),
                    metadata,
                    ..Default::default()
                })))
            }
            "provider_stream_event" | "runtime_stream_event" => {
                let event = object(fields, "event")?;
                let source = line.kind.trim_end_matches("_stream_event");
                Some(Body::Event(Event::Stream(StreamEvent {
                    source: source.to_owned(),
                    name: string(event, "event.event_name")?,
                    sequence: optional_u64(event, "event.sequence")?,
                    elapsed_ms: optional_u64(event, "event.elapsed_ms")?.map(|ms| ms as f64),
                    data: Value::Object(event.clone()),
                    level: level_of(&line.kind),
                    metadata,
                    ..Default::default()
                })))
            }
            "provider_request" => {
                let event = object(fields, "event")?;
                let provider = optional_string(event, "event.provider")?;
                if let (Some(provider), Some(key)) = (provider, line.context.llm_call_id.clone()) {
                    self.state(&session_id).providers.insert(key, provider);
                }
                Some(custom_event("lash.provider_request", fields, metadata))
            }
            kind => {
                let mut meta = metadata;
                if !is_known(kind) {
                    *self
                        .report
                        .unknown_kinds
                        .entry(kind.to_owned())
                        .or_insert(0) += 1;
                    meta.insert("lash_unknown_kind".into(), true.into());
                } else if is_failure(kind, fields) {
                    meta.insert("failed".into(), true.into());
                }
                Some(custom_event(&format!("lash.{kind}"), fields, meta))
            }
        };
        if let Some(body) = body {
            self.push_started(&session_id, &line);
            self.out.push(Record {
                id: line.id.clone(),
                timestamp: line.timestamp,
                context,
                body,
            });
        }
        self.report.sessions.insert(session_id.clone());
        self.last_session = Some(session_id);
        Ok(())
    }

    /// Warns that a call started again before finishing (its first start is dropped).
    fn restarted(&mut self, what: &str, first: &str) {
        self.report.warnings.push(format!(
            "{}: {what} record {first} started again before it finished; the first start is dropped",
            self.file
        ));
    }

    fn state(&mut self, session_id: &str) -> &mut SessionState {
        self.sessions.entry(session_id.to_owned()).or_default()
    }

    /// Starts the session with a `session_started` record of its own when its first
    /// lash record is not one.
    fn push_started(&mut self, session_id: &str, line: &LashLine) {
        if line.kind == "session_started" {
            return;
        }
        let state = self.state(session_id);
        if state.started {
            return;
        }
        state.started = true;
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), "lash".into());
        metadata.insert("lash_schema_version".into(), line.schema_version.into());
        self.out.push(Record {
            id: derived_id(&["lash-session", session_id]),
            timestamp: line.timestamp,
            context: Context::session(session_id),
            body: Body::SessionStarted(SessionStarted {
                metadata,
                ..Default::default()
            }),
        });
    }

    /// `llm_call_completed` or `llm_call_failed`: one LLM call with its start.
    fn llm_finished(
        &mut self,
        line: &LashLine,
        session_id: &str,
        context: Context,
        metadata: Metadata,
    ) -> Result<(), Reason> {
        let fields = &line.fields;
        let failed = line.kind == "llm_call_failed";
        // Read everything first: a bad line changes nothing.
        let (response, error) = if failed {
            (None, Some(object(fields, "error")?))
        } else {
            (Some(object(fields, "response")?), None)
        };
        let usage = optional_object(fields, "usage")?
            .map(|u| Usage::read(u, "usage"))
            .transpose()?;
        let duration = response
            .map(|r| optional_u64(r, "response.duration_ms"))
            .transpose()?
            .flatten();
        let terminal_reason = match (response, error) {
            (Some(r), _) => optional_string(r, "response.terminal_reason")?,
            (_, Some(e)) => optional_string(e, "error.terminal_reason")?,
            _ => None,
        };
        let message = error.map(|e| string(e, "error.message")).transpose()?;

        let key = line.context.llm_call_id.clone();
        let state = self.state(session_id);
        let pending = match &key {
            Some(key) => state.llm.remove(key),
            None => latest(&mut state.llm),
        };
        let provider = key.as_ref().and_then(|k| state.providers.remove(k));
        let (id, timestamp, context, request, mut meta) = match pending {
            Some(p) => (p.id, p.timestamp, p.context, Some(p.request), p.metadata),
            None => {
                let started = started_before(line.timestamp, duration);
                (line.id.clone(), started, context, None, metadata)
            }
        };
        meta.insert("lash_finished_by".into(), line.id.clone().into());
        let mut call = llm_call(request.as_ref().unwrap_or(&Map::new()), meta);
        call.provider = provider;
        if let Some(usage) = usage {
            usage.apply(&mut call);
        }
        call.latency_ms = duration.map(|d| d as f64);
        call.stop_reason = terminal_reason;
        if failed {
            call.status = Status::Error;
            call.error = message;
        }
        let mut exchange = Metadata::new();
        for name in ["provider_usage", "stream_summary", "attempts"] {
            if let Some(v) = fields.get(name).filter(|v| !v.is_null()) {
                exchange.insert(name.into(), v.clone());
            }
        }
        if let Some(error) = error {
            exchange.insert("error".into(), Value::Object(error.clone()));
        }
        call.call_records = vec![LlmCallRecord {
            request: request.map(|r| Value::Object(r).into()),
            response: response.map(|r| Value::Object(r.clone()).into()),
            metadata: exchange,
        }];
        if let Some((field, reason)) = call.out_of_range() {
            return Err(format!("invalid field `usage.{field}`: {reason}"));
        }
        self.push_started(session_id, line);
        if usage.is_none()
            && !failed
            && let Some(key) = key
        {
            let at = self.out.len();
            self.state(session_id).wanting_usage.insert(key, at);
        }
        self.report.llm_calls += 1;
        self.out.push(Record {
            id,
            timestamp,
            context,
            body: Body::Event(Event::Llm(call)),
        });
        Ok(())
    }

    /// `tool_call_completed`: one tool call with its start, duration and outcome.
    fn tool_finished(
        &mut self,
        line: &LashLine,
        session_id: &str,
        context: Context,
        metadata: Metadata,
    ) -> Result<(), Reason> {
        let fields = &line.fields;
        let name = string(fields, "name")?;
        let call_id = optional_string(fields, "call_id")?;
        let duration = optional_u64(fields, "duration_ms")?;
        let outcome = ToolOutcome::read(fields)?;

        let key = tool_key(call_id.as_deref(), &name);
        let pending = self.state(session_id).tools.remove(&key);
        let (id, timestamp, context, mut meta) = match pending {
            Some(p) => (p.id, p.timestamp, p.context, p.metadata),
            None => {
                let started = started_before(line.timestamp, duration);
                (line.id.clone(), started, context, metadata)
            }
        };
        meta.insert("lash_finished_by".into(), line.id.clone().into());
        meta.insert("outcome".into(), outcome.status.into());
        for name in ["control", "attempts"] {
            let value = match name {
                "control" => outcome.control.clone(),
                _ => fields.get(name).cloned(),
            };
            if let Some(v) = value.filter(|v| !v.is_null()) {
                meta.insert(name.into(), v);
            }
        }
        let ok = outcome.status == "success";
        let action = RuntimeAction {
            tool_name: Some(name),
            tool_call_id: call_id,
            arguments: fields.get("args").filter(|v| !v.is_null()).cloned(),
            error: (!ok).then(|| error_text(outcome.status, &outcome.payload)),
            result: Some(outcome.payload).filter(|v| !v.is_null()),
            status: if ok { Status::Ok } else { Status::Error },
            duration_ms: duration.map(|d| d as f64),
            metadata: meta,
            ..Default::default()
        };
        self.push_started(session_id, line);
        self.report.tool_calls += 1;
        self.out.push(Record {
            id,
            timestamp,
            context,
            body: Body::Event(Event::Runtime(action)),
        });
        Ok(())
    }
}

/// When something that ended at `end` after `duration_ms` started (`end` when the
/// duration is unknown).
fn started_before(end: Timestamp, duration_ms: Option<u64>) -> Timestamp {
    let micros = duration_ms.map_or(0, |d| i64::try_from(d).unwrap_or(0).saturating_mul(1000));
    Timestamp::from_micros(end.as_micros().saturating_sub(micros))
}

/// How a tool call ended, in either shape lash has written.
struct ToolOutcome {
    status: &'static str,
    payload: Value,
    control: Option<Value>,
}

impl ToolOutcome {
    fn read(fields: &Map<String, Value>) -> Result<Self, Reason> {
        // Schema 1 and early 2: `result` and `success`.
        if let Some(success) = fields.get("success") {
            let success = success.as_bool().ok_or_else(|| {
                format!("invalid field `success`: expected a boolean, found {success}")
            })?;
            return Ok(Self {
                status: if success { "success" } else { "failure" },
                payload: fields.get("result").cloned().unwrap_or(Value::Null),
                control: None,
            });
        }
        // Later: `output: {outcome: {status, payload}, control}`.
        let output = object(fields, "output")?;
        let outcome = object(output, "output.outcome")?;
        let status = string(outcome, "output.outcome.status")?;
        let status = match status.as_str() {
            "success" => "success",
            "failure" => "failure",
            "cancelled" => "cancelled",
            other => {
                return Err(format!(
                    "invalid field `output.outcome.status`: {other:?} is not success, failure or cancelled"
                ));
            }
        };
        Ok(Self {
            status,
            payload: outcome.get("payload").cloned().unwrap_or(Value::Null),
            control: output.get("control").cloned(),
        })
    }
}

/// What went wrong with a tool call, for its `error`: the failure's message when it
/// has one, else its payload, else the outcome.
fn error_text(status: &str, payload: &Value) -> String {
    match payload {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Object(map) => match map.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => payload.to_string(),
        },
        Value::Null => status.to_owned(),
        other => other.to_string(),
    }
}

/// Pairs a tool call's start with its completion: by call id, else by tool name.
fn tool_key(call_id: Option<&str>, name: &str) -> String {
    match call_id {
        Some(id) => format!("id:{id}"),
        None => format!("name:{name}"),
    }
}

/// The most recently started of `pending` (for a completion that names no call).
fn latest(pending: &mut HashMap<String, PendingLlm>) -> Option<PendingLlm> {
    let key = pending
        .iter()
        .max_by(|a, b| (a.1.timestamp, &a.1.id).cmp(&(b.1.timestamp, &b.1.id)))
        .map(|(k, _)| k.clone())?;
    pending.remove(&key)
}

/// An LLM call from a lash request: model, and what the request says about the call.
fn llm_call(request: &Map<String, Value>, mut metadata: Metadata) -> LlmCall {
    for name in ["model_variant", "tool_choice", "stream"] {
        if let Some(v) = request.get(name).filter(|v| !v.is_null()) {
            metadata.insert(name.into(), v.clone());
        }
    }
    if let Some(Value::Array(tools)) = request.get("tools") {
        let names: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("name").cloned())
            .collect();
        metadata.insert("tools".into(), names.into());
    }
    if let Some(Value::Array(attachments)) = request.get("attachments") {
        metadata.insert("attachments".into(), attachments.len().into());
    }
    LlmCall {
        model_name: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        operation: Some("chat".to_owned()),
        metadata,
        ..Default::default()
    }
}

/// What every record made from a lash line carries: the lash kind and schema version,
/// and the lash context beyond session and turn.
fn base_metadata(line: &LashLine) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("lash_type".into(), line.kind.clone().into());
    metadata.insert("lash_schema_version".into(), line.schema_version.into());
    let extra: Map<String, Value> = line
        .context_object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "session_id" | "turn_id"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !extra.is_empty() {
        metadata.insert("lash_context".into(), Value::Object(extra));
    }
    metadata
}

/// A custom event named `name` whose data is the lash event's own fields.
fn custom_event(name: &str, fields: &Map<String, Value>, metadata: Metadata) -> Body {
    let level = metadata
        .get("lash_type")
        .and_then(Value::as_str)
        .map_or(Level::Standard, level_of);
    Body::Event(Event::Custom(CustomEvent {
        name: name.to_owned(),
        data: Value::Object(fields.clone()),
        level,
        metadata,
        ..Default::default()
    }))
}

/// Whether a lash event kept as a custom event reports a failure (lash's own
/// `TraceEvent::is_failed`, extended to the graph records of older schemas).
fn is_failure(kind: &str, fields: &Map<String, Value>) -> bool {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match kind {
        "effect_envelope_diff" | "store_error_observed" => true,
        "journaled_effect_settled" | "durable_timer_resolved" => {
            text(fields.get("status")).as_deref() == Some("failed")
        }
        "durable_wait_resolved" => text(fields.get("resolution")).as_deref() == Some("failed"),
        "language_execution" | "lashlang_execution" | "process_tracking" => {
            let event = fields.get("event");
            let event_kind = text(event.and_then(|e| e.get("kind")));
            let status = text(event.and_then(|e| e.get("status")));
            event_kind.as_deref() == Some("node_failed")
                || (matches!(
                    event_kind.as_deref(),
                    Some("execution_finished" | "process_finished")
                ) && status.as_deref() == Some("failed"))
        }
        _ => false,
    }
}
