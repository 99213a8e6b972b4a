"""``tests/pg_leaks.py``: a PostgreSQL socket collected unclosed is listed with where it was opened;
any other socket collected unclosed still fails its test (a real pytest run in a subprocess)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_LEAKS = """
import gc
import os
import socket

import asyncpg

from tests.pg import PG_URL


async def test_leaks_a_postgresql_socket() -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        copy = socket.socket(fileno=os.dup(conn._transport.get_extra_info("socket").fileno()))
    finally:
        await conn.close()
    del copy
    gc.collect()


def test_leaks_another_socket() -> None:
    plain = socket.socket()
    del plain
    gc.collect()
"""


@pytest.mark.postgres
def test_a_postgresql_socket_is_listed_and_any_other_fails(tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(_LEAKS)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.pg_leaks",
            "-p",
            "no:cacheprovider",
            "-o",
            "filterwarnings=error",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--rootdir",
            str(tmp_path),
            "-rA",
            str(tmp_path / "test_leaks.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert re.search(r"PASSED \S*test_leaks\.py::test_leaks_a_postgresql_socket", out), out
    assert re.search(r"FAILED \S*test_leaks\.py::test_leaks_another_socket", out), out
    listed = out.split("PostgreSQL sockets collected unclosed", 1)[1]
    assert "raddr=('127.0.0.1', 5432)" in listed and "test_leaks.py" in listed, out
