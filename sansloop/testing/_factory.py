"""Loop factories for virtual time: one stable object per configuration.

pytest-asyncio caches a scoped loop by the identity of the factory that made it, so the
same ``(origin, auto_advance, patch_clocks, wall_origin, seed, explore)`` must always give
the same factory object, or a module- or session-scoped loop would be rebuilt for every test.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import math
from collections.abc import Callable

__all__ = ["virtual_loop_factory"]


@functools.cache
def _factory(
    origin: float,
    auto_advance: bool,
    patch_clocks: bool,
    wall_origin: float | datetime.datetime | None,
    seed: int,
    explore: bool,
) -> Callable[[], asyncio.AbstractEventLoop]:
    def new_virtual_loop() -> asyncio.AbstractEventLoop:
        # Imported here: the pytest plugin loads in every session, virtual or not.
        from sansloop.compat import new_event_loop
        from sansloop.drivers import VirtualClock, VirtualDriver

        clock = VirtualClock(
            origin,
            auto_advance=auto_advance,
            patch_clocks=patch_clocks,
            wall_origin=wall_origin,
            seed=seed,
            explore=explore,
        )
        return new_event_loop(driver=VirtualDriver(clock))

    described = f"origin={origin!r}, auto_advance={auto_advance!r}"
    if patch_clocks:
        described += f", patch_clocks=True, wall_origin={wall_origin!r}"
    if seed or explore:
        described += f", seed={seed!r}, explore={explore!r}"
    new_virtual_loop.__qualname__ = f"virtual_loop_factory({described})"
    return new_virtual_loop


def virtual_loop_factory(
    origin: float = 0.0,
    *,
    auto_advance: bool = True,
    patch_clocks: bool = False,
    wall_origin: float | datetime.datetime | None = None,
    seed: int = 0,
    explore: bool = False,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A ``loop_factory`` making sansloop loops on a fresh virtual clock starting at ``origin``
    (with the network's ``seed``, and seeded exploration if ``explore``).

    For ``asyncio.Runner(loop_factory=...)``, ``asyncio.run`` (3.12+) or a
    ``pytest_asyncio_loop_factories`` hook of your own.  Equal arguments give the same object.
    ``patch_clocks`` and ``wall_origin`` are :class:`~sansloop.drivers.VirtualClock`'s.
    """
    value = float(origin)
    if not math.isfinite(value):
        raise ValueError(f"origin must be finite, got {origin!r}")
    if wall_origin is not None:
        if not patch_clocks:
            raise ValueError("wall_origin needs patch_clocks=True")
        if not isinstance(wall_origin, datetime.datetime):
            wall_origin = float(wall_origin)
            if not math.isfinite(wall_origin):
                raise ValueError(f"wall_origin must be finite, got {wall_origin!r}")
    return _factory(
        value, bool(auto_advance), bool(patch_clocks), wall_origin, int(seed), bool(explore)
    )
