"""Real PostgreSQL for the tests: one fresh schema per test, dropped afterwards.

``MONITOR_TEST_PG`` names the server (default: the CI one on 127.0.0.1). A server that cannot be
reached fails the test, never skips it: CI must not pass without having run the PostgreSQL half.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

PG_URL = os.environ.get("MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (asyncpg sends unknown parameters as settings)."""
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A new empty schema ``t_<hex>``; yields a URL that uses it, drops it (CASCADE) at the end."""
    schema = f"t_{secrets.token_hex(8)}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(f"PostgreSQL at {PG_URL} is needed for this test: {exc}") from exc
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(PG_URL, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL to a fresh, empty schema on the test server (fails if there is no server)."""
    async with pg_schema() as url:
        yield url
