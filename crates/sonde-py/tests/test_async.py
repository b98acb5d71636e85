"""AsyncSessionTracer: the same operations as coroutines; the event loop goes on while
Sonde works."""

from __future__ import annotations

import asyncio
import time

import pytest

import sonde
from sonde import AsyncSessionTracer, LMCAISEvent, SessionMessageContent, TimeRecord


def llm() -> LMCAISEvent:
    return LMCAISEvent(
        system_instance_id="agent",
        time_record=TimeRecord(event_time=time.time()),
        model_name="gpt-5",
        input_tokens=10,
        output_tokens=2,
    )


def test_async_with_records_a_session(db: str) -> None:
    async def main() -> str:
        tracer = AsyncSessionTracer(db_url=db)
        seen = []
        await tracer.register_hook("timestep_end", lambda c: seen.append(c["step_id"]))
        async with tracer.session(metadata={"mode": "async"}) as session_id:
            async with tracer.timestep("turn-1", turn_number=1):
                event_id = await tracer.record_event(llm())
                await tracer.record_message(SessionMessageContent(text="hi"), "user_prompt")
                await tracer.record_event_reward(event_id, 1.0)
                assert await tracer.current_step_id() == "turn-1"
            await tracer.record_outcome_reward(2.0)
        assert seen == ["turn-1"]
        trace = await tracer.get_session(session_id)
        assert trace is not None
        assert trace.metadata == {"mode": "async"}
        assert len(trace.event_history) == 1 and len(trace.message_history) == 1
        rows = await tracer.query("SELECT count(*) AS n FROM events")
        assert rows == [{"n": 1}]
        assert await tracer.delete_session(session_id)
        return session_id

    asyncio.run(main())


def test_errors_are_raised_by_the_coroutine(db: str) -> None:
    async def main() -> None:
        tracer = AsyncSessionTracer(db_url=db)
        with pytest.raises(sonde.RecordError, match="no active session"):
            await tracer.record_event(llm())
        missing = AsyncSessionTracer(db_url="mysql://nowhere/x")
        with pytest.raises(sonde.OpenError):
            await missing.initialize()

    asyncio.run(main())


def test_the_loop_runs_other_tasks_while_sonde_writes(db: str) -> None:
    async def main() -> None:
        tracer = AsyncSessionTracer(db_url=db)
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await tracer.start_session("busy")
        for _ in range(20_000):
            await tracer.record_event(llm())
        before = ticks
        # Flushing waits for 20,000 records to be written: the loop keeps ticking.
        await tracer.flush()
        during = ticks - before
        stop = True
        await task
        await tracer.end_session()
        assert during > 0, "the event loop was blocked while the records were written"
        trace = await tracer.get_session("busy")
        assert trace is not None and len(trace.event_history) == 20_000

    asyncio.run(main())


def test_postgresql_asynchronously(postgres_url: str) -> None:
    async def main() -> None:
        tracer = AsyncSessionTracer(db_url=postgres_url)
        async with tracer.session(metadata={"backend": "postgres"}) as session_id:
            for _ in range(100):
                await tracer.record_event(llm())
        trace = await tracer.get_session(session_id)
        assert trace is not None and len(trace.event_history) == 100
        assert trace.metadata == {"backend": "postgres"}

    asyncio.run(main())
