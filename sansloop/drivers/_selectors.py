"""The selectors driver: ``time.monotonic``, a ``selectors`` wait, a socketpair wake-up.

The default driver on Unix.  The selector class is the caller's choice: macOS users must pass
``selectors.SelectSelector`` or ``PollSelector`` to watch character devices, as the Python
docs explain.

Readiness and socket operations share one registration per descriptor (a :class:`_Watch`,
the selector key's data): the user's reader and writer handles, as in asyncio, plus FIFO
queues of pending socket operations per direction.  An operation is tried at once; only when
it would block is it queued, and the descriptor watched; it is retried, in order, each time
the selector reports the direction ready.  The registration shrinks as soon as nothing wants
a direction any more, so ``_user_fds`` counts exactly the descriptors that can make a
zero-timeout ``select()`` worth its system call.
"""

from __future__ import annotations

import asyncio
import functools
import math
import select
import selectors
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sansloop.core import Callback, Scheduler

from . import _socket_ops as ops
from ._children import ChildReaper
from ._contract import FileDescriptorLike, PipeLike
from ._selector_datagrams import ReadinessDatagram
from ._selector_pipes import ReadinessPipe
from ._selector_streams import ReadinessListener, ReadinessStream
from ._signals import SignalRouter

if TYPE_CHECKING:
    from sansloop.core import DatagramSink, PipeSink, StreamSink

    from ._contract import (
        ChildDriver,
        DatagramDriver,
        PipeDriver,
        ReadinessDriver,
        SignalDriver,
        SocketDriver,
        StreamDriver,
    )

__all__ = ["SelectorDriver"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_NOT_EPOLLIN = ~getattr(select, "EPOLLIN", 0)
_NOT_EPOLLOUT = ~getattr(select, "EPOLLOUT", 0)


class _Watch:
    """What one registered descriptor is watched for (the selector key's data)."""

    __slots__ = ("events", "fd", "read_ops", "reader", "write_ops", "writer")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.events = 0
        self.reader: asyncio.Handle | None = None
        self.writer: asyncio.Handle | None = None
        self.read_ops: deque[ops.Op] = deque()
        self.write_ops: deque[ops.Op] = deque()

    def wanted(self) -> int:
        events = 0
        if self.reader is not None or self.read_ops:
            events = _READ
        if self.writer is not None or self.write_ops:
            events |= _WRITE
        return events


def _not_attached(handle: Callback) -> None:
    raise RuntimeError("the driver was never attached to a core (call attach() first)")


class SelectorDriver(ops.SocketOperations):
    """Waits on a selector; wakes through a socketpair; routes signals on Unix."""

    clock_resolution: float = time.get_clock_info("monotonic").resolution
    #: The epoll object polled directly (None: the selector's own select() is used).
    _epoll: Any
    _signals: SignalRouter | None
    time = staticmethod(time.monotonic)

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._init_io_state(selector if selector is not None else selectors.DefaultSelector())
        try:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ, None)
        except BaseException:
            self.close()
            raise
        self._wake_send = self._wake_w.send
        self._wake_fd = self._wake_r.fileno()
        # epoll (the Linux default), polled directly: selectors' select() builds a list of
        # (key, events) pairs that wait() would only walk again.  Exactly EpollSelector, so
        # that a subclass's select() keeps being called.
        if type(self._selector) is getattr(selectors, "EpollSelector", None):
            self._epoll = self._selector._selector  # type: ignore[attr-defined]
        self._signals = SignalRouter(self._wake_w.fileno()) if sys.platform != "win32" else None

    def _init_io_state(self, selector: selectors.BaseSelector) -> None:
        """The readiness and socket-operation state, without the wake-up socket or signals.

        A driver that reuses this machinery over a selector of its own (the virtual
        driver's) calls this instead of ``__init__``.
        """
        self._selector = selector
        self._closed = False
        self._wake_fd = -1
        self._epoll = None
        self._signals = None
        # File descriptors registered besides our own wake-up socket.
        self._user_fds = 0
        # The registered descriptors' watches, by descriptor number.
        self._watches: dict[int, _Watch] = {}
        self._push_ready: Callable[[Callback], None] = _not_attached
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: ChildReaper | None = None

    @property
    def selector(self) -> selectors.BaseSelector:
        return self._selector

    def attach(self, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
        self._push_ready = core.push_ready
        self._loop = loop

    def wait(self, timeout: float | None) -> None:
        if not self._user_fds and timeout is not None and not timeout:
            # Nothing but our wake-up socket can be ready, and the inbox is read directly:
            # a zero-timeout poll would be a wasted system call.
            return
        if self._epoll is not None:
            self._wait_epoll(timeout)
            return
        push = self._push_ready
        for key, mask in self._selector.select(timeout):
            watch = key.data
            if watch is None:
                self._drain_wakeup()
                continue
            # The common case inline (a live callback, no queued socket operation): one
            # push, no call.  Everything else goes through _ready().
            if mask & _READ:
                handle = watch.reader
                if watch.read_ops or handle is None or handle._cancelled:
                    self._ready(watch, True)
                else:
                    push(handle)
            if mask & _WRITE:
                handle = watch.writer
                if watch.write_ops or handle is None or handle._cancelled:
                    self._ready(watch, False)
                else:
                    push(handle)

    def _wait_epoll(self, timeout: float | None) -> None:
        """:meth:`wait` on epoll itself, with EpollSelector's timeout and event rules."""
        if timeout is None:
            timeout = -1.0
        elif timeout > 0.0:
            # epoll_wait() counts milliseconds: round up, to wait at least ``timeout``.
            timeout = math.ceil(timeout * 1e3) * 1e-3
        else:
            timeout = 0.0
        try:
            events = self._epoll.poll(timeout, self._user_fds + 1)
        except InterruptedError:
            return
        watches = self._watches
        push = self._push_ready
        for fd, event in events:
            watch = watches.get(fd)
            if watch is None:
                if fd == self._wake_fd:
                    self._drain_wakeup()
                # Otherwise unregistered by an earlier event's work in this same batch.
                continue
            wanted = watch.events
            # As EpollSelector maps them: an error or hang-up wakes both directions.
            if event & _NOT_EPOLLOUT and wanted & _READ:
                handle = watch.reader
                if watch.read_ops or handle is None or handle._cancelled:
                    self._ready(watch, True)
                else:
                    push(handle)
            if event & _NOT_EPOLLIN and wanted & _WRITE:
                handle = watch.writer
                if watch.write_ops or handle is None or handle._cancelled:
                    self._ready(watch, False)
                else:
                    push(handle)

    def wakeup(self) -> None:
        try:
            self._wake_send(b"\0")
        except OSError:
            # Full (a wake-up is already pending) or closed (the loop is gone).
            pass

    # -- readiness callbacks --------------------------------------------------------------

    def add_reader(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._set_handle(fd, handle, True)

    def remove_reader(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._set_handle(fd, None, True)

    def add_writer(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._set_handle(fd, handle, False)

    def remove_writer(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._set_handle(fd, None, False)

    def _set_handle(
        self, fd: FileDescriptorLike, handle: asyncio.Handle | None, reading: bool
    ) -> asyncio.Handle | None:
        mapping = self._selector.get_map()
        if mapping is None:
            raise RuntimeError("the selector driver is closed")
        if handle is not None and self._push_ready is _not_attached:
            _not_attached(handle)
        # The selector's own lookup: ValueError for bad descriptors, and a closed file
        # object is still found by identity, as in asyncio.
        key = mapping.get(fd)
        if key is None:
            if handle is not None:
                watch = _Watch(-1)
                if reading:
                    watch.reader = handle
                else:
                    watch.writer = handle
                self._register(fd, watch)
            return None
        watch = key.data
        if not isinstance(watch, _Watch):
            raise ValueError(f"file descriptor {key.fd} is the loop's own wake-up socket")
        if reading:
            old, watch.reader = watch.reader, handle
        else:
            old, watch.writer = watch.writer, handle
        self._sync(watch)
        return old

    # -- socket operations ----------------------------------------------------------------

    def _start(self, op: ops.Op) -> None:
        fd = op.sock.fileno()
        watch = self._watches.get(fd)
        if watch is not None and self._drop_abandoned(watch, op.reading):
            watch = self._watches.get(fd)
        # Behind operations already waiting in this direction, an attempt would jump the
        # queue (and interleave the bytes of two sendall() calls).
        if (
            watch is None or not (watch.read_ops if op.reading else watch.write_ops)
        ) and ops.settle(op, True):
            return
        if self._closed:
            op.fut.set_exception(RuntimeError("the selector driver is closed"))
            return
        op.abandon = functools.partial(self._abandon, fd, op)
        if watch is None:
            watch = _Watch(-1)
            (watch.read_ops if op.reading else watch.write_ops).append(op)
            try:
                self._register(fd, watch)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                op.abandon = None
                op.fut.set_exception(exc)
                return
        else:
            (watch.read_ops if op.reading else watch.write_ops).append(op)
            self._sync_or_fail(watch)
        op.fut.add_done_callback(op.abandon)

    def _drop_abandoned(self, watch: _Watch, reading: bool) -> bool:
        """Drop cancelled operations from the head of a queue; return whether there were any.

        A cancelled operation stays queued until its clean-up callback runs, one batch later.
        A new operation must not wait behind it: it would skip its first attempt (a
        ``connect`` queued there would never call ``connect()`` and report the cancelled
        attempt's outcome instead).
        """
        queue = watch.read_ops if reading else watch.write_ops
        if not queue or not queue[0].fut.done():
            return False
        while queue and queue[0].fut.done():
            queue.popleft()
        self._sync_or_fail(watch)
        return True

    def _abandon(self, fd: int, op: ops.Op, fut: asyncio.Future[Any]) -> None:
        """``op``'s future was completed by someone else (cancelled): stop waiting for it."""
        # By descriptor number, not sock.fileno(): the socket may be closed by now.
        if self._closed:
            return
        watch = self._watches.get(fd)
        if watch is None:
            return
        queue = watch.read_ops if op.reading else watch.write_ops
        try:
            queue.remove(op)
        except ValueError:
            return
        self._sync_or_fail(watch)

    def _ready(self, watch: _Watch, reading: bool) -> None:
        """The selector reported ``watch``'s descriptor ready in one direction."""
        queue = watch.read_ops if reading else watch.write_ops
        if queue:
            changed = False
            while queue:
                op = queue[0]
                if op.fut.done() or ops.settle(op, False):
                    queue.popleft()
                    changed = True
                else:
                    break
            if changed:
                self._sync_or_fail(watch)
        handle = watch.reader if reading else watch.writer
        if handle is not None:
            if handle._cancelled:
                if reading:
                    watch.reader = None
                else:
                    watch.writer = None
                self._sync_or_fail(watch)
            else:
                self._push_ready(handle)

    # -- registrations --------------------------------------------------------------------

    def _register(self, fd: FileDescriptorLike, watch: _Watch) -> None:
        events = watch.wanted()
        key = self._selector.register(fd, events, watch)
        watch.fd = key.fd
        watch.events = events
        self._watches[key.fd] = watch
        self._user_fds += 1

    def _sync(self, watch: _Watch) -> None:
        """Make the selector watch what ``watch`` wants; unregister when that is nothing."""
        events = watch.wanted()
        if events == watch.events or self._watches.get(watch.fd) is not watch:
            return
        if events:
            try:
                self._selector.modify(watch.fd, events, watch)
            except BaseException:
                # Poll-like selectors forget a descriptor whose modify() failed.
                if self._selector.get_map().get(watch.fd) is None:
                    self._forget(watch)
                raise
            watch.events = events
        else:
            self._forget(watch)
            self._selector.unregister(watch.fd)

    def _sync_or_fail(self, watch: _Watch) -> None:
        """:meth:`_sync` where no caller can take an error: pending operations take it."""
        try:
            self._sync(watch)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            for op in (*watch.read_ops, *watch.write_ops):
                if not op.fut.done():
                    if op.abandon is not None:
                        op.fut.remove_done_callback(op.abandon)
                    op.fut.set_exception(exc)
            watch.read_ops.clear()
            watch.write_ops.clear()
            if self._watches.get(watch.fd) is watch:
                self._forget(watch)
                try:
                    self._selector.unregister(watch.fd)
                except (KeyError, ValueError, OSError):
                    pass

    def _forget(self, watch: _Watch) -> None:
        del self._watches[watch.fd]
        watch.events = 0
        self._user_fds -= 1

    # -- streams --------------------------------------------------------------------------

    def open_stream(self, sock: socket.socket, sink: StreamSink) -> ReadinessStream:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        return ReadinessStream(self, self._loop, sock, sink)

    def open_listener(
        self,
        sock: socket.socket,
        backlog: int,
        accepted: Callable[[socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> ReadinessListener:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        return ReadinessListener(self, self._loop, sock, backlog, accepted, failed)

    # -- datagrams ------------------------------------------------------------------------

    def open_datagram(self, sock: socket.socket, sink: DatagramSink) -> ReadinessDatagram:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        return ReadinessDatagram(self, self._loop, sock, sink)

    # -- pipes and child processes --------------------------------------------------------

    def open_pipe(self, pipe: PipeLike, sink: PipeSink, write_end: bool) -> ReadinessPipe:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        return ReadinessPipe(self, self._loop, pipe, sink, write_end)

    def watch_child(self, pid: int, exited: Callable[[int | None], object]) -> None:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        if sys.platform == "win32":
            raise NotImplementedError("the selectors driver cannot watch processes on Windows")
        if self._children is None:
            self._children = ChildReaper(self, self._loop)
        self._children.watch(pid, exited)

    # -- signals and closing --------------------------------------------------------------

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
        if self._children is not None:
            self._children.close()
        self._closed = True
        self._watches = {}
        self._user_fds = 0
        selector = getattr(self, "_selector", None)
        if selector is not None:
            selector.close()
        for sock in (getattr(self, "_wake_r", None), getattr(self, "_wake_w", None)):
            if sock is not None:
                sock.close()

    def _drain_wakeup(self) -> None:
        recv = self._wake_r.recv
        try:
            # A short read means the socket is empty: stop there, rather than pay for one
            # more recv() that fails with BlockingIOError.
            while len(recv(4096)) == 4096:
                pass
        except (BlockingIOError, InterruptedError):
            pass


if TYPE_CHECKING:

    def _meets_the_contract(
        driver: SelectorDriver,
    ) -> tuple[
        SignalDriver,
        ReadinessDriver,
        SocketDriver,
        StreamDriver,
        DatagramDriver,
        PipeDriver,
        ChildDriver,
    ]:
        # mypy checks SelectorDriver against every capability it claims.
        return driver, driver, driver, driver, driver, driver, driver
