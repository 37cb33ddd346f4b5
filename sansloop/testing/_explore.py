"""Seeded runs in virtual time: replay, determinism self-checks, and a Hypothesis bridge.

A virtual run is a function of its seed: the network's ``random.Random(seed)`` is the only
source of chance (loss, reordering, and -- with ``explore`` -- the order of ready
sockets, timer lateness and delivery jitter).  :func:`run_virtual` runs a coroutine
function on a fresh virtual loop with a seed and, when it fails, notes the seed on the
exception so the failure can be replayed; :func:`check_determinism` runs it twice and
compares the traces; :func:`seeds` is the Hypothesis strategy that draws the seed, so
Hypothesis searches seeds and shrinks a failing one to the smallest it can find.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from sansloop.drivers import Exploration, TraceEvent, VirtualClock

__all__ = ["NondeterminismError", "check_determinism", "run_virtual", "seeds"]

_T = TypeVar("_T")

#: The largest seed :func:`seeds` draws.
MAX_SEED = 2**32 - 1


class NondeterminismError(AssertionError):
    """Two runs with the same seed did not do the same thing."""


def run_virtual(
    main: Callable[[], Awaitable[_T]],
    *,
    seed: int = 0,
    explore: Exploration | bool | None = None,
    trace: bool = False,
    clock: VirtualClock | None = None,
    **clock_options: Any,
) -> _T:
    """Run ``main()`` to completion on a fresh loop on a fresh virtual clock.

    ``seed`` and ``explore`` (and any other ``clock_options``) make the
    :class:`~sansloop.drivers.VirtualClock`; ``trace=True`` records its network's trace
    (read it from the clock you pass as ``clock``, or use :func:`check_determinism`).  The
    loop is shut down as ``asyncio.run`` does.  An exception out of the run carries a note
    with the seed that replays it.
    """
    from sansloop.compat import new_event_loop
    from sansloop.drivers import VirtualClock, VirtualDriver

    if clock is None:
        clock = VirtualClock(seed=seed, explore=explore, **clock_options)
    if trace:
        clock.network.start_trace()
    driver = VirtualDriver(clock)
    try:
        with asyncio.Runner(loop_factory=lambda: new_event_loop(driver=driver)) as runner:
            return runner.run(_as_coroutine(main))
    except BaseException as exc:
        explored = " explore=True" if clock.exploration is not None else ""
        exc.add_note(f"sansloop: this virtual run replays with seed={clock.seed}{explored}")
        raise


async def _as_coroutine(main: Callable[[], Awaitable[_T]]) -> _T:
    return await main()


def check_determinism(
    main: Callable[[], Awaitable[Any]],
    *,
    seed: int = 0,
    explore: Exploration | bool | None = None,
    runs: int = 2,
    **clock_options: Any,
) -> list[TraceEvent]:
    """Run ``main()`` ``runs`` times with one seed; raise :class:`NondeterminismError` at the
    first event where the traces differ.  Returns the trace.

    The trace holds what the network did (connections, segments, datagrams, resets, each
    at its virtual time), every jump of the clock, every callback the loop runs (a task's
    step by its coroutine's name, else the callback's qualified name), and the program's
    own ``clock.mark(...)`` events, so code that depends on anything but the seed (real time,
    ``id()``, hash order of objects, unseeded randomness, threads racing) shows up here.
    """
    from sansloop.drivers import VirtualClock

    if runs < 2:
        raise ValueError(f"a determinism check needs at least 2 runs, got {runs!r}")
    traces: list[list[TraceEvent]] = []
    for _ in range(runs):
        clock = VirtualClock(seed=seed, explore=explore, **clock_options)
        run_virtual(main, clock=clock, trace=True)
        traces.append(clock.network.trace)
    first = traces[0]
    for number, other in enumerate(traces[1:], start=2):
        if other != first:
            index = next(
                (i for i, (a, b) in enumerate(zip(first, other, strict=False)) if a != b),
                min(len(first), len(other)),
            )
            here = first[index] if index < len(first) else "(the trace ended)"
            there = other[index] if index < len(other) else "(the trace ended)"
            raise NondeterminismError(
                f"run {number} with seed={seed} diverged from run 1 at event {index}: "
                f"{there!r} instead of {here!r}"
            )
    return first


def seeds() -> SearchStrategy[int]:
    """A Hypothesis strategy for seeds: ``@given(seed=sansloop.testing.seeds())``.

    Hypothesis then explores seeds and shrinks a failing one toward 0, and its report
    names the seed that replays the failure.
    """
    from hypothesis import strategies

    return strategies.integers(min_value=0, max_value=MAX_SEED)
