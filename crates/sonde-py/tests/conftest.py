"""Fixtures: the `sonde` command line built from this repository, a fresh database per
test, and a throwaway PostgreSQL server (as crates/sonde-pgtest starts one)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def sonde_bin() -> Path:
    """The CLI binary: SONDE_BIN, else target/debug/sonde. Missing is a failure."""
    path = Path(os.environ.get("SONDE_BIN", REPO / "target" / "debug" / "sonde"))
    if not path.is_file():
        pytest.fail(f"the sonde binary is not built at {path}: cargo build --bin sonde, or set SONDE_BIN")
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'traces.db'}"


def _pg_bin() -> Path:
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL not found: apt-get install -y postgresql, or set PG_BIN or SONDE_TEST_POSTGRES_URL")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (run as the postgres user when root); stopped after."""
    if os.environ.get("SONDE_TEST_POSTGRES_URL"):
        yield os.environ["SONDE_TEST_POSTGRES_URL"]
        return
    bin_dir = _pg_bin()
    as_postgres = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="sonde-py-pg-"))
    data = folder / "data"

    def run(program: str, *args: str) -> None:
        command = [str(bin_dir / program), *args]
        if as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True)

    if as_postgres:
        os.chmod(folder, 0o755)
        shutil.chown(folder, user="postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
    run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start")
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def now() -> float:
    return time.time()
