"""Running, stopping and closing the loop, through asyncio's public API.

Most tests take ``any_loop``/``loop_factory`` (see ``tests/conftest.py``) and so also run on
``asyncio.SelectorEventLoop``: the expectation is asyncio's own.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
_INNER_LOOPS: dict[str, LoopFactory] = {
    "sansloop": sansloop.EventLoop,
    "asyncio": asyncio.SelectorEventLoop,
}


@functools.cache
def _asyncio_has_gh130145() -> bool:
    """Whether asyncio's run_forever() unregisters the running loop when it refuses to run.

    CPython gh-130145 (3.13.0 and other releases): the cleanup of a failed nested run resets
    the running loop.  Tests of that refusal then skip asyncio's loop as a reference.
    """
    outer, inner = asyncio.SelectorEventLoop(), asyncio.SelectorEventLoop()

    async def probe() -> bool:
        try:
            inner.run_forever()
        except RuntimeError:
            pass
        return asyncio._get_running_loop() is None

    try:
        return outer.run_until_complete(probe())
    finally:
        inner.close()
        outer.close()


def _skip_if_asyncio_bug(loop: asyncio.AbstractEventLoop) -> None:
    if not isinstance(loop, sansloop.EventLoop) and _asyncio_has_gh130145():
        pytest.skip("this asyncio has CPython gh-130145 (failed nested run resets state)")


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


# -- run_until_complete ------------------------------------------------------------------


def test_new_loop_is_idle_and_open(any_loop: asyncio.AbstractEventLoop) -> None:
    assert not any_loop.is_running()
    assert not any_loop.is_closed()


def test_run_until_complete_returns_the_result(any_loop: asyncio.AbstractEventLoop) -> None:
    assert any_loop.run_until_complete(_answer()) == 42
    assert not any_loop.is_running()


def test_run_until_complete_raises_the_exception(any_loop: asyncio.AbstractEventLoop) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        any_loop.run_until_complete(fail())
    assert not any_loop.is_running()


def test_run_until_complete_accepts_a_future(any_loop: asyncio.AbstractEventLoop) -> None:
    fut = any_loop.create_future()
    any_loop.call_soon(fut.set_result, "done")
    assert any_loop.run_until_complete(fut) == "done"


def test_run_until_complete_rejects_a_foreign_future(loop_factory: LoopFactory) -> None:
    other = asyncio.SelectorEventLoop()
    loop = loop_factory()
    try:
        with pytest.raises(ValueError, match="different loop"):
            loop.run_until_complete(other.create_future())
    finally:
        loop.close()
        other.close()


def test_run_until_complete_stopped_early(any_loop: asyncio.AbstractEventLoop) -> None:
    fut = any_loop.create_future()
    any_loop.call_soon(any_loop.stop)
    with pytest.raises(RuntimeError, match=r"^Event loop stopped before Future completed\.$"):
        any_loop.run_until_complete(fut)
    assert not fut.done()


def test_is_running_inside_and_outside(any_loop: asyncio.AbstractEventLoop) -> None:
    seen: list[bool] = []
    any_loop.call_soon(lambda: seen.append(any_loop.is_running()))
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert seen == [True]
    assert not any_loop.is_running()


def test_running_loop_is_registered(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[Any, Any]:
        return asyncio.get_running_loop(), asyncio._get_running_loop()

    assert any_loop.run_until_complete(main()) == (any_loop, any_loop)
    assert asyncio._get_running_loop() is None


# -- stop --------------------------------------------------------------------------------


def test_stop_before_run_does_one_iteration(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        any_loop.call_soon(ran.append, "second")

    any_loop.call_soon(first)
    # A far timer must not make the single iteration wait.
    far = any_loop.call_later(3600, ran.append, "far")
    any_loop.stop()
    any_loop.run_forever()
    assert ran == ["first"]

    # The stop request was used up: the next run goes on until stopped again.
    any_loop.call_soon(any_loop.call_soon, any_loop.stop)
    any_loop.run_forever()
    assert ran == ["first", "second"]
    far.cancel()


def test_stop_twice_before_run_is_one_stop(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    any_loop.stop()
    any_loop.stop()
    any_loop.run_forever()
    any_loop.call_soon(ran.append, 1)
    any_loop.call_soon(any_loop.call_soon, any_loop.stop)
    any_loop.run_forever()
    assert ran == [1]


def test_stop_from_a_callback_finishes_the_batch(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    any_loop.call_soon(ran.append, 1)
    any_loop.call_soon(any_loop.stop)
    any_loop.call_soon(ran.append, 2)
    any_loop.run_forever()
    assert ran == [1, 2]


def test_stop_from_a_coroutine(any_loop: asyncio.AbstractEventLoop) -> None:
    steps: list[int] = []

    async def main() -> None:
        steps.append(1)
        await asyncio.sleep(0)
        steps.append(2)
        any_loop.stop()

    task = any_loop.create_task(main())
    any_loop.run_forever()
    assert steps == [1, 2]
    assert task.done()


def test_stop_on_a_closed_loop_is_silent(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    loop.stop()
    assert loop.is_closed()


# -- running again, nesting, threads -----------------------------------------------------


def test_run_twice(any_loop: asyncio.AbstractEventLoop) -> None:
    assert any_loop.run_until_complete(_answer()) == 42
    assert any_loop.run_until_complete(_answer()) == 42
    for _ in range(2):
        any_loop.call_soon(any_loop.stop)
        any_loop.run_forever()
    assert not any_loop.is_running()


def test_run_inside_the_running_loop(any_loop: asyncio.AbstractEventLoop) -> None:
    _skip_if_asyncio_bug(any_loop)
    errors: list[str] = []

    async def main() -> None:
        for run in (any_loop.run_forever, lambda: any_loop.run_until_complete(fut)):
            try:
                run()
            except RuntimeError as exc:
                errors.append(str(exc))
        assert any_loop.is_running()

    fut = any_loop.create_future()
    any_loop.run_until_complete(main())
    assert errors == ["This event loop is already running"] * 2


@pytest.mark.parametrize("inner_name", sorted(_INNER_LOOPS))
def test_run_while_another_loop_runs(loop_factory: LoopFactory, inner_name: str) -> None:
    if inner_name == "asyncio" and _asyncio_has_gh130145():
        pytest.skip("this asyncio has CPython gh-130145 (failed nested run resets state)")
    outer = loop_factory()
    inner = _INNER_LOOPS[inner_name]()
    errors: list[str] = []

    async def main() -> None:
        fut = inner.create_future()
        for run in (inner.run_forever, lambda: inner.run_until_complete(fut)):
            try:
                run()
            except RuntimeError as exc:
                errors.append(str(exc))
        assert not inner.is_running()
        assert asyncio.get_running_loop() is outer

    try:
        outer.run_until_complete(main())
        # The inner loop is untouched and can run on its own afterwards.
        assert inner.run_until_complete(_answer()) == 42
    finally:
        inner.close()
        outer.close()
    assert errors == ["Cannot run the event loop while another loop is running"] * 2


def test_run_from_two_threads(loop: sansloop.EventLoop) -> None:
    # Only sansloop: asyncio 3.13.0's run_forever() runs its cleanup when its own setup
    # fails, which unregisters the running loop from under the first thread.
    errors: list[BaseException] = []

    def run_in_other_thread() -> None:
        try:
            loop.run_forever()
        except BaseException as exc:
            errors.append(exc)

    def start_and_join() -> None:
        thread = threading.Thread(target=run_in_other_thread)
        thread.start()
        thread.join()
        assert loop.is_running()
        assert asyncio._get_running_loop() is loop

    loop.call_soon(start_and_join)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert [type(exc) for exc in errors] == [RuntimeError]
    assert str(errors[0]) == "This event loop is already running"
    assert loop.run_until_complete(_answer()) == 42


def test_run_in_a_worker_thread(loop_factory: LoopFactory) -> None:
    results: list[Any] = []

    def worker() -> None:
        loop = loop_factory()
        try:
            results.append(loop.run_until_complete(_answer()))
            results.append(asyncio._get_running_loop())
        finally:
            loop.close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results == [42, None]


def test_base_exception_from_a_callback_leaves_the_loop_usable(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    any_loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        any_loop.run_forever()
    assert not any_loop.is_running()
    assert asyncio._get_running_loop() is None
    assert any_loop.run_until_complete(_answer()) == 42


def test_base_exception_from_a_task_reaches_the_caller(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    async def leave() -> None:
        await asyncio.sleep(0)
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        any_loop.run_until_complete(leave())
    assert info.value.code == 3
    assert any_loop.run_until_complete(_answer()) == 42


# -- close -------------------------------------------------------------------------------


def test_close_while_running(any_loop: asyncio.AbstractEventLoop) -> None:
    errors: list[str] = []

    def try_close() -> None:
        try:
            any_loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    any_loop.call_soon(try_close)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not any_loop.is_closed()


def test_run_after_close(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.run_forever()
    coro = _answer()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        loop.run_until_complete(coro)
    coro.close()
    assert not loop.is_running()


def test_close_twice(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.close()
    loop.close()
    assert loop.is_closed()


def test_close_drops_queued_callbacks(loop_factory: LoopFactory) -> None:
    class Target:
        def method(self) -> None:
            raise AssertionError("must not run")

    loop = loop_factory()
    target = Target()
    ref = weakref.ref(target)
    loop.call_soon(target.method)
    loop.call_later(3600, target.method)
    loop.call_soon_threadsafe(target.method)
    del target
    loop.close()
    gc.collect()
    assert ref() is None


@pytest.mark.skipif(sys.platform == "win32", reason="counts /proc/self/fd")
def test_closing_loops_leaks_no_fds(loop_factory: LoopFactory, fd_count: Callable[[], int]) -> None:
    before = fd_count()
    for _ in range(20):
        loop = loop_factory()
        loop.run_until_complete(_answer())
        loop.call_soon_threadsafe(lambda: None)
        loop.close()
    assert fd_count() == before


def test_close_shuts_down_the_default_executor(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    try:
        worker = loop.run_until_complete(loop.run_in_executor(None, threading.current_thread))
    finally:
        loop.close()
    assert worker is not threading.current_thread()
    worker.join(timeout=30)
    assert not worker.is_alive()


# -- drivers and the loop's constructor --------------------------------------------------


def test_driver_by_name() -> None:
    loop = sansloop.EventLoop(driver="selectors")
    try:
        assert loop.run_until_complete(_answer()) == 42
    finally:
        loop.close()


def test_unknown_driver_name() -> None:
    with pytest.raises(ValueError, match="unknown sansloop driver 'nope'"):
        sansloop.EventLoop(driver="nope")


def test_repr(loop: sansloop.EventLoop) -> None:
    assert "running=False" in repr(loop)
    assert "closed=False" in repr(loop)


# -- asyncio.Runner and asyncio.run with a loop factory ----------------------------------


def test_runner_with_loop_factory() -> None:
    policy = asyncio.get_event_loop_policy()
    with asyncio.Runner(loop_factory=sansloop.EventLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, sansloop.EventLoop)
        assert runner.run(_answer()) == 42
        assert runner.run(_answer()) == 42
    assert loop.is_closed()
    assert asyncio.get_event_loop_policy() is policy


def test_runner_debug_flag() -> None:
    async def debug() -> bool:
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(loop_factory=sansloop.EventLoop, debug=True) as runner:
        assert runner.run(debug()) is True


def test_runner_closes_asyncgens_and_the_executor() -> None:
    closed: list[str] = []

    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            closed.append("agen")

    async def main() -> tuple[Any, threading.Thread]:
        gen = agen()
        await gen.__anext__()
        thread = await asyncio.get_running_loop().run_in_executor(None, threading.current_thread)
        return gen, thread

    with asyncio.Runner(loop_factory=sansloop.EventLoop) as runner:
        gen, worker = runner.run(main())
    assert closed == ["agen"]
    # shutdown_default_executor() joined the worker before the runner closed the loop.
    assert not worker.is_alive()
    del gen


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_runner_turns_sigint_into_cancellation() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("asyncio.Runner only handles SIGINT over the default handler")
    seen: list[str] = []

    def interrupt() -> None:
        # Aimed at the main thread, which is (most likely) blocked in the loop's wait.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # If the signal handler's wake-up were lost, only this timer would end the wait.
        fallback = loop.call_later(10, lambda: None)
        threading.Timer(0.05, interrupt).start()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled" if loop.time() < fallback.when() else "woken by the timer")
            fallback.cancel()
            raise

    with (
        pytest.raises(KeyboardInterrupt),
        asyncio.Runner(loop_factory=sansloop.EventLoop) as runner,
    ):
        runner.run(main())
    assert seen == ["cancelled"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory() -> None:
    policy = asyncio.get_event_loop_policy()

    async def main() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert asyncio.run(main(), loop_factory=sansloop.EventLoop) is sansloop.EventLoop  # type: ignore[call-arg]
    assert asyncio.get_event_loop_policy() is policy
