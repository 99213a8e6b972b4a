"""Scenario 6, agent footprint: one real ``monitor-agent run`` at the default 5 s interval.

Reuses ``bench/agent_footprint.py`` (the agent's own footprint script: its own throwaway hub,
VmRSS and utime+stime from /proc once a second), run on the load core, once per run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import LOAD_CORE, Scale, median_of, taskset

SCRIPT = Path(__file__).resolve().parent / "agent_footprint.py"


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    window: float = scale.pick(3.0, 60.0)
    warmup: float = scale.pick(1.0, 10.0)
    runs = []
    for _ in range(scale.runs):
        proc = await asyncio.create_subprocess_exec(
            *taskset(LOAD_CORE),
            sys.executable,
            str(SCRIPT),
            "--duration",
            str(window),
            "--warmup",
            str(warmup),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"agent_footprint.py failed with {proc.returncode}")
        runs.append(json.loads(out))
    rss = median_of(runs, "rss_mb_max")
    cpu = median_of(runs, "cpu_percent_of_one_core")
    return {
        "scenario": "footprint",
        "interval_seconds": 5.0,
        "window_seconds": window,
        "runs": runs,
        "rss_mib": rss,
        "cpu_percent": cpu,
        "targets": {
            "agent RSS (VmRSS max in window, MiB)": {
                "target": "<= 30 MB",
                "achieved": rss,
                "met": rss * 2**20 <= 30e6,
            },
            "agent CPU (% of one core)": {"target": "<= 0.5", "achieved": cpu, "met": cpu <= 0.5},
        },
    }
