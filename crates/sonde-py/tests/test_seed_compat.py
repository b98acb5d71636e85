"""Done-when of issue 19 part 1: a script written only against seed 002's and seed
000's names records a session into SQLite; `sonde show` displays it and
`sonde.load_session(...).to_dict()` returns the seed's shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sonde

HERE = Path(__file__).parent


def test_a_seed_script_records_a_session_that_the_cli_shows_and_load_session_reads(
    db: str, sonde_bin: Path
) -> None:
    run = subprocess.run([sys.executable, str(HERE / "seed_script.py"), db], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    session_id = run.stdout.strip()

    show = subprocess.run([str(sonde_bin), "--db", db, "show", session_id], capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    assert session_id[:8] in show.stdout
    assert "claude-sonnet-4-5" in show.stdout
    assert "turn_1" in show.stdout

    trace = sonde.load_session(db, session_id).to_dict()
    assert set(trace) == {
        "session_id",
        "created_at",
        "session_time_steps",
        "event_history",
        "message_history",
        "metadata",
        "session_metadata",
    }
    assert trace["session_id"] == session_id
    assert trace["metadata"] == {"experiment_id": "seed-compat", "user_id": "u-1"}
    [step] = trace["session_time_steps"]
    assert step["step_id"] == "turn_1" and step["turn_number"] == 1 and step["step_index"] == 0
    assert step["completed_at"] is not None
    assert len(step["events"]) == 3 and len(step["step_messages"]) == 2
    llm, runtime, environment = trace["event_history"]
    assert llm["model_name"] == "claude-sonnet-4-5"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (1200, 300, 1500)
    assert llm["cost_usd"] == 0.0081 and llm["latency_ms"] == 1840.0
    assert llm["call_records"][0]["request"]["messages"][0]["content"] == "fix it"
    assert runtime["actions"] == ["run_tests"]
    assert environment["reward"] == 1.0 and environment["terminated"] is True
    assert environment["system_state_after"] == {"passed": 12}
    prompt, result = trace["message_history"]
    assert prompt["content"] == {"text": "fix the failing test", "json": None}
    assert prompt["metadata"] == {"from_system_role": "human", "to_system_role": "agent"}
    assert result["content"]["json"] == {"exit_code": 0}
    assert result["time_record"]["message_time"] == 2


def test_a_session_recorded_by_the_cli_loads_as_a_seed_session_trace(tmp_path: Path, sonde_bin: Path) -> None:
    db = f"sqlite://{tmp_path / 'demo.db'}"
    demo = subprocess.run([str(sonde_bin), "--db", db, "demo"], capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    [summary] = sonde.sessions(db)
    trace = sonde.load_session(db, summary["session_id"])
    assert isinstance(trace, sonde.SessionTrace)
    assert any(isinstance(e, sonde.LMCAISEvent) for e in trace.event_history)
    assert any(isinstance(e, sonde.RuntimeEvent) for e in trace.event_history)
    assert len(trace.session_time_steps) == 2
    assert trace.to_dict()["session_id"] == summary["session_id"]
