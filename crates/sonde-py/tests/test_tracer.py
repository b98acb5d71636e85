"""SessionTracer: seed 000's operations, context managers, hooks with priorities,
reads through the tracer, errors as SondeError subclasses, every destination (SQLite,
PostgreSQL, JSONL)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

import sonde
from sonde import LMCAISEvent, SessionMessageContent, SessionTracer, TimeRecord


def llm(model: str = "gpt-5", **kw: Any) -> LMCAISEvent:
    return LMCAISEvent(
        system_instance_id="agent",
        time_record=TimeRecord(event_time=time.time()),
        model_name=model,
        provider="openai",
        input_tokens=kw.pop("input_tokens", 100),
        output_tokens=kw.pop("output_tokens", 10),
        **kw,
    )


def record_one(tracer: SessionTracer) -> str:
    with tracer.session(metadata={"run": 1}) as session_id:
        with tracer.timestep("turn-1", turn_number=1):
            event_id = tracer.record_event(llm())
            tracer.record_message(SessionMessageContent(text="hi"), "user_prompt")
            tracer.record_event_reward(event_id, 1.0, source="judge")
        tracer.record_outcome_reward(1.0, achievements=["done"], total_steps=1)
    return session_id


def test_context_managers_record_a_whole_session(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    session_id = record_one(tracer)
    trace = tracer.get_session(session_id)
    assert trace is not None
    assert [s.step_id for s in trace.session_time_steps] == ["turn-1"]
    assert trace.session_time_steps[0].completed_at is not None
    assert trace.outcome_rewards[0]["value"]["achievements"] == ["done"]
    assert trace.event_rewards[0]["value"]["event_id"] == trace.event_history[0].event_id
    assert tracer.current_session_id is None


def test_an_exception_inside_the_block_still_ends_and_saves_the_session(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    with pytest.raises(RuntimeError):
        with tracer.session() as session_id:
            tracer.record_event(llm())
            raise RuntimeError("agent crashed")
    trace = tracer.get_session(session_id)
    assert trace is not None and len(trace.event_history) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_hooks_run_by_priority_and_a_failing_hook_does_not_stop_recording(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    seen: List[str] = []
    tracer.register_hook("event_recorded", lambda c: seen.append("low"), priority=1)
    tracer.register_hook("event_recorded", lambda c: seen.append("high:" + c["record"]["kind"]), priority=9)
    tracer.register_hook("event_recorded", lambda c: 1 / 0, priority=5)
    tracer.register_hook("session_start", lambda c: seen.append("start:" + c["session_id"]))
    with tracer.session("s-hooks"):
        tracer.record_event(llm())
    assert seen == ["start:s-hooks", "high:llm_call", "low"]
    with pytest.raises(ValueError, match="unknown hook event"):
        tracer.register_hook("nope", print)


def test_recording_outside_a_session_is_a_record_error(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    with pytest.raises(sonde.RecordError, match="no active session"):
        tracer.record_event(llm())
    tracer.start_session("a")
    with pytest.raises(sonde.RecordError, match="session a is already active"):
        tracer.start_session("b")
    tracer.end_session()
    assert issubclass(sonde.RecordError, sonde.SondeError)


def test_query_reads_and_refuses_writes(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    session_id = record_one(tracer)
    rows = tracer.query("SELECT session_id FROM sessions WHERE session_id = ?", [session_id])
    assert rows == [{"session_id": session_id}]
    with pytest.raises(sonde.QueryError):
        tracer.query("DELETE FROM sessions")


def test_delete_session(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    session_id = record_one(tracer)
    assert tracer.delete_session(session_id) is True
    assert tracer.get_session(session_id) is None
    assert tracer.delete_session(session_id) is False


def test_the_event_time_and_trace_ids_are_the_records(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    with tracer.session() as session_id:
        tracer.record_event(
            LMCAISEvent(
                system_instance_id="agent",
                time_record=TimeRecord(event_time=1_700_000_000.5),
                model_name="m",
                span_id="00f067aa0ba902b7",
                trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            )
        )
    [event] = sonde.load_session(db, session_id).event_history
    assert event.time_record.event_time == 1_700_000_000.5
    assert isinstance(event, LMCAISEvent)
    assert event.span_id == "00f067aa0ba902b7"
    assert event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_jsonl_destination_writes_sonde_records(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    tracer = SessionTracer(db_url=str(path))
    session_id = record_one(tracer)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["kind"] for r in lines} >= {"session_started", "llm_call", "message", "session_ended"}
    assert all(r["context"]["session_id"] == session_id for r in lines)
    with pytest.raises(sonde.ReadError, match="no store"):
        tracer.get_session(session_id)
    trace = sonde.load_session(str(path), session_id)
    assert trace.event_history[0].to_dict()["model_name"] == "gpt-5"


def test_a_store_and_a_jsonl_copy(db: str, tmp_path: Path) -> None:
    tracer = SessionTracer(db_url=db, jsonl=str(tmp_path / "copy.jsonl"))
    session_id = record_one(tracer)
    assert sonde.load_session(db, session_id).to_dict() == sonde.load_session(str(tmp_path / "copy.jsonl"), session_id).to_dict()


def test_postgresql(postgres_url: str) -> None:
    tracer = SessionTracer(db_url=postgres_url)
    session_id = record_one(tracer)
    trace = sonde.load_session(postgres_url, session_id)
    assert trace.event_history[0].total_tokens == 110
    assert [m["model"] for m in sonde.stats(postgres_url, "models", session_id=session_id)] == ["gpt-5"]


def test_a_database_url_that_cannot_be_opened_is_an_open_error() -> None:
    with pytest.raises(sonde.OpenError, match="unsupported|mysql"):
        SessionTracer(db_url="mysql://localhost/x")


def test_auto_save_off_writes_only_at_end_session(db: str) -> None:
    tracer = SessionTracer(db_url=db, auto_save=False)
    tracer.start_session("lazy")
    tracer.record_event(llm())
    tracer.flush()
    assert tracer.get_session("lazy") is None
    tracer.end_session(True)
    trace = tracer.get_session("lazy")
    assert trace is not None and len(trace.event_history) == 1


def test_many_records_all_arrive(db: str) -> None:
    tracer = SessionTracer(db_url=db)
    with tracer.session() as session_id:
        for i in range(5000):
            tracer.record_event(llm(input_tokens=i))
    rows: List[Dict[str, Any]] = tracer.query("SELECT count(*) AS n FROM events WHERE session_id = ?", [session_id])
    assert rows == [{"n": 5000}]


def test_other_python_threads_run_while_the_tracer_waits(db: str) -> None:
    import threading

    tracer = SessionTracer(db_url=db)
    tracer.start_session("gil")
    event = llm()
    for _ in range(30_000):
        tracer.record_event(event)
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    thread = threading.Thread(target=count)
    thread.start()
    time.sleep(0.01)
    before = ticks
    # Flushing waits for 30,000 records to be written, with the GIL released.
    tracer.flush()
    during = ticks - before
    stop.set()
    thread.join()
    tracer.end_session()
    assert during > 0, "the GIL was held while the records were written"
