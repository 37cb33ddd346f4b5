"""anyio's worker threads under virtual time: they hold the clock, as executor jobs do."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import sansloop
from sansloop.drivers import virtual_clock

anyio = pytest.importorskip("anyio")
to_thread = pytest.importorskip("anyio.to_thread")


def _slow(value: str, seconds: float = 0.2) -> str:
    time.sleep(seconds)
    return value


def test_worker_thread_beats_a_virtual_timeout() -> None:
    async def main() -> tuple[str, float, int]:
        loop = asyncio.get_running_loop()
        result = await asyncio.wait_for(to_thread.run_sync(_slow, "threaded"), 10)
        return result, loop.time(), virtual_clock(loop).holds

    # Nothing else was scheduled: virtual time did not move while the thread worked, and
    # the hold is gone once the result is back.
    assert sansloop.run(main(), driver="virtual") == ("threaded", 0.0, 0)


def test_worker_thread_beats_a_shorter_virtual_timeout() -> None:
    """The timeout's deadline is virtual: it cannot pass while a thread holds the clock."""

    async def main() -> str:
        return await asyncio.wait_for(to_thread.run_sync(_slow, "first", 0.3), 0.01)

    assert sansloop.run(main(), driver="virtual") == "first"


def test_time_jumps_once_the_threads_are_done() -> None:
    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            asyncio.sleep(5, "slept"),
            *(to_thread.run_sync(_slow, f"t{i}", 0.05) for i in range(8)),
        )
        return results, loop.time()

    results, now = sansloop.run(main(), driver="virtual")
    assert results == ["slept", *(f"t{i}" for i in range(8))]
    assert now == 5.0


def test_more_calls_than_the_thread_limit() -> None:
    """Calls waiting for a free worker hold the clock too (anyio's default limit is 40)."""

    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        limiter = anyio.CapacityLimiter(2)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(to_thread.run_sync(_slow, "x", 0.01, limiter=limiter) for _ in range(10))
            ),
            1,
        )
        return len(results), loop.time()

    assert sansloop.run(main(), driver="virtual") == (10, 0.0)


def test_cancelled_call_releases_the_hold() -> None:
    release = threading.Event()

    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        call = asyncio.ensure_future(to_thread.run_sync(release.wait, abandon_on_cancel=True))
        await asyncio.sleep(0)
        assert virtual_clock(loop).holds == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        holds = virtual_clock(loop).holds
        await asyncio.sleep(60)  # The clock moves again: nothing holds it.
        release.set()
        return loop.time(), holds

    assert sansloop.run(main(), driver="virtual") == (60.0, 0)


def test_real_loops_are_unaffected() -> None:
    async def main() -> str:
        return await to_thread.run_sync(_slow, "real", 0.0)

    assert asyncio.run(main()) == "real"
    assert sansloop.run(main()) == "real"
