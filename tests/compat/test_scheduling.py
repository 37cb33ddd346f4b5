"""Callbacks, timers, thread-safe calls, contexts, tasks and futures, through asyncio's API.

Tests taking ``any_loop`` also run on ``asyncio.SelectorEventLoop``: the expectation is
asyncio's.  Tests taking ``loop`` check what sansloop defines beyond asyncio (the order of
timers with equal deadlines).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")

#: How close to a deadline a timer counts as due (asyncio uses the monotonic clock's).
_RESOLUTION = time.get_clock_info("monotonic").resolution


# -- call_soon ---------------------------------------------------------------------------


def test_call_soon_is_fifo(any_loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    for i in range(200):
        any_loop.call_soon(order.append, i)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert order == list(range(200))


def test_call_soon_returns_a_handle_and_passes_args(any_loop: asyncio.AbstractEventLoop) -> None:
    got: list[tuple[Any, ...]] = []
    handle = any_loop.call_soon(lambda *args: got.append(args), 1, "two", None)
    assert type(handle) is asyncio.Handle
    assert not handle.cancelled()
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert got == [(1, "two", None)]


def test_cancelled_handle_does_not_run(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []
    handle = any_loop.call_soon(ran.append, "cancelled")
    handle.cancel()
    assert handle.cancelled()
    any_loop.call_soon(ran.append, "kept")
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert ran == ["kept"]


def test_cancel_from_earlier_in_the_same_batch(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []
    first = any_loop.call_soon(lambda: later.cancel())
    later = any_loop.call_soon(ran.append, "later")
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert ran == []
    assert later.cancelled()
    # Cancelling a handle that already ran changes nothing.
    first.cancel()
    assert first.cancelled()


# -- the batch rule ----------------------------------------------------------------------


def test_callback_scheduled_by_a_callback_runs_next_iteration(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        any_loop.call_soon(ran.append, "scheduled by first")

    any_loop.call_soon(first)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    # stop() ended the iteration that ran first(): what first() scheduled is still queued.
    assert ran == ["first"]
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert ran == ["first", "scheduled by first"]


def test_a_busy_callback_chain_does_not_starve_timers(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    spins = 0

    def spin() -> None:
        nonlocal spins
        spins += 1
        if spins < 1_000_000:
            any_loop.call_soon(spin)

    any_loop.call_soon(spin)
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    # The timer stopped the loop while the chain was still going.
    assert 0 < spins < 1_000_000


def test_stop_from_a_timer_lets_ready_callbacks_of_that_batch_run(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    ran: list[str] = []
    when = any_loop.time()
    any_loop.call_at(when, any_loop.stop)
    any_loop.call_soon(ran.append, "soon")
    any_loop.run_forever()
    assert ran == ["soon"]


# -- timers ------------------------------------------------------------------------------


def test_call_later_runs_in_deadline_order(any_loop: asyncio.AbstractEventLoop) -> None:
    order: list[float] = []
    delays = [0.03, 0.0, 0.02, -1.0, 0.01]
    for delay in delays:
        any_loop.call_later(delay, order.append, delay)
    any_loop.call_later(0.04, any_loop.stop)
    any_loop.run_forever()
    assert order == sorted(delays)


def test_call_at_runs_in_deadline_order(any_loop: asyncio.AbstractEventLoop) -> None:
    order: list[int] = []
    now = any_loop.time()
    for offset in (3, 1, 2):
        any_loop.call_at(now + offset / 100, order.append, offset)
    any_loop.call_at(now + 0.04, any_loop.stop)
    any_loop.run_forever()
    assert order == [1, 2, 3]


def test_equal_deadlines_run_in_scheduling_order(loop: sansloop.EventLoop) -> None:
    # asyncio leaves this order undefined; sansloop defines it.
    order: list[int] = []
    when = loop.time() + 0.01
    for i in range(100):
        loop.call_at(when, order.append, i)
    # A call_later() landing on the same deadline queues behind them.
    loop.call_at(when, loop.stop)
    loop.run_forever()
    assert order == list(range(100))


def test_equal_deadlines_keep_their_order_through_a_heap_rebuild(
    loop: sansloop.EventLoop,
) -> None:
    order: list[int] = []
    when = loop.time() + 0.01
    timers = [loop.call_at(when, order.append, i) for i in range(300)]
    # Cancelling two thirds of 300 timers makes the core rebuild its heap.
    for i, timer in enumerate(timers):
        if i % 3:
            timer.cancel()
    loop.call_at(when, loop.stop)
    loop.run_forever()
    assert order == list(range(0, 300, 3))


def test_timer_handle_when_matches_loop_time(any_loop: asyncio.AbstractEventLoop) -> None:
    seen: list[float] = []
    before = any_loop.time()
    timer = any_loop.call_later(0.01, lambda: seen.append(any_loop.time()))
    after = any_loop.time()
    assert isinstance(timer, asyncio.TimerHandle)
    assert before + 0.01 <= timer.when() <= after + 0.01
    at = any_loop.call_at(before + 0.02, any_loop.stop)
    assert at.when() == before + 0.02
    any_loop.run_forever()
    # A timer only runs once the loop's clock (nearly) reached its deadline.
    assert len(seen) == 1
    assert seen[0] + _RESOLUTION > timer.when()


def test_loop_time_is_monotonic(any_loop: asyncio.AbstractEventLoop) -> None:
    samples = [any_loop.time() for _ in range(1000)]
    assert samples == sorted(samples)


def test_cancelled_timer_does_not_run(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []
    timer = any_loop.call_later(0.0, ran.append, "cancelled")
    timer.cancel()
    assert timer.cancelled()
    any_loop.call_later(0.01, any_loop.stop)
    any_loop.run_forever()
    assert ran == []


def test_timer_cancelled_by_an_earlier_timer(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[str] = []
    when = any_loop.time() + 0.01
    victim = any_loop.call_at(when + 0.001, ran.append, "victim")
    any_loop.call_at(when, victim.cancel)
    any_loop.call_at(when + 0.01, any_loop.stop)
    any_loop.run_forever()
    assert ran == []


def test_many_cancelled_timers_leave_the_live_ones_running(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    ran: list[int] = []
    now = any_loop.time()
    timers = [any_loop.call_at(now + 0.001 * (i % 10), ran.append, i) for i in range(500)]
    for timer in timers[50:]:
        timer.cancel()
    any_loop.call_at(now + 0.02, any_loop.stop)
    any_loop.run_forever()
    assert sorted(ran) == list(range(50))


def test_far_timer_does_not_keep_a_stopped_loop_waiting(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    far = any_loop.call_later(24 * 3600 * 10, lambda: None)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert not far.cancelled()
    far.cancel()


def test_none_delay_and_none_when(any_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match=r"^delay must not be None$"):
        any_loop.call_later(None, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^when cannot be None$"):
        any_loop.call_at(None, lambda: None)  # type: ignore[arg-type]


# -- call_soon_threadsafe ----------------------------------------------------------------


def test_call_soon_threadsafe_from_the_loop_thread(any_loop: asyncio.AbstractEventLoop) -> None:
    ran: list[int] = []
    handle = any_loop.call_soon_threadsafe(ran.append, 1)
    assert isinstance(handle, asyncio.Handle)
    cancelled = any_loop.call_soon_threadsafe(ran.append, 2)
    cancelled.cancel()
    any_loop.call_soon_threadsafe(any_loop.stop)
    any_loop.run_forever()
    assert ran == [1]


def test_call_soon_and_call_soon_threadsafe_share_one_fifo(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    order: list[str] = []
    any_loop.call_soon_threadsafe(order.append, "threadsafe 1")
    any_loop.call_soon(order.append, "soon 2")
    any_loop.call_soon_threadsafe(order.append, "threadsafe 3")

    def in_a_callback() -> None:
        any_loop.call_soon_threadsafe(order.append, "threadsafe 4")
        any_loop.call_soon(order.append, "soon 5")
        any_loop.call_soon_threadsafe(order.append, "threadsafe 6")
        any_loop.call_soon(any_loop.stop)

    any_loop.call_soon(in_a_callback)
    any_loop.run_forever()
    assert order == [
        "threadsafe 1",
        "soon 2",
        "threadsafe 3",
        "threadsafe 4",
        "soon 5",
        "threadsafe 6",
    ]


def test_many_threads_wake_an_idle_loop(any_loop: asyncio.AbstractEventLoop) -> None:
    threads, per_thread = 16, 50
    total = threads * per_thread
    got: list[tuple[int, int]] = []

    def record(item: tuple[int, int]) -> None:
        got.append(item)
        if len(got) == total:
            any_loop.stop()

    def post(n: int) -> None:
        for i in range(per_thread):
            any_loop.call_soon_threadsafe(record, (n, i))

    workers = [threading.Thread(target=post, args=(n,)) for n in range(threads)]
    any_loop.call_soon(lambda: [worker.start() for worker in workers])
    # The loop has nothing else to do: it sleeps until a thread wakes it.
    any_loop.run_forever()
    for worker in workers:
        worker.join()
    assert len(got) == total
    # Each thread's callbacks run in the order that thread posted them.
    for n in range(threads):
        assert [i for m, i in got if m == n] == list(range(per_thread))


def test_no_lost_wakeups_in_ping_pong(any_loop: asyncio.AbstractEventLoop) -> None:
    rounds = 300
    pong = threading.Event()
    failures: list[str] = []

    def ping() -> None:
        for i in range(rounds):
            pong.clear()
            any_loop.call_soon_threadsafe(pong.set)
            # Each round the loop falls idle again; a lost wake-up leaves pong unset.
            if not pong.wait(timeout=30):
                failures.append(f"round {i} was never answered")
                break
        any_loop.call_soon_threadsafe(any_loop.stop)

    thread = threading.Thread(target=ping)
    any_loop.call_soon(thread.start)
    any_loop.run_forever()
    thread.join()
    assert failures == []


def test_call_soon_threadsafe_wakes_a_loop_waiting_on_a_far_timer(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    far = any_loop.call_later(3600, lambda: None)
    thread = threading.Thread(target=any_loop.call_soon_threadsafe, args=(any_loop.stop,))
    any_loop.call_soon(thread.start)
    any_loop.run_forever()
    thread.join()
    assert not far.cancelled()
    far.cancel()


def test_run_coroutine_threadsafe(any_loop: asyncio.AbstractEventLoop) -> None:
    results: list[Any] = []

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    def from_thread() -> None:
        fut = asyncio.run_coroutine_threadsafe(double(21), any_loop)
        results.append(fut.result(timeout=30))
        any_loop.call_soon_threadsafe(any_loop.stop)

    thread = threading.Thread(target=from_thread)
    any_loop.call_soon(thread.start)
    any_loop.run_forever()
    thread.join()
    assert results == [42]


# -- contexts ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_callbacks_run_in_the_given_context(
    any_loop: asyncio.AbstractEventLoop, method: str
) -> None:
    ctx = contextvars.copy_context()
    ctx.run(_var.set, "in ctx")
    seen: list[str] = []

    def callback() -> None:
        seen.append(_var.get())
        _var.set("changed by callback")

    schedule: dict[str, Callable[[], object]] = {
        "call_soon": lambda: any_loop.call_soon(callback, context=ctx),
        "call_later": lambda: any_loop.call_later(0, callback, context=ctx),
        "call_at": lambda: any_loop.call_at(any_loop.time(), callback, context=ctx),
        "call_soon_threadsafe": lambda: any_loop.call_soon_threadsafe(callback, context=ctx),
    }
    schedule[method]()
    any_loop.call_later(0.001, any_loop.stop)
    any_loop.run_forever()
    assert seen == ["in ctx"]
    assert ctx[_var] == "changed by callback"
    assert _var.get() == "unset"


def test_callbacks_copy_the_context_at_scheduling_time(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []

    def schedule() -> None:
        _var.set("when scheduled")
        any_loop.call_soon(lambda: seen.append(_var.get()))
        _var.set("after scheduling")
        any_loop.call_soon(lambda: seen.append(_var.get()))

    contextvars.copy_context().run(schedule)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    assert seen == ["when scheduled", "after scheduling"]
    assert _var.get() == "unset"


def test_tasks_copy_the_context_and_pass_it_to_their_callbacks(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []

    async def child() -> None:
        seen.append(f"child:{_var.get()}")
        _var.set("set by child")

    async def main() -> None:
        _var.set("main")
        fut = any_loop.create_future()
        any_loop.call_soon(lambda: fut.set_result(_var.get()))
        seen.append(f"callback:{await fut}")
        await any_loop.create_task(child())
        seen.append(f"main after child:{_var.get()}")

    any_loop.run_until_complete(main())
    assert seen == ["callback:main", "child:main", "main after child:main"]
    assert _var.get() == "unset"


def test_create_task_with_a_context(any_loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(_var.set, "given")

    async def read() -> str:
        value = _var.get()
        _var.set("written by task")
        return value

    async def main() -> str:
        return await any_loop.create_task(read(), context=ctx)

    assert any_loop.run_until_complete(main()) == "given"
    assert ctx[_var] == "written by task"


# -- tasks and futures -------------------------------------------------------------------


def test_create_future(any_loop: asyncio.AbstractEventLoop) -> None:
    fut = any_loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is any_loop
    assert not fut.done()
    fut.cancel()


def test_create_task_and_name(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> tuple[Any, ...]:
        named = any_loop.create_task(asyncio.sleep(0, "named"), name="the-name")
        anonymous = any_loop.create_task(asyncio.sleep(0))
        current = asyncio.current_task()
        await asyncio.gather(named, anonymous)
        return named, anonymous, current, asyncio.all_tasks()

    task = any_loop.create_task(main())
    named, anonymous, current, alive = any_loop.run_until_complete(task)
    assert isinstance(named, asyncio.Task)
    assert named.get_loop() is any_loop
    assert named.get_name() == "the-name"
    assert named.result() == "named"
    assert anonymous.get_name().startswith("Task-")
    assert current is task
    assert alive == {task}


def test_task_factory(any_loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        calls.append((loop, kwargs))
        return asyncio.Task(coro, loop=loop, **kwargs)

    assert any_loop.get_task_factory() is None
    any_loop.set_task_factory(factory)
    assert any_loop.get_task_factory() is factory
    ctx = contextvars.copy_context()
    task = any_loop.create_task(asyncio.sleep(0), name="made")
    with_ctx = any_loop.create_task(asyncio.sleep(0), context=ctx)
    any_loop.run_until_complete(asyncio.gather(task, with_ctx))
    assert task.get_name() == "made"
    assert calls == [(any_loop, {}), (any_loop, {"context": ctx})]

    any_loop.set_task_factory(None)
    assert any_loop.get_task_factory() is None
    any_loop.run_until_complete(any_loop.create_task(asyncio.sleep(0)))
    assert len(calls) == 2


def test_task_factory_must_be_callable(any_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match=r"^task factory must be a callable or None$"):
        any_loop.set_task_factory(42)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+")
def test_eager_task_factory(any_loop: asyncio.AbstractEventLoop) -> None:
    steps: list[str] = []

    async def quick() -> str:
        steps.append("quick ran")
        return "quick"

    async def slow() -> str:
        steps.append("slow started")
        await asyncio.sleep(0)
        steps.append("slow resumed")
        return "slow"

    async def main() -> None:
        eager = any_loop.create_task(quick())
        # An eager task runs up to its first suspension inside create_task().
        assert steps == ["quick ran"]
        assert eager.done()
        assert eager.result() == "quick"
        lazy = any_loop.create_task(slow(), name="slow")
        assert steps == ["quick ran", "slow started"]
        assert not lazy.done()
        assert lazy.get_name() == "slow"
        assert await lazy == "slow"

    any_loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    any_loop.run_until_complete(main())
    assert steps == ["quick ran", "slow started", "slow resumed"]


# -- a closed loop refuses work ----------------------------------------------------------


def test_closed_loop_refuses_work(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    loop = loop_factory()
    loop.close()
    closed = r"^Event loop is closed$"
    with pytest.raises(RuntimeError, match=closed):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError, match=closed):
        loop.call_later(1, lambda: None)
    with pytest.raises(RuntimeError, match=closed):
        loop.call_at(loop.time() + 1, lambda: None)
    with pytest.raises(RuntimeError, match=closed):
        loop.call_soon_threadsafe(lambda: None)
    with pytest.raises(RuntimeError, match=closed):
        loop.run_in_executor(None, lambda: None)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match=closed):
        loop.create_task(coro)
    coro.close()


def test_work_posted_by_another_thread_before_call_soon_runs_first(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    """Causality across threads: a post that happened before a call_soon runs before it."""
    order: list[str] = []

    def in_loop() -> None:
        poster = threading.Thread(
            target=any_loop.call_soon_threadsafe, args=(order.append, "threadsafe")
        )
        poster.start()
        poster.join()  # the post has happened before the call_soon below
        any_loop.call_soon(order.append, "call_soon")
        any_loop.call_soon(any_loop.stop)

    any_loop.call_soon(in_loop)
    any_loop.run_forever()
    assert order == ["threadsafe", "call_soon"]


def test_unretrieved_task_exception_is_reported_without_a_gc_pass(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    """The loop keeps no reference cycle to a failed task: the report comes at once."""
    reports: list[str] = []
    any_loop.set_exception_handler(lambda loop, context: reports.append(context["message"]))

    async def fails() -> None:
        raise ZeroDivisionError

    async def main() -> None:
        any_loop.create_task(fails())
        # The failing step then runs alone in its batch: the last handle the batch ran.
        await asyncio.sleep(0.05)

    gc.disable()
    try:
        any_loop.run_until_complete(main())
    finally:
        gc.enable()
    assert reports == ["Task exception was never retrieved"]
