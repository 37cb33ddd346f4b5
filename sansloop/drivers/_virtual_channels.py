"""The virtual driver's I/O: readiness, socket operations and channels on virtual sockets.

Virtual sockets (``_vsocket.py``) behave like non-blocking OS sockets and say whether they
are readable or writable, so the virtual driver needs no transport code of its own: it
runs the selectors driver's machinery -- its readiness callbacks, its ``sock_*`` operation
queues, and the ``ReadinessStream``/``ReadinessListener``/``ReadinessDatagram`` channels --
over a :class:`VirtualSelector`, a ``selectors.BaseSelector`` whose ``select`` polls the
registered virtual sockets (level-triggered, in registration order, so deterministically).
There is no wake-up socket and no signal routing: waking and time belong to the clock.

A real file descriptor (a number below ``FIRST_VIRTUAL_FD``, or a real ``socket.socket``)
is refused with :class:`RealFileDescriptorError`, which says how to opt in to real I/O:
with ``VirtualClock(real_io=True)`` real descriptors are watched by a real selector beside
the virtual sockets, and while any is registered the clock holds still -- the driver blocks
on that selector (and a wake-up socketpair, made only then) instead of jumping in time.
"""

from __future__ import annotations

import asyncio
import selectors
import socket as _socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sansloop.core import Scheduler

from ._selectors import SelectorDriver
from ._vnet import FIRST_VIRTUAL_FD, RealFileDescriptorError, VirtualNetwork
from ._vsocket import VirtualSocket

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from sansloop.core import DatagramSink, StreamSink

    from ._contract import FileDescriptorLike
    from ._selector_datagrams import ReadinessDatagram
    from ._selector_streams import ReadinessListener, ReadinessStream

__all__ = ["VirtualIO", "VirtualIOMethods", "VirtualSelector", "real_fd_error"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


def real_fd_error(what: object) -> RealFileDescriptorError:
    """The error for a real descriptor or socket met by the virtual driver."""
    return RealFileDescriptorError(
        f"{what!r} is a real file descriptor, but the virtual driver runs an in-memory "
        "network in virtual time: open sockets through the loop (create_connection, "
        "create_server, ...) or clock.network.socket(), or pass "
        "VirtualClock(real_io=True) to do real I/O (the clock then holds still while it "
        "is pending)"
    )


class _Map(Mapping[Any, selectors.SelectorKey]):
    def __init__(self, selector: VirtualSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._selector._fd(fileobj)
        return self._selector._keys[fd]

    def __iter__(self) -> Any:
        return iter(self._selector._keys)


class VirtualSelector(selectors.BaseSelector):
    """``selectors``' interface over virtual sockets: ``select`` polls their readiness."""

    def __init__(self, network: VirtualNetwork, real_io: bool = False) -> None:
        self._network = network
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._map: _Map | None = _Map(self)
        self._real_io = real_io
        self._real: selectors.BaseSelector | None = None
        self._wake: tuple[_socket.socket, _socket.socket] | None = None
        #: The real descriptors registered (the clock holds while there are any).
        self.real_fds: set[int] = set()

    def _real_selector(self) -> selectors.BaseSelector:
        real = self._real
        if real is None:
            real = self._real = selectors.DefaultSelector()
            wake_r, wake_w = _socket.socketpair()
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            self._wake = (wake_r, wake_w)
            real.register(wake_r, _READ, None)
        return real

    def poke(self) -> None:
        """Make :meth:`block` return (thread-safe)."""
        wake = self._wake
        if wake is not None:
            try:
                wake[1].send(b"\0")
            except OSError:
                pass

    def block(self) -> None:
        """Wait until a real descriptor is ready or :meth:`poke` is called."""
        real = self._real
        if real is not None:
            real.select(None)
            self._drain()

    def _drain(self) -> None:
        wake = self._wake
        if wake is not None:
            try:
                while wake[0].recv(4096):
                    pass
            except OSError:
                pass

    def _fd(self, fileobj: Any) -> int:
        if isinstance(fileobj, int):
            fd = fileobj
        else:
            try:
                fd = int(fileobj.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fileobj!r}") from None
        if fd < 0:
            raise ValueError(f"Invalid file descriptor: {fd}")
        return fd

    def _is_real(self, fileobj: Any, fd: int) -> bool:
        if fd < FIRST_VIRTUAL_FD or isinstance(fileobj, _socket.socket):
            if not self._real_io:
                raise real_fd_error(fileobj)
            return True
        if self._network.lookup_fd(fd) is None:
            raise ValueError(f"Invalid file descriptor: {fd} (no open virtual socket has it)")
        return False

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        fd = self._fd(fileobj)
        real = self._is_real(fileobj, fd)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        if real:
            key = self._real_selector().register(fileobj, events, data)
            self.real_fds.add(fd)
        else:
            key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._fd(fileobj)
        try:
            key = self._keys.pop(fd)
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if fd in self.real_fds:
            self.real_fds.discard(fd)
            assert self._real is not None
            self._real.unregister(key.fileobj)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self._fd(fileobj)
        key = self._keys.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        if fd in self.real_fds:
            assert self._real is not None
            key = self._real.modify(key.fileobj, events, data)
        else:
            key = key._replace(events=events, data=data)
        self._keys[fd] = key
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Every registered socket that is ready now (never waits: time is the clock's)."""
        lookup = self._network.lookup_fd
        ready: list[tuple[selectors.SelectorKey, int]] = []
        real_fds = self.real_fds
        if real_fds:
            assert self._real is not None
            for key, mask in self._real.select(0):
                if key.data is None:
                    self._drain()
                else:
                    ready.append((key, mask))
        for fd, key in list(self._keys.items()):
            if fd in real_fds:
                continue
            sock = lookup(fd)
            if sock is None:
                continue  # Closed: like epoll, forget silently.
            mask = 0
            if key.events & _READ and sock.readable():
                mask = _READ
            if key.events & _WRITE and sock.writable():
                mask |= _WRITE
            if mask:
                ready.append((key, mask))
        if self._network.shuffle_io and len(ready) > 1:
            self._network.random.shuffle(ready)
        return ready

    def close(self) -> None:
        self._keys.clear()
        self._map = None
        self.real_fds.clear()
        if self._real is not None:
            self._real.close()
        for sock in self._wake or ():
            sock.close()
        self._wake = None

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map  # type: ignore[return-value]


class VirtualIO(SelectorDriver):
    """The selectors driver's readiness and socket machinery, over a :class:`VirtualSelector`.

    Only the I/O half of :class:`SelectorDriver` is used: no wake-up socket, no signals,
    no clock (the :class:`VirtualDriver` owns those).
    """

    def __init__(self, network: VirtualNetwork, real_io: bool = False) -> None:
        # SelectorDriver.__init__ would open a wake-up socketpair: only its I/O state.
        self._selector: VirtualSelector
        self._init_io_state(VirtualSelector(network, real_io))
        self.network = network

    @property
    def selector(self) -> VirtualSelector:
        return self._selector

    def wakeup(self) -> None:  # pragma: no cover - the clock wakes the virtual loop
        pass

    def poll(self) -> None:
        """Queue the handles of every ready virtual socket (a zero-timeout select)."""
        if self._user_fds:
            SelectorDriver.wait(self, 0.0)


class VirtualIOMethods:
    """The I/O capabilities of :class:`VirtualDriver`, delegated to its :class:`VirtualIO`."""

    _io: VirtualIO

    def _check(self, sock: Any) -> None:
        if not isinstance(sock, VirtualSocket) and not self._io.selector._real_io:
            raise real_fd_error(sock)

    # -- making sockets and resolving names (the compat loop asks for these) ----------------

    def socket(
        self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0
    ) -> VirtualSocket:
        """A new socket on the in-memory network."""
        return self._io.network.socket(family, type, proto)

    def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
        return self._io.network.getaddrinfo(host, port, family, type, proto, flags)

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return self._io.network.getnameinfo(sockaddr, flags)

    # -- readiness ----------------------------------------------------------------------------

    def add_reader(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._io.add_reader(fd, handle)

    def remove_reader(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._io.remove_reader(fd)

    def add_writer(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._io.add_writer(fd, handle)

    def remove_writer(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._io.remove_writer(fd)

    # -- socket operations --------------------------------------------------------------------

    def sock_recv(self, fut: asyncio.Future[bytes], sock: _socket.socket, nbytes: int) -> None:
        self._check(sock)
        self._io.sock_recv(fut, sock, nbytes)

    def sock_recv_into(
        self, fut: asyncio.Future[int], sock: _socket.socket, buf: WriteableBuffer
    ) -> None:
        self._check(sock)
        self._io.sock_recv_into(fut, sock, buf)

    def sock_recvfrom(
        self, fut: asyncio.Future[tuple[bytes, Any]], sock: _socket.socket, bufsize: int
    ) -> None:
        self._check(sock)
        self._io.sock_recvfrom(fut, sock, bufsize)

    def sock_recvfrom_into(
        self,
        fut: asyncio.Future[tuple[int, Any]],
        sock: _socket.socket,
        buf: WriteableBuffer,
        nbytes: int,
    ) -> None:
        self._check(sock)
        self._io.sock_recvfrom_into(fut, sock, buf, nbytes)

    def sock_sendall(
        self, fut: asyncio.Future[None], sock: _socket.socket, data: ReadableBuffer
    ) -> None:
        self._check(sock)
        self._io.sock_sendall(fut, sock, data)

    def sock_sendto(
        self, fut: asyncio.Future[int], sock: _socket.socket, data: ReadableBuffer, address: Any
    ) -> None:
        self._check(sock)
        self._io.sock_sendto(fut, sock, data, address)

    def sock_connect(self, fut: asyncio.Future[None], sock: _socket.socket, address: Any) -> None:
        self._check(sock)
        self._io.sock_connect(fut, sock, address)

    def sock_accept(
        self, fut: asyncio.Future[tuple[_socket.socket, Any]], sock: _socket.socket
    ) -> None:
        self._check(sock)
        self._io.sock_accept(fut, sock)

    # -- channels -------------------------------------------------------------------------------

    def open_stream(self, sock: _socket.socket, sink: StreamSink) -> ReadinessStream:
        self._check(sock)
        return self._io.open_stream(sock, sink)

    def open_listener(
        self,
        sock: _socket.socket,
        backlog: int,
        accepted: Callable[[_socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> ReadinessListener:
        self._check(sock)
        return self._io.open_listener(sock, backlog, accepted, failed)

    def open_datagram(self, sock: _socket.socket, sink: DatagramSink) -> ReadinessDatagram:
        self._check(sock)
        return self._io.open_datagram(sock, sink)


def attach_io(io: VirtualIO, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
    """Connect the I/O machinery and the network to the loop now running on the clock."""
    io.attach(loop, core)
    io.network._attach(loop.call_at)
