"""What alert evaluation adds to each sample on the hub's hot path: ``python -m bench.alerts``.

The evaluator (``monitor_server.alerts.engine``) runs in this process, fed the richer samples the
agent sends, for 10,000 devices: without rules, then with 100 rules (threshold rules on five
fields; half select every device, half one tag of ten), then with 100 rules selecting every
device. Each is fed one sample at a time from devices in turn (live agents), and in batches of
500 from one device (``on_samples``, as the hub evaluates a ``metrics_batch``). Printed: the best
of five passes, in microseconds of CPU per sample, beside the hub's whole cost per sample in
``docs/benchmarks.md`` (12 us in batches, 63 us for live single samples).
"""

from __future__ import annotations

import argparse
import random
import time

from monitor_server.alerts.engine import Evaluator
from monitor_server.store import Sample
from monitor_server.store.alert_records import AlertRule

FIELDS = ("cpu", "ram", "disk", "load_1", "temp_max")
DEVICES = 10_000


def rules(count: int, tagged: bool) -> list[AlertRule]:
    return [
        AlertRule(
            n + 1,
            f"rule {n}",
            "threshold",
            FIELDS[n % len(FIELDS)],
            ">",
            90.0 + n % 7,
            80.0,
            60.0,
            "warning",
            {"tags": [f"group-{n % 10}"]} if tagged and n % 2 else {},
        )
        for n in range(count)
    ]


BATCH = 500


def samples(count: int, rng: random.Random, batched: bool = False) -> list[Sample]:
    return [
        Sample(
            f"dev-{(n // BATCH if batched else n) % DEVICES}",
            float(n),
            rng.uniform(0, 85),
            rng.uniform(0, 85),
            rng.uniform(0, 85),
            1000 + n,
            "ok",
            {
                "load_1": rng.uniform(0, 4),
                "temp_max": rng.uniform(30, 70),
                "net_rx_bps": 1000.0,
                "procs": 200,
            },
        )
        for n in range(count)
    ]


def per_sample(evaluator: Evaluator, samples: list[Sample], passes: int, size: int) -> float:
    """Best of ``passes``, in us of CPU per sample, fed to ``on_samples`` in runs of ``size`` (1: one
    by one, as live agents send them); a first pass works out each device's selection untimed."""
    chunks = [samples[start : start + size] for start in range(0, len(samples), size)]
    for chunk in chunks:
        evaluator.on_samples(chunk, 0.0)
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for chunk in chunks:
            evaluator.on_samples(chunk, 1.0)
        best = min(best, (time.process_time() - started) / len(samples))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    batch = samples(args.samples, random.Random(1))
    batched = samples(args.samples, random.Random(1), batched=True)
    devices = [(f"dev-{n}", True, frozenset({f"group-{n % 10}"})) for n in range(DEVICES)]
    for label, chosen in (
        ("no rules", []),
        ("100 rules, half by tag", rules(100, tagged=True)),
        ("100 rules, every device", rules(100, tagged=False)),
    ):
        evaluator = Evaluator()
        evaluator.load(chosen, [], devices, 0.0)
        live = per_sample(evaluator, batch, args.passes, 1)
        in_batches = per_sample(evaluator, batched, args.passes, BATCH)
        print(f"{label:26} {live:6.2f} us of CPU per sample one by one, {in_batches:6.2f} in batches")


if __name__ == "__main__":
    main()
