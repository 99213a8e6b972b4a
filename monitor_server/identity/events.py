"""What identity changes tell the rest of the hub: sessions ended, a device credential revoked.

Sockets that authenticated once at their upgrade must close when their credential dies: the
dashboard's ``/ws/ui`` feed when its user's sessions end, an agent's ``/ws/agent`` when its
device is revoked or reset. Whoever owns those sockets registers a callback here; callbacks run
synchronously in the request that made the change (closing a socket is scheduling, not waiting),
so the socket is told within the same loop iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("monitor_server.identity")


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """Sessions ended: one (``session_hash``, a logout) or all of ``user``'s (``session_hash`` None)."""

    user: str | None
    session_hash: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRevoked:
    """The device's credential stopped working (revoked, or forgotten by a reset)."""

    device_id: str
    reset: bool = False


@dataclass(frozen=True, slots=True)
class CredentialsChanged:
    """What a user's sessions and keys may do changed (a new role), or one API key was revoked.

    This hub dropped its cached answers already; other hubs sharing the database do the same
    when they are told (DESIGN §13).
    """

    user: str | None = None
    key_id: str | None = None


IdentityEvent = SessionsEnded | DeviceRevoked | CredentialsChanged
Listener = Callable[[IdentityEvent], None]


class IdentityListeners:
    """Callbacks told of every ``IdentityEvent``; one that raises is logged and the rest still run."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns the function that removes it again."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: IdentityEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("identity listener failed on %s", type(event).__name__)
