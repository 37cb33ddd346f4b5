"""The selectors driver: ``time.monotonic``, a ``selectors`` wait, a socketpair wake-up.

The default driver on Unix.  The selector class is the caller's choice: macOS users must pass
``selectors.SelectSelector`` or ``PollSelector`` to watch character devices, as the Python
docs explain.
"""

from __future__ import annotations

import selectors
import socket
import sys
import time
from collections.abc import Callable

from ._signals import SignalRouter

__all__ = ["SelectorDriver"]


class SelectorDriver:
    """Waits on a selector; wakes through a socketpair; routes signals on Unix."""

    clock_resolution: float = time.get_clock_info("monotonic").resolution
    time = staticmethod(time.monotonic)

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._selector = selector if selector is not None else selectors.DefaultSelector()
        self._closed = False
        try:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ, None)
        except BaseException:
            self.close()
            raise
        self._wake_send = self._wake_w.send
        self._signals = SignalRouter(self._wake_w.fileno()) if sys.platform != "win32" else None
        # File descriptors registered besides our own wake-up socket.
        self._user_fds = 0

    @property
    def selector(self) -> selectors.BaseSelector:
        return self._selector

    def wait(self, timeout: float | None) -> None:
        if timeout == 0.0 and not self._user_fds:
            # Nothing but our wake-up socket can be ready, and the inbox is read directly:
            # a zero-timeout poll would be a wasted system call.
            return
        for key, _mask in self._selector.select(timeout):
            if key.data is None:
                self._drain_wakeup()

    def wakeup(self) -> None:
        try:
            self._wake_send(b"\0")
        except OSError:
            # Full (a wake-up is already pending) or closed (the loop is gone).
            pass

    def add_signal(self, sig: int, deliver: Callable[[int], None]) -> None:
        if self._signals is None:
            raise NotImplementedError("signal handlers are not supported on Windows")
        self._signals.add(sig, deliver)

    def remove_signal(self, sig: int) -> None:
        if self._signals is not None:
            self._signals.remove(sig)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        selector = getattr(self, "_selector", None)
        if selector is not None:
            selector.close()
        for sock in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if sock is not None:
                sock.close()

    def _drain_wakeup(self) -> None:
        recv = self._wake_r.recv
        try:
            while recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
