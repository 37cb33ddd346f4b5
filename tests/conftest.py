"""Fixtures shared by the test-suite: loops that are always closed, and an fd counter."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable, Iterator

import pytest

import sansloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: The loops a behaviour test runs on: sansloop's, and stock asyncio's as the reference.
LOOP_FACTORIES: dict[str, LoopFactory] = {
    "sansloop": sansloop.EventLoop,
    "asyncio": asyncio.SelectorEventLoop,
}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def fd_count() -> Callable[[], int]:
    """A function counting this process's open file descriptors (skips without /proc)."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting open file descriptors needs /proc/self/fd")
    return _open_fds


@pytest.fixture
def no_fd_leak(fd_count: Callable[[], int]) -> Iterator[None]:
    """The test closes every descriptor it opened (the loop's own included)."""
    import gc

    before = fd_count()
    yield
    gc.collect()  # Whatever the test dropped without closing is collected, and warns.
    assert fd_count() == before


class ClockOnlyDriver:
    """A driver with the core contract and nothing else (no readiness, no sockets)."""

    clock_resolution = 1e-9

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def wait(self, timeout: float | None) -> None:
        if timeout:
            self.now += timeout

    def attach(self, loop: asyncio.AbstractEventLoop, core: object) -> None:
        pass

    def wakeup(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def clock_only_driver() -> ClockOnlyDriver:
    """A fresh driver that lacks every optional capability."""
    return ClockOnlyDriver()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of non-blocking sockets, closed afterwards."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def loop() -> Iterator[sansloop.EventLoop]:
    """A fresh ``sansloop.EventLoop``, closed afterwards."""
    new = sansloop.EventLoop()
    try:
        yield new
    finally:
        if not new.is_closed():
            new.close()


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def any_loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """The same test on sansloop's loop and on asyncio's ``SelectorEventLoop``."""
    new = LOOP_FACTORIES[request.param]()
    try:
        yield new
    finally:
        if not new.is_closed():
            new.close()


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """A loop class, for tests that create (and close) loops themselves."""
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def no_leaked_loop_state() -> Iterator[None]:
    """Fail a test that leaves a running loop, asyncgen hooks or origin tracking behind.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")``.
    """
    hooks = sys.get_asyncgen_hooks()
    depth = sys.get_coroutine_origin_tracking_depth()
    yield
    assert asyncio._get_running_loop() is None
    assert sys.get_asyncgen_hooks() == hooks
    assert sys.get_coroutine_origin_tracking_depth() == depth
