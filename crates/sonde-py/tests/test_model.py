"""Seed 002's classes: their names and fields, immutable, validated, `to_dict()` in the
seed's shape, and LMCAISEvent.total_tokens = input + output with the cache counts beside."""

from __future__ import annotations

import dataclasses

import pytest

import sonde
from sonde import (
    BaseEvent,
    EnvironmentEvent,
    LMCAISEvent,
    RuntimeEvent,
    SessionEventMarkovBlanketMessage,
    SessionMessageContent,
    TimeRecord,
)

T = TimeRecord(event_time=1_700_000_000.25, message_time=7)


def test_time_record_keeps_both_times() -> None:
    assert (T.event_time, T.message_time) == (1_700_000_000.25, 7)
    assert T.to_dict() == {"event_time": 1_700_000_000.25, "message_time": 7}
    assert TimeRecord(1.5) == TimeRecord(event_time=1.5)


def test_message_content_is_text_or_json() -> None:
    text = SessionMessageContent(text="hello")
    data = SessionMessageContent(json={"exit_code": 0})
    assert text.as_text() == "hello" and not text.has_json()
    assert data.has_json() and data.as_text() == '{"exit_code":0}'
    assert data.json == {"exit_code": 0}
    assert SessionMessageContent().as_text() == ""


def test_lmcais_event_has_the_seed_fields_and_total_is_input_plus_output() -> None:
    e = LMCAISEvent(
        system_instance_id="llm",
        time_record=T,
        model_name="gpt-5",
        provider="openai",
        input_tokens=1000,
        output_tokens=50,
        cost_usd=0.01,
        latency_ms=900.0,
        span_id="00f067aa0ba902b7",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        cache_read_tokens=4000,
        reasoning_tokens=20,
    )
    assert e.total_tokens == 1050
    assert (e.cache_read_tokens, e.cache_write_tokens, e.reasoning_tokens) == (4000, 0, 20)
    assert isinstance(e, BaseEvent)
    d = e.to_dict()
    for field in [
        "system_instance_id", "time_record", "metadata", "event_metadata", "model_name", "provider",
        "input_tokens", "output_tokens", "total_tokens", "cost_usd", "latency_ms", "span_id",
        "trace_id", "system_state_before", "system_state_after", "call_records",
    ]:
        assert field in d, field
    assert d["total_tokens"] == 1050 and d["cache_read_tokens"] == 4000
    assert d["time_record"] == {"event_time": 1_700_000_000.25, "message_time": 7}


def test_events_are_immutable() -> None:
    e = RuntimeEvent(system_instance_id="runtime", time_record=T, actions=[1, 2])
    with pytest.raises(AttributeError):
        e.actions = []  # type: ignore[misc]
    with pytest.raises(AttributeError):
        T.event_time = 0.0  # type: ignore[misc]


def test_bad_input_is_a_clear_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="LMCAISEvent.total_tokens: 7 is not input_tokens \\+ output_tokens"):
        LMCAISEvent(system_instance_id="x", time_record=T, input_tokens=1, output_tokens=2, total_tokens=7)
    with pytest.raises(ValueError, match="LMCAISEvent.input_tokens: -1 is negative"):
        LMCAISEvent(system_instance_id="x", time_record=T, input_tokens=-1)
    with pytest.raises(ValueError, match="LMCAISEvent.cost_usd"):
        LMCAISEvent(system_instance_id="x", time_record=T, cost_usd=-2.0)
    with pytest.raises(TypeError, match="BaseEvent.metadata: a object cannot be stored as JSON"):
        BaseEvent(system_instance_id="x", time_record=T, metadata={"k": object()})
    with pytest.raises(ValueError, match="TimeRecord.event_time"):
        TimeRecord(event_time=float("nan"))


def test_environment_event_follows_gymnasium() -> None:
    e = EnvironmentEvent(system_instance_id="env", time_record=T, reward=0.5, truncated=True, system_state_after={"obs": [1]})
    assert (e.reward, e.terminated, e.truncated) == (0.5, False, True)
    assert e.system_state_after == {"obs": [1]}
    assert EnvironmentEvent(system_instance_id="env", time_record=T).reward == 0.0


def test_messages_keep_seed_metadata_keys() -> None:
    m = SessionEventMarkovBlanketMessage(
        content=SessionMessageContent(text="run it"),
        message_type="action",
        time_record=T,
        metadata={"from_system_role": "agent", "to_system_role": "runtime", "step_id": "turn-1"},
    )
    assert m.metadata == {"from_system_role": "agent", "to_system_role": "runtime", "step_id": "turn-1"}
    assert m.to_dict() == {
        "content": {"text": "run it", "json": None},
        "message_type": "action",
        "time_record": {"event_time": 1_700_000_000.25, "message_time": 7},
        "metadata": {"from_system_role": "agent", "to_system_role": "runtime", "step_id": "turn-1"},
    }


def test_call_records_of_the_seeds_shape_are_kept_whole() -> None:
    @dataclasses.dataclass
    class LLMCallRecord:
        call_id: str
        api_type: str
        usage: dict

    record = LLMCallRecord(call_id="c1", api_type="responses", usage={"input_tokens": 3})
    e = LMCAISEvent(system_instance_id="x", time_record=T, call_records=[dataclasses.asdict(record)])
    assert e.call_records == [{"call_id": "c1", "api_type": "responses", "usage": {"input_tokens": 3}}]


def test_equal_events_compare_equal() -> None:
    a = LMCAISEvent(system_instance_id="x", time_record=T, model_name="m")
    b = LMCAISEvent(system_instance_id="x", time_record=T, model_name="m")
    assert a == b
    assert repr(a).startswith("LMCAISEvent(")
    assert sonde.CustomEvent(system_instance_id="x", time_record=T, name="n", data={"a": 1}).data == {"a": 1}
