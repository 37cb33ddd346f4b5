"""Turning ``(host, port)`` into a socket address, skipping ``getaddrinfo`` for numeric hosts.

asyncio resolves every address it connects to through ``loop.getaddrinfo`` (in the default
executor) unless the host is already an IP address; that shortcut matters, because a thread
round trip per ``sock_connect`` to ``127.0.0.1`` would cost more than the connect itself.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["HAS_IPV6", "ensure_resolved", "numeric_addrinfo"]

HAS_IPV6 = hasattr(socket, "AF_INET6")

_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def _numeric_port(port: object) -> int | None:
    if port is None or port == b"" or port == "":
        return 0
    try:
        return int(port)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        # A service name such as "http": only getaddrinfo knows it.
        return None


def numeric_addrinfo(
    host: object,
    port: object,
    family: int,
    type: int,
    proto: int,
    flowinfo: int = 0,
    scopeid: int = 0,
) -> _AddrInfo | None:
    """The ``getaddrinfo`` entry for an IP-address ``host``; None when it takes a lookup."""
    if not hasattr(socket, "inet_pton") or host is None:
        return None
    if proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    number = _numeric_port(port)
    if number is None:
        return None
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str) or "%" in host:
        # Linux's inet_pton rejects IPv6 zone indices ("::1%lo"): let getaddrinfo decide.
        return None
    families: list[int]
    if family == socket.AF_UNSPEC:
        families = [socket.AF_INET, socket.AF_INET6] if HAS_IPV6 else [socket.AF_INET]
    else:
        families = [family]
    for candidate in families:
        try:
            socket.inet_pton(candidate, host)
        except OSError:
            continue
        if HAS_IPV6 and candidate == socket.AF_INET6:
            return candidate, type, proto, "", (host, number, flowinfo, scopeid)
        return candidate, type, proto, "", (host, number)
    return None


async def ensure_resolved(
    loop: asyncio.AbstractEventLoop,
    address: tuple[Any, ...],
    *,
    family: int = 0,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
    flags: int = 0,
) -> list[Any]:
    """``getaddrinfo`` results for ``address``, without a lookup when it is numeric."""
    host, port = address[:2]
    info = numeric_addrinfo(host, port, family, type, proto, *address[2:])
    if info is not None:
        return [info]
    return await loop.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
