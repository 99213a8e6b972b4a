"""Run the benchmark scenarios: ``python -m bench.run [--quick] [--only NAME ...] [--runs N]``.

The hub is a real ``monitor-server`` process pinned to core 0; this process (the load
generator) pins itself to core 1. Each scenario writes ``bench/results/<name>.json``; a full run
also regenerates ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Scale, cores, pin_load_generator, raise_nofile
from monitor_agent.simulator import quiet_agents, tune_gc

SCENARIOS = (
    "push",
    "capacity",
    "ingest",
    "presence",
    "storm",
    "footprint",
    "decode",
    "revoke",
    "identity",
    "cluster",
    "alerts_ingest",
)
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cpu": model or platform.processor(),
        "logical_cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def run_all(
    names: list[str], scale: Scale, work: Path, out: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    """Run each scenario and write its JSON as soon as it is done (a later failure loses nothing)."""
    done: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        logging.info("bench: %s (%s) ...", name, "quick" if scale.quick else "full")
        result: dict[str, Any] = await module.run(work / name, scale)
        result["seconds"] = round(time.monotonic() - started, 1)
        logging.info("bench: %s done in %.0f s", name, result["seconds"])
        done[name] = result
        (out / f"{name}.json").write_text(json.dumps({"meta": meta, **result}, indent=2) + "\n")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario tiny (CI smoke run)")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--runs", type=int, help="repetitions per figure (default 3; quick 1)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    quiet_agents(logging.CRITICAL)  # a storm makes every virtual agent log; we count instead
    tune_gc()  # the load generator's own GC pauses would otherwise show up as hub latency
    nofile = raise_nofile()
    all_cores = cores()
    pinned = pin_load_generator()
    scale = Scale(quick=args.quick, runs=args.runs or (1 if args.quick else 3))
    names = list(args.only or SCENARIOS)
    out = RESULTS / ("quick" if scale.quick else "full")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "cores": all_cores,
        "open_files_limit": nofile,
        "load_generator_pinned": pinned,
        "command": shlex.join(["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "runs": scale.runs,
        "quick": scale.quick,
    }
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        results = asyncio.run(run_all(names, scale, Path(tmp), out, meta))
    failed = [
        f"{name}: {label}"
        for name, result in results.items()
        for label, t in result.get("targets", {}).items()
        if not t["met"]
    ]
    for line in failed:
        logging.info("bench: target not met: %s", line)
    if not scale.quick and not args.no_report:
        from bench.report import write_report

        write_report(out, ROOT / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
