"""``loop.sock_sendfile()`` and ``loop.sendfile()``: zero-copy where it can be, else read and send.

The zero-copy path calls ``os.sendfile`` on the non-blocking socket and, whenever the socket is
full, waits for it to be writable through the driver's own writer callback
(:class:`sansloop.drivers.ReadinessDriver`), not ``loop.add_writer``: that one refuses a
descriptor owned by a transport, and ``loop.sendfile()`` sends on a transport's socket.  A
driver without readiness callbacks, a Python without ``os.sendfile``, or a file without a
descriptor make the path unavailable (``asyncio.SendfileNotAvailableError``), and the call falls
back to reading chunks in the default executor and sending them with ``sock_sendall`` (or the
transport's ``write``, under its flow control), unless ``fallback=False``.

Behaviour follows asyncio's ``base_events``/``selector_events``/``unix_events`` on 3.11 to 3.13:
the same argument checks and messages, the same errors, the file position set to
``offset + bytes sent`` afterwards.  Where asyncio leaves a transport broken (a cancelled
drain leaves writes refused forever, closing the transport mid-transfer hangs the call), this
module restores the transport and fails the call instead; the file position is also updated
when the zero-copy transfer is cancelled, as the documentation promises.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import sys
from asyncio import constants
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from sansloop.core import StreamTransportCore, TLSTransportCore

from ._readiness import ensure_fd_no_transport
from ._transports import SocketTransport

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from sansloop.drivers import ReadinessDriver

    from ._loop import EventLoop

__all__ = ["SENDFILE_METHODS"]

_NotAvailable = asyncio.SendfileNotAvailableError
_Mode = constants._SendfileMode

_NativeHook = Callable[[Any, Any, int, "int | None"], Awaitable[int]]

#: Bytes read per chunk when ``loop.sendfile()`` falls back to ``transport.write`` (asyncio's).
_TRANSPORT_CHUNK = 16384


# -- argument checks ------------------------------------------------------------------------


def _check_socket(loop: EventLoop, sock: socket.socket) -> None:
    """asyncio's checks of the socket, in asyncio's order."""
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_params(sock: socket.socket, file: Any, offset: object, count: object) -> None:
    """asyncio's ``_check_sendfile_params``: the same exception types and messages."""
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


# -- the zero-copy path -----------------------------------------------------------------------


class _ZeroCopy:
    """One ``os.sendfile`` transfer, advanced each time the socket is writable.

    Each attempt sends what the socket takes from ``offset``; the transfer ends at the count,
    at the end of the file, or on an error, and then sets the file position to where it
    stopped.  The writer callback stays registered from the first "would block" to the end,
    and :meth:`finish` (always called by the awaiting coroutine) removes it, so a cancelled
    transfer leaves nothing registered.
    """

    __slots__ = (
        "_count",
        "_driver",
        "_ended",
        "_fd",
        "_fileno",
        "_handle",
        "_loop",
        "_offset",
        "_sendfile",
        "_sock",
        "blocksize",
        "fut",
        "total_sent",
    )

    def __init__(
        self,
        loop: EventLoop,
        driver: ReadinessDriver,
        sendfile: Callable[[int, int, int, int], int],
        sock: socket.socket,
        fileno: int,
        offset: int,
        count: int | None,
        blocksize: int,
    ) -> None:
        self._loop = loop
        self._driver = driver
        self._sendfile = sendfile
        self._sock = sock
        self._fd = sock.fileno()
        self._fileno = fileno
        self._offset = offset
        self._count = count
        self.blocksize = blocksize
        self.total_sent = 0
        self.fut: asyncio.Future[int] = loop.create_future()
        self._handle: asyncio.Handle | None = None
        self._ended = False

    def step(self) -> None:
        """Send once; then wait for writability, or end the transfer."""
        if self._ended or self.fut.done():
            return
        blocksize = self.blocksize
        if self._count:
            blocksize = self._count - self.total_sent
            if blocksize <= 0:
                self._end(self.total_sent, None)
                return
        try:
            # sock.fileno(), not the number we started with: a socket closed meanwhile
            # gives EBADF rather than a send on whatever now has that number.
            sent = self._sendfile(self._sock.fileno(), self._fileno, self._offset, blocksize)
        except (BlockingIOError, InterruptedError):
            self._watch()
        except OSError as exc:
            self._end(None, self._failure(exc))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._end(None, exc)
        else:
            if sent == 0:  # End of file.
                self._end(self.total_sent, None)
                return
            self._offset += sent
            self.total_sent += sent
            self._watch()

    def _failure(self, exc: OSError) -> BaseException:
        """What the caller sees for a failed ``os.sendfile`` (asyncio's choices)."""
        retried = self._handle is not None
        if retried and exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
            # The peer went away mid-transfer: the same error on every POSIX system.
            lost = ConnectionError("socket is not connected", errno.ENOTCONN)
            lost.__cause__ = exc
            exc = lost
        if self.total_sent == 0:
            # Typically a file that sendfile(2) cannot map: plain reads and sends can.
            unavailable = _NotAvailable("os.sendfile call failed")
            unavailable.__cause__ = exc
            return unavailable
        return exc

    def abort(self, exc: BaseException) -> None:
        """End the transfer with ``exc`` now (its transport lost the connection)."""
        if not self._ended and not self.fut.done():
            self._end(None, exc)

    def finish(self) -> None:
        """The awaiting coroutine is done (returned, failed or cancelled): clean up."""
        if self._ended:
            return
        self._ended = True
        self._unwatch()
        try:
            self._update_position()
        except OSError:
            pass  # Cancelled; the caller's CancelledError says more than this would.

    def _end(self, result: int | None, exc: BaseException | None) -> None:
        self._ended = True
        self._unwatch()
        try:
            self._update_position()
        except OSError as err:
            if exc is None:
                exc = err
        if exc is not None:
            self.fut.set_exception(exc)
        else:
            self.fut.set_result(result)  # type: ignore[arg-type]

    def _update_position(self) -> None:
        if self.total_sent > 0:
            os.lseek(self._fileno, self._offset, os.SEEK_SET)

    def _watch(self) -> None:
        if self._handle is not None:
            return
        handle = asyncio.Handle(self.step, (), self._loop, None)
        try:
            replaced = self._driver.add_writer(self._fd, handle)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._end(None, exc)
            return
        self._handle = handle
        if replaced is not None:
            replaced.cancel()  # As asyncio's add_writer() does.

    def _unwatch(self) -> None:
        handle = self._handle
        if handle is None:
            return
        self._handle = None
        handle.cancel()
        if self._loop.is_closed():
            return
        removed = self._driver.remove_writer(self._fd)
        if removed is not None and removed is not handle:
            # Someone else's writer replaced ours meanwhile: it stays.
            self._driver.add_writer(self._fd, removed)


async def _zero_copy(
    loop: EventLoop,
    sock: socket.socket,
    file: Any,
    offset: int,
    count: int | None,
    guard: _SendfileInProgress | None = None,
) -> int:
    """Send with ``os.sendfile``, or raise ``SendfileNotAvailableError`` before sending."""
    # Looked up on each call: Windows has none, and tests take it away.
    os_sendfile: Callable[[int, int, int, int], int] | None = getattr(os, "sendfile", None)
    if os_sendfile is None:
        raise _NotAvailable("os.sendfile() is not available")
    driver = loop._driver
    if not hasattr(driver, "add_writer"):
        raise _NotAvailable(
            f"os.sendfile() is not available on the {type(driver).__name__} driver "
            "(it has no readiness callbacks)"
        )
    if not isinstance(sock, socket.socket):
        raise _NotAvailable("os.sendfile() needs an OS socket")
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation) as err:
        raise _NotAvailable("not a regular file") from err
    try:
        fsize = os.fstat(fileno).st_size
    except OSError as err:
        raise _NotAvailable("not a regular file") from err
    blocksize = count if count else fsize
    if not blocksize:
        return 0  # An empty file.
    # Within what one sendfile(2) call accepts on 32-bit systems (as asyncio on 3.13).
    blocksize = min(blocksize, sys.maxsize // 2 + 1)
    readiness = cast("ReadinessDriver", driver)
    transfer = _ZeroCopy(loop, readiness, os_sendfile, sock, fileno, offset, count, blocksize)
    if guard is not None:
        guard.transfer = transfer
    transfer.step()
    try:
        return await transfer.fut
    finally:
        transfer.finish()


async def _read_and_send(
    loop: EventLoop, sock: socket.socket, file: Any, offset: int, count: int | None
) -> int:
    """The fallback: read chunks in the default executor, send each with ``sock_sendall``."""
    if offset:
        file.seek(offset)
    # Looked up on each call, as asyncio does (its tests shrink it).
    chunk = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
    blocksize = min(count, chunk) if count else chunk
    buf = bytearray(blocksize)
    total_sent = 0
    try:
        while True:
            if count:
                blocksize = min(count - total_sent, blocksize)
                if blocksize <= 0:
                    break
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                break  # End of file.
            await loop.sock_sendall(sock, view[:read])
            total_sent += read
        return total_sent
    finally:
        if total_sent > 0 and hasattr(file, "seek"):
            file.seek(offset + total_sent)


async def _sock_sendfile(
    loop: EventLoop,
    sock: socket.socket,
    file: Any,
    offset: int,
    count: int | None,
    fallback: bool,
    guard: _SendfileInProgress | None = None,
) -> int:
    _check_socket(loop, sock)
    _check_params(sock, file, offset, count)
    try:
        return await _zero_copy(loop, sock, file, offset, count, guard)
    except _NotAvailable:
        if not fallback:
            raise
    return await _read_and_send(loop, sock, file, offset, count)


async def sock_sendfile(
    self: EventLoop,
    sock: socket.socket,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
) -> int:
    """Send ``file`` (from ``offset``, ``count`` bytes or to its end) on ``sock``.

    Returns the number of bytes sent; the file position is left after the last byte sent.
    """
    ensure_fd_no_transport(self, sock)
    return await _sock_sendfile(self, sock, file, offset, count, fallback)


# -- transports -------------------------------------------------------------------------------


class _SendfileInProgress:
    """Holds a transport's empty-waiter slot while ``os.sendfile`` writes on its socket.

    The transport refuses writes while the slot is taken, and fails the waiter in it when the
    connection is lost (``close()``, ``abort()``, a failed write).  A transport's
    ``_make_empty_waiter`` future is already done at this point, so this object stands in for
    it and turns that failure into the end of the transfer, at once: the writer callback is
    removed in the same callback that closed the socket, before the driver looks at the
    descriptor again.
    """

    __slots__ = ("transfer",)

    def __init__(self) -> None:
        self.transfer: _ZeroCopy | None = None

    def done(self) -> bool:
        transfer = self.transfer
        return transfer is None or transfer.fut.done()

    def set_result(self, result: None) -> None:
        pass  # The buffer drained: it was empty all along.

    def set_exception(self, exc: BaseException) -> None:
        transfer = self.transfer
        if transfer is not None:
            transfer.abort(exc)


async def _transport_zero_copy(
    loop: EventLoop, transp: Any, file: Any, offset: int, count: int | None
) -> int:
    """asyncio's ``_sendfile_native``: drain, pause reading, ``os.sendfile`` on the socket."""
    if not isinstance(transp, SocketTransport):
        raise _NotAvailable("sendfile syscall is not supported")
    # Taken first: if another sendfile holds the slot, nothing else may change.
    drained = transp._make_empty_waiter()
    resume_reading = transp.is_reading()
    transp.pause_reading()
    try:
        await drained
        sock = transp._sock
        if sock is None or transp.is_closing():
            # The fallback's drain reports the closed connection, as in asyncio.
            raise _NotAvailable("the transport is closing")
        guard = _SendfileInProgress()
        transp._empty_waiter = guard
        return await _sock_sendfile(loop, sock, file, offset, count, False, guard)
    finally:
        transp._reset_empty_waiter()
        if resume_reading:
            transp.resume_reading()


class _FallbackProtocol(asyncio.Protocol):
    """Stands in for the transport's protocol while the fallback writes the file.

    It hears the transport's flow control (so each chunk waits until the buffer is below the
    low-water mark) and the loss of the connection, which it passes on to the real protocol.
    Reading is paused meanwhile; :meth:`restore` puts everything back.
    """

    def __init__(self, loop: EventLoop, transp: Any) -> None:
        # asyncio's check; sansloop's own transports keep their flow control in the core.
        if not isinstance(
            transp, (StreamTransportCore, TLSTransportCore, asyncio.transports._FlowControlMixin)
        ):
            raise TypeError("transport should be _FlowControlMixin instance")
        self._loop = loop
        self._transport: Any = transp
        self._proto = transp.get_protocol()
        self._should_resume_reading: bool = transp.is_reading()
        self._should_resume_writing: bool = cast("Any", transp)._protocol_paused
        transp.pause_reading()
        transp.set_protocol(self)
        self._write_ready: asyncio.Future[None] | None = (
            loop.create_future() if self._should_resume_writing else None
        )

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        waiter = self._write_ready
        if waiter is not None:
            await waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._write_ready
        if waiter is not None:
            # Only a transfer still in progress waits here: for the caller, an error.
            waiter.set_exception(
                exc if exc is not None else ConnectionError("Connection is closed by peer")
            )
        self._proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = self._loop.create_future()

    def resume_writing(self) -> None:
        waiter = self._write_ready
        if waiter is not None:
            self._write_ready = None
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> bool | None:
        raise RuntimeError("Invalid state: reading should be paused")

    def restore(self) -> None:
        """Give the transport back its protocol, its reading and its writing state."""
        transp = self._transport
        transp.set_protocol(self._proto)
        if self._should_resume_reading:
            transp.resume_reading()
        waiter = self._write_ready
        if waiter is not None:
            # Nobody waits on it any more; cancelled so its exception is never "unretrieved".
            waiter.cancel()
        if self._should_resume_writing:
            self._proto.resume_writing()


async def _transport_write_file(
    loop: EventLoop, transp: Any, file: Any, offset: int, count: int | None
) -> int:
    """asyncio's ``_sendfile_fallback``: chunks through ``transport.write``, flow-controlled."""
    if offset:
        file.seek(offset)
    blocksize = min(count, _TRANSPORT_CHUNK) if count else _TRANSPORT_CHUNK
    buf = bytearray(blocksize)
    total_sent = 0
    proto = _FallbackProtocol(loop, transp)
    try:
        while True:
            if count:
                blocksize = min(count - total_sent, blocksize)
                if blocksize <= 0:
                    return total_sent
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                return total_sent  # End of file.
            await proto.drain()
            transp.write(view[:read])
            total_sent += read
    finally:
        if total_sent > 0 and hasattr(file, "seek"):
            file.seek(offset + total_sent)
        proto.restore()


async def sendfile(
    self: EventLoop,
    transport: asyncio.WriteTransport,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
) -> int:
    """Send ``file`` on ``transport``; return the number of bytes sent.

    ``os.sendfile`` on the transport's socket once its buffer drained, else (or with a
    transport that cannot, such as TLS) the file's chunks through ``transport.write``.
    """
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    mode = getattr(transport, "_sendfile_compatible", _Mode.UNSUPPORTED)
    if mode is _Mode.UNSUPPORTED:
        raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
    if mode is _Mode.TRY_NATIVE:
        try:
            # Through the loop, as asyncio does: its tests replace the hook.
            hook: _NativeHook = self._sendfile_native  # type: ignore[attr-defined]
            return await hook(transport, file, offset, count)
        except _NotAvailable:
            if not fallback:
                raise
    if not fallback:
        message = "fallback is disabled and native sendfile is not supported for transport"
        raise RuntimeError(f"{message} {transport!r}")
    return await _transport_write_file(self, transport, file, offset, count)


async def _sendfile_native(
    self: EventLoop, transp: Any, file: Any, offset: int, count: int | None
) -> int:
    """asyncio's hook of the same name (tests replace it to force the fallback)."""
    return await _transport_zero_copy(self, transp, file, offset, count)


#: name -> method, for the compat loop to place in its class body.
SENDFILE_METHODS: dict[str, Callable[..., Any]] = {
    "sock_sendfile": sock_sendfile,
    "sendfile": sendfile,
    "_sendfile_native": _sendfile_native,
}
