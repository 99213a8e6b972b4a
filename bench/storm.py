"""Scenario 5, reconnect storm: N agents connected, hub SIGKILLed and restarted at once.

Time from the kill until every agent is connected again (the agents' own view, and the hub's
``/health`` count), with the agent's full-jitter backoff and with jitter switched off (every
agent retries after exactly the backoff ceiling, in lockstep). File descriptors of the hub are
sampled throughout; "Too many open files" in either process fails the run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import HubProcess, Scale, fleet_for, median_of, running_fleet, wait_for

BACK_WITHIN = 10.0  # seconds from the kill to every agent back online (issue 11; the first wave's was 30)


async def _storm(hub: HubProcess, fleet_count: int, connected: Any) -> dict[str, Any]:
    killed = time.monotonic()
    hub.kill()
    await wait_for(lambda: connected() < fleet_count, 30, "agents notice the kill")
    await hub.start()
    ready = time.monotonic()
    proc = hub.process()
    max_fds = 0

    def all_back() -> bool:
        nonlocal max_fds
        max_fds = max(max_fds, proc.num_fds())
        return bool(connected() == fleet_count)

    await wait_for(all_back, 300, "every agent back online")
    back = time.monotonic()
    sessions = (await hub.health())["agents_connected"]
    return {
        "seconds_from_kill": round(back - killed, 2),
        "seconds_from_hub_ready": round(back - ready, 2),
        "hub_restart_seconds": round(ready - killed, 2),
        "hub_sessions_after": sessions,
        "hub_max_fds": max_fds,
    }


async def _mode(folder: Path, count: int, jitter: bool, scale: Scale) -> dict[str, Any]:
    hub = HubProcess(folder)
    await hub.start()
    try:
        fleet = fleet_for(hub, count, prefix="storm-", jitter=jitter, ramp=scale.pick(0.5, count / 500))
        async with running_fleet(fleet):
            await wait_for(lambda: fleet.connected() == count, 300, f"{count} agents online")
            runs = [await _storm(hub, count, fleet.connected) for _ in range(scale.runs)]
            attempts = sum(m.transport.attempts for m in fleet.members)
    finally:
        hub.stop()
    fd_errors = hub.log_has("Too many open files")
    return {
        "jitter": jitter,
        "runs": runs,
        "connection_attempts_total": attempts,
        "seconds_from_kill": median_of(runs, "seconds_from_kill"),
        "seconds_from_hub_ready": median_of(runs, "seconds_from_hub_ready"),
        "fd_exhaustion": fd_errors,
        "all_back": all(r["hub_sessions_after"] == count for r in runs),
    }


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    count: int = scale.pick(50, 5000)
    jittered = await _mode(folder / "jitter", count, True, scale)
    lockstep = await _mode(folder / "lockstep", count, False, scale)
    worst = jittered["seconds_from_kill"]
    healthy = jittered["all_back"] and not jittered["fd_exhaustion"] and not lockstep["fd_exhaustion"]
    return {
        "scenario": "storm",
        "agents": count,
        "with_jitter": jittered,
        "without_jitter": lockstep,
        "targets": {
            f"{count} agents back online after a hub kill+restart, with jitter (s)": {
                "target": f"<= {BACK_WITHIN:g}",
                "achieved": worst,
                "met": worst <= BACK_WITHIN,
            },
            "no fd exhaustion, no agent stuck offline": {
                "target": "yes",
                "achieved": healthy,
                "met": healthy,
            },
        },
    }
