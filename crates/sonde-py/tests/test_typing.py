"""The package is typed: mypy --strict accepts the typed example and rejects a
misspelt field and a wrong argument type (so the stubs are what it reads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "typed_example.py"


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args], capture_output=True, text=True)


def test_the_typed_example_passes_mypy_strict() -> None:
    run = mypy(str(EXAMPLE))
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_sees_the_fields(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sonde\n"
        "e = sonde.LMCAISEvent(system_instance_id='a', time_record=sonde.TimeRecord(event_time=1.0))\n"
        "n: int = e.model_nam\n"
        "sonde.TimeRecord(event_time='now')\n"
    )
    run = mypy(str(bad))
    assert run.returncode == 1
    assert '"LMCAISEvent" has no attribute "model_nam"' in run.stdout
    assert 'incompatible type "str"' in run.stdout


def test_the_typed_example_runs(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLE), f"sqlite://{tmp_path / 't.db'}"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "no session no-such-session" in run.stdout
