"""The collector: the seed's fields, the richer ones, and no blocking."""

from __future__ import annotations

import time

from monitor_agent.collector import Collector
from protocol.codec import Samples, decode_agent_frame, encode_json, split_sample

SEED_FIELDS = {"hostname", "cpu", "ram", "disk", "uptime_sec", "agent_version", "status", "last_error"}
RICH_FIELDS = {
    "load_1",
    "load_5",
    "load_15",
    "mem_used",
    "mem_total",
    "swap_used",
    "swap_total",
    "disk_used",
    "disk_total",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
    "procs",
    "temp_max",
}


def test_sample_has_seed_and_rich_fields() -> None:
    """Every field of the seed and of the richer set is present, and the sample is a valid metrics frame."""
    collector = Collector()
    collector.sample()
    sample = collector.sample()
    assert sample.keys() >= SEED_FIELDS | RICH_FIELDS
    assert sample["status"] == "ok", sample["last_error"]
    assert 0 <= sample["ram"] <= 100 and 0 <= sample["disk"] <= 100
    _, extra = split_sample(sample)  # what the agent checks before sending
    assert extra == {}  # every field the collector sends is named (the hub's fast decode path)
    received = decode_agent_frame(encode_json({**sample, "type": "metrics", "seq": 1}))  # what the hub reads
    assert isinstance(received, Samples) and len(received.valid) == 1 and not received.refused


def test_rates_come_from_counter_deltas() -> None:
    """The second sample has non-negative rates computed since the first."""
    collector = Collector()
    collector.sample()
    sample = collector.sample()
    for key in ("net_rx_bps", "net_tx_bps"):
        assert sample[key] is not None and sample[key] >= 0


def test_sampling_does_not_block() -> None:
    """A sample takes milliseconds: cpu is a delta, not a one-second measurement."""
    collector = Collector()
    started = time.perf_counter()
    for _ in range(5):
        collector.sample()
    assert time.perf_counter() - started < 0.5


def test_a_failing_probe_is_reported_not_raised() -> None:
    """A broken disk path gives status error with last_error, and the other fields."""
    collector = Collector(disk_path="/does/not/exist")
    collector.sample()
    sample = collector.sample()
    assert sample["status"] == "error" and "disk" in sample["last_error"]
    assert "cpu" in sample and "ram" in sample


def test_first_sample_after_start_has_no_cpu() -> None:
    """The first sample after start omits cpu (a window of milliseconds), so charts show no false dip."""
    collector = Collector()
    first, second = collector.sample(), collector.sample()
    assert "cpu" not in first and "ram" in first
    assert 0 <= second["cpu"] <= 100
