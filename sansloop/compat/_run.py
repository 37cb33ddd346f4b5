"""``sansloop.run()`` and ``sansloop.install()``: the two ways to put a program on sansloop.

``run()`` is the one to prefer: like ``uvloop.run()`` it hands asyncio a ``loop_factory``
and changes no global state, which is also the only way left once CPython drops policies.

``install()`` sets a ``sansloop.EventLoopPolicy`` as asyncio's policy, for code that calls
``asyncio.run()`` or ``asyncio.new_event_loop()`` itself.  uvloop deprecates its
``install()`` from Python 3.12 on (because ``asyncio.run`` grew ``loop_factory`` there); we
follow asyncio instead: policies are fully supported on 3.11-3.13, so ``install()`` warns only
on 3.14+, where ``asyncio.set_event_loop_policy`` itself is deprecated.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import warnings
from asyncio import events as _events
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sansloop.drivers import Driver

from ._policy import (
    DriverSpec,
    EventLoopPolicy,
    _asyncio_set_policy,
    new_event_loop,
)

__all__ = ["install", "run"]

_T = TypeVar("_T")


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: bool | None = None,
    driver: DriverSpec = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> _T:
    """Run ``main`` on a new sansloop loop and return its result, like ``asyncio.run()``.

    The loop comes from ``new_event_loop(driver=driver)`` (or ``loop_factory``, for a loop
    subclass) and is closed afterwards, once the remaining tasks are cancelled and async
    generators and the default executor are shut down.  ``debug`` sets the loop's debug
    mode (None keeps the ``-X dev``/``PYTHONASYNCIODEBUG`` default).  The global policy and
    the thread's current loop are left alone.  ``driver="trio"`` runs ``main`` on trio's
    event loop instead (``sansloop.trio.run``).
    """
    if _events._get_running_loop() is not None:
        raise RuntimeError("sansloop.run() cannot be called from a running event loop")
    if driver == "trio":
        if loop_factory is not None:
            raise TypeError("sansloop.run() takes a driver or a loop_factory, not both")
        # trio's event loop runs the program; the asyncio loop is its guest.
        from sansloop.trio import run as trio_run

        return trio_run(main, debug=debug)
    if loop_factory is None:
        loop_factory = functools.partial(new_event_loop, driver=driver)
    elif driver is not None:
        raise TypeError("sansloop.run() takes a driver or a loop_factory, not both")
    with asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
        return runner.run(main)


def install(*, driver: str | Callable[[], Driver] | None = None) -> EventLoopPolicy:
    """Make asyncio use sansloop: set a new ``EventLoopPolicy(driver)`` as asyncio's policy.

    Afterwards ``asyncio.run()``, ``asyncio.new_event_loop()`` and ``asyncio.get_event_loop()``
    give sansloop loops.  Returns the policy; ``set_event_loop_policy(None)`` undoes it.
    Deprecated on Python 3.14+, with asyncio's policies: use ``run()`` or
    ``asyncio.Runner(loop_factory=sansloop.new_event_loop)``.
    """
    if sys.version_info >= (3, 14):
        warnings.warn(
            "sansloop.install() is deprecated on Python 3.14+, as asyncio's policy system "
            "is; use sansloop.run() or asyncio.Runner(loop_factory=sansloop.new_event_loop)",
            DeprecationWarning,
            stacklevel=2,
        )
    policy = EventLoopPolicy(driver)
    _asyncio_set_policy(policy)
    return policy
