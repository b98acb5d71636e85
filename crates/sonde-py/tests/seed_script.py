"""A user's script written only against seed 002's model and seed 000's tracer
operations (synth-ai's names): records one session into the database given as argv[1]
and prints its id."""

import sys
import time

from sonde import (
    EnvironmentEvent,
    LMCAISEvent,
    RuntimeEvent,
    SessionEventMarkovBlanketMessage,
    SessionMessageContent,
    SessionTracer,
    TimeRecord,
)

tracer = SessionTracer(db_url=sys.argv[1])
session_id = tracer.start_session(metadata={"experiment_id": "seed-compat", "user_id": "u-1"})
tracer.start_timestep("turn_1", turn_number=1, metadata={"user_feedback": None})
tracer.record_message(
    SessionMessageContent(text="fix the failing test"),
    "user_prompt",
    metadata={"from_system_role": "human", "to_system_role": "agent"},
)
llm_event_id = tracer.record_event(
    LMCAISEvent(
        system_instance_id="agent",
        time_record=TimeRecord(event_time=time.time()),
        model_name="claude-sonnet-4-5",
        provider="anthropic",
        input_tokens=1200,
        output_tokens=300,
        total_tokens=1500,
        cost_usd=0.0081,
        latency_ms=1840.0,
        call_records=[{"request": {"messages": [{"role": "user", "content": "fix it"}]}, "response": {"content": "ok"}}],
    )
)
tracer.record_event(
    RuntimeEvent(system_instance_id="runtime", time_record=TimeRecord(event_time=time.time()), actions=["run_tests"])
)
tracer.record_message(
    SessionEventMarkovBlanketMessage(
        content=SessionMessageContent(json={"exit_code": 0}),
        message_type="result",
        time_record=TimeRecord(event_time=time.time(), message_time=2),
        metadata={"from_system_role": "environment", "to_system_role": "agent"},
    )
)
tracer.record_event(
    EnvironmentEvent(
        system_instance_id="tests",
        time_record=TimeRecord(event_time=time.time()),
        reward=1.0,
        terminated=True,
        system_state_after={"passed": 12},
    )
)
tracer.end_timestep()
tracer.record_event_reward(llm_event_id, 0.5, reward_type="shaped", source="evaluator")
tracer.record_outcome_reward(1.0, achievements_count=1, total_steps=1)
trace = tracer.end_session(True)
assert trace.session_id == session_id
print(session_id)
