"""Benchmark: what recording from Python costs.

1. The caller's cost of `SessionTracer.record_event(LMCAISEvent)` (the event built
   beforehand, and built in the loop), per call; goal < 5 µs.
2. 100,000 events from Python into SQLite, from the first record_event to the session
   written (`end_session(True)`); goal < 2 s.

Baselines measured in the same run: the same tracer recording the same event from Rust
alone (`sonde._native._record_in_rust`: no Python call per record); appending the event to a Python list; the least a
pure-Python recorder does per event on the caller's thread (a `uuid4` id, `time.time()`,
a dict appended to a list); and a pure-Python recorder writing the seed's `to_dict()`
JSON of each event with the standard library's sqlite3 in one transaction.

    python crates/sonde-py/bench/record.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, List

import sonde
from sonde import LMCAISEvent, SessionTracer, TimeRecord


def event(i: int) -> LMCAISEvent:
    return LMCAISEvent(
        system_instance_id="agent",
        time_record=TimeRecord(event_time=time.time()),
        model_name="claude-sonnet-4-5",
        provider="anthropic",
        input_tokens=1200 + i % 7,
        output_tokens=300,
        cost_usd=0.0081,
        latency_ms=1840.0,
    )


def best_per_call(run: Callable[[], float], repeats: int = 5) -> float:
    return min(run() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    n = parser.parse_args().events
    folder = tempfile.mkdtemp(prefix="sonde-py-bench-")
    events = [event(i) for i in range(n)]

    # 1. Caller's cost per call (best of 5 rounds of n calls).
    sink: List[LMCAISEvent] = []

    def baseline_append() -> float:
        sink.clear()
        start = time.perf_counter()
        for e in events:
            sink.append(e)
        return (time.perf_counter() - start) / n

    kept: List[Dict[str, Any]] = []

    def baseline_python_recorder() -> float:
        kept.clear()
        start = time.perf_counter()
        for e in events:
            kept.append({"id": str(uuid.uuid4()), "timestamp": time.time(), "event": e})
        return (time.perf_counter() - start) / n

    rounds = 0

    def sonde_record() -> float:
        nonlocal rounds
        rounds += 1
        tracer = SessionTracer(db_url=f"sqlite://{folder}/calls-{rounds}.db")
        tracer.start_session()
        record = tracer.record_event
        start = time.perf_counter()
        for e in events:
            record(e)
        per_call = (time.perf_counter() - start) / n
        tracer.end_session(True)
        return per_call

    def rust_record() -> float:
        nonlocal rounds
        rounds += 1
        tracer = SessionTracer(db_url=f"sqlite://{folder}/rust-{rounds}.db")
        tracer.start_session()
        per_call = sonde._native._record_in_rust(tracer, events[0], n)
        tracer.end_session(True)
        return per_call

    def sonde_build_and_record() -> float:
        nonlocal rounds
        rounds += 1
        tracer = SessionTracer(db_url=f"sqlite://{folder}/build-{rounds}.db")
        tracer.start_session()
        record = tracer.record_event
        start = time.perf_counter()
        for i in range(n):
            record(event(i))
        per_call = (time.perf_counter() - start) / n
        tracer.end_session(True)
        return per_call

    append = best_per_call(baseline_append)
    python_recorder = best_per_call(baseline_python_recorder)
    record = best_per_call(sonde_record)
    rust = best_per_call(rust_record)
    build = best_per_call(sonde_build_and_record, repeats=3)

    # 2. n events into SQLite, until written.
    def sonde_to_sqlite() -> float:
        nonlocal rounds
        rounds += 1
        tracer = SessionTracer(db_url=f"sqlite://{folder}/bulk-{rounds}.db")
        start = time.perf_counter()
        tracer.start_session()
        for e in events:
            tracer.record_event(e)
        tracer.end_session(True)
        return time.perf_counter() - start

    def python_sqlite3() -> float:
        nonlocal rounds
        rounds += 1
        db = sqlite3.connect(f"{folder}/stdlib-{rounds}.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, session_id TEXT, event_time REAL, data TEXT)")
        start = time.perf_counter()
        with db:
            db.executemany(
                "INSERT INTO events (session_id, event_time, data) VALUES (?, ?, ?)",
                (("s", e.time_record.event_time, json.dumps(e.to_dict())) for e in events),
            )
        elapsed = time.perf_counter() - start
        db.close()
        return elapsed

    bulk = min(sonde_to_sqlite() for _ in range(3))
    stdlib = min(python_sqlite3() for _ in range(3))

    load = os.getloadavg()[0]
    print(f"sonde {sonde.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs (load average {load:.1f}), {n:,} LMCAISEvents")
    print("caller's cost per call (best of rounds):")
    print(f"  baseline: list.append(event)                {append * 1e6:8.3f} µs")
    print(f"  baseline: uuid4 + time() + dict + append     {python_recorder * 1e6:8.3f} µs")
    print(f"  SessionTracer.record_event(event)           {record * 1e6:8.3f} µs  ({record / python_recorder:.2f}x the pure-Python recorder; goal < 5 µs)")
    print(f"  baseline: the same tracer driven from Rust   {rust * 1e6:8.3f} µs  (record_event from Python: {record / rust:.2f}x)")
    print(f"  LMCAISEvent(...) + record_event             {build * 1e6:8.3f} µs")
    print(f"{n:,} events to SQLite, until written:")
    print(f"  baseline: stdlib sqlite3, to_dict() JSON     {stdlib:8.3f} s")
    print(f"  SessionTracer -> Sonde's SQLite store       {bulk:8.3f} s  ({bulk / stdlib:.2f}x the baseline; goal < 2 s)")


if __name__ == "__main__":
    main()
