"""Where the loop's new sockets come from: the OS, or the driver's own network.

A driver may own the network its sockets live on (the virtual driver's in-memory network):
it then offers ``socket(family, type, proto)`` and ``getaddrinfo``/``getnameinfo``, and the
loop's methods that make sockets or resolve names use them instead of the ``socket`` module.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loop import EventLoop

__all__ = ["driver_owns_sockets", "new_socket"]


def new_socket(loop: EventLoop, family: int, type: int, proto: int = 0) -> socket.socket:
    """A new socket for ``loop``: the driver's if it makes its own, else an OS socket."""
    make: Any = getattr(loop._driver, "socket", None)
    if make is not None:
        return make(family, type, proto)  # type: ignore[no-any-return]
    return socket.socket(family, type, proto)


def driver_owns_sockets(loop: EventLoop) -> bool:
    """Whether ``loop``'s sockets live on the driver's own network (not in the file system)."""
    return getattr(loop._driver, "socket", None) is not None
