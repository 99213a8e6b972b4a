"""Time on the wire: ISO-8601 UTC strings out, ISO-8601 or epoch seconds in."""

from __future__ import annotations

from datetime import UTC, datetime


def to_iso(epoch: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def to_epoch(value: float | int | str | datetime) -> float:
    """Accept epoch seconds, an ISO-8601 string or a datetime; naive times are UTC."""
    if isinstance(value, int | float):
        return float(value)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
