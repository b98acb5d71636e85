"""Types of Sonde's native module (built from crates/sonde-py/src)."""

from datetime import datetime
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Union

__version__: str

class SondeError(Exception): ...
class OpenError(SondeError): ...
class DatabaseNotFoundError(OpenError): ...
class RecordError(SondeError): ...
class ReadError(SondeError): ...
class SessionNotFoundError(ReadError): ...
class QueryError(SondeError): ...
class SyncError(SondeError): ...

class TimeRecord:
    event_time: float
    message_time: Optional[int]
    def __init__(self, event_time: float, message_time: Optional[int] = None) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class SessionMessageContent:
    text: Optional[str]
    json: Any
    def __init__(self, text: Optional[str] = None, json: Any = None) -> None: ...
    def as_text(self) -> str: ...
    def has_json(self) -> bool: ...
    def to_dict(self) -> Dict[str, Any]: ...

class SessionEventMarkovBlanketMessage:
    content: SessionMessageContent
    message_type: str
    time_record: TimeRecord
    metadata: Dict[str, Any]
    message_id: Optional[str]
    def __init__(
        self,
        content: Union[SessionMessageContent, str],
        message_type: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class BaseEvent:
    system_instance_id: str
    time_record: TimeRecord
    metadata: Dict[str, Any]
    event_metadata: Optional[List[Any]]
    event_id: Optional[str]
    def __init__(
        self,
        system_instance_id: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
        event_metadata: Optional[List[Any]] = None,
    ) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...

class RuntimeEvent(BaseEvent):
    actions: List[Any]
    tool_name: Optional[str]
    arguments: Any
    result: Any
    duration_ms: Optional[float]
    def __init__(
        self,
        system_instance_id: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
        event_metadata: Optional[List[Any]] = None,
        actions: Optional[List[Any]] = None,
        *,
        tool_name: Optional[str] = None,
        tool_call_id: Optional[str] = None,
        arguments: Any = None,
        result: Any = None,
        error: Optional[str] = None,
        duration_ms: Optional[float] = None,
    ) -> None: ...

class EnvironmentEvent(BaseEvent):
    reward: float
    terminated: bool
    truncated: bool
    system_state_before: Any
    system_state_after: Any
    def __init__(
        self,
        system_instance_id: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
        event_metadata: Optional[List[Any]] = None,
        reward: float = 0.0,
        terminated: bool = False,
        truncated: bool = False,
        system_state_before: Any = None,
        system_state_after: Any = None,
    ) -> None: ...

class LMCAISEvent(BaseEvent):
    model_name: str
    provider: Optional[str]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Optional[float]
    latency_ms: Optional[float]
    span_id: Optional[str]
    trace_id: Optional[str]
    system_state_before: Any
    system_state_after: Any
    call_records: List[Dict[str, Any]]
    def __init__(
        self,
        system_instance_id: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
        event_metadata: Optional[List[Any]] = None,
        model_name: str = "",
        provider: Optional[str] = None,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
        total_tokens: Optional[int] = None,
        cost_usd: Optional[float] = None,
        latency_ms: Optional[float] = None,
        span_id: Optional[str] = None,
        trace_id: Optional[str] = None,
        system_state_before: Any = None,
        system_state_after: Any = None,
        call_records: Optional[List[Any]] = None,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None: ...

class CustomEvent(BaseEvent):
    name: str
    data: Any
    def __init__(
        self,
        system_instance_id: str,
        time_record: TimeRecord,
        metadata: Optional[Dict[str, Any]] = None,
        event_metadata: Optional[List[Any]] = None,
        name: str = "",
        data: Any = None,
    ) -> None: ...

class SessionTimeStep:
    step_id: str
    step_index: int
    timestamp: datetime
    turn_number: Optional[int]
    events: List[BaseEvent]
    step_messages: List[SessionEventMarkovBlanketMessage]
    step_metadata: Dict[str, Any]
    completed_at: Optional[datetime]
    def to_dict(self) -> Dict[str, Any]: ...

class SessionTrace:
    session_id: str
    created_at: datetime
    session_time_steps: List[SessionTimeStep]
    event_history: List[BaseEvent]
    message_history: List[SessionEventMarkovBlanketMessage]
    metadata: Dict[str, Any]
    session_metadata: List[Any]
    outcome_rewards: List[Dict[str, Any]]
    event_rewards: List[Dict[str, Any]]
    def to_records(self) -> List[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]: ...

Hook = Callable[[Dict[str, Any]], Any]
Content = Union[SessionMessageContent, SessionEventMarkovBlanketMessage, str]

class SessionTracer:
    db_url: str
    def __init__(
        self, db_url: Optional[str] = None, *, jsonl: Optional[str] = None, auto_save: bool = True
    ) -> None: ...
    def initialize(self) -> None: ...
    def start_session(
        self, session_id: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None
    ) -> str: ...
    def end_session(self, save: bool = True) -> SessionTrace: ...
    def start_timestep(
        self,
        step_id: str,
        turn_number: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None: ...
    def end_timestep(self) -> None: ...
    def record_event(self, event: BaseEvent) -> str: ...
    def record_message(
        self,
        content: Content,
        message_type: Optional[str] = None,
        event_time: Optional[float] = None,
        message_time: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> str: ...
    def record_outcome_reward(
        self,
        total_reward: float,
        *,
        objective_key: Optional[str] = None,
        achievements: Optional[List[str]] = None,
        achievements_count: Optional[int] = None,
        total_steps: Optional[int] = None,
        reward_metadata: Optional[Dict[str, Any]] = None,
        annotation: Any = None,
    ) -> str: ...
    def record_event_reward(
        self,
        event_id: str,
        reward_value: float,
        *,
        reward_type: Optional[str] = None,
        key: Optional[str] = None,
        annotation: Any = None,
        source: Optional[str] = None,
    ) -> str: ...
    def get_session(self, session_id: str) -> Optional[SessionTrace]: ...
    def delete_session(self, session_id: str) -> bool: ...
    def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> List[Dict[str, Any]]: ...
    def flush(self) -> None: ...
    def current_ids(self) -> Tuple[Optional[str], Optional[str]]: ...
    def register_hook(self, event: str, callback: Hook, priority: int = 0) -> None: ...

class AsyncTracerCore:
    db_url: str
    def __init__(
        self, db_url: Optional[str] = None, *, jsonl: Optional[str] = None, auto_save: bool = True
    ) -> None: ...
    def initialize(self) -> Awaitable[None]: ...
    def start_session(self, session_id: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None) -> Awaitable[Any]: ...
    def end_session(self, save: bool = True) -> Awaitable[Any]: ...
    def start_timestep(self, step_id: str, turn_number: Optional[int] = None, metadata: Optional[Dict[str, Any]] = None) -> Awaitable[None]: ...
    def end_timestep(self) -> Awaitable[None]: ...
    def record_event(self, event: BaseEvent) -> Awaitable[Any]: ...
    def record_message(self, content: Content, message_type: Optional[str] = None, event_time: Optional[float] = None, message_time: Optional[int] = None, metadata: Optional[Dict[str, Any]] = None) -> Awaitable[Any]: ...
    def record_outcome_reward(self, total_reward: float, **kwargs: Any) -> Awaitable[Any]: ...
    def record_event_reward(self, event_id: str, reward_value: float, **kwargs: Any) -> Awaitable[Any]: ...
    def get_session(self, session_id: str) -> Awaitable[Any]: ...
    def delete_session(self, session_id: str) -> Awaitable[Any]: ...
    def query(self, sql: str, params: Optional[Sequence[Any]] = None) -> Awaitable[Any]: ...
    def flush(self) -> Awaitable[None]: ...
    def current_ids(self) -> Awaitable[Any]: ...
    def register_hook(self, event: str, callback: Hook, priority: int = 0) -> Awaitable[None]: ...

def load_session(db: str, session_id: str) -> SessionTrace: ...
def sessions(
    db: str,
    *,
    limit: int = 50,
    since: Union[datetime, float, str, None] = None,
    until: Union[datetime, float, str, None] = None,
    model: Optional[str] = None,
    provider: Optional[str] = None,
    search: Optional[str] = None,
    has_errors: bool = False,
    metadata: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]: ...
def stats(
    db: str,
    report: str = "summary",
    *,
    since: Union[datetime, float, str, None] = None,
    until: Union[datetime, float, str, None] = None,
    model: Optional[str] = None,
    provider: Optional[str] = None,
    session_id: Optional[str] = None,
    group_by: Optional[str] = None,
    bucket: str = "day",
) -> Any: ...
def sync(
    agent: str = "all",
    *,
    db: Optional[str] = None,
    paths: Optional[List[str]] = None,
    dry_run: bool = False,
) -> Any: ...
def flush_all() -> None: ...
def _record_in_rust(tracer: SessionTracer, event: BaseEvent, n: int) -> float: ...
