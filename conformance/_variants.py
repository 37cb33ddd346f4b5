"""Point the test modules that build their own loops at sansloop.

Most modules get their loops from the policy or from ``test_utils.TestLoop``, which the shim
already replaces.  The rest build a CPython loop class by hand; for them:

* ``test_events``, ``test_base_events``, ``test_sock_lowlevel``, ``test_sendfile``,
  ``test_server``, ``test_buffered_proto``, ``test_sslproto`` and ``test_unix_events``:
  sansloop *twins* of the
  classes that test one CPython loop class, sharing their test methods but building
  ``sansloop.EventLoop``.  The CPython originals are excluded by rule (they test CPython's
  loops, not sansloop).
* ``test_runners`` and ``test_pep492``: every test is about "a loop", built by one base
  class's factory; the factory is *retargeted* to make sansloop loops, in place.
"""

from __future__ import annotations

import selectors
import types
from typing import Any

import sansloop
from sansloop.drivers import SelectorDriver

__all__ = ["add_variants"]


def _twin(module: types.ModuleType, name: str, base: type, namespace: dict[str, Any]) -> None:
    """Add ``name``, a subclass of ``base`` with ``namespace``, to ``module`` (for the loader)."""
    cls = type(name, (base,), {"__module__": module.__name__, "__qualname__": name, **namespace})
    setattr(module, name, cls)


def _new_sansloop_loop() -> sansloop.EventLoop:
    from ._shim import new_loop

    return new_loop()


#: test_events' per-selector classes other than the default selector's, and their selector.
_EVENTS_EXTRA_SELECTORS = {
    "PollEventLoopTests": "PollSelector",
    "SelectEventLoopTests": "SelectSelector",
}


def _test_events(module: types.ModuleType) -> None:
    from test.test_asyncio import utils as test_utils

    mixin_timeout_rounding = module.EventLoopTestsMixin.test_timeout_rounding

    def test_timeout_rounding(self: Any) -> None:
        # The test counts iterations (sansloop's too); only its failure message reads two
        # BaseEventLoop attributes, and it builds that message even when the count is fine.
        self.loop._clock_resolution = self.loop._driver.clock_resolution
        self.loop._selector = getattr(self.loop._driver, "selector", None)
        mixin_timeout_rounding(self)

    def add(name: str, create_event_loop: Any) -> None:
        # The mixins of SelectEventLoopTests and friends, minus UnixEventLoopTestsMixin (it
        # only attaches a child watcher for the subprocess tests; sansloop loops reap their
        # own children, so the subprocess tests run without one).
        _twin(
            module,
            name,
            type(
                f"_{name}Base",
                (module.EventLoopTestsMixin, module.SubprocessTestsMixin, test_utils.TestCase),
                {},
            ),
            {
                "create_event_loop": create_event_loop,
                "test_timeout_rounding": test_timeout_rounding,
            },
        )

    # sansloop's default driver (selectors.DefaultSelector), then the other selectors the
    # original module tests (those this platform has), so each registration path runs.
    add("SansloopEventLoopTests", lambda self: _new_sansloop_loop())
    for name, selector_name in _EVENTS_EXTRA_SELECTORS.items():
        if getattr(module, name, None) is None:
            continue
        selector_class = getattr(selectors, selector_name)

        def create_event_loop(self: Any, selector_class: type = selector_class) -> Any:
            return sansloop.EventLoop(driver=SelectorDriver(selector_class()))

        add(f"Sansloop{name}", create_event_loop)


class _NeverBlockingDriver(SelectorDriver):
    """The selectors driver with a wait that never blocks.

    The sansloop twin of ``BaseEventLoopTests``' set-up: a ``BaseEventLoop`` whose mock
    selector returns no events at once.  Tests there rely on it (3.13's
    ``test_custom_run_forever_integration`` calls ``_run_once()`` with nothing scheduled).
    """

    def wait(self, timeout: float | None) -> None:
        super().wait(0.0)


def _test_base_events(module: types.ModuleType) -> None:
    from test.test_asyncio import utils as test_utils

    def set_up(self: Any) -> None:
        # test_utils.TestCase.setUp, not the original's (which builds a BaseEventLoop with
        # a mock selector).
        test_utils.TestCase.setUp(self)
        self.loop = sansloop.EventLoop(driver=_NeverBlockingDriver())
        self.set_event_loop(self.loop)

    def set_up_with_selector(self: Any) -> None:
        # The original builds a real asyncio.SelectorEventLoop.
        test_utils.TestCase.setUp(self)
        self.loop = _new_sansloop_loop()
        self.set_event_loop(self.loop)

    def set_up_sendfile(self: Any) -> None:
        # The original's, with sansloop instead of selector_events.BaseSelectorEventLoop.
        from test.support import os_helper

        self.loop = _new_sansloop_loop()
        self.set_event_loop(self.loop)
        self.file = open(os_helper.TESTFN, "rb")  # noqa: SIM115 (closed by the cleanup)
        self.addCleanup(self.file.close)
        test_utils.TestCase.setUp(self)

    _twin(module, "SansloopBaseEventLoopTests", module.BaseEventLoopTests, {"setUp": set_up})
    _twin(
        module,
        "SansloopLoopSockSendfileTests",
        module.BaseLoopSockSendfileTests,
        {"setUp": set_up_sendfile},
    )
    _twin(
        module,
        "SansloopEventLoopWithSelectorTests",
        module.BaseEventLoopWithSelectorTests,
        {"setUp": set_up_with_selector},
    )


#: test_sock_lowlevel's per-selector classes, and the selector each one passes to its loop.
_SOCK_LOWLEVEL_SELECTORS = {
    "KqueueEventLoopTests": "KqueueSelector",
    "EPollEventLoopTests": "EpollSelector",
    "PollEventLoopTests": "PollSelector",
    "SelectEventLoopTests": "SelectSelector",
}


def _test_sock_lowlevel(module: types.ModuleType) -> None:
    # One twin per selector class the original module tests (those this platform has):
    # the selectors driver with the same selector, so each registration path is exercised.
    for name, selector_name in _SOCK_LOWLEVEL_SELECTORS.items():
        original = getattr(module, name, None)
        if original is None:
            continue
        selector_class = getattr(selectors, selector_name)

        def create_event_loop(self: Any, selector_class: type = selector_class) -> Any:
            return sansloop.EventLoop(driver=SelectorDriver(selector_class()))

        _twin(module, f"Sansloop{name}", original, {"create_event_loop": create_event_loop})


def _new_loop_twin(original: str, twin: str) -> Any:
    """An adapter adding ``twin``: ``original`` (a FunctionalTestCaseMixin class whose
    ``new_loop`` builds asyncio.SelectorEventLoop) building sansloop loops instead."""

    def adapter(module: types.ModuleType) -> None:
        _twin(
            module,
            twin,
            getattr(module, original),
            {"new_loop": lambda self: _new_sansloop_loop()},
        )

    return adapter


def _test_unix_events(module: types.ModuleType) -> None:
    from test.test_asyncio import utils as test_utils

    def set_up(self: Any) -> None:
        # The original's, with sansloop instead of asyncio.SelectorEventLoop.
        test_utils.TestCase.setUp(self)
        self.loop = _new_sansloop_loop()
        self.set_event_loop(self.loop)

    _twin(
        module,
        "SansloopUnixSocketTests",
        module.SelectorEventLoopUnixSocketTests,
        {"setUp": set_up},
    )


def _test_runners(module: types.ModuleType) -> None:
    def new_loop(self: Any) -> sansloop.EventLoop:
        # What the original factory adds to its BaseEventLoop, minus the mocks of
        # BaseEventLoop internals: a record that shutdown_asyncgens() ran.
        loop = _new_sansloop_loop()
        loop.shutdown_ag_run = False  # type: ignore[attr-defined]

        async def shutdown_asyncgens() -> None:
            loop.shutdown_ag_run = True  # type: ignore[attr-defined]

        loop.shutdown_asyncgens = shutdown_asyncgens  # type: ignore[method-assign]
        return loop

    module.BaseTest.new_loop = new_loop


def _test_pep492(module: types.ModuleType) -> None:
    from test.test_asyncio import utils as test_utils

    def set_up(self: Any) -> None:
        test_utils.TestCase.setUp(self)
        self.loop = _new_sansloop_loop()
        self.set_event_loop(self.loop)

    module.BaseTest.setUp = set_up


def _test_subprocess(module: types.ModuleType) -> None:
    generic = getattr(module, "GenericWatcherTests", None)
    if generic is None or not hasattr(generic, "test_create_subprocess_with_pidfd"):
        return
    original = generic.setUp

    def set_up(self: Any) -> None:
        # test_create_subprocess_with_pidfd (3.12+) asserts that the policy's
        # get_event_loop() raises, which holds only once some set_event_loop() ran in this
        # thread: in CPython's order, the tearDown of the test before it (excluded here,
        # kind child-watcher).  Stock CPython fails it when it runs alone, too.
        import asyncio

        asyncio.get_event_loop_policy().set_event_loop(None)
        original(self)

    generic.setUp = set_up


_ADAPTERS = {
    "test_events": _test_events,
    "test_base_events": _test_base_events,
    "test_sock_lowlevel": _test_sock_lowlevel,
    # test_sendfile has test_sock_lowlevel's shape: one class per selector.
    "test_sendfile": _test_sock_lowlevel,
    "test_server": _new_loop_twin("SelectorStartServerTests", "SansloopStartServerTests"),
    "test_buffered_proto": _new_loop_twin(
        "BufferedProtocolSelectorTests", "SansloopBufferedProtocolTests"
    ),
    "test_sslproto": _new_loop_twin("SelectorStartTLSTests", "SansloopStartTLSTests"),
    "test_unix_events": _test_unix_events,
    "test_runners": _test_runners,
    "test_pep492": _test_pep492,
    "test_subprocess": _test_subprocess,
}


def add_variants(name: str, module: types.ModuleType) -> None:
    """Add the sansloop twins to, or retarget the loop factory of, test module ``name``."""
    adapter = _ADAPTERS.get(name)
    if adapter is not None:
        adapter(module)
