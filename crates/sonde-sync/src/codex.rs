//! Codex CLI rollouts (`~/.codex/sessions/**/rollout-*.jsonl`) as records.
//!
//! - `session_meta` starts the session (cwd, CLI version, originator, git branch);
//!   `turn_context` sets the model of the calls that follow.
//! - `event_msg` `user_message` starts a step with the prompt as a message.
//! - `event_msg` `token_count` is one API response: an LLM call with
//!   `info.last_token_usage` (or the growth of `info.total_token_usage` when the last
//!   usage is missing; a repeated total is the same response reported twice). Codex
//!   counts cached tokens inside input; Sonde's convention keeps them apart.
//! - One API response is the items Codex writes as it streams (reasoning, assistant
//!   `message`s, tool calls), whatever stands between them, up to its `token_count`:
//!   one LLM call, the parent span of its tool calls and replies. Its request went out
//!   at the last input before its first item (a prompt, a tool output, the previous
//!   response's end).
//! - `response_item` `function_call` / `custom_tool_call` pair with their
//!   `*_output` by `call_id` as runtime events; assistant `message`s are replies.
//!   Reasoning, user-role items (the same prompt again, with instructions) and unknown
//!   types are skipped and counted.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sonde_model::{
    Body, Event, LlmCall, LlmCallRecord, Message, MessageContent, Metadata, Record, RuntimeAction,
    SessionStarted, Status, StepStarted, Timestamp, derived_id, derived_id_at,
};

use crate::emit::{Emitted, context, first_line, note_source, record, span_id};

/// Tool calls awaiting output that a file's state keeps at most.
const MAX_PENDING_TOOLS: usize = 256;

/// A rollout file: its name (which ends with the session id) and its path as records
/// name it in `source_file`.
#[derive(Debug, Clone, Default)]
pub struct CodexFile {
    /// The file name.
    pub name: String,
    /// Its path under the folder synced.
    pub path: String,
}

#[derive(Deserialize)]
struct Line {
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct TokenUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    reasoning_output_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

impl TokenUsage {
    fn minus(&self, earlier: &TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_sub(earlier.cached_input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            reasoning_output_tokens: self
                .reasoning_output_tokens
                .saturating_sub(earlier.reasoning_output_tokens),
            total_tokens: self.total_tokens.saturating_sub(earlier.total_tokens),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingTool {
    call_id: String,
    name: String,
    input: Value,
    ts: i64,
    step_id: Option<String>,
    line_no: u64,
    /// The span of the response that asked for it.
    #[serde(default)]
    parent: Option<String>,
    sent: bool,
}

/// The response being streamed: from its first item to its `token_count`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenResponse {
    /// The line of its first item, which names its span.
    first_line: u64,
    /// When its request went out: the last input before its first item.
    request_ts: Option<i64>,
    /// The lines of its items.
    lines: Vec<u64>,
    /// Its items as content blocks (text, reasoning, tool calls): the call's response.
    #[serde(default)]
    output: Vec<Value>,
}

/// A Codex rollout's parser state, carried from one run to the next.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CodexState {
    line_no: u64,
    session_id: Option<String>,
    started: bool,
    model: Option<String>,
    steps: u32,
    step_id: Option<String>,
    input_ts: Option<i64>,
    /// `input_ts` is the end of the previous response, not an input (a prompt or a
    /// tool's output): a count with no item of its own then says nothing of when its
    /// request went out (it may come a day later, in a resumed rollout).
    #[serde(default)]
    input_is_response_end: bool,
    total: Option<TokenUsage>,
    pending: Vec<PendingTool>,
    #[serde(default)]
    response: Option<OpenResponse>,
    /// The rollout reports token counts (a `token_count` event was seen): each response
    /// ends with one, so its span will have a call and its items may name it.
    #[serde(default)]
    reports_usage: bool,
    /// What was given to the model since the last response (the prompt, tool
    /// outputs), as chat messages: the next call's request as far as the rollout tells.
    #[serde(default)]
    inputs: Vec<Value>,
}

/// Messages kept for the next call's request (the oldest go first).
const MAX_REQUEST_MESSAGES: usize = 32;
/// The most characters of one tool output kept in a call's request (the tool call's
/// own record keeps it whole).
const MAX_REQUEST_TEXT: usize = 4096;

/// `text` cut to [`MAX_REQUEST_TEXT`] characters, the cut marked.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_REQUEST_TEXT) {
        Some((at, _)) => format!("{}…[{} more bytes]", &text[..at], text.len() - at),
        None => text.to_owned(),
    }
}

/// The session id a rollout's name ends with (`rollout-<time>-<uuid>.jsonl`).
pub(crate) fn session_from_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".jsonl")?;
    let tail = stem.get(stem.len().checked_sub(36)?..)?;
    (tail.len() == 36 && tail.chars().filter(|c| *c == '-').count() == 4).then(|| tail.to_owned())
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

impl CodexState {
    fn session(&self, file: &CodexFile) -> String {
        self.session_id
            .clone()
            .or_else(|| session_from_name(&file.name))
            .unwrap_or_else(|| derived_id(&["codex", &file.name]))
    }

    fn id(&self, file: &CodexFile, ts: i64, what: &str) -> String {
        derived_id_at(
            Timestamp::from_micros(ts),
            &[
                "codex",
                &self.session(file),
                &self.line_no.to_string(),
                what,
            ],
        )
    }

    /// Reads one complete line (without its newline).
    pub fn line(&mut self, file: &CodexFile, bytes: &[u8], out: &mut Emitted) {
        self.line_no += 1;
        out.lines += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let line: Line = match serde_json::from_slice(bytes) {
            Ok(line) => line,
            Err(e) => {
                out.error(format!("{}:{}: {e}", file.name, self.line_no));
                return;
            }
        };
        let Some(ts) = line
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(Timestamp::as_micros)
        else {
            out.skip("no_timestamp");
            return;
        };
        let p = &line.payload;
        match line.kind.as_deref() {
            Some("session_meta") => {
                if let Some(id) = p["id"].as_str() {
                    self.session_id = Some(id.to_owned());
                }
                self.start(file, ts, p, out);
            }
            Some("turn_context") => {
                if let Some(model) = p["model"].as_str() {
                    self.model = Some(model.to_owned());
                }
            }
            Some("event_msg") => match p["type"].as_str() {
                Some("user_message") => self.prompt(file, ts, p, out),
                Some("token_count") => self.token_count(file, ts, p, out),
                Some(other) => out.skip(&format!("event_msg.{other}")),
                None => out.skip("event_msg"),
            },
            Some("response_item") => match p["type"].as_str() {
                Some("function_call" | "custom_tool_call") => self.tool_call(file, ts, p, out),
                Some("function_call_output" | "custom_tool_call_output") => {
                    self.tool_output(file, ts, p, out);
                }
                Some("message") if p["role"] == "assistant" => self.reply(file, ts, p, out),
                Some("message") => out.skip("response_item.message.user"),
                Some(other) => {
                    // Reasoning, web searches and other output items belong to the
                    // response; Sonde keeps no record of their own.
                    if !other.ends_with("_output") {
                        self.response_item(file);
                        let summary = text_of(&p["summary"]);
                        if other == "reasoning" && !summary.is_empty() {
                            self.respond(json!({"type": "reasoning", "content": summary}));
                        }
                    }
                    out.skip(&format!("response_item.{other}"));
                }
                None => out.skip("response_item"),
            },
            Some(other) => out.skip(other),
            None => out.skip("untyped"),
        }
    }

    /// Sends tool calls still waiting for output, as they are now, among the new
    /// records (never sent before; their output, when it comes, replaces them).
    pub fn end_of_run(&mut self, file: &CodexFile, out: &mut Emitted) {
        let session = self.session(file);
        for tool in &mut self.pending {
            if !tool.sent {
                tool.sent = true;
                out.records.push(tool_record(&session, tool, None, file));
            }
        }
    }

    /// For a target sent final records only, once the file is quiet: sends tool calls
    /// that never got their output, as they are, among the new records.
    pub fn end_of_run_final(&mut self, file: &CodexFile, out: &mut Emitted) {
        let session = self.session(file);
        for tool in &mut self.pending {
            if !tool.sent {
                tool.sent = true;
                out.records.push(tool_record(&session, tool, None, file));
            }
        }
    }

    /// Whether a tool call waits for its output, unsent.
    pub(crate) fn holds_open(&self) -> bool {
        self.pending.iter().any(|t| !t.sent)
    }

    fn start(&mut self, file: &CodexFile, ts: i64, meta: &Value, out: &mut Emitted) {
        if self.started {
            return;
        }
        self.started = true;
        let session = self.session(file);
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), json!("codex"));
        for (from, to) in [
            ("cwd", "cwd"),
            ("cli_version", "agent_version"),
            ("originator", "originator"),
            ("model_provider", "model_provider"),
        ] {
            if let Some(v) = meta[from].as_str() {
                metadata.insert(to.into(), json!(v));
            }
        }
        if let Some(branch) = meta["git"]["branch"].as_str() {
            metadata.insert("git_branch".into(), json!(branch));
        }
        if let Some(cwd) = meta["cwd"].as_str()
            && let Some(project) = cwd.rsplit('/').find(|s| !s.is_empty())
        {
            metadata.insert("project".into(), json!(project));
        }
        note_source(&mut metadata, &file.path, &[self.line_no]);
        out.records.push(record(
            derived_id(&["codex", &session, "session_started"]),
            ts,
            context(&session, None, span_id(&["session", &session]), None),
            Body::SessionStarted(SessionStarted {
                metadata,
                ..SessionStarted::default()
            }),
        ));
    }

    fn prompt(&mut self, file: &CodexFile, ts: i64, p: &Value, out: &mut Emitted) {
        if !self.started {
            self.start(file, ts, &Value::Null, out);
        }
        let session = self.session(file);
        self.steps += 1;
        self.input_ts = Some(ts);
        self.input_is_response_end = false;
        let step_id = format!("turn-{}", self.steps);
        let mut metadata = Metadata::new();
        note_source(&mut metadata, &file.path, &[self.line_no]);
        out.records.push(record(
            self.id(file, ts, "step"),
            ts,
            context(&session, Some(&step_id), span_id(&["step", &step_id]), None),
            Body::StepStarted(StepStarted {
                step_index: self.steps - 1,
                turn_number: Some(i64::from(self.steps)),
                metadata,
            }),
        ));
        self.step_id = Some(step_id);
        let text = p["message"].as_str().unwrap_or_default().to_owned();
        self.give(json!({"role": "user", "content": text}));
        out.records.push(self.message(
            file,
            ts,
            "message",
            text,
            "user_prompt",
            ("human", "agent"),
        ));
    }

    /// A message record of the current line in the current step; `roles` is (from,
    /// to).
    fn message(
        &self,
        file: &CodexFile,
        ts: i64,
        what: &str,
        text: String,
        message_type: &str,
        roles: (&str, &str),
    ) -> Record {
        let session = self.session(file);
        let id = self.id(file, ts, what);
        let mut metadata = Metadata::new();
        note_source(&mut metadata, &file.path, &[self.line_no]);
        record(
            id.clone(),
            ts,
            context(
                &session,
                self.step_id.as_deref(),
                span_id(&["message", &id]),
                None,
            ),
            Body::Message(Message {
                content: MessageContent::text(text),
                message_type: message_type.into(),
                from_role: Some(roles.0.into()),
                to_role: Some(roles.1.into()),
                metadata,
                ..Message::default()
            }),
        )
    }

    fn token_count(&mut self, file: &CodexFile, ts: i64, p: &Value, out: &mut Emitted) {
        self.reports_usage = true;
        let info = &p["info"];
        if info.is_null() {
            out.skip("event_msg.token_count.empty");
            return;
        }
        let parse = |v: &Value| serde_json::from_value::<TokenUsage>(v.clone()).ok();
        let total = parse(&info["total_token_usage"]);
        if let (Some(total), Some(previous)) = (&total, &self.total)
            && total == previous
        {
            out.skip("event_msg.token_count.repeated");
            return;
        }
        let usage = match (parse(&info["last_token_usage"]), &total) {
            (Some(last), _) => last,
            (None, Some(total)) => total.minus(&self.total.clone().unwrap_or_default()),
            (None, None) => {
                out.skip("event_msg.token_count.no_usage");
                return;
            }
        };
        if total.is_some() {
            self.total = total;
        }
        if !self.started {
            self.start(file, ts, &Value::Null, out);
        }
        let session = self.session(file);
        let model = info["model"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| self.model.clone())
            .unwrap_or_else(|| "unknown".into());
        let id = self.id(file, ts, "llm");
        // The response's items, then this count; a count with no item before it is a
        // response of its own.
        let (span, request_ts, mut lines, output) = match self.response.take() {
            Some(response) => (
                self.response_span(file, response.first_line),
                response.request_ts,
                response.lines,
                response.output,
            ),
            None => (
                span_id(&["llm", &id]),
                self.input_ts.filter(|_| !self.input_is_response_end),
                Vec::new(),
                Vec::new(),
            ),
        };
        let request = std::mem::take(&mut self.inputs);
        lines.push(self.line_no);
        let mut metadata = Metadata::new();
        note_source(&mut metadata, &file.path, &lines);
        let mut call = LlmCall {
            system_instance_id: Some("codex".into()),
            provider: Some("openai".into()),
            model_name: model,
            operation: Some("chat".into()),
            latency_ms: request_ts
                .filter(|t| *t <= ts)
                .map(|t| (ts - t) as f64 / 1000.0),
            // The request as far as the rollout tells it, and the response's items.
            call_records: if request.is_empty() && output.is_empty() {
                Vec::new()
            } else {
                vec![LlmCallRecord {
                    request: (!request.is_empty()).then(|| json!({"messages": request}).into()),
                    response: (!output.is_empty()).then(|| json!({"content": output}).into()),
                    ..LlmCallRecord::default()
                }]
            },
            metadata,
            ..LlmCall::default()
        };
        call.set_usage_cached_in_input(
            usage.input_tokens,
            usage.cached_input_tokens,
            0,
            usage.output_tokens,
            usage.reasoning_output_tokens,
        );
        // A call's time is when it began (the span runs from there for its latency).
        let start = request_ts.filter(|t| *t <= ts).unwrap_or(ts);
        out.records.push(record(
            id,
            start,
            context(&session, self.step_id.as_deref(), span, None),
            Body::Event(Event::Llm(call)),
        ));
        self.input_ts = Some(ts);
        self.input_is_response_end = true;
    }

    /// Notes what was given to the model (the next call's request).
    fn give(&mut self, message: Value) {
        self.inputs.push(message);
        if self.inputs.len() > MAX_REQUEST_MESSAGES {
            self.inputs.remove(0);
        }
    }

    /// Adds a block to the response being streamed (its first item made it).
    fn respond(&mut self, block: Value) {
        if let Some(response) = &mut self.response {
            response.output.push(block);
        }
    }

    /// The span of the response whose first item stands on `first_line`.
    fn response_span(&self, file: &CodexFile, first_line: u64) -> String {
        span_id(&[
            "codex",
            &self.session(file),
            "response",
            &first_line.to_string(),
        ])
    }

    /// Notes that the current line is an item of the response being streamed (its
    /// first starts it) and returns that response's span, when the rollout reports
    /// token counts (else no call will have that span).
    fn response_item(&mut self, file: &CodexFile) -> Option<String> {
        let line = self.line_no;
        let response = self.response.get_or_insert_with(|| OpenResponse {
            first_line: line,
            request_ts: self.input_ts,
            lines: Vec::new(),
            output: Vec::new(),
        });
        response.lines.push(line);
        let first_line = response.first_line;
        self.reports_usage
            .then(|| self.response_span(file, first_line))
    }

    fn tool_call(&mut self, file: &CodexFile, ts: i64, p: &Value, out: &mut Emitted) {
        let Some(call_id) = p["call_id"].as_str() else {
            out.skip("response_item.tool_call.no_call_id");
            return;
        };
        let input = match (&p["arguments"], &p["input"]) {
            (Value::String(args), _) => {
                serde_json::from_str(args).unwrap_or_else(|_| Value::String(args.clone()))
            }
            (Value::Null, input) => input.clone(),
            (args, _) => args.clone(),
        };
        let parent = self.response_item(file);
        self.respond(json!({
            "type": "tool_use", "id": call_id, "name": p["name"], "input": input.clone(),
        }));
        self.pending.push(PendingTool {
            call_id: call_id.to_owned(),
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            input,
            ts,
            step_id: self.step_id.clone(),
            line_no: self.line_no,
            parent,
            sent: false,
        });
        if self.pending.len() > MAX_PENDING_TOOLS {
            self.pending.remove(0);
        }
    }

    fn tool_output(&mut self, file: &CodexFile, ts: i64, p: &Value, out: &mut Emitted) {
        self.input_ts = Some(ts);
        self.input_is_response_end = false;
        let call_id = p["call_id"].as_str().unwrap_or_default();
        let Some(position) = self.pending.iter().position(|t| t.call_id == call_id) else {
            out.skip("response_item.tool_output.unpaired");
            return;
        };
        let tool = self.pending.remove(position);
        let output = p.get("output").cloned().unwrap_or(Value::Null);
        let text = match &output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.give(json!({"role": "tool", "tool_call_id": call_id, "content": clip(&text)}));
        let session = self.session(file);
        let done = tool_record(&session, &tool, Some((&output, ts, self.line_no)), file);
        if tool.sent {
            out.updates += 1;
            out.replacements.push(done);
        } else {
            out.records.push(done);
        }
    }

    fn reply(&mut self, file: &CodexFile, ts: i64, p: &Value, out: &mut Emitted) {
        let text = text_of(&p["content"]);
        if text.is_empty() {
            out.skip("response_item.message.empty");
            return;
        }
        let parent = self.response_item(file);
        self.respond(json!({"type": "text", "text": text.clone()}));
        let mut reply = self.message(
            file,
            ts,
            "reply",
            text,
            "assistant_reply",
            ("agent", "human"),
        );
        reply.context.parent_span_id = parent;
        out.records.push(reply);
    }
}

/// Whether a tool's output reports failure: a non-zero `exit_code` in its metadata
/// (exec outputs are JSON text `{"output": ..., "metadata": {"exit_code": N}}`).
fn failed(output: &Value) -> Option<String> {
    let parsed = match output {
        Value::String(s) if s.starts_with('{') => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    let code = parsed["metadata"]["exit_code"].as_i64()?;
    (code != 0).then(|| {
        let text = parsed["output"].as_str().unwrap_or_default();
        format!("exit code {code}: {}", first_line(text))
    })
}

/// A tool call as a runtime event; `output` is its output, when it came back, and the
/// time and line it came at.
fn tool_record(
    session: &str,
    tool: &PendingTool,
    output: Option<(&Value, i64, u64)>,
    file: &CodexFile,
) -> Record {
    let error = output.and_then(|(o, _, _)| failed(o));
    let mut metadata = Metadata::new();
    if output.is_none() {
        metadata.insert("pending".into(), json!(true));
    }
    let lines: Vec<u64> = std::iter::once(tool.line_no)
        .chain(output.map(|(_, _, line)| line))
        .collect();
    note_source(&mut metadata, &file.path, &lines);
    let action = RuntimeAction {
        system_instance_id: Some("codex".into()),
        tool_name: Some(tool.name.clone()),
        tool_call_id: Some(tool.call_id.clone()),
        arguments: Some(tool.input.clone()),
        result: output.map(|(o, _, _)| o.clone()),
        status: if error.is_some() {
            Status::Error
        } else {
            Status::Ok
        },
        error,
        duration_ms: output.map(|(_, end, _)| (end - tool.ts).max(0) as f64 / 1000.0),
        metadata,
        ..RuntimeAction::default()
    };
    record(
        derived_id_at(
            Timestamp::from_micros(tool.ts),
            &[
                "codex",
                session,
                "tool",
                &tool.call_id,
                &tool.line_no.to_string(),
            ],
        ),
        tool.ts,
        context(
            session,
            tool.step_id.as_deref(),
            span_id(&["tool", session, &tool.call_id]),
            tool.parent.clone(),
        ),
        Body::Event(Event::Runtime(action)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_come_from_rollout_names() {
        assert_eq!(
            session_from_name(
                "rollout-2026-01-02T03-04-05-11111111-1111-4111-8111-111111111111.jsonl"
            )
            .as_deref(),
            Some("11111111-1111-4111-8111-111111111111")
        );
        assert_eq!(session_from_name("notes.jsonl"), None);
    }

    #[test]
    fn nonzero_exit_codes_are_failures() {
        let out = json!(r#"{"output":"no such file\n","metadata":{"exit_code":2}}"#);
        assert_eq!(failed(&out).as_deref(), Some("exit code 2: no such file"));
        assert_eq!(
            failed(&json!(r#"{"output":"","metadata":{"exit_code":0}}"#)),
            None
        );
        assert_eq!(failed(&json!("plain text")), None);
    }
}
