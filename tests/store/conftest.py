"""Every store test runs on both backends: a SQLite file in tmp_path and a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor_server.store import Store, open_store
from tests.pg import pg_schema, pg_url  # noqa: F401 (a fixture for the PostgreSQL-only tests)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend, closed after the test."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / "monitor.db")
        await opened.open()
        yield opened
        await opened.close()
        return
    async with pg_schema() as url:
        opened = open_store(url)
        await opened.open()
        yield opened
        await opened.close()
