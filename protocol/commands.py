"""The command lifecycle as an explicit state machine.

pending -> delivered -> acked; pending/delivered -> cancelled | expired.
A command can be delivered many times (at-least-once), so delivered -> delivered is legal.

This module is the only place that knows the states: stores select and update rows with
``OPEN_STATES``, ``FINAL_STATES`` and ``sources_of`` instead of spelling state names.
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

#: Still owed to the agent: returned by ``next`` and re-sent on reconnect.
OPEN_STATES: frozenset[CommandState] = frozenset(s for s, targets in _ALLOWED.items() if targets)
#: Settled for good: no transition leaves them.
FINAL_STATES: frozenset[CommandState] = frozenset(s for s, targets in _ALLOWED.items() if not targets)


def is_open(state: CommandState) -> bool:
    """An open command is still owed to its agent: returned by ``next`` and re-sent on reconnect."""
    return state in OPEN_STATES


def transition(current: CommandState, target: CommandState) -> CommandState:
    """Return ``target`` if the lifecycle allows ``current -> target``, else raise."""
    if target not in _ALLOWED[current]:
        raise IllegalTransition(f"command cannot go from {current} to {target}")
    return target


def sources_of(target: CommandState) -> frozenset[CommandState]:
    """The states a command may leave for ``target``: where a store's ``UPDATE`` to ``target`` applies.

    ``target`` itself is left out even where staying is legal (delivered -> delivered): an update
    that would not change the state is not a move, so the first delivery time is the one kept.
    """
    return frozenset(s for s, targets in _ALLOWED.items() if target in targets and s is not target)
