"""The idle sweep closes agents silent for longer than the idle timeout, and only those."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor_server.idle import close_idle
from protocol.codes import CloseCode


@dataclass
class FakeSocket:
    device_id: str
    last_frame: float
    closed: list[tuple[int, str]] = field(default_factory=list)

    def abort(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


def test_only_sockets_silent_past_the_timeout_are_closed_with_timeout() -> None:
    quiet, recent, edge = FakeSocket("quiet", 100.0), FakeSocket("recent", 125.0), FakeSocket("edge", 110.0)
    assert close_idle([quiet, recent, edge], now=130.0, idle_timeout=20.0) == 1
    assert quiet.closed == [(CloseCode.TIMEOUT, "no frame within the idle timeout")]
    assert recent.closed == [] and edge.closed == []  # exactly at the limit is not past it
