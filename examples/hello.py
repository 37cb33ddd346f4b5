"""Timers, tasks and an executor job, and which event loop ran them.

    python examples/hello.py [name]               # on asyncio's own loop
    python -m sansloop examples/hello.py [name]   # the same program, unchanged, on sansloop

The program is plain asyncio: ``python -m sansloop`` makes its ``asyncio.run()`` use a
sansloop loop.
"""

from __future__ import annotations

import asyncio
import sys
import threading


def count_primes(limit: int) -> tuple[int, str]:
    """Blocking work for the executor; returns the answer and the thread that did it."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return sum(sieve), threading.current_thread().name


async def wake_at(when: float, name: str, finished: list[str]) -> None:
    loop = asyncio.get_running_loop()
    alarm = loop.create_future()
    loop.call_at(when, alarm.set_result, None)
    await alarm
    finished.append(name)


async def main(name: str) -> None:
    loop = asyncio.get_running_loop()
    print(f"hello, {name}: running on {type(loop).__module__}.{type(loop).__qualname__}")

    # A timer: call_later runs a callback once the loop's clock reaches its deadline.
    fired = loop.create_future()
    loop.call_later(0.05, fired.set_result, "ding")
    print(f"timer: {await fired} after 0.05s")

    # Tasks finish in the order of their deadlines, not of their creation.
    finished: list[str] = []
    now = loop.time()
    async with asyncio.TaskGroup() as group:
        for delay, task_name in [(0.03, "slow"), (0.01, "fast"), (0.02, "medium")]:
            group.create_task(wake_at(now + delay, task_name, finished), name=task_name)
    print(f"tasks finished: {', '.join(finished)}")

    # Blocking work goes to the default executor, so the loop stays responsive.
    primes, worker = await loop.run_in_executor(None, count_primes, 100_000)
    elsewhere = worker != threading.current_thread().name
    print(f"executor: {primes} primes below 100000, computed in another thread: {elsewhere}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "world"))
