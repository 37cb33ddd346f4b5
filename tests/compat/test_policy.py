"""sansloop's EventLoopPolicy and global functions, rule by rule from the Python docs.

The docs' rules ("Event Loop" > "Obtaining the Event Loop", and "Policies"), each tested
below, through sansloop's functions and through asyncio's with sansloop's policy installed:

* get_running_loop(): the loop running in this OS thread; RuntimeError if none.
* get_event_loop(): from a coroutine or a callback, always the running loop; otherwise the
  policy's get_event_loop(), which never returns None.
* The default policy rules: one current loop per thread; in the main thread a loop is made
  when none is set and set_event_loop() was never called (with a DeprecationWarning on 3.12+);
  other threads get RuntimeError.
* set_event_loop(loop): the current loop of this thread; TypeError for a non-loop.
* new_event_loop(): a new loop, not made current.
* get_event_loop_policy()/set_event_loop_policy(): the process-wide policy; None restores the
  default; TypeError for a non-policy.
* Custom policies subclass the default one and override what they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import pytest

import sansloop
from sansloop.drivers import SelectorDriver

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_L = TypeVar("_L", bound=asyncio.AbstractEventLoop)

#: Python versions whose default policy warns when it makes a loop implicitly.
WARNS_ON_IMPLICIT_LOOP = sys.version_info >= (3, 12)
NO_CURRENT_LOOP = "^There is no current event loop$"


@pytest.fixture
def closing() -> Iterator[Callable[[_L], _L]]:
    """``closing(loop)`` returns ``loop`` and closes it when the test ends."""
    made: list[asyncio.AbstractEventLoop] = []

    def track(loop: _L) -> _L:
        made.append(loop)
        return loop

    yield track
    for loop in made:
        loop.close()


@pytest.fixture
def installed() -> Iterator[sansloop.EventLoopPolicy]:
    """A fresh sansloop policy as asyncio's global policy; the previous one restored after."""
    previous = asyncio.get_event_loop_policy()
    policy = sansloop.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    try:
        yield policy
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.fixture
def asyncio_default() -> Iterator[asyncio.AbstractEventLoopPolicy]:
    """A fresh asyncio default policy as the global policy; the previous one restored after."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(None)
    try:
        yield asyncio.get_event_loop_policy()
    finally:
        asyncio.set_event_loop_policy(previous)


def implicit_loop_warning() -> contextlib.AbstractContextManager[Any]:
    """What making a loop implicitly in the main thread warns on this Python version."""
    if WARNS_ON_IMPLICIT_LOOP:
        return pytest.warns(DeprecationWarning, match=NO_CURRENT_LOOP)
    return contextlib.nullcontext()  # filterwarnings=error: any warning fails the test


def in_thread(func: Callable[[], Any]) -> dict[str, Any]:
    """Run ``func`` in a new thread named "worker"; its result or exception."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = func()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="worker")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return outcome


# -- the policy class ----------------------------------------------------------------------


def test_policy_is_an_asyncio_policy() -> None:
    policy = sansloop.EventLoopPolicy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    assert repr(policy) == "<EventLoopPolicy driver=None>"


def test_policy_new_event_loop_makes_a_new_sansloop_loop_each_time(
    closing: Callable[[_L], _L],
) -> None:
    policy = sansloop.EventLoopPolicy()
    first = closing(policy.new_event_loop())
    second = closing(policy.new_event_loop())
    assert isinstance(first, sansloop.EventLoop)
    assert isinstance(second, sansloop.EventLoop)
    assert first is not second
    assert not first.is_closed()


def test_policy_new_event_loop_does_not_make_it_current(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy()
    current = closing(sansloop.new_event_loop())
    policy.set_event_loop(current)
    closing(policy.new_event_loop())
    assert policy.get_event_loop() is current


def test_main_thread_makes_a_loop_when_none_was_ever_set(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy()
    with implicit_loop_warning():
        loop = closing(policy.get_event_loop())
    assert isinstance(loop, sansloop.EventLoop)
    assert policy.get_event_loop() is loop  # made once, then current (and no second warning)


def test_implicit_loop_warns_exactly_as_asyncio_does(closing: Callable[[_L], _L]) -> None:
    def implicit(policy: asyncio.AbstractEventLoopPolicy) -> list[tuple[type[Warning], str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            closing(policy.get_event_loop())
        return [(w.category, str(w.message)) for w in caught]

    theirs = implicit(asyncio.DefaultEventLoopPolicy())
    ours = implicit(sansloop.EventLoopPolicy())
    assert ours == theirs
    expected = [(DeprecationWarning, "There is no current event loop")]
    assert ours == (expected if WARNS_ON_IMPLICIT_LOOP else [])


@pytest.mark.skipif(not WARNS_ON_IMPLICIT_LOOP, reason="Python 3.11 makes the loop silently")
@pytest.mark.parametrize("how", ["sansloop.get_event_loop", "asyncio.get_event_loop", "policy"])
def test_implicit_loop_warning_points_at_the_caller(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L], how: str
) -> None:
    getters: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "sansloop.get_event_loop": sansloop.get_event_loop,
        "asyncio.get_event_loop": asyncio.get_event_loop,
        "policy": installed.get_event_loop,
    }
    with pytest.warns(DeprecationWarning, match=NO_CURRENT_LOOP) as record:
        closing(getters[how]())
    assert [w.filename for w in record] == [__file__]


def test_implicit_loop_is_not_made_after_set_event_loop_none() -> None:
    policy = sansloop.EventLoopPolicy()
    policy.set_event_loop(None)
    with pytest.raises(
        RuntimeError, match=r"There is no current event loop in thread 'MainThread'"
    ):
        policy.get_event_loop()


def test_implicit_loop_is_not_made_again_once_unset(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy()
    policy.set_event_loop(closing(sansloop.new_event_loop()))
    policy.set_event_loop(None)
    with pytest.raises(RuntimeError, match="There is no current event loop"):
        policy.get_event_loop()


def test_get_event_loop_returns_the_loop_set_even_foreign_or_closed(
    closing: Callable[[_L], _L],
) -> None:
    policy = sansloop.EventLoopPolicy()
    foreign = closing(asyncio.SelectorEventLoop())
    policy.set_event_loop(foreign)
    assert policy.get_event_loop() is foreign
    closed = sansloop.new_event_loop()
    closed.close()
    policy.set_event_loop(closed)
    assert policy.get_event_loop() is closed


@pytest.mark.parametrize("bad", [42, "loop", object(), sansloop.EventLoopPolicy()])
def test_set_event_loop_rejects_non_loops(bad: object, closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy()
    current = closing(sansloop.new_event_loop())
    policy.set_event_loop(current)
    message = f"loop must be an instance of AbstractEventLoop or None, not '{type(bad).__name__}'"
    with pytest.raises(TypeError, match=message):
        policy.set_event_loop(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        asyncio.DefaultEventLoopPolicy().set_event_loop(bad)  # type: ignore[arg-type]
    assert policy.get_event_loop() is current


def test_other_thread_without_a_loop_gets_runtime_error() -> None:
    policy = sansloop.EventLoopPolicy()
    outcome = in_thread(policy.get_event_loop)
    assert isinstance(outcome.get("error"), RuntimeError)
    assert "There is no current event loop in thread 'worker'." in str(outcome["error"])


def test_each_thread_has_its_own_current_loop(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy()
    main_loop = closing(sansloop.new_event_loop())
    worker_loop = closing(sansloop.new_event_loop())
    policy.set_event_loop(main_loop)

    def worker() -> asyncio.AbstractEventLoop:
        policy.set_event_loop(worker_loop)
        return policy.get_event_loop()

    assert in_thread(worker) == {"value": worker_loop}
    assert policy.get_event_loop() is main_loop


@pytest.mark.skipif(sys.platform == "win32", reason="Unix child watchers")
def test_child_watcher_is_asyncios_default() -> None:
    """sansloop loops reap their own children; the policy still hands out asyncio's
    default watcher (deprecated from 3.12, as asyncio's policy warns)."""
    from asyncio import unix_events

    policy = sansloop.EventLoopPolicy()
    deprecated = sys.version_info >= (3, 12)
    ctx = pytest.warns(
        DeprecationWarning, match="'get_child_watcher' is deprecated as of Python 3.12"
    )
    with ctx if deprecated else contextlib.nullcontext():
        watcher = policy.get_child_watcher()
    assert isinstance(watcher, unix_events.AbstractChildWatcher)
    assert watcher.is_active()
    with ctx if deprecated else contextlib.nullcontext():
        assert policy.get_child_watcher() is watcher
    other = unix_events.ThreadedChildWatcher()
    set_ctx = pytest.warns(DeprecationWarning, match="'set_child_watcher' is deprecated")
    with set_ctx if deprecated else contextlib.nullcontext():
        policy.set_child_watcher(other)
    with ctx if deprecated else contextlib.nullcontext():
        assert policy.get_child_watcher() is other
    with pytest.raises(AssertionError):
        policy.set_child_watcher(object())
    # Like asyncio's policy, set_event_loop() in the main thread attaches the watcher.
    safe = _safe_child_watcher()
    with set_ctx if deprecated else contextlib.nullcontext():
        policy.set_child_watcher(safe)
    loop = sansloop.new_event_loop()
    try:
        policy.set_event_loop(loop)
        assert safe._loop is loop
        policy.set_event_loop(None)
        assert safe._loop is None
    finally:
        loop.close()
    with set_ctx if deprecated else contextlib.nullcontext():
        policy.set_child_watcher(None)


def _safe_child_watcher() -> Any:
    from asyncio import unix_events

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return unix_events.SafeChildWatcher()


# -- drivers -------------------------------------------------------------------------------


def test_policy_driver_by_name(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy(driver="selectors")
    assert policy.driver == "selectors"
    assert isinstance(closing(policy.new_event_loop()), sansloop.EventLoop)


def test_policy_driver_factory_is_called_for_every_loop(closing: Callable[[_L], _L]) -> None:
    made: list[SelectorDriver] = []

    def factory() -> SelectorDriver:
        made.append(SelectorDriver())
        return made[-1]

    policy = sansloop.EventLoopPolicy(driver=factory)
    closing(policy.new_event_loop())
    closing(policy.new_event_loop())
    assert len(made) == 2
    assert made[0] is not made[1]


def test_policy_driver_class_is_a_factory(closing: Callable[[_L], _L]) -> None:
    policy = sansloop.EventLoopPolicy(driver=SelectorDriver)
    loop = closing(policy.new_event_loop())
    assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"


def test_policy_rejects_an_unknown_driver_name() -> None:
    with pytest.raises(ValueError, match="unknown sansloop driver 'nope'"):
        sansloop.EventLoopPolicy(driver="nope")


def test_policy_rejects_a_driver_instance() -> None:
    driver = SelectorDriver()
    try:
        with pytest.raises(TypeError, match="not the driver instance"):
            sansloop.EventLoopPolicy(driver=driver)  # type: ignore[arg-type]
    finally:
        driver.close()


def test_policy_rejects_a_non_driver() -> None:
    with pytest.raises(TypeError, match="driver must be a driver name or a callable"):
        sansloop.EventLoopPolicy(driver=42)  # type: ignore[arg-type]


# -- subclassing ---------------------------------------------------------------------------


class TaggedLoop(sansloop.EventLoop):
    """A loop subclass, to see which factory made a loop."""


class TaggedPolicy(sansloop.EventLoopPolicy):
    def new_event_loop(self) -> TaggedLoop:
        return TaggedLoop()


def test_subclass_new_event_loop_is_used_for_the_implicit_loop(
    closing: Callable[[_L], _L],
) -> None:
    policy = TaggedPolicy()
    with implicit_loop_warning():
        loop = closing(policy.get_event_loop())
    assert type(loop) is TaggedLoop


def test_subclass_new_event_loop_is_used_by_asyncio(closing: Callable[[_L], _L]) -> None:
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(TaggedPolicy())
    try:
        assert type(closing(asyncio.new_event_loop())) is TaggedLoop

        async def loop_type() -> type:
            return type(asyncio.get_running_loop())

        assert asyncio.run(loop_type()) is TaggedLoop
    finally:
        asyncio.set_event_loop_policy(previous)


def test_subclass_get_event_loop_is_used_when_no_loop_runs(closing: Callable[[_L], _L]) -> None:
    fixed = closing(sansloop.new_event_loop())

    class FixedPolicy(sansloop.EventLoopPolicy):
        def get_event_loop(self) -> asyncio.AbstractEventLoop:
            return fixed

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(FixedPolicy())
    try:
        assert sansloop.get_event_loop() is fixed
        assert asyncio.get_event_loop() is fixed
        running = closing(sansloop.new_event_loop())

        async def from_inside() -> tuple[object, object]:
            return sansloop.get_event_loop(), asyncio.get_event_loop()

        assert running.run_until_complete(from_inside()) == (running, running)
    finally:
        asyncio.set_event_loop_policy(previous)


# -- after fork() --------------------------------------------------------------------------


def _report_and_exit(write_fd: int, checks: Callable[[], dict[str, Any]]) -> NoReturn:
    """In a forked child: send the checks' results (or their error) to the parent and exit."""
    try:
        report = checks()
    except BaseException as exc:
        report = {"error": repr(exc)}
    try:
        os.write(write_fd, json.dumps(report).encode())
    finally:
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_forked_child_does_not_inherit_current_or_running_loops(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    parent_loop = closing(sansloop.new_event_loop())
    installed.set_event_loop(parent_loop)
    # A policy that is not asyncio's global one: CPython 3.12+ resets only the global one.
    private = sansloop.EventLoopPolicy()
    private_loop = closing(sansloop.new_event_loop())
    private.set_event_loop(private_loop)

    def child_checks() -> dict[str, Any]:
        try:
            sansloop.get_running_loop()
            running = "still running"
        except RuntimeError:
            running = "none"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the implicit loop's, 3.12+
            current = installed.get_event_loop()
            private_current = private.get_event_loop()
        report = {
            "running": running,
            "current is the parent's": current is parent_loop,
            "private is the parent's": private_current is private_loop,
            "fresh sansloop loops": isinstance(current, sansloop.EventLoop)
            and isinstance(private_current, sansloop.EventLoop),
        }
        current.close()
        private_current.close()
        return report

    read_fd, write_fd = os.pipe()
    try:

        async def fork_while_running() -> int:
            pid = os.fork()
            if pid == 0:
                _report_and_exit(write_fd, child_checks)
            return pid

        pid = parent_loop.run_until_complete(fork_while_running())
        os.close(write_fd)
        write_fd = -1
        chunks = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(b"".join(chunks)) == {
        "running": "none",
        "current is the parent's": False,
        "private is the parent's": False,
        "fresh sansloop loops": True,
    }
    # The parent keeps its loops.
    assert installed.get_event_loop() is parent_loop
    assert private.get_event_loop() is private_loop


# -- global functions: get_running_loop ----------------------------------------------------


def test_get_running_loop_outside_a_loop_raises() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        sansloop.get_running_loop()


def test_running_loop_and_current_task_agree_with_asyncio(closing: Callable[[_L], _L]) -> None:
    loop = closing(sansloop.new_event_loop())

    async def inside() -> bool:
        task = asyncio.current_task()
        return (
            sansloop.get_running_loop() is loop
            and asyncio.get_running_loop() is loop
            and task is not None
            and task.get_loop() is loop
            and task in asyncio.all_tasks()
        )

    assert loop.run_until_complete(inside())


# -- global functions: get_event_loop ------------------------------------------------------


def test_get_event_loop_in_a_coroutine_is_the_running_loop(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    other = closing(sansloop.new_event_loop())
    sansloop.set_event_loop(other)  # a different current loop must not matter
    running = closing(sansloop.new_event_loop())

    async def inside() -> asyncio.AbstractEventLoop:
        return sansloop.get_event_loop()

    assert running.run_until_complete(inside()) is running


def test_get_event_loop_in_a_callback_is_the_running_loop(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    installed.set_event_loop(closing(sansloop.new_event_loop()))
    running = closing(sansloop.new_event_loop())
    seen: list[asyncio.AbstractEventLoop] = []

    def callback() -> None:
        seen.append(sansloop.get_event_loop())
        running.stop()

    running.call_soon(callback)
    running.run_forever()
    assert seen == [running]


def test_get_event_loop_in_a_thread_running_a_loop_needs_no_current_loop(
    installed: sansloop.EventLoopPolicy,
) -> None:
    def worker() -> bool:
        loop = sansloop.new_event_loop()
        try:

            async def inside() -> bool:
                return sansloop.get_event_loop() is asyncio.get_running_loop()

            return loop.run_until_complete(inside())
        finally:
            loop.close()

    assert in_thread(worker) == {"value": True}


def test_get_event_loop_makes_a_sansloop_loop_in_the_main_thread(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    with implicit_loop_warning():
        loop = closing(sansloop.get_event_loop())
    assert isinstance(loop, sansloop.EventLoop)
    assert sansloop.get_event_loop() is loop
    assert asyncio.get_event_loop() is loop


def test_get_event_loop_in_another_thread_without_a_loop_raises(
    installed: sansloop.EventLoopPolicy,
) -> None:
    outcome = in_thread(sansloop.get_event_loop)
    assert isinstance(outcome.get("error"), RuntimeError)
    assert "There is no current event loop in thread 'worker'" in str(outcome["error"])


def test_get_event_loop_after_asyncio_run_raises_in_the_main_thread(
    installed: sansloop.EventLoopPolicy,
) -> None:
    # asyncio.run() sets its loop as current and unsets it at the end: set_event_loop has
    # been called, so no loop is made implicitly any more.
    asyncio.run(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="There is no current event loop"):
        sansloop.get_event_loop()


def test_with_asyncio_default_policy_the_current_loop_is_shared(
    asyncio_default: asyncio.AbstractEventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    # Until install(), sansloop's global functions see asyncio's default policy's loops.
    loop = closing(asyncio.SelectorEventLoop())
    asyncio.set_event_loop(loop)
    assert sansloop.get_event_loop() is loop
    sansloop.set_event_loop(None)
    with pytest.raises(RuntimeError, match="There is no current event loop"):
        asyncio.get_event_loop()


# -- global functions: set_event_loop ------------------------------------------------------


def test_set_event_loop_is_seen_by_asyncio_and_back(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    ours = closing(sansloop.new_event_loop())
    sansloop.set_event_loop(ours)
    assert asyncio.get_event_loop() is ours
    assert installed.get_event_loop() is ours
    theirs = closing(sansloop.new_event_loop())
    asyncio.set_event_loop(theirs)
    assert sansloop.get_event_loop() is theirs


def test_set_event_loop_rejects_non_loops_globally(installed: sansloop.EventLoopPolicy) -> None:
    with pytest.raises(TypeError, match="loop must be an instance of AbstractEventLoop or None"):
        sansloop.set_event_loop(object())  # type: ignore[arg-type]


# -- global functions: new_event_loop ------------------------------------------------------


def test_new_event_loop_ignores_the_policy(
    asyncio_default: asyncio.AbstractEventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    loop = closing(sansloop.new_event_loop())
    assert type(loop) is sansloop.EventLoop
    assert not loop.is_running()
    assert not loop.is_closed()


def test_new_event_loop_is_not_made_current(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    current = closing(sansloop.new_event_loop())
    sansloop.set_event_loop(current)
    fresh = closing(sansloop.new_event_loop())
    assert fresh is not current
    assert sansloop.get_event_loop() is current


def test_new_event_loop_drivers(closing: Callable[[_L], _L]) -> None:
    by_name = closing(sansloop.new_event_loop(driver="selectors"))
    by_instance = closing(sansloop.new_event_loop(driver=SelectorDriver()))
    by_factory = closing(sansloop.new_event_loop(driver=SelectorDriver))
    for loop in (by_name, by_instance, by_factory):
        assert loop.run_until_complete(asyncio.sleep(0.001, "ok")) == "ok"


def test_new_event_loop_rejects_bad_drivers() -> None:
    with pytest.raises(ValueError, match="unknown sansloop driver 'nope'"):
        sansloop.new_event_loop(driver="nope")
    with pytest.raises(TypeError, match="driver must be a driver name, a driver, or a callable"):
        sansloop.new_event_loop(driver=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="driver must be a driver name, a driver, or a callable"):
        sansloop.new_event_loop(driver=lambda: 42)  # type: ignore[arg-type,return-value]


def test_new_event_loop_takes_the_driver_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        sansloop.new_event_loop("selectors")  # type: ignore[misc]


# -- global functions: the policy slot -----------------------------------------------------


def test_policy_slot_is_asyncios_in_both_directions() -> None:
    previous = asyncio.get_event_loop_policy()
    ours = sansloop.EventLoopPolicy()
    theirs = asyncio.DefaultEventLoopPolicy()
    try:
        sansloop.set_event_loop_policy(ours)
        assert asyncio.get_event_loop_policy() is ours
        asyncio.set_event_loop_policy(theirs)
        assert sansloop.get_event_loop_policy() is theirs
    finally:
        asyncio.set_event_loop_policy(previous)


def test_set_event_loop_policy_none_restores_the_default() -> None:
    previous = asyncio.get_event_loop_policy()
    try:
        sansloop.set_event_loop_policy(sansloop.EventLoopPolicy())
        sansloop.set_event_loop_policy(None)
        restored = sansloop.get_event_loop_policy()
        assert type(restored) is asyncio.DefaultEventLoopPolicy
        assert restored is asyncio.get_event_loop_policy()
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.mark.parametrize("bad", [42, sansloop.EventLoopPolicy, "policy"])
def test_set_event_loop_policy_rejects_non_policies(bad: object) -> None:
    previous = asyncio.get_event_loop_policy()
    message = (
        f"policy must be an instance of AbstractEventLoopPolicy or None, not '{type(bad).__name__}'"
    )
    with pytest.raises(TypeError, match=message):
        sansloop.set_event_loop_policy(bad)  # type: ignore[arg-type]
    assert asyncio.get_event_loop_policy() is previous


# -- interoperation with asyncio -----------------------------------------------------------


def test_asyncio_with_sansloop_policy_makes_sansloop_loops(
    installed: sansloop.EventLoopPolicy, closing: Callable[[_L], _L]
) -> None:
    assert type(closing(asyncio.new_event_loop())) is sansloop.EventLoop

    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        return (
            isinstance(loop, sansloop.EventLoop),
            sansloop.get_running_loop() is loop is sansloop.get_event_loop(),
            task is not None and task.get_loop() is loop,
        )

    assert asyncio.run(main()) == (True, True, True)
