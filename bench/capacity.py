"""Scenario 2, capacity: connect agents in steps up to 19,000; idle CPU at 10,000, RSS per connection.

The agents send no metrics during the measurement (their sample interval is an hour): what the
hub pays is the socket, its session and the agent's ping every 5 s (the hub pings only an agent
silent for a ping interval and a grace, so a pinging one never). Heartbeat frames come every 300 s
(the hub's default since its pings prove the agent alive), so none falls in the windows, which
start within a minute of the agents' hellos: at 33 a second for 10,000 agents and about 100 us
each (bench/notes.md), they would add about 0.3 % of a core. Idle CPU is measured when 10,000 agents are
held; the steps then go on to 19,000 (the open-files limit here is 20,000), where RSS per
connection is measured.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil

from bench.common import CpuMeter, Scale, fleet_for, median_of, running_hub, wait_for
from monitor_agent.simulator import Fleet

IDLE_INTERVAL = 3600.0
RSS_TARGET_KIB = 30
IDLE_CPU_TARGET = 8.0


def _steps(scale: Scale) -> list[int]:
    small: list[int] = [100, 200, 300]
    full = [2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 18_000, 19_000]
    return list(scale.pick(small, full))


async def _idle_windows(proc: psutil.Process, fleets: list[Fleet], scale: Scale) -> dict[str, Any]:
    """Idle hub CPU over ``scale.runs`` windows, and reconnects meanwhile (there should be none)."""
    window: float = scale.pick(3.0, 15.0)
    await asyncio.sleep(scale.pick(1.0, 10.0))  # let the first keepalive rounds settle
    attempts_before = sum(m.transport.attempts for f in fleets for m in f.members)
    runs = []
    for _ in range(scale.runs):
        meter = CpuMeter(proc)
        meter.start()
        await asyncio.sleep(window)
        runs.append({"idle_cpu_percent": meter.stop()})
    reconnects = sum(m.transport.attempts for f in fleets for m in f.members) - attempts_before
    return {
        "agents": sum(f.connected() for f in fleets),
        "window_seconds": window,
        "runs": runs,
        "reconnects": reconnects,
        "idle_cpu_percent": median_of(runs, "idle_cpu_percent"),
    }


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    steps_wanted = _steps(scale)
    target, idle_at = steps_wanted[-1], scale.pick(200, 10_000)
    async with running_hub(folder) as hub:
        proc = hub.process()
        await asyncio.sleep(1.0)
        rss_empty = proc.memory_info().rss
        fleets: list[Fleet] = []
        tasks: list[asyncio.Task[None]] = []
        steps: list[dict[str, Any]] = []
        idle: dict[str, Any] = {}
        failure = ""
        try:
            before = 0
            for count in steps_wanted:
                fleet = fleet_for(
                    hub,
                    count - before,
                    interval=IDLE_INTERVAL,
                    prefix=f"cap{len(fleets):02d}-",
                    ramp=scale.pick(0.2, (count - before) / 1000),
                )
                before = count
                fleets.append(fleet)
                tasks.append(asyncio.get_running_loop().create_task(fleet.run()))
                try:
                    seconds = await wait_for(
                        lambda want=count: sum(f.connected() for f in fleets) >= want,  # type: ignore[misc]
                        180,
                        f"{count} agents connected",
                    )
                except TimeoutError as exc:
                    failure = str(exc)
                    break
                health = await hub.health()
                steps.append(
                    {
                        "agents": count,
                        "seconds_to_connect_step": round(seconds, 1),
                        "hub_sessions": health["agents_connected"],
                        "hub_rss_mib": round(proc.memory_info().rss / 2**20, 1),
                        "hub_fds": proc.num_fds(),
                    }
                )
                if count == idle_at:
                    idle = await _idle_windows(proc, fleets, scale)
            await asyncio.sleep(scale.pick(1.0, 10.0))
            connected = sum(f.connected() for f in fleets)
            rss_per = round((proc.memory_info().rss - rss_empty) / max(connected, 1) / 1024, 1)
            health = await hub.health()
            all_online = health["agents_connected"] == target and connected == target
        finally:
            for fleet in fleets:
                fleet.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    idle_cpu = idle.get("idle_cpu_percent", float("nan"))
    return {
        "scenario": "capacity",
        "target_agents": target,
        "connected": connected,
        "hub_rss_empty_mib": round(rss_empty / 2**20, 1),
        "steps": steps,
        "failure": failure,
        "idle": idle,
        "idle_cpu_percent": idle_cpu,
        "rss_per_connection_kib": rss_per,
        "all_online": all_online,
        "targets": {
            f"{target:,} agents held, all online": {
                "target": "yes",
                "achieved": all_online,
                "met": all_online,
            },
            f"hub RSS per connection at {connected:,} agents (KiB)": {
                "target": f"<= {RSS_TARGET_KIB}",
                "achieved": rss_per,
                "met": rss_per <= RSS_TARGET_KIB,
            },
            f"idle hub CPU at {idle.get('agents', idle_at):,} agents (% of a core)": {
                "target": f"<= {IDLE_CPU_TARGET:g}",
                "achieved": idle_cpu,
                "met": idle_cpu <= IDLE_CPU_TARGET,
            },
        },
    }
