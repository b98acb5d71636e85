//! What a response says, read on the side as it passes through: the answered model,
//! the usage, the stop reason, the output text and tool calls, or the error.

use serde_json::{Map, Value, json};
use sonde_model::Json;

use crate::endpoint::Endpoint;
use crate::sse::SseParser;

/// The most bytes of a non-streamed body kept to read its usage; a larger body passes
/// through whole, but is recorded without usage.
pub const BODY_KEEP_LIMIT: usize = 64 * 1024 * 1024;

/// The most bytes of streamed output text kept for the record.
pub const OUTPUT_KEEP_LIMIT: usize = 8 * 1024 * 1024;

/// Token usage as the provider reported it.
///
/// ```
/// let usage = sonde_proxy::Usage { input: 1000, cached_in_input: true, cache_read: 800, output: 5, ..Default::default() };
/// let mut call = sonde_model::LlmCall::default();
/// usage.apply(&mut call);
/// assert_eq!((call.input_tokens, call.cache_read_tokens), (200, 800));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens as reported (OpenAI: cached ones included).
    pub input: u64,
    /// Whether `input` includes the cached tokens (OpenAI) or not (Anthropic).
    pub cached_in_input: bool,
    /// Input tokens read from the cache.
    pub cache_read: u64,
    /// Input tokens written to the cache (all lifetimes).
    pub cache_write: u64,
    /// The part of `cache_write` with a one-hour lifetime.
    pub cache_write_1h: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// The reasoning part of `output`.
    pub reasoning: u64,
}

impl Usage {
    /// Sets `call`'s tokens in Sonde's convention (input without its cached part).
    pub fn apply(&self, call: &mut sonde_model::LlmCall) {
        if self.cached_in_input {
            call.set_usage_cached_in_input(
                self.input,
                self.cache_read,
                self.cache_write,
                self.output,
                self.reasoning,
            );
        } else {
            call.input_tokens = self.input;
            call.cache_read_tokens = self.cache_read;
            call.cache_write_tokens = self.cache_write;
            call.output_tokens = self.output;
            call.reasoning_tokens = self.reasoning;
        }
        call.cache_write_1h_tokens = self.cache_write_1h;
    }
}

/// What the response said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The model that answered.
    pub model: Option<String>,
    /// The usage, when reported.
    pub usage: Option<Usage>,
    /// Why generation stopped.
    pub stop_reason: Option<String>,
    /// The output text (streams: the deltas joined; up to [`OUTPUT_KEEP_LIMIT`]).
    pub output_text: String,
    /// Tool calls (streams: assembled from their deltas), as `{id, name, arguments}`.
    pub tool_calls: Vec<Value>,
    /// The provider's error message, when the response is an error.
    pub error: Option<String>,
    /// The response content to record: the JSON body (kept as the text it came as), or
    /// for a stream what it said.
    pub content: Option<Json>,
    /// Whether the body was a stream of server-sent events.
    pub streamed: bool,
    /// Whether any output (text or a tool call) arrived.
    pub has_output: bool,
}

/// Reads a response body fed chunk by chunk as it passes through.
///
/// ```
/// use sonde_proxy::{Endpoint, ResponseObserver};
/// let mut o = ResponseObserver::new(Endpoint::Messages, false, true);
/// o.feed(br#"{"model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"#);
/// o.feed(br#""stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#);
/// let seen = o.finish();
/// assert_eq!(seen.stop_reason.as_deref(), Some("end_turn"));
/// assert_eq!(seen.usage.unwrap().input, 3);
/// ```
#[derive(Debug)]
pub struct ResponseObserver {
    endpoint: Endpoint,
    keep_content: bool,
    sse: Option<SseParser>,
    body: Vec<u8>,
    body_over: bool,
    seen: Observed,
    /// Tool calls of a stream being assembled, by index.
    tools: Vec<(String, String, String)>,
    /// The final object a Responses stream carried (`response.completed`).
    final_response: Option<Value>,
}

impl ResponseObserver {
    /// An observer of a response to `endpoint`; `event_stream` when its content type is
    /// `text/event-stream`; `keep_content` to keep what it said for the record.
    pub fn new(endpoint: Endpoint, event_stream: bool, keep_content: bool) -> Self {
        ResponseObserver {
            endpoint,
            keep_content,
            sse: event_stream.then(SseParser::default),
            body: Vec::new(),
            body_over: false,
            seen: Observed {
                streamed: event_stream,
                ..Observed::default()
            },
            tools: Vec::new(),
            final_response: None,
        }
    }

    /// Whether any output arrived so far (for the time to first token).
    pub fn has_output(&self) -> bool {
        self.seen.has_output
    }

    /// Feeds the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if let Some(mut parser) = self.sse.take() {
            parser.feed(chunk, |event, data| self.event(event, data));
            self.sse = Some(parser);
        } else if !self.body_over {
            if self.body.len() + chunk.len() > BODY_KEEP_LIMIT {
                self.body_over = true;
                self.body = Vec::new();
            } else {
                self.body.extend_from_slice(chunk);
            }
        }
    }

    /// The body ended (or was cut): what it said.
    pub fn finish(mut self) -> Observed {
        if let Some(mut parser) = self.sse.take() {
            parser.finish(|event, data| self.event(event, data));
            self.finish_stream();
        } else if !self.body.is_empty() {
            match serde_json::from_slice::<Value>(&self.body) {
                Ok(value) => self.whole(value),
                Err(_) => {
                    if self.keep_content {
                        self.seen.content = Some(Json::from(Value::String(
                            String::from_utf8_lossy(&self.body).into_owned(),
                        )));
                    }
                }
            }
        }
        self.seen
    }

    /// A whole JSON body.
    fn whole(&mut self, body: Value) {
        if let Some(message) = error_message(&body) {
            self.seen.error = Some(message);
        }
        self.seen.model = str_at(&body, "model");
        match self.endpoint {
            Endpoint::Messages => {
                self.seen.usage = anthropic_usage(&body["usage"], None);
                self.seen.stop_reason = str_at(&body, "stop_reason");
                for block in body["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str() {
                        Some("text") => self.text(block["text"].as_str().unwrap_or_default()),
                        Some("tool_use") => self.seen.tool_calls.push(json!({
                            "id": block["id"], "name": block["name"], "arguments": block["input"],
                        })),
                        _ => {}
                    }
                }
            }
            Endpoint::Responses => self.responses_object(&body),
            _ => {
                self.seen.usage = openai_usage(&body["usage"]);
                if let Some(choice) = body["choices"].get(0) {
                    self.seen.stop_reason = str_at(choice, "finish_reason");
                    let message = &choice["message"];
                    if let Some(text) = message["content"].as_str() {
                        self.text(text);
                    }
                    for call in message["tool_calls"].as_array().into_iter().flatten() {
                        self.seen.tool_calls.push(json!({
                            "id": call["id"], "name": call["function"]["name"],
                            "arguments": call["function"]["arguments"],
                        }));
                    }
                }
            }
        }
        self.seen.has_output |= !self.seen.tool_calls.is_empty();
        if self.keep_content {
            self.seen.content = match self.endpoint {
                // The vectors are the bulk of it and say nothing about the call.
                Endpoint::Embeddings => Some(Json::from(json!({
                    "model": body["model"],
                    "data": body["data"].as_array().map_or(0, Vec::len),
                    "usage": body["usage"],
                }))),
                // The text as it came: the store writes it as it is, where the parsed
                // tree would have to be written out again; with the tree this read
                // already built, which the store's full-text index walks (it would
                // otherwise parse the text a second time).
                _ => match std::str::from_utf8(&self.body) {
                    Ok(text) => Json::from_parsed(text, body),
                    Err(_) => Some(Json::from(body)),
                },
            };
        }
    }

    /// A Responses API object (`POST /v1/responses`'s body, or `response.completed`'s).
    fn responses_object(&mut self, body: &Value) {
        self.seen.usage = openai_usage(&body["usage"]).or(self.seen.usage);
        if let Some(model) = str_at(body, "model") {
            self.seen.model = Some(model);
        }
        self.seen.stop_reason = str_at(body, "status")
            .map(|s| match body["incomplete_details"]["reason"].as_str() {
                Some(reason) => reason.to_owned(),
                None => s,
            })
            .or(self.seen.stop_reason.take());
        if !self.seen.streamed {
            for item in body["output"].as_array().into_iter().flatten() {
                match item["type"].as_str() {
                    Some("message") => {
                        for part in item["content"].as_array().into_iter().flatten() {
                            if let Some(text) = part["text"].as_str() {
                                self.text(text);
                            }
                        }
                    }
                    Some("function_call") => self.seen.tool_calls.push(json!({
                        "id": item["call_id"], "name": item["name"], "arguments": item["arguments"],
                    })),
                    _ => {}
                }
            }
        }
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.seen.has_output = true;
        if self.seen.output_text.len() + text.len() <= OUTPUT_KEEP_LIMIT {
            self.seen.output_text.push_str(text);
        }
    }

    fn tool_delta(&mut self, index: usize, id: Option<&str>, name: Option<&str>, args: &str) {
        self.seen.has_output = true;
        if index > 1024 {
            return;
        }
        if self.tools.len() <= index {
            self.tools.resize(index + 1, Default::default());
        }
        if let Some(slot) = self.tools.get_mut(index) {
            if let Some(id) = id {
                slot.0 = id.to_owned();
            }
            if let Some(name) = name {
                slot.1.push_str(name);
            }
            if slot.2.len() + args.len() <= OUTPUT_KEEP_LIMIT {
                slot.2.push_str(args);
            }
        }
    }

    /// One server-sent event.
    fn event(&mut self, event: Option<&str>, data: &str) {
        if data == "[DONE]" {
            return;
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let kind = value["type"].as_str().or(event).unwrap_or_default();
        if kind == "error" || (value.get("error").is_some() && value.get("choices").is_none()) {
            self.seen.error = error_message(&value).or(Some(data.to_owned()));
            return;
        }
        match self.endpoint {
            Endpoint::Messages => self.anthropic_event(kind, &value),
            Endpoint::Responses => self.responses_event(kind, &value),
            _ => self.chat_chunk(&value),
        }
    }

    /// A chat completions chunk.
    fn chat_chunk(&mut self, chunk: &Value) {
        if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.seen.model = Some(model.to_owned());
        }
        if let Some(usage) = openai_usage(&chunk["usage"]) {
            self.seen.usage = Some(usage);
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.seen.stop_reason = Some(reason.to_owned());
            }
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str() {
                self.text(text);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(0) as usize;
                self.tool_delta(
                    index,
                    call["id"].as_str(),
                    call["function"]["name"].as_str(),
                    call["function"]["arguments"].as_str().unwrap_or_default(),
                );
            }
        }
    }

    /// An Anthropic Messages stream event.
    fn anthropic_event(&mut self, kind: &str, event: &Value) {
        match kind {
            "message_start" => {
                let message = &event["message"];
                self.seen.model = str_at(message, "model");
                self.seen.usage = anthropic_usage(&message["usage"], None);
            }
            "content_block_start" => {
                let block = &event["content_block"];
                if block["type"] == "tool_use" {
                    let index = event["index"].as_u64().unwrap_or(0) as usize;
                    self.tool_delta(index, block["id"].as_str(), block["name"].as_str(), "");
                }
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self.text(delta["text"].as_str().unwrap_or_default()),
                    Some("input_json_delta") => {
                        let index = event["index"].as_u64().unwrap_or(0) as usize;
                        let part = delta["partial_json"].as_str().unwrap_or_default();
                        self.tool_delta(index, None, None, part);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.seen.stop_reason = Some(reason.to_owned());
                }
                // Its usage is cumulative: what it gives replaces message_start's.
                self.seen.usage = anthropic_usage(&event["usage"], self.seen.usage);
            }
            _ => {}
        }
    }

    /// A Responses API stream event.
    fn responses_event(&mut self, kind: &str, event: &Value) {
        match kind {
            "response.output_text.delta" => self.text(event["delta"].as_str().unwrap_or_default()),
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                let index = event["output_index"].as_u64().unwrap_or(0) as usize;
                let item = &event["item"];
                self.tool_delta(index, item["call_id"].as_str(), item["name"].as_str(), "");
            }
            "response.function_call_arguments.delta" => {
                let index = event["output_index"].as_u64().unwrap_or(0) as usize;
                self.tool_delta(
                    index,
                    None,
                    None,
                    event["delta"].as_str().unwrap_or_default(),
                );
            }
            "response.created" | "response.in_progress" => {
                if let Some(model) = str_at(&event["response"], "model") {
                    self.seen.model = Some(model);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let response = &event["response"];
                self.responses_object(response);
                if let Some(message) = response["error"]["message"].as_str() {
                    self.seen.error = Some(message.to_owned());
                }
                if self.keep_content {
                    self.final_response = Some(response.clone());
                }
            }
            _ => {}
        }
    }

    /// A stream ended: its tool calls and content.
    fn finish_stream(&mut self) {
        for (id, name, arguments) in std::mem::take(&mut self.tools) {
            if id.is_empty() && name.is_empty() && arguments.is_empty() {
                continue;
            }
            self.seen
                .tool_calls
                .push(json!({"id": id, "name": name, "arguments": arguments}));
        }
        if !self.keep_content {
            return;
        }
        self.seen.content = Some(Json::from(match self.final_response.take() {
            Some(response) => response,
            None => {
                let mut content = Map::new();
                content.insert("model".into(), json!(self.seen.model));
                content.insert("output_text".into(), json!(self.seen.output_text));
                if !self.seen.tool_calls.is_empty() {
                    content.insert("tool_calls".into(), json!(self.seen.tool_calls));
                }
                content.insert("stop_reason".into(), json!(self.seen.stop_reason));
                if let Some(error) = &self.seen.error {
                    content.insert("error".into(), json!(error));
                }
                Value::Object(content)
            }
        }));
    }
}

fn str_at(value: &Value, key: &str) -> Option<String> {
    value[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The message of an error body: OpenAI's `{"error": {"message"}}`, Anthropic's
/// `{"type": "error", "error": {"type", "message"}}`, or `{"error": "..."}`.
fn error_message(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    if error.is_null() {
        return None;
    }
    Some(match error["message"].as_str() {
        Some(message) => message.to_owned(),
        None => match error.as_str() {
            Some(text) => text.to_owned(),
            None => error.to_string(),
        },
    })
}

/// OpenAI's usage: chat completions and embeddings (`prompt_tokens`, ...) or the
/// Responses API (`input_tokens`, ...); cached tokens are inside the input count.
fn openai_usage(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let (input, output, input_details, output_details) = if usage.get("prompt_tokens").is_some() {
        (
            count(&usage["prompt_tokens"]),
            count(&usage["completion_tokens"]),
            &usage["prompt_tokens_details"],
            &usage["completion_tokens_details"],
        )
    } else {
        (
            count(&usage["input_tokens"]),
            count(&usage["output_tokens"]),
            &usage["input_tokens_details"],
            &usage["output_tokens_details"],
        )
    };
    Some(Usage {
        input,
        cached_in_input: true,
        cache_read: count(&input_details["cached_tokens"]),
        output,
        reasoning: count(&output_details["reasoning_tokens"]),
        ..Usage::default()
    })
}

/// Anthropic's usage, over what `before` said (a stream's later usage replaces only
/// the counts it gives).
fn anthropic_usage(usage: &Value, before: Option<Usage>) -> Option<Usage> {
    if !usage.is_object() {
        return before;
    }
    let mut out = before.unwrap_or_default();
    let set = |field: &mut u64, key: &str| {
        if let Some(n) = usage[key].as_u64() {
            *field = n;
        }
    };
    set(&mut out.input, "input_tokens");
    set(&mut out.output, "output_tokens");
    set(&mut out.cache_read, "cache_read_input_tokens");
    set(&mut out.cache_write, "cache_creation_input_tokens");
    if let Some(n) = usage["cache_creation"]["ephemeral_1h_input_tokens"].as_u64() {
        out.cache_write_1h = n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(endpoint: Endpoint, body: &str) -> Observed {
        let mut o = ResponseObserver::new(endpoint, true, true);
        for chunk in body.as_bytes().chunks(7) {
            o.feed(chunk);
        }
        o.finish()
    }

    #[test]
    fn an_openai_stream_gives_usage_text_and_tool_calls() {
        let body = concat!(
            "data: {\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"}}]}\n\n",
            "data: {\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"prompt_tokens_details\":{\"cached_tokens\":60},\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n",
            "data: [DONE]\n\n"
        );
        let seen = streamed(Endpoint::ChatCompletions, body);
        assert_eq!(seen.output_text, "He");
        assert_eq!(seen.stop_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            seen.tool_calls,
            [json!({"id": "call_1", "name": "get", "arguments": "{\"a\":1}"})]
        );
        let mut call = sonde_model::LlmCall::default();
        seen.usage.unwrap().apply(&mut call);
        assert_eq!(
            (
                call.input_tokens,
                call.cache_read_tokens,
                call.output_tokens,
                call.reasoning_tokens
            ),
            (40, 60, 20, 5)
        );
    }

    #[test]
    fn an_anthropic_stream_gives_cumulative_usage() {
        let body = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":4000,\"cache_creation_input_tokens\":300,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Read\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":250}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let seen = streamed(Endpoint::Messages, body);
        let usage = seen.usage.unwrap();
        assert_eq!(
            (
                usage.input,
                usage.cache_read,
                usage.cache_write,
                usage.output
            ),
            (12, 4000, 300, 250)
        );
        assert!(!usage.cached_in_input);
        assert_eq!(seen.stop_reason.as_deref(), Some("tool_use"));
        assert_eq!(seen.output_text, "Hi");
        assert_eq!(seen.tool_calls.len(), 1);
    }

    #[test]
    fn a_responses_stream_takes_the_completed_response() {
        let body = concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"status\":\"in_progress\"}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5-2025\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n"
        );
        let seen = streamed(Endpoint::Responses, body);
        assert_eq!(seen.model.as_deref(), Some("gpt-5-2025"));
        assert_eq!(seen.stop_reason.as_deref(), Some("completed"));
        assert_eq!(seen.usage.unwrap().reasoning, 1);
        assert_eq!(seen.output_text, "ok");
    }

    #[test]
    fn errors_are_read_from_either_format() {
        let mut o = ResponseObserver::new(Endpoint::Messages, false, false);
        o.feed(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(o.finish().error.as_deref(), Some("Overloaded"));
        let mut o = ResponseObserver::new(Endpoint::ChatCompletions, false, false);
        o.feed(br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#);
        let seen = o.finish();
        assert_eq!(seen.error.as_deref(), Some("bad key"));
        assert!(seen.content.is_none());
    }

    #[test]
    fn embeddings_keep_usage_not_vectors() {
        let mut o = ResponseObserver::new(Endpoint::Embeddings, false, true);
        o.feed(br#"{"object":"list","model":"text-embedding-3-small","data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#);
        let seen = o.finish();
        assert_eq!(seen.usage.unwrap().input, 8);
        assert_eq!(seen.content.unwrap()["data"], 1);
    }

    #[test]
    fn a_whole_body_is_recorded_as_the_text_it_came_as() {
        let body = br#"{"model":"gpt-5",  "choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#;
        let mut o = ResponseObserver::new(Endpoint::ChatCompletions, false, true);
        o.feed(body);
        let seen = o.finish();
        assert_eq!(seen.output_text, "hi");
        let content = serde_json::to_string(&seen.content.unwrap()).unwrap();
        assert_eq!(content.as_bytes(), body);
    }
}
