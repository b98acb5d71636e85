"""The read helpers return plain Python data, and errors are SondeError subclasses
with Sonde's messages."""

from __future__ import annotations

import datetime
import shutil
import time
from pathlib import Path

import pytest

import sonde
from sonde import LMCAISEvent, SessionTracer, TimeRecord

# shared/ lies beside the repository (CI copies it there too).
TRANSCRIPTS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "transcripts" / "claude-code"


def record(db: str, model: str, n: int = 1) -> str:
    tracer = SessionTracer(db_url=db)
    with tracer.session(metadata={"team": "a"}) as session_id:
        for _ in range(n):
            tracer.record_event(
                LMCAISEvent(
                    system_instance_id="agent",
                    time_record=TimeRecord(event_time=time.time()),
                    model_name=model,
                    provider="anthropic",
                    input_tokens=1000,
                    output_tokens=100,
                    latency_ms=500.0,
                )
            )
    return session_id


def test_sessions_lists_newest_first_with_filters(db: str) -> None:
    first = record(db, "claude-sonnet-4-5")
    second = record(db, "claude-haiku-4-5")
    assert [s["session_id"] for s in sonde.sessions(db)] == [second, first]
    assert [s["session_id"] for s in sonde.sessions(db, model="claude-sonnet-4-5")] == [first]
    assert sonde.sessions(db, since="1h", metadata={"team": "a"})[0]["llm_calls"] == 1
    assert sonde.sessions(db, until=datetime.datetime(2000, 1, 1)) == []


def test_stats_is_the_json_of_sonde_stats(db: str, sonde_bin: Path) -> None:
    import json
    import subprocess

    record(db, "claude-sonnet-4-5", n=3)
    models = sonde.stats(db, "models", since="7d")
    assert [(m["model"], m["calls"]) for m in models] == [("claude-sonnet-4-5", 3)]
    cli = subprocess.run([str(sonde_bin), "--db", db, "stats", "models", "--since", "7d", "--json"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == models
    assert sonde.stats(db)["calls"] == 3
    assert sonde.stats(db, "latency", group_by="model")[0]["group"] == "claude-sonnet-4-5"
    with pytest.raises(ValueError, match="not a report"):
        sonde.stats(db, "nope")


def test_sync_reads_claude_code_transcripts(tmp_path: Path) -> None:
    assert TRANSCRIPTS.exists(), f"transcripts missing at {TRANSCRIPTS}"
    copy = tmp_path / "projects"
    shutil.copytree(TRANSCRIPTS, copy)
    db = f"sqlite://{tmp_path / 'synced.db'}"
    result = sonde.sync("claude", db=db, paths=[str(copy)])
    assert result["source"] == "claude"
    assert result["files_scanned"] > 0 and result["spans_synced"] > 0
    assert result["errors"] == 0, result["error_messages"]
    listed = sonde.sessions(db, limit=1000)
    assert listed
    trace = sonde.load_session(db, listed[0]["session_id"])
    assert trace.session_id == listed[0]["session_id"]


def test_reading_a_database_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(sonde.DatabaseNotFoundError, match=f"no database at {missing}"):
        sonde.load_session(str(missing), "x")
    with pytest.raises(sonde.SondeError):
        sonde.sessions(f"sqlite://{missing}")
    assert not missing.exists()
    assert issubclass(sonde.DatabaseNotFoundError, sonde.OpenError)


def test_a_missing_session_is_session_not_found(db: str) -> None:
    record(db, "m")
    with pytest.raises(sonde.SessionNotFoundError, match="no session nope in"):
        sonde.load_session(db, "nope")
