#!/usr/bin/env python3
"""Writes this folder's Codex rollout: two API responses whose items (reasoning,
parallel tool calls, a reply) have tool outputs, agent events and a repeated token
count between them. Written by Sonde's developers from the description of Codex's
rollout format; no real user data. Run it from anywhere: it writes beside itself.
"""
import json
import os

SESSION = "0b9f3e2a-6c1d-4e7f-9a8b-1c2d3e4f5a66"
HERE = os.path.dirname(os.path.abspath(__file__))
lines = []


def add(sec, kind, payload):
    lines.append({"timestamp": f"2026-11-21T14:00:{sec:06.3f}Z", "type": kind, "payload": payload})


def usage(inp, cached, out, reasoning, total_in, total_cached, total_out, total_reasoning):
    last = {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out, "reasoning_output_tokens": reasoning, "total_tokens": inp + out}
    total = {"input_tokens": total_in, "cached_input_tokens": total_cached, "output_tokens": total_out, "reasoning_output_tokens": total_reasoning, "total_tokens": total_in + total_out}
    return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last, "model_context_window": 272000}, "rate_limits": None}


add(0.0, "session_meta", {"id": SESSION, "timestamp": "2026-11-21T14:00:00.000Z", "cwd": "/home/dev/shop", "originator": "codex_cli_rs", "cli_version": "0.63.0", "model_provider": "openai", "git": {"branch": "main"}})
add(0.1, "turn_context", {"cwd": "/home/dev/shop", "approval_policy": "on-request", "model": "gpt-5.1-codex", "effort": "medium"})
add(1.0, "event_msg", {"type": "token_count", "info": None, "rate_limits": {"primary": {"used_percent": 3.0}}})
add(1.2, "event_msg", {"type": "user_message", "message": "Which files import legacy_price? Count the lines of each.", "images": []})
add(1.2, "response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Which files import legacy_price? Count the lines of each."}]})
add(3.4, "response_item", {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Search, then count."}], "encrypted_content": "gAAAAA"})
add(3.9, "response_item", {"type": "function_call", "name": "shell", "arguments": json.dumps({"command": ["rg", "-l", "legacy_price"]}), "call_id": "call_rg_01"})
add(4.0, "response_item", {"type": "function_call", "name": "shell", "arguments": json.dumps({"command": ["wc", "-l", "checkout.py", "invoice.py"]}), "call_id": "call_wc_02"})
add(4.3, "response_item", {"type": "function_call_output", "call_id": "call_rg_01", "output": json.dumps({"output": "checkout.py\ninvoice.py\n", "metadata": {"exit_code": 0, "duration_seconds": 0.1}})})
add(4.4, "event_msg", usage(5200, 4096, 180, 64, 5200, 4096, 180, 64))
add(4.6, "response_item", {"type": "function_call_output", "call_id": "call_wc_02", "output": json.dumps({"output": "  12 checkout.py\n  40 invoice.py\n", "metadata": {"exit_code": 0, "duration_seconds": 0.1}})})
add(4.7, "event_msg", usage(5200, 4096, 180, 64, 5200, 4096, 180, 64))
add(6.8, "response_item", {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB"})
add(7.5, "event_msg", {"type": "agent_reasoning", "text": "Two files."})
add(8.1, "response_item", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two files import it: checkout.py (12 lines) and invoice.py (40 lines)."}]})
add(8.1, "event_msg", {"type": "agent_message", "message": "Two files import it: checkout.py (12 lines) and invoice.py (40 lines)."})
add(8.3, "event_msg", usage(5600, 5120, 42, 0, 10800, 9216, 222, 64))
with open(os.path.join(HERE, f"rollout-2026-11-21T14-00-00-{SESSION}.jsonl"), "w") as f:
    for line in lines:
        f.write(json.dumps(line, separators=(",", ":")) + "\n")
