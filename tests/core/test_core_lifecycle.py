"""The loop lifecycle table: every (state, event) pair, checked against asyncio.

The expected outcomes are written out here a second time, from the documented rules, and the
error messages are taken from a real asyncio loop on the running Python, so a drift in either
the table or asyncio's wording fails a test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from sansloop.core import LoopEvent, LoopState, next_state

S, E = LoopState, LoopEvent


def _asyncio_error(provoke: Callable[[asyncio.AbstractEventLoop], None]) -> str:
    """The RuntimeError message asyncio gives for ``provoke(loop)`` inside a running loop."""
    loop = asyncio.new_event_loop()
    messages: list[str] = []

    def callback() -> None:
        try:
            provoke(loop)
        except RuntimeError as exc:
            messages.append(str(exc))
        loop.stop()

    try:
        loop.call_soon(callback)
        loop.run_forever()
    finally:
        loop.close()
    assert len(messages) == 1
    return messages[0]


def _asyncio_closed_error() -> str:
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(RuntimeError) as info:
        loop.run_forever()
    return str(info.value)


ALREADY_RUNNING = _asyncio_error(lambda loop: loop.run_forever())
CLOSE_RUNNING = _asyncio_error(lambda loop: loop.close())
CLOSED = _asyncio_closed_error()
NOT_RUNNING = "The event loop is not running"  # FINISH is internal: asyncio has no wording

# The documented table, restated: a state is the outcome, a string is the RuntimeError message.
EXPECTED: dict[tuple[LoopState, LoopEvent], LoopState | str] = {
    (S.IDLE, E.RUN): S.RUNNING,
    (S.IDLE, E.STOP): S.STOP_PENDING,
    (S.IDLE, E.FINISH): NOT_RUNNING,
    (S.IDLE, E.CLOSE): S.CLOSED,
    (S.STOP_PENDING, E.RUN): S.STOPPING,
    (S.STOP_PENDING, E.STOP): S.STOP_PENDING,
    (S.STOP_PENDING, E.FINISH): NOT_RUNNING,
    (S.STOP_PENDING, E.CLOSE): S.CLOSED,
    (S.RUNNING, E.RUN): ALREADY_RUNNING,
    (S.RUNNING, E.STOP): S.STOPPING,
    (S.RUNNING, E.FINISH): S.IDLE,
    (S.RUNNING, E.CLOSE): CLOSE_RUNNING,
    (S.STOPPING, E.RUN): ALREADY_RUNNING,
    (S.STOPPING, E.STOP): S.STOPPING,
    (S.STOPPING, E.FINISH): S.IDLE,
    (S.STOPPING, E.CLOSE): CLOSE_RUNNING,
    (S.CLOSED, E.RUN): CLOSED,
    (S.CLOSED, E.STOP): S.CLOSED,
    (S.CLOSED, E.FINISH): NOT_RUNNING,
    (S.CLOSED, E.CLOSE): S.CLOSED,
}

ALL_PAIRS = list(itertools.product(LoopState, LoopEvent))


def test_expected_table_is_complete() -> None:
    assert set(EXPECTED) == set(ALL_PAIRS)


def test_messages_are_asyncios_known_wording() -> None:
    # If asyncio rewords these, the table's messages must follow (and this notices).
    assert ALREADY_RUNNING == "This event loop is already running"
    assert CLOSE_RUNNING == "Cannot close a running event loop"
    assert CLOSED == "Event loop is closed"


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda x: x.name)
def test_transition(state: LoopState, event: LoopEvent) -> None:
    expected = EXPECTED[state, event]
    if isinstance(expected, LoopState):
        assert next_state(state, event) is expected
    else:
        with pytest.raises(RuntimeError) as info:
            next_state(state, event)
        assert str(info.value) == expected


@pytest.mark.parametrize("state", list(LoopState), ids=lambda s: s.name)
def test_state_properties(state: LoopState) -> None:
    assert state.is_running == (state in {S.RUNNING, S.STOPPING})
    assert state.stop_requested == (state in {S.STOPPING, S.STOP_PENDING})


def _flag_model(events: tuple[LoopEvent, ...]) -> LoopState | str:
    """asyncio's rules as flags (closed, running, stopping), the way base_events keeps them."""
    closed = running = stopping = False
    for event in events:
        if event is E.RUN:
            if closed:
                return CLOSED
            if running:
                return ALREADY_RUNNING
            running = True
        elif event is E.STOP:
            stopping = True
        elif event is E.FINISH:
            if not running or closed:
                return NOT_RUNNING
            running = stopping = False
        else:
            if running:
                return CLOSE_RUNNING
            closed = True
    if closed:
        return S.CLOSED
    if running:
        return S.STOPPING if stopping else S.RUNNING
    return S.STOP_PENDING if stopping else S.IDLE


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5])
def test_sequences_agree_with_asyncios_flags(length: int) -> None:
    """Every event sequence up to length 5 ends where asyncio's three flags say it does."""
    for events in itertools.product(LoopEvent, repeat=length):
        state = S.IDLE
        outcome: LoopState | str
        try:
            for event in events:
                state = next_state(state, event)
            outcome = state
        except RuntimeError as exc:
            outcome = str(exc)
        assert outcome == _flag_model(events), events


def test_stop_before_run_gives_one_iteration_like_asyncio() -> None:
    """STOP while idle, then RUN: asyncio runs one iteration and returns (STOPPING at once)."""
    loop = asyncio.new_event_loop()
    ran: list[int] = []
    try:
        loop.call_soon(ran.append, 1)
        loop.stop()
        loop.call_soon(lambda: loop.call_soon(ran.append, 2))
        loop.run_forever()
    finally:
        loop.close()
    assert ran == [1]
    state = next_state(S.IDLE, E.STOP)
    assert next_state(state, E.RUN) is S.STOPPING
    assert next_state(S.STOPPING, E.FINISH) is S.IDLE
