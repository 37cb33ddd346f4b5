"""add_signal_handler/remove_signal_handler with real signals sent to this process.

Every test runs on sansloop and on asyncio's ``SelectorEventLoop``; a fixture checks that each
test leaves the signal dispositions and the wake-up fd as it found them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

if sys.platform == "win32":
    pytest.skip("POSIX signals", allow_module_level=True)

import signal

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_WATCHED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)


def _wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd)
    return fd


@pytest.fixture(autouse=True)
def _signal_state_is_restored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    saved = {sig: signal.getsignal(sig) for sig in _WATCHED}
    wakeup = _wakeup_fd()
    yield
    # Torn down after the loop fixtures: closing the loop must have restored everything.
    after = {sig: signal.getsignal(sig) for sig in _WATCHED}
    after_wakeup = _wakeup_fd()
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(wakeup)
    assert after == saved
    assert after_wakeup == wakeup


def _kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)


# -- delivery ----------------------------------------------------------------------------


def test_signal_runs_the_callback_in_the_loop(any_loop: asyncio.AbstractEventLoop) -> None:
    got: list[tuple[Any, ...]] = []

    def on_signal(*args: Any) -> None:
        got.append(args)
        any_loop.stop()

    any_loop.add_signal_handler(signal.SIGUSR1, on_signal, "a", 1)
    any_loop.call_soon(_kill_self, signal.SIGUSR1)
    any_loop.run_forever()
    assert got == [("a", 1)]


def test_each_delivery_runs_the_callback(any_loop: asyncio.AbstractEventLoop) -> None:
    count = 0

    def on_signal() -> None:
        nonlocal count
        count += 1
        if count < 3:
            any_loop.call_soon(_kill_self, signal.SIGUSR1)
        else:
            any_loop.stop()

    any_loop.add_signal_handler(signal.SIGUSR1, on_signal)
    any_loop.call_soon(_kill_self, signal.SIGUSR1)
    any_loop.run_forever()
    assert count == 3


@pytest.mark.parametrize("target", ["process", "main thread"])
def test_signal_wakes_an_idle_loop(any_loop: asyncio.AbstractEventLoop, target: str) -> None:
    got: list[str] = []

    def on_signal() -> None:
        got.append("signal")
        any_loop.stop()

    def give_up() -> None:
        got.append("gave up waiting")
        any_loop.stop()

    def send() -> None:
        if target == "process":
            # Any thread may take it; the wake-up fd must still end the loop's wait.
            os.kill(os.getpid(), signal.SIGUSR1)
        else:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]

    any_loop.add_signal_handler(signal.SIGUSR1, on_signal)
    # Sent once the loop (most likely) sits in its wait with nothing else to do.
    sender = threading.Timer(0.05, send)
    any_loop.call_soon(sender.start)
    fallback = any_loop.call_later(30, give_up)
    any_loop.run_forever()
    sender.join()
    fallback.cancel()
    assert got == ["signal"]


def test_call_soon_threadsafe_from_a_plain_signal_handler_wakes_the_loop(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    # What asyncio.Runner does on Ctrl-C: a signal.signal() handler, running on the loop's
    # own thread while the loop blocks in its wait, schedules work with call_soon_threadsafe.
    got: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        any_loop.call_soon_threadsafe(got.append, "woken")
        any_loop.call_soon_threadsafe(any_loop.stop)

    def give_up() -> None:
        got.append("the timer ended the wait")
        any_loop.stop()

    signal.signal(signal.SIGUSR1, on_signal)
    try:
        sender = threading.Timer(
            0.05,
            signal.pthread_kill,
            args=(threading.main_thread().ident, signal.SIGUSR1),
        )
        any_loop.call_soon(sender.start)
        fallback = any_loop.call_later(10, give_up)
        any_loop.run_forever()
        sender.join()
        fallback.cancel()
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    assert got == ["woken"]


# -- adding, replacing, removing ---------------------------------------------------------


def test_remove_signal_handler(any_loop: asyncio.AbstractEventLoop) -> None:
    assert any_loop.remove_signal_handler(signal.SIGUSR1) is False
    any_loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
    assert _wakeup_fd() != -1
    assert any_loop.remove_signal_handler(signal.SIGUSR1) is True
    assert any_loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    # The last handler gone, the wake-up fd is released too.
    assert _wakeup_fd() == -1


def test_removing_sigint_restores_default_int_handler(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    any_loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert any_loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_handler_replaces_the_first(any_loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    any_loop.add_signal_handler(signal.SIGUSR1, got.append, "first")
    any_loop.add_signal_handler(signal.SIGUSR1, got.append, "second")
    any_loop.call_soon(_kill_self, signal.SIGUSR1)
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    assert got == ["second"]


def test_two_signals_two_handlers(any_loop: asyncio.AbstractEventLoop) -> None:
    got: list[str] = []
    any_loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    any_loop.add_signal_handler(signal.SIGUSR2, got.append, "usr2")
    any_loop.call_soon(_kill_self, signal.SIGUSR2)
    any_loop.call_soon(_kill_self, signal.SIGUSR1)
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    assert sorted(got) == ["usr1", "usr2"]
    # Removing one keeps the other working.
    assert any_loop.remove_signal_handler(signal.SIGUSR2)
    got.clear()
    any_loop.call_soon(_kill_self, signal.SIGUSR1)
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    assert got == ["usr1"]


def test_close_removes_the_handlers(
    loop_factory: Any,
) -> None:
    loop = loop_factory()
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert _wakeup_fd() == -1


# -- refusals ----------------------------------------------------------------------------


def test_bad_signal_arguments(any_loop: asyncio.AbstractEventLoop) -> None:
    for method in (
        lambda sig: any_loop.add_signal_handler(sig, lambda: None),
        any_loop.remove_signal_handler,
    ):
        with pytest.raises(TypeError, match=r"^sig must be an int, not 'SIGUSR1'$"):
            method("SIGUSR1")
        with pytest.raises(ValueError, match=rf"^invalid signal number {signal.NSIG + 1}$"):
            method(signal.NSIG + 1)


def test_coroutine_callbacks_are_refused(any_loop: asyncio.AbstractEventLoop) -> None:
    async def handler() -> None:
        pass

    message = r"^coroutines cannot be used with add_signal_handler\(\)$"
    with pytest.raises(TypeError, match=message):
        any_loop.add_signal_handler(signal.SIGUSR1, handler)
    coro = handler()
    with pytest.raises(TypeError, match=message):
        any_loop.add_signal_handler(signal.SIGUSR1, coro)  # type: ignore[arg-type]
    coro.close()
    assert any_loop.remove_signal_handler(signal.SIGUSR1) is False


def test_sigkill_cannot_be_caught(any_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(RuntimeError, match=rf"^sig {int(signal.SIGKILL)} cannot be caught$"):
        any_loop.add_signal_handler(signal.SIGKILL, lambda: None)
    assert any_loop.remove_signal_handler(signal.SIGKILL) is False
    assert _wakeup_fd() == -1


def test_outside_the_main_thread(any_loop: asyncio.AbstractEventLoop) -> None:
    errors: list[BaseException] = []

    def add() -> None:
        try:
            any_loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=add)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "main thread" in str(errors[0])
    assert any_loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_closed_loop(loop_factory: Any) -> None:
    loop = loop_factory()
    loop.close()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
