#!/usr/bin/env python3
"""Writes the Claude Code 2.1 fixtures of this folder: one API response written as
several `assistant` lines (one content block each, same message.id, requestId and
usage), with tool results, attachments, progress and system lines between them,
parallel subagents whose own responses are split the same way, a resumed session
that copies responses of the first, and an inline sidechain copied into an agent
file. Written by Sonde's developers from the description of Claude Code's format;
no real user data. Run it from anywhere: it writes beside itself.
"""
import json
import os
import uuid
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "-home-dev-shop"
CWD = "/home/dev/shop"
VERSION = "2.1.59"
NS = uuid.UUID("6f1c5a52-1d3e-4b7a-9a0c-5d2e8f3b4c61")
T0 = datetime(2026, 11, 20, 9, 0, 0, tzinfo=timezone.utc)
MAIN, SUB, OLD = "claude-opus-4-7", "claude-haiku-4-5-20251001", "claude-sonnet-4-6"


def uid(*parts):
    return str(uuid.uuid5(NS, "/".join(map(str, parts))))


def ts(sec):
    return (T0 + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(round(sec % 1 * 1000)) % 1000:03d}Z"


def usage(inp, write_1h, write_5m, read, out):
    return {
        "input_tokens": inp,
        "cache_creation_input_tokens": write_1h + write_5m,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": out,
        "service_tier": "standard",
    }


class File:
    def __init__(self, session, agent=None, sidechain=False):
        self.session, self.agent, self.sidechain = session, agent, sidechain
        self.lines, self.parent = [], None

    def envelope(self, kind, sec, key, sidechain=None, **extra):
        line = {
            "parentUuid": self.parent,
            "isSidechain": self.sidechain if sidechain is None else sidechain,
            "userType": "external",
            "cwd": CWD,
            "sessionId": self.session,
            "version": VERSION,
            "gitBranch": "main",
        }
        if self.agent:
            line["agentId"] = self.agent
        line["type"] = kind
        line.update(extra)
        line["uuid"] = uid(self.session, self.agent, key)
        line["timestamp"] = ts(sec)
        self.parent = line["uuid"]
        return line

    def add(self, line):
        self.lines.append(line)
        return line

    def prompt(self, sec, text, key):
        return self.add(self.envelope("user", sec, key, message={"role": "user", "content": text}))

    def block(self, sec, model, msg, req, block, use, stop=None, key=None, sidechain=None):
        message = {
            "model": model,
            "id": msg,
            "type": "message",
            "role": "assistant",
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": use,
        }
        return self.add(self.envelope("assistant", sec, key or (msg, json.dumps(block)[:60]), sidechain, message=message, requestId=req))

    def result(self, sec, tool_id, text, error=False, tool_result=None, sidechain=None):
        block = {"tool_use_id": tool_id, "type": "tool_result", "content": text}
        if error:
            block["is_error"] = True
        extra = {"message": {"role": "user", "content": [block]}}
        extra["toolUseResult"] = tool_result if tool_result is not None else {"stdout": text, "stderr": "", "interrupted": False}
        return self.add(self.envelope("user", sec, ("result", tool_id), sidechain, **extra))

    def attachment(self, sec, key):
        att = {"type": "hook_additional_context", "content": ["Remember: run ruff before committing."], "hookName": "PostToolUse", "toolUseID": key}
        return self.add(self.envelope("attachment", sec, ("attachment", key), attachment=att))

    def progress(self, sec, tool_id):
        data = {"type": "hook_progress", "hookEvent": "PostToolUse", "hookName": "PostToolUse:Grep", "command": "ruff check --quiet"}
        return self.add(self.envelope("progress", sec, ("progress", tool_id), data=data, toolUseID=tool_id, parentToolUseID=tool_id))

    def system(self, sec, key, text):
        return self.add(self.envelope("system", sec, ("system", key), subtype="informational", content=text, level="info", isMeta=False))

    def write(self, path):
        full = os.path.join(HERE, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            for line in self.lines:
                f.write(json.dumps(line, separators=(",", ":")) + "\n")


def text(t):
    return {"type": "text", "text": t}


def thinking(t):
    return {"type": "thinking", "thinking": t, "signature": "Eu8BCkYICBgCKkB" + uid(t)[:16]}


def tool(tid, name, inp):
    return {"type": "tool_use", "id": tid, "name": name, "input": inp}


# The main session: parallel tool calls whose results arrive between the lines of
# their response, two parallel subagents, an error, two prompts.
S1 = "5b0d3c1e-7a2f-4c8e-9d41-2f6a8b9c0e11"
main = File(S1)
main.add({"type": "file-history-snapshot", "messageId": uid("snap"), "snapshot": {"trackedFileBackups": {}, "timestamp": ts(0)}, "isSnapshotUpdate": False})
main.prompt(0, "Refactor the checkout module to use the new pricing service, and run the tests.", "p1")
uA = usage(6, 4210, 0, 18830, 1290)
m = ("msg_01SplitA7kq3Vn2", "req_011SplitA9xW")
main.block(3.1, MAIN, *m, thinking("The user wants checkout to use PriceService. Read first, search callers, explore in parallel."), uA)
main.block(4.0, MAIN, *m, text("I'll read the checkout module, find the callers of the old pricing code, and explore both packages in parallel."), uA)
main.block(4.6, MAIN, *m, tool("toolu_01A1read", "Read", {"file_path": "/home/dev/shop/checkout.py"}), uA)
main.result(4.9, "toolu_01A1read", "     1\tfrom pricing import legacy_price\n     2\t\n     3\tdef total(cart):\n     4\t    return sum(legacy_price(i) for i in cart)\n")
main.attachment(5.0, "toolu_01A1read")
main.block(5.3, MAIN, *m, tool("toolu_01A2grep", "Grep", {"pattern": "legacy_price", "output_mode": "files_with_matches"}), uA)
main.progress(5.5, "toolu_01A2grep")
main.result(5.8, "toolu_01A2grep", "Found 3 files\ncheckout.py\ninvoice.py\nreports/monthly.py")
main.block(6.2, MAIN, *m, tool("toolu_01A3task", "Task", {"subagent_type": "Explore", "description": "Explore the pricing service", "prompt": "Find every public function of services/pricing and how it is called."}), uA)
main.block(6.9, MAIN, *m, tool("toolu_01A4task", "Task", {"subagent_type": "Explore", "description": "Explore the invoice module", "prompt": "Read invoice.py and list what depends on legacy_price."}), uA, stop="tool_use")
main.system(7.0, "a-after", "Running 2 agents in parallel")
main.result(31.4, "toolu_01A4task", [text("invoice.py calls legacy_price twice, in line_total and in tax.")],
            tool_result={"status": "completed", "agentId": "b7d2e9a4", "content": [text("invoice.py calls legacy_price twice.")], "totalDurationMs": 24500, "totalToolUseCount": 2})
main.result(41.2, "toolu_01A3task", [text("services/pricing exposes PriceService.quote(item, currency).")],
            tool_result={"status": "completed", "agentId": "a5f1c2e9", "content": [text("services/pricing exposes PriceService.quote.")], "totalDurationMs": 35000, "totalToolUseCount": 3})
uB = usage(8, 0, 2380, 23040, 865)
m = ("msg_01SplitB2hd8Rt", "req_011SplitB4pQ")
main.block(44.3, MAIN, *m, text("Both explorations agree: `legacy_price` becomes `PriceService.quote`. Editing checkout first."), uB)
main.block(45.0, MAIN, *m, tool("toolu_01B1edit", "Edit", {"file_path": "/home/dev/shop/checkout.py", "old_string": "legacy_price(i)", "new_string": "PRICES.quote(i, cart.currency)"}), uB)
main.block(45.2, MAIN, *m, tool("toolu_01B2bash", "Bash", {"command": "pytest -q tests/test_checkout.py", "description": "Run the checkout tests"}), uB, stop="tool_use")
main.result(45.6, "toolu_01B1edit", "The file /home/dev/shop/checkout.py has been updated.")
main.result(58.0, "toolu_01B2bash", "Exit code 1\nFAILED tests/test_checkout.py::test_total - NameError: name 'PRICES' is not defined", error=True)
uC = usage(5, 0, 1210, 25420, 540)
m = ("msg_01SplitC5ny1Lm", "req_011SplitC7aZ")
main.block(61.7, MAIN, *m, thinking("PRICES is not imported. Add the import, run again."), uC)
main.block(62.5, MAIN, *m, tool("toolu_01C1edit", "Edit", {"file_path": "/home/dev/shop/checkout.py", "old_string": "from pricing import legacy_price", "new_string": "from services.pricing import PRICES"}), uC)
main.result(62.8, "toolu_01C1edit", "The file /home/dev/shop/checkout.py has been updated.")
main.attachment(62.9, "toolu_01C1edit")
main.block(63.4, MAIN, *m, tool("toolu_01C2bash", "Bash", {"command": "pytest -q", "description": "Run all tests"}), uC, stop="tool_use")
main.result(70.1, "toolu_01C2bash", "42 passed in 6.31s")
uD = usage(4, 0, 310, 26630, 212)
m = ("msg_01SplitD8wc4Gs", "req_011SplitD1kJ")
main.block(73.9, MAIN, *m, text("Done: checkout now prices through `PriceService.quote`, and all 42 tests pass."), uD, stop="end_turn")
main.prompt(80.0, "Also add a changelog entry.", "p2")
uE = usage(3, 0, 180, 26950, 301)
m = ("msg_01SplitE3rr6Qe", "req_011SplitE6mB")
main.block(83.0, MAIN, *m, tool("toolu_01E1write", "Edit", {"file_path": "/home/dev/shop/CHANGELOG.md", "old_string": "## Unreleased\n", "new_string": "## Unreleased\n- Checkout prices through PriceService.\n"}), uE, stop="tool_use")
main.result(83.4, "toolu_01E1write", "The file /home/dev/shop/CHANGELOG.md has been updated.")
uF = usage(3, 0, 95, 27140, 48)
m = ("msg_01SplitF9ee2Ya", "req_011SplitF2cV")
main.block(86.2, MAIN, *m, text("Added under Unreleased."), uF, stop="end_turn")
main.write(f"{PROJECT}/{S1}.jsonl")

# Subagent a5f1c2e9: two parallel tool calls asked before either result comes back.
agent = File(S1, agent="a5f1c2e9", sidechain=True)
agent.prompt(6.5, "Find every public function of services/pricing and how it is called.", "p")
uS1 = usage(12, 0, 5120, 0, 233)
m = ("msg_01SubA1tz5Hq", "req_011SubA1nD")
agent.block(9.8, SUB, *m, text("Searching the pricing package."), uS1)
agent.block(10.4, SUB, *m, tool("toolu_01Sa1grep", "Grep", {"pattern": "def ", "path": "services/pricing"}), uS1)
agent.block(10.6, SUB, *m, tool("toolu_01Sa2glob", "Glob", {"pattern": "services/pricing/**/*.py"}), uS1, stop="tool_use")
agent.result(10.8, "toolu_01Sa2glob", "services/pricing/__init__.py\nservices/pricing/service.py")
agent.result(11.1, "toolu_01Sa1grep", "services/pricing/service.py:def quote(self, item, currency):")
uS2 = usage(9, 0, 1450, 5120, 118)
m = ("msg_01SubA2fg7Pw", "req_011SubA2uE")
agent.block(14.0, SUB, *m, tool("toolu_01Sa3read", "Read", {"file_path": "/home/dev/shop/services/pricing/service.py"}), uS2, stop="tool_use")
agent.result(14.3, "toolu_01Sa3read", "class PriceService:\n    def quote(self, item, currency): ...\nPRICES = PriceService()\n")
uS3 = usage(7, 0, 640, 6570, 402)
m = ("msg_01SubA3vb9Kx", "req_011SubA3sR")
agent.block(38.5, SUB, *m, thinking("One public method, one module-level instance."), uS3)
agent.block(39.6, SUB, *m, text("services/pricing exposes PriceService.quote(item, currency) and a shared instance PRICES."), uS3, stop="end_turn")
agent.write(f"{PROJECT}/{S1}/subagents/agent-a5f1c2e9.jsonl")
with open(os.path.join(HERE, f"{PROJECT}/{S1}/subagents/agent-a5f1c2e9.meta.json"), "w") as f:
    json.dump({"agentType": "Explore"}, f)

# Subagent b7d2e9a4: a tool result between the two tool_use lines of one response.
agent = File(S1, agent="b7d2e9a4", sidechain=True)
agent.prompt(7.2, "Read invoice.py and list what depends on legacy_price.", "p")
uR1 = usage(11, 0, 4870, 0, 356)
m = ("msg_01SubB1kk2Wd", "req_011SubB1hT")
agent.block(11.9, SUB, *m, thinking("Read invoice.py and its test."), uR1)
agent.block(12.7, SUB, *m, tool("toolu_01Sb1read", "Read", {"file_path": "/home/dev/shop/invoice.py"}), uR1)
agent.result(13.0, "toolu_01Sb1read", "def line_total(l):\n    return legacy_price(l.item) * l.qty\ndef tax(l):\n    return legacy_price(l.item) * 0.2\n")
agent.block(13.4, SUB, *m, tool("toolu_01Sb2read", "Read", {"file_path": "/home/dev/shop/tests/test_invoice.py"}), uR1, stop="tool_use")
agent.result(13.7, "toolu_01Sb2read", "def test_line_total(): ...\n")
uR2 = usage(6, 0, 820, 4870, 190)
m = ("msg_01SubB2mq4Zc", "req_011SubB2yL")
agent.block(30.8, SUB, *m, text("invoice.py calls legacy_price twice, in line_total and in tax."), uR2, stop="end_turn")
agent.write(f"{PROJECT}/{S1}/subagents/agent-b7d2e9a4.jsonl")

# A resumed session: it begins with copies of the first session's last exchange
# (same message ids, request ids, timestamps and usage) and goes on.
S2 = "9e4a7b20-3c1d-4f5e-8a6b-7c8d9e0f1a22"
resumed = File(S2)
for line in main.lines[-5:]:
    copy = dict(line)
    copy["sessionId"] = S2
    resumed.lines.append(copy)
resumed.parent = resumed.lines[-1]["uuid"]
resumed.prompt(300.0, "Bump the version to 1.4.0.", "p3")
uG = usage(4, 0, 260, 27300, 160)
m = ("msg_01SplitG4pp8Nn", "req_011SplitG8fF")
resumed.block(303.2, MAIN, *m, text("Bumping the version in pyproject.toml."), uG)
resumed.block(303.9, MAIN, *m, tool("toolu_01G1edit", "Edit", {"file_path": "/home/dev/shop/pyproject.toml", "old_string": "version = \"1.3.2\"", "new_string": "version = \"1.4.0\""}), uG, stop="tool_use")
resumed.result(304.2, "toolu_01G1edit", "The file /home/dev/shop/pyproject.toml has been updated.")
uH = usage(3, 0, 70, 27560, 21)
m = ("msg_01SplitH6tt1Bb", "req_011SplitH3gG")
resumed.block(306.0, MAIN, *m, text("Version is 1.4.0."), uH, stop="end_turn")
resumed.write(f"{PROJECT}/{S2}.jsonl")

# An older layout: a subagent written inline in the session file (isSidechain) and
# also in a flat agent file beside it: the same split response, two sidechain copies.
S3 = "c3f8e1d2-5a6b-4c7d-8e9f-0a1b2c3d4e33"
old = File(S3)
old.prompt(600.0, "What does the reports module export?", "p1")
uI = usage(10, 0, 2100, 9800, 140)
m = ("msg_01OldI2dd3Ff", "req_011OldI5hH")
old.block(602.0, OLD, *m, text("Asking an agent to look."), uI)
old.block(602.5, OLD, *m, tool("toolu_01I1task", "Task", {"subagent_type": "general-purpose", "description": "Reports exports", "prompt": "List what reports/__init__.py exports."}), uI, stop="tool_use")
side_start = len(old.lines)
old.agent = "d4e5f6a7"
old.prompt(602.7, "List what reports/__init__.py exports.", "side-p")
old.lines[-1]["isSidechain"] = True
uJ = usage(9, 0, 1500, 0, 210)
m = ("msg_01OldJ7kk9Mm", "req_011OldJ1nN")
old.block(605.0, OLD, *m, text("Reading the package."), uJ, sidechain=True)
old.block(605.4, OLD, *m, tool("toolu_01J1read", "Read", {"file_path": "/home/dev/shop/reports/__init__.py"}), uJ, stop="tool_use", sidechain=True)
old.result(605.6, "toolu_01J1read", "from .monthly import monthly_report\n__all__ = ['monthly_report']\n", sidechain=True)
uK = usage(6, 0, 300, 1500, 95)
m = ("msg_01OldK3ss5Tt", "req_011OldK8vV")
old.block(608.0, OLD, *m, text("reports exports monthly_report only."), uK, stop="end_turn", sidechain=True)
side_lines = [dict(l) for l in old.lines[side_start:]]
old.agent = None
old.result(608.3, "toolu_01I1task", [text("reports exports monthly_report only.")], tool_result={"status": "completed", "agentId": "d4e5f6a7", "content": [text("reports exports monthly_report only.")]})
uL = usage(5, 0, 120, 11900, 60)
m = ("msg_01OldL9uu2Ww", "req_011OldL4xX")
old.block(610.0, OLD, *m, text("It exports `monthly_report`."), uL, stop="end_turn")
old.write(f"{PROJECT}/{S3}.jsonl")
flat = File(S3, agent="d4e5f6a7", sidechain=True)
flat.lines = side_lines
flat.write(f"{PROJECT}/agent-d4e5f6a7.jsonl")
