"""Pure: squeeze a burst of bus events into what a browser needs to redraw."""

from __future__ import annotations

from monitor_server.events import HubEvent, SampleEvent


def coalesce(events: list[HubEvent]) -> list[HubEvent]:
    """Keep only the newest sample per device; every other event, in order.

    A browser shows the latest value of each metric, so under load (1,000 devices reporting)
    older samples queued behind newer ones are wasted bytes and DOM work. A kept sample takes
    the place of its device's last one, so order relative to presence and commands holds.
    """
    newest: dict[str, int] = {}
    for index, event in enumerate(events):
        if isinstance(event, SampleEvent):
            newest[event.device_id] = index
    return [
        event
        for index, event in enumerate(events)
        if not isinstance(event, SampleEvent) or newest[event.device_id] == index
    ]
