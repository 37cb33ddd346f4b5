"""The scheduling core: ready queue, timer heap, inbox, and one iteration's batch rule.

Pure: no clock is read here and nothing blocks.  A driver reads its clock, asks
:meth:`Scheduler.timeout` how long it may wait, waits (queuing whatever I/O made ready with
:attr:`Scheduler.push_ready`), reads its clock again and calls :meth:`Scheduler.run_ready`.

The batch rule is asyncio's ``_run_once``, exactly:

* timers are due when ``when < now + clock_resolution``;
* one iteration runs only the callbacks that were ready when the batch began: what they
  schedule runs in the next iteration, after another look at I/O;
* cancelled timers are dropped from the head of the heap, or the whole heap is rebuilt when
  more than half of over 100 timers are cancelled.

Where asyncio leaves the order undefined we define it: the heap is keyed ``(when, seq)`` with
a per-scheduler sequence number, so timers with equal deadlines run in scheduling order.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Final

import attrs

from ._handles import Callback, Timer
from ._inbox import Inbox

__all__ = [
    "MAXIMUM_TIMEOUT",
    "MIN_CANCELLED_TIMER_FRACTION",
    "MIN_SCHEDULED_TIMERS",
    "Scheduler",
    "SchedulerStatistics",
]

#: The longest a driver is told to wait, as asyncio's ``MAXIMUM_SELECT_TIMEOUT``.
MAXIMUM_TIMEOUT: Final = 24 * 3600.0
#: The heap is only rebuilt when it holds more timers than this ...
MIN_SCHEDULED_TIMERS: Final = 100
#: ... and more than this fraction of them are cancelled.
MIN_CANCELLED_TIMER_FRACTION: Final = 0.5


@attrs.frozen
class SchedulerStatistics:
    """A snapshot of what the core holds."""

    ready: int
    timers: int
    cancelled_timers: int
    inbox: int


class Scheduler:
    """Ready queue, timer heap and inbox, and the step that runs them."""

    __slots__ = (
        "_cancelled_timers",
        "_posted",
        "_ready",
        "_seq",
        "_timers",
        "clock_resolution",
        "inbox",
        "push_ready",
    )

    def __init__(self, clock_resolution: float) -> None:
        if not clock_resolution >= 0:
            raise ValueError(f"clock_resolution must be >= 0, got {clock_resolution!r}")
        self.clock_resolution = clock_resolution
        self._ready: deque[Callback] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._cancelled_timers = 0
        self.inbox: Inbox[Callback] = Inbox()
        # The inbox's queue, tested directly: Inbox.__bool__ would cost a Python call.
        self._posted = self.inbox.pending
        #: Queue a callback to run in FIFO order (a bound ``deque.append``: this is the
        #: hottest call in the loop, so it costs no Python frame of its own).
        self.push_ready: Callable[[Callback], None] = self._ready.append

    # -- input -------------------------------------------------------------------------

    def push_timer(self, timer: Timer) -> None:
        """Schedule ``timer`` for its ``_when``."""
        heapq.heappush(self._timers, (timer._when, next(self._seq), timer))
        timer._scheduled = True

    def timer_cancelled(self, timer: Timer) -> None:
        """Note that a scheduled timer was cancelled (it stays in the heap until purged)."""
        if timer._scheduled:
            self._cancelled_timers += 1

    # -- one iteration -----------------------------------------------------------------

    def timeout(self, now: float, stopping: bool = False, sleep: bool = False) -> float | None:
        """Purge cancelled timers; return how long the driver may wait (None: forever).

        With ``sleep``, a wait that may block also starts the inbox's sleep handshake (as
        :meth:`Inbox.begin_sleep` does; 0.0 if work was posted meanwhile), and the next
        :meth:`run_ready` ends it: one call per loop iteration instead of three.
        """
        timers = self._timers
        if timers:
            count = len(timers)
            if (
                count > MIN_SCHEDULED_TIMERS
                and self._cancelled_timers / count > MIN_CANCELLED_TIMER_FRACTION
            ):
                self._rebuild_heap()
            elif timers[0][2]._cancelled:
                self._drop_cancelled_head()
            timers = self._timers  # A rebuild made a new list.
        if self._ready or self._posted or stopping:
            return 0.0
        if timers:
            wait = timers[0][0] - now
            if wait <= 0.0:
                return 0.0
            result: float | None = MAXIMUM_TIMEOUT if wait > MAXIMUM_TIMEOUT else wait
        else:
            result = None
        if sleep and not self.inbox.begin_sleep():
            return 0.0
        return result

    def run_ready(self, now: float, runner: Callable[[Callback], None] | None = None) -> int:
        """Run one batch: posted work, then due timers, join the queue; run what is queued.

        ``runner``, if given, runs each handle instead of ``handle._run()`` (the compat layer
        uses it for debug-mode timing).  Returns how many callbacks ran.
        """
        # Awake: whatever timeout(sleep=True) began ends here (inbox.end_sleep(), inlined).
        self.inbox._sleeping = False
        ready = self._ready
        if self._posted:
            self.inbox.drain_into(ready)
        timers = self._timers
        if timers:
            end = now + self.clock_resolution
            heappop = heapq.heappop
            while timers and timers[0][0] < end:
                timer = heappop(timers)[2]
                timer._scheduled = False
                if timer._cancelled:
                    # Cancelled behind a live head: it leaves the heap here, not in a purge.
                    self._cancelled_timers -= 1
                else:
                    ready.append(timer)
        # Exactly the callbacks queued now: what they queue runs in the next batch.
        batch = len(ready)
        ran = batch
        if runner is None:
            for _ in range(batch):
                handle = ready.popleft()
                if handle._cancelled:
                    ran -= 1
                else:
                    handle._run()
        else:
            for _ in range(batch):
                handle = ready.popleft()
                if handle._cancelled:
                    ran -= 1
                else:
                    runner(handle)
        # A failing callback's traceback can keep this frame (and so the last handle and
        # its task) alive in a cycle; drop it so "exception never retrieved" is prompt.
        handle = None  # type: ignore[assignment]
        return ran

    def drain_inbox(self) -> None:
        """Move posted work to the ready queue now (the loop calls this before a call_soon
        so that work posted earlier by another thread runs earlier)."""
        self.inbox.drain_into(self._ready)

    # -- queries -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The ``when`` of the earliest live timer, or None (drops cancelled heads)."""
        self._drop_cancelled_head()
        return self._timers[0][0] if self._timers else None

    def has_ready(self) -> bool:
        return bool(self._ready) or bool(self._posted)

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            ready=len(self._ready),
            timers=len(self._timers) - self._cancelled_timers,
            cancelled_timers=self._cancelled_timers,
            inbox=len(self.inbox),
        )

    def clear(self) -> None:
        """Drop everything queued (the loop is closing)."""
        self._ready.clear()
        for entry in self._timers:
            entry[2]._scheduled = False
        self._timers.clear()
        self.inbox.clear()
        self._cancelled_timers = 0

    # -- internals ---------------------------------------------------------------------

    def _drop_cancelled_head(self) -> None:
        timers = self._timers
        while timers and timers[0][2]._cancelled:
            self._cancelled_timers -= 1
            heapq.heappop(timers)[2]._scheduled = False

    def _rebuild_heap(self) -> None:
        live = []
        for entry in self._timers:
            if entry[2]._cancelled:
                entry[2]._scheduled = False
            else:
                live.append(entry)
        heapq.heapify(live)
        self._timers = live
        self._cancelled_timers = 0
