"""The virtual driver through asyncio's public API: exact time, the idle rule, deadlocks,
manual controls and determinism."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sansloop
from sansloop.drivers import (
    VirtualClock,
    VirtualDeadlock,
    VirtualDriver,
    hold_time,
    virtual_clock,
)

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_NS = 1_000_000_000
_ORIGINS = [0.0, 1.5, 0.1, 12345.678, 1e6 + 0.3]


@pytest.fixture
def vloop() -> Iterator[sansloop.EventLoop]:
    """A fresh loop on the virtual driver, closed afterwards."""
    new = sansloop.new_event_loop(driver="virtual")
    try:
        yield new
    finally:
        new.close()


def _loop_at(origin: float, *, auto_advance: bool = True) -> sansloop.EventLoop:
    return sansloop.EventLoop(driver=VirtualDriver(VirtualClock(origin, auto_advance=auto_advance)))


def _line_of(marker: str, func: Callable[..., Any]) -> int:
    """The line number of the source line of ``func`` containing ``marker``."""
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, line in enumerate(lines) if marker in line)


# -- making a virtual loop ----------------------------------------------------------------


def test_driver_by_name_and_by_object() -> None:
    for loop in (
        sansloop.new_event_loop(driver="virtual"),
        sansloop.EventLoop(driver="virtual"),
        sansloop.EventLoop(driver=VirtualDriver()),
    ):
        try:
            clock = virtual_clock(loop)
            assert isinstance(clock, VirtualClock)
            assert clock.loop is loop
            assert loop.time() == 0.0
        finally:
            loop.close()
        assert clock.loop is None


def test_unknown_driver_names_the_virtual_one() -> None:
    with pytest.raises(ValueError, match="'virtual'"):
        sansloop.EventLoop(driver="nope")


def test_virtual_clock_of_a_loop_that_is_not_virtual(loop: sansloop.EventLoop) -> None:
    with pytest.raises(TypeError, match="virtual driver"):
        virtual_clock(loop)
    with pytest.raises(RuntimeError, match="no running event loop"):
        virtual_clock()


def test_virtual_clock_defaults_to_the_running_loop(vloop: sansloop.EventLoop) -> None:
    async def main() -> VirtualClock:
        return virtual_clock()

    assert vloop.run_until_complete(main()) is virtual_clock(vloop)


def test_asyncio_run_with_a_virtual_loop_factory() -> None:
    async def main() -> float:
        await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    with asyncio.Runner(loop_factory=lambda: sansloop.new_event_loop(driver="virtual")) as runner:
        assert runner.run(main()) == 60.0
        assert runner.run(main()) == 120.0
    assert sansloop.run(main(), driver="virtual") == 60.0


@pytest.mark.parametrize("origin", [float("inf"), float("nan")])
def test_origin_must_be_finite(origin: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        VirtualClock(origin)


def test_a_driver_serves_one_loop_and_a_clock_one_open_loop() -> None:
    clock = VirtualClock()
    first = sansloop.EventLoop(driver=VirtualDriver(clock))
    try:
        with pytest.raises(RuntimeError, match="already drives"):
            sansloop.EventLoop(driver=VirtualDriver(clock))
        # The failed loop did not detach the clock from the first one.
        assert clock.loop is first
    finally:
        first.close()


# -- exact virtual time -------------------------------------------------------------------


@pytest.mark.parametrize("origin", _ORIGINS)
def test_sleep_an_hour_is_exact(origin: float) -> None:
    loop = _loop_at(origin)
    clock = virtual_clock(loop)
    try:
        start = loop.time()
        start_ns = clock.now_ns

        async def main() -> float:
            await asyncio.sleep(3600)
            return loop.time()

        end = loop.run_until_complete(main())
        assert start == origin
        assert end - start == 3600.0
        assert clock.now_ns - start_ns == 3600 * _NS
    finally:
        loop.close()


@pytest.mark.parametrize("origin", _ORIGINS)
def test_timer_when_matches_loop_time_in_its_callback(origin: float) -> None:
    loop = _loop_at(origin)
    try:
        seen: list[tuple[float, float]] = []
        rng = random.Random(7)
        for _ in range(200):
            delay = rng.choice([rng.uniform(0, 100), rng.randrange(1, 50) / 10, 1 / 3, 1e-9])
            handle: list[asyncio.TimerHandle] = []
            handle.append(
                loop.call_later(delay, lambda h=handle: seen.append((h[0].when(), loop.time())))
            )
        last = loop.call_later(200, loop.stop)
        loop.run_forever()
        assert len(seen) == 200
        for when, now in seen:
            # Due by asyncio's rule, and within half a nanosecond of the deadline.
            assert when < now + 1e-9
            assert abs(now - when) <= 0.5e-9 + 1e-15 * abs(when)
        assert [now for _, now in seen] == sorted(now for _, now in seen)
        assert loop.time() == last.when()
    finally:
        loop.close()


@pytest.mark.parametrize("origin", _ORIGINS)
def test_many_small_sleeps_do_not_drift(origin: float) -> None:
    loop = _loop_at(origin)
    clock = virtual_clock(loop)
    try:
        start_ns = clock.now_ns

        async def main() -> None:
            for _ in range(10_000):
                await asyncio.sleep(0.001)

        loop.run_until_complete(main())
        assert clock.now_ns == start_ns + 10 * _NS
        assert loop.time() == (start_ns + 10 * _NS) / _NS
    finally:
        loop.close()


def test_time_never_goes_backwards_and_timers_run_in_deadline_order(
    vloop: sansloop.EventLoop,
) -> None:
    rng = random.Random(1234)
    fired: list[tuple[float, int]] = []
    expected: list[tuple[float, int]] = []
    for seq in range(500):
        # Many equal deadlines: they must keep their scheduling order.
        when = rng.randrange(0, 50) * 0.25
        vloop.call_at(when, lambda seq=seq: fired.append((vloop.time(), seq)))
        expected.append((when, seq))
    vloop.call_at(100, vloop.stop)
    vloop.run_forever()
    assert fired == sorted(expected)
    times = [now for now, _ in fired]
    assert times == sorted(times)


def test_a_clock_reused_by_a_new_loop_keeps_its_time() -> None:
    clock = VirtualClock(origin=5.0)
    for expected in (15.0, 25.0):
        loop = sansloop.EventLoop(driver=VirtualDriver(clock))
        try:
            loop.run_until_complete(asyncio.sleep(10))
            assert loop.time() == expected
        finally:
            loop.close()


def test_time_is_kept_across_runs_of_a_shared_loop(vloop: sansloop.EventLoop) -> None:
    vloop.run_until_complete(asyncio.sleep(10))
    assert vloop.time() == 10.0
    vloop.run_until_complete(asyncio.sleep(0))
    vloop.run_until_complete(asyncio.sleep(5))
    assert vloop.time() == 15.0


def test_ten_virtual_hours_take_little_real_time(vloop: sansloop.EventLoop) -> None:
    async def sleeper(period: float) -> None:
        for _ in range(int(36000 / period)):
            await asyncio.sleep(period)

    async def main() -> None:
        await asyncio.gather(sleeper(60), sleeper(3600), sleeper(36000))

    started = time.monotonic()
    vloop.run_until_complete(main())
    assert vloop.time() == 36000.0
    # A behaviour check that time jumps at all (a real clock would need 10 hours).
    assert time.monotonic() - started < 5


# -- timeouts in virtual time -------------------------------------------------------------


def test_asyncio_timeout_fires_at_its_virtual_deadline(vloop: sansloop.EventLoop) -> None:
    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        return vloop.time()

    assert vloop.run_until_complete(main()) == 5.0


def test_wait_for_times_out_in_virtual_time(vloop: sansloop.EventLoop) -> None:
    async def main() -> float:
        never = vloop.create_future()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(never, 30)
        assert never.cancelled()
        return vloop.time()

    assert vloop.run_until_complete(main()) == 30.0


def test_timeout_that_is_not_reached_does_not_move_time(vloop: sansloop.EventLoop) -> None:
    async def main() -> float:
        async with asyncio.timeout(100):
            await asyncio.sleep(1)
        return vloop.time()

    assert vloop.run_until_complete(main()) == 1.0
    assert virtual_clock(vloop).statistics().timers == 0


# -- the idle rule: executors, threads, holds ---------------------------------------------


def _slow(value: str) -> str:
    time.sleep(0.2)
    return value


def test_executor_job_beats_a_virtual_timeout(vloop: sansloop.EventLoop) -> None:
    async def main() -> str:
        return await asyncio.wait_for(vloop.run_in_executor(None, _slow, "done"), 10)

    assert vloop.run_until_complete(main()) == "done"
    # Nothing else was scheduled: virtual time did not move while the job ran.
    assert vloop.time() == 0.0
    assert virtual_clock(vloop).holds == 0
    vloop.run_until_complete(vloop.shutdown_default_executor())


def test_to_thread_beats_a_virtual_timeout() -> None:
    async def main() -> tuple[str, float]:
        result = await asyncio.wait_for(asyncio.to_thread(_slow, "threaded"), 10)
        return result, asyncio.get_running_loop().time()

    assert sansloop.run(main(), driver="virtual") == ("threaded", 0.0)


def test_timers_keep_running_while_a_job_holds_the_clock(vloop: sansloop.EventLoop) -> None:
    """While a job holds the clock, callbacks already due still run; time waits."""
    release = threading.Event()
    order: list[str] = []

    def job() -> None:
        release.wait(10)
        order.append("job")

    async def main() -> None:
        fut = vloop.run_in_executor(None, job)
        order.append("started")
        await asyncio.sleep(0)
        order.append("loop ran meanwhile")
        release.set()
        await fut
        await asyncio.sleep(1)
        order.append("slept")

    vloop.run_until_complete(main())
    assert order == ["started", "loop ran meanwhile", "job", "slept"]
    assert vloop.time() == 1.0
    vloop.run_until_complete(vloop.shutdown_default_executor())


def _post_later(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[str]) -> threading.Thread:
    def body() -> None:
        time.sleep(0.2)
        loop.call_soon_threadsafe(fut.set_result, "from thread")

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_registered_thread_beats_a_virtual_timeout(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)

    async def main() -> str:
        fut = vloop.create_future()
        thread = _post_later(vloop, fut)
        clock.register_thread(thread)
        try:
            return await asyncio.wait_for(fut, 10)
        finally:
            thread.join()

    assert vloop.run_until_complete(main()) == "from thread"
    assert vloop.time() == 0.0


def test_hold_time_lets_a_thread_beat_a_virtual_timeout(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)

    async def main() -> str:
        fut = vloop.create_future()
        with clock.hold_time():
            assert clock.holds == 1
            thread = _post_later(vloop, fut)
            try:
                return await asyncio.wait_for(fut, 10)
            finally:
                thread.join()

    assert vloop.run_until_complete(main()) == "from thread"
    assert clock.holds == 0


def test_an_unregistered_thread_loses_to_the_timeout(vloop: sansloop.EventLoop) -> None:
    """The other side of the rule: work the loop cannot see does not stop the clock."""
    go = threading.Event()
    thread = threading.Thread(target=go.wait, args=(10,))
    thread.start()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(vloop.create_future(), 10)

    try:
        vloop.run_until_complete(main())
        assert vloop.time() == 10.0
    finally:
        go.set()
        thread.join()


def test_releasing_the_last_hold_from_a_thread_wakes_the_loop(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    order: list[str] = []
    hold = clock.hold_time()

    def release_later() -> None:
        time.sleep(0.1)
        order.append("released")
        hold.release()

    async def main() -> None:
        thread = threading.Thread(target=release_later)
        thread.start()
        await asyncio.sleep(5)
        order.append("slept")
        thread.join()

    vloop.run_until_complete(main())
    assert order == ["released", "slept"]
    assert vloop.time() == 5.0
    assert hold.released
    hold.release()  # idempotent
    assert clock.holds == 0


def test_hold_time_helper_is_a_no_op_on_other_loops(loop: sansloop.EventLoop) -> None:
    async def main() -> int:
        with hold_time() as hold:
            assert not hold.released
        return 0

    assert loop.run_until_complete(main()) == 0
    stock = asyncio.new_event_loop()
    try:
        stock.run_until_complete(main())
    finally:
        stock.close()


def test_hold_time_helper_holds_a_virtual_clock(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    with hold_time(vloop):
        assert clock.holds == 1
    assert clock.holds == 0


def test_register_thread_needs_a_started_thread(vloop: sansloop.EventLoop) -> None:
    with pytest.raises(RuntimeError, match="start the thread"):
        virtual_clock(vloop).register_thread(threading.Thread(target=lambda: None))


# -- deadlocks ----------------------------------------------------------------------------


def test_deadlock_names_each_task_what_it_awaits_and_where() -> None:
    async def wait_event(event: asyncio.Event) -> None:
        await event.wait()  # <- event

    async def take(queue: asyncio.Queue[int]) -> None:
        await queue.get()  # <- queue

    async def lock_twice(lock: asyncio.Lock) -> None:
        async with lock:
            await asyncio.sleep(1)
            async with lock:  # <- lock
                pass

    async def wait_condition(condition: asyncio.Condition) -> None:
        async with condition:
            await condition.wait()  # <- condition

    async def main() -> None:
        event = asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue()
        tasks = [
            asyncio.create_task(wait_event(event), name="eventer"),
            asyncio.create_task(take(queue), name="taker"),
            asyncio.create_task(lock_twice(asyncio.Lock()), name="locker"),
            asyncio.create_task(wait_condition(asyncio.Condition()), name="conditioner"),
        ]
        await asyncio.gather(*tasks)  # <- main

    with pytest.raises(VirtualDeadlock) as info:
        sansloop.run(main(), driver="virtual")
    exc = info.value
    assert isinstance(exc, RuntimeError)
    assert exc.now == 1.0
    by_name = {task.name: task for task in exc.tasks}
    main_task = next(task for task in exc.tasks if task.coroutine.endswith(".main"))
    assert len(exc.tasks) == 5
    assert set(by_name) == {"eventer", "taker", "locker", "conditioner", main_task.name}
    assert "asyncio.Event.wait() (the event is not set)" in by_name["eventer"].awaits
    assert "asyncio.Queue.get() (the queue is empty)" in by_name["taker"].awaits
    assert "asyncio.Lock.acquire() (the lock is held)" in by_name["locker"].awaits
    assert "asyncio.Condition.wait()" in by_name["conditioner"].awaits
    assert "asyncio.gather() of 4 (4 pending" in main_task.awaits
    for name, func, marker in [
        ("eventer", wait_event, "# <- event"),
        ("taker", take, "# <- queue"),
        ("locker", lock_twice, "# <- lock"),
        ("conditioner", wait_condition, "# <- condition"),
        (main_task.name, main, "# <- main"),
    ]:
        assert by_name[name].where == f"{__file__}:{_line_of(marker, func)} in {func.__qualname__}"
    message = str(exc)
    for name in ("eventer", "taker", "locker", "conditioner"):
        assert f"task {name!r}" in message
    assert "deadlock at virtual time 1.0" in message
    assert f"{__file__}:{_line_of('# <- event', wait_event)}" in message


def test_deadlock_on_a_task_and_a_plain_future(vloop: sansloop.EventLoop) -> None:
    async def child(fut: asyncio.Future[None]) -> None:
        await fut

    async def main() -> None:
        await asyncio.create_task(child(vloop.create_future()), name="child")

    with pytest.raises(VirtualDeadlock) as info:
        vloop.run_until_complete(main())
    awaits = {task.name: task.awaits for task in info.value.tasks}
    if vloop.get_debug():
        line = _line_of("child(vloop.create_future())", main)
        assert awaits["child"] == (
            f"a Future that nothing resolves (created at {__file__}:{line} in main)"
        )
    else:
        assert awaits["child"] == "a Future that nothing resolves"
    (parent,) = (name for name in awaits if name != "child")
    assert awaits[parent].startswith("task 'child' (")
    _cancel_all(vloop)


def test_deadlock_without_tasks(vloop: sansloop.EventLoop) -> None:
    with pytest.raises(VirtualDeadlock, match="No task is pending") as info:
        vloop.run_forever()
    assert info.value.tasks == ()
    assert not vloop.is_running()
    # The loop is usable afterwards.
    vloop.call_soon(vloop.stop)
    vloop.run_forever()


def test_deadlock_is_not_reported_while_the_clock_is_held(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    hold = clock.hold_time()

    async def main() -> str:
        fut = vloop.create_future()

        def finish() -> None:
            time.sleep(0.1)
            vloop.call_soon_threadsafe(fut.set_result, "posted")
            hold.release()

        thread = threading.Thread(target=finish)
        thread.start()
        try:
            return await fut
        finally:
            thread.join()

    assert vloop.run_until_complete(main()) == "posted"


def test_deadlock_diagnosis_is_deterministic() -> None:
    async def main() -> None:
        events = [asyncio.Event() for _ in range(12)]
        tasks = [asyncio.create_task(event.wait(), name=f"w{i}") for i, event in enumerate(events)]
        await asyncio.gather(*tasks)

    messages = []
    for _ in range(2):
        with pytest.raises(VirtualDeadlock) as info:
            sansloop.run(main(), driver="virtual")
        main_task = next(task for task in info.value.tasks if task.coroutine.endswith(".main"))
        messages.append(str(info.value).replace(repr(main_task.name), "MAIN"))
        names = [task.name for task in info.value.tasks if task is not main_task]
        assert names == [f"w{i}" for i in range(12)]
    assert messages[0] == messages[1]


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


# -- manual control -----------------------------------------------------------------------


async def _ticker(loop: asyncio.AbstractEventLoop, ticks: list[float], period: float = 1) -> None:
    while True:
        await asyncio.sleep(period)
        ticks.append(loop.time())


def test_manual_clock_moves_only_when_advanced() -> None:
    loop = _loop_at(0.0, auto_advance=False)
    clock = virtual_clock(loop)
    ticks: list[float] = []
    try:
        task = loop.create_task(_ticker(loop, ticks))
        clock.run_until_idle()
        assert ticks == []
        assert loop.time() == 0.0
        clock.advance(2.5)
        assert ticks == [1.0, 2.0]
        assert loop.time() == 2.5
        clock.advance_to_next_timer()
        assert ticks == [1.0, 2.0, 3.0]
        assert loop.time() == 3.0
        clock.advance(0)
        assert loop.time() == 3.0
        stats = clock.statistics()
        assert (stats.now, stats.now_ns, stats.timers, stats.ready) == (3.0, 3 * _NS, 1, 0)
        assert stats.next_deadline == 4.0
        assert not stats.auto_advance
        # Left alone, a manual clock with pending timers is a deadlock.
        with pytest.raises(VirtualDeadlock, match="auto_advance=False"):
            loop.run_until_complete(asyncio.sleep(1))
        assert loop.time() == 3.0
        clock.auto_advance = True
        loop.run_until_complete(asyncio.sleep(1))
        assert loop.time() == 4.0
        task.cancel()
        _cancel_all(loop)
    finally:
        loop.close()


def test_step_runs_one_iteration(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    order: list[str] = []
    vloop.call_soon(lambda: (order.append("first"), vloop.call_soon(order.append, "second")))
    vloop.call_later(1, order.append, "timer")
    clock.step()
    assert order == ["first"]
    clock.step()
    assert order == ["first", "second"]
    clock.step()  # step never jumps time
    assert order == ["first", "second"]
    assert vloop.time() == 0.0
    assert clock.statistics().timers == 1


def test_advance_runs_each_timer_at_its_own_time(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    seen: list[tuple[str, float]] = []
    vloop.call_later(3, lambda: seen.append(("c", vloop.time())))
    vloop.call_later(1, lambda: seen.append(("a", vloop.time())))
    vloop.call_later(2, lambda: seen.append(("b", vloop.time())))
    vloop.call_later(5, lambda: seen.append(("d", vloop.time())))
    clock.advance(3)
    assert seen == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert vloop.time() == 3.0
    clock.advance_to_next_timer()
    assert seen[-1] == ("d", 5.0)
    clock.advance_to_next_timer()  # no timer left: nothing happens
    assert vloop.time() == 5.0


def test_controls_inside_a_coroutine(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    ticks: list[float] = []

    async def main() -> list[float]:
        task = asyncio.create_task(_ticker(vloop, ticks))
        await clock.run_until_idle()
        await clock.advance(10)
        # Every tick up to and including the target ran before advance() returned.
        assert ticks == [float(i) for i in range(1, 11)]
        assert vloop.time() == 10.0
        await clock.advance_to_next_timer()
        assert vloop.time() == 11.0
        before = len(ticks)
        await clock.step()
        assert len(ticks) == before
        task.cancel()
        return ticks

    assert vloop.run_until_complete(main())[-1] == 11.0


def test_advance_inside_a_manual_clock_runs_other_tasks(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    clock.auto_advance = False
    ticks: list[float] = []

    async def main() -> None:
        task = asyncio.create_task(_ticker(vloop, ticks, 0.5))
        await clock.advance(2)
        assert ticks == [0.5, 1.0, 1.5, 2.0]
        task.cancel()

    vloop.run_until_complete(main())


def test_controls_check_their_arguments_and_the_loop() -> None:
    clock = VirtualClock()
    with pytest.raises(RuntimeError, match="no open event loop"):
        clock.run_until_idle()
    loop = sansloop.EventLoop(driver=VirtualDriver(clock))
    try:
        with pytest.raises(ValueError, match="negative"):
            clock.advance(-1)
        with pytest.raises(ValueError, match="finite"):
            clock.advance(float("inf"))
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="no open event loop"):
        clock.step()


def test_controls_from_another_thread_are_refused(vloop: sansloop.EventLoop) -> None:
    clock = virtual_clock(vloop)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            clock.advance(1)
        except RuntimeError as exc:
            errors.append(exc)

    async def main() -> None:
        thread = threading.Thread(target=other)
        with clock.hold_time():
            thread.start()
            await asyncio.to_thread(thread.join)

    vloop.run_until_complete(main())
    assert len(errors) == 1
    assert "another thread" in str(errors[0])
    vloop.run_until_complete(vloop.shutdown_default_executor())


# -- determinism --------------------------------------------------------------------------


def _traced_program(seed: int) -> list[tuple[float, str]]:
    trace: list[tuple[float, str]] = []

    async def worker(name: str, rng: random.Random, queue: asyncio.Queue[str]) -> None:
        for i in range(20):
            await asyncio.sleep(rng.choice([0, 0.001, 0.5, 1, 1 / 3]))
            trace.append((asyncio.get_running_loop().time(), f"{name} step {i}"))
            if i % 5 == 0:
                await queue.put(f"{name}:{i}")

    async def consumer(queue: asyncio.Queue[str]) -> None:
        while True:
            item = await queue.get()
            trace.append((asyncio.get_running_loop().time(), f"got {item}"))

    async def main() -> None:
        rng = random.Random(seed)
        queue: asyncio.Queue[str] = asyncio.Queue()
        eater = asyncio.create_task(consumer(queue))
        try:
            async with asyncio.timeout(15):
                await asyncio.gather(*(worker(f"w{i}", rng, queue) for i in range(5)))
        except TimeoutError:
            trace.append((asyncio.get_running_loop().time(), "timeout"))
        eater.cancel()

    sansloop.run(main(), driver="virtual")
    return trace


def test_same_program_gives_the_same_trace() -> None:
    first = _traced_program(42)
    assert len(first) > 50
    assert first == _traced_program(42)
    assert first != _traced_program(43)


def test_far_origin_where_floats_are_coarser_than_a_nanosecond() -> None:
    """At 1.7e9 s a float step is 238 ns: timers must still fire, in order, never hang."""
    loop = _loop_at(1.7e9)
    try:
        seen: list[float] = []

        async def main() -> None:
            for delay in (1e-9, 1e-7, 0.5, 1.0):
                handle = loop.call_later(delay, lambda: seen.append(loop.time()))
                await asyncio.sleep(delay)
                assert handle.when() < loop.time() + 1e-9 or handle.when() <= loop.time()

        loop.run_until_complete(main())
        assert len(seen) == 4
        assert seen == sorted(seen)
        # 1e-9 and 1e-7 vanish in float arithmetic at this magnitude (so run at once).
        assert seen[0] == 1.7e9
        assert seen[-1] == 1_700_000_001.5
    finally:
        loop.close()


def test_a_year_of_virtual_time_keeps_zero_delay_timers_due(vloop: sansloop.EventLoop) -> None:
    """Past 2**23 s a float step exceeds 1 ns; call_at(loop.time()) must still run."""

    async def main() -> list[float]:
        await asyncio.sleep(365 * 86400)
        ran: list[float] = []
        fut = vloop.create_future()
        vloop.call_at(vloop.time(), ran.append, vloop.time())
        vloop.call_later(0, fut.set_result, None)
        await fut
        await asyncio.sleep(1e-9)
        return ran

    assert vloop.run_until_complete(main()) == [365 * 86400.0]
    assert vloop.time() >= 365 * 86400.0 + 1e-9
