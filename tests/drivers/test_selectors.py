"""The selectors driver with real OS objects, for every selector class this platform has."""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import sansloop
from sansloop.drivers import SelectorDriver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_SELECTOR_CLASSES = [
    name
    for name in (
        "SelectSelector",
        "PollSelector",
        "EpollSelector",
        "DevpollSelector",
        "KqueueSelector",
        "DefaultSelector",
    )
    if hasattr(selectors, name)
]


@pytest.fixture(params=_SELECTOR_CLASSES)
def selector_class(request: pytest.FixtureRequest) -> type[selectors.BaseSelector]:
    cls: type[selectors.BaseSelector] = getattr(selectors, request.param)
    return cls


@pytest.fixture
def driver(selector_class: type[selectors.BaseSelector]) -> Iterator[SelectorDriver]:
    new = SelectorDriver(selector_class())
    try:
        yield new
    finally:
        new.close()


def _in_thread(func: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=func, daemon=True)
    thread.start()
    return thread


def test_default_selector_when_none_is_given() -> None:
    driver = SelectorDriver()
    try:
        assert isinstance(driver.selector, selectors.DefaultSelector)
    finally:
        driver.close()


def test_uses_the_given_selector(selector_class: type[selectors.BaseSelector]) -> None:
    selector = selector_class()
    driver = SelectorDriver(selector)
    try:
        assert driver.selector is selector
    finally:
        driver.close()


def test_clock(driver: SelectorDriver) -> None:
    assert driver.clock_resolution == time.get_clock_info("monotonic").resolution
    first = driver.time()
    second = driver.time()
    assert first <= second
    assert abs(first - time.monotonic()) < 60


@pytest.mark.parametrize("timeout", [0.001, 0.02])
def test_wait_returns_not_early(driver: SelectorDriver, timeout: float) -> None:
    start = driver.time()
    driver.wait(timeout)
    elapsed = driver.time() - start
    assert elapsed + driver.clock_resolution >= timeout


def test_wait_zero_does_not_block(driver: SelectorDriver) -> None:
    thread = _in_thread(lambda: driver.wait(0.0))
    thread.join(30)
    assert not thread.is_alive()


def test_wait_zero_with_another_fd_registered(
    selector_class: type[selectors.BaseSelector],
) -> None:
    selector = selector_class()
    a, b = socket.socketpair()
    driver = SelectorDriver(selector)
    try:
        # An fd that never becomes readable: a zero wait must still return at once.
        selector.register(a, selectors.EVENT_READ, "user")
        thread = _in_thread(lambda: driver.wait(0.0))
        thread.join(30)
        assert not thread.is_alive()
        selector.unregister(a)
    finally:
        driver.close()
        a.close()
        b.close()


def test_wakeup_before_wait_makes_it_return(driver: SelectorDriver) -> None:
    driver.wakeup()
    thread = _in_thread(lambda: driver.wait(None))
    thread.join(30)
    assert not thread.is_alive()


def test_wakeup_from_another_thread_ends_a_blocking_wait(driver: SelectorDriver) -> None:
    waiting = _in_thread(lambda: driver.wait(None))
    # Most likely blocked by now; a wake-up arriving before the wait must work too.
    time.sleep(0.02)
    waker = _in_thread(driver.wakeup)
    waker.join(30)
    waiting.join(30)
    assert not waiting.is_alive()


def test_wakeups_are_drained(driver: SelectorDriver) -> None:
    # Far more wake-ups than the socket buffer holds: the extra ones are dropped silently.
    for _ in range(20_000):
        driver.wakeup()
    driver.wait(None)
    # Every byte was read: the next wait really waits for its timeout.
    start = driver.time()
    driver.wait(0.02)
    assert driver.time() - start + driver.clock_resolution >= 0.02


def test_close_is_idempotent_and_releases_fds(
    selector_class: type[selectors.BaseSelector], fd_count: Callable[[], int]
) -> None:
    before = fd_count()
    driver = SelectorDriver(selector_class())
    assert fd_count() > before
    driver.close()
    assert fd_count() == before
    driver.close()
    assert fd_count() == before
    # Waking a closed driver is harmless (a late call_soon_threadsafe may do it).
    driver.wakeup()


@pytest.mark.parametrize("selector_name", _SELECTOR_CLASSES)
def test_event_loop_on_each_selector(selector_name: str) -> None:
    selector = getattr(selectors, selector_name)()
    loop = sansloop.EventLoop(driver=SelectorDriver(selector))

    async def main() -> str:
        await asyncio.sleep(0.001)
        running = asyncio.get_running_loop()
        fut = running.create_future()
        threading.Thread(target=running.call_soon_threadsafe, args=(fut.set_result, "ok")).start()
        return await fut

    try:
        assert loop.run_until_complete(main()) == "ok"
    finally:
        loop.close()
    # Closing the loop closed the driver, and with it the selector.
    assert selector.get_map() is None


def test_closing_a_loop_closes_its_driver(fd_count: Callable[[], int]) -> None:
    before = fd_count()
    loop = sansloop.EventLoop(driver=SelectorDriver(selectors.SelectSelector()))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert fd_count() == before
