"""Debug mode, against asyncio's: slow callbacks, thread checks, argument checks, origins."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: asyncio's DEBUG_STACK_DEPTH: how many frames of a coroutine's origin debug mode records.
_DEBUG_STACK_DEPTH = 10


def _run_soon(loop: asyncio.AbstractEventLoop, func: Callable[[], object]) -> None:
    """Run ``func`` in one loop iteration and stop."""
    loop.call_soon(func)
    loop.call_soon(loop.stop)
    loop.run_forever()


def _noop() -> None:
    pass


async def _coro_func() -> None:
    pass


# -- switching debug mode ----------------------------------------------------------------


def test_set_debug(any_loop: asyncio.AbstractEventLoop) -> None:
    any_loop.set_debug(True)
    assert any_loop.get_debug() is True
    any_loop.set_debug(False)
    assert any_loop.get_debug() is False


@pytest.mark.skipif(sys.flags.dev_mode, reason="-X dev turns debug mode on regardless")
@pytest.mark.parametrize("value", ["", "1"])
def test_debug_from_the_environment(
    loop_factory: LoopFactory, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    if sys.flags.ignore_environment:
        pytest.skip("python -E ignores PYTHONASYNCIODEBUG")
    monkeypatch.setenv("PYTHONASYNCIODEBUG", value)
    loop = loop_factory()
    try:
        assert loop.get_debug() is bool(value)
    finally:
        loop.close()


# -- slow callbacks ----------------------------------------------------------------------


def test_slow_callback_warning(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(True)
    # Every callback takes at least 0 seconds: each one is "slow".
    any_loop.slow_callback_duration = 0.0  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        _run_soon(any_loop, _noop)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(
        re.fullmatch(r"Executing <Handle _noop\(\) at .+> took \d+\.\d{3} seconds", m)
        for m in messages
    ), messages


def test_slow_task_step_names_the_task(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(True)
    any_loop.slow_callback_duration = 0.0  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        any_loop.run_until_complete(any_loop.create_task(_coro_func(), name="slowpoke"))
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(
        re.fullmatch(r"Executing <Task .*name='slowpoke'.*> took \d+\.\d{3} seconds", m, re.S)
        for m in messages
    ), messages


def test_no_slow_callback_warning_without_debug(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(False)
    any_loop.slow_callback_duration = 0.0  # type: ignore[attr-defined]
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        _run_soon(any_loop, _noop)
    assert not [r for r in caplog.records if r.getMessage().startswith("Executing")]


# -- the thread check --------------------------------------------------------------------


_WRONG_THREAD = r"^Non-thread-safe operation invoked on an event loop other than the current one$"


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_thread_check_in_debug_mode(any_loop: asyncio.AbstractEventLoop, method: str) -> None:
    any_loop.set_debug(True)
    calls: dict[str, Callable[[], object]] = {
        "call_soon": lambda: any_loop.call_soon(_noop),
        "call_later": lambda: any_loop.call_later(0, _noop),
        "call_at": lambda: any_loop.call_at(0, _noop),
    }
    errors: list[BaseException] = []

    def from_other_thread() -> None:
        try:
            calls[method]()
        except BaseException as exc:
            errors.append(exc)
        # The thread-safe way in stays open.
        any_loop.call_soon_threadsafe(any_loop.stop)

    thread = threading.Thread(target=from_other_thread)
    any_loop.call_soon(thread.start)
    any_loop.run_forever()
    thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert re.match(_WRONG_THREAD, str(errors[0]))


def test_no_thread_check_while_not_running(any_loop: asyncio.AbstractEventLoop) -> None:
    any_loop.set_debug(True)
    handles: list[asyncio.Handle] = []
    thread = threading.Thread(target=lambda: handles.append(any_loop.call_soon(_noop)))
    thread.start()
    thread.join()
    assert len(handles) == 1
    handles[0].cancel()


# -- argument checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe", "run_in_executor"]
)
def test_coroutines_are_refused_in_debug_mode(
    any_loop: asyncio.AbstractEventLoop, method: str
) -> None:
    any_loop.set_debug(True)
    schedule: dict[str, Callable[[Any], object]] = {
        "call_soon": lambda cb: any_loop.call_soon(cb),
        "call_later": lambda cb: any_loop.call_later(1, cb),
        "call_at": lambda cb: any_loop.call_at(1, cb),
        "call_soon_threadsafe": lambda cb: any_loop.call_soon_threadsafe(cb),
        "run_in_executor": lambda cb: any_loop.run_in_executor(None, cb),
    }
    # call_later() checks through call_at(), and says so, in asyncio too.
    checked = "call_at" if method == "call_later" else method
    message = rf"^coroutines cannot be used with {checked}\(\)$"
    with pytest.raises(TypeError, match=message):
        schedule[method](_coro_func)
    coro = _coro_func()
    with pytest.raises(TypeError, match=message):
        schedule[method](coro)
    coro.close()


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_non_callables_are_refused_in_debug_mode(
    any_loop: asyncio.AbstractEventLoop, method: str
) -> None:
    any_loop.set_debug(True)
    schedule: dict[str, Callable[[Any], object]] = {
        "call_soon": lambda cb: any_loop.call_soon(cb),
        "call_later": lambda cb: any_loop.call_later(1, cb),
        "call_at": lambda cb: any_loop.call_at(1, cb),
        "call_soon_threadsafe": lambda cb: any_loop.call_soon_threadsafe(cb),
    }
    checked = "call_at" if method == "call_later" else method
    message = rf"^a callable object was expected by {checked}\(\), got 7$"
    with pytest.raises(TypeError, match=message):
        schedule[method](7)


# -- where things were created -----------------------------------------------------------


def _created_here(obj: object, line: int) -> bool:
    return f"created at {__file__}:{line}" in repr(obj)


def test_handles_and_tasks_remember_where_they_were_created(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    any_loop.set_debug(True)
    here = sys._getframe().f_lineno
    soon = any_loop.call_soon(_noop)
    later = any_loop.call_later(1, _noop)
    at = any_loop.call_at(1, _noop)
    threadsafe = any_loop.call_soon_threadsafe(_noop)
    task = any_loop.create_task(_coro_func())
    assert _created_here(soon, here + 1)
    assert _created_here(later, here + 2)
    assert _created_here(at, here + 3)
    assert _created_here(threadsafe, here + 4)
    assert _created_here(task, here + 5)
    for handle in (soon, later, at, threadsafe):
        handle.cancel()
    any_loop.run_until_complete(task)


def test_coroutine_origin_tracking(any_loop: asyncio.AbstractEventLoop) -> None:
    before = sys.get_coroutine_origin_tracking_depth()
    any_loop.set_debug(True)

    async def main() -> tuple[int, Any]:
        coro = _coro_func()
        origin = coro.cr_origin
        coro.close()
        return sys.get_coroutine_origin_tracking_depth(), origin

    depth, origin = any_loop.run_until_complete(main())
    assert depth == _DEBUG_STACK_DEPTH
    assert origin is not None
    assert origin[0][2] == "main"
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_origin_tracking_follows_set_debug_while_running(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    async def main() -> list[int]:
        depths = [sys.get_coroutine_origin_tracking_depth()]
        any_loop.set_debug(True)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        depths.append(sys.get_coroutine_origin_tracking_depth())
        any_loop.set_debug(False)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        depths.append(sys.get_coroutine_origin_tracking_depth())
        return depths

    any_loop.set_debug(False)
    before = sys.get_coroutine_origin_tracking_depth()
    assert any_loop.run_until_complete(main()) == [before, _DEBUG_STACK_DEPTH, before]


# -- an unclosed loop --------------------------------------------------------------------


def test_unclosed_loop_warns(loop_factory: LoopFactory, fd_count: Callable[[], int]) -> None:
    before = fd_count()
    loop = loop_factory()
    loop.run_until_complete(asyncio.sleep(0))
    expected = rf"^unclosed event loop <{type(loop).__name__} running=False closed=False"
    with pytest.warns(ResourceWarning, match=expected):  # noqa: PT031 - the finaliser may run at either line
        del loop
        gc.collect()
    # The finaliser closed the loop, so its file descriptors are released too.
    assert fd_count() == before


def test_unclosed_loop_is_closed_when_the_warning_is_an_error(
    loop_factory: LoopFactory, fd_count: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fd_count()
    loop = loop_factory()
    loop.run_until_complete(asyncio.sleep(0))
    if not isinstance(loop, sansloop.EventLoop):
        loop.close()
        pytest.skip("sansloop's finaliser (asyncio's leaves the loop open when its warning raises)")
    raised: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_value))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del loop
        gc.collect()
    assert [type(exc) for exc in raised] == [ResourceWarning]
    # The warning raised, and the finaliser still closed the loop.
    assert fd_count() == before


def test_closed_loop_does_not_warn(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    del loop
    gc.collect()  # filterwarnings=error: a ResourceWarning here would fail the test


def test_close_logs_in_debug_mode(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    any_loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        any_loop.close()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == [
        f"Close {any_loop!r}"
    ]
