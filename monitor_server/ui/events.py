"""Pure: squeeze a burst of bus events into what a browser needs to redraw."""

from __future__ import annotations

from monitor_server.bus import Event


def coalesce(events: list[Event]) -> list[Event]:
    """Keep only the newest sample per device; every other event, in order.

    A browser shows the latest value of each metric, so under load (1,000 devices reporting)
    older samples queued behind newer ones are wasted bytes and DOM work. A kept sample takes
    the place of its device's last one, so order relative to presence and commands holds.
    """
    newest: dict[str, int] = {}
    for index, event in enumerate(events):
        if event.get("type") == "sample":
            newest[event["device_id"]] = index
    return [
        event
        for index, event in enumerate(events)
        if event.get("type") != "sample" or newest[event["device_id"]] == index
    ]
