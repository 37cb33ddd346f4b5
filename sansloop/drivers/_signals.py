"""Routing POSIX signals to a loop.

asyncio installs a no-op Python handler and decodes signal numbers from the bytes the C-level
handler writes to its wake-up socket.  We install a Python-level handler that delivers the
signal number straight to the loop (Python runs it in the main thread between bytecodes), and
still point ``signal.set_wakeup_fd`` at the driver's wake-up socket so that a blocked wait
returns at once.  The bytes in that socket then carry no meaning, so the driver may skip
reading them while it is busy without losing a signal.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

__all__ = ["SignalRouter"]

_log = logging.getLogger("asyncio")


class SignalRouter:
    """Owns the Python-level handlers of the signals a loop watches."""

    def __init__(self, wakeup_fd: int) -> None:
        self._wakeup_fd = wakeup_fd
        self._deliver: dict[int, Callable[[int], None]] = {}

    def __contains__(self, sig: int) -> bool:
        return sig in self._deliver

    def add(self, sig: int, deliver: Callable[[int], None]) -> None:
        try:
            # Raises ValueError outside the main thread, as asyncio reports.
            signal.set_wakeup_fd(self._wakeup_fd, warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc)) from None
        self._deliver[sig] = deliver
        try:
            signal.signal(sig, self._on_signal)
            if sys.platform != "win32":
                # Let system calls interrupted by the signal be restarted.
                signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._deliver[sig]
            if not self._deliver:
                self._clear_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise

    def remove(self, sig: int) -> bool:
        if self._deliver.pop(sig, None) is None:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        if not self._deliver:
            self._clear_wakeup_fd()
        return True

    def signals(self) -> list[int]:
        return list(self._deliver)

    def forget_all(self) -> None:
        """Drop the table without touching dispositions (interpreter shutdown)."""
        self._deliver.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        deliver = self._deliver.get(sig)
        if deliver is not None:
            deliver(sig)

    @staticmethod
    def _clear_wakeup_fd() -> None:
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            _log.info("set_wakeup_fd(-1) failed: %s", exc)
