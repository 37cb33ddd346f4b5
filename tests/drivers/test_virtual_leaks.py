"""The virtual driver's leak report: what a run leaves behind is named, not cancelled silently."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import sansloop
from sansloop.drivers import (
    LeakReport,
    VirtualClock,
    VirtualDriver,
    VirtualLeakError,
    VirtualLeakWarning,
    virtual_clock,
)

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_T = TypeVar("_T")


def _line_of(marker: str, func: Callable[..., Any]) -> int:
    """The line number of the source line of ``func`` containing ``marker``."""
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, line in enumerate(lines) if marker in line)


def _where(marker: str, func: Callable[..., Any]) -> str:
    return f"{__file__}:{_line_of(marker, func)} in {func.__qualname__}"


def _run(main: Coroutine[Any, Any, _T], clock: VirtualClock) -> _T:
    return sansloop.run(main, driver=VirtualDriver(clock))


@pytest.fixture
def asyncio_on_virtual_time() -> Iterator[None]:
    """``asyncio.run()`` itself makes virtual loops (through sansloop's policy)."""
    sansloop.install(driver="virtual")
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(None)


# -- programs that leak --------------------------------------------------------------------


async def _forever(event: asyncio.Event, log: list[str]) -> None:
    try:
        await event.wait()  # the leaked task waits here
    finally:
        log.append("cleaned up")


class _Log(list[str]):
    """What a leaked task did; also keeps it alive, as asyncio holds tasks only weakly (a task
    waiting on an event nobody else holds is garbage the collector may take at any time)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[object] = []


async def _leaks_a_task(log: _Log, delay: float = 5) -> str:
    event = asyncio.Event()
    log.anchors.append(event)
    asyncio.create_task(_forever(event, log), name="forgotten")  # noqa: RUF006 (the leak under test)
    await asyncio.sleep(delay)
    return "result"


_FOREVER_AT = _where("the leaked task waits here", _forever)


def _check_forgotten(report: LeakReport) -> None:
    assert report.now == 5.0
    assert [task.name for task in report.tasks] == ["forgotten"]
    task = report.tasks[0]
    assert task.coroutine == "_forever"
    assert task.awaits == "asyncio.Event.wait() (the event is not set)"
    assert task.where == _FOREVER_AT
    assert report.executor_jobs == report.unretrieved == ()
    text = str(report)
    assert "1 pending task:" in text
    assert "task 'forgotten' (_forever) awaits asyncio.Event.wait()" in text
    assert _FOREVER_AT in text


def test_pending_task_warns_by_default_through_sansloop_run() -> None:
    log = _Log()
    with pytest.warns(VirtualLeakWarning) as record:
        result = sansloop.run(_leaks_a_task(log), driver="virtual")
    # The program's result and asyncio's shutdown are unchanged: the task was still
    # cancelled, and its cleanup ran before the report was emitted.
    assert result == "result"
    assert log == ["cleaned up"]
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("the run left resources behind at virtual time 5.0:")
    assert "task 'forgotten' (_forever) awaits asyncio.Event.wait() (the event is not set)" in (
        message
    )
    assert _FOREVER_AT in message


def test_pending_task_is_reported_by_asyncio_run(asyncio_on_virtual_time: None) -> None:
    log = _Log()
    with pytest.warns(VirtualLeakWarning, match="task 'forgotten'"):
        assert asyncio.run(_leaks_a_task(log)) == "result"
    assert log == ["cleaned up"]


def test_pending_task_raises_in_raise_mode() -> None:
    log = _Log()
    clock = VirtualClock(leaks="raise")
    with pytest.raises(VirtualLeakError) as info:
        _run(_leaks_a_task(log), clock)
    _check_forgotten(info.value.report)
    assert str(info.value) == str(info.value.report)
    assert log == ["cleaned up"]
    # The shutdown finished: the loop is closed and the clock drives nothing.
    assert clock.loop is None


def test_raise_mode_through_the_driver_and_asyncio_runner() -> None:
    log = _Log()
    loops: list[sansloop.EventLoop] = []

    def factory() -> sansloop.EventLoop:
        loops.append(sansloop.EventLoop(driver=VirtualDriver(leaks="raise")))
        return loops[-1]

    runner = asyncio.Runner(loop_factory=factory)
    with pytest.raises(VirtualLeakError, match="forgotten"), runner:
        assert runner.run(_leaks_a_task(log)) == "result"
    assert log == ["cleaned up"]
    assert loops[0].is_closed()


async def _sleeps_forever() -> None:
    await asyncio.sleep(3600)  # sleeping here


def test_a_sleeping_task_names_its_timer() -> None:
    async def main() -> None:
        asyncio.create_task(_sleeps_forever(), name="sleeper")  # noqa: RUF006 (the leak under test)
        await asyncio.sleep(1)

    clock = VirtualClock(leaks="raise")
    with pytest.raises(VirtualLeakError) as info:
        _run(main(), clock)
    (task,) = info.value.report.tasks
    assert task.awaits == "asyncio.sleep() until virtual time 3600.0"
    assert task.where == _where("sleeping here", _sleeps_forever)


def test_tasks_are_listed_in_name_order() -> None:
    async def main() -> None:
        for name in ("w10", "w2", "w1"):
            asyncio.create_task(_sleeps_forever(), name=name)  # noqa: RUF006 (the leak under test)
        await asyncio.sleep(0)

    with pytest.raises(VirtualLeakError) as info:
        _run(main(), VirtualClock(leaks="raise"))
    assert [task.name for task in info.value.report.tasks] == ["w1", "w2", "w10"]


# -- exceptions never retrieved ------------------------------------------------------------


async def _fails() -> None:
    raise ValueError("boom")  # raised here


def test_unretrieved_task_exception_is_reported() -> None:
    async def main() -> int:
        asyncio.create_task(_fails(), name="failing")  # noqa: RUF006 (the leak under test)
        await asyncio.sleep(1)
        return 7

    clock = VirtualClock()
    with pytest.warns(VirtualLeakWarning, match="exception never retrieved") as record:
        assert _run(main(), clock) == 7
    assert len(record) == 1
    message = str(record[0].message)
    raised_at = _where("raised here", _fails)
    assert (
        f"task 'failing' (_fails) failed with ValueError('boom'), raised at {raised_at}" in message
    )
    assert "pending task" not in message


def test_unretrieved_exception_of_a_task_still_alive_is_found_without_gc() -> None:
    kept: list[asyncio.Task[None]] = []

    async def main() -> None:
        kept.append(asyncio.create_task(_fails(), name="kept"))
        await asyncio.sleep(1)

    with pytest.raises(VirtualLeakError) as info:
        _run(main(), VirtualClock(leaks="raise"))
    (lost,) = info.value.report.unretrieved
    assert lost.owner == "task 'kept' (_fails)"
    assert lost.exception == "ValueError('boom')"
    assert lost.where == _where("raised here", _fails)
    # Reporting did not retrieve it for the program.
    assert kept[0].exception() is not None


def test_unretrieved_future_exception_is_reported() -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(KeyError("lost"))
        del fut
        await asyncio.sleep(0)

    with pytest.raises(VirtualLeakError) as info:
        _run(main(), VirtualClock(leaks="raise"))
    (lost,) = info.value.report.unretrieved
    assert lost.owner == "Future"
    assert lost.exception == "KeyError('lost')"
    assert lost.where == "an unknown place (the exception was never raised)"


# -- executor jobs --------------------------------------------------------------------------


def test_executor_job_still_running_is_reported() -> None:
    gate = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    async def main() -> str:
        asyncio.get_running_loop().run_in_executor(pool, gate.wait)  # submitted here
        return "done"

    try:
        with pytest.raises(VirtualLeakError) as info:
            _run(main(), VirtualClock(leaks="raise"))
    finally:
        gate.set()
        pool.shutdown(wait=True)
    report = info.value.report
    assert report.tasks == report.unretrieved == ()
    (job,) = report.executor_jobs
    assert job.where == _where("submitted here", main)
    assert str(job) == f"executor job submitted at {job.where} is still running"


def test_awaited_executor_jobs_are_no_leak() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, sum, [1, 2])
        return first + await asyncio.to_thread(sum, [3, 4])

    clock = VirtualClock(leaks="raise")
    assert _run(main(), clock) == 10
    assert not clock.leaks()


# -- clean runs, ignore mode, failed runs --------------------------------------------------


async def _clean(log: list[str]) -> str:
    event = asyncio.Event()
    waiter = asyncio.create_task(_forever(event, log))
    failing = asyncio.create_task(_fails())
    await asyncio.sleep(2)
    event.set()
    await waiter
    with pytest.raises(ValueError, match="boom"):
        await failing
    async with asyncio.timeout(1):
        await asyncio.sleep(0.5)
    return "clean"


@pytest.mark.parametrize("mode", ["warn", "raise"])
def test_a_clean_run_reports_nothing(mode: Any) -> None:
    log = _Log()
    clock = VirtualClock(leaks=mode)
    # filterwarnings=error: any warning would fail the test.
    assert _run(_clean(log), clock) == "clean"
    assert log == ["cleaned up"]
    report = clock.leaks()
    assert not report
    assert report == LeakReport(now=2.5)
    assert str(report) == "no leaks at virtual time 2.5"


def test_ignore_mode_reports_nothing_and_changes_nothing() -> None:
    log = _Log()
    clock = VirtualClock(leaks="ignore")
    assert _run(_leaks_a_task(log), clock) == "result"
    assert log == ["cleaned up"]
    clock.leak_mode = "raise"  # the mode is the clock's, and can change between runs
    with pytest.raises(VirtualLeakError):
        _run(_leaks_a_task(log), clock)


def test_same_result_and_shutdown_as_on_the_selectors_driver() -> None:
    def trace(driver: Any) -> tuple[str, list[str]]:
        log = _Log()
        return sansloop.run(_leaks_a_task(log, 0.001), driver=driver), log

    expected = trace("selectors")
    with pytest.warns(VirtualLeakWarning):
        assert trace("virtual") == expected
    assert trace(VirtualDriver(leaks="ignore")) == expected


def test_a_failed_run_reports_only_its_failure() -> None:
    async def main() -> None:
        asyncio.create_task(_sleeps_forever(), name="left over")  # noqa: RUF006 (the leak under test)
        await asyncio.sleep(1)
        raise LookupError("the program's own error")

    # No leak warning (it would be an error here) and no VirtualLeakError hiding it.
    with pytest.raises(LookupError, match="own error"):
        _run(main(), VirtualClock(leaks="raise"))


def test_explicitly_cancelled_tasks_are_no_leak() -> None:
    async def main() -> None:
        asyncio.create_task(_sleeps_forever(), name="stopped by the program")  # noqa: RUF006 (the leak under test)
        await asyncio.sleep(1)

    loop = sansloop.EventLoop(driver=VirtualDriver(leaks="raise"))
    try:
        loop.run_until_complete(main())
        (task,) = asyncio.all_tasks(loop)
        # Cleaning up by hand between runs, then the usual cancel-everything.
        task.cancel()
        pending = asyncio.all_tasks(loop)
        for each in pending:
            each.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        assert task.cancelled()
    finally:
        loop.close()


def test_closing_a_loop_with_a_pending_task_reports_it() -> None:
    loop = sansloop.EventLoop(driver=VirtualDriver())
    log = _Log()
    try:
        assert loop.run_until_complete(_leaks_a_task(log)) == "result"
    finally:
        with pytest.warns(VirtualLeakWarning, match="task 'forgotten'"):
            loop.close()


# -- explicit checks -----------------------------------------------------------------------


def test_leaks_and_check_leaks_inside_a_run() -> None:
    async def main() -> LeakReport:
        clock = virtual_clock()
        assert not clock.leaks()  # the caller's own task is not a leak
        task = asyncio.create_task(asyncio.Event().wait(), name="helper")
        await asyncio.sleep(1)
        with pytest.warns(VirtualLeakWarning, match="task 'helper'"):
            report = clock.check_leaks()
        clock.leak_mode = "ignore"
        assert clock.check_leaks() == report
        clock.leak_mode = "warn"
        task.cancel()
        return report

    report = sansloop.run(main(), driver="virtual")
    assert report.now == 1.0
    assert [task.name for task in report.tasks] == ["helper"]


def test_leaks_of_a_clock_without_a_loop() -> None:
    clock = VirtualClock(origin=3.0)
    assert clock.leaks() == LeakReport(now=3.0)
    assert clock.leak_mode == "warn"


@pytest.mark.parametrize("mode", ["fail", "", None])
def test_leak_mode_is_checked(mode: Any) -> None:
    with pytest.raises(ValueError, match="'warn', 'raise', 'ignore'"):
        VirtualClock(leaks=mode)
    clock = VirtualClock()
    with pytest.raises(ValueError, match="'warn', 'raise', 'ignore'"):
        clock.leak_mode = mode
    with pytest.raises(ValueError, match="'warn', 'raise', 'ignore'"):
        VirtualDriver(leaks=mode or "x")


def test_shutdown_awaited_inside_the_program_is_not_the_end() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        helper = asyncio.create_task(event.wait())
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()
        event.set()
        await helper
        return "finished"

    assert _run(main(), VirtualClock(leaks="raise")) == "finished"


def test_a_pending_task_the_collector_took_is_reported() -> None:
    async def main() -> None:
        # Nothing holds this task but a cycle through an event nobody else holds.
        asyncio.create_task(asyncio.Event().wait(), name="collected")  # noqa: RUF006
        await asyncio.sleep(0)
        gc.collect()

    with pytest.raises(VirtualLeakError) as info:
        _run(main(), VirtualClock(leaks="raise"))
    (task,) = info.value.report.tasks
    assert (task.name, task.coroutine) == ("collected", "Event.wait")
    # What it awaited is best effort: the collector may close the coroutine first.
    assert task.awaits.endswith(" (the task was garbage-collected while pending)")


def test_the_warning_points_at_the_callers_line() -> None:
    log = _Log()
    with pytest.warns(VirtualLeakWarning) as record:
        sansloop.run(_leaks_a_task(log), driver="virtual")  # the caller's line
    assert record[0].filename == __file__
    assert record[0].lineno == _line_of(
        "the caller's line", test_the_warning_points_at_the_callers_line
    )


# -- transports and servers left open -------------------------------------------------------

_kept: list[Any] = []


async def _leaves_a_connection_and_a_server() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _kept.append(writer)  # the handler returns; nobody closes its writer

    server = await asyncio.start_server(answer, "127.0.0.1", 8080)
    _kept.append(server)
    _reader, writer = await asyncio.open_connection("127.0.0.1", 8080)
    _kept.append(writer)
    await asyncio.sleep(0.1)


def test_transports_and_servers_left_open_are_reported() -> None:
    clock = VirtualClock(leaks="raise")
    try:
        with pytest.raises(VirtualLeakError) as info:
            _run(_leaves_a_connection_and_a_server(), clock)
        report = info.value.report
        assert [str(t) for t in report.transports] == [
            "SocketTransport 127.0.0.1:32768 -> 127.0.0.1:8080 (protocol StreamReaderProtocol)",
            "SocketTransport 127.0.0.1:8080 -> 127.0.0.1:32768 (protocol StreamReaderProtocol)",
        ]
        assert [str(s) for s in report.servers] == ["server on 127.0.0.1:8080"]
        assert not report.tasks
        assert "2 transports left open:" in str(report)
        assert "1 server left open:" in str(report)
    finally:
        # Their loop is closed: they can only be dropped (their finalisers warn, as asyncio's
        # do, and release the virtual sockets).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            _kept.clear()
            gc.collect()


def test_what_a_program_closes_is_no_leak() -> None:
    async def main() -> None:
        await _leaves_a_connection_and_a_server()
        for kept in _kept:
            kept.close()
        _kept.clear()

    clock = VirtualClock(leaks="raise")
    _run(main(), clock)  # raises VirtualLeakError if anything is reported
    assert not clock.leaks()


def test_open_transports_show_in_a_report_taken_during_the_run() -> None:
    async def main() -> LeakReport:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 9000)
        report = virtual_clock().leaks()
        server.close()
        await server.wait_closed()
        assert not virtual_clock().leaks().servers
        return report

    report = sansloop.run(main(), driver="virtual")
    assert [str(s) for s in report.servers] == ["server on 127.0.0.1:9000"]
