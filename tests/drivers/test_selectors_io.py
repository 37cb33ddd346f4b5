"""The selectors driver's readiness and socket operations, with real sockets.

The driver is driven directly (``attach``, ``add_reader``, ``sock_*``, ``wait``) with a real
selector of each class this platform has; its registrations are read back through the
selector it exposes.  A selector subclass counts ``select()`` calls, to hold the busy-loop
rule: ``wait(0.0)`` makes no system call while no user descriptor is registered.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sansloop
from sansloop.drivers import SelectorDriver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_SELECTOR_CLASSES = [
    name
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "KqueueSelector")
    if hasattr(selectors, name)
]


def _counting(base: type[selectors.BaseSelector]) -> selectors.BaseSelector:
    class Counting(base):  # type: ignore[valid-type,misc]
        selects = 0

        def select(self, timeout: float | None = None) -> Any:
            type(self).selects += 1
            return super().select(timeout)

    return Counting()  # type: ignore[no-any-return]


class _CountingEpoll:
    """An epoll object whose polls are counted: the driver polls a plain EpollSelector's
    epoll directly, without calling its select()."""

    def __init__(self, epoll: Any) -> None:
        self._epoll = epoll
        self.selects = 0

    def poll(self, *args: Any) -> Any:
        self.selects += 1
        return self._epoll.poll(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)


def _direct_epoll() -> selectors.BaseSelector:
    selector = selectors.EpollSelector()  # type: ignore[attr-defined]
    selector._selector = _CountingEpoll(selector._selector)
    return selector  # type: ignore[no-any-return]


@pytest.fixture(
    params=[
        *_SELECTOR_CLASSES,
        *(["EpollSelector-direct"] if hasattr(selectors, "EpollSelector") else []),
    ]
)
def selector(request: pytest.FixtureRequest) -> selectors.BaseSelector:
    if request.param == "EpollSelector-direct":
        return _direct_epoll()
    return _counting(getattr(selectors, request.param))


class _FakeCore:
    """The one member of the core a selectors driver uses: where ready handles go."""

    def __init__(self, push_ready: Callable[[Any], None]) -> None:
        self.push_ready = push_ready


#: The selectors driver ignores the loop it is attached to.
_NO_LOOP: Any = None


@pytest.fixture
def ready() -> list[asyncio.Handle]:
    """Where the driver queues ready handles (the core's ``push_ready`` in a real loop)."""
    return []


@pytest.fixture
def driver(
    selector: selectors.BaseSelector, ready: list[asyncio.Handle]
) -> Iterator[SelectorDriver]:
    new = SelectorDriver(selector)
    new.attach(_NO_LOOP, _FakeCore(ready.append))
    try:
        yield new
    finally:
        new.close()


@pytest.fixture
def owner() -> Iterator[sansloop.EventLoop]:
    """A loop that owns the handles and futures (never run: the tests drive the driver)."""
    loop = sansloop.EventLoop()
    try:
        yield loop
    finally:
        loop.close()


def _selects(driver: SelectorDriver) -> int:
    counted = getattr(type(driver.selector), "selects", None)
    if counted is None:
        counted = driver.selector._selector.selects  # type: ignore[attr-defined]
    return counted  # type: ignore[no-any-return]


def _watched(driver: SelectorDriver) -> int:
    """How many descriptors the selector watches besides the driver's wake-up socket."""
    return len(driver.selector.get_map()) - 1


def _handle(owner: asyncio.AbstractEventLoop, name: str = "h") -> asyncio.Handle:
    return asyncio.Handle(print, (name,), owner)


def _wait_until(driver: SelectorDriver, done: Any, limit: int = 100) -> None:
    for _ in range(limit):
        if done():
            return
        driver.wait(0.05)
    raise AssertionError("the driver never got there")


# -- the busy-loop fast path -------------------------------------------------------------


def test_zero_wait_makes_no_system_call_without_user_descriptors(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    start = _selects(driver)
    driver.wait(0.0)
    assert _selects(driver) == start
    driver.add_reader(a, _handle(owner))
    driver.wait(0.0)
    assert _selects(driver) == start + 1
    driver.remove_reader(a)
    driver.wait(0.0)
    assert _selects(driver) == start + 1


def test_pending_operation_makes_zero_wait_look(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fut: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(fut, a, 10)
    assert not fut.done()
    assert _watched(driver) == 1
    b.send(b"data")
    start = _selects(driver)
    driver.wait(0.0)
    assert _selects(driver) == start + 1
    assert fut.result() == b"data"
    # Completed: the descriptor is no longer watched and the fast path is back.
    assert _watched(driver) == 0
    driver.wait(0.0)
    assert _selects(driver) == start + 1


# -- readiness callbacks -----------------------------------------------------------------


def test_ready_handles_are_pushed(
    driver: SelectorDriver,
    owner: sansloop.EventLoop,
    ready: list[asyncio.Handle],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    reader, writer = _handle(owner, "r"), _handle(owner, "w")
    assert driver.add_reader(a, reader) is None
    assert driver.add_writer(a, writer) is None
    assert _watched(driver) == 1
    driver.wait(0.0)
    assert ready == [writer]
    b.send(b"x")
    driver.wait(0.0)
    assert ready[1:] == [reader, writer]


def test_hang_up_wakes_only_the_directions_watched(
    driver: SelectorDriver,
    owner: sansloop.EventLoop,
    ready: list[asyncio.Handle],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    reader = _handle(owner, "r")
    driver.add_reader(a, reader)
    b.close()
    driver.wait(0.0)
    assert ready == [reader]
    driver.remove_reader(a)
    writer = _handle(owner, "w")
    driver.add_writer(a, writer)
    driver.wait(0.0)
    assert ready == [reader, writer]
    # Both directions watched: one report each, reader first.
    driver.add_reader(a, reader)
    driver.wait(0.0)
    assert ready[2:] == [reader, writer]


def test_replacing_returns_the_old_handle(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    first, second = _handle(owner), _handle(owner)
    assert driver.add_reader(a, first) is None
    assert driver.add_reader(a.fileno(), second) is first
    assert driver.remove_reader(a) is second
    assert driver.remove_reader(a) is None
    assert _watched(driver) == 0


def test_cancelled_handle_is_unregistered_when_ready(
    driver: SelectorDriver,
    owner: sansloop.EventLoop,
    ready: list[asyncio.Handle],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    handle = _handle(owner)
    driver.add_reader(a, handle)
    handle.cancel()
    b.send(b"x")
    driver.wait(0.0)
    assert ready == []
    assert _watched(driver) == 0


def test_unattached_driver_refuses_callbacks(
    selector: selectors.BaseSelector, owner: sansloop.EventLoop
) -> None:
    driver = SelectorDriver(selector)
    try:
        with pytest.raises(RuntimeError, match="attach"):
            driver.add_reader(0, _handle(owner))
    finally:
        driver.close()


def test_wakeup_socket_is_not_the_callers(
    driver: SelectorDriver, owner: sansloop.EventLoop
) -> None:
    (wake_fd,) = [key.fd for key in driver.selector.get_map().values()]
    with pytest.raises(ValueError, match="wake-up socket"):
        driver.add_reader(wake_fd, _handle(owner))
    assert _watched(driver) == 0


@pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="needs epoll")
def test_failed_registration_leaves_nothing_behind(
    owner: sansloop.EventLoop, ready: list[asyncio.Handle]
) -> None:
    driver = SelectorDriver(_counting(selectors.EpollSelector))
    driver.attach(_NO_LOOP, _FakeCore(ready.append))
    try:
        # epoll refuses regular files.
        with tempfile.TemporaryFile() as regular, pytest.raises(PermissionError):
            driver.add_reader(regular, _handle(owner))
        assert _watched(driver) == 0
        start = _selects(driver)
        driver.wait(0.0)
        assert _selects(driver) == start
    finally:
        driver.close()


# -- socket operations -------------------------------------------------------------------


def test_ready_operation_completes_at_once(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    b.send(b"now")
    fut: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(fut, a, 10)
    assert fut.result() == b"now"
    assert _watched(driver) == 0


def test_cancelled_operation_stops_the_watch(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fut: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(fut, a, 10)
    assert _watched(driver) == 1
    fut.cancel()
    # The clean-up is a done-callback: it runs in the owner loop's next batch.
    owner.call_soon(owner.stop)
    owner.run_forever()
    assert _watched(driver) == 0
    b.send(b"kept")
    assert a.recv(10) == b"kept"


def test_cancelled_operation_on_a_closed_socket(
    driver: SelectorDriver, owner: sansloop.EventLoop
) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        fut: asyncio.Future[bytes] = owner.create_future()
        driver.sock_recv(fut, a, 10)
        fut.cancel()
        a.close()  # before the clean-up runs: it must find the registration by number
        owner.call_soon(owner.stop)
        owner.run_forever()
        assert _watched(driver) == 0
    finally:
        a.close()
        b.close()


def test_operations_in_one_direction_complete_in_order(
    driver: SelectorDriver, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    futs: list[asyncio.Future[bytes]] = [owner.create_future() for _ in range(3)]
    for fut in futs:
        driver.sock_recv(fut, a, 2)
    b.send(b"aabbcc")
    _wait_until(driver, lambda: all(f.done() for f in futs))
    assert [f.result() for f in futs] == [b"aa", b"bb", b"cc"]
    assert _watched(driver) == 0


def test_reader_callback_and_operation_share_a_descriptor(
    driver: SelectorDriver,
    owner: sansloop.EventLoop,
    ready: list[asyncio.Handle],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    writer = _handle(owner)
    driver.add_writer(a, writer)
    fut: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(fut, a, 10)
    assert _watched(driver) == 1
    b.send(b"x")
    driver.wait(0.0)
    assert fut.result() == b"x"
    assert ready == [writer]
    # The writer keeps the registration alive; removing it ends it.
    assert _watched(driver) == 1
    assert driver.remove_writer(a) is writer
    assert _watched(driver) == 0


def test_connect_and_accept(driver: SelectorDriver, owner: sansloop.EventLoop) -> None:
    with socket.socket() as srv, socket.socket() as client:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        srv.setblocking(False)
        client.setblocking(False)
        accepted: asyncio.Future[tuple[socket.socket, Any]] = owner.create_future()
        driver.sock_accept(accepted, srv)
        assert not accepted.done()
        connected: asyncio.Future[None] = owner.create_future()
        driver.sock_connect(connected, client, srv.getsockname())
        _wait_until(driver, lambda: accepted.done() and connected.done())
        assert connected.result() is None
        conn, address = accepted.result()
        with conn:
            assert address == client.getsockname()
            assert conn.gettimeout() == 0
        assert _watched(driver) == 0


def test_errors_complete_the_future(driver: SelectorDriver, owner: sansloop.EventLoop) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        address = srv.getsockname()
    with socket.socket() as client:
        client.setblocking(False)
        fut: asyncio.Future[None] = owner.create_future()
        driver.sock_connect(fut, client, address)
        _wait_until(driver, fut.done)
        with pytest.raises(ConnectionRefusedError, match="Connect call failed"):
            fut.result()
    assert _watched(driver) == 0


@pytest.mark.parametrize("selector_name", _SELECTOR_CLASSES)
def test_close_releases_everything(
    selector_name: str, owner: sansloop.EventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    driver = SelectorDriver(_counting(getattr(selectors, selector_name)))
    driver.attach(_NO_LOOP, _FakeCore(lambda handle: None))
    driver.add_reader(a, _handle(owner))
    fut: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(fut, a, 1)
    driver.close()
    driver.close()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
    # After close the driver refuses new work instead of touching a closed selector.
    late: asyncio.Future[bytes] = owner.create_future()
    driver.sock_recv(late, a, 1)
    with pytest.raises(RuntimeError, match="closed"):
        late.result()
    fut.cancel()
