"""Executors and asynchronous generators: run_in_executor, the default executor's lifetime,
shutdown_default_executor, shutdown_asyncgens and the asyncgen hooks -- against asyncio's."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import inspect
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _asyncio_times_out_executor() -> bool:
    """Whether asyncio's shutdown_default_executor(timeout) gives up waiting in time.

    Early 3.12 releases (3.12.1) await the joining thread first and apply the timeout only
    to the join after it, so they never time out while a worker is busy.
    """
    source = inspect.getsource(asyncio.BaseEventLoop.shutdown_default_executor)
    return "timeout(timeout)" in source


# -- run_in_executor ---------------------------------------------------------------------


def test_default_executor_runs_in_a_worker_thread(any_loop: asyncio.AbstractEventLoop) -> None:
    def work(a: int, b: int) -> tuple[int, threading.Thread]:
        return a + b, threading.current_thread()

    fut = any_loop.run_in_executor(None, work, 2, 3)
    assert isinstance(fut, asyncio.Future)
    total, thread = any_loop.run_until_complete(fut)
    assert total == 5
    assert thread is not threading.current_thread()
    assert thread.name.startswith("asyncio")


def test_to_thread_carries_the_context(any_loop: asyncio.AbstractEventLoop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> tuple[str, threading.Thread]:
        var.set("from the task")
        return await asyncio.to_thread(lambda: (var.get(), threading.current_thread()))

    value, thread = any_loop.run_until_complete(main())
    assert value == "from the task"
    assert thread is not threading.current_thread()


def test_executor_exception_reaches_the_awaiter(any_loop: asyncio.AbstractEventLoop) -> None:
    def fail() -> None:
        raise ValueError("in a thread")

    with pytest.raises(ValueError, match="in a thread"):
        any_loop.run_until_complete(any_loop.run_in_executor(None, fail))


def test_custom_executor(any_loop: asyncio.AbstractEventLoop) -> None:
    with concurrent.futures.ThreadPoolExecutor(thread_name_prefix="custom") as pool:
        name = any_loop.run_until_complete(
            any_loop.run_in_executor(pool, lambda: threading.current_thread().name)
        )
    assert name.startswith("custom")


def test_set_default_executor(any_loop: asyncio.AbstractEventLoop) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="mine")
    try:
        any_loop.set_default_executor(pool)
        name = any_loop.run_until_complete(
            any_loop.run_in_executor(None, lambda: threading.current_thread().name)
        )
        assert name.startswith("mine")
    finally:
        any_loop.close()
        pool.shutdown(wait=True)


@pytest.mark.parametrize(
    "executor", [object(), concurrent.futures.Executor()], ids=["object", "Executor"]
)
def test_set_default_executor_wants_a_thread_pool(
    any_loop: asyncio.AbstractEventLoop, executor: Any
) -> None:
    with pytest.raises(TypeError, match=r"^executor must be ThreadPoolExecutor instance$"):
        any_loop.set_default_executor(executor)


def test_run_in_executor_after_shutdown(any_loop: asyncio.AbstractEventLoop) -> None:
    any_loop.run_until_complete(any_loop.run_in_executor(None, lambda: None))
    any_loop.run_until_complete(any_loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
        any_loop.run_in_executor(None, lambda: None)
    # A caller's own executor still works.
    with concurrent.futures.ThreadPoolExecutor() as pool:
        assert any_loop.run_until_complete(any_loop.run_in_executor(pool, lambda: 7)) == 7


def test_shutdown_default_executor_without_one(any_loop: asyncio.AbstractEventLoop) -> None:
    any_loop.run_until_complete(any_loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match=r"^Executor shutdown has been called$"):
        any_loop.run_in_executor(None, lambda: None)


def test_shutdown_default_executor_joins_the_threads(any_loop: asyncio.AbstractEventLoop) -> None:
    threads = any_loop.run_until_complete(
        asyncio.gather(
            *[any_loop.run_in_executor(None, threading.current_thread) for _ in range(4)]
        )
    )
    any_loop.run_until_complete(any_loop.shutdown_default_executor())
    assert not any(thread.is_alive() for thread in threads)


def test_shutdown_default_executor_waits_for_running_work(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    release = threading.Event()
    finished: list[str] = []

    def work() -> None:
        release.wait(30)
        finished.append("work")

    async def main() -> None:
        fut = any_loop.run_in_executor(None, work)
        # The loop keeps running while shutdown waits: this callback releases the worker.
        any_loop.call_later(0.01, release.set)
        await any_loop.shutdown_default_executor()
        assert finished == ["work"]
        await fut

    any_loop.run_until_complete(main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the timeout argument is 3.12+")
def test_shutdown_default_executor_timeout(any_loop: asyncio.AbstractEventLoop) -> None:
    if not isinstance(any_loop, sansloop.EventLoop) and not _asyncio_times_out_executor():
        pytest.skip("this asyncio awaits the executor before it applies the timeout")
    release = threading.Event()
    started = threading.Event()

    def work() -> threading.Thread:
        started.set()
        release.wait(30)
        return threading.current_thread()

    fut = any_loop.run_in_executor(None, work)
    assert started.wait(30)
    try:
        with pytest.warns(
            RuntimeWarning,
            match=r"^The executor did not finishing joining its threads within 0\.01 seconds\.$",
        ):
            any_loop.run_until_complete(any_loop.shutdown_default_executor(timeout=0.01))
    finally:
        release.set()
    worker = any_loop.run_until_complete(fut)
    worker.join(30)
    assert not worker.is_alive()


# -- asynchronous generators -------------------------------------------------------------


def _tracked_agen(log: list[str]) -> Callable[[], AsyncIterator[int]]:
    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            running = asyncio._get_running_loop()
            log.append("closed on the loop" if running is not None else "closed off the loop")

    return agen


def test_shutdown_asyncgens_closes_live_generators(any_loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []
    agen = _tracked_agen(log)()

    async def start() -> int:
        return await agen.__anext__()

    assert any_loop.run_until_complete(start()) == 1
    any_loop.run_until_complete(any_loop.shutdown_asyncgens())
    assert log == ["closed on the loop"]


def test_shutdown_asyncgens_reports_a_failing_aclose(any_loop: asyncio.AbstractEventLoop) -> None:
    contexts: list[dict[str, Any]] = []
    any_loop.set_exception_handler(lambda loop, context: contexts.append(context))

    async def stubborn() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            raise ValueError("cannot close")

    agen = stubborn()

    async def start() -> int:
        # Started inside the loop, so that the loop's firstiter hook sees it.
        return await agen.__anext__()

    any_loop.run_until_complete(start())
    any_loop.run_until_complete(any_loop.shutdown_asyncgens())
    assert len(contexts) == 1
    assert contexts[0]["message"].startswith(
        "an error occurred during closing of asynchronous generator"
    )
    assert isinstance(contexts[0]["exception"], ValueError)
    assert contexts[0]["asyncgen"] is agen


def test_asyncgen_started_after_shutdown_warns(any_loop: asyncio.AbstractEventLoop) -> None:
    any_loop.run_until_complete(any_loop.shutdown_asyncgens())
    log: list[str] = []
    agen = _tracked_agen(log)()

    async def start() -> int:
        return await agen.__anext__()

    with pytest.warns(ResourceWarning, match="was scheduled after loop.shutdown_asyncgens"):
        any_loop.run_until_complete(start())
    any_loop.run_until_complete(agen.aclose())
    assert log == ["closed on the loop"]


def test_finalizer_closes_a_dropped_generator_on_the_loop(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    log: list[str] = []

    async def main() -> None:
        agen = _tracked_agen(log)()
        await agen.__anext__()
        del agen
        gc.collect()
        # The finalizer hook scheduled aclose() as a task: let it run.
        for _ in range(3):
            await asyncio.sleep(0)

    any_loop.run_until_complete(main())
    assert log == ["closed on the loop"]


def test_asyncgen_hooks_are_set_only_while_running(any_loop: asyncio.AbstractEventLoop) -> None:
    outside = sys.get_asyncgen_hooks()

    async def hooks() -> Any:
        return sys.get_asyncgen_hooks()

    inside = any_loop.run_until_complete(hooks())
    assert inside.firstiter is not None
    assert inside.finalizer is not None
    assert inside != outside
    assert sys.get_asyncgen_hooks() == outside


# -- name resolution runs in the executor ------------------------------------------------


def test_getaddrinfo_and_getnameinfo(any_loop: asyncio.AbstractEventLoop) -> None:
    infos = any_loop.run_until_complete(any_loop.getaddrinfo("127.0.0.1", 80, type=1))
    assert infos
    assert all(info[4][0] == "127.0.0.1" for info in infos)
    host, port = any_loop.run_until_complete(
        any_loop.getnameinfo(("127.0.0.1", 80), flags=1 | 2)  # NI_NUMERICHOST | NI_NUMERICSERV
    )
    assert (host, port) == ("127.0.0.1", "80")
