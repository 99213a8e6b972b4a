"""Memory (VmRSS) and CPU of one agent process over a real hub, measured from /proc (Linux).

    .venv/bin/python bench/agent_footprint.py                 # 60 s, default 5 s interval
    .venv/bin/python bench/agent_footprint.py --duration 30 --agent-args "simulate --count 100"

Starts ``monitor-server`` on a free port with a throwaway database, then the agent
(``python -m monitor_agent [agent-args] --server ... --token ...``), waits until its
device is online, and samples /proc/PID/status (VmRSS) and /proc/PID/stat (utime+stime)
once a second. Prints one JSON object; exits non-zero if a goal is missed with --check.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TOKEN = "bench-token-5c1e"  # noqa: S105 - a throwaway hub started by this script
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may contain spaces) start at ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def devices(base: str) -> list[dict[str, object]]:
    request = urllib.request.Request(  # noqa: S310 - a local http URL we built
        base + "/devices", headers={"X-Auth-Token": TOKEN}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local http URL
        found: list[dict[str, object]] = json.loads(response.read())
        return found


def wait_online(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if any(d.get("online") for d in devices(base)):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the agent did not come online")


def measure(pid: int, duration: float) -> dict[str, float]:
    rss: list[int] = []
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < duration:
        rss.append(rss_kb(pid))
        time.sleep(1.0)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    return {
        "seconds": round(t1 - t0, 1),
        "rss_mb_max": round(max(rss) / 1024, 1),
        "rss_mb_mean": round(sum(rss) / len(rss) / 1024, 1),
        "rss_mb_last": round(rss[-1] / 1024, 1),
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "cpu_seconds": round(cpu1 - cpu0, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after online, unmeasured")
    parser.add_argument("--agent-args", default="run", help="arguments before --server (default: run)")
    parser.add_argument("--check", action="store_true", help="exit 1 if above 30 MB or 0.5%% CPU")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MONITOR_TOKEN": TOKEN}
        hub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor_server",
                "--port",
                str(port),
                "--db",
                f"{tmp}/hub.db",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        agent_argv = [
            sys.executable,
            "-m",
            "monitor_agent",
            *shlex.split(args.agent_args),
            "--server",
            base,
            "--token",
            TOKEN,
        ]
        if args.agent_args.split()[:1] in ([], ["run"]):
            agent_argv += ["--state-dir", f"{tmp}/agent", "--log-level", "warning"]
        agent = subprocess.Popen(agent_argv)
        try:
            wait_online(base, time.monotonic() + 30)
            time.sleep(args.warmup)  # let imports settle and the first samples go out
            result: dict[str, float | str] = dict(measure(agent.pid, args.duration))
        finally:
            for proc in (agent, hub):
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    result["command"] = " ".join(shlex.quote(a) for a in agent_argv[2:])
    print(json.dumps(result, indent=2))
    if args.check and (float(result["rss_mb_max"]) > 30 or float(result["cpu_percent_of_one_core"]) > 0.5):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
