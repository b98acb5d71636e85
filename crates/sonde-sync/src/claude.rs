//! Claude Code transcripts (`~/.claude/projects/<project>/<session>.jsonl`) as records.
//!
//! - A session per `sessionId`; a step per user prompt (sidechains start none).
//! - **One LLM call per API response.** Claude Code writes one response as several
//!   lines that share `message.id` and `requestId`, one content block each, with usage
//!   that only grows. The copies are merged: content from all of them, usage from the
//!   best copy — a non-sidechain copy before a sidechain one, else the one with the
//!   largest input + output + cache-creation + cache-read. The call's id is derived from
//!   (`message.id`, `requestId`) alone, so a response copied into another file (a
//!   resumed session) is stored once, as `ccusage` counts it once.
//! - Tool calls are runtime events: a `tool_use` paired with its `tool_result` (input,
//!   output, `is_error`, duration), child spans of the response that asked for them.
//! - Subagents nest under the `Task` / `Agent` call that spawned them: its span id is
//!   derived from the `agentId` its result names, and every line of the agent's own file
//!   (`agent-<id>.jsonl`, flat or under `<session>/subagents/`) has that span as parent.
//!   Inline sidechains (older versions) nest under the pending `Task` call.
//! - User prompts and assistant text are messages; `system` and `summary` lines are
//!   custom events; `progress`, `attachment`, `file-history-snapshot`,
//!   `queue-operation` and unknown lines are skipped and counted.
//!
//! What is still open at the end of a run — the last response, tool calls without a
//! result — is sent as it is and kept in the parser state; when the next run learns
//! more, it is sent again as a replacement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sonde_model::{
    Body, CustomEvent, Event, LlmCall, LlmCallRecord, Message, MessageContent, Metadata, Record,
    RuntimeAction, SessionStarted, Status, StepStarted, Timestamp, derived_id, derived_id_at,
};

use crate::emit::{Emitted, context, first_line, note_source, record, span_id};

/// Tool calls awaiting their result that a file's state keeps at most (older ones are
/// dropped: an interrupted call never gets one).
const MAX_PENDING_TOOLS: usize = 256;
/// Chains of calls a file's state keeps (idle ones beyond it are forgotten).
const MAX_CHAINS: usize = 64;
/// The request of a subagent's first call when its file does not hold its prompt.
pub(crate) const SUBAGENT_PROMPT_ELSEWHERE: &str = "[the subagent's prompt is not in its transcript: it is the input of the Task call that spawned it]";

/// Messages a chain keeps for its next response's request (the oldest go first).
const MAX_REQUEST_MESSAGES: usize = 32;
/// The most characters of one tool result or meta line kept in a call's request (the
/// tool call's own record keeps the result whole).
const MAX_REQUEST_TEXT: usize = 4096;

/// Complete responses whose keys a file's state keeps, so that a copy coming late
/// adds its tool calls to the response it belongs to instead of making a new call.
const MAX_FINISHED_RESPONSES: usize = 8;

/// Where a file sits: its name and project, and the session and agent its name gives.
#[derive(Debug, Clone, Default)]
pub struct ClaudeFile {
    /// The file name, used in ids of lines that have no uuid.
    pub name: String,
    /// Its path, as records name it in `source_file`.
    pub path: String,
    /// The project: the folder that holds the session file.
    pub project: String,
    /// The session id from the file name (`<session>.jsonl`), if it is one.
    pub session_hint: Option<String>,
    /// The agent id from an `agent-<id>.jsonl` name.
    pub agent_hint: Option<String>,
    /// The agent type from `agent-<id>.meta.json`, if any.
    pub agent_type: Option<String>,
}

/// Token usage of one copy of a response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

impl Usage {
    /// Every token of the copy (saturating: it only ranks copies; a count too large to
    /// store is refused with the call).
    fn sum(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

/// Message content: a string or content blocks (read as a JSON value first: cheaper
/// than serde's untagged buffering).
#[derive(Deserialize)]
#[serde(from = "Value")]
enum Content {
    Text(String),
    Blocks(Vec<Value>),
    Other,
}

impl From<Value> for Content {
    fn from(value: Value) -> Self {
        match value {
            Value::String(text) => Content::Text(text),
            Value::Array(blocks) => Content::Blocks(blocks),
            _ => Content::Other,
        }
    }
}

#[derive(Deserialize)]
struct ApiMessage {
    id: Option<String>,
    model: Option<String>,
    content: Option<Content>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    uuid: Option<String>,
    session_id: Option<String>,
    timestamp: Option<String>,
    #[serde(default)]
    is_sidechain: bool,
    #[serde(default)]
    is_meta: bool,
    #[serde(default)]
    is_compact_summary: bool,
    #[serde(default)]
    is_api_error_message: bool,
    agent_id: Option<String>,
    cwd: Option<String>,
    git_branch: Option<String>,
    version: Option<String>,
    request_id: Option<String>,
    message: Option<ApiMessage>,
    tool_use_result: Option<Box<serde_json::value::RawValue>>,
    subtype: Option<String>,
    summary: Option<String>,
    leaf_uuid: Option<String>,
    #[serde(rename = "costUSD")]
    cost_usd: Option<f64>,
}

/// A response being assembled from its copies.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OpenResponse {
    key: (String, String),
    session_id: String,
    step_id: Option<String>,
    parent: Option<String>,
    sidechain: bool,
    model: String,
    usage: Usage,
    blocks: Vec<Value>,
    first_ts: i64,
    last_ts: i64,
    /// When the request went out: the chain's last input before the first copy.
    request_ts: Option<i64>,
    stop_reason: Option<String>,
    cost_usd: Option<f64>,
    api_error: bool,
    first_uuid: Option<String>,
    agent_type: Option<String>,
    /// The lines its copies stand on.
    #[serde(default)]
    lines: Vec<u64>,
    /// Sent before, in an earlier run, so the next send replaces it.
    sent: bool,
    /// A copy came since it was last sent.
    #[serde(default)]
    changed: bool,
    /// What its chain gave the model since the previous response (the prompt, tool
    /// results), as Anthropic messages: the call's request as far as the transcript
    /// tells it.
    #[serde(default)]
    request: Vec<Value>,
}

/// One line of calls to the model that follow each other: the main conversation, an
/// inline sidechain, or an agent's own file. A chain waits for every result of one
/// response before it makes the next request, so its open response is complete once
/// the chain's next response or prompt begins, whatever stood between its copies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Chain {
    /// `main`, `side:<agentId>` or `agent:<agentId>`.
    name: String,
    /// When the chain last gave the model something: a prompt, a tool result, or the
    /// end of its previous response.
    input_ts: Option<i64>,
    /// Its response being assembled.
    open: Option<OpenResponse>,
    /// What it gave the model since its last response began, for the next one's
    /// request.
    #[serde(default)]
    inputs: Vec<Value>,
}

/// A response already sent as complete: where a copy that comes late belongs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FinishedResponse {
    key: (String, String),
    session_id: String,
    step_id: Option<String>,
}

/// A tool call awaiting its result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingTool {
    id: String,
    name: String,
    input: Value,
    ts: i64,
    session_id: String,
    step_id: Option<String>,
    parent: String,
    /// The line of its `tool_use` block.
    #[serde(default)]
    line: u64,
    sent: bool,
}

/// A Claude Code file's parser state, carried from one run to the next.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClaudeState {
    line_no: u64,
    last_ts: Option<i64>,
    started: Vec<String>,
    steps: u32,
    step_id: Option<String>,
    #[serde(default)]
    chains: Vec<Chain>,
    /// Keys of the latest complete responses, newest last.
    #[serde(default)]
    finished: Vec<FinishedResponse>,
    pending: Vec<PendingTool>,
    /// `Task` calls awaiting a result, newest last: the parents of inline sidechains.
    tasks: Vec<String>,
    /// `summary` lines seen before any timestamp.
    summaries: Vec<(String, Option<String>, u64)>,
    /// State saved by an earlier version (one open response, two input times): read
    /// once into the chains.
    #[serde(default, rename = "open", skip_serializing)]
    legacy_open: Option<OpenResponse>,
    #[serde(default, rename = "main_input_ts", skip_serializing)]
    legacy_main_input_ts: Option<i64>,
}

fn ts_of(line: &Line) -> Option<i64> {
    line.timestamp
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(Timestamp::as_micros)
}

fn text_of_blocks(blocks: &[Value]) -> String {
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    texts.join("\n\n")
}

/// The text of a tool result's `content`: a string, or text blocks.
fn tool_output_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => text_of_blocks(blocks),
        _ => String::new(),
    }
}

/// The agent a `Task` / `Agent` result names: `toolUseResult.agentId`, or the
/// `agentId: <id>` line of an asynchronous launch.
fn agent_of_result(line: &Line, output: &str) -> Option<String> {
    if let Some(raw) = &line.tool_use_result {
        #[derive(Deserialize)]
        struct AgentResult {
            #[serde(rename = "agentId")]
            agent_id: Option<String>,
        }
        if let Ok(AgentResult { agent_id: Some(id) }) = serde_json::from_str(raw.get()) {
            return Some(id);
        }
    }
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("agentId:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// `text` cut to [`MAX_REQUEST_TEXT`] characters, the cut marked.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_REQUEST_TEXT) {
        Some((at, _)) => format!("{}…[{} more bytes]", &text[..at], text.len() - at),
        None => text.to_owned(),
    }
}

/// A `tool_result` block for a call's request: its id, error flag and text, clipped.
fn clipped_result(block: &Value) -> Value {
    let content = block.get("content").cloned().unwrap_or(Value::Null);
    let mut result = json!({
        "type": "tool_result",
        "tool_use_id": block["tool_use_id"],
        "content": clip(&tool_output_text(&content)),
    });
    if block["is_error"] == true {
        result["is_error"] = json!(true);
    }
    result
}

fn is_agent_tool(name: &str) -> bool {
    matches!(name, "Task" | "Agent")
}

impl ClaudeState {
    /// Reads one complete line (without its newline).
    pub fn line(&mut self, file: &ClaudeFile, bytes: &[u8], out: &mut Emitted) {
        self.adopt_legacy_state(file);
        self.line_no += 1;
        out.lines += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let mut line: Line = match serde_json::from_slice(bytes) {
            Ok(line) => line,
            Err(e) => {
                out.error(format!("{}:{}: {e}", file.name, self.line_no));
                return;
            }
        };
        let ts = ts_of(&line);
        if let Some(ts) = ts {
            self.last_ts = Some(ts);
            if !self.summaries.is_empty() {
                self.flush_summaries(file, ts, &line, out);
            }
        }
        let kind = line.kind.as_deref();
        match kind {
            Some("user") => self.user(file, &mut line, out),
            Some("assistant") => self.assistant(file, &mut line, out),
            // Early `ccusage`-era lines: a bare API message with usage and a cost.
            None if line.message.as_ref().is_some_and(|m| m.usage.is_some()) => {
                self.assistant(file, &mut line, out);
            }
            Some("system") => self.system(file, &line, bytes, out),
            Some("summary") => {
                let summary = line.summary.clone().unwrap_or_default();
                self.summaries
                    .push((summary, line.leaf_uuid.clone(), self.line_no));
                if let Some(ts) = self.last_ts {
                    self.flush_summaries(file, ts, &line, out);
                }
            }
            Some(other) => out.skip(other),
            None => out.skip("untyped"),
        }
    }

    /// Sends what is still open: each chain's last response and tool calls without a
    /// result, as they are now (what was sent before and has not changed since is not
    /// sent again); a later run replaces them when it learns more. What was never sent
    /// goes among the new records: a store finds a record to replace by its id in every
    /// hour it holds, which a record it has never seen need not cost.
    pub fn end_of_run(&mut self, file: &ClaudeFile, out: &mut Emitted) {
        self.adopt_legacy_state(file);
        for chain in &mut self.chains {
            if let Some(open) = &mut chain.open
                && (!open.sent || open.changed)
            {
                if open.sent {
                    out.updates += 1;
                    out.replacements.extend(response_records(open, file));
                } else {
                    out.records.extend(response_records(open, file));
                }
                open.sent = true;
                open.changed = false;
            }
        }
        for tool in &mut self.pending {
            if !tool.sent {
                tool.sent = true;
                out.records.push(tool_record(tool, None, file));
            }
        }
    }

    /// For a target sent final records only, once the file is quiet: sends what is
    /// still open as final — each chain's last response, and tool calls that never got
    /// a result — among the new records (a result coming after all is then a
    /// replacement, which such a target is not sent).
    pub fn end_of_run_final(&mut self, file: &ClaudeFile, out: &mut Emitted) {
        self.adopt_legacy_state(file);
        for index in 0..self.chains.len() {
            self.finish_chain(index, file, out);
        }
        for tool in &mut self.pending {
            if !tool.sent {
                tool.sent = true;
                out.records.push(tool_record(tool, None, file));
            }
        }
    }

    /// Whether anything is still open: a response being assembled, or a tool call that
    /// was not sent (it waits for its result).
    pub(crate) fn holds_open(&self) -> bool {
        self.legacy_open.is_some()
            || self.chains.iter().any(|c| c.open.is_some())
            || self.pending.iter().any(|t| !t.sent)
    }

    /// Moves a state saved by an earlier version (one open response) into a chain.
    fn adopt_legacy_state(&mut self, file: &ClaudeFile) {
        if let Some(input_ts) = self.legacy_main_input_ts.take() {
            let main = self.chain_index("main");
            self.chains[main].input_ts = Some(input_ts);
        }
        if let Some(open) = self.legacy_open.take() {
            let name = match (&file.agent_hint, open.sidechain) {
                (Some(agent), _) => format!("agent:{agent}"),
                (None, true) => "side:".to_owned(),
                (None, false) => "main".to_owned(),
            };
            let index = self.chain_index(&name);
            self.chains[index].open = Some(open);
        }
    }

    /// The chain a line belongs to.
    fn chain_name(&self, file: &ClaudeFile, line: &Line) -> String {
        match self.agent_of_line(file, line) {
            Some(agent) => format!("agent:{agent}"),
            None if line.is_sidechain => {
                format!("side:{}", line.agent_id.as_deref().unwrap_or_default())
            }
            None => "main".to_owned(),
        }
    }

    /// The index of the chain named `name`, made if new. Chains with nothing open
    /// beyond [`MAX_CHAINS`] are forgotten, oldest first.
    fn chain_index(&mut self, name: &str) -> usize {
        if let Some(index) = self.chains.iter().position(|c| c.name == name) {
            return index;
        }
        if self.chains.len() >= MAX_CHAINS
            && let Some(idle) = self.chains.iter().position(|c| c.open.is_none())
        {
            self.chains.remove(idle);
        }
        self.chains.push(Chain {
            name: name.to_owned(),
            ..Chain::default()
        });
        self.chains.len() - 1
    }

    /// Sends the open response of chain `index`: it is complete.
    fn finish_chain(&mut self, index: usize, file: &ClaudeFile, out: &mut Emitted) {
        let Some(chain) = self.chains.get_mut(index) else {
            return;
        };
        let Some(open) = chain.open.take() else {
            return;
        };
        chain.input_ts = chain.input_ts.max(Some(open.last_ts));
        match (open.sent, open.changed) {
            (false, _) => out.records.extend(response_records(&open, file)),
            (true, true) => {
                out.updates += 1;
                out.replacements.extend(response_records(&open, file));
            }
            (true, false) => {}
        }
        self.finished.push(FinishedResponse {
            key: open.key,
            session_id: open.session_id,
            step_id: open.step_id,
        });
        if self.finished.len() > MAX_FINISHED_RESPONSES {
            self.finished.remove(0);
        }
    }

    /// Notes what a chain gave the model (the next response's request); the oldest
    /// are dropped beyond [`MAX_REQUEST_MESSAGES`].
    fn give(&mut self, chain: &str, message: Value) {
        let index = self.chain_index(chain);
        let inputs = &mut self.chains[index].inputs;
        inputs.push(message);
        if inputs.len() > MAX_REQUEST_MESSAGES {
            inputs.remove(0);
        }
    }

    /// Sets the time a chain last gave the model something.
    fn input_at(&mut self, chain: &str, ts: i64) {
        let index = self.chain_index(chain);
        self.chains[index].input_ts = Some(ts);
    }

    fn session_of(&self, file: &ClaudeFile, line: &Line) -> String {
        line.session_id
            .clone()
            .or_else(|| file.session_hint.clone())
            .unwrap_or_else(|| derived_id(&["claude-code", &file.project, &file.name]))
    }

    /// The agent this line belongs to, when it is in an agent's own file.
    fn agent_of_line<'a>(&self, file: &'a ClaudeFile, line: &'a Line) -> Option<&'a str> {
        file.agent_hint
            .as_deref()
            .or(line.agent_id.as_deref().filter(|_| line.is_sidechain))
    }

    /// The step and parent span of a line's records.
    fn place(&self, file: &ClaudeFile, line: &Line) -> (Option<String>, Option<String>) {
        if let Some(agent) = self.agent_of_line(file, line) {
            return (
                Some(format!("agent-{agent}")),
                Some(span_id(&["agent", agent])),
            );
        }
        if line.is_sidechain {
            let parent = self.tasks.last().map(|t| span_id(&["tool", t]));
            return (self.step_id.clone(), parent);
        }
        (self.step_id.clone(), None)
    }

    fn ensure_session(
        &mut self,
        file: &ClaudeFile,
        line: &Line,
        session_id: &str,
        ts: i64,
        out: &mut Emitted,
    ) {
        if self.started.iter().any(|s| s == session_id) {
            return;
        }
        self.started.push(session_id.to_owned());
        // An agent's file does not start its parent's session: the main file does,
        // with the session's first timestamp.
        if self.agent_of_line(file, line).is_some() {
            return;
        }
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), json!("claude-code"));
        metadata.insert("project".into(), json!(file.project));
        if let Some(cwd) = &line.cwd {
            metadata.insert("cwd".into(), json!(cwd));
        }
        if let Some(branch) = line.git_branch.as_deref().filter(|b| !b.is_empty()) {
            metadata.insert("git_branch".into(), json!(branch));
        }
        if let Some(version) = &line.version {
            metadata.insert("agent_version".into(), json!(version));
        }
        note_source(&mut metadata, &file.path, &[self.line_no]);
        out.records.push(record(
            derived_id(&["claude-code", session_id, "session_started"]),
            ts,
            context(session_id, None, span_id(&["session", session_id]), None),
            Body::SessionStarted(SessionStarted {
                metadata,
                ..SessionStarted::default()
            }),
        ));
    }

    fn line_id(&self, file: &ClaudeFile, line: &Line, ts: i64, what: &str) -> String {
        let at = Timestamp::from_micros(ts);
        match &line.uuid {
            Some(uuid) => derived_id_at(at, &["claude-code", uuid, what]),
            None => derived_id_at(
                at,
                &["claude-code", &file.name, &self.line_no.to_string(), what],
            ),
        }
    }

    fn user(&mut self, file: &ClaudeFile, line: &mut Line, out: &mut Emitted) {
        let Some(ts) = ts_of(line).or(self.last_ts) else {
            out.skip("user.no_timestamp");
            return;
        };
        let session_id = self.session_of(file, line);
        self.ensure_session(file, line, &session_id, ts, out);
        let content = match line.message.as_mut().and_then(|m| m.content.take()) {
            Some(c) => c,
            None => {
                out.skip("user.no_content");
                return;
            }
        };
        let sidechain = line.is_sidechain || self.agent_of_line(file, line).is_some();
        let chain = self.chain_name(file, line);
        let (text, json) = match content {
            Content::Text(text) => (text, None),
            Content::Other => (String::new(), None),
            Content::Blocks(blocks) => {
                let mut results = Vec::new();
                for block in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    results.push(clipped_result(block));
                    self.tool_result(file, line, block, ts, out);
                }
                if !results.is_empty() {
                    self.input_at(&chain, ts);
                    self.give(&chain, json!({"role": "user", "content": results}));
                    return;
                }
                let json = blocks
                    .iter()
                    .any(|b| b["type"] != "text")
                    .then(|| Value::Array(blocks.clone()));
                (text_of_blocks(&blocks), json)
            }
        };
        if line.is_meta {
            self.input_at(&chain, ts);
            if !text.is_empty() {
                self.give(&chain, json!({"role": "user", "content": clip(&text)}));
            }
            out.skip("user.meta");
            return;
        }
        // A prompt: the chain's last response is complete.
        let index = self.chain_index(&chain);
        self.finish_chain(index, file, out);
        self.input_at(&chain, ts);
        self.give(&chain, json!({"role": "user", "content": text.clone()}));
        let message_type = if line.is_compact_summary {
            "compact_summary"
        } else if sidechain {
            "subagent_prompt"
        } else {
            "user_prompt"
        };
        if message_type == "user_prompt" {
            self.steps += 1;
            let step_id = line
                .uuid
                .clone()
                .unwrap_or_else(|| format!("turn-{}", self.steps));
            let mut metadata = Metadata::new();
            if let Some(branch) = line.git_branch.as_deref().filter(|b| !b.is_empty()) {
                metadata.insert("git_branch".into(), json!(branch));
            }
            note_source(&mut metadata, &file.path, &[self.line_no]);
            out.records.push(record(
                self.line_id(file, line, ts, "step"),
                ts,
                context(
                    &session_id,
                    Some(&step_id),
                    span_id(&["step", &step_id]),
                    None,
                ),
                Body::StepStarted(StepStarted {
                    step_index: self.steps - 1,
                    turn_number: Some(i64::from(self.steps)),
                    metadata,
                }),
            ));
            self.step_id = Some(step_id);
        }
        let (step, parent) = self.place(file, line);
        let (from, to) = match message_type {
            "subagent_prompt" => ("agent", "subagent"),
            "compact_summary" => ("runtime", "agent"),
            _ => ("human", "agent"),
        };
        let mut metadata = Metadata::new();
        note_source(&mut metadata, &file.path, &[self.line_no]);
        let id = self.line_id(file, line, ts, "message");
        out.records.push(record(
            id.clone(),
            ts,
            context(
                &session_id,
                step.as_deref(),
                span_id(&["message", &id]),
                parent,
            ),
            Body::Message(Message {
                content: MessageContent {
                    text: Some(text),
                    json,
                },
                message_type: message_type.into(),
                from_role: Some(from.into()),
                to_role: Some(to.into()),
                metadata,
                ..Message::default()
            }),
        ));
    }

    fn tool_result(
        &mut self,
        file: &ClaudeFile,
        line: &Line,
        block: &Value,
        ts: i64,
        out: &mut Emitted,
    ) {
        let Some(id) = block["tool_use_id"].as_str() else {
            out.skip("tool_result.no_id");
            return;
        };
        let Some(position) = self.pending.iter().position(|t| t.id == id) else {
            out.skip("tool_result.unpaired");
            return;
        };
        let tool = self.pending.remove(position);
        if is_agent_tool(&tool.name) {
            // The subagent is done: its inline sidechain's last response is complete.
            let task_span = span_id(&["tool", id]);
            let done: Vec<usize> = (0..self.chains.len())
                .filter(|&i| {
                    self.chains[i].open.as_ref().is_some_and(|o| {
                        o.sidechain && o.parent.as_deref() == Some(task_span.as_str())
                    })
                })
                .collect();
            for index in done {
                self.finish_chain(index, file, out);
            }
        }
        self.tasks.retain(|t| t != id);
        let content = block.get("content").cloned().unwrap_or(Value::Null);
        let output = tool_output_text(&content);
        let is_error = block["is_error"].as_bool().unwrap_or(false);
        let agent = is_agent_tool(&tool.name)
            .then(|| agent_of_result(line, &output))
            .flatten();
        let result = ToolResult {
            content,
            is_error,
            error: is_error.then(|| first_line(&output)),
            end_ts: ts,
            line: self.line_no,
            agent,
        };
        let done = tool_record(&tool, Some(&result), file);
        if tool.sent {
            out.updates += 1;
            out.replacements.push(done);
        } else {
            out.records.push(done);
        }
    }

    fn assistant(&mut self, file: &ClaudeFile, line: &mut Line, out: &mut Emitted) {
        let content = line.message.as_mut().and_then(|m| m.content.take());
        let line = &*line;
        let Some(message) = &line.message else {
            out.skip("assistant.no_message");
            return;
        };
        let Some(ts) = ts_of(line).or(self.last_ts) else {
            out.skip("assistant.no_timestamp");
            return;
        };
        let session_id = self.session_of(file, line);
        self.ensure_session(file, line, &session_id, ts, out);
        let key = match (&message.id, &line.request_id) {
            (Some(m), Some(r)) => (m.clone(), r.clone()),
            (Some(m), None) => (m.clone(), String::new()),
            _ => (self.line_id(file, line, ts, "response"), String::new()),
        };
        let blocks: Vec<Value> = match content {
            Some(Content::Blocks(blocks)) => blocks,
            Some(Content::Text(text)) => vec![json!({"type": "text", "text": text})],
            Some(Content::Other) | None => Vec::new(),
        };
        let usage = message.usage.clone().unwrap_or_default();
        let sidechain = line.is_sidechain || self.agent_of_line(file, line).is_some();
        // A copy of a response being assembled, in whatever chain it began; else a
        // copy of one already complete; else a new response, which completes the one
        // its chain had open.
        let index = match self
            .chains
            .iter()
            .position(|c| c.open.as_ref().is_some_and(|o| o.key == key))
        {
            Some(index) => index,
            None => {
                if let Some(done) = self.finished.iter().rev().find(|f| f.key == key) {
                    let (session, step) = (done.session_id.clone(), done.step_id.clone());
                    let span = span_id(&["llm", &key.0, &key.1]);
                    out.skip("assistant.late_copy");
                    for block in &blocks {
                        self.pend_tool(block, ts, sidechain, (&session, step.as_ref(), &span));
                    }
                    return;
                }
                let chain = self.chain_name(file, line);
                let index = self.chain_index(&chain);
                self.finish_chain(index, file, out);
                let (step_id, parent) = self.place(file, line);
                let request_ts = self.chains[index].input_ts;
                let mut request = std::mem::take(&mut self.chains[index].inputs);
                if request.is_empty() && self.chains[index].input_ts.is_none() && sidechain {
                    // A subagent's file that begins with its first response (Claude Code
                    // 2.0): its prompt is the input of the call that spawned it.
                    request.push(json!({"role": "user", "content": SUBAGENT_PROMPT_ELSEWHERE}));
                }
                self.chains[index].open = Some(OpenResponse {
                    key: key.clone(),
                    session_id: session_id.clone(),
                    step_id,
                    parent,
                    sidechain,
                    model: message.model.clone().unwrap_or_default(),
                    usage: usage.clone(),
                    blocks: Vec::new(),
                    first_ts: ts,
                    last_ts: ts,
                    request_ts,
                    stop_reason: None,
                    cost_usd: None,
                    api_error: false,
                    first_uuid: line.uuid.clone(),
                    agent_type: file.agent_type.clone(),
                    lines: Vec::new(),
                    sent: false,
                    changed: false,
                    request,
                });
                index
            }
        };
        let Some(open) = self.chains[index].open.as_mut() else {
            return;
        };
        // The best copy's usage: a main-chain copy before a sidechain one, then the
        // largest.
        if (!sidechain && open.sidechain)
            || (sidechain == open.sidechain && usage.sum() > open.usage.sum())
        {
            open.usage = usage;
            open.sidechain = sidechain;
        }
        open.last_ts = open.last_ts.max(ts);
        if message.stop_reason.is_some() {
            open.stop_reason.clone_from(&message.stop_reason);
        }
        if line.cost_usd.is_some() {
            open.cost_usd = line.cost_usd;
        }
        open.api_error |= line.is_api_error_message;
        open.lines.push(self.line_no);
        open.changed = true;
        let span = span_id(&["llm", &open.key.0, &open.key.1]);
        let (session, step) = (open.session_id.clone(), open.step_id.clone());
        let mut new_blocks = Vec::with_capacity(blocks.len());
        for block in blocks {
            if !open.blocks.contains(&block) && !new_blocks.contains(&block) {
                new_blocks.push(block);
            }
        }
        for block in &new_blocks {
            self.pend_tool(block, ts, sidechain, (&session, step.as_ref(), &span));
        }
        if let Some(open) = self.chains[index].open.as_mut() {
            open.blocks.extend(new_blocks);
        }
    }

    /// Waits for the result of `block` when it is a `tool_use` not seen before; `at`
    /// is the session, step and span of the response that asked for it.
    fn pend_tool(
        &mut self,
        block: &Value,
        ts: i64,
        sidechain: bool,
        at: (&str, Option<&String>, &str),
    ) {
        if block["type"] != "tool_use" {
            return;
        }
        let Some(id) = block["id"].as_str() else {
            return;
        };
        if self.pending.iter().any(|t| t.id == id) {
            return;
        }
        let name = block["name"].as_str().unwrap_or_default().to_owned();
        if is_agent_tool(&name) && !sidechain {
            self.tasks.push(id.to_owned());
        }
        let (session, step, span) = at;
        self.pending.push(PendingTool {
            id: id.to_owned(),
            name,
            input: block.get("input").cloned().unwrap_or(Value::Null),
            ts,
            session_id: session.to_owned(),
            step_id: step.cloned(),
            parent: span.to_owned(),
            line: self.line_no,
            sent: false,
        });
        if self.pending.len() > MAX_PENDING_TOOLS {
            self.pending.remove(0);
        }
    }

    fn system(&mut self, file: &ClaudeFile, line: &Line, bytes: &[u8], out: &mut Emitted) {
        let Some(ts) = ts_of(line).or(self.last_ts) else {
            out.skip("system.no_timestamp");
            return;
        };
        let session_id = self.session_of(file, line);
        self.ensure_session(file, line, &session_id, ts, out);
        let mut data: serde_json::Map<String, Value> =
            serde_json::from_slice(bytes).unwrap_or_default();
        for envelope in [
            "type",
            "uuid",
            "parentUuid",
            "sessionId",
            "timestamp",
            "cwd",
            "gitBranch",
            "version",
            "userType",
            "isSidechain",
            "slug",
            "subtype",
            "entrypoint",
        ] {
            data.remove(envelope);
        }
        let subtype = line.subtype.as_deref().unwrap_or("system");
        let (step, parent) = self.place(file, line);
        let id = self.line_id(file, line, ts, "system");
        let mut metadata = Metadata::new();
        note_source(&mut metadata, &file.path, &[self.line_no]);
        out.records.push(record(
            id.clone(),
            ts,
            context(
                &session_id,
                step.as_deref(),
                span_id(&["system", &id]),
                parent,
            ),
            Body::Event(Event::Custom(CustomEvent {
                system_instance_id: Some("claude-code".into()),
                name: format!("claude_code.{subtype}"),
                data: Value::Object(data),
                metadata,
                ..CustomEvent::default()
            })),
        ));
    }

    fn flush_summaries(&mut self, file: &ClaudeFile, ts: i64, line: &Line, out: &mut Emitted) {
        let session_id = self.session_of(file, line);
        for (summary, leaf, line_no) in std::mem::take(&mut self.summaries) {
            let id = derived_id_at(
                Timestamp::from_micros(ts),
                &["claude-code", &file.name, &line_no.to_string(), "summary"],
            );
            let mut metadata = Metadata::new();
            note_source(&mut metadata, &file.path, &[line_no]);
            out.records.push(record(
                id.clone(),
                ts,
                context(&session_id, None, span_id(&["summary", &id]), None),
                Body::Event(Event::Custom(CustomEvent {
                    system_instance_id: Some("claude-code".into()),
                    name: "claude_code.summary".into(),
                    data: json!({"summary": summary, "leaf_uuid": leaf}),
                    metadata,
                    ..CustomEvent::default()
                })),
            ));
        }
    }
}

/// A tool call's result, when it has come back.
struct ToolResult {
    content: Value,
    is_error: bool,
    error: Option<String>,
    end_ts: i64,
    /// The line of the `tool_result` block.
    line: u64,
    agent: Option<String>,
}

/// A tool call as a runtime event; a subagent's `Task` call takes the span id its
/// agent's records name as parent.
fn tool_record(tool: &PendingTool, result: Option<&ToolResult>, file: &ClaudeFile) -> Record {
    let agent = result.and_then(|r| r.agent.as_deref());
    let span = match agent {
        Some(agent) => span_id(&["agent", agent]),
        None => span_id(&["tool", &tool.id]),
    };
    let mut metadata = Metadata::new();
    if let Some(agent) = agent {
        metadata.insert("agent_id".into(), json!(agent));
    }
    if result.is_none() {
        metadata.insert("pending".into(), json!(true));
    }
    let lines: Vec<u64> = std::iter::once(tool.line)
        .chain(result.map(|r| r.line))
        .filter(|l| *l > 0)
        .collect();
    note_source(&mut metadata, &file.path, &lines);
    let action = RuntimeAction {
        system_instance_id: Some("claude-code".into()),
        tool_name: Some(tool.name.clone()),
        tool_call_id: Some(tool.id.clone()),
        arguments: Some(tool.input.clone()),
        result: result.map(|r| r.content.clone()),
        status: if result.is_some_and(|r| r.is_error) {
            Status::Error
        } else {
            Status::Ok
        },
        error: result.and_then(|r| r.error.clone()),
        duration_ms: result.map(|r| (r.end_ts - tool.ts).max(0) as f64 / 1000.0),
        metadata,
        ..RuntimeAction::default()
    };
    record(
        derived_id_at(
            Timestamp::from_micros(tool.ts),
            &["claude-code", "tool", &tool.id],
        ),
        tool.ts,
        context(
            &tool.session_id,
            tool.step_id.as_deref(),
            span,
            Some(tool.parent.clone()),
        ),
        Body::Event(Event::Runtime(action)),
    )
}

/// A response's LLM call and, when it said something, its reply message.
fn response_records(open: &OpenResponse, file: &ClaudeFile) -> Vec<Record> {
    let (message_id, request_id) = (&open.key.0, &open.key.1);
    let span = span_id(&["llm", message_id, request_id]);
    let ctx = context(
        &open.session_id,
        open.step_id.as_deref(),
        span.clone(),
        open.parent.clone(),
    );
    let mut records = Vec::with_capacity(2);
    // The call began when its request went out (the chain's last input) and ended
    // with the last line of its response.
    let start = open.request_ts.filter(|r| *r <= open.first_ts);
    if open.model != "<synthetic>" {
        let u = &open.usage;
        let mut metadata = Metadata::new();
        metadata.insert("message_id".into(), json!(message_id));
        if !request_id.is_empty() {
            metadata.insert("request_id".into(), json!(request_id));
        }
        if let Some(uuid) = &open.first_uuid {
            metadata.insert("uuid".into(), json!(uuid));
        }
        if open.sidechain {
            metadata.insert("sidechain".into(), json!(true));
        }
        if let Some(agent_type) = &open.agent_type {
            metadata.insert("agent_type".into(), json!(agent_type));
        }
        // Written as it streamed: one line per content block as each completed.
        if open.lines.len() > 1 {
            metadata.insert("streamed".into(), json!(true));
        }
        note_source(&mut metadata, &file.path, &open.lines);
        // The request as far as the transcript tells it (what the chain gave the model
        // since its previous response), and the response whole.
        let call_records = if open.blocks.is_empty() && open.request.is_empty() {
            Vec::new()
        } else {
            vec![LlmCallRecord {
                request: (!open.request.is_empty())
                    .then(|| json!({"messages": open.request}).into()),
                response: (!open.blocks.is_empty()).then(|| json!({"content": open.blocks}).into()),
                ..LlmCallRecord::default()
            }]
        };
        let cache_1h = u
            .cache_creation
            .as_ref()
            .map_or(0, |c| c.ephemeral_1h_input_tokens);
        let call = LlmCall {
            system_instance_id: Some("claude-code".into()),
            provider: Some("anthropic".into()),
            model_name: open.model.clone(),
            operation: Some("chat".into()),
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
            cache_write_1h_tokens: cache_1h,
            cost_usd: open.cost_usd,
            latency_ms: start.map(|start| (open.last_ts - start) as f64 / 1000.0),
            status: if open.api_error {
                Status::Error
            } else {
                Status::Ok
            },
            error: open
                .api_error
                .then(|| first_line(&text_of_blocks(&open.blocks))),
            stop_reason: open.stop_reason.clone(),
            call_records,
            metadata,
            ..LlmCall::default()
        };
        records.push(record(
            derived_id_at(
                Timestamp::from_micros(open.first_ts),
                &["claude-code", "response", message_id, request_id],
            ),
            start.unwrap_or(open.first_ts),
            ctx.clone(),
            Body::Event(Event::Llm(call)),
        ));
    }
    let text = text_of_blocks(&open.blocks);
    if !text.is_empty() {
        let mut reply_metadata = Metadata::new();
        note_source(&mut reply_metadata, &file.path, &open.lines);
        let (from, to) = if open.sidechain {
            ("subagent", "agent")
        } else {
            ("agent", "human")
        };
        records.push(record(
            derived_id_at(
                Timestamp::from_micros(open.first_ts),
                &["claude-code", "reply", message_id, request_id],
            ),
            open.last_ts,
            ctx,
            Body::Message(Message {
                content: MessageContent::text(text),
                message_type: "assistant_reply".into(),
                from_role: Some(from.into()),
                to_role: Some(to.into()),
                metadata: reply_metadata,
                ..Message::default()
            }),
        ));
    }
    records
}

/// The agent type an `agent-<id>.meta.json` beside the file names, if any.
pub(crate) fn agent_type(meta: &[u8]) -> Option<String> {
    serde_json::from_slice::<BTreeMap<String, Value>>(meta)
        .ok()?
        .get("agentType")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assistant(msg: &str, sec: u32, block: &str) -> String {
        format!(
            r#"{{"type":"assistant","sessionId":"s","timestamp":"2026-01-01T00:00:{sec:02}Z","requestId":"req_{msg}","message":{{"id":"{msg}","model":"claude-sonnet-4-5","content":[{block}],"usage":{{"input_tokens":1,"output_tokens":5}}}}}}"#
        )
    }

    /// One run over `lines` from `state`.
    fn run(state: &mut ClaudeState, lines: &[String]) -> Emitted {
        let file = ClaudeFile {
            name: "s.jsonl".into(),
            path: "p/s.jsonl".into(),
            ..ClaudeFile::default()
        };
        let mut out = Emitted::default();
        for line in lines {
            state.line(&file, line.as_bytes(), &mut out);
        }
        state.end_of_run(&file, &mut out);
        out
    }

    /// One run over `lines` from the start: every record sent, and the counts.
    fn read(lines: &[String]) -> (Vec<Record>, Emitted) {
        let mut out = run(&mut ClaudeState::default(), lines);
        let mut records = std::mem::take(&mut out.records);
        records.append(&mut out.replacements);
        (records, out)
    }

    #[test]
    fn a_copy_coming_after_the_next_response_adds_its_tool_to_the_call_it_belongs_to() {
        let (records, out) = read(&[
            assistant("msg_a", 1, r#"{"type":"text","text":"Looking."}"#),
            assistant("msg_b", 2, r#"{"type":"text","text":"Next."}"#),
            assistant(
                "msg_a",
                3,
                r#"{"type":"tool_use","id":"t1","name":"Read","input":{}}"#,
            ),
        ]);
        let calls: Vec<&Record> = records
            .iter()
            .filter(|r| r.body.kind() == "llm_call")
            .collect();
        assert_eq!(calls.len(), 2, "one call per response");
        let tool = records
            .iter()
            .find(|r| r.body.kind() == "runtime_event")
            .map(|r| r.context.parent_span_id.clone());
        assert_eq!(tool, Some(Some(span_id(&["llm", "msg_a", "req_msg_a"]))));
        assert_eq!(out.skipped.get("assistant.late_copy"), Some(&1));
    }

    #[test]
    fn an_unchanged_open_response_is_not_sent_again_at_the_end_of_the_next_run() {
        let mut state = ClaudeState::default();
        let out = run(
            &mut state,
            &[assistant("msg_a", 1, r#"{"type":"text","text":"Hi."}"#)],
        );
        assert_eq!(
            out.records.len(),
            3,
            "the session's start, the call and its reply"
        );
        assert!(out.replacements.is_empty());
        let next = run(&mut state, &[r#"{"type":"progress"}"#.to_owned()]);
        assert!(next.is_empty());
    }

    #[test]
    fn a_state_saved_by_the_previous_version_keeps_its_open_response() {
        let (whole, _) = read(&[
            assistant("msg_a", 1, r#"{"type":"text","text":"One."}"#),
            assistant("msg_a", 2, r#"{"type":"text","text":"Two."}"#),
        ]);
        let old_state = serde_json::json!({
            "line_no": 1, "last_ts": 1_767_225_601_000_000_i64, "started": ["s"], "steps": 0,
            "step_id": null, "pending": [], "tasks": [], "summaries": [],
            "main_input_ts": null,
            "open": {
                "key": ["msg_a", "req_msg_a"], "session_id": "s", "step_id": null,
                "parent": null, "sidechain": false, "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 1, "output_tokens": 5},
                "blocks": [{"type": "text", "text": "One."}],
                "first_ts": 1_767_225_601_000_000_i64, "last_ts": 1_767_225_601_000_000_i64,
                "request_ts": null, "stop_reason": null, "cost_usd": null,
                "api_error": false, "first_uuid": null, "agent_type": null, "sent": true
            }
        });
        let mut state: ClaudeState = serde_json::from_value(old_state).unwrap();
        let out = run(
            &mut state,
            &[assistant("msg_a", 2, r#"{"type":"text","text":"Two."}"#)],
        );
        let call = |records: &[Record]| {
            records
                .iter()
                .find(|r| r.body.kind() == "llm_call")
                .map(|r| r.id.clone())
        };
        assert_eq!(call(&out.replacements), call(&whole));
        let reply = out
            .replacements
            .iter()
            .find_map(|r| match &r.body {
                Body::Message(m) => Some(m.content.as_text()),
                _ => None,
            })
            .unwrap();
        assert_eq!(reply, "One.\n\nTwo.");
    }
}
