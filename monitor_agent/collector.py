"""Host metrics with psutil, without blocking: percentages and rates come from counter deltas."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import psutil

from monitor_agent import __version__

log = logging.getLogger(__name__)

Sample = dict[str, Any]
SampleSource = Callable[[], Sample]


class _Counters(NamedTuple):
    at: float
    disk_read: int | None
    disk_write: int | None
    net_rx: int | None
    net_tx: int | None


def system_drive() -> str:
    """The root of the system drive: ``/`` on POSIX, ``C:\\`` (or %SystemDrive%) on Windows."""
    if sys.platform == "win32":
        return os.environ.get("SYSTEMDRIVE", "C:") + "\\"
    return "/"


def max_temperature() -> float | None:
    """Highest current sensor reading in Celsius, or None where the platform has no sensors."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        groups = read()
    except (OSError, RuntimeError):
        return None
    readings = [entry.current for entries in groups.values() for entry in entries]
    return max(readings) if readings else None


def _rate(new: int | None, old: int | None, seconds: float) -> float | None:
    if new is None or old is None or seconds <= 0:
        return None
    # Counters can wrap or reset (interface re-created): report 0 rather than a negative rate.
    return max(0.0, (new - old) / seconds)


class Collector:
    """Samples the host. Call ``sample()`` every interval; each call costs a few file reads.

    The first call primes the deltas: it carries no cpu, and rates are None until the second.
    """

    def __init__(self, *, disk_path: str | None = None, clock: Callable[[], float] = time.monotonic):
        self._disk_path = disk_path or system_drive()
        self._clock = clock
        self._hostname = socket.gethostname()
        self._boot_time = psutil.boot_time()
        self._self = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement window
        self._first_cpu = True  # the first sample after start carries no cpu (not a false 0.0)
        self._counters = self._read_counters()
        self.errors: list[str] = []

    def sample(self) -> Sample:
        """One flat sample with the seed's field names plus the richer ones."""
        self.errors = []
        sample: Sample = {
            "hostname": self._hostname,
            "agent_version": __version__,
            "uptime_sec": int(time.time() - self._boot_time),
        }
        for part in (self._cpu, self._memory, self._disk, self._rates, self._load, self._misc):
            try:
                sample.update(part())
            except Exception as exc:  # one broken probe must not cost the whole sample
                log.debug("probe %s failed", part.__name__, exc_info=True)
                self.errors.append(f"{part.__name__.lstrip('_')}: {exc}")
        sample["status"] = "error" if self.errors else "ok"
        sample["last_error"] = "; ".join(self.errors)
        return sample

    def _cpu(self) -> Sample:
        value = psutil.cpu_percent(interval=None)
        if self._first_cpu:  # measured over the milliseconds since start: noise, often 0.0
            self._first_cpu = False
            return {}
        return {"cpu": value}

    def _memory(self) -> Sample:
        mem = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return {
            "ram": mem.percent,
            "mem_used": mem.total - mem.available,
            "mem_total": mem.total,
            "swap_used": swap.used,
            "swap_total": swap.total,
        }

    def _disk(self) -> Sample:
        usage = psutil.disk_usage(self._disk_path)
        return {"disk": usage.percent, "disk_used": usage.used, "disk_total": usage.total}

    def _rates(self) -> Sample:
        new, old = self._read_counters(), self._counters
        self._counters = new
        seconds = new.at - old.at
        return {
            "disk_read_bps": _rate(new.disk_read, old.disk_read, seconds),
            "disk_write_bps": _rate(new.disk_write, old.disk_write, seconds),
            "net_rx_bps": _rate(new.net_rx, old.net_rx, seconds),
            "net_tx_bps": _rate(new.net_tx, old.net_tx, seconds),
        }

    def _load(self) -> Sample:
        one, five, fifteen = psutil.getloadavg()
        return {"load_1": one, "load_5": five, "load_15": fifteen}

    def _misc(self) -> Sample:
        with self._self.oneshot():  # one read of /proc/self for both figures
            rss = self._self.memory_info().rss
            times = self._self.cpu_times()
        return {
            "procs": len(psutil.pids()),
            "temp_max": max_temperature(),
            "agent_rss": rss,
            "agent_cpu_sec": round(times.user + times.system, 3),
        }

    def _read_counters(self) -> _Counters:
        disk = _safe(psutil.disk_io_counters)
        net = _safe(psutil.net_io_counters)
        return _Counters(
            at=self._clock(),
            disk_read=getattr(disk, "read_bytes", None),
            disk_write=getattr(disk, "write_bytes", None),
            net_rx=getattr(net, "bytes_recv", None),
            net_tx=getattr(net, "bytes_sent", None),
        )


def _safe(probe: Callable[[], Any]) -> Any:
    # disk_io_counters() returns None (or raises) on hosts without block devices, e.g. containers.
    try:
        return probe()
    except (OSError, RuntimeError):
        return None
