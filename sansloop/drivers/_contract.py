"""What every driver provides to the compat loop.

A driver owns the clock, the waiting, the wake-up and the OS objects; it never owns
scheduling.  The loop drives one iteration as::

    timeout = core.timeout(driver.time(), stopping, sleep=True)
    driver.wait(timeout)          # I/O made ready is queued on the core meanwhile
    core.run_ready(driver.time())

Two capabilities sit beside that core contract, each its own Protocol:

* :class:`ReadinessDriver`: ``add_reader``/``add_writer`` callbacks on file descriptors
  (readiness drivers only; the loop raises ``NotImplementedError`` without it);
* :class:`SocketDriver`: socket operations the driver *completes*, shaped so that readiness
  drivers (try at once, watch the descriptor only when the call would block) and completion
  drivers (submit to the kernel, complete on the completion packet) both fit.

Every driver is attached once to the loop that owns it, right after the loop made its core
(:meth:`Driver.attach`): that is where a driver learns where ready callbacks go
(``core.push_ready``) and, for the virtual driver, when the next timer is due
(``core.next_deadline()``).  :class:`HostingDriver` is for a driver that runs the
iterations itself (the trio driver made outside trio: each ``run_forever`` is a trio run).
Two more capabilities serve the virtual driver: :class:`WorkTrackingDriver`, for drivers
whose clock must wait for work the core cannot see (executor jobs, helper threads), and
:class:`RunObserver`, which a driver offers as its ``leak_watch`` attribute to hear where a
run is in its life (the leak report).

``docs/architecture.md`` describes how each driver meets this contract.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

from sansloop.core import (
    DatagramChannel,
    DatagramSink,
    PipeChannel,
    PipeSink,
    Scheduler,
    StreamChannel,
    StreamSink,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "ChildDriver",
    "DatagramDriver",
    "Driver",
    "FileDescriptorLike",
    "HostingDriver",
    "PipeDriver",
    "PipeLike",
    "ReadinessDriver",
    "RunObserver",
    "SignalDriver",
    "SocketDriver",
    "StreamDriver",
    "StreamListener",
    "WorkTrackingDriver",
]


class Driver(Protocol):
    """The part of a driver that the scheduling loop needs."""

    #: Smallest difference the clock can tell apart; timers this close to now are due.
    clock_resolution: float

    def attach(self, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
        """Called once by the loop that owns this driver, right after it made ``core``.

        Whatever the driver pushes with ``core.push_ready`` during :meth:`wait` runs in the
        batch that follows, in push order, unless it was cancelled meanwhile (the core skips
        cancelled handles, as asyncio does).  A driver serves one loop.
        """
        ...

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


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class PipeLike(Protocol):
    """A pipe end as asyncio takes it: a file object (or socket) with ``fileno``/``close``."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


#: What ``add_reader`` and friends accept: a descriptor or an object with ``fileno()``.
FileDescriptorLike = int | _HasFileno


class HostingDriver(Driver, Protocol):
    """A driver that runs the loop's iterations itself instead of being called to wait.

    ``run_forever`` hands it ``EventLoop._run_as_guest()``, a generator that yields each
    iteration's timeout and runs one batch per ``send(None)`` until the loop stops; the
    driver waits between the two however its host does (the trio driver starts a trio run
    and awaits).  :meth:`Driver.wait` is then never called.
    """

    def host(self, run: Generator[float | None, None, None]) -> None:
        """Run ``run`` to its end, blocking; exceptions from callbacks come out of it."""
        ...


class WorkTrackingDriver(Driver, Protocol):
    """A driver whose clock must wait for work outside the core (the virtual driver).

    The loop reports every ``run_in_executor`` job (after wrapping it, so its result is
    posted back before the driver hears it ended) and the helper threads it starts.
    """

    def track_job(self, job: concurrent.futures.Future[Any]) -> None:
        """``job`` may still post work to the loop until it is done."""
        ...

    def track_thread(self, thread: threading.Thread) -> None:
        """``thread`` may still post work to the loop until it ends."""
        ...


class RunObserver(Protocol):
    """Hears the stages of a run; a driver offers one as its ``leak_watch`` attribute.

    The loop calls each method at the stage it names; none of them may raise except
    :meth:`loop_closed`, which may report what the run left behind by raising.
    """

    def run_starting(self, future: asyncio.Future[Any]) -> None:
        """``run_until_complete(future)`` begins (the loop is stopped)."""
        ...

    def shutting_down(self) -> None:
        """``shutdown_asyncgens()`` or ``shutdown_default_executor()`` begins."""
        ...

    def exception_reported(self, context: dict[str, Any]) -> None:
        """The loop's exception handler is about to receive ``context``."""
        ...

    def loop_closed(self) -> None:
        """The loop has closed and released everything."""
        ...


class ReadinessDriver(Driver, Protocol):
    """A driver that can call back when a file descriptor is readable or writable.

    One reader and one writer callback per descriptor, as in asyncio: adding one replaces
    the previous, which the driver hands back so the loop can cancel it.  During
    :meth:`Driver.wait` the driver pushes the handle of each ready direction onto the core
    unless it is cancelled; a cancelled handle found there is unregistered instead.  While
    any descriptor is registered, ``wait(0.0)`` must really look at the OS.
    """

    def add_reader(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        """Call ``handle`` whenever ``fd`` is readable; return the handle it replaces."""
        ...

    def remove_reader(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        """Stop watching ``fd`` for reading; return the handle removed (None: none was)."""
        ...

    def add_writer(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        """Call ``handle`` whenever ``fd`` is writable; return the handle it replaces."""
        ...

    def remove_writer(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        """Stop watching ``fd`` for writing; return the handle removed (None: none was)."""
        ...


class SocketDriver(Driver, Protocol):
    """Socket operations that the driver completes.

    Every method starts one operation on a non-blocking socket and completes ``fut`` with
    its result or its exception: at once if it can (the future may be done on return), or
    later, from inside :meth:`Driver.wait`.  Operations in one direction on one socket
    complete in the order they were started.  Cancelling ``fut`` abandons the operation and
    releases what it holds (a readiness driver stops watching the descriptor, a completion
    driver cancels the overlapped request); a cancelled operation may still have moved
    bytes, as with asyncio.  The loop checks the arguments and resolves addresses before it
    calls the driver.
    """

    def sock_recv(self, fut: asyncio.Future[bytes], sock: socket.socket, nbytes: int) -> None:
        """Complete ``fut`` with up to ``nbytes`` bytes (b"" at end of stream)."""
        ...

    def sock_recv_into(
        self, fut: asyncio.Future[int], sock: socket.socket, buf: WriteableBuffer
    ) -> None:
        """Complete ``fut`` with the number of bytes received into ``buf``."""
        ...

    def sock_recvfrom(
        self, fut: asyncio.Future[tuple[bytes, Any]], sock: socket.socket, bufsize: int
    ) -> None:
        """Complete ``fut`` with one datagram (up to ``bufsize`` bytes) and its sender."""
        ...

    def sock_recvfrom_into(
        self,
        fut: asyncio.Future[tuple[int, Any]],
        sock: socket.socket,
        buf: WriteableBuffer,
        nbytes: int,
    ) -> None:
        """Complete ``fut`` with (bytes received into ``buf``, sender)."""
        ...

    def sock_sendall(
        self, fut: asyncio.Future[None], sock: socket.socket, data: ReadableBuffer
    ) -> None:
        """Complete ``fut`` with None once every byte of ``data`` is sent."""
        ...

    def sock_sendto(
        self, fut: asyncio.Future[int], sock: socket.socket, data: ReadableBuffer, address: Any
    ) -> None:
        """Complete ``fut`` with the number of bytes sent in one datagram to ``address``."""
        ...

    def sock_connect(self, fut: asyncio.Future[None], sock: socket.socket, address: Any) -> None:
        """Complete ``fut`` with None once connected to the (resolved) ``address``."""
        ...

    def sock_accept(
        self, fut: asyncio.Future[tuple[socket.socket, Any]], sock: socket.socket
    ) -> None:
        """Complete ``fut`` with (a non-blocking connected socket, its peer address)."""
        ...


class StreamListener(Protocol):
    """Accepts connections on one listening socket while started."""

    def start(self) -> None:
        """Begin accepting (again)."""
        ...

    def stop(self) -> None:
        """Accept nothing more until :meth:`start`; the socket stays open."""
        ...


class StreamDriver(Driver, Protocol):
    """A driver that can carry stream transports (TCP, Unix sockets).

    The transport logic lives once in :class:`sansloop.core.StreamTransportCore`; a driver
    only moves bytes for it through a :class:`sansloop.core.StreamChannel` and accepts
    connections through a :class:`StreamListener`.
    """

    def open_stream(self, sock: socket.socket, sink: StreamSink) -> StreamChannel:
        """The channel of a connected non-blocking ``sock``, reporting to ``sink``."""
        ...

    def open_listener(
        self,
        sock: socket.socket,
        backlog: int,
        accepted: Callable[[socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> StreamListener:
        """A listener for the listening ``sock``, stopped until started.

        Each accepted connection reaches ``accepted(non-blocking socket, peer address)``;
        an error other than "nothing to accept" reaches ``failed``.
        """
        ...


class DatagramDriver(Driver, Protocol):
    """A driver that can carry datagram transports (UDP, Unix datagram sockets).

    The transport logic lives once in :class:`sansloop.core.DatagramTransportCore`; a driver
    only moves datagrams for it through a :class:`sansloop.core.DatagramChannel`.
    """

    def open_datagram(self, sock: socket.socket, sink: DatagramSink) -> DatagramChannel:
        """The channel of a non-blocking datagram ``sock``, reporting to ``sink``."""
        ...


class PipeDriver(Driver, Protocol):
    """A driver that can carry pipe transports (pipes, FIFOs, ptys, character devices).

    The transport logic lives once in :class:`sansloop.core.PipeReadTransportCore` and
    :class:`~sansloop.core.PipeWriteTransportCore`; the driver moves bytes through a
    :class:`sansloop.core.PipeChannel` over a descriptor that is not a socket (or is a
    socket used as a pipe).
    """

    def open_pipe(self, pipe: PipeLike, sink: PipeSink, write_end: bool) -> PipeChannel:
        """The channel of the non-blocking ``pipe``, reporting to ``sink``.

        On a write end (``write_end``), ``start_reading`` only watches for the reader going
        away and reports it as ``sink.received(b"")``.  Closing the channel closes ``pipe``.
        """
        ...


class ChildDriver(Driver, Protocol):
    """A driver that can wait for child processes (subprocess transports)."""

    def watch_child(self, pid: int, exited: Callable[[int | None], object]) -> None:
        """Reap child ``pid`` once it exits and run ``exited(returncode)`` on the loop.

        ``returncode`` is ``os.waitstatus_to_exitcode``'s (``-signal`` if a signal ended
        it), or None if someone else collected the status first (``Popen.poll()``).
        ``exited`` runs as a ready callback in a later batch, never from inside this call.
        A driver closed with children still watched must still reap them (no zombie, no
        descriptor left open), without calling ``exited``.
        """
        ...
