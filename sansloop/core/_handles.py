"""The shape of what the core schedules.

The core never creates callbacks itself: the compat layer hands it ``asyncio.Handle`` and
``asyncio.TimerHandle`` instances (so that code which checks ``isinstance`` keeps working), and
tests hand it plain objects of the same shape.  These protocols name exactly the attributes the
core touches, which are asyncio's own handle attributes.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Callback", "Timer"]


class Callback(Protocol):
    """Something the ready queue can run: asyncio's ``Handle`` protocol."""

    _cancelled: bool

    def _run(self) -> None: ...


class Timer(Callback, Protocol):
    """A callback with a deadline: asyncio's ``TimerHandle`` protocol.

    ``_scheduled`` is true while the timer sits in the heap; asyncio's ``TimerHandle.cancel``
    reads it to decide whether to report the cancellation to the loop.
    """

    _when: float
    _scheduled: bool
