"""The command state machine is the one place that knows states: its sets and moves."""

from __future__ import annotations

import pytest

from protocol.commands import (
    FINAL_STATES,
    OPEN_STATES,
    CommandState,
    is_open,
    sources_of,
    transition,
)
from protocol.errors import IllegalTransition


def test_open_and_final_states_partition_the_enum() -> None:
    """Every state is either open or final, never both: pending/delivered open, the rest final."""
    assert OPEN_STATES.isdisjoint(FINAL_STATES)
    assert frozenset(CommandState) == OPEN_STATES | FINAL_STATES
    assert frozenset({CommandState.PENDING, CommandState.DELIVERED}) == OPEN_STATES
    assert all(is_open(state) == (state in OPEN_STATES) for state in CommandState)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_no_transition_leaves_a_final_state(final: CommandState) -> None:
    """A final state refuses every target, itself included."""
    for target in CommandState:
        with pytest.raises(IllegalTransition):
            transition(final, target)


def test_cancel_of_acked_is_refused() -> None:
    """acked -> cancelled raises IllegalTransition; both open states may be cancelled."""
    with pytest.raises(IllegalTransition, match="acked"):
        transition(CommandState.ACKED, CommandState.CANCELLED)
    for state in OPEN_STATES:
        assert transition(state, CommandState.CANCELLED) is CommandState.CANCELLED


def test_sources_of_each_update_target() -> None:
    """Ack and cancel apply to open states only; a delivery changes only a pending command."""
    assert sources_of(CommandState.ACKED) == OPEN_STATES
    assert sources_of(CommandState.CANCELLED) == OPEN_STATES
    assert sources_of(CommandState.DELIVERED) == frozenset({CommandState.PENDING})
    assert sources_of(CommandState.PENDING) == frozenset()
    assert all(sources_of(target).isdisjoint(FINAL_STATES) for target in CommandState)
