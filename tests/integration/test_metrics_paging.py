"""``/devices/{id}/metrics?limit=`` says when it truncated the range and how to page back."""

from __future__ import annotations

from typing import Any

import httpx

T0 = 1_700_000_000


async def _ingest(api: httpx.AsyncClient, device: str, count: int) -> None:
    for i in range(count):
        sample = {"device_id": device, "cpu": float(i), "ram": 1.0, "disk": 2.0, "ts": T0 + i}
        assert (await api.post("/ingest", json=sample)).status_code == 200


async def _pages(api: httpx.AsyncClient, device: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of the range, following ``next_until`` until an answer is not truncated."""
    pages = [(await api.get(f"/devices/{device}/metrics", params=params)).json()]
    while pages[-1]["truncated"]:
        params["until"] = pages[-1]["next_until"]
        pages.append((await api.get(f"/devices/{device}/metrics", params=params)).json())
        assert len(pages) < 20
    return pages


async def test_limit_reports_truncation_and_pages_back(api: httpx.AsyncClient) -> None:
    """7 samples with limit 3: the newest 3 oldest first, truncated, and next_until reaches all 7."""
    await _ingest(api, "pg1", 7)
    pages = await _pages(api, "pg1", limit=3)
    assert [[s["cpu"] for s in p["samples"]] for p in pages] == [[4.0, 5.0, 6.0], [1.0, 2.0, 3.0], [0.0]]
    assert [p["truncated"] for p in pages] == [True, True, False]
    assert pages[-1]["next_until"] is None
    exact = (await api.get("/devices/pg1/metrics", params={"limit": 7})).json()
    assert exact["truncated"] is False and len(exact["samples"]) == 7


async def test_limit_on_buckets_pages_whole_buckets(api: httpx.AsyncClient) -> None:
    """Averages over 2 s buckets, limit 2: pages hold whole buckets and together cover the range once."""
    await _ingest(api, "pg2", 7)  # buckets {0,1} {2,3} {4,5} {6}
    pages = await _pages(api, "pg2", limit=2, step=2)
    averages = [[s["cpu"] for s in p["samples"]] for p in pages]
    assert averages == [[4.5, 6.0], [0.5, 2.5]]
    assert [p["truncated"] for p in pages] == [True, False]
