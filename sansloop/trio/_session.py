"""``open_loop()``: an asyncio loop living inside a trio program, and its orderly end.

The shape of one session::

    caller's task ── async with open_loop() as loop: <body>
      outer nursery
        ├─ service host: a shielded nursery with the driver task (running the loop's
        │                iterations) and its helpers (readiness watchers, signal receivers)
        └─ calls host:   a shielded nursery with the trio calls asyncio code started
                         (run_trio)

Both hosts are shielded so that cancelling the body (an outer cancel scope, an error) does
not pull the ground from under the asyncio code while it shuts down; they are cancelled
explicitly, last.  The body itself is not inside either nursery, so it sees trio's
cancellations as usual.

Leaving the block ends the session the way ``asyncio.run()`` ends a program: cancel the
asyncio tasks still pending and wait for them (reporting any that fail, through the loop's
exception handler), cancel the trio calls still running and wait for them, shut down async
generators and the default executor, stop and close the loop.  All of it runs shielded, so a
cancelled body still gets an orderly shutdown; the cancellation goes on afterwards.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from sansloop.compat import EventLoop
from sansloop.drivers._trio import TrioDriver, await_future, sole_exception

__all__ = ["Session", "current_loop", "open_loop", "run", "session_of"]

_T = TypeVar("_T")


class _Host:
    """A nursery run by a task of its own, shielded from the cancellations around it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nursery: trio.Nursery | None = None
        self.done = trio.Event()

    async def run(
        self, *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.cancel_scope.shield = True
                self.nursery = nursery
                task_status.started(nursery)
                await trio.sleep_forever()
        finally:
            self.done.set()

    async def close(self) -> None:
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()
        await self.done.wait()


class Session:
    """One ``open_loop()`` block: its loop, driver and nurseries."""

    def __init__(self, loop: EventLoop, driver: TrioDriver, calls: trio.Nursery) -> None:
        self.loop = loop
        self.driver = driver
        #: Where run_trio() starts trio calls.
        self.calls = calls
        #: Set once the driver task has ended (the loop no longer runs).
        self.stopped = trio.Event()
        self.closing = False

    async def drive(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The driver task: run the loop's iterations until the session closes.

        ``loop.stop()`` ends one run; the loop is run again at once unless the session is
        closing, so asyncio code that stops the loop cannot strand the tasks of the block.
        """
        started: Callable[[], object] | None = task_status.started
        try:
            while True:
                await self.driver.drive(self.loop._run_as_guest(), started)
                started = None
                if self.closing:
                    return
        finally:
            self.stopped.set()


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Session] = (
    weakref.WeakKeyDictionary()
)
_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "sansloop.trio session", default=None
)


def session_of(loop: asyncio.AbstractEventLoop | None) -> Session:
    """The session of ``loop`` (None: asyncio's running loop, else the innermost block)."""
    if loop is None:
        loop = asyncio._get_running_loop()
        if loop is None:
            session = _current.get()
            if session is None:
                raise RuntimeError(
                    "no sansloop trio loop here: call this inside "
                    "'async with sansloop.trio.open_loop()' or pass loop="
                )
            return session
    session = _sessions.get(loop)
    if session is None:
        raise RuntimeError(f"{loop!r} is not a loop opened by sansloop.trio.open_loop()")
    return session


def current_loop() -> EventLoop:
    """The loop of the innermost ``open_loop()`` block around the calling trio code."""
    return session_of(None).loop


@asynccontextmanager
async def open_loop(*, debug: bool | None = None) -> AsyncIterator[EventLoop]:
    """Open an asyncio loop run by the current trio program; close it on leaving the block.

    Inside the block, the loop runs asyncio tasks and callbacks between trio's own tasks
    (``sansloop.trio.run_aio`` awaits asyncio work from trio, ``sansloop.trio.run_trio``
    awaits trio work from asyncio).  ``debug`` sets the loop's debug mode (None: asyncio's
    default).  An exception from the block comes out as itself, not in an exception group.
    """
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as outer:
            service_host = _Host("service")
            calls_host = _Host("calls")
            service = await outer.start(service_host.run)
            calls = await outer.start(calls_host.run)
            driver = TrioDriver(service)
            loop = EventLoop(driver)  # type: ignore[abstract]  # its I/O methods are set by setattr
            if debug is not None:
                loop.set_debug(debug)
            session = Session(loop, driver, calls)
            _sessions[loop] = session
            await service.start(session.drive, name="sansloop loop")
            token = _current.set(session)
            try:
                yield loop
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                _current.reset(token)
                with trio.CancelScope(shield=True):
                    await _shutdown(session, calls_host)
                    await service_host.close()
    except BaseExceptionGroup as group:
        sole = sole_exception(group)
        if sole is None:
            raise
        body_error = sole
    # One exception came out, wrapped by trio (perhaps several times, when it reached both
    # the body and the loop's task): raise it as it was.
    if body_error is not None:
        raise body_error


async def _shutdown(session: Session, calls_host: _Host) -> None:
    loop = session.loop
    try:
        if not session.stopped.is_set():
            await await_future(loop.create_task(_finish_tasks(loop)), session.driver)
            await calls_host.close()
            await await_future(loop.create_task(_finish_loop(loop)), session.driver)
            session.closing = True
            loop.stop()
            session.driver.wake_from_trio()
            await session.stopped.wait()
        else:
            # The driver task died (an exception escaped a callback): nothing can run the
            # loop's tasks any more.  Close what can be closed; the error is on its way out.
            await calls_host.close()
    finally:
        loop.close()


async def _finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.run()'s end: cancel the pending tasks, wait, report the failures."""
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not me]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during sansloop.trio.open_loop() shutdown",
                    "exception": exc,
                    "task": task,
                }
            )


async def _finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


def run(
    main: Coroutine[Any, Any, _T] | Callable[[], Awaitable[_T]],
    *,
    debug: bool | None = None,
    **trio_options: Any,
) -> _T:
    """Run the asyncio coroutine ``main`` on trio's event loop; return its result.

    ``trio.run`` around ``open_loop()``: the asyncio equivalent of ``asyncio.run(main)``,
    with trio underneath (``clock=``, ``instruments=`` and trio's other options pass through).
    """
    from ._bridge import run_aio

    if not (asyncio.iscoroutine(main) or callable(main)):
        raise ValueError(f"a coroutine was expected, got {main!r}")

    async def _main() -> _T:
        async with open_loop(debug=debug) as loop:
            return await run_aio(main, loop=loop)

    try:
        return trio.run(_main, **trio_options)
    except BaseException:
        if asyncio.iscoroutine(main):
            main.close()
        raise
