"""The loop's lifecycle as one transition table.

Rules (asyncio's, made explicit):

* A loop starts ``IDLE``.  ``RUN`` makes it ``RUNNING``; ``FINISH`` (the run loop returned,
  normally or by an exception) brings it back to ``IDLE``.
* ``STOP`` asks the current run to end after the iteration in progress.  Asked while idle, it
  is remembered (``STOP_PENDING``) and the next run does exactly one iteration.
* ``CLOSE`` is only allowed while not running and is final; closing twice is a no-op.
* Everything else is an error, with asyncio's message.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["LoopEvent", "LoopState", "next_state"]


class LoopState(enum.Enum):
    IDLE = "idle"
    STOP_PENDING = "stop pending"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"

    @property
    def is_running(self) -> bool:
        return self is LoopState.RUNNING or self is LoopState.STOPPING

    @property
    def stop_requested(self) -> bool:
        return self is LoopState.STOPPING or self is LoopState.STOP_PENDING


class LoopEvent(enum.Enum):
    RUN = "run"
    STOP = "stop"
    FINISH = "finish"
    CLOSE = "close"


_S = LoopState
_E = LoopEvent

_ALREADY_RUNNING: Final = "This event loop is already running"
_CLOSED: Final = "Event loop is closed"
_CLOSE_RUNNING: Final = "Cannot close a running event loop"
_NOT_RUNNING: Final = "The event loop is not running"

# (state, event) -> new state, or the RuntimeError message for a forbidden transition.
_TABLE: Final[dict[tuple[LoopState, LoopEvent], LoopState | str]] = {
    (_S.IDLE, _E.RUN): _S.RUNNING,
    (_S.IDLE, _E.STOP): _S.STOP_PENDING,
    (_S.IDLE, _E.FINISH): _NOT_RUNNING,
    (_S.IDLE, _E.CLOSE): _S.CLOSED,
    (_S.STOP_PENDING, _E.RUN): _S.STOPPING,
    (_S.STOP_PENDING, _E.STOP): _S.STOP_PENDING,
    (_S.STOP_PENDING, _E.FINISH): _NOT_RUNNING,
    (_S.STOP_PENDING, _E.CLOSE): _S.CLOSED,
    (_S.RUNNING, _E.RUN): _ALREADY_RUNNING,
    (_S.RUNNING, _E.STOP): _S.STOPPING,
    (_S.RUNNING, _E.FINISH): _S.IDLE,
    (_S.RUNNING, _E.CLOSE): _CLOSE_RUNNING,
    (_S.STOPPING, _E.RUN): _ALREADY_RUNNING,
    (_S.STOPPING, _E.STOP): _S.STOPPING,
    (_S.STOPPING, _E.FINISH): _S.IDLE,
    (_S.STOPPING, _E.CLOSE): _CLOSE_RUNNING,
    (_S.CLOSED, _E.RUN): _CLOSED,
    # asyncio lets stop() on a closed loop pass silently.
    (_S.CLOSED, _E.STOP): _S.CLOSED,
    (_S.CLOSED, _E.FINISH): _NOT_RUNNING,
    (_S.CLOSED, _E.CLOSE): _S.CLOSED,
}


def next_state(state: LoopState, event: LoopEvent) -> LoopState:
    """Return the state after ``event``; raise ``RuntimeError`` if the table forbids it."""
    outcome = _TABLE[state, event]
    if isinstance(outcome, str):
        raise RuntimeError(outcome)
    return outcome
