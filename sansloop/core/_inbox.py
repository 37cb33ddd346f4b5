"""The thread-safe inbox: how other threads and signal handlers hand work to the loop.

Any thread may ``post``; only the loop drains.  ``collections.deque`` append and popleft are
atomic, so no lock is needed.  The inbox also decides when the driver must be woken, with a
Dekker-style handshake that avoids a wake-up system call whenever the loop is not asleep:

* the poster appends, *then* reads ``sleeping`` (and clears it, claiming the wake-up);
* the loop sets ``sleeping``, *then* re-reads the queue before it blocks.

Either a poster sees ``sleeping`` (and wakes the driver) or the loop sees the item (and does
not block), so a wake-up is never lost; a spare one is harmless.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["Inbox"]

_T = TypeVar("_T")


class Inbox(Generic[_T]):
    __slots__ = ("_items", "_sleeping")

    def __init__(self) -> None:
        self._items: deque[_T] = deque()
        self._sleeping = False

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def post(self, item: _T) -> bool:
        """Queue ``item``; return True when the caller must wake the driver.

        The first poster to find the loop asleep claims the wake-up by clearing the flag:
        a burst of posts from a thread that holds the GIL costs one wake-up, not one each.
        Whoever clears the flag always wakes the driver, so none is lost.
        """
        self._items.append(item)
        if self._sleeping:
            self._sleeping = False
            return True
        return False

    def begin_sleep(self) -> bool:
        """Declare the loop about to block; False means work arrived and it must not."""
        self._sleeping = True
        if self._items:
            self._sleeping = False
            return False
        return True

    def end_sleep(self) -> None:
        self._sleeping = False

    @property
    def pending(self) -> deque[_T]:
        """The queue itself, for a cheap emptiness test on a hot path; never mutate it."""
        return self._items

    def drain_into(self, sink: deque[_T]) -> None:
        """Move every queued item, in posting order, to ``sink`` (only the loop drains)."""
        items = self._items
        try:
            while items:
                sink.append(items.popleft())
        except IndexError:
            # A caller broke the single-drainer rule (call_soon from a foreign thread) and
            # emptied the queue under us; nothing is lost, so don't fail here.
            pass

    def clear(self) -> None:
        self._items.clear()
