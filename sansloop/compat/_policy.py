"""sansloop's event loop policy and the global functions of the Python docs' "Event Loop" page.

How they relate to asyncio's (the design choice, in one place):

* There is **one** policy slot per process, and it is asyncio's.  ``sansloop.get_event_loop_policy``
  and ``sansloop.set_event_loop_policy`` read and write asyncio's global policy, so
  ``asyncio.set_event_loop_policy(sansloop.EventLoopPolicy())`` and ``sansloop.install()`` are
  the same thing, and ``set_event_loop_policy(None)`` restores asyncio's default policy on
  both sides.  Until ``install()`` (or an explicit ``set_event_loop_policy``) the policy in
  effect is asyncio's default, which makes asyncio loops.
* ``get_event_loop``/``set_event_loop`` therefore see the same current loop as asyncio's, in
  both directions, and ``get_running_loop`` is asyncio's running-loop slot (the one
  ``sansloop.EventLoop`` registers itself in), so ``asyncio.current_task()`` agrees too.
* ``new_event_loop`` is the exception: it always makes a ``sansloop.EventLoop`` and ignores
  the policy, because it is the ``loop_factory`` for ``asyncio.Runner``/``asyncio.run`` and a
  factory must not depend on global state.  ``asyncio.new_event_loop()`` asks the policy.

CPython 3.14 deprecates the policy system; ``loop_factory`` is the path that outlives it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import warnings
import weakref
from asyncio import events as _events
from collections.abc import Callable
from typing import Any, TypeAlias

from sansloop.drivers import Driver

from ._loop import EventLoop

__all__ = [
    "EventLoopPolicy",
    "get_event_loop",
    "get_event_loop_policy",
    "get_running_loop",
    "new_event_loop",
    "set_event_loop",
    "set_event_loop_policy",
]

#: What a caller may pass as ``driver``: a name, a driver, or a callable that makes one.
DriverSpec: TypeAlias = "Driver | str | Callable[[], Driver] | None"


# What a policy's get_event_loop() does in the main thread when no loop was ever set, per
# version: 3.11 creates one silently; 3.12 and 3.13 create one after a
# DeprecationWarning; 3.14 raises RuntimeError.
if sys.version_info >= (3, 14):
    _IMPLICIT_LOOP = "never"
    _PolicyBase = _events._AbstractEventLoopPolicy  # the public name warns on 3.14
    _asyncio_get_policy = _events._get_event_loop_policy
    _asyncio_set_policy = _events._set_event_loop_policy
else:
    _IMPLICIT_LOOP = "warn" if sys.version_info >= (3, 12) else "create"
    _PolicyBase = asyncio.AbstractEventLoopPolicy
    _asyncio_get_policy = _events.get_event_loop_policy
    _asyncio_set_policy = _events.set_event_loop_policy

#: Every live sansloop policy, so a forked child can forget the parent's loops.
_policies: weakref.WeakSet[EventLoopPolicy] = weakref.WeakSet()


class _Local(threading.local):
    # The attribute names are asyncio's BaseDefaultEventLoopPolicy._Local's: CPython 3.12+
    # replaces the global policy's ``_local`` with one of those in a forked child.
    _loop: asyncio.AbstractEventLoop | None = None
    _set_called = False


class EventLoopPolicy(_PolicyBase):
    """asyncio's default policy rules, making ``sansloop.EventLoop`` loops.

    Each thread has its own current loop.  ``get_event_loop()`` makes one (with
    ``new_event_loop()``) only in the main thread and only if ``set_event_loop()`` was never
    called there, with the DeprecationWarning asyncio gives on that Python version;
    elsewhere it raises ``RuntimeError``.  Customize by subclassing, as with
    ``asyncio.DefaultEventLoopPolicy``: ``get_event_loop`` calls ``self.new_event_loop()``
    and ``self.set_event_loop()``, so overrides of either are honoured.

    ``driver`` is a driver name (``"selectors"``) or a callable returning a new driver for
    each loop (a driver class works); not a driver instance, since a policy makes many loops.
    """

    def __init__(self, driver: str | Callable[[], Driver] | None = None) -> None:
        _check_policy_driver(driver)
        self._driver = driver
        self._local = _Local()
        self._watcher: Any = None
        _policies.add(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} driver={self._driver!r}>"

    @property
    def driver(self) -> str | Callable[[], Driver] | None:
        """The driver name or factory each new loop gets (None: the platform default)."""
        return self._driver

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        """This thread's current loop; see the class docstring for when one is made."""
        local = self._local
        if (
            local._loop is None
            and not local._set_called
            and threading.current_thread() is threading.main_thread()
            and _IMPLICIT_LOOP != "never"
        ):
            if _IMPLICIT_LOOP == "warn":
                _warn_no_current_loop()
            self.set_event_loop(self.new_event_loop())
        loop = self._local._loop
        if loop is None:
            raise RuntimeError(
                f"There is no current event loop in thread {threading.current_thread().name!r}."
            )
        return loop

    def set_event_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Make ``loop`` this thread's current loop (None: no current loop)."""
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(
                "loop must be an instance of AbstractEventLoop or None, "
                f"not '{type(loop).__name__}'"
            )
        local = self._local
        local._set_called = True
        local._loop = loop
        watcher = getattr(self, "_watcher", None)
        if watcher is not None and threading.current_thread() is threading.main_thread():
            # As asyncio's policy: a watcher someone set follows the main thread's loop.
            watcher.attach_loop(loop)

    def new_event_loop(self) -> EventLoop:
        """A new ``sansloop.EventLoop`` with this policy's driver; not made current."""
        return new_event_loop(driver=self._driver)

    # asyncio declares these abstract before 3.14.  sansloop loops reap their own children
    # (a pidfd or a waiter thread per child, see drivers/_children.py) and never consult a
    # watcher; the policy still hands out asyncio's default one, so code that uses the
    # watcher API directly (add_child_handler for a pid it forked itself) keeps working.
    if sys.version_info < (3, 14):

        def get_child_watcher(self) -> Any:
            """asyncio's default child watcher (sansloop loops do not use it).

            Made on first use, as asyncio's policy does: a ``ThreadedChildWatcher``, or
            from 3.12 a ``PidfdChildWatcher`` where the kernel has pidfds; deprecated from
            3.12 with asyncio's warning.
            """
            if sys.platform == "win32":
                raise NotImplementedError  # as asyncio's Windows policies
            with _watcher_lock():
                if self._watcher is None:
                    self._watcher = _default_child_watcher()
            if sys.version_info >= (3, 12):
                _warn_watcher_deprecated("get_child_watcher")
            return self._watcher

        def set_child_watcher(self, watcher: Any) -> None:
            """Replace (and close) the watcher :meth:`get_child_watcher` returns."""
            if sys.platform == "win32":
                raise NotImplementedError  # as asyncio's Windows policies
            if watcher is not None and not isinstance(watcher, _unix().AbstractChildWatcher):
                raise AssertionError(repr(watcher))  # asyncio asserts
            if self._watcher is not None:
                self._watcher.close()
            self._watcher = watcher
            if sys.version_info >= (3, 12):
                _warn_watcher_deprecated("set_child_watcher")


def _watcher_lock() -> Any:
    """The lock asyncio's policy makes its child watcher under (``events._lock``)."""
    return vars(_events)["_lock"]


def _unix() -> Any:
    from asyncio import unix_events

    return unix_events


def _default_child_watcher() -> Any:
    unix = _unix()
    if sys.version_info >= (3, 12) and unix.can_use_pidfd():
        return unix.PidfdChildWatcher()
    return unix.ThreadedChildWatcher()


def _warn_watcher_deprecated(name: str) -> None:
    warnings.warn(
        f"{name!r} is deprecated as of Python 3.12 and will be removed in Python 3.14.",
        DeprecationWarning,
        stacklevel=3,
    )


def _check_policy_driver(driver: object) -> None:
    if driver is None or callable(driver):
        return
    if isinstance(driver, str):
        # Fail now rather than at the first implicit loop: let the loop judge the name.
        new_event_loop(driver=driver).close()
        return
    if _looks_like_driver(driver):
        raise TypeError(
            "EventLoopPolicy makes many loops, so it needs a driver name or a callable "
            f"returning a new driver, not the driver instance {driver!r}"
        )
    raise TypeError(
        f"driver must be a driver name or a callable returning a driver, not {driver!r}"
    )


def _looks_like_driver(obj: object) -> bool:
    return all(hasattr(obj, name) for name in ("attach", "time", "wait", "wakeup", "close"))


def _is_internal(module: object) -> bool:
    return isinstance(module, str) and (
        module in ("asyncio", "sansloop") or module.startswith(("asyncio.", "sansloop."))
    )


def _warn_no_current_loop() -> None:
    """asyncio's 3.12+ warning, attributed to the first caller outside asyncio and sansloop."""
    frame = sys._getframe(2)  # the caller of EventLoopPolicy.get_event_loop
    stacklevel = 3
    while frame is not None and _is_internal(frame.f_globals.get("__name__")):
        frame = frame.f_back  # type: ignore[assignment]
        stacklevel += 1
    warnings.warn("There is no current event loop", DeprecationWarning, stacklevel=stacklevel)


# -- global functions ----------------------------------------------------------------------


def get_running_loop() -> asyncio.AbstractEventLoop:
    """The loop running in this thread (asyncio's slot); ``RuntimeError`` if there is none."""
    loop = _events._get_running_loop()
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


def get_event_loop() -> asyncio.AbstractEventLoop:
    """The running loop if there is one, else the policy's ``get_event_loop()``.

    The same as ``asyncio.get_event_loop()``: from a coroutine or a callback it returns the
    running loop; otherwise the current policy decides (sansloop's and asyncio's default
    make a loop in the main thread only, and raise ``RuntimeError`` in other threads).
    sansloop's policy attributes its 3.12+ DeprecationWarning to the caller; asyncio's
    default policy, whose warning skips only asyncio's own frames, attributes it here.
    """
    loop = _events._get_running_loop()
    if loop is not None:
        return loop
    return _asyncio_get_policy().get_event_loop()


def set_event_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Make ``loop`` the current loop of this thread, through the current policy."""
    _asyncio_get_policy().set_event_loop(loop)


def new_event_loop(*, driver: DriverSpec = None) -> EventLoop:
    """A new ``sansloop.EventLoop``, whatever the policy: the ``loop_factory`` to pass to
    ``asyncio.Runner`` and ``asyncio.run``.

    ``driver`` is a name (``"selectors"``), a driver, or a callable returning one.  The
    loop is not made current (``set_event_loop`` does that).
    """
    if driver is not None and not isinstance(driver, str):
        if callable(driver):
            driver = driver()
        if not _looks_like_driver(driver):
            raise TypeError(
                "driver must be a driver name, a driver, or a callable returning a driver, "
                f"not {driver!r}"
            )
    return EventLoop(driver)  # type: ignore[abstract]  # its I/O stubs are set by setattr


def get_event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """asyncio's process-wide policy (sansloop's, once ``install()`` has run)."""
    if sys.version_info >= (3, 14):
        _warn_policy_deprecated("get_event_loop_policy")
    return _asyncio_get_policy()


def set_event_loop_policy(policy: asyncio.AbstractEventLoopPolicy | None) -> None:
    """Set asyncio's process-wide policy; None restores asyncio's default policy.

    ``TypeError`` if ``policy`` is neither a policy nor None.
    """
    if sys.version_info >= (3, 14):
        _warn_policy_deprecated("set_event_loop_policy")
    _asyncio_set_policy(policy)


def _warn_policy_deprecated(name: str) -> None:
    warnings.warn(
        f"sansloop.{name} is deprecated, as asyncio's policy system is from Python 3.14 on; "
        "use sansloop.run() or asyncio.Runner(loop_factory=sansloop.new_event_loop)",
        DeprecationWarning,
        stacklevel=3,
    )


def _after_fork_in_child() -> None:
    """A forked child has only this thread and none of the parent's loops are its own."""
    for policy in list(_policies):
        policy._local = _Local()
    _events._set_running_loop(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
