"""The dashboard's pure rules: one-time codes, event coalescing."""

from __future__ import annotations

from monitor_server.events import CommandEvent, HubEvent, PresenceChanged, SampleEvent
from monitor_server.store import Command, PresenceEvent, Sample
from monitor_server.ui.events import coalesce
from monitor_server.ui.login_codes import LoginCodes
from protocol import CommandState


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_login_code_works_once_and_expires() -> None:
    """A code redeems once; an unused one lapses after its lifetime."""
    clock = Clock()
    codes = LoginCodes(60, clock)
    first, second = codes.issue(), codes.issue()
    assert codes.redeem(first) and not codes.redeem(first)
    clock.now += 61
    assert not codes.redeem(second)
    assert not codes.redeem("") and not codes.redeem(None)


def test_coalesce_keeps_newest_sample_per_device_and_all_else_in_order() -> None:
    """Older samples of a device are dropped; presence and command events all stay, in order."""
    events: list[HubEvent] = [
        SampleEvent.of(Sample("a", 1.0, 1, None, None, None, None)),
        PresenceChanged.of(PresenceEvent("b", True, "connected", "ws", 1.0)),
        SampleEvent.of(Sample("b", 2.0, 2, None, None, None, None)),
        SampleEvent.of(Sample("a", 3.0, 3, None, None, None, None)),
        CommandEvent.of(Command(7, "a", "reboot", None, CommandState.PENDING, 4.0)),
    ]
    assert coalesce(events) == [events[1], events[2], events[3], events[4]]
