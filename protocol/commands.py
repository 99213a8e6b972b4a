"""The command lifecycle as an explicit state machine.

pending -> delivered -> acked; pending/delivered -> cancelled | expired.
A command can be delivered many times (at-least-once), so delivered -> delivered is legal.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.errors import IllegalTransition


class CommandState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    ACKED = "acked"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_OPEN = frozenset({CommandState.PENDING, CommandState.DELIVERED})

_ALLOWED: dict[CommandState, frozenset[CommandState]] = {
    CommandState.PENDING: frozenset(
        {CommandState.DELIVERED, CommandState.ACKED, CommandState.CANCELLED, CommandState.EXPIRED}
    ),
    CommandState.DELIVERED: frozenset(
        {CommandState.DELIVERED, CommandState.ACKED, CommandState.CANCELLED, CommandState.EXPIRED}
    ),
    CommandState.ACKED: frozenset(),
    CommandState.CANCELLED: frozenset(),
    CommandState.EXPIRED: frozenset(),
}


def is_open(state: CommandState) -> bool:
    """An open command is still owed to its agent: returned by ``next`` and re-sent on reconnect."""
    return state in _OPEN


def transition(current: CommandState, target: CommandState) -> CommandState:
    """Return ``target`` if the lifecycle allows ``current -> target``, else raise."""
    if target not in _ALLOWED[current]:
        raise IllegalTransition(f"command cannot go from {current} to {target}")
    return target
