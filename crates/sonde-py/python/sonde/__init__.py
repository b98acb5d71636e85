"""Sonde for Python: record, store and analyse the traces of LLM agents.

Seed 002's event model (``TimeRecord``, ``SessionMessageContent``,
``SessionEventMarkovBlanketMessage``, ``BaseEvent``, ``RuntimeEvent``,
``EnvironmentEvent``, ``LMCAISEvent``, ``SessionTimeStep``, ``SessionTrace``), a
``SessionTracer`` with seed 000's operations (blocking) and ``AsyncSessionTracer``
(the same names as coroutines), and read helpers (``load_session``, ``sessions``,
``stats``, ``sync``). The work is done by Sonde's Rust core (``sonde._native``): records
go through Sonde's tracer to a SQLite file, PostgreSQL or a JSONL file, and are the
same records the ``sonde`` command line writes and shows.

    import time, sonde
    tracer = sonde.SessionTracer(db_url="sqlite://traces.db")
    with tracer.session(metadata={"experiment": "demo"}) as session_id:
        with tracer.timestep("turn-1", turn_number=1):
            tracer.record_event(sonde.LMCAISEvent(
                system_instance_id="agent", time_record=sonde.TimeRecord(event_time=time.time()),
                model_name="gpt-5", provider="openai", input_tokens=900, output_tokens=120))
    print(sonde.load_session("sqlite://traces.db", session_id).to_dict())
"""

from __future__ import annotations

import atexit
import contextlib
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Sequence, Union

from . import _native
from ._native import (
    AsyncTracerCore as _AsyncTracerCore,
    BaseEvent,
    CustomEvent,
    DatabaseNotFoundError,
    EnvironmentEvent,
    LMCAISEvent,
    OpenError,
    QueryError,
    ReadError,
    RecordError,
    RuntimeEvent,
    SessionEventMarkovBlanketMessage,
    SessionMessageContent,
    SessionNotFoundError,
    SessionTimeStep,
    SessionTrace,
    SondeError,
    SyncError,
    TimeRecord,
    load_session,
    sessions,
    stats,
    sync,
)

__version__: str = _native.__version__

__all__ = [
    "AsyncSessionTracer",
    "BaseEvent",
    "CustomEvent",
    "DatabaseNotFoundError",
    "EnvironmentEvent",
    "LMCAISEvent",
    "OpenError",
    "QueryError",
    "ReadError",
    "RecordError",
    "RuntimeEvent",
    "SessionEventMarkovBlanketMessage",
    "SessionMessageContent",
    "SessionNotFoundError",
    "SessionTimeStep",
    "SessionTrace",
    "SessionTracer",
    "SondeError",
    "SyncError",
    "TimeRecord",
    "load_session",
    "sessions",
    "stats",
    "sync",
]

Json = Any
Hook = Callable[[Dict[str, Any]], Any]

# Records still queued when the interpreter exits are written first.
atexit.register(_native.flush_all)


class SessionTracer(_native.SessionTracer):
    """Records sessions → timesteps → events, messages and rewards (seed 000's API).

    ``SessionTracer(db_url=URL)`` opens (creating it) the database ``URL`` names, as the
    CLI's ``--db`` takes it: ``sqlite://PATH`` or a bare path, ``postgres://...``; a path
    ending in ``.jsonl`` (or ``jsonl://PATH``) writes JSONL records instead. ``jsonl=PATH``
    writes them there too. Every call blocks until done, with the GIL released.
    """

    @property
    def current_session_id(self) -> Optional[str]:
        """The active session's id, if one is active."""
        return self.current_ids()[0]

    @property
    def current_step_id(self) -> Optional[str]:
        """The open timestep's id, if one is open."""
        return self.current_ids()[1]

    @contextlib.contextmanager
    def session(
        self,
        session_id: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        save: bool = True,
    ) -> Iterator[str]:
        """``with tracer.session(metadata=...) as session_id:`` starts a session and ends
        it (saved) when the block ends, even by an exception."""
        sid = self.start_session(session_id, metadata)
        try:
            yield sid
        finally:
            self.end_session(save)

    @contextlib.contextmanager
    def timestep(
        self,
        step_id: str,
        turn_number: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> Iterator[str]:
        """``with tracer.timestep("turn-1"):`` starts a timestep and ends it."""
        self.start_timestep(step_id, turn_number, metadata)
        try:
            yield step_id
        finally:
            self.end_timestep()

    def close(self) -> None:
        """Writes what is queued."""
        self.flush()

    def __enter__(self) -> "SessionTracer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSessionTracer:
    """``SessionTracer``'s operations as coroutines, for asyncio code (the ``OpenAI`` /
    ``AsyncOpenAI`` convention). The store is opened by the first operation (or
    ``await tracer.initialize()``) on Sonde's own threads; no call blocks the loop.
    """

    def __init__(
        self,
        db_url: Optional[str] = None,
        *,
        jsonl: Optional[str] = None,
        auto_save: bool = True,
    ) -> None:
        self._core = _AsyncTracerCore(db_url, jsonl=jsonl, auto_save=auto_save)

    @property
    def db_url(self) -> str:
        """The database URL (password hidden) or ``jsonl://PATH`` records go to."""
        return self._core.db_url

    async def initialize(self) -> None:
        """Opens the store now."""
        await self._core.initialize()

    async def start_session(
        self, session_id: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None
    ) -> str:
        """Starts the tracer's session; returns its id."""
        return await self._core.start_session(session_id, metadata)  # type: ignore[no-any-return]

    async def end_session(self, save: bool = True) -> SessionTrace:
        """Ends the session (and its open timestep); with ``save``, waits until written."""
        return await self._core.end_session(save)  # type: ignore[no-any-return]

    async def start_timestep(
        self,
        step_id: str,
        turn_number: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Starts a timestep, ending the open one."""
        await self._core.start_timestep(step_id, turn_number, metadata)

    async def end_timestep(self) -> None:
        """Ends the open timestep."""
        await self._core.end_timestep()

    async def record_event(self, event: BaseEvent) -> str:
        """Records an event in the current session and timestep; returns its id."""
        return await self._core.record_event(event)  # type: ignore[no-any-return]

    async def record_message(
        self,
        content: Union[SessionMessageContent, SessionEventMarkovBlanketMessage, str],
        message_type: Optional[str] = None,
        event_time: Optional[float] = None,
        message_time: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> str:
        """Records a message; returns its id."""
        return await self._core.record_message(  # type: ignore[no-any-return]
            content, message_type, event_time, message_time, metadata
        )

    async def record_outcome_reward(
        self,
        total_reward: float,
        *,
        objective_key: Optional[str] = None,
        achievements: Optional[List[str]] = None,
        achievements_count: Optional[int] = None,
        total_steps: Optional[int] = None,
        reward_metadata: Optional[Dict[str, Any]] = None,
        annotation: Any = None,
    ) -> str:
        """Records a session-level reward; returns its id."""
        return await self._core.record_outcome_reward(  # type: ignore[no-any-return]
            total_reward,
            objective_key=objective_key,
            achievements=achievements,
            achievements_count=achievements_count,
            total_steps=total_steps,
            reward_metadata=reward_metadata,
            annotation=annotation,
        )

    async def record_event_reward(
        self,
        event_id: str,
        reward_value: float,
        *,
        reward_type: Optional[str] = None,
        key: Optional[str] = None,
        annotation: Any = None,
        source: Optional[str] = None,
    ) -> str:
        """Records a reward on event ``event_id``; returns the reward's id."""
        return await self._core.record_event_reward(  # type: ignore[no-any-return]
            event_id, reward_value, reward_type=reward_type, key=key, annotation=annotation, source=source
        )

    async def get_session(self, session_id: str) -> Optional[SessionTrace]:
        """The whole session from the store (after writing what is pending)."""
        return await self._core.get_session(session_id)  # type: ignore[no-any-return]

    async def delete_session(self, session_id: str) -> bool:
        """Deletes a session; False if there was none."""
        return await self._core.delete_session(session_id)  # type: ignore[no-any-return]

    async def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]:
        """Runs read-only SQL on the store; rows as dicts."""
        return await self._core.query(sql, params)  # type: ignore[no-any-return]

    async def flush(self) -> None:
        """Waits until everything recorded is written."""
        await self._core.flush()

    async def current_session_id(self) -> Optional[str]:
        """The active session's id, if one is active."""
        ids = await self._core.current_ids()
        return ids[0]  # type: ignore[no-any-return]

    async def current_step_id(self) -> Optional[str]:
        """The open timestep's id, if one is open."""
        ids = await self._core.current_ids()
        return ids[1]  # type: ignore[no-any-return]

    async def register_hook(self, event: str, callback: Hook, priority: int = 0) -> None:
        """Runs ``callback(context)`` when ``event`` happens (``session_start``,
        ``session_end``, ``timestep_start``, ``timestep_end``, ``event_recorded``,
        ``message_recorded``); higher priorities first."""
        await self._core.register_hook(event, callback, priority)

    @contextlib.asynccontextmanager
    async def session(
        self,
        session_id: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        save: bool = True,
    ) -> AsyncIterator[str]:
        """``async with tracer.session(metadata=...) as session_id:``"""
        sid = await self.start_session(session_id, metadata)
        try:
            yield sid
        finally:
            await self.end_session(save)

    @contextlib.asynccontextmanager
    async def timestep(
        self,
        step_id: str,
        turn_number: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> AsyncIterator[str]:
        """``async with tracer.timestep("turn-1"):``"""
        await self.start_timestep(step_id, turn_number, metadata)
        try:
            yield step_id
        finally:
            await self.end_timestep()

    async def close(self) -> None:
        """Writes what is queued."""
        await self.flush()

    async def __aenter__(self) -> "AsyncSessionTracer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
