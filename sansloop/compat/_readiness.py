"""``add_reader``/``remove_reader``/``add_writer``/``remove_writer``, on drivers that can.

Readiness callbacks are a driver capability (:class:`sansloop.drivers.ReadinessDriver`): the
loop checks the arguments as asyncio does, wraps the callback in an ``asyncio.Handle`` and
hands it to the driver, which queues it on the core in the batch after the descriptor is
reported ready.  Replacing or removing a callback cancels its handle, so a readiness report
already queued for it does not run it.
"""

from __future__ import annotations

from asyncio import Handle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sansloop.drivers import FileDescriptorLike, ReadinessDriver

    from ._loop import EventLoop

__all__ = ["READINESS_METHODS", "check_fileobj", "ensure_fd_no_transport"]


def check_fileobj(fd: object) -> int:
    """The descriptor number of ``fd``, with asyncio's ValueError for anything else."""
    if isinstance(fd, int):
        return fd
    try:
        return int(fd.fileno())  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fd!r}") from None


def ensure_fd_no_transport(loop: EventLoop, fd: object) -> None:
    """Refuse a descriptor a live transport owns: two owners would corrupt its stream."""
    transport = loop._transports.get(check_fileobj(fd))
    if transport is not None and not transport.is_closing():
        raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")


def _driver(loop: EventLoop) -> ReadinessDriver:
    driver = loop._driver
    if not hasattr(driver, "add_reader"):
        raise NotImplementedError(
            f"the {type(driver).__name__} driver has no readiness callbacks "
            "(add_reader/add_writer); use sock_* methods or transports instead"
        )
    return driver  # type: ignore[return-value]


def add_reader(
    self: EventLoop, fd: FileDescriptorLike, callback: Callable[..., object], *args: Any
) -> None:
    """Call ``callback(*args)`` whenever ``fd`` is readable (replacing any reader)."""
    ensure_fd_no_transport(self, fd)
    self._check_closed()
    replaced = _driver(self).add_reader(fd, Handle(callback, args, self, None))
    if replaced is not None:
        replaced.cancel()


def remove_reader(self: EventLoop, fd: FileDescriptorLike) -> bool:
    """Stop watching ``fd`` for reading; return whether a reader was registered."""
    ensure_fd_no_transport(self, fd)
    if self.is_closed():
        return False
    removed = _driver(self).remove_reader(fd)
    if removed is None:
        return False
    removed.cancel()
    return True


def add_writer(
    self: EventLoop, fd: FileDescriptorLike, callback: Callable[..., object], *args: Any
) -> None:
    """Call ``callback(*args)`` whenever ``fd`` is writable (replacing any writer)."""
    ensure_fd_no_transport(self, fd)
    self._check_closed()
    replaced = _driver(self).add_writer(fd, Handle(callback, args, self, None))
    if replaced is not None:
        replaced.cancel()


def remove_writer(self: EventLoop, fd: FileDescriptorLike) -> bool:
    """Stop watching ``fd`` for writing; return whether a writer was registered."""
    ensure_fd_no_transport(self, fd)
    if self.is_closed():
        return False
    removed = _driver(self).remove_writer(fd)
    if removed is None:
        return False
    removed.cancel()
    return True


#: name -> method, for the compat loop to place in its class body.
READINESS_METHODS: dict[str, Callable[..., Any]] = {
    "add_reader": add_reader,
    "remove_reader": remove_reader,
    "add_writer": add_writer,
    "remove_writer": remove_writer,
}
