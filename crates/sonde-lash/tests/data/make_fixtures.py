#!/usr/bin/env python3
"""Writes lash-vN.jsonl, one lash trace per TRACE_SCHEMA_VERSION lash-trace published
(1 to 7), from lash-trace's event definitions at each version (Ascending-AI/lash,
crates/lash-trace/src/lib.rs). Every kind a version wrote appears in its file.

Each file holds one session (schema 2, which lash wrote from May to August 2026 while
its shapes changed: three, as written in May, June and August) of two turns:
an LLM call with usage, a failed one, one whose usage comes in a token_usage record,
tool calls that succeed, fail and (from schema 2) are cancelled, and every other kind.
The tests in ../lash.rs check what Sonde makes of them. Run: python3 make_fixtures.py

Each session's shapes follow lash-trace at one commit of Ascending-AI/lash (PROFILES);
every line was checked by deserializing it with lash-trace's own TraceRecord at that
commit and serializing it back unchanged.
"""
import json
import os
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))


class Trace:
    def __init__(self, profile, session, start):
        self.p = profile
        self.version = profile["version"]
        self.session = session
        self.time = start
        self.n = 0
        self.lines = []

    def emit(self, kind, turn=None, llm=None, extra_context=None, **fields):
        """One record; `turn_index` only where lash's context had it (schema 2, June on)."""
        self.n += 1
        self.time += timedelta(milliseconds=250)
        context = {"session_id": self.session}
        if turn is not None:
            context["turn_id"] = f"t{turn}"
            if self.p.get("turn_index", True):
                context["turn_index"] = turn
            context["graph_node_id"] = f"turn:{self.session}:t{turn}"
            context["parent_graph_node_id"] = f"session:{self.session}"
        if llm is not None:
            context["llm_call_id"] = llm
        if extra_context:
            context.update(extra_context)
        record = {
            "schema_version": self.version,
            "id": f"{self.session}-{self.n:03d}",
            "timestamp": self.time.isoformat(timespec="microseconds"),
            "context": context,
            "type": kind,
        }
        record.update(fields)
        self.lines.append(json.dumps(record, separators=(",", ":")))


# What each session imitates: lash-trace at `commit`, and the shapes it wrote then.
PROFILES = {
    "lash-v1": dict(version=1, commit="a4960b174", day="2026-04-30", turn_index=False),
    "lash-v2-may": dict(version=2, commit="2db2378fc", day="2026-05-04", turn_index=False,
                        streams=True),
    "lash-v2-june": dict(version=2, commit="7773f3bd0", day="2026-06-02", streams=True,
                         new_tools=True, protocol=True, graph="process", breakpoint=True,
                         frame="frame_id", terminal=True),
    "lash-v2": dict(version=2, commit="85063fe25", day="2026-08-08", streams=True,
                    new_tools=True, protocol=True, graph="lashlang", breakpoint=True,
                    frame="frame_id", terminal=True, new_usage=True, new_attachments=True,
                    provider_request=True, envelope=True, rolling=True, lease=True),
    "lash-v3": dict(version=3, commit="d6b430030", day="2026-08-09", durable=True),
    "lash-v4": dict(version=4, commit="751c55fe9", day="2026-08-13", durable=True,
                    frame="frame_key", evidence=True),
    "lash-v5": dict(version=5, commit="771e875f2", day="2026-08-15", durable=True,
                    frame="frame_key", evidence=True, composition=True),
    "lash-v6": dict(version=6, commit="7eac33e71", day="2026-08-15", durable=True,
                    frame="frame_key", evidence=True, composition=True, replay=True),
    "lash-v7": dict(version=7, commit="9a2c0b3ce", day="2026-08-22", durable=True,
                    frame="frame_key", evidence=True, composition=True, replay=True,
                    graph="language"),
}
# Schema 3 on: everything schema 2 had by August.
for name in ["lash-v3", "lash-v4", "lash-v5", "lash-v6", "lash-v7"]:
    PROFILES[name] = {**{k: v for k, v in PROFILES["lash-v2"].items()
                         if k not in ("version", "commit", "day", "lease")},
                      "graph": "lashlang", **PROFILES[name]}


def usage(p, input_, output, cache_read=0, cache_write=0, reasoning=0):
    if not p.get("new_usage"):
        # input counts cached input; no cache-write bucket
        return {
            "input_tokens": input_ + cache_read,
            "output_tokens": output,
            "cached_input_tokens": cache_read,
            "reasoning_tokens": reasoning,
        }
    return {
        "input_tokens": input_,
        "output_tokens": output,
        "cache_read_input_tokens": cache_read,
        "cache_write_input_tokens": cache_write,
        "reasoning_output_tokens": reasoning,
    }


def request(p, model):
    new = p.get("new_attachments")
    attachment_block = {"kind": "attachment" if new else "image", "attachment_idx": 0}
    attachment = {"mime": "image/png", "filename": "screen.png",
                  "bytes_sha256": "ab" * 32, "bytes_len": 2048}
    if new:
        attachment = {"source": "user_upload", **attachment}
    text = {"kind": "text", "text": "Read the README and summarise it."}
    if p.get("breakpoint"):
        text["cache_breakpoint"] = True
    return {
        "model": model,
        "model_variant": "high",
        "messages": [
            {"role": "system", "blocks": [{"kind": "text", "text": "You are lash."}]},
            {"role": "user", "blocks": [text, attachment_block]},
            {"role": "assistant", "blocks": [
                {"kind": "reasoning", "text": "look at the file", "item_id": "rs_1",
                 "summary": ["read it"], "has_encrypted": False, "redacted": False},
                {"kind": "tool_call", "call_id": "c0", "tool_name": "read_file",
                 "input_json": {"path": "README.md"}, "item_id": "fc_1", "has_signature": False},
            ]},
            {"role": "tool", "blocks": [
                {"kind": "tool_result", "call_id": "c0", "tool_name": "read_file",
                 "content": "# lash"}]},
        ],
        "attachments": [attachment],
        "tools": [TOOL_SPEC],
        "tool_choice": "auto",
        "stream": True,
    }


TOOL_SPEC = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    "output_schema": {"type": "string"},
}


def tool_completed(t, turn, call_id, name, args, status, payload, duration):
    if not t.p.get("new_tools"):
        t.emit("tool_call_completed", turn=turn, call_id=call_id, name=name, args=args,
               result=payload, success=(status == "success"), duration_ms=duration)
        return
    fields = {"call_id": call_id, "name": name, "args": args,
              "output": {"outcome": {"status": status, "payload": payload}},
              "duration_ms": duration}
    if t.p.get("durable"):
        fields["attempts"] = [{"ordinal": 1, "outcome": status, "duration_ms": duration}]
    t.emit("tool_call_completed", turn=turn, **fields)


def graph_events(t, turn):
    """Lashlang execution-graph updates: `lashlang_execution` (the payload beside the
    key and identity) or, from schema 7, `language_execution`."""
    scope = {"session_id": t.session, "turn_id": f"t{turn}", "turn_index": turn}
    identity = {"scope": scope, "subject": {"type": "process", "process_id": "p1"},
                "module_ref": "module:main", "entry_kind": "process",
                "entry_ref": "component:0", "entry_name": "main"}
    execution_map = {"module_ref": "module:main", "entry_kind": "process",
                     "entry_ref": "component:0", "entry_name": "main",
                     "nodes": [{"id": "n1", "kind": "resource_operation", "label": "read_file"},
                               {"id": "n2", "kind": "branch", "label": "if ok"}],
                     "edges": [{"id": "e1", "from": "n1", "to": "n2", "label": "then"}]}
    payloads = [
        {"kind": "execution_started", "execution_map": execution_map},
        {"kind": "node_started", "node_id": "n1", "node_kind": "resource_operation",
         "label": "read_file", "occurrence": 1},
        {"kind": "node_completed", "node_id": "n1", "node_kind": "resource_operation",
         "label": "read_file", "occurrence": 1},
        {"kind": "branch_selected", "node_id": "n2", "occurrence": 1, "edge_id": "e1",
         "selected": "then"},
        {"kind": "child_started", "parent_node_id": "n2", "occurrence": 1,
         "child": {"scope": scope, "subject": {"type": "process", "process_id": "p2"},
                   "entry_name": "child"}},
        {"kind": "node_failed", "node_id": "n2", "node_kind": "branch", "label": "if ok",
         "occurrence": 1, "error": "child failed"},
        {"kind": "execution_finished", "status": "failed", "error": "child failed"},
    ]
    for i, payload in enumerate(payloads):
        event = {"event_key": f"process:p1:{i}", "identity": identity, **payload}
        if t.p["graph"] == "language":
            t.emit("language_execution", turn=turn, language="lashlang", event=event)
        else:
            t.emit("lashlang_execution", turn=turn, event=event)


def process_tracking(t, turn):
    """June 2026's first graph records, before lashlang_execution."""
    common = {"process_id": "p1", "session_id": t.session, "module_ref": "module:main",
              "process_ref": "component:0", "process_name": "main"}
    process_map = {"module_ref": "module:main", "process_ref": "component:0",
                   "process_name": "main", "nodes": [], "edges": []}
    events = [
        {"kind": "process_started", "event_key": "process:p1:0", "process_map": process_map},
        {"kind": "node_started", "event_key": "process:p1:1", "node_id": "n1",
         "node_kind": "resource_operation", "label": "read_file", "occurrence": 1},
        {"kind": "process_finished", "event_key": "process:p1:2", "status": "completed"},
    ]
    for event in events:
        t.emit("process_tracking", turn=turn, event={**common, **event})


def trace(session):
    p = PROFILES[session]
    start = datetime.fromisoformat(p["day"]).replace(hour=10, tzinfo=timezone.utc)
    t = Trace(p, session, start)
    t.emit("session_started", metadata={"agent": "lash-cli", "cwd": "/work/repo"},
           extra_context={"run_id": "run-1", "experiment_id": "exp-1"})
    # turn 0
    t.emit("turn_started", turn=0, metadata={"input": "summarise the README"})
    t.emit("prompt_built", turn=0, prompt_hash="cd" * 32, prompt_chars=5120,
           components=[{"id": "system", "kind": "system_prompt", "hash": "ef" * 32, "chars": 4096},
                       {"id": "history", "kind": "history", "hash": "01" * 32}])
    if p.get("composition"):
        t.emit("composition_changed", turn=0, fingerprint="23" * 32,
               rendered_system_prompt="You are lash.", tool_schemas=[TOOL_SPEC])
    if p.get("rolling"):
        t.emit("rolling_history_compaction_needed", turn=0, context_budget_tokens=100000,
               max_context_tokens=200000, threshold_tokens=90000)
        t.emit("rolling_history_compaction_started", turn=0, source_messages=40,
               instructions_present=False)
        t.emit("rolling_history_compaction_completed", turn=0, summary_nodes=3)
        t.emit("rolling_history_prompt_pruned", turn=0, context_budget_tokens=100000,
               max_context_tokens=200000, dropped_prefix_messages=12, retained_messages=28)
    t.emit("llm_call_started", turn=0, llm="l1", request=request(p, "claude-sonnet-4-5"))
    if p.get("provider_request"):
        t.emit("provider_request", turn=0, llm="l1", event={
            "provider": "anthropic", "sequence": 1, "elapsed_ms": 0,
            "endpoint": "https://api.anthropic.com/v1/messages", "body_len": 912,
            "body_sha256": "45" * 32, "body_json": {"model": "claude-sonnet-4-5"}})
    if p.get("replay"):
        route = {"provider": "anthropic", "endpoint": "https://api.anthropic.com/v1/messages",
                 "model": "claude-sonnet-4-5"}
        t.emit("provider_replay_dropped", turn=0, llm="l1", event={
            "replay_kind": "reasoning", "reason": "foreign_route",
            "minting_route": {**route, "provider": "openai", "model": "gpt-5"},
            "serving_route": route})
    if p.get("streams"):
        t.emit("provider_stream_event", turn=0, llm="l1", event={
            "provider": "anthropic", "sequence": 2, "elapsed_ms": 180,
            "event_name": "content_block_delta", "output_index": 0, "raw_len": 64,
            "raw_sha256": "67" * 32, "raw_json": {"type": "content_block_delta"}})
        t.emit("runtime_stream_event", turn=0, llm="l1", event={
            "sequence": 3, "elapsed_ms": 181, "event_name": "delta",
            "raw_text": "The README", "visible_text": "The README"})
    completed = {"response": {"text": "The README describes lash.", "duration_ms": 2400,
                              "parts": [{"type": "text", "text": "The README describes lash."}]},
                 "usage": usage(p, 1200, 300, 4000, 500 if p.get("new_usage") else 0, 100),
                 "provider_usage": {"input_tokens": 1200, "output_tokens": 300},
                 "stream_summary": {"events": 42}}
    if p.get("terminal"):
        completed["response"]["terminal_reason"] = "end_turn"
    if p.get("durable"):
        attempt = {"ordinal": 1, "outcome": "success", "duration_ms": 2400}
        if p.get("evidence"):
            attempt["execution_evidence"] = {"served_model": "claude-sonnet-4-5"}
        completed["attempts"] = [attempt]
    t.emit("llm_call_completed", turn=0, llm="l1", **completed)
    # tools
    t.emit("tool_call_started", turn=0, call_id="c1", name="read_file", args={"path": "README.md"})
    tool_completed(t, 0, "c1", "read_file", {"path": "README.md"}, "success",
                   "# lash\nAn agent runtime.", 35)
    t.emit("tool_call_started", turn=0, call_id="c2", name="read_file", args={"path": "missing"})
    failure = {"class": "invalid_request", "code": "not_found", "message": "no such file: missing",
               "source": "runtime", "retry": {"type": "never"}}
    tool_completed(t, 0, "c2", "read_file", {"path": "missing"}, "failure",
                   failure if p.get("new_tools") else "no such file: missing", 4)
    if p.get("new_tools"):
        t.emit("tool_call_started", turn=0, call_id="c3", name="shell", args={"cmd": "sleep 60"})
        tool_completed(t, 0, "c3", "shell", {"cmd": "sleep 60"}, "cancelled", None, 1000)
    # protocol (mode) steps and graph updates
    if p.get("protocol"):
        t.emit("protocol_step", turn=0, plugin_id="codemode",
               payload={"diagnostic": "exec_code_completed", "tool_calls": [{"name": "read_file"}]})
    else:
        t.emit("mode_step", turn=0, mode="rlm", payload={"step": "plan", "iteration": 1})
    if p.get("graph") == "process":
        process_tracking(t, 0)
    elif p.get("graph"):
        graph_events(t, 0)
    if p.get("envelope"):
        t.emit("effect_envelope_diff", turn=0, event={
            "recorded_envelope_hash": "89" * 32, "reconstructed_envelope_hash": "9a" * 32,
            "divergent_paths": [{"path": "/args/path",
                                 "recorded": {"state": "present", "json_len": 11,
                                              "json_sha256": "ab" * 32, "value_json": "README.md"},
                                 "reconstructed": {"state": "missing"}}]})
    if p.get("lease"):
        t.emit("session_execution_lease.frame_handoff_transferred", turn=0,
               owner_id="worker-1", incarnation_id="inc-7", previous_fencing_token=4,
               transferred_fencing_token=5, trigger="nested_commit")
    if p.get("durable"):
        t.emit("journaled_effect_started", turn=0, effect_name="llm", effect_kind="llm_call")
        t.emit("journaled_effect_settled", turn=0, effect_name="llm", effect_kind="llm_call",
               status="failed")
        t.emit("durable_wait_parked", turn=0, wait_kind="child_session")
        t.emit("durable_wait_resolved", turn=0, wait_kind="child_session", resolution="completed")
        t.emit("durable_timer_started", turn=0, duration_ms=500)
        t.emit("durable_timer_resolved", turn=0, duration_ms=500, status="fired")
        t.emit("durable_segment_boundary", turn=0, reason="journal_budget",
               effects_executed=12, journaled_bytes_estimate=65536)
        t.emit("store_error_observed", turn=0, operation="append_turn",
               error_class="integrity", message="sequence gap at 17")
    frame = p.get("frame")
    if frame is None:
        switch = {"handoff": {"successor_session_id": f"{session}-next"}}
    elif frame == "frame_id":
        switch = {"agent_frame_switch": {"frame_id": "frame-2"}}
    else:
        switch = {"agent_frame_switch": {"frame_key": "frame-key/v1/reviewer"}}
    t.emit("turn_completed", turn=0, status="completed", done_reason="modelstop", **switch)
    # turn 1: a failed call, a call whose usage comes separately, a failed turn
    t.emit("turn_started", turn=1)
    t.emit("llm_call_started", turn=1, llm="l2", request=request(p, "gpt-5"))
    error = {"message": "rate limited", "retryable": True, "code": "429"}
    if p.get("terminal"):
        error["terminal_reason"] = "rate_limit"
    t.emit("llm_call_failed", turn=1, llm="l2", error=error)
    t.emit("llm_call_started", turn=1, llm="l3", request=request(p, "gpt-5"))
    t.emit("llm_call_completed", turn=1, llm="l3",
           response={"text": "done", "duration_ms": 900})
    t.emit("token_usage", turn=1, llm="l3", usage=usage(p, 50, 20))
    t.emit("token_usage", turn=1, usage=usage(p, 1250, 320, 4000),
           cumulative=usage(p, 1250, 320, 4000))
    t.emit("turn_completed", turn=1, status="failed", done_reason="error")
    t.emit("custom", name="host.checkpoint", payload={"ok": True, "bytes": 1024})
    return t.lines


def main():
    files = {}
    for session, p in PROFILES.items():
        files.setdefault(p["version"], []).extend(trace(session))
    for version, lines in files.items():
        with open(os.path.join(HERE, f"lash-v{version}.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
