"""Scenario 2, capacity: connect agents in steps up to 10,000; hub RSS per connection, idle CPU.

The agents send no metrics during the measurement (their sample interval is an hour): what the
hub pays is the socket, its session, the agent's ping every 5 s and a heartbeat frame every 20 s
(the hub's default since its pings prove the agent alive; the hub pings only an agent silent for a
ping interval and a grace, so a pinging one never).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.common import CpuMeter, Scale, fleet_for, median_of, running_hub, wait_for
from monitor_agent.simulator import Fleet

IDLE_INTERVAL = 3600.0


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    target: int = scale.pick(200, 10_000)
    step: int = scale.pick(100, 2_000)
    window: float = scale.pick(3.0, 15.0)
    async with running_hub(folder) as hub:
        proc = hub.process()
        await asyncio.sleep(1.0)
        rss_empty = proc.memory_info().rss
        fleets: list[Fleet] = []
        tasks: list[asyncio.Task[None]] = []
        steps: list[dict[str, Any]] = []
        failure = ""
        try:
            for count in range(step, target + 1, step):
                fleet = fleet_for(
                    hub,
                    step,
                    interval=IDLE_INTERVAL,
                    prefix=f"cap{count // step:02d}-",
                    ramp=scale.pick(0.2, step / 1000),
                )
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
            connected = sum(f.connected() for f in fleets)
            await asyncio.sleep(scale.pick(1.0, 10.0))  # let the first keepalive rounds settle
            attempts_before = sum(m.transport.attempts for f in fleets for m in f.members)
            runs = []
            for _ in range(scale.runs):
                meter = CpuMeter(proc)
                meter.start()
                await asyncio.sleep(window)
                runs.append(
                    {
                        "idle_cpu_percent": meter.stop(),
                        "rss_per_connection_kib": round(
                            (proc.memory_info().rss - rss_empty) / max(connected, 1) / 1024, 1
                        ),
                    }
                )
            health = await hub.health()
            reconnects = sum(m.transport.attempts for f in fleets for m in f.members) - attempts_before
            all_online = (
                health["agents_connected"] == target
                and sum(f.connected() for f in fleets) == target
                and reconnects == 0
            )
        finally:
            for fleet in fleets:
                fleet.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    rss_per = median_of(runs, "rss_per_connection_kib")
    return {
        "scenario": "capacity",
        "target_agents": target,
        "connected": connected,
        "hub_rss_empty_mib": round(rss_empty / 2**20, 1),
        "steps": steps,
        "failure": failure,
        "window_seconds": window,
        "runs": runs,
        "reconnects_during_idle": reconnects,
        "idle_cpu_percent": median_of(runs, "idle_cpu_percent"),
        "rss_per_connection_kib": rss_per,
        "all_online": all_online,
        "targets": {
            f"{target} agents held, all online": {
                "target": "yes",
                "achieved": all_online,
                "met": all_online,
            },
            "hub RSS per connection (KiB)": {
                "target": "<= 50",
                "achieved": rss_per,
                "met": rss_per <= 50,
            },
        },
    }
