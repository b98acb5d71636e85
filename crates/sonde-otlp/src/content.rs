//! What an exported span says, not how much: an LLM call's messages in the GenAI
//! conventions' JSON structure (v1.37+: roles, and parts `text`, `tool_call`,
//! `tool_call_response`, `reasoning`), read from whatever form its call records keep
//! (Anthropic's content blocks, OpenAI's chat messages, the GenAI form itself), and
//! the size cap every content attribute is held to.

use serde_json::{Map, Value, json};
use sonde_model::LlmCall;

/// The default cap on one content attribute, in bytes: 64 KiB.
pub const DEFAULT_MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

/// What the marker of a cut value starts with; it goes on with the original size.
pub const TRUNCATION_MARKER: &str = "…[truncated by sonde: ";

/// How much of a session an export sends.
///
/// ```
/// let options = sonde_otlp::ExportOptions::default();
/// assert!(options.content);
/// assert_eq!(options.max_attribute_bytes, 64 * 1024);
/// let private = sonde_otlp::ExportOptions { content: false, ..Default::default() };
/// assert!(!private.content);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// Send prompts, replies, messages, tool arguments and results (`--no-content`
    /// clears it: counts, timings, names and statuses only).
    pub content: bool,
    /// The most bytes one content attribute holds; a longer value is cut and ends with
    /// [`TRUNCATION_MARKER`] and its original size.
    pub max_attribute_bytes: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            content: true,
            max_attribute_bytes: DEFAULT_MAX_ATTRIBUTE_BYTES,
        }
    }
}

impl ExportOptions {
    /// `text` within the cap: as it is, or cut at a character boundary and marked.
    ///
    /// ```
    /// let options = sonde_otlp::ExportOptions { max_attribute_bytes: 40, ..Default::default() };
    /// let cut = options.capped(&"x".repeat(100));
    /// assert!(cut.len() <= 40 && cut.ends_with("100 bytes]"), "{cut}");
    /// assert_eq!(options.capped("short"), "short");
    /// ```
    pub fn capped(&self, text: &str) -> String {
        if text.len() <= self.max_attribute_bytes {
            return text.to_owned();
        }
        let marker = format!("{TRUNCATION_MARKER}{} bytes]", text.len());
        let mut keep = self.max_attribute_bytes.saturating_sub(marker.len());
        while keep > 0 && !text.is_char_boundary(keep) {
            keep -= 1;
        }
        format!("{}{marker}", &text[..keep])
    }

    /// `value` as JSON text within the cap, still valid JSON when it can be: the
    /// longest strings inside are cut (and marked) until it fits; only when that is not
    /// enough is the text itself cut.
    ///
    /// ```
    /// let options = sonde_otlp::ExportOptions { max_attribute_bytes: 600, ..Default::default() };
    /// let value = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": "y".repeat(5000)}]}]);
    /// let text = options.capped_json(&value);
    /// assert!(text.len() <= 600);
    /// assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    /// ```
    pub fn capped_json(&self, value: &Value) -> String {
        let text = value.to_string();
        if text.len() <= self.max_attribute_bytes {
            return text;
        }
        let mut limit = self.max_attribute_bytes / 2;
        while limit >= 64 {
            let mut cut = value.clone();
            cut_strings(&mut cut, limit);
            let text = cut.to_string();
            if text.len() <= self.max_attribute_bytes {
                return text;
            }
            limit /= 2;
        }
        self.capped(&text)
    }
}

/// Cuts every string in `value` longer than `limit` bytes (with the marker).
fn cut_strings(value: &mut Value, limit: usize) {
    match value {
        Value::String(s) if s.len() > limit => {
            let options = ExportOptions {
                content: true,
                max_attribute_bytes: limit,
            };
            *s = options.capped(s);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| cut_strings(v, limit)),
        Value::Object(map) => map.values_mut().for_each(|v| cut_strings(v, limit)),
        _ => {}
    }
}

/// A value as display text: a string as it is, anything else as JSON.
pub(crate) fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An LLM call's content in the GenAI conventions: system instructions (parts), input
/// messages and output messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct CallContent {
    pub(crate) system: Vec<Value>,
    pub(crate) input: Vec<Value>,
    pub(crate) output: Vec<Value>,
}

/// The content of `call`, from its call records: each request's messages (and system
/// prompt), each response's content.
pub(crate) fn call_content(call: &LlmCall) -> CallContent {
    let mut content = CallContent::default();
    for record in &call.call_records {
        if let Some(request) = record.request.as_deref() {
            read_request(request, &mut content);
        }
        if let Some(response) = record.response.as_deref() {
            read_response(response, call.stop_reason.as_deref(), &mut content);
        }
    }
    content
}

fn read_request(request: &Value, content: &mut CallContent) {
    let messages = match request {
        Value::Array(_) => request,
        Value::Object(map) => {
            for key in ["system", "instructions", "system_instructions"] {
                if let Some(system) = map.get(key) {
                    content.system.extend(parts_of(system, "system"));
                }
            }
            map.get("messages")
                .or_else(|| map.get("input"))
                .unwrap_or(&Value::Null)
        }
        Value::String(text) => {
            content
                .input
                .push(message("user", vec![text_part(text)], None));
            return;
        }
        _ => return,
    };
    match messages {
        Value::Array(items) => {
            for item in items {
                let role = item["role"].as_str().unwrap_or("user");
                let parts = item
                    .get("parts")
                    .map(|p| parts_of(p, role))
                    .unwrap_or_else(|| message_parts(item, role));
                if role == "system" || role == "developer" {
                    content.system.extend(parts);
                } else if !parts.is_empty() {
                    content.input.push(message(role, parts, None));
                }
            }
        }
        Value::String(text) => content
            .input
            .push(message("user", vec![text_part(text)], None)),
        _ => {}
    }
}

fn read_response(response: &Value, stop: Option<&str>, content: &mut CallContent) {
    match response {
        // The GenAI form already: output messages.
        Value::Array(items) if items.iter().all(|i| i.get("parts").is_some()) => {
            content.output.extend(items.iter().cloned());
        }
        Value::Array(_) => {
            push_output(content, parts_of(response, "assistant"), stop);
        }
        Value::Object(map) => {
            if let Some(choices) = map.get("choices").and_then(Value::as_array) {
                for choice in choices {
                    let reason = choice["finish_reason"].as_str().or(stop);
                    let parts = message_parts(&choice["message"], "assistant");
                    push_output(content, parts, reason);
                }
            } else if let Some(blocks) = map.get("content").or_else(|| map.get("output")) {
                let reason = map.get("stop_reason").and_then(Value::as_str).or(stop);
                push_output(content, parts_of(blocks, "assistant"), reason);
            }
        }
        Value::String(text) => {
            push_output(content, vec![text_part(text)], stop);
        }
        _ => {}
    }
}

/// Adds the parts to the last output message when there is one (a call record of
/// thinking only, then the text), else as a new one; false when there were none.
fn push_output(content: &mut CallContent, parts: Vec<Value>, stop: Option<&str>) -> bool {
    if parts.is_empty() {
        return false;
    }
    content
        .output
        .push(message("assistant", parts, Some(stop.unwrap_or("stop"))));
    true
}

fn message(role: &str, parts: Vec<Value>, finish: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), json!(genai_role(role)));
    m.insert("parts".into(), Value::Array(parts));
    if let Some(finish) = finish {
        m.insert("finish_reason".into(), json!(finish));
    }
    Value::Object(m)
}

/// The roles the conventions name: `system`, `user`, `assistant`, `tool`.
fn genai_role(role: &str) -> &str {
    match role {
        "system" | "developer" => "system",
        "assistant" | "model" | "agent" => "assistant",
        "tool" | "function" => "tool",
        _ => "user",
    }
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "content": text})
}

/// The parts of an OpenAI-style chat message: its content, then its tool calls.
fn message_parts(message: &Value, role: &str) -> Vec<Value> {
    let mut parts = parts_of(&message["content"], role);
    if let Some(calls) = message["tool_calls"].as_array() {
        for call in calls {
            let function = &call["function"];
            parts.push(json!({
                "type": "tool_call",
                "id": call["id"],
                "name": function["name"],
                "arguments": parse_arguments(&function["arguments"]),
            }));
        }
    }
    if role == "tool" || role == "function" {
        let response = parts
            .iter()
            .filter_map(|p| p["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        return vec![json!({
            "type": "tool_call_response",
            "id": message["tool_call_id"],
            "response": response,
        })];
    }
    parts
}

fn parse_arguments(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| arguments.clone()),
        other => other.clone(),
    }
}

/// The parts of message content: a string, or blocks (Anthropic's, OpenAI's, the
/// GenAI form's own).
fn parts_of(content: &Value, role: &str) -> Vec<Value> {
    match content {
        Value::String(text) if !text.is_empty() => vec![text_part(text)],
        Value::Array(blocks) => blocks.iter().filter_map(|b| part_of(b, role)).collect(),
        Value::Object(_) => part_of(content, role).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn part_of(block: &Value, role: &str) -> Option<Value> {
    if let Value::String(text) = block {
        return Some(text_part(text));
    }
    let kind = block["type"].as_str().unwrap_or("text");
    Some(match kind {
        "text" | "input_text" | "output_text" => {
            let text = block["text"].as_str().or(block["content"].as_str())?;
            text_part(text)
        }
        "thinking" | "reasoning" => {
            let text = block["thinking"]
                .as_str()
                .or(block["content"].as_str())
                .or(block["text"].as_str())?;
            json!({"type": "reasoning", "content": text})
        }
        "redacted_thinking" => json!({"type": "reasoning", "content": "[redacted]"}),
        "tool_use" | "tool_call" | "function_call" => json!({
            "type": "tool_call",
            "id": block.get("id").or(block.get("call_id")).cloned().unwrap_or(Value::Null),
            "name": block["name"],
            "arguments": parse_arguments(
                block.get("input").or(block.get("arguments")).unwrap_or(&Value::Null)
            ),
        }),
        "tool_result" | "tool_call_response" | "function_call_output" => {
            let response = block
                .get("content")
                .or(block.get("response"))
                .or(block.get("output"))
                .map(|c| match c {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(|i| i["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    other => as_text(other),
                })
                .unwrap_or_default();
            json!({
                "type": "tool_call_response",
                "id": block.get("tool_use_id").or(block.get("id")).or(block.get("call_id")).cloned().unwrap_or(Value::Null),
                "response": response,
            })
        }
        _ if role == "system" => text_part(&as_text(block)),
        // Images, documents and kinds to come: named, not sent.
        other => json!({"type": other}),
    })
}

/// The text of messages for people: the text parts, joined.
pub(crate) fn text_of(messages: &[Value]) -> String {
    let mut texts = Vec::new();
    for m in messages {
        for part in m["parts"].as_array().into_iter().flatten() {
            if part["type"] == "text"
                && let Some(text) = part["content"].as_str()
            {
                texts.push(text);
            }
        }
    }
    texts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_model::LlmCallRecord;

    fn call(request: Value, response: Value) -> LlmCall {
        LlmCall {
            stop_reason: Some("tool_use".into()),
            call_records: vec![LlmCallRecord {
                request: Some(request.into()),
                response: Some(response.into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn anthropic_blocks_become_genai_parts() {
        let c = call_content(&call(
            json!({"system": "be brief", "messages": [
                {"role": "user", "content": "fix it"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "ok"}]}]}
            ]}),
            json!({"content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "t2", "name": "Read", "input": {"path": "a"}}
            ]}),
        ));
        assert_eq!(
            c.system,
            vec![json!({"type": "text", "content": "be brief"})]
        );
        assert_eq!(
            c.input[0],
            json!({"role": "user", "parts": [{"type": "text", "content": "fix it"}]})
        );
        assert_eq!(
            c.input[1]["parts"][0],
            json!({"type": "tool_call_response", "id": "t1", "response": "ok"})
        );
        let out = &c.output[0];
        assert_eq!(out["role"], "assistant");
        assert_eq!(out["finish_reason"], "tool_use");
        let kinds: Vec<&str> = out["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["reasoning", "text", "tool_call"]);
        assert_eq!(out["parts"][2]["arguments"], json!({"path": "a"}));
        assert_eq!(text_of(&c.output), "Reading.");
    }

    #[test]
    fn openai_chat_messages_and_choices_become_genai_messages() {
        let c = call_content(&call(
            json!({"messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"}
            ]}),
            json!({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "done"}}]}),
        ));
        assert_eq!(c.system.len(), 1);
        assert_eq!(c.input.len(), 3);
        assert_eq!(c.input[1]["parts"][0]["arguments"], json!({"x": 1}));
        assert_eq!(c.input[2]["role"], "tool");
        assert_eq!(c.input[2]["parts"][0]["response"], "42");
        assert_eq!(c.output[0]["finish_reason"], "stop");
    }

    #[test]
    fn a_cut_value_is_marked_and_never_splits_a_character() {
        let options = ExportOptions {
            max_attribute_bytes: 50,
            ..Default::default()
        };
        let cut = options.capped(&"é".repeat(100));
        assert!(cut.len() <= 50);
        assert!(cut.contains(TRUNCATION_MARKER) && cut.ends_with("200 bytes]"));
    }
}
