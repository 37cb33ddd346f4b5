"""Put sansloop where CPython's asyncio tests look for an event loop, and count its loops.

Installed in the worker process before a test module is imported:

* asyncio's default policy becomes :class:`SansloopPolicy`, so ``asyncio.new_event_loop()``,
  ``asyncio.run()``, ``asyncio.Runner()``, ``IsolatedAsyncioTestCase`` and a reset through
  ``asyncio.set_event_loop_policy(None)`` all land on ``sansloop.EventLoop``;
* ``test.test_asyncio.utils.TestLoop`` (CPython's virtual-time loop, a ``BaseEventLoop``
  subclass) is replaced by :class:`SansloopTestLoop`, the same virtual-time protocol on top of
  ``sansloop.EventLoop`` -- except for the tests a rule sends to CPython's own ``TestLoop``;
* ``sansloop.EventLoop.__init__`` is wrapped to count the loops created, so every result can
  show that the loop under test really was sansloop's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Generator
from typing import Any

import sansloop

__all__ = ["SansloopPolicy", "SansloopTestLoop", "install", "loops_created"]

_count = 0


def loops_created() -> int:
    """How many ``sansloop.EventLoop`` instances (subclasses included) this process made."""
    return _count


def _count_loops() -> None:
    original = sansloop.EventLoop.__init__

    def __init__(self: sansloop.EventLoop, *args: Any, **kwargs: Any) -> None:
        global _count
        _count += 1
        original(self, *args, **kwargs)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    sansloop.EventLoop.__init__ = __init__  # type: ignore[method-assign]


class _AsyncioLoggerProxy:
    """Stands for the ``asyncio`` logger, looked up through ``asyncio.base_events.logger``.

    sansloop logs to ``logging.getLogger("asyncio")``, the very object that
    ``asyncio.base_events.logger`` names.  Tests observe that logger by patching the name
    (``mock.patch('asyncio.base_events.logger')``); this proxy makes sansloop's calls go
    wherever the name points at the time, so such tests see sansloop's real log calls --
    both that they happen and that they do not.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio.base_events.logger, name)


def _route_logging() -> None:
    asyncio_logger = logging.getLogger("asyncio")
    proxy = _AsyncioLoggerProxy()
    for name, module in list(sys.modules.items()):
        ours = name == "sansloop" or name.startswith("sansloop.")
        if ours and getattr(module, "logger", None) is asyncio_logger:
            module.logger = proxy  # type: ignore[attr-defined]


#: The driver of the loops the tests get: ``SANSLOOP_CONFORMANCE_DRIVER`` (a driver name, e.g.
#: ``trio`` for the hosted trio driver), else sansloop's default (selectors).
DRIVER = os.environ.get("SANSLOOP_CONFORMANCE_DRIVER") or None


def new_loop() -> sansloop.EventLoop:
    """A loop on the driver under test."""
    return sansloop.EventLoop(DRIVER)


class SansloopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making ``sansloop.EventLoop`` loops.

    A subclass of the platform's default policy, so everything else about it is asyncio's:
    on Unix that includes the child-watcher API that ``test_events``' GetEventLoop tests call
    in ``setUp`` (``sansloop.EventLoopPolicy`` has none; see RULES.md).
    """

    _loop_factory = staticmethod(new_loop)


class _VirtualDriver:
    """A driver whose clock only moves when a test says so and whose wait never blocks.

    This is what ``test_utils.TestLoop`` does with its ``TestSelector``: ``select()`` returns
    at once, and time is advanced by the test's generator after each iteration.
    """

    clock_resolution = 1e-9

    def __init__(self) -> None:
        self.now: float = 0

    def time(self) -> float:
        return self.now

    def wait(self, timeout: float | None) -> None:
        pass

    def attach(self, loop: object, core: object) -> None:
        pass

    def wakeup(self) -> None:
        pass

    def close(self) -> None:
        pass


class _ReadyView:
    """What ``len(loop._ready)`` / ``while loop._ready`` in the tests need: a count."""

    def __init__(self, loop: SansloopTestLoop) -> None:
        self._loop = loop

    def __len__(self) -> int:
        stats = self._loop._core.statistics()
        return stats.ready + stats.inbox


class SansloopTestLoop(sansloop.EventLoop):
    """CPython's ``test_utils.TestLoop`` protocol, run by sansloop's loop.

    ``gen`` is the test's time generator: after every iteration in which timers were
    scheduled, each timer's deadline is sent to it and the clock advances by what it yields.
    Without ``gen`` the clock never moves.
    """

    def __init__(self, gen: Callable[[], Generator[float, float, None]] | None = None) -> None:
        self._virtual = _VirtualDriver()
        super().__init__(driver=self._virtual)
        if gen is None:

            def gen() -> Generator[Any, Any, None]:
                yield

            self._check_on_close = False
        else:
            self._check_on_close = True
        self._gen = gen()
        next(self._gen)
        self._whens: list[float] = []
        self._recording = False

    @property
    def _time(self) -> float:
        return self._virtual.now

    @property
    def _ready(self) -> _ReadyView:
        return _ReadyView(self)

    def advance_time(self, advance: float) -> None:
        """Move the virtual clock forward."""
        if advance:
            self._virtual.now += advance

    # Both record the deadline for the generator: sansloop's call_later() does not go
    # through call_at() (BaseEventLoop's does), and the flag keeps either from counting twice.
    def call_later(self, delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
        return self._record(
            None if delay is None else self._virtual.now + delay,
            super().call_later,
            delay,
            callback,
            *args,
            context=context,
        )

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        return self._record(when, super().call_at, when, callback, *args, context=context)

    def _record(
        self, when: float | None, schedule: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        if self._recording:
            return schedule(*args, **kw)
        self._recording = True
        try:
            timer = schedule(*args, **kw)
        finally:
            self._recording = False
        self._whens.append(when)
        return timer

    def _run_once(self) -> None:
        super()._run_once()
        for when in self._whens:
            self.advance_time(self._gen.send(when))
        self._whens = []

    def close(self) -> None:
        super().close()
        if self._check_on_close:
            try:
                self._gen.send(0)
            except StopIteration:
                pass
            else:
                raise AssertionError("Time generator is not finished")


#: The policies the worker can make asyncio's default (``--policy``).
POLICIES: dict[str, type[asyncio.AbstractEventLoopPolicy]] = {
    "shim": SansloopPolicy,
    "sansloop": sansloop.EventLoopPolicy,
}


def install(use_cpython_testloop: Callable[[str], bool], policy: str = "shim") -> None:
    """Make sansloop asyncio's default loop in this process.

    ``use_cpython_testloop(test_id)`` says which tests keep CPython's own ``TestLoop``;
    ``policy`` picks the default policy class from :data:`POLICIES`.
    """
    from test.test_asyncio import utils as test_utils

    policy_class = POLICIES[policy]
    _count_loops()
    _route_logging()
    asyncio.DefaultEventLoopPolicy = policy_class  # type: ignore[assignment]
    unix_events = getattr(asyncio, "unix_events", None)
    if unix_events is not None:
        unix_events.DefaultEventLoopPolicy = policy_class
    asyncio.set_event_loop_policy(None)
    assert type(asyncio.get_event_loop_policy()) is policy_class

    cpython_testloop = test_utils.TestLoop

    def new_test_loop(self: Any, gen: Any = None) -> Any:
        factory = cpython_testloop if use_cpython_testloop(self.id()) else SansloopTestLoop
        loop = factory(gen)
        self.set_event_loop(loop)
        return loop

    test_utils.TestCase.new_test_loop = new_test_loop
    test_utils.TestLoop = SansloopTestLoop
