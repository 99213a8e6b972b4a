"""``GET /metrics``: the hub's own figures and each device's latest core metrics, Prometheus text format.

Each application has its own ``CollectorRegistry`` (never the library's global one: a test process
runs several hubs). Gauges and counters are read from the hub at scrape time by a custom
collector; the two histograms (store commit time, command push latency) are observed by the
writer and the command service through callbacks, so neither imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import hub_of
from monitor_server.hub import Hub
from monitor_server.identity.authz import requires
from monitor_server.identity.principals import Role
from monitor_server.store import Device

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Per device: metric name, key in the latest payload, help.
DEVICE_METRICS = (
    ("monitor_device_cpu_percent", "cpu", "CPU use of the device's latest sample, percent."),
    ("monitor_device_ram_percent", "ram", "Memory use of the device's latest sample, percent."),
    ("monitor_device_disk_percent", "disk", "Disk use of the device's latest sample, percent."),
    ("monitor_device_uptime_seconds", "uptime_sec", "Uptime the device last reported, seconds."),
)


class HubCollector(Collector):
    """Live hub figures, plus the device rows the scrape read just before collecting."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.devices: Sequence[Device] = ()

    def collect(self) -> Iterable[Metric]:
        return list(self._hub_figures()) + list(self._device_figures())

    def _hub_figures(self) -> Iterator[Metric]:
        hub = self._hub
        yield _gauge("monitor_hub_agent_sockets", "Agent WebSockets connected now.", len(hub.sessions))
        yield _gauge("monitor_hub_devices_online", "Devices online now.", hub.presence.online_count())
        yield CounterMetricFamily(
            "monitor_hub_samples_written", "Samples committed to the store.", hub.writer.rows_written
        )
        yield CounterMetricFamily(
            "monitor_hub_samples_refused",
            "Samples the store refused (logged, left out).",
            hub.writer.rows_refused,
        )
        yield _gauge("monitor_hub_sample_backlog", "Samples waiting for the next commit.", hub.writer.pending)
        yield _gauge(
            "monitor_hub_store_failing",
            "1 while store writes fail (see /health).",
            hub.writer.failure() is not None,
        )
        yield _gauge(
            "monitor_hub_dashboard_subscribers",
            "Dashboards subscribed to live events.",
            hub.bus.subscriber_count,
        )

    def _device_figures(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(name, text, labels=["device"]) for name, _, text in DEVICE_METRICS
        }
        online = GaugeMetricFamily(
            "monitor_device_online", "1 while the device is online.", labels=["device"]
        )
        for device in self.devices:
            payload: dict[str, Any] = device.last_payload or {}
            for name, key, _ in DEVICE_METRICS:
                value = payload.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    families[name].add_metric([device.device_id], float(value))
            online.add_metric([device.device_id], 1.0 if device.online else 0.0)
        yield from families.values()
        yield online


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


class HubMetrics:
    """One application's registry: the collector and the histograms the hub's services feed."""

    def __init__(self, hub: Hub) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = HubCollector(hub)
        self.registry.register(self._collector)
        self.commit_seconds = Histogram(
            "monitor_hub_commit_seconds",
            "Seconds one batch of samples took to commit to the store.",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.push_seconds = Histogram(
            "monitor_hub_command_push_seconds",
            "Seconds from a command's enqueue to its frame written to the agent's socket.",
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        hub.writer.on_commit = self.commit_seconds.observe
        hub.commands.on_push = self.push_seconds.observe

    def exposition(self, devices: Sequence[Device]) -> bytes:
        """The text format, with ``devices`` as the per-device rows (no await in between)."""
        self._collector.devices = devices
        try:
            return generate_latest(self.registry)
        finally:
            self._collector.devices = ()


@requires(Role.VIEWER)
async def metrics(request: Request) -> Response:
    """Prometheus scrapes with ``Authorization: Bearer <API key>`` (a viewer key is enough)."""
    hub = hub_of(request)
    exposed: HubMetrics = request.app.state.prometheus
    body = exposed.exposition(await hub.store.list_devices())
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
