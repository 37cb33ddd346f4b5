"""What the networking tests share: which families this machine has, and a bounded run."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["HAS_IPV6", "HAS_UNIX", "run"]

_T = TypeVar("_T")

HAS_UNIX = hasattr(socket, "AF_UNIX")


def _has_ipv6() -> bool:
    """Whether IPv6 loopback works here for streams and datagrams (not just compiled in)."""
    if not socket.has_ipv6:
        return False
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET6, kind) as sock:
                sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6()


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T], timeout: float = 30) -> _T:
    """Run ``coro`` on ``loop``, failing (not hanging) after ``timeout`` seconds."""

    async def bounded() -> _T:
        async with asyncio.timeout(timeout):
            return await coro

    return loop.run_until_complete(bounded())
