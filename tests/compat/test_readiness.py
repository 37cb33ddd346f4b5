"""add_reader/remove_reader/add_writer/remove_writer through the public API, with real sockets.

Every behaviour test runs on sansloop and on asyncio's ``SelectorEventLoop`` (the reference):
the same assertions must hold on both.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

import sansloop
from sansloop.drivers import Driver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")


def _run_iterations(loop: asyncio.AbstractEventLoop, count: int) -> None:
    """Run exactly ``count`` iterations of ``loop`` (each waits for I/O without blocking)."""
    for _ in range(count):
        loop.call_soon(loop.stop)
        loop.run_forever()


def _run_until(loop: asyncio.AbstractEventLoop, done: Callable[[], bool]) -> None:
    async def poll() -> None:
        async with asyncio.timeout(10):
            while not done():
                await asyncio.sleep(0.001)

    loop.run_until_complete(poll())


def test_reader_runs_with_its_arguments(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[tuple[Any, ...]] = []
    any_loop.add_reader(a, lambda *args: calls.append(args), 1, "two")
    b.send(b"x")
    _run_until(any_loop, lambda: len(calls) >= 2)
    # Level-triggered: the callback keeps running while the data stays unread.
    assert calls[:2] == [(1, "two"), (1, "two")]
    assert any_loop.remove_reader(a) is True


def test_reader_is_not_called_while_nothing_is_readable(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    calls: list[int] = []
    any_loop.add_reader(a.fileno(), calls.append, 1)
    _run_iterations(any_loop, 5)
    assert calls == []
    assert any_loop.remove_reader(a.fileno()) is True


def test_writer_runs_when_writable(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    calls: list[str] = []
    any_loop.add_writer(a, calls.append, "w")
    _run_until(any_loop, lambda: bool(calls))
    assert calls[0] == "w"
    assert any_loop.remove_writer(a) is True
    assert any_loop.remove_writer(a) is False


def test_remove_returns_whether_a_callback_was_registered(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    assert any_loop.remove_reader(a) is False
    assert any_loop.remove_writer(a) is False
    any_loop.add_reader(a, print)
    # A writer was never added: removing it says so, and leaves the reader alone.
    assert any_loop.remove_writer(a) is False
    # The descriptor number and the socket name the same registration.
    assert any_loop.remove_reader(a.fileno()) is True
    assert any_loop.remove_reader(a) is False


def test_replacing_a_reader_runs_only_the_new_one(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[str] = []
    any_loop.add_reader(a, calls.append, "old")
    any_loop.add_reader(a.fileno(), calls.append, "new")
    b.send(b"x")
    _run_until(any_loop, lambda: bool(calls))
    assert set(calls) == {"new"}
    assert any_loop.remove_reader(a) is True
    assert any_loop.remove_reader(a) is False


def test_reader_and_writer_on_one_descriptor(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[str] = []
    any_loop.add_reader(a, calls.append, "r")
    any_loop.add_writer(a, calls.append, "w")
    b.send(b"x")
    _run_until(any_loop, lambda: {"r", "w"} <= set(calls))
    assert any_loop.remove_writer(a) is True
    a.recv(10)
    calls.clear()
    _run_iterations(any_loop, 3)
    # The reader stayed (nothing to read now); the writer is gone.
    assert calls == []
    b.send(b"y")
    _run_until(any_loop, lambda: bool(calls))
    assert set(calls) == {"r"}
    assert any_loop.remove_reader(a) is True


def test_ready_callback_runs_after_callbacks_already_queued(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    order: list[str] = []

    def on_readable() -> None:
        order.append("reader")
        any_loop.remove_reader(a)

    def make_readable() -> None:
        b.send(b"x")
        any_loop.call_soon(order.append, "soon")

    any_loop.add_reader(a, on_readable)
    any_loop.call_soon(make_readable)
    _run_until(any_loop, lambda: len(order) >= 2)
    # "soon" was queued before the poll that found the socket readable.
    assert order == ["soon", "reader"]


def test_removing_a_reader_in_the_same_batch_skips_its_pending_call(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    calls: list[str] = []
    removed: list[bool] = []
    any_loop.add_reader(a, calls.append, "reader")
    b.send(b"x")
    # Queued before the poll: runs first in the batch the reader's call joins, and cancels it.
    any_loop.call_soon(lambda: removed.append(any_loop.remove_reader(a)))
    _run_iterations(any_loop, 3)
    assert removed == [True]
    assert calls == []


def test_reader_exception_goes_to_the_exception_handler(
    any_loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    contexts: list[dict[str, Any]] = []
    any_loop.set_exception_handler(lambda loop, context: contexts.append(context))
    any_loop.set_debug(True)

    def fail() -> None:
        any_loop.remove_reader(a)
        raise ZeroDivisionError

    any_loop.add_reader(a, fail)
    b.send(b"x")
    _run_until(any_loop, lambda: bool(contexts))
    (context,) = contexts
    assert isinstance(context["exception"], ZeroDivisionError)
    assert isinstance(context["handle"], asyncio.Handle)
    # Debug mode: the handle knows where add_reader() was called.
    assert context["source_traceback"]


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
@pytest.mark.parametrize("bad", [object(), "3", 1.5, None])
def test_invalid_file_object(any_loop: asyncio.AbstractEventLoop, method: str, bad: Any) -> None:
    args = (bad, print) if method.startswith("add") else (bad,)
    with pytest.raises(ValueError, match="Invalid file object"):
        getattr(any_loop, method)(*args)


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_negative_descriptor(any_loop: asyncio.AbstractEventLoop, method: str) -> None:
    args = (-1, print) if method.startswith("add") else (-1,)
    with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
        getattr(any_loop, method)(*args)


def test_file_object_with_a_bad_fileno(any_loop: asyncio.AbstractEventLoop) -> None:
    class Weird:
        def fileno(self) -> str:
            return "not a number"

    with pytest.raises(ValueError, match="Invalid file object"):
        any_loop.add_reader(Weird(), print)


def test_closed_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    loop = loop_factory()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a, print)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    # Bad input is still bad input.
    with pytest.raises(ValueError, match="Invalid file object"):
        loop.remove_reader(object())


def test_closing_the_loop_drops_registrations(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    loop = loop_factory()
    calls: list[int] = []
    loop.add_reader(a, calls.append, 1)
    loop.close()
    b.send(b"x")
    assert calls == []
    # The sockets are the caller's: still open and usable.
    assert a.recv(1) == b"x"


def test_a_pipe_can_be_watched(any_loop: asyncio.AbstractEventLoop) -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        got: list[bytes] = []
        any_loop.add_reader(r, lambda: got.append(os.read(r, 10)))
        os.write(w, b"pipe")
        _run_until(any_loop, lambda: bool(got))
        assert got[0] == b"pipe"
        assert any_loop.remove_reader(r) is True
    finally:
        os.close(r)
        os.close(w)


def test_closed_socket_can_still_be_removed(any_loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        any_loop.add_reader(a, print)
        a.close()
        # The registration is found by the object itself, as asyncio's selectors do.
        assert any_loop.remove_reader(a) is True
        # Once it is gone, a closed socket names no descriptor at all.
        with pytest.raises(ValueError, match="Invalid file descriptor: -1"):
            any_loop.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_no_descriptor_leaks(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], fd_count: Callable[[], int]
) -> None:
    before = fd_count()
    loop = loop_factory()
    a, b = socket.socketpair()
    try:
        seen: list[bytes] = []
        loop.add_reader(a, lambda: seen.append(a.recv(10)))
        loop.add_writer(b, lambda: (b.send(b"ping"), loop.remove_writer(b)))
        _run_until(loop, lambda: bool(seen))
        assert seen[0] == b"ping"
    finally:
        loop.close()
        a.close()
        b.close()
    assert fd_count() == before


@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_driver_without_readiness(method: str, clock_only_driver: Driver) -> None:
    loop = sansloop.EventLoop(driver=clock_only_driver)
    a, b = socket.socketpair()
    try:
        args = (a, print) if method.startswith("add") else (a,)
        with pytest.raises(NotImplementedError, match="ClockOnlyDriver driver has no readiness"):
            getattr(loop, method)(*args)
    finally:
        loop.close()
        a.close()
        b.close()
