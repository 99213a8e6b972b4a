"""Scenario 7, frame decoding: agent frames per second through the hub's decode path, no socket.

    taskset -c 1 .venv/bin/python -m bench.decode                 # this checkout, median of 5 runs
    taskset -c 1 .venv/bin/python -m bench.decode --code /tmp/old # another checkout (a before figure)

Measures ``protocol.codec.decode_agent_frame`` (what ``HubSession.receive`` calls for every
message) on (a) single ``metrics`` frames of a realistic agent sample, every field the collector
sends (``monitor_agent/collector.py``, plus ``ts``, ``spool_dropped`` and ``seq``), and (b)
``metrics_batch`` frames of 500 such samples, as an agent replaying its spool sends. A third
figure, the same sample without the two fields the protocol does not name (``agent_rss``,
``agent_cpu_sec``), shows the cost of keeping unnamed fields.

Rates are per second of this process's CPU time, medians of ``--runs`` passes (the wall-clock
median is printed beside them). Works with the msgspec frames and with the pydantic frames they
replaced (commit e6af45d), so the same script gives both figures. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.common import Scale

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
UNNAMED = ("agent_rss", "agent_cpu_sec")  # sent by the collector, not named by protocol v1
Decode = Callable[[str], Any]


def agent_sample(rng: random.Random, ts: float) -> dict[str, Any]:
    """One sample as ``Collector.sample()`` and ``Agent`` build it on a physical Linux host."""
    mem_total, swap_total, disk_total = 16 * 2**30, 2 * 2**30, 500 * 10**9
    mem_used = rng.randrange(2 * 2**30, 12 * 2**30)
    disk_used = rng.randrange(100 * 10**9, 400 * 10**9)
    return {
        "hostname": "web-07.example.net",
        "agent_version": "0.1.0",
        "uptime_sec": rng.randrange(10**5, 10**7),
        "cpu": round(rng.uniform(0, 100), 1),
        "ram": round(100 * mem_used / mem_total, 1),
        "mem_used": mem_used,
        "mem_total": mem_total,
        "swap_used": rng.randrange(0, 2**28),
        "swap_total": swap_total,
        "disk": round(100 * disk_used / disk_total, 1),
        "disk_used": disk_used,
        "disk_total": disk_total,
        "disk_read_bps": rng.uniform(0, 5e7),
        "disk_write_bps": rng.uniform(0, 5e7),
        "net_rx_bps": rng.uniform(0, 1e8),
        "net_tx_bps": rng.uniform(0, 1e8),
        "load_1": rng.uniform(0, 8),
        "load_5": rng.uniform(0, 8),
        "load_15": rng.uniform(0, 8),
        "procs": rng.randrange(150, 600),
        "temp_max": round(rng.uniform(35, 85), 1),
        "agent_rss": rng.randrange(18 * 2**20, 26 * 2**20),
        "agent_cpu_sec": round(rng.uniform(1, 500), 3),
        "status": "ok",
        "last_error": "",
        "ts": ts,
        "spool_dropped": 0,
    }


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def workload(frames: int, batches: int, numbered: bool) -> dict[str, list[str]]:
    """Distinct frames of each kind (values vary, as they do on the wire), fixed seed.

    ``numbered``: frames carry ``seq``, as agents that ask for ``stored`` acks send them (the
    protocol before ``stored`` had no ``seq`` and refuses it in a batch).
    """
    rng = random.Random(7)
    start = 1_760_000_000.0
    singles, named_only, batch_frames = [], [], []
    for seq in range(1, frames + 1):
        sample = agent_sample(rng, start + 5 * seq)
        number = {"seq": seq} if numbered else {}
        singles.append(compact({**sample, "type": "metrics", **number}))
        named = {k: v for k, v in sample.items() if k not in UNNAMED}
        named_only.append(compact({**named, "type": "metrics", **number}))
    for index in range(batches):
        samples = [agent_sample(rng, start + 5 * (index * BATCH + i)) for i in range(BATCH)]
        number = {"seq": 1 + index * BATCH} if numbered else {}
        batch_frames.append(compact({"type": "metrics_batch", **number, "samples": samples}))
    return {"metrics": singles, "metrics_named_only": named_only, "metrics_batch": batch_frames}


def samples_in(result: Any) -> int:
    """How many valid samples a decoded frame holds, for either generation of the protocol."""
    kind = type(result).__name__
    if kind == "Samples":  # msgspec frames: everything the hub stores comes back as Samples
        assert not result.refused, result.refused
        return len(result.valid)
    if kind == "MetricsBatch":  # pydantic frames
        return len(result.samples)
    assert kind == "Metrics", kind
    return 1


def load_decoder(code: Path | None) -> tuple[Decode, dict[str, Any]]:
    """The hub's decode function from this checkout, or from ``code`` (another checkout)."""
    if code is not None:
        sys.path.insert(0, str(code.resolve()))
    codec = importlib.import_module("protocol.codec")
    frames = importlib.import_module("protocol.frames")
    bases = {cls.__module__.split(".")[0] for cls in frames.SampleFields.__mro__}
    if "pydantic" in bases:
        library = "pydantic"
    elif "msgspec" in bases or hasattr(codec, "struct_of"):  # structs, or generated from dataclasses
        library = "msgspec"
    else:
        library = "unknown"
    decode: Decode = codec.decode_agent_frame
    about = {
        "frames_library": library,
        "protocol_path": str(Path(str(codec.__file__)).parent),
        "numbered": hasattr(frames, "Stored"),  # this protocol has ``seq`` and ``stored``
    }
    return decode, about


def frames_per_second(decode: Decode, frames: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Per run, every frame decoded once: frames per second of this process's CPU time, and of wall time.

    CPU time is the figure: on a shared machine another process on the same core stretches the
    wall time of a pass but not the CPU time the decoding itself took.
    """
    cpu, wall = [], []
    for _ in range(runs):
        gc.collect()
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for frame in frames:
            decode(frame)
        cpu.append(len(frames) / (time.process_time() - cpu_start))
        wall.append(len(frames) / (time.perf_counter() - wall_start))
    return cpu, wall


def measure(decode: Decode, frames: list[str], runs: int) -> dict[str, Any]:
    per_frame = samples_in(decode(frames[0]))
    for frame in frames:  # once untimed: every frame is valid (and caches are warm)
        assert samples_in(decode(frame)) == per_frame
    figures, wall = frames_per_second(decode, frames, runs)
    median = statistics.median(figures)
    return {
        "frames": len(frames),
        "samples_per_frame": per_frame,
        "frame_bytes": len(frames[0].encode()),
        "runs_frames_per_second": [round(f, 1) for f in figures],
        "frames_per_second": round(median, 1),
        "wall_frames_per_second": round(statistics.median(wall), 1),
        "samples_per_second": round(median * per_frame),
        "us_per_sample": round(1e6 / (median * per_frame), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed passes per figure (median reported)")
    parser.add_argument("--quick", action="store_true", help="a few hundred frames (smoke run)")
    parser.add_argument("--code", type=Path, help="import protocol/ from this checkout instead")
    args = parser.parse_args(argv)
    decode, about = load_decoder(args.code)
    frames, batches = (300, 2) if args.quick else (20_000, 40)
    result: dict[str, Any] = {"scenario": "decode", **about, "runs": args.runs, "quick": args.quick}
    for name, kind_frames in workload(frames, batches, about["numbered"]).items():
        result[name] = measure(decode, kind_frames, args.runs)
    return result


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    """``bench.run``'s entry: this script in its own process on the load core."""
    import asyncio

    from bench.common import LOAD_CORE, taskset

    runs = scale.runs if scale.quick else max(scale.runs, 5)
    command = [*taskset(LOAD_CORE), sys.executable, "-m", "bench.decode", "--runs", str(runs)]
    proc = await asyncio.create_subprocess_exec(
        *command, *(["--quick"] if scale.quick else []), stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.decode failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
