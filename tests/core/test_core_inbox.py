"""The thread-safe inbox: queue behaviour, and the sleep/post handshake under real threads.

The handshake's promise: if the loop's ``begin_sleep()`` returns True (it is going to block),
then every item posted after that re-check gets ``post() -> True`` (its poster wakes the
driver).  Equivalently: a post that found the loop not sleeping is seen by the loop's re-check.
Two tests check it: one forces every interleaving of the four memory operations involved, the
other hammers it from several threads.
"""

from __future__ import annotations

import functools
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sansloop.core import Inbox


def test_post_returns_whether_the_loop_sleeps() -> None:
    inbox: Inbox[str] = Inbox()
    assert inbox.post("a") is False
    assert inbox.begin_sleep() is False  # work is queued: must not block
    assert inbox.post("b") is False  # ... and so it is not asleep
    sink: deque[str] = deque()
    inbox.drain_into(sink)
    assert inbox.begin_sleep() is True
    assert inbox.post("c") is True  # the first post to find the loop asleep wakes it ...
    assert inbox.post("d") is False  # ... and claims the wake-up: one per sleep, not one each
    inbox.end_sleep()
    assert inbox.begin_sleep() is False  # "c" and "d" are still queued
    assert inbox.post("e") is False
    inbox.drain_into(sink)
    assert list(sink) == ["a", "b", "c", "d", "e"]


def test_queue_behaviour() -> None:
    inbox: Inbox[int] = Inbox()
    assert len(inbox) == 0
    assert not inbox
    for i in range(5):
        inbox.post(i)
    assert len(inbox) == 5
    assert inbox
    sink: deque[int] = deque([-1])
    inbox.drain_into(sink)
    assert list(sink) == [-1, 0, 1, 2, 3, 4]
    assert len(inbox) == 0
    assert not inbox
    inbox.post(7)
    inbox.clear()
    assert not inbox
    inbox.drain_into(sink)
    assert list(sink) == [-1, 0, 1, 2, 3, 4]


# -- every interleaving --------------------------------------------------------------------


class _Actor:
    """A thread that runs ``body`` and stops at each pause point until told to go on."""

    def __init__(self, body: Callable[[], Any]) -> None:
        self.body = body
        self.go = threading.Semaphore(0)
        self.paused = threading.Semaphore(0)
        self.result: Any = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self.go.acquire()
        try:
            self.result = self.body()
        finally:
            self.paused.release()

    def pause(self) -> None:
        self.paused.release()
        self.go.acquire()

    def advance(self) -> None:
        """Let the actor run to its next pause point (or to its end)."""
        self.go.release()
        assert self.paused.acquire(timeout=30), "actor did not reach its next pause point"


class _PausingDeque(deque[Any]):
    """A deque whose append and emptiness check pause around the real operation.

    ``post`` appends, so the poster pauses before and after its append; ``begin_sleep`` tests
    the deque's truth, so the loop pauses before and after its re-check.
    """

    poster: _Actor
    sleeper: _Actor

    def append(self, item: Any) -> None:
        self.poster.pause()
        super().append(item)
        self.poster.pause()

    def __len__(self) -> int:
        self.sleeper.pause()
        size = super().__len__()
        self.sleeper.pause()
        return size


class _CheckThenSleepInbox(Inbox[Any]):
    """A wrong handshake (re-check *before* declaring sleep) that loses wake-ups."""

    def begin_sleep(self) -> bool:
        if self._items:
            return False
        self._sleeping = True
        return True


def _interleavings() -> Iterator[tuple[str, ...]]:
    """Each actor has three segments (around two pause points): all their orderings."""
    for positions in itertools.combinations(range(6), 3):
        yield tuple("P" if i in positions else "S" for i in range(6))


def _lost_wakeups(inbox_type: type[Inbox[Any]]) -> list[tuple[str, ...]]:
    """Run one post against one begin_sleep in every interleaving; return the bad ones."""
    bad = []
    for order in _interleavings():
        inbox = inbox_type()
        items = _PausingDeque()
        inbox._items = items  # the one private touch: to pause inside the handshake
        poster = _Actor(functools.partial(inbox.post, "x"))
        sleeper = _Actor(inbox.begin_sleep)
        items.poster, items.sleeper = poster, sleeper
        poster.thread.start()
        sleeper.thread.start()
        for who in order:
            (poster if who == "P" else sleeper).advance()
        poster.thread.join(timeout=30)
        sleeper.thread.join(timeout=30)
        assert not poster.thread.is_alive()
        assert not sleeper.thread.is_alive()
        will_block, must_wake = sleeper.result, poster.result
        assert isinstance(will_block, bool)
        assert isinstance(must_wake, bool)
        if will_block and not must_wake:
            bad.append(order)
    return bad


def test_handshake_holds_in_every_interleaving() -> None:
    assert _lost_wakeups(Inbox) == []


def test_interleaving_harness_catches_a_wrong_handshake() -> None:
    # The check-then-sleep order loses the wake-up when the post lands between the two.
    assert _lost_wakeups(_CheckThenSleepInbox) != []


# -- many threads --------------------------------------------------------------------------


class _Item:
    __slots__ = ("done", "n", "source", "woke")

    def __init__(self, source: int, n: int) -> None:
        self.source = source
        self.n = n
        self.woke = False
        self.done = False


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows, so the handshake's windows get hit."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("eager_thread_switching")
def test_threads_never_lose_a_wakeup() -> None:
    """Posters on several threads, one loop that sleeps whenever it finds nothing to do.

    While the loop is asleep (begin_sleep returned True, end_sleep not yet called), the first
    post to arrive must claim the wake-up (``post() -> True``, clearing the flag): so if the loop
    finds a finished post in its batch while still flagged asleep, that post found the flag set
    and did not claim it, and nobody would wake the loop.  The loop waits with a short timeout
    only so that a lost wake-up shows up as a failed assertion rather than a hang; nothing is
    asserted about time.
    """
    threads, per_thread = 4, 5000
    total = threads * per_thread
    inbox: Inbox[_Item] = Inbox()
    wake = threading.Semaphore(0)
    start = threading.Barrier(threads + 1)

    def poster(source: int) -> None:
        start.wait()
        for n in range(per_thread):
            item = _Item(source, n)
            item.woke = inbox.post(item)
            item.done = True
            if item.woke:
                wake.release()
            if n % 8 == 7:
                time.sleep(0)  # let the loop run dry and go to sleep now and then

    workers = [threading.Thread(target=poster, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()

    received: deque[_Item] = deque()
    lost: list[_Item] = []
    sleeps = 0
    while len(received) < total:
        inbox.drain_into(received)
        if len(received) == total:
            break
        if not inbox.begin_sleep():
            continue
        sleeps += 1
        wake.acquire(timeout=0.01)
        still_flagged = inbox._sleeping
        batch: deque[_Item] = deque()
        inbox.drain_into(batch)
        if still_flagged:
            # Nobody claimed the wake-up, so nothing may have finished posting meanwhile: a
            # finished post found the flag set and left it, and nobody would wake the loop.
            lost.extend(item for item in batch if item.done)
        inbox.end_sleep()
        received.extend(batch)

    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert lost == []
    assert sleeps > 0
    assert len(received) == total
    assert not inbox
    for source in range(threads):
        assert [item.n for item in received if item.source == source] == list(range(per_thread))
