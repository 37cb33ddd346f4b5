"""``sansloop.run()``, ``sansloop.install()`` and ``asyncio.Runner(loop_factory=...)``."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest

import sansloop
from sansloop.drivers import SelectorDriver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")


@pytest.fixture
def keep_policy() -> Iterator[None]:
    """Restore asyncio's global policy after a test that changes it."""
    previous = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


async def running_loop() -> asyncio.AbstractEventLoop:
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


async def loop_debug() -> bool:
    return asyncio.get_running_loop().get_debug()


# -- run() ---------------------------------------------------------------------------------


def test_run_returns_the_result_on_a_sansloop_loop_and_closes_it() -> None:
    loop = sansloop.run(running_loop())
    assert type(loop) is sansloop.EventLoop
    assert loop.is_closed()


def test_run_changes_no_global_state(keep_policy: None) -> None:
    policy = sansloop.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    current = sansloop.new_event_loop()
    try:
        policy.set_event_loop(current)
        ran_on = sansloop.run(running_loop())
        assert ran_on is not current
        assert asyncio.get_event_loop_policy() is policy
        assert policy.get_event_loop() is current
    finally:
        current.close()


def test_run_leaves_asyncio_default_policy_alone(keep_policy: None) -> None:
    asyncio.set_event_loop_policy(None)
    default = asyncio.get_event_loop_policy()
    assert type(sansloop.run(running_loop())) is sansloop.EventLoop
    assert asyncio.get_event_loop_policy() is default


@pytest.mark.parametrize("debug", [True, False])
def test_run_debug(debug: bool) -> None:
    assert sansloop.run(loop_debug(), debug=debug) is debug


@pytest.mark.parametrize(
    "driver",
    ["selectors", SelectorDriver, "instance"],
    ids=["name", "factory", "instance"],
)
def test_run_driver(driver: Any) -> None:
    if driver == "instance":
        driver = SelectorDriver()
    assert type(sansloop.run(running_loop(), driver=driver)) is sansloop.EventLoop


def _rejected(
    call: Any, coro: Coroutine[Any, Any, Any], error: type[Exception], match: str
) -> None:
    """``call(coro)`` raises ``error``; the coroutine, never started, is closed."""
    try:
        with pytest.raises(error, match=match):
            call(coro)
    finally:
        coro.close()


def test_run_rejects_an_unknown_driver_name() -> None:
    _rejected(
        functools.partial(sansloop.run, driver="nope"),
        running_loop(),
        ValueError,
        "unknown sansloop driver 'nope'",
    )


def test_run_rejects_a_non_driver() -> None:
    _rejected(
        functools.partial(sansloop.run, driver=42),
        running_loop(),
        TypeError,
        "driver must be a driver name, a driver, or a callable",
    )


def test_run_rejects_driver_with_loop_factory() -> None:
    _rejected(
        functools.partial(sansloop.run, driver="selectors", loop_factory=sansloop.new_event_loop),
        running_loop(),
        TypeError,
        "a driver or a loop_factory, not both",
    )


@pytest.mark.parametrize("not_a_coroutine", [None, 42, running_loop])
def test_run_rejects_non_coroutines(not_a_coroutine: Any) -> None:
    with pytest.raises(ValueError, match="a coroutine was expected, got"):
        sansloop.run(not_a_coroutine)


def test_run_inside_a_running_loop_raises() -> None:
    async def nested() -> None:
        _rejected(
            sansloop.run,
            running_loop(),
            RuntimeError,
            r"sansloop.run\(\) cannot be called from a running event loop",
        )

    sansloop.run(nested())


def test_run_with_a_loop_factory() -> None:
    class Custom(sansloop.EventLoop):
        pass

    assert type(sansloop.run(running_loop(), loop_factory=Custom)) is Custom


def test_run_propagates_the_exception() -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        sansloop.run(fail())


def test_run_cancels_leftover_tasks_and_closes_async_generators() -> None:
    events: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("task cancelled")
            raise

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            events.append("async generator closed")

    alive: list[object] = []  # strong references: only run()'s shutdown may end them

    async def main() -> None:
        alive.append(asyncio.create_task(forever()))
        gen = agen()
        alive.append(gen)
        await gen.__anext__()
        await asyncio.sleep(0)

    sansloop.run(main())
    assert sorted(events) == ["async generator closed", "task cancelled"]


def test_run_joins_the_default_executors_threads() -> None:
    async def main() -> threading.Thread:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, threading.current_thread)

    worker = sansloop.run(main())
    assert worker is not threading.current_thread()
    assert not worker.is_alive()  # joined before run() returned


def test_run_agrees_with_asyncio_on_the_running_loop_and_task() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        return (
            sansloop.get_running_loop() is loop
            and sansloop.get_event_loop() is loop
            and task is not None
            and task.get_loop() is loop
        )

    assert sansloop.run(main())


# -- asyncio.Runner / asyncio.run with loop_factory ---------------------------------------


def test_asyncio_runner_with_sansloop_loop_factory() -> None:
    with asyncio.Runner(loop_factory=sansloop.new_event_loop) as runner:
        first = runner.run(running_loop())
        second = runner.run(running_loop())
        assert runner.get_loop() is first is second
        assert type(first) is sansloop.EventLoop
    assert first.is_closed()


def test_asyncio_runner_with_a_driver_choice() -> None:
    factory = functools.partial(sansloop.new_event_loop, driver="selectors")
    with asyncio.Runner(loop_factory=factory, debug=True) as runner:
        assert runner.run(loop_debug()) is True
        assert type(runner.get_loop()) is sansloop.EventLoop


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run() has loop_factory from 3.12")
def test_asyncio_run_with_sansloop_loop_factory() -> None:
    loop = asyncio.run(running_loop(), loop_factory=sansloop.new_event_loop)  # type: ignore[call-arg,unused-ignore]
    assert type(loop) is sansloop.EventLoop
    assert loop.is_closed()


# -- install() -----------------------------------------------------------------------------


def test_install_sets_sansloops_policy_as_asyncios(keep_policy: None) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = sansloop.install()
    if sys.version_info < (3, 14):
        assert caught == []  # policies are not deprecated before 3.14, so neither is install()
    assert type(policy) is sansloop.EventLoopPolicy
    assert asyncio.get_event_loop_policy() is policy
    assert sansloop.get_event_loop_policy() is policy
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is sansloop.EventLoop
    finally:
        loop.close()
    assert type(asyncio.run(running_loop())) is sansloop.EventLoop


def test_install_replaces_the_policy_each_time(keep_policy: None) -> None:
    first = sansloop.install()
    second = sansloop.install(driver="selectors")
    assert first is not second
    assert second.driver == "selectors"
    assert asyncio.get_event_loop_policy() is second


def test_install_is_undone_by_set_event_loop_policy_none(keep_policy: None) -> None:
    sansloop.install()
    sansloop.set_event_loop_policy(None)
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    loop = asyncio.new_event_loop()
    try:
        assert not isinstance(loop, sansloop.EventLoop)
    finally:
        loop.close()


def test_install_with_a_bad_driver_keeps_the_policy(keep_policy: None) -> None:
    before = asyncio.get_event_loop_policy()
    with pytest.raises(ValueError, match="unknown sansloop driver 'nope'"):
        sansloop.install(driver="nope")
    with pytest.raises(TypeError, match="driver must be a driver name or a callable"):
        sansloop.install(driver=42)  # type: ignore[arg-type]
    assert asyncio.get_event_loop_policy() is before
