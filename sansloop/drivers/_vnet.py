"""The in-memory network of the virtual driver: hosts, names, links, faults and one seed.

A :class:`VirtualNetwork` belongs to a :class:`~sansloop.drivers.VirtualClock`
(``clock.network``) and outlives the loops that clock drives.  It holds

* the **address book**: ``localhost`` (127.0.0.1 and ::1) and the names a test adds with
  :meth:`VirtualNetwork.add_host`; ``getaddrinfo``/``getnameinfo`` answer from it, with no
  system call and no executor round trip;
* the **bound sockets**: which virtual socket listens or receives at which address (any
  address may be bound: the network is flat, and a host is only a name for a set of
  addresses, used to choose links and partitions);
* the **links**: latency, bandwidth, buffer sizes, loss and reordering, a default one and
  one per pair of hosts (:meth:`VirtualNetwork.link`);
* the **faults**: partitions between hosts and connection resets;
* one ``random.Random(seed)``, the only source of chance (loss, reordering, exploration),
  so a run is a function of its seed;
* an optional **trace** of what the network did, for replay and determinism checks.

Every delivery happens on a virtual-time timer of the loop (``loop.call_at``), so latency
advances ``loop.time()`` exactly, and data in flight is a pending timer: the idle rule
jumps to its arrival and never declares a deadlock while something is on the wire.  A
delivery with no delay happens at once, inside the call that sent it: it only moves bytes
between buffers (readiness is polled by the driver), so no callback runs out of order.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import random
import socket
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from ._vsocket import VirtualSocket

__all__ = [
    "FIRST_VIRTUAL_FD",
    "Exploration",
    "Link",
    "RealFileDescriptorError",
    "TraceEvent",
    "VirtualNetwork",
]

_NS: Final = 1_000_000_000
#: Virtual sockets get descriptor numbers from here up: far above any real descriptor, so
#: the two can never be confused.
FIRST_VIRTUAL_FD: Final = 1 << 30
#: The first ephemeral port (Linux's default ``ip_local_port_range`` starts here).
_FIRST_EPHEMERAL: Final = 32768
_LOOPBACK_NODE: Final = "localhost"
#: Default socket buffer sizes, as a Linux loopback connection starts with.
DEFAULT_BUFFER: Final = 256 * 1024


_AF_UNIX: Final[int] = getattr(socket, "AF_UNIX", 1)  # none on Windows
_SOCK_STREAM: Final = socket.SOCK_STREAM


class RealFileDescriptorError(RuntimeError):
    """A real file descriptor met the virtual driver, which runs an in-memory network."""


@attrs.frozen
class Link:
    """How data travels between two hosts (or within one).

    ``latency`` (seconds) is the one-way delay; ``bandwidth`` (bytes per second, None:
    unlimited) adds ``size / bandwidth`` per segment or datagram, one after the other in each
    direction of each connection or socket; ``buffer`` (bytes) is the default send and
    receive buffer of stream sockets (``SO_SNDBUF``/``SO_RCVBUF`` change it per socket) and
    the receive queue of datagram sockets; ``loss`` is the probability that a datagram is
    dropped; ``reorder`` the probability that a datagram is held back by ``reorder_delay``
    seconds (default: one more latency plus 1 ms), so that later ones overtake it.  Streams
    are reliable and ordered whatever the link says: loss and reordering apply to datagrams.
    """

    latency: float = 0.0
    bandwidth: float | None = None
    buffer: int = DEFAULT_BUFFER
    loss: float = 0.0
    reorder: float = 0.0
    reorder_delay: float | None = None

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be a finite number >= 0, got {self.latency!r}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s or None, got {self.bandwidth!r}")
        if not self.buffer >= 1:
            raise ValueError(f"buffer must be at least 1 byte, got {self.buffer!r}")
        for name in ("loss", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.reorder_delay is not None and not self.reorder_delay >= 0:
            raise ValueError(f"reorder_delay must be >= 0, got {self.reorder_delay!r}")

    @property
    def latency_ns(self) -> int:
        return round(self.latency * _NS)

    def transmit_ns(self, size: int) -> int:
        """Nanoseconds ``size`` bytes occupy the link."""
        if self.bandwidth is None or not size:
            return 0
        return math.ceil(size * _NS / self.bandwidth)

    def reorder_ns(self) -> int:
        delay = self.reorder_delay
        if delay is None:
            return self.latency_ns + 1_000_000
        return round(delay * _NS)


@attrs.frozen
class Exploration:
    """What a virtual clock may perturb, from its seed, to find order-dependent bugs.

    asyncio's FIFO order stays the default; an exploring clock changes only what asyncio
    leaves undefined: ``io_order`` shuffles the order in which ready sockets are reported
    within one loop iteration (between connections: each connection's bytes stay in
    order); ``timer_lateness`` (seconds) lets every jump of the clock land up to that much
    after the timer's deadline, as a busy real loop fires timers late (so timers and I/O
    interleave differently; timers never fire early and keep their order);
    ``network_jitter`` (seconds) delays every delivery by up to that much (streams stay
    ordered, datagrams may overtake each other); ``fault_rate`` (0 unless asked for, since
    faults change what a correct program observes) is the probability that a stream
    segment resets its connection instead of arriving, and that a datagram is lost.  Every
    draw comes from the network's ``random.Random(seed)``: a failing seed replays exactly.
    """

    io_order: bool = True
    timer_lateness: float = 0.001
    network_jitter: float = 0.001
    fault_rate: float = 0.0

    def __attrs_post_init__(self) -> None:
        for name in ("timer_lateness", "network_jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be a probability in [0, 1], got {self.fault_rate!r}")


@attrs.frozen
class TraceEvent:
    """One thing the network did, at virtual time ``time_ns``."""

    time_ns: int
    kind: str
    source: Any
    destination: Any
    size: int = 0


def _normal_ip(family: int, host: str) -> str:
    """``host`` as the canonical text of its address (so "::0001" and "::1" are one)."""
    return socket.inet_ntop(family, socket.inet_pton(family, host))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service_port(port: object, socktype: int) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        proto = "udp" if socktype == socket.SOCK_DGRAM else "tcp"
        try:
            return socket.getservbyname(port, proto)
        except OSError:
            raise socket.gaierror(
                socket.EAI_SERVICE, "Servname not supported for ai_socktype"
            ) from None
    raise TypeError(f"getaddrinfo() argument 2 must be integer or string, not {port!r}")


class VirtualNetwork:
    """The in-memory network a :class:`VirtualClock` carries (``clock.network``).

    ``seed`` seeds :attr:`random`, the network's only source of chance.
    """

    def __init__(self, now_ns: Callable[[], int], seed: int = 0) -> None:
        self._now_ns = now_ns
        self.seed = seed
        #: The one random source of the network (and of the exploration it drives).
        self.random = random.Random(seed)
        self._hosts: dict[str, list[str]] = {_LOOPBACK_NODE: ["127.0.0.1", "::1"]}
        self._node_of: dict[str, str] = {}
        # address -> node, for addresses no host names (parsing an address is slow).
        self._node_cache: dict[str, str] = {}
        self._default_link = Link()
        self._links: dict[frozenset[str], Link] = {}
        self._cuts: set[frozenset[str]] = set()
        self._isolated: set[str] = set()
        self._next_fd = FIRST_VIRTUAL_FD
        self._sockets: dict[int, VirtualSocket] = {}
        # (family, kind, ip, port) or (AF_UNIX, kind, path) -> the socket bound there.
        self._bound: dict[tuple[Any, ...], VirtualSocket] = {}
        self._next_port = _FIRST_EPHEMERAL
        # Stream connections alive, to pump after a partition heals or to reset.
        self._pipes: dict[int, Any] = {}
        self._pipe_ids = 0
        self._call_at: weakref.WeakMethod[Callable[[float, Callable[..., object]], Any]] | None = (
            None
        )
        self._trace: list[TraceEvent] | None = None
        # The clock's hook: a trace that starts also records the loop's callbacks.
        self._on_trace_start: Callable[[], None] | None = None
        #: Extra random delay (seconds, at most) added to every delivery when exploring.
        self.jitter = 0.0
        #: Whether ready sockets are reported in a random order (exploring).
        self.shuffle_io = False
        #: Probability of an injected fault per segment or datagram (exploring).
        self.fault_rate = 0.0

    def __repr__(self) -> str:
        return f"<VirtualNetwork seed={self.seed} sockets={len(self._sockets)}>"

    # -- names -----------------------------------------------------------------------------

    def add_host(self, name: str, *addresses: str) -> None:
        """Make ``name`` resolve to ``addresses`` (IPv4 and/or IPv6 literals).

        Without addresses the host gets the next free one in 10.0.0.0/8.  The addresses
        need not be "owned" by anything: a server binds to one, a client connects to it.
        """
        if not addresses:
            addresses = (f"10.0.{len(self._hosts) // 250}.{len(self._hosts) % 250 + 2}",)
        normal: list[str] = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            try:
                normal.append(_normal_ip(family, address))
            except OSError:
                raise ValueError(f"{address!r} is not an IP address") from None
        self._hosts[name.lower()] = normal
        for address in normal:
            self._node_of[address] = name.lower()
        self._node_cache.clear()

    def remove_host(self, name: str) -> None:
        """Forget ``name`` (its addresses stay usable as literals)."""
        for address in self._hosts.pop(name.lower(), ()):
            if self._node_of.get(address) == name.lower():
                del self._node_of[address]
        self._node_cache.clear()

    def addresses(self, name: str) -> list[str]:
        """The addresses ``name`` resolves to (a copy)."""
        return list(self._hosts.get(name.lower(), ()))

    def node(self, address: Any) -> str:
        """The host an address (or socket address tuple, or Unix path) belongs to."""
        if isinstance(address, tuple):
            address = address[0]
        if not isinstance(address, str) or not address or "/" in address:
            return _LOOPBACK_NODE  # Unix sockets live on this machine.
        node = self._node_of.get(address) or self._node_cache.get(address)
        if node is not None:
            return node
        loopback = _is_loopback(address) or address in ("0.0.0.0", "::")
        node = _LOOPBACK_NODE if loopback else address
        self._node_cache[address] = node
        return node

    def _nodes(self, host: str) -> set[str]:
        """The nodes a name, an address or a node name stands for."""
        key = host.lower()
        if key in self._hosts:
            return {key}
        return {self.node(host)}

    def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
        """``socket.getaddrinfo`` over the address book."""
        if isinstance(host, bytes):
            host = host.decode("idna")
        if host is None:
            candidates = ["0.0.0.0", "::"] if flags & socket.AI_PASSIVE else ["127.0.0.1", "::1"]
        else:
            candidates = self._lookup(host, flags)
        types = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
        result: list[tuple[int, int, int, str, tuple[Any, ...]]] = []
        for address in candidates:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (0, socket.AF_UNSPEC, fam):
                continue
            for socktype in types:
                if socktype not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    continue
                number = _service_port(port, socktype)
                pro = proto or (
                    socket.IPPROTO_TCP if socktype == socket.SOCK_STREAM else socket.IPPROTO_UDP
                )
                canon = host if flags & socket.AI_CANONNAME and host else ""
                sockaddr: tuple[Any, ...] = (
                    (address, number, 0, 0) if fam == socket.AF_INET6 else (address, number)
                )
                result.append((fam, socktype, pro, canon, sockaddr))
        if not result:
            if family not in (0, socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
                raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
            raise socket.gaierror(
                getattr(socket, "EAI_ADDRFAMILY", -9), "Address family for hostname not supported"
            )
        return result

    def _lookup(self, host: str, flags: int) -> list[str]:
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                return [_normal_ip(fam, host)]
            except OSError:
                continue
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = self._hosts.get(host.lower().rstrip("."))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(addresses)

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """``socket.getnameinfo`` over the address book."""
        host, port = sockaddr[0], sockaddr[1]
        name = host
        if not flags & socket.NI_NUMERICHOST:
            for candidate, addresses in self._hosts.items():
                if host in addresses:
                    name = candidate
                    break
            else:
                if flags & socket.NI_NAMEREQD:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        service = str(port)
        if not flags & socket.NI_NUMERICSERV:
            try:
                service = socket.getservbyport(port, "udp" if flags & socket.NI_DGRAM else "tcp")
            except OSError:
                pass
        return name, service

    # -- links and faults --------------------------------------------------------------------

    def configure(self, **settings: Any) -> Link:
        """Change the default link (every pair of hosts without a link of its own)."""
        self._default_link = attrs.evolve(self._default_link, **settings)
        return self._default_link

    def link(self, a: str, b: str | None = None, **settings: Any) -> Link:
        """Set (or, without settings, read) the link between hosts ``a`` and ``b``.

        ``b`` defaults to ``a`` (traffic within one host).  Hosts are names from
        :meth:`add_host`, addresses, or ``"localhost"``.  Unset fields start from the
        default link.
        """
        keys = [frozenset((x, y)) for x in self._nodes(a) for y in self._nodes(b or a)]
        if not settings:
            return self._links.get(keys[0], self._default_link)
        link = attrs.evolve(self._links.get(keys[0], self._default_link), **settings)
        for key in keys:
            self._links[key] = link
        return link

    def link_between(self, source: Any, destination: Any) -> Link:
        """The link that carries data from one socket address to another."""
        key = frozenset((self.node(source), self.node(destination)))
        return self._links.get(key, self._default_link)

    def partition(self, *groups: str | Iterable[str]) -> None:
        """Cut the network: with one host, isolate it from every other; with several groups
        (each a host or an iterable of hosts), cut every pair of hosts in different groups.

        Datagrams across a cut are lost; stream data waits (as TCP retransmits) and flows
        when :meth:`heal` is called; new connections across it hang until then.
        """
        sets = [self._group(group) for group in groups]
        if len(sets) == 1:
            self._isolated |= sets[0]
            return
        for i, first in enumerate(sets):
            for second in sets[i + 1 :]:
                for x in first:
                    for y in second:
                        if x != y:
                            self._cuts.add(frozenset((x, y)))

    def _group(self, group: str | Iterable[str]) -> set[str]:
        if isinstance(group, str):
            return self._nodes(group)
        nodes: set[str] = set()
        for host in group:
            nodes |= self._nodes(host)
        return nodes

    def heal(self) -> None:
        """Undo every partition; stream data held back starts flowing again."""
        self._cuts.clear()
        self._isolated.clear()
        for pipe in list(self._pipes.values()):
            pipe.pump()

    def held_back(self) -> str:
        """What waits behind a partition, in words ("" if nothing does)."""
        data = connects = 0
        for pipe in self._pipes.values():
            if isinstance(getattr(pipe, "unsent", None), bytearray):
                if pipe.unsent and self.is_cut(pipe.source, pipe.destination):
                    data += len(pipe.unsent)
            else:
                connects += 1
        parts = []
        if data:
            parts.append(f"{data} byte{'s' if data != 1 else ''} of stream data")
        if connects:
            parts.append(f"{connects} connection attempt{'s' if connects != 1 else ''}")
        return " and ".join(parts)

    def is_cut(self, source: Any, destination: Any) -> bool:
        """Whether a partition separates the hosts of two socket addresses."""
        a, b = self.node(source), self.node(destination)
        if a == b:
            return False
        return a in self._isolated or b in self._isolated or frozenset((a, b)) in self._cuts

    def reset(self, host: str | None = None) -> int:
        """Reset every stream connection (of ``host``, if given); return how many."""
        nodes = self._nodes(host) if host is not None else None
        count = 0
        for pipe in list(self._pipes.values()):
            if pipe.reversed:
                continue
            if nodes is None or {self.node(pipe.source), self.node(pipe.destination)} & nodes:
                pipe.connection_reset(errno.ECONNRESET)
                count += 1
        return count

    # -- time and delivery -------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        return self._now_ns()

    def _attach(self, call_at: Callable[[float, Callable[..., object]], Any] | None) -> None:
        """The loop now running on the clock: where deliveries are timed.

        Held weakly: the network belongs to the clock, which outlives its loops, and the
        clock's registry must not keep an unclosed loop alive (its finaliser closes it).
        """
        self._call_at = weakref.WeakMethod(call_at) if call_at is not None else None

    def schedule(self, delay_ns: int, callback: Callable[[], object]) -> int:
        """Run ``callback`` after ``delay_ns`` of virtual time (at once if 0 or no loop).

        Returns the arrival time in ns.
        """
        at = self._now_ns() + delay_ns
        call_at = self._call_at() if self._call_at is not None else None
        if delay_ns <= 0 or call_at is None:
            callback()
        else:
            call_at(at / _NS, callback)
        return at

    def jitter_ns(self) -> int:
        """A random extra delay up to :attr:`jitter` seconds (no draw when it is 0)."""
        if not self.jitter:
            return 0
        return round(self.random.random() * self.jitter * _NS)

    def draw(self, probability: float) -> bool:
        """One weighted coin from the network's random source (no draw for 0 or 1)."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self.random.random() < probability

    # -- the trace ---------------------------------------------------------------------------

    def start_trace(self) -> None:
        """Record every network event (and, through the clock, every callback the loop
        runs) from now on (see :attr:`trace`)."""
        self._trace = []
        if self._on_trace_start is not None:
            self._on_trace_start()

    @property
    def tracing(self) -> bool:
        return self._trace is not None

    @property
    def trace(self) -> list[TraceEvent]:
        """The events recorded since :meth:`start_trace` (empty if never started)."""
        return list(self._trace or ())

    def record(self, kind: str, source: Any, destination: Any, size: int = 0) -> None:
        if self._trace is not None:
            self._trace.append(TraceEvent(self._now_ns(), kind, source, destination, size))

    # -- sockets -----------------------------------------------------------------------------

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> VirtualSocket:
        """A new virtual socket (what ``socket.socket`` is under the virtual driver)."""
        from ._vsocket import VirtualSocket

        return VirtualSocket(self, family, type, proto)

    def socket_factory(self, addr_info: tuple[Any, ...]) -> VirtualSocket:
        """A socket for one ``getaddrinfo`` entry: the shape of aiohappyeyeballs' and
        aiohttp's ``socket_factory`` (``TCPConnector(socket_factory=net.socket_factory)``),
        for libraries that make their sockets themselves."""
        family, type_, proto = addr_info[:3]
        return self.socket(family, type_, proto)

    def socketpair(
        self, family: int = _AF_UNIX, type: int = _SOCK_STREAM, proto: int = 0
    ) -> tuple[VirtualSocket, VirtualSocket]:
        """Two connected virtual stream sockets."""
        from ._vsocket import connected_pair

        return connected_pair(self, family, type, proto)

    def _register(self, sock: VirtualSocket) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._sockets[fd] = sock
        return fd

    def _unregister(self, fd: int) -> None:
        self._sockets.pop(fd, None)

    def lookup_fd(self, fd: int) -> VirtualSocket | None:
        """The open virtual socket with descriptor number ``fd``, if any."""
        return self._sockets.get(fd)

    @property
    def open_sockets(self) -> int:
        """How many virtual sockets are open."""
        return len(self._sockets)

    def ephemeral_port(self, family: int, kind: int, host: str) -> int:
        for _ in range(65536 - _FIRST_EPHEMERAL):
            port = self._next_port
            self._next_port = port + 1 if port < 65535 else _FIRST_EPHEMERAL
            if not self._bound_at(family, kind, host, port):
                return port
        raise OSError(errno.EADDRINUSE, "Address already in use")

    def _bound_at(self, family: int, kind: int, host: str, port: int) -> bool:
        return (family, kind, host, port) in self._bound

    def find(self, family: int, kind: int, host: str, port: int) -> VirtualSocket | None:
        """The socket bound at ``(host, port)``, or at the wildcard address and ``port``."""
        sock = self._bound.get((family, kind, host, port))
        if sock is None:
            wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock = self._bound.get((family, kind, wildcard, port))
        return sock

    def find_path(self, kind: int, path: Any) -> VirtualSocket | None:
        return self._bound.get((_AF_UNIX, kind, path))

    def new_pipe_id(self) -> int:
        self._pipe_ids += 1
        return self._pipe_ids
