"""Shared fixtures: a real hub on an unused port with its SQLite file in tmp_path, and an API client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings

from tests.hubs import RunningHub
from tests.pg_leaks import pytest_configure, pytest_terminal_summary, pytest_unconfigure  # noqa: F401 (hooks)

# Locally hypothesis explores new examples every run; CI replays a fixed sequence so a red
# build always means a change, never a newly drawn example (those show up on developers' runs).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

HubFactory = Callable[..., Awaitable[RunningHub]]


@pytest.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start hubs with setting overrides; all are stopped at the end of the test."""
    started: list[RunningHub] = []

    async def make(**overrides: Any) -> RunningHub:
        running = RunningHub(tmp_path / f"hub{len(started)}" / "monitor.db", **overrides)
        await running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        await running.stop()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> RunningHub:
    """A hub with default timings, except a fast keepalive so dead peers are noticed quickly."""
    return await hub_factory(ping_interval=1.0, ping_timeout=1.0)


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``hub`` that sends the token."""
    async with httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": hub.token}) as client:
        yield client
