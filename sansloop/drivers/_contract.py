"""What every driver provides to the compat loop.

A driver owns the clock, the waiting, the wake-up and the OS objects; it never owns
scheduling.  The loop drives one iteration as::

    timeout = core.timeout(driver.time(), stopping)
    driver.wait(timeout)          # I/O made ready is queued on the core meanwhile
    core.run_ready(driver.time())

``docs/architecture.md`` describes how each driver meets this contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Driver", "SignalDriver"]


class Driver(Protocol):
    """The part of a driver that the scheduling loop needs."""

    #: Smallest difference the clock can tell apart; timers this close to now are due.
    clock_resolution: float

    def time(self) -> float:
        """The driver's clock, in seconds."""
        ...

    def wait(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (None: until woken) for I/O or a wake-up.

        A zero timeout must not block.  Drivers may skip the look at the OS altogether when
        they know nothing can be ready (the selectors driver does so when no file descriptor
        but its own wake-up socket is registered).
        """
        ...

    def wakeup(self) -> None:
        """Make a ``wait`` in progress return soon.  Thread-safe and signal-safe."""
        ...

    def close(self) -> None:
        """Release every OS object the driver holds.  Idempotent."""
        ...


class SignalDriver(Driver, Protocol):
    """A driver that can route POSIX signals to the loop (the main-thread loop only)."""

    def add_signal(self, sig: int, deliver: Callable[[int], None]) -> None:
        """Call ``deliver(sig)`` (from the main thread) whenever ``sig`` arrives."""
        ...

    def remove_signal(self, sig: int) -> None:
        """Restore the default disposition of ``sig``."""
        ...
