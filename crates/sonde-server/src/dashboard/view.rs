//! A session as the dashboard draws it: its records as nodes of a tree (nested by span,
//! then by step), in order, each with what its detail shows — fields, a conversation,
//! JSON. The browser renders these as text only (`textContent`), never as HTML.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sonde_model::{Body, Event, LlmCall, Record, SessionTrace};

/// The most characters of one text a node's detail carries; the rest is cut (and the
/// whole is in the API's JSON).
const MAX_TEXT: usize = 20_000;

/// One row of the tree and waterfall, and its detail.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Node {
    /// The record's id.
    pub id: String,
    /// Depth in the tree (0: under the session).
    pub depth: usize,
    /// `step`, `llm`, `tool`, `message`, `custom`, `environment` or `reward`.
    pub kind: &'static str,
    /// What the row says.
    pub name: String,
    /// Milliseconds from the session's first record.
    pub at: f64,
    /// How long it took, in milliseconds, if known.
    pub dur: Option<f64>,
    /// Whether it failed.
    pub error: bool,
    /// Label and value pairs of the detail.
    pub fields: Vec<(String, String)>,
    /// The detail's conversation and JSON sections.
    pub blocks: Vec<Block>,
}

/// A section of a node's detail: a turn of a conversation (role and text), or JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Block {
    /// The role or section title (`user`, `assistant`, `thinking`, `input`, ...).
    pub title: String,
    /// Text, shown as it is (long text folded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON, shown pretty-printed and collapsible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

impl Block {
    fn text(title: impl Into<String>, text: &str) -> Self {
        Block {
            title: title.into(),
            text: Some(cut(text)),
            json: None,
        }
    }

    fn json(title: impl Into<String>, json: &Value) -> Self {
        match json {
            Value::String(s) => Block::text(title, s),
            other => Block {
                title: title.into(),
                text: None,
                json: Some(cut_json(other)),
            },
        }
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((end, _)) => format!(
            "{}\n… cut: {} more characters (the API's JSON has all)",
            &text[..end],
            text[end..].chars().count()
        ),
        None => text.to_owned(),
    }
}

fn cut_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(cut(s)),
        Value::Array(items) => Value::Array(items.iter().map(cut_json).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), cut_json(v))).collect())
        }
        other => other.clone(),
    }
}

/// A cost in dollars, to the hundredth of a cent below a dollar.
pub(crate) fn dollars(cost: Option<f64>) -> String {
    match cost {
        None => "-".to_owned(),
        Some(c) if c.abs() < 1.0 => format!("${c:.4}"),
        Some(c) => format!("${c:.2}"),
    }
}

/// Milliseconds as people read them: `850 ms`, `12.3 s`, `5 m 26 s`.
pub(crate) fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        if s < 3600 {
            format!("{} m {} s", s / 60, s % 60)
        } else {
            format!("{} h {} m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The nodes of `trace`, in tree order; `costs` holds each LLM call's cost as the store
/// reports it (reported, else computed), by record id.
pub(crate) fn nodes(trace: &SessionTrace, costs: &HashMap<String, f64>) -> Vec<Node> {
    let records: Vec<Record> = trace
        .to_records()
        .into_iter()
        .filter(|r| {
            !matches!(
                r.body,
                Body::SessionStarted(_) | Body::SessionEnded(_) | Body::StepEnded(_)
            )
        })
        .collect();
    let start = records
        .iter()
        .map(|r| r.timestamp.as_micros())
        .min()
        .unwrap_or(0);
    let mut step_ends: HashMap<&str, i64> = HashMap::new();
    for step in &trace.steps {
        if let Some(end) = &step.ended {
            step_ends.insert(step.step_id.as_str(), end.timestamp.as_micros());
        }
    }
    // Parents: the record whose span is this one's parent span; else (an event reward)
    // the event it rewards; else the step; else the session.
    let mut by_span: HashMap<&str, usize> = HashMap::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut by_step: HashMap<&str, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(span) = &r.context.span_id {
            by_span.entry(span.as_str()).or_insert(i);
        }
        by_id.insert(r.id.as_str(), i);
        if let (Body::StepStarted(_), Some(step)) = (&r.body, &r.context.step_id) {
            by_step.entry(step.as_str()).or_insert(i);
        }
    }
    let parent_of = |i: usize| -> Option<usize> {
        let r = &records[i];
        let by_parent_span = r
            .context
            .parent_span_id
            .as_deref()
            .and_then(|p| by_span.get(p).copied());
        let rewarded = match &r.body {
            Body::EventReward(reward) => by_id.get(reward.event_id.as_str()).copied(),
            _ => None,
        };
        let step = match &r.body {
            Body::StepStarted(_) => None,
            _ => r
                .context
                .step_id
                .as_deref()
                .and_then(|s| by_step.get(s).copied()),
        };
        by_parent_span.or(rewarded).or(step).filter(|p| *p != i)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); records.len()];
    let mut roots = Vec::new();
    for i in 0..records.len() {
        match parent_of(i) {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    // Depth first, children in time order (records come sorted); a cycle of parents
    // cannot loop, as each record is visited once.
    let mut out = Vec::with_capacity(records.len());
    let mut visited = vec![false; records.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        let r = &records[i];
        let at = (r.timestamp.as_micros() - start) as f64 / 1000.0;
        out.push(node(r, depth, at, costs, &step_ends, start));
        for &c in children[i].iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    // Records in a cycle of parents (none reachable from a root): shown at the top.
    for (i, r) in records.iter().enumerate() {
        if !visited[i] {
            let at = (r.timestamp.as_micros() - start) as f64 / 1000.0;
            out.push(node(r, 0, at, costs, &step_ends, start));
        }
    }
    out
}

fn node(
    r: &Record,
    depth: usize,
    at: f64,
    costs: &HashMap<String, f64>,
    step_ends: &HashMap<&str, i64>,
    start: i64,
) -> Node {
    let mut n = base(r, depth, at);
    let metadata = match &r.body {
        Body::StepStarted(s) => {
            n.kind = "step";
            n.name = match s.turn_number {
                Some(t) => format!("turn {t}"),
                None => format!("step {}", s.step_index),
            };
            let end = r
                .context
                .step_id
                .as_deref()
                .and_then(|s| step_ends.get(s).copied());
            n.dur = end.map(|e| (e - start) as f64 / 1000.0 - at);
            Some(&s.metadata)
        }
        Body::Event(Event::Llm(call)) => {
            llm(&mut n, call, costs.get(&r.id).copied().or(call.cost_usd));
            Some(&call.metadata)
        }
        Body::Event(Event::Runtime(action)) => {
            n.kind = "tool";
            n.name = action.tool_name.clone().unwrap_or_else(|| "action".into());
            n.dur = action.duration_ms;
            n.error = !action.status.is_ok();
            n.fields.push(("tool".into(), n.name.clone()));
            if let Some(id) = &action.tool_call_id {
                n.fields.push(("tool call id".into(), id.clone()));
            }
            if let Some(d) = action.duration_ms {
                n.fields.push(("duration".into(), duration(d)));
            }
            n.fields
                .push(("status".into(), action.status.as_str().into()));
            if let Some(e) = &action.error {
                n.fields.push(("error".into(), cut(e)));
            }
            if let Some(input) = &action.arguments {
                n.blocks.push(Block::json("input", input));
            }
            if let Some(output) = &action.result {
                n.blocks.push(Block::json("output", output));
            }
            if !action.actions.is_empty() {
                n.blocks
                    .push(Block::json("actions", &Value::from(action.actions.clone())));
            }
            Some(&action.metadata)
        }
        Body::Event(Event::Environment(env)) => {
            n.kind = "environment";
            n.name = match env.reward {
                Some(reward) => format!("environment: reward {reward}"),
                None => "environment".into(),
            };
            if env.terminated {
                n.fields.push(("terminated".into(), "yes".into()));
            }
            if env.truncated {
                n.fields.push(("truncated".into(), "yes".into()));
            }
            for (title, state) in [
                ("state before", &env.system_state_before),
                ("state after", &env.system_state_after),
            ] {
                if let Some(state) = state {
                    n.blocks.push(Block::json(title, state));
                }
            }
            Some(&env.metadata)
        }
        Body::Event(Event::Custom(custom)) => {
            n.name = custom.name.clone();
            if !custom.data.is_null() {
                n.blocks.push(Block::json("data", &custom.data));
            }
            Some(&custom.metadata)
        }
        Body::Event(Event::ToolCallStarted(start)) => {
            n.kind = "tool";
            n.name = format!("{} (started)", start.tool_name);
            n.fields.push(("tool".into(), start.tool_name.clone()));
            if let Some(id) = &start.tool_call_id {
                n.fields.push(("tool call id".into(), id.clone()));
            }
            if let Some(input) = &start.arguments {
                n.blocks.push(Block::json("input", input));
            }
            Some(&start.metadata)
        }
        Body::Event(Event::PromptBuilt(prompt)) => {
            n.name = "prompt built".into();
            if let Some(chars) = prompt.prompt_chars {
                n.fields.push(("characters".into(), chars.to_string()));
            }
            if let Some(hash) = &prompt.prompt_hash {
                n.fields.push(("hash".into(), cut(hash)));
            }
            if !prompt.components.is_empty() {
                let parts = Value::from(prompt.components.clone());
                n.blocks.push(Block::json("components", &parts));
            }
            Some(&prompt.metadata)
        }
        Body::Event(Event::Stream(stream)) => {
            n.name = format!("{} stream: {}", stream.source, stream.name);
            if let Some(sequence) = stream.sequence {
                n.fields.push(("sequence".into(), sequence.to_string()));
            }
            if !stream.data.is_null() {
                n.blocks.push(Block::json("data", &stream.data));
            }
            Some(&stream.metadata)
        }
        Body::Message(m) => {
            n.kind = "message";
            let from = m.from_role.as_deref().unwrap_or("?");
            let to = m.to_role.as_deref().unwrap_or("?");
            let text = m.content.as_text();
            let first = text.lines().next().unwrap_or_default();
            n.name = format!(
                "{from} → {to}: {}",
                first.chars().take(120).collect::<String>()
            );
            n.fields.push(("type".into(), m.message_type.clone()));
            n.fields
                .push(("from → to".into(), format!("{from} → {to}")));
            if let Some(text) = &m.content.text {
                n.blocks.push(Block::text(from, text));
            }
            if let Some(json) = &m.content.json {
                n.blocks.push(Block::json("content", json));
            }
            Some(&m.metadata)
        }
        Body::OutcomeReward(reward) => {
            n.kind = "reward";
            n.name = format!("outcome {} = {}", reward.objective_key, reward.total_reward);
            if !reward.achievements.is_empty() {
                n.fields
                    .push(("achievements".into(), reward.achievements.join(", ")));
            }
            Some(&reward.metadata)
        }
        Body::EventReward(reward) => {
            n.kind = "reward";
            n.name = format!("reward {}", reward.value);
            n.fields
                .push(("rewards event".into(), reward.event_id.clone()));
            if let Some(source) = &reward.source {
                n.fields.push(("source".into(), source.clone()));
            }
            None
        }
        Body::SessionStarted(_) | Body::SessionEnded(_) | Body::StepEnded(_) => None,
    };
    if let Some(metadata) = metadata.filter(|m| !m.is_empty()) {
        if let Some(file) = metadata.get("source_file").and_then(Value::as_str) {
            let line = metadata
                .get("source_line")
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            n.fields.push(("source".into(), format!("{file}{line}")));
        }
        n.blocks
            .push(Block::json("metadata", &Value::Object(metadata.clone())));
    }
    n
}

/// A node of `r` with its common fields, its kind and name still to fill in.
fn base(r: &Record, depth: usize, at: f64) -> Node {
    let mut n = Node {
        id: r.id.clone(),
        depth,
        kind: "custom",
        name: String::new(),
        at,
        dur: None,
        error: false,
        fields: vec![
            ("record".into(), r.kind().to_owned()),
            ("time".into(), r.timestamp.to_string()),
            ("id".into(), r.id.clone()),
        ],
        blocks: Vec::new(),
    };
    if let Some(step) = &r.context.step_id {
        n.fields.push(("step".into(), step.clone()));
    }
    n
}

/// The node of one LLM call on its own (the call's page).
pub(crate) fn call_node(detail: &sonde_store::CallDetail) -> Node {
    let s = &detail.summary;
    let mut context = sonde_model::Context::session(s.session_id.clone());
    context.step_id = s.step_id.clone();
    let record = Record {
        id: s.id.clone(),
        timestamp: s.ts,
        context,
        body: Body::Event(Event::Llm(LlmCall::default())),
    };
    let mut n = base(&record, 0, 0.0);
    llm(&mut n, &detail.call, s.cost_usd);
    if let Some(metadata) = Some(&detail.call.metadata).filter(|m| !m.is_empty()) {
        n.blocks
            .push(Block::json("metadata", &Value::Object(metadata.clone())));
    }
    n
}

/// An LLM call's row and detail: model, tokens with the cache split, cost, latency,
/// time to first token, stop reason, status, and its request and response as a
/// conversation.
fn llm(n: &mut Node, call: &LlmCall, cost: Option<f64>) {
    n.kind = "llm";
    n.name = call.model_name.clone();
    n.dur = call.latency_ms;
    n.error = !call.status.is_ok() || call.response_status.is_some_and(|s| s >= 400);
    let mut push = |k: &str, v: String| n.fields.push((k.to_owned(), v));
    push("model", call.model_name.clone());
    if let Some(p) = &call.provider {
        push("provider", p.clone());
    }
    push("input tokens", thousands(call.input_tokens));
    push("cache read tokens", thousands(call.cache_read_tokens));
    push("cache write tokens", thousands(call.cache_write_tokens));
    push("output tokens", thousands(call.output_tokens));
    if call.reasoning_tokens > 0 {
        push("reasoning tokens", thousands(call.reasoning_tokens));
    }
    push("total tokens", thousands(call.total_tokens()));
    push("cost", dollars(cost));
    if let Some(l) = call.latency_ms {
        push("latency", duration(l));
    }
    if let Some(t) = call.time_to_first_token_ms {
        push("time to first token", duration(t));
    }
    if let Some(s) = &call.stop_reason {
        push("stop reason", s.clone());
    }
    push("status", call.status.as_str().to_owned());
    if let Some(s) = call.response_status {
        push("http status", s.to_string());
    }
    if let Some(e) = &call.error {
        push("error", cut(e));
    }
    for (k, v) in [
        ("request path", &call.request_path),
        ("api key hash", &call.api_key_hash),
        ("gateway key", &call.gateway_key_id),
    ] {
        if let Some(v) = v {
            push(k, v.clone());
        }
    }
    for record in &call.call_records {
        if let Some(request) = &record.request {
            conversation(&mut n.blocks, request, "request");
        }
        if let Some(response) = &record.response {
            conversation(&mut n.blocks, response, "response");
        }
    }
}

/// The turns of a request or response as blocks: the messages of a chat request
/// (`messages`, `input` or the value itself as a list), each part of their content a
/// block (text, thinking, tool calls and results, images as placeholders); a
/// response's `content`, `choices[].message` or `output`. Anything else as JSON.
pub(crate) fn conversation(blocks: &mut Vec<Block>, value: &Value, fallback: &str) {
    let messages = match value {
        Value::Array(items) => Some(items.clone()),
        Value::Object(map) => ["messages", "input", "output"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array).cloned())
            .or_else(|| {
                map.get("choices").and_then(Value::as_array).map(|choices| {
                    choices
                        .iter()
                        .filter_map(|c| c.get("message").cloned())
                        .collect()
                })
            })
            .or_else(|| {
                map.get("content")
                    .map(|content| vec![serde_json::json!({"role": fallback, "content": content})])
            }),
        _ => None,
    };
    let Some(messages) = messages else {
        blocks.push(Block::json(fallback, value));
        return;
    };
    if let Value::Object(map) = value
        && let Some(system) = map.get("system")
    {
        parts(blocks, "system", system);
    }
    for m in &messages {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or(fallback)
            .to_owned();
        match m.get("content") {
            Some(content) => parts(blocks, &role, content),
            None => blocks.push(Block::json(role.clone(), m)),
        }
        if let Some(calls) = m.get("tool_calls") {
            blocks.push(Block::json(format!("{role}: tool calls"), calls));
        }
    }
}

/// The parts of one message's content as blocks.
fn parts(blocks: &mut Vec<Block>, role: &str, content: &Value) {
    let items = match content {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    for part in items {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        let text = |k: &str| part.get(k).and_then(Value::as_str);
        match (part, kind) {
            (Value::String(s), _) => blocks.push(Block::text(role, s)),
            (_, "text" | "input_text" | "output_text") => {
                blocks.push(Block::text(role, text("text").unwrap_or_default()));
            }
            (_, "thinking" | "reasoning") => blocks.push(Block::text(
                "thinking",
                text("thinking").or(text("text")).unwrap_or_default(),
            )),
            (_, "tool_use" | "function_call") => {
                let name = text("name").unwrap_or("tool");
                let input = part
                    .get("input")
                    .or(part.get("arguments"))
                    .cloned()
                    .unwrap_or_default();
                blocks.push(Block::json(format!("{role}: tool call {name}"), &input));
            }
            (_, "tool_result" | "function_call_output") => {
                let output = part
                    .get("content")
                    .or(part.get("output"))
                    .cloned()
                    .unwrap_or_default();
                blocks.push(Block::json(format!("{role}: tool result"), &output));
            }
            (_, "image" | "input_image" | "image_url") => {
                blocks.push(Block::text(role, "[image]"));
            }
            _ => blocks.push(Block::json(role, part)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sonde_model::{Context, LlmCallRecord, RuntimeAction, StepStarted};

    fn at(record: Record, micros: i64) -> Record {
        Record {
            timestamp: sonde_model::Timestamp::from_micros(micros),
            ..record
        }
    }

    #[test]
    fn tool_calls_nest_under_the_call_that_made_them_and_steps_hold_the_rest() {
        let step = Context::session("s").with_step("t1");
        let mut llm_ctx = step.clone();
        llm_ctx.span_id = Some("llm-span".into());
        let mut tool_ctx = step.clone();
        tool_ctx.parent_span_id = Some("llm-span".into());
        let trace = SessionTrace::from_records(vec![
            at(
                Record::new(step.clone(), Body::StepStarted(StepStarted::default())),
                0,
            ),
            at(
                Record::new(
                    llm_ctx,
                    Body::Event(Event::Llm(LlmCall {
                        model_name: "m".into(),
                        input_tokens: 3,
                        latency_ms: Some(1500.0),
                        ..Default::default()
                    })),
                ),
                1000,
            ),
            at(
                Record::new(
                    tool_ctx,
                    Body::Event(Event::Runtime(RuntimeAction {
                        tool_name: Some("Bash".into()),
                        status: sonde_model::Status::Error,
                        ..Default::default()
                    })),
                ),
                2000,
            ),
        ])
        .remove(0);
        let nodes = nodes(&trace, &HashMap::new());
        let shape: Vec<(&str, usize, f64)> =
            nodes.iter().map(|n| (n.kind, n.depth, n.at)).collect();
        assert_eq!(shape, [("step", 0, 0.0), ("llm", 1, 1.0), ("tool", 2, 2.0)]);
        assert!(nodes[2].error && !nodes[1].error);
        assert_eq!(nodes[1].dur, Some(1500.0));
        assert!(nodes[1].fields.contains(&("cost".into(), "-".into())));
    }

    #[test]
    fn chat_requests_and_responses_become_turns_with_placeholders_for_images() {
        let mut blocks = Vec::new();
        let request = json!({"system": "be brief", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<script>x</script>"},
                                          {"type": "image", "source": {}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"},
                                               {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}]}
        ]});
        conversation(&mut blocks, &request, "request");
        conversation(&mut blocks, &json!({"content": "done"}), "response");
        let titles: Vec<&str> = blocks.iter().map(|b| b.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "system",
                "user",
                "user",
                "thinking",
                "assistant: tool call Bash",
                "response"
            ]
        );
        assert_eq!(blocks[1].text.as_deref(), Some("<script>x</script>"));
        assert_eq!(blocks[2].text.as_deref(), Some("[image]"));
        assert_eq!(blocks[4].json, Some(json!({"command": "ls"})));
        let _ = LlmCallRecord::default();
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let text = cut(&"a".repeat(MAX_TEXT + 5));
        assert!(text.ends_with("… cut: 5 more characters (the API's JSON has all)"));
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(326_000.0), "5 m 26 s");
        assert_eq!(dollars(Some(0.01234)), "$0.0123");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
