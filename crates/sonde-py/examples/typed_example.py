"""A typed use of the `sonde` package: `mypy --strict` checks it against the package's
stubs (crates/sonde-py/tests/test_typing.py runs it).

    python examples/typed_example.py sqlite:///tmp/typed.db
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Dict, List, Optional

import sonde
from sonde import (
    AsyncSessionTracer,
    LMCAISEvent,
    SessionMessageContent,
    SessionTimeStep,
    SessionTrace,
    SessionTracer,
    TimeRecord,
)


def call(model: str, input_tokens: int, output_tokens: int) -> LMCAISEvent:
    return LMCAISEvent(
        system_instance_id="agent",
        time_record=TimeRecord(event_time=time.time()),
        model_name=model,
        provider="anthropic",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=4000,
    )


def record(db: str) -> str:
    tracer = SessionTracer(db_url=db)
    with tracer.session(metadata={"experiment_id": "typed"}) as session_id:
        with tracer.timestep("turn-1", turn_number=1):
            event_id: str = tracer.record_event(call("claude-sonnet-4-5", 1200, 300))
            tracer.record_message(SessionMessageContent(text="hello"), "user_prompt")
            tracer.record_event_reward(event_id, 1.0, source="judge")
    return session_id


async def record_async(db: str) -> Optional[SessionTrace]:
    tracer = AsyncSessionTracer(db_url=db)
    async with tracer.session() as session_id:
        async with tracer.timestep("turn-1"):
            await tracer.record_event(call("claude-haiku-4-5", 10, 2))
    return await tracer.get_session(session_id)


def main(db: str) -> None:
    session_id = record(db)
    trace: SessionTrace = sonde.load_session(db, session_id)
    steps: List[SessionTimeStep] = trace.session_time_steps
    first = trace.event_history[0]
    total: int = first.total_tokens if isinstance(first, LMCAISEvent) else 0
    shape: Dict[str, object] = trace.to_dict()
    print(session_id, len(steps), total, sorted(shape))
    later = asyncio.run(record_async(db))
    print(later.session_id if later else None)
    try:
        sonde.load_session(db, "no-such-session")
    except sonde.SessionNotFoundError as error:
        print(error)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///tmp/sonde-typed.db")
