"""Calls the LLM APIs through `sonde serve`'s proxy with the real OpenAI and Anthropic
Python SDKs, configured by nothing but their base-URL and key environment variables
(OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY). Prints one
JSON line per call saying what the SDK got back."""

import json

import anthropic
import openai

# Retries would make one failed call several: the proxy never retries, nor does this.
oai = openai.OpenAI(max_retries=0)
ant = anthropic.Anthropic(max_retries=0)
user = [{"role": "user", "content": "Say hello"}]
weather = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def said(name, **values):
    print(json.dumps({"call": name, **values}), flush=True)


r = oai.chat.completions.create(model="gpt-4o-mini", messages=user)
said("chat", text=r.choices[0].message.content, prompt_tokens=r.usage.prompt_tokens)

chunks = oai.chat.completions.create(
    model="gpt-4o-mini", messages=user, stream=True, stream_options={"include_usage": True}
)
text, usage = "", None
for chunk in chunks:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage.completion_tokens
said("chat_stream", text=text, completion_tokens=usage)

r = oai.chat.completions.create(model="gpt-4o-mini", messages=user, tools=[weather])
call = r.choices[0].message.tool_calls[0]
said("chat_tools", tool=call.function.name, arguments=json.loads(call.function.arguments))

r = oai.responses.create(model="gpt-4o-mini", input="Say hello")
said("responses", text=r.output_text, input_tokens=r.usage.input_tokens)

text = ""
with oai.responses.stream(model="gpt-4o-mini", input="Say hello") as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
    final = stream.get_final_response()
said("responses_stream", text=text, output_tokens=final.usage.output_tokens)

r = oai.embeddings.create(model="text-embedding-3-small", input="hello")
said("embeddings", dimensions=len(r.data[0].embedding), prompt_tokens=r.usage.prompt_tokens)

try:
    oai.chat.completions.create(model="error-429", messages=user)
    said("rate_limited", error=None)
except openai.RateLimitError as e:
    said("rate_limited", status=e.status_code, message=e.message)

m = ant.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=user)
said("messages", text=m.content[0].text, cache_read=m.usage.cache_read_input_tokens)

with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=user) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
said("messages_stream", text=text, output_tokens=final.usage.output_tokens)

m = ant.messages.create(
    model="claude-sonnet-4-5",
    max_tokens=64,
    messages=user,
    tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    extra_headers={"X-Sonde-Session": "sdk-session", "X-Sonde-Meta-user": "ada"},
)
tool = [b for b in m.content if b.type == "tool_use"][0]
said("messages_tools", tool=tool.name, input=tool.input, stop=m.stop_reason)
