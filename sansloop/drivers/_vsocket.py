"""Virtual sockets: ``socket.socket``'s non-blocking behaviour over the in-memory network.

A :class:`VirtualSocket` answers the calls the transports, listeners and ``sock_*``
operations make on a real non-blocking socket (``send``/``recv``/``recv_into``,
``sendto``/``recvfrom``, ``connect`` + ``SO_ERROR``, ``accept``, ``shutdown``, ``close``,
``getsockname``/``getpeername``, options), with the same errors (``BlockingIOError`` when
it would block, ``ConnectionRefusedError``, ``ConnectionResetError``, ``BrokenPipeError``),
and tells the driver whether it is readable or writable.  So the very channels of the
selectors driver (``ReadinessStream``, ``ReadinessListener``, ``ReadinessDatagram``) and
its socket operations run on it unchanged.

Streams (TCP and ``AF_UNIX``) are modelled as two :class:`_Pipe`\\ s, one per direction:
the sender's unsent bytes (bounded by its send buffer), segments in flight (at most the
receiver's free buffer space, TCP's window) and the receiver's buffer.  A slow reader
therefore fills its buffer, then the window closes, then the sender's buffer fills and
``send`` raises ``BlockingIOError``: the transport pauses its protocol, as on a real
network.  A TCP connect is a SYN and a SYN-ACK, each one link latency; a Unix connect is
immediate, as the kernel makes it.  Closing a socket with unread data resets the
connection, as Linux does; data reaching a closed socket resets it too.

Datagrams (UDP and ``AF_UNIX``/``SOCK_DGRAM``) are queued at the receiving socket up to
its buffer size, and may be lost or reordered as the link says; a datagram to a port where
nothing is bound makes a *connected* sender's next call fail with
``ConnectionRefusedError``, as ICMP "port unreachable" does on Linux.

Virtual sockets never block: ``setblocking(True)`` is remembered (``gettimeout`` reports
it, for asyncio's debug check) but a call that would block still raises
``BlockingIOError``, since blocking would stop virtual time.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
from collections import deque
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._vnet import VirtualNetwork

#: ``socket.AF_UNIX`` (1 on every Unix); Windows' socket module has none, and virtual Unix
#: sockets need no OS support.
AF_UNIX: int = getattr(socket, "AF_UNIX", 1)

__all__ = ["VirtualSocket", "connected_pair"]

_SEGMENT: Final = 64 * 1024
_MAX_UDP: Final = 65507
_NEW, _CONNECTING, _CONNECTED, _LISTENING, _CLOSED = range(5)
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _oserror(code: int) -> OSError:
    """The ``OSError`` subclass a real socket raises for ``code``, with the C message."""
    return OSError(code, os.strerror(code))


def _kind(type_: int) -> int:
    """SOCK_STREAM or SOCK_DGRAM, without SOCK_NONBLOCK/SOCK_CLOEXEC flags."""
    return type_ & 0xF


class _Pipe:
    """One direction of a stream connection."""

    def __init__(self, net: VirtualNetwork, sender: VirtualSocket, receiver: VirtualSocket) -> None:
        self.net = net
        self.sender = sender
        self.receiver = receiver
        self.source: Any = sender._local
        self.destination: Any = receiver._local
        self.unsent = bytearray()
        self.inflight = 0
        self.rx = bytearray()
        self.fin_wanted = False
        self.fin_sent = False
        self.eof = False
        self.dead = False
        self.busy_until = 0
        self.last_arrival = 0
        self.reversed = False
        self.id = net.new_pipe_id()
        net._pipes[self.id] = self

    def _link_buffer(self) -> int:
        return self.net.link_between(self.source, self.destination).buffer

    def space(self) -> int:
        size = self.sender._opts.get((socket.SOL_SOCKET, socket.SO_SNDBUF)) or self._link_buffer()
        return int(size) - len(self.unsent) - self.inflight

    def window(self) -> int:
        size = self.receiver._opts.get((socket.SOL_SOCKET, socket.SO_RCVBUF)) or self._link_buffer()
        return int(size) - len(self.rx) - self.inflight

    def pump(self) -> None:
        """Put what the window allows on the wire (nothing across a partition)."""
        net = self.net
        while not self.dead and (self.unsent or (self.fin_wanted and not self.fin_sent)):
            if net.is_cut(self.source, self.destination):
                return
            if not self.unsent:
                self.fin_sent = True
                self._transmit(None)
                break
            size = min(self.window(), len(self.unsent), _SEGMENT)
            if size <= 0:
                return
            segment = bytes(self.unsent[:size])
            del self.unsent[:size]
            self.inflight += size
            self._transmit(segment)
        if self.fin_sent and not self.unsent:
            net._pipes.pop(self.id, None)

    def _transmit(self, segment: bytes | None) -> None:
        net = self.net
        link = net.link_between(self.source, self.destination)
        now = net.now_ns
        start = max(now, self.busy_until)
        self.busy_until = start + link.transmit_ns(len(segment) if segment else 0)
        # Streams arrive in order whatever the jitter: TCP reassembles them.
        arrival = max(self.busy_until + link.latency_ns + net.jitter_ns(), self.last_arrival)
        self.last_arrival = arrival
        net.schedule(arrival - now, functools.partial(self.arrive, segment))

    def arrive(self, segment: bytes | None) -> None:
        if self.dead:
            return
        net = self.net
        if segment is None:
            self.eof = True
            net.record("fin", self.source, self.destination)
            return
        self.inflight -= len(segment)
        if net.draw(net.fault_rate):
            net.record("fault", self.source, self.destination, len(segment))
            self.connection_reset(errno.ECONNRESET)
            return
        receiver = self.receiver
        if receiver._state == _CLOSED:
            # Data for a socket that is gone: the sender is reset (RST back).
            net.record("rst", self.destination, self.source)
            self.kill()
            self.sender._reset_later(self.destination)
            return
        self.rx += segment
        net.record("data", self.source, self.destination, len(segment))

    def read(self, nbytes: int) -> bytes:
        data = bytes(self.rx[:nbytes])
        del self.rx[:nbytes]
        if data:
            self.pump()  # The window opened.
        return data

    def kill(self) -> None:
        self.dead = True
        self.unsent.clear()
        self.rx.clear()
        self.inflight = 0
        self.net._pipes.pop(self.id, None)

    def connection_reset(self, code: int) -> None:
        """Both ends see the connection reset now (a fault the test injects)."""
        self.net.record("reset", self.source, self.destination)
        for sock in (self.sender, self.receiver):
            sock._was_reset(code)


class _Syn:
    """A connection attempt waiting for a partition to heal."""

    reversed = True

    def __init__(self, sock: VirtualSocket) -> None:
        self.sock = sock
        self.id = sock._net.new_pipe_id()

    def pump(self) -> None:
        self.sock._net._pipes.pop(self.id, None)
        self.sock._send_syn()


class VirtualSocket:
    """A socket on the in-memory network (see the module docstring)."""

    def __init__(
        self,
        net: VirtualNetwork,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> None:
        if family not in (*_INET_FAMILIES, AF_UNIX):
            raise _oserror(errno.EAFNOSUPPORT)
        if _kind(type) not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise _oserror(errno.ESOCKTNOSUPPORT)
        self._net = net
        self.family = socket.AddressFamily(family)
        self.type = socket.SocketKind(_kind(type))
        self.proto = proto
        self._timeout: float | None = None
        self._state = _NEW
        self._local: Any = None
        self._remote: Any = None
        self._opts: dict[tuple[int, int], Any] = {}
        self._so_error = 0
        self._tx: _Pipe | None = None
        self._rx: _Pipe | None = None
        self._reset = 0
        self._reset_reported = False
        self._read_shut = False
        self._accept_queue: deque[tuple[VirtualSocket, Any]] = deque()
        self._backlog = 0
        self._datagrams: deque[tuple[bytes, Any]] = deque()
        self._queued_bytes = 0
        self._busy_until = 0
        self._fd = net._register(self)

    # -- what socket.socket has ------------------------------------------------------------

    def __repr__(self) -> str:
        parts = [
            f"fd={self.fileno()}",
            f"family={self.family}",
            f"type={self.type}",
            f"proto={self.proto}",
        ]
        if self._state != _CLOSED:
            parts.append(f"laddr={self.getsockname()!r}")
            if self._remote is not None:
                parts.append(f"raddr={self._remote!r}")
        else:
            parts.insert(0, "[closed]")
        return f"<VirtualSocket {', '.join(parts)}>"

    def __enter__(self) -> VirtualSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fileno(self) -> int:
        """A descriptor number from the virtual range (-1 once closed)."""
        return -1 if self._state == _CLOSED else self._fd

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self._check_open()
        self._opts[(level, option)] = value

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> Any:
        self._check_open()
        if level == socket.SOL_SOCKET:
            if option == socket.SO_ERROR:
                code, self._so_error = self._so_error, 0
                return code
            if option == socket.SO_TYPE:
                return int(self.type)
            if option == getattr(socket, "SO_ACCEPTCONN", -1):
                return int(self._state == _LISTENING)
        value = self._opts.get((level, option), 0)
        if buflen:
            return bytes(buflen) if not isinstance(value, bytes) else value
        return value

    def getsockname(self) -> Any:
        self._check_open()
        if self._local is not None:
            return self._local
        if self.family == AF_UNIX:
            return ""
        if self.family == socket.AF_INET6:
            return ("::", 0, 0, 0)
        return ("0.0.0.0", 0)

    def getpeername(self) -> Any:
        self._check_open()
        # A connected stream, or a datagram socket with a default peer.
        if self._remote is None or self._state not in (_CONNECTED, _NEW):
            raise _oserror(errno.ENOTCONN)
        return self._remote

    def close(self) -> None:
        if self._state == _CLOSED:
            return
        state = self._state
        self._state = _CLOSED
        net = self._net
        net._unregister(self._fd)
        self._unbind()
        if state == _LISTENING:
            # Connections nobody accepted are reset.
            while self._accept_queue:
                conn, _ = self._accept_queue.popleft()
                conn._abort()
        tx, rx = self._tx, self._rx
        if tx is not None and rx is not None and state == _CONNECTED:
            if rx.rx and not rx.dead:
                self._abort()
            else:
                net.record("close", self._local, self._remote)
                tx.fin_wanted = True
                tx.pump()
        self._datagrams.clear()

    def detach(self) -> int:
        raise OSError(errno.EOPNOTSUPP, "a virtual socket has no real descriptor to detach")

    def _abort(self) -> None:
        """Close with a reset: the peer sees ECONNRESET (Linux's close with unread data)."""
        tx, rx = self._tx, self._rx
        self._state = _CLOSED
        self._net._unregister(self._fd)
        self._unbind()
        if tx is None or rx is None or tx.dead:
            return
        self._net.record("rst", self._local, self._remote)
        tx.kill()
        rx.kill()
        peer = rx.sender
        peer._reset_later(self._local)

    def _check_open(self) -> None:
        if self._state == _CLOSED:
            raise _oserror(errno.EBADF)

    # -- addresses ---------------------------------------------------------------------------

    def _address(self, address: Any, *, binding: bool = False) -> Any:
        """``address`` normalised: (ip, port[, flow, scope]) or a Unix path."""
        if self.family == AF_UNIX:
            if isinstance(address, (bytes, bytearray)):
                return bytes(address)
            if not isinstance(address, (str, os.PathLike)):
                raise TypeError(f"a bytes-like object is required, not {type(address).__name__!r}")
            return os.fspath(address)
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError(
                f"{'AF_INET6' if self.family == socket.AF_INET6 else 'AF_INET'} address must "
                f"be a tuple, not {type(address).__name__}"
            )
        host, port = address[0], address[1]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if isinstance(host, bytes):
            host = host.decode("idna")
        if host == "<broadcast>":
            host = "255.255.255.255"
        elif host == "":
            host = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        try:
            host = socket.inet_ntop(self.family, socket.inet_pton(self.family, host))
        except OSError:
            infos = self._net.getaddrinfo(host, port, self.family)
            host = infos[0][4][0]
        if self.family == socket.AF_INET6:
            flow = address[2] if len(address) > 2 else 0
            scope = address[3] if len(address) > 3 else 0
            return (host, port, flow, scope)
        return (host, port)

    def _key(self, address: Any) -> tuple[Any, ...]:
        if self.family == AF_UNIX:
            return (AF_UNIX, int(self.type), address)
        return (int(self.family), int(self.type), address[0], address[1])

    def bind(self, address: Any) -> None:
        self._check_open()
        if self._local is not None:
            raise _oserror(errno.EINVAL)
        address = self._address(address, binding=True)
        net = self._net
        if self.family == AF_UNIX:
            if address in ("", b""):
                return
            if (AF_UNIX, int(self.type), address) in net._bound:
                raise _oserror(errno.EADDRINUSE)
        else:
            if address[1] == 0:
                port = net.ephemeral_port(int(self.family), int(self.type), address[0])
                address = (address[0], port, *address[2:])
            else:
                other = net._bound.get(self._key(address))
                if other is not None and not (self._reuses_port() and other._reuses_port()):
                    raise _oserror(errno.EADDRINUSE)
        self._local = address
        net._bound.setdefault(self._key(address), self)

    def _reuses_port(self) -> bool:
        return bool(self._opts.get((socket.SOL_SOCKET, getattr(socket, "SO_REUSEPORT", -1))))

    def _unbind(self) -> None:
        if self._local is None:
            return
        key = self._key(self._local)
        if self._net._bound.get(key) is self:
            del self._net._bound[key]

    def _autobind(self, destination: Any) -> None:
        """Bind to an ephemeral port on the address that reaches ``destination``."""
        if self._local is not None or self.family == AF_UNIX:
            return
        # The test process is "localhost" whatever it talks to; bind explicitly (e.g.
        # create_connection's local_addr) to send from another host's address.
        self.bind(("::1" if self.family == socket.AF_INET6 else "127.0.0.1", 0))

    # -- streams: connecting -----------------------------------------------------------------

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if _kind(self.type) != socket.SOCK_STREAM:
            raise _oserror(errno.EOPNOTSUPP)
        if self._local is None:
            if self.family == AF_UNIX:
                raise _oserror(errno.EINVAL)
            self.bind(("", 0))
        self._state = _LISTENING
        self._backlog = max(0, int(backlog)) + 1
        self._net.record("listen", self._local, None)

    def connect(self, address: Any) -> None:
        self._check_open()
        if _kind(self.type) == socket.SOCK_DGRAM:
            self._remote = self._address(address)
            if self.family != AF_UNIX:
                self._autobind(self._remote)
            return
        if self._state == _CONNECTED:
            raise _oserror(errno.EISCONN)
        if self._state == _CONNECTING:
            raise _oserror(errno.EALREADY)
        if self._state == _LISTENING:
            raise _oserror(errno.EINVAL)
        destination = self._address(address)
        self._remote = destination
        if self.family == AF_UNIX:
            self._connect_unix(destination)
            return
        self._autobind(destination)
        self._state = _CONNECTING
        self._send_syn()
        raise _oserror(errno.EINPROGRESS)

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or 0
        return 0

    def _connect_unix(self, path: Any) -> None:
        listener = self._net.find_path(int(self.type), path)
        if listener is None:
            self._remote = None
            raise _oserror(errno.ENOENT)
        if listener._state != _LISTENING or len(listener._accept_queue) >= listener._backlog:
            self._remote = None
            raise _oserror(errno.ECONNREFUSED if listener._state != _LISTENING else errno.EAGAIN)
        self._accepted_by(listener, path)
        self._state = _CONNECTED

    def _send_syn(self) -> None:
        if self._state != _CONNECTING:
            return
        net = self._net
        if net.is_cut(self._local, self._remote):
            syn = _Syn(self)
            net._pipes[syn.id] = syn  # Sent again when the partition heals.
            return
        net.record("syn", self._local, self._remote)
        link = net.link_between(self._local, self._remote)
        net.schedule(link.latency_ns + net.jitter_ns(), self._syn_arrives)

    def _syn_arrives(self) -> None:
        if self._state != _CONNECTING:
            return
        net = self._net
        destination = self._remote
        listener = net.find(int(self.family), socket.SOCK_STREAM, destination[0], destination[1])
        link = net.link_between(self._local, destination)
        if (
            listener is None
            or listener._state != _LISTENING
            or len(listener._accept_queue) >= listener._backlog
        ):
            net.record("refused", destination, self._local)
            net.schedule(link.latency_ns, functools.partial(self._failed, errno.ECONNREFUSED))
            return
        conn = self._accepted_by(listener, destination)
        net.schedule(link.latency_ns, functools.partial(self._established, conn))

    def _accepted_by(self, listener: VirtualSocket, destination: Any) -> VirtualSocket:
        """The server side of a new connection, queued on ``listener``."""
        net = self._net
        conn = VirtualSocket(net, self.family, self.type, self.proto)
        conn._local = destination if self.family != AF_UNIX else listener._local
        conn._remote = self.getsockname()
        conn._opts = {
            key: value for key, value in listener._opts.items() if key[0] == socket.SOL_SOCKET
        }
        conn._state = _CONNECTED
        self._tx = conn._rx = _Pipe(net, self, conn)
        conn._tx = self._rx = _Pipe(net, conn, self)
        conn._tx.reversed = True
        listener._accept_queue.append((conn, conn._remote))
        net.record("accept-queued", self.getsockname(), destination)
        return conn

    def _established(self, conn: VirtualSocket) -> None:
        if self._state == _CLOSED:
            # Closed while connecting: the SYN-ACK is answered with a reset.
            self._net.record("rst", self._local, self._remote)
            for pipe in (self._tx, self._rx):
                if pipe is not None:
                    pipe.kill()
            conn._reset_later(self._local)
            return
        if self._state != _CONNECTING:
            return
        self._state = _CONNECTED
        self._net.record("connected", self._local, self._remote)

    def _failed(self, code: int) -> None:
        if self._state != _CONNECTING:
            return
        self._state = _NEW
        self._remote = None
        self._so_error = code

    def accept(self) -> tuple[VirtualSocket, Any]:
        self._check_open()
        if self._state != _LISTENING:
            raise _oserror(errno.EINVAL)
        if not self._accept_queue:
            raise _oserror(errno.EAGAIN)
        conn, address = self._accept_queue.popleft()
        self._net.record("accept", self._local, address)
        return conn, address

    # -- streams: data -----------------------------------------------------------------------

    def _reset_later(self, source: Any) -> None:
        """An RST from ``source`` reaches this socket after one link latency."""
        link = self._net.link_between(source, self._local)
        self._net.schedule(link.latency_ns, functools.partial(self._was_reset, errno.ECONNRESET))

    def _was_reset(self, code: int) -> None:
        if self._state == _CLOSED:
            return
        if self._state == _CONNECTING:
            self._failed(code)
            return
        self._reset = code
        for pipe in (self._tx, self._rx):
            if pipe is not None:
                pipe.kill()

    def _raise_reset(self) -> None:
        if not self._reset_reported:
            self._reset_reported = True
            raise _oserror(self._reset)
        raise _oserror(errno.EPIPE)

    def _stream_pipes(self) -> tuple[_Pipe, _Pipe]:
        tx, rx = self._tx, self._rx
        if tx is None or rx is None:
            if self._state == _CLOSED:
                raise _oserror(errno.EBADF)
            if self._state == _CONNECTING:
                raise _oserror(errno.EAGAIN)
            raise _oserror(errno.ENOTCONN)
        self._check_open()
        return tx, rx

    def send(self, data: Any, flags: int = 0) -> int:
        if _kind(self.type) == socket.SOCK_DGRAM:
            if self._remote is None:
                self._check_open()
                raise _oserror(errno.EDESTADDRREQ)
            return self.sendto(data, self._remote)
        view = memoryview(data)
        tx, _ = self._stream_pipes()
        if self._reset:
            self._raise_reset()
        if tx.fin_wanted:
            raise _oserror(errno.EPIPE)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = min(len(view), tx.space())
        if size <= 0:
            if not len(view):
                return 0
            raise _oserror(errno.EAGAIN)
        tx.unsent += view[:size]
        tx.pump()
        return size

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        while view:
            sent = self.send(view)
            view = view[sent:]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if _kind(self.type) == socket.SOCK_DGRAM:
            return self.recvfrom(bufsize)[0]
        _, rx = self._stream_pipes()
        if self._reset:
            if not self._reset_reported:
                self._raise_reset()
            return b""
        if rx.rx:
            return rx.read(bufsize)
        if rx.eof or self._read_shut:
            return b""
        raise _oserror(errno.EAGAIN)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data = self.recv(size)
        view[: len(data)] = data
        return len(data)

    def shutdown(self, how: int) -> None:
        self._check_open()
        tx, rx = self._tx, self._rx
        if tx is None or rx is None or self._state != _CONNECTED:
            raise _oserror(errno.ENOTCONN)
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._read_shut = True
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not tx.fin_wanted:
            self._net.record("shutdown", self._local, self._remote)
            tx.fin_wanted = True
            tx.pump()

    # -- datagrams ---------------------------------------------------------------------------

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        if address is None:
            address = flags_or_address
        self._check_open()
        if _kind(self.type) != socket.SOCK_DGRAM:
            if self._state == _CONNECTED:
                raise _oserror(errno.EISCONN)
            raise _oserror(errno.EPIPE)
        payload = bytes(memoryview(data).cast("B"))
        if self._so_error and self._remote is not None:
            code, self._so_error = self._so_error, 0
            raise _oserror(code)
        destination = self._address(address)
        if self._remote is not None and destination != self._remote:
            raise _oserror(errno.EISCONN)
        if self.family != AF_UNIX:
            self._autobind(destination)
            if len(payload) > _MAX_UDP:
                raise _oserror(errno.EMSGSIZE)
        net = self._net
        # An unbound Unix datagram socket sends from no address (None, as Linux reports).
        source = self._local
        link = net.link_between(source, destination)
        if net.is_cut(source, destination) or net.draw(link.loss) or net.draw(net.fault_rate):
            net.record("lost", source, destination, len(payload))
            return len(payload)
        now = net.now_ns
        start = max(now, self._busy_until)
        self._busy_until = start + link.transmit_ns(len(payload))
        delay = self._busy_until - now + link.latency_ns + net.jitter_ns()
        if net.draw(link.reorder):
            delay += link.reorder_ns()
            net.record("delayed", source, destination, len(payload))
        net.schedule(delay, functools.partial(self._datagram_arrives, payload, source, destination))
        return len(payload)

    def _datagram_arrives(self, payload: bytes, source: Any, destination: Any) -> None:
        net = self._net
        if self.family == AF_UNIX:
            target = net.find_path(socket.SOCK_DGRAM, destination)
        else:
            target = net.find(int(self.family), socket.SOCK_DGRAM, destination[0], destination[1])
        if target is None or target._state == _CLOSED:
            net.record("unreachable", source, destination, len(payload))
            if self._state != _CLOSED and self._remote == destination:
                link = net.link_between(destination, source)
                net.schedule(link.latency_ns, functools.partial(self._unreachable, destination))
            return
        if target._remote is not None and target._remote != source:
            net.record("filtered", source, destination, len(payload))
            return
        capacity = (
            target._opts.get((socket.SOL_SOCKET, socket.SO_RCVBUF))
            or net.link_between(source, destination).buffer
        )
        if target._queued_bytes + len(payload) > int(capacity):
            net.record("overflow", source, destination, len(payload))
            return
        target._datagrams.append((payload, source))
        target._queued_bytes += len(payload)
        net.record("datagram", source, destination, len(payload))

    def _unreachable(self, destination: Any) -> None:
        if self._state != _CLOSED and self._remote == destination:
            self._so_error = errno.ECONNREFUSED

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        self._check_open()
        if _kind(self.type) != socket.SOCK_DGRAM:
            return self.recv(bufsize), None
        if self._so_error:
            code, self._so_error = self._so_error, 0
            raise _oserror(code)
        if not self._datagrams:
            raise _oserror(errno.EAGAIN)
        payload, source = self._datagrams.popleft()
        self._queued_bytes -= len(payload)
        return payload[:bufsize], source

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        data, source = self.recvfrom(nbytes or len(view))
        view[: len(data)] = data
        return len(data), source

    # -- readiness (what the driver polls) ---------------------------------------------------

    def readable(self) -> bool:
        """Whether a read (or accept) would not block."""
        state = self._state
        if state == _CLOSED:
            return True
        if state == _LISTENING:
            return bool(self._accept_queue)
        if _kind(self.type) == socket.SOCK_DGRAM:
            return bool(self._datagrams) or bool(self._so_error)
        if self._reset or self._so_error:
            return True
        rx = self._rx
        if rx is None:
            return False
        return bool(rx.rx) or rx.eof or self._read_shut

    def writable(self) -> bool:
        """Whether a write (or a connect's completion) would not block."""
        state = self._state
        if state == _CLOSED or _kind(self.type) == socket.SOCK_DGRAM:
            return True
        if state == _CONNECTING:
            return False
        if state == _NEW:
            return bool(self._so_error)
        if self._reset:
            return True
        tx = self._tx
        return tx is None or tx.fin_wanted or tx.space() > 0


def connected_pair(
    net: VirtualNetwork, family: int, type_: int, proto: int
) -> tuple[VirtualSocket, VirtualSocket]:
    """Two connected stream sockets, as ``socket.socketpair`` makes."""
    if _kind(type_) != socket.SOCK_STREAM:
        raise _oserror(errno.EOPNOTSUPP)
    first = VirtualSocket(net, family, type_, proto)
    second = VirtualSocket(net, family, type_, proto)
    if family != AF_UNIX:
        first.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        second.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    first._remote, second._remote = second.getsockname(), first.getsockname()
    first._tx = second._rx = _Pipe(net, first, second)
    second._tx = first._rx = _Pipe(net, second, first)
    second._tx.reversed = True
    first._state = second._state = _CONNECTED
    return first, second
