"""The scheduling workloads: each runs on a loop it is given and checks its own result.

``run(loop, size)`` returns the seconds (``time.perf_counter``) that the loop spent running
the work; the loop is created before and closed after, and input preparation and result checks
happen outside that interval, so they do not dilute the differences between loops.  A wrong
result raises :class:`WorkloadError`: a loop that is fast because it skipped work must not
win.  Sizes are chosen so that stock asyncio takes roughly 0.1-0.5 s per run.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

__all__ = ["WORKLOADS", "Workload", "WorkloadError"]


class WorkloadError(Exception):
    """A workload ran to the end but its result was wrong."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One benchmark: ``run(loop, size)`` times the work and raises if the result is wrong."""

    name: str
    description: str
    run: Callable[[asyncio.AbstractEventLoop, int], float]
    size: int
    quick_size: int
    #: What ``--only`` can select it by, besides its name: "sched", "net" or "proc".
    group: str = "sched"


# -- 1. call_soon chain -------------------------------------------------------------------


def call_soon_chain(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """A callback that schedules the next one: one loop iteration per link, ``n`` links."""
    reached = 0
    wrong: list[str] = []

    def link(i: int) -> None:
        nonlocal reached
        if i != reached:
            # Raising here would only be logged by the loop: note it and end the run.
            wrong.append(f"link {i} ran when link {reached} was due")
            loop.stop()
            return
        reached = i + 1
        if reached < n:
            loop.call_soon(link, reached)
        else:
            loop.stop()

    start = perf_counter()
    loop.call_soon(link, 0)
    loop.run_forever()
    took = perf_counter() - start
    if wrong:
        raise WorkloadError(wrong[0])
    if reached != n:
        raise WorkloadError(f"the chain stopped after {reached} of {n} links")
    return took


# -- 2. timers: schedule, cancel half, run ------------------------------------------------

#: Deadlines are spread over this many seconds: short, so that nearly all of a run is spent
#: scheduling and firing timers rather than waiting for them.
_TIMER_SPREAD = 0.005
#: ... starting this far ahead: uvloop turns a delay that rounds to 0 ms into call_soon.
_TIMER_MIN_DELAY = 0.001


def timers(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``n`` call_later timers at shuffled deadlines; half cancelled; the rest must fire in order.

    "In order" is by each handle's ``when()``, the loop's own idea of the deadline (uvloop's
    is whole milliseconds, as libuv keeps it), so every contender is held to its own clock.
    """
    delays, cancel = _timer_plan(n)
    fired: list[int] = []

    async def main() -> list[asyncio.TimerHandle]:
        done = loop.create_future()
        call_later = loop.call_later
        record = fired.append
        handles = [call_later(delay, record, i) for i, delay in enumerate(delays)]
        for i in cancel:
            handles[i].cancel()
        # Scheduled last with the longest delay, so its deadline is the latest of all.
        loop.call_later(_TIMER_MIN_DELAY + _TIMER_SPREAD, _set_result, done, None)
        await done
        return handles

    start = perf_counter()
    handles = loop.run_until_complete(main())
    took = perf_counter() - start
    whens = [handle.when() for handle in handles]
    cancelled = set(cancel)
    expected = n - len(cancelled)
    if len(fired) != expected or len(set(fired)) != expected or cancelled.intersection(fired):
        raise WorkloadError(
            f"{len(fired)} timers fired ({len(set(fired))} distinct), expected exactly the "
            f"{expected} that were not cancelled"
        )
    for earlier, later in itertools.pairwise(fired):
        if whens[later] < whens[earlier]:
            raise WorkloadError(
                f"timer {later} (when={whens[later]!r}) fired after timer {earlier} "
                f"(when={whens[earlier]!r})"
            )
    return took


@functools.cache
def _timer_plan(n: int) -> tuple[list[float], list[int]]:
    """Shuffled distinct delays and the (sorted) indices to cancel: the same for every loop."""
    rng = random.Random(n)
    delays = [_TIMER_MIN_DELAY + i * _TIMER_SPREAD / n for i in range(n)]
    rng.shuffle(delays)
    return delays, sorted(rng.sample(range(n), n // 2))


# -- 3. many tasks switching with sleep(0) ------------------------------------------------

_TASKS = 100


def task_switch(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``_TASKS`` tasks each ``await asyncio.sleep(0)`` until ``n`` switches are done.

    The ready queue is FIFO, so the tasks take turns: whenever task 0 resumes, every task has
    stepped as often as it has.
    """
    rounds = max(1, n // _TASKS)
    steps = 0

    async def worker(index: int) -> int:
        nonlocal steps
        for turn in range(rounds):
            if index == 0 and steps != turn * _TASKS:
                raise WorkloadError(f"task 0 resumed for turn {turn} after {steps} steps")
            steps += 1
            await asyncio.sleep(0)
        return index

    async def main() -> list[int]:
        return await asyncio.gather(*[worker(index) for index in range(_TASKS)])

    start = perf_counter()
    results = loop.run_until_complete(main())
    took = perf_counter() - start
    if results != list(range(_TASKS)) or steps != rounds * _TASKS:
        raise WorkloadError(f"{steps} steps of {rounds * _TASKS}; results {results[:5]}...")
    return took


# -- 4. future ping-pong ------------------------------------------------------------------


def future_ping_pong(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """Two tasks hand ``n`` requests and replies to each other through fresh futures.

    Each request carries the future its answer goes into and the future the next request will
    arrive in, so neither task ever looks at shared state that the other may have moved on.
    """

    async def pinger(request: asyncio.Future[Any]) -> int:
        sent = 0
        for i in range(n):
            reply = loop.create_future()
            following = loop.create_future()
            request.set_result((i, reply, following))
            request = following
            answer = await reply
            if answer != 2 * i + 1:
                raise WorkloadError(f"reply {answer!r} to request {i}")
            sent += 1
        request.set_result(None)
        return sent

    async def ponger(request: asyncio.Future[Any]) -> int:
        served = 0
        while True:
            message = await request
            if message is None:
                return served
            i, reply, request = message
            reply.set_result(2 * i + 1)
            served += 1

    async def main() -> list[int]:
        first = loop.create_future()
        return list(await asyncio.gather(pinger(first), ponger(first)))

    start = perf_counter()
    counts = loop.run_until_complete(main())
    took = perf_counter() - start
    if counts != [n, n]:
        raise WorkloadError(f"pinger and ponger counted {counts}, expected {[n, n]}")
    return took


# -- 5. call_soon_threadsafe from another thread ------------------------------------------

#: Burst lengths the producer cycles through; after every other burst it waits until the
#: loop has run it, so the loop goes idle and must be woken for the next one.
_BURSTS = (1, 3, 8, 2, 16, 5, 1, 12)
#: Give up (and fail) rather than hang if the loop stops taking calls.
_THREAD_PATIENCE = 30.0


def threadsafe(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """A thread makes ``n`` call_soon_threadsafe calls; the loop checks they arrive in order."""
    ack = threading.Event()
    give_up = threading.Event()
    errors: list[BaseException] = []

    async def main() -> int:
        done = loop.create_future()
        arrived = 0

        def take(i: int) -> None:
            nonlocal arrived
            if i != arrived:
                _set_exception(done, WorkloadError(f"call {i} arrived when {arrived} was due"))
            arrived = i + 1
            if arrived == n:
                _set_result(done, None)

        def take_and_ack(i: int) -> None:
            take(i)
            ack.set()

        def produce() -> None:
            try:
                post = loop.call_soon_threadsafe
                start = 0
                burst = 0
                while start < n and not give_up.is_set():
                    end = min(n, start + _BURSTS[burst % len(_BURSTS)])
                    wait = burst % 2 == 0
                    if wait:
                        ack.clear()
                    for i in range(start, end - 1):
                        post(take, i)
                    post(take_and_ack if wait else take, end - 1)
                    if wait and not _wait_for(ack, give_up):
                        raise WorkloadError(f"the loop did not run calls {start}..{end - 1}")
                    start = end
                    burst += 1
            except BaseException as exc:
                errors.append(exc)
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_set_exception, done, exc)

        watchdog = loop.call_later(
            _THREAD_PATIENCE,
            _set_exception,
            done,
            WorkloadError(f"the calls stopped arriving for {_THREAD_PATIENCE} s"),
        )
        thread = threading.Thread(target=produce, name="benchmarks-producer")
        # Under virtual time the producer is work the loop cannot see: it holds the clock,
        # or the watchdog's 30 s would pass at once.
        hold = _hold_virtual_time(loop)
        thread.start()
        try:
            await done
        finally:
            watchdog.cancel()
            give_up.set()  # if the run failed early, the producer must not wait for acks
            ack.set()
            thread.join(_THREAD_PATIENCE)
            hold.release()
        return arrived

    start = perf_counter()
    arrived = loop.run_until_complete(main())
    took = perf_counter() - start
    if errors:
        raise WorkloadError(f"the producer thread failed: {errors[0]!r}") from errors[0]
    if arrived != n:
        raise WorkloadError(f"{arrived} calls arrived, expected {n}")
    return took


# -- 6. a sleep-heavy test-suite -----------------------------------------------------------

#: One "test": a retry with backoff, a wait_for that times out, a poll until a timer fires.
_TEST_SLEEPS = (0.001, 0.002, 0.004)
_TEST_TIMEOUT = 0.010
_TEST_FLAG_AFTER = 0.008
_TEST_POLL = 0.002


def sleepy_suite(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``n`` test-like coroutines in a row, about 25 ms of sleeping each.

    What a test-suite of retry/timeout/polling code costs: in real time it is mostly
    sleeping; in virtual time only the scheduling is left.
    """

    async def one_test() -> tuple[int, bool, int]:
        attempts = 0
        for delay in _TEST_SLEEPS:
            attempts += 1
            await asyncio.sleep(delay)
        try:
            await asyncio.wait_for(asyncio.Event().wait(), _TEST_TIMEOUT)
            timed_out = False
        except TimeoutError:
            timed_out = True
        flag: list[bool] = []
        loop.call_later(_TEST_FLAG_AFTER, flag.append, True)
        polls = 0
        while not flag:
            polls += 1
            await asyncio.sleep(_TEST_POLL)
        return attempts, timed_out, polls

    async def main() -> list[tuple[int, bool, int]]:
        return [await one_test() for _ in range(n)]

    start = perf_counter()
    outcomes = loop.run_until_complete(main())
    took = perf_counter() - start
    # At least one poll (the flag starts unset); how many depends on the loop's timer
    # resolution and clock caching (uvloop's), so no more is asked.
    least_polls = 1
    for i, (attempts, timed_out, polls) in enumerate(outcomes):
        if attempts != len(_TEST_SLEEPS) or not timed_out or polls < least_polls:
            raise WorkloadError(
                f"test {i}: {attempts} attempts, timed out {timed_out}, {polls} polls"
            )
    return took


# -- helpers ------------------------------------------------------------------------------


class _NoHold:
    def release(self) -> None:
        pass


def _hold_virtual_time(loop: asyncio.AbstractEventLoop) -> Any:
    """Pin ``loop``'s clock if it runs in sansloop's virtual time; otherwise a no-op."""
    try:
        from sansloop.drivers import hold_time
    except ImportError:
        return _NoHold()
    return hold_time(loop)


def _wait_for(ack: threading.Event, give_up: threading.Event) -> bool:
    """Wait for ``ack`` (or for the run to be abandoned); False if the loop stays silent."""
    ticks = int(_THREAD_PATIENCE / 0.25)
    return any(ack.wait(0.25) or give_up.is_set() for _ in range(ticks))


def _set_result(fut: asyncio.Future[Any], result: object) -> None:
    if not fut.done():
        fut.set_result(result)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "call_soon",
        "call_soon chain: each callback schedules the next",
        call_soon_chain,
        200_000,
        5_000,
    ),
    Workload(
        "timers",
        "call_later at spread deadlines, half cancelled, rest run in order",
        timers,
        60_000,
        2_000,
    ),
    Workload(
        "tasks_sleep0",
        f"{_TASKS} tasks switching with await asyncio.sleep(0)",
        task_switch,
        200_000,
        5_000,
    ),
    Workload(
        "future_pingpong",
        "two tasks exchanging create_future/set_result/await",
        future_ping_pong,
        60_000,
        2_000,
    ),
    Workload(
        "threadsafe",
        "call_soon_threadsafe from a thread, in bursts, loop idle in between",
        threadsafe,
        30_000,
        1_000,
    ),
    Workload(
        "sleepy_suite",
        "test-like coroutines: retry with backoff, a timeout, a poll (~25 ms of sleeps each)",
        sleepy_suite,
        20,
        4,
    ),
)

# The networking workloads live in their own module; it needs Workload, defined above.
from ._net import net_workloads  # noqa: E402
from ._proc import proc_workloads  # noqa: E402

WORKLOADS += net_workloads()
WORKLOADS += proc_workloads()
