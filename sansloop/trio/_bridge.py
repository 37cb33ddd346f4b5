"""Crossing between trio and asyncio, both ways, with outcomes and cancellation carried through.

* ``await run_aio(fn, *args)`` (trio -> asyncio): ``fn(*args)`` is called inside a new
  asyncio task on the loop, and awaited if it returns an awaitable (so objects that need a
  running loop when they are made, such as ``aiohttp.ClientSession``, are made with
  ``await run_aio(aiohttp.ClientSession)``); an awaitable (coroutine, future, task) may be
  given instead of a function.  Cancelling the trio scope cancels the task
  (``CancelledError`` inside it) and waits for it to end; ending cancelled raises
  ``trio.Cancelled``.
* ``await run_trio(fn, *args)`` (asyncio -> trio): ``fn(*args)`` runs in a new trio task of
  the session; the call is an asyncio future.  Cancelling it (or the asyncio task awaiting
  it: ``asyncio.timeout``, ``wait_for``, ``Task.cancel``) cancels the trio call's scope, and
  the future completes only once the trio code has finished unwinding -- cancelled if the
  trio code ended by that cancellation, else with its own result or exception, exactly as
  an awaited asyncio task behaves.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from sansloop.drivers._trio import await_future

from ._session import Session, session_of

__all__ = [
    "AioAsTrio",
    "TrioAsAio",
    "TrioCall",
    "aio_as_trio",
    "run_aio",
    "run_trio",
    "trio_as_aio",
]

_T = TypeVar("_T")


async def _call_in_asyncio(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_aio(
    fn: Callable[..., Awaitable[_T]] | Callable[..., _T] | Awaitable[_T],
    *args: Any,
    loop: asyncio.AbstractEventLoop | None = None,
) -> _T:
    """Trio-flavoured: run asyncio work on the loop (default: the innermost ``open_loop``)
    and return its result or raise its exception."""
    session = session_of(loop)
    if inspect.isawaitable(fn):
        if args:
            raise TypeError("run_aio() takes arguments only with a function, not an awaitable")
        try:
            fut: asyncio.Future[_T] = asyncio.ensure_future(fn, loop=session.loop)
        except BaseException:
            if asyncio.iscoroutine(fn):
                fn.close()
            raise
    elif callable(fn):
        # Called inside the task: asyncio functions that need a running loop when called
        # (asyncio.gather, ensure_future) find one.
        fut = session.loop.create_task(_call_in_asyncio(fn, args))
    else:
        raise TypeError(f"run_aio() needs an async function or an awaitable, not {fn!r}")
    return await await_future(fut, session.driver)  # type: ignore[no-any-return]


class TrioCall(asyncio.Future[_T]):
    """The asyncio future of a trio call (see :func:`run_trio`).

    ``cancel()`` does not complete it: it cancels the trio call, and the future completes
    when the trio code has ended, as an awaited asyncio task would.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._trio_scope = trio.CancelScope()
        self._trio_cancel_message: Any = None

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        self._trio_cancel_message = msg
        self._trio_scope.cancel()
        return True


async def _call_in_trio(
    session: Session, fut: TrioCall[Any], fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    loop = session.loop
    try:
        with fut._trio_scope:
            result = await fn(*args)
    except Exception as exc:
        if not loop.is_closed():
            fut.set_exception(exc)
    except BaseException as exc:
        # trio.Cancelled from around the session (it is closing), KeyboardInterrupt,
        # SystemExit: the future ends, and the exception goes on into trio.
        if not loop.is_closed():
            if isinstance(exc, trio.Cancelled):
                asyncio.Future.cancel(fut)
            else:
                fut.set_exception(exc)
        raise
    else:
        if fut._trio_scope.cancelled_caught:
            asyncio.Future.cancel(fut, fut._trio_cancel_message)
        else:
            fut.set_result(result)
    finally:
        session.driver.wake_from_trio()


def run_trio(
    fn: Callable[..., Awaitable[_T]],
    *args: Any,
    loop: asyncio.AbstractEventLoop | None = None,
) -> TrioCall[_T]:
    """asyncio-flavoured: start ``fn(*args)`` in a new trio task; return its future.

    Call it on the loop's thread (asyncio code on the loop, or trio code of its session);
    ``await`` the result from asyncio code.
    """
    if not callable(fn):
        raise TypeError(f"run_trio() needs a trio async function, not {fn!r}")
    session = session_of(loop)
    session.loop._check_closed()
    fut: TrioCall[_T] = TrioCall(session.loop)
    session.calls.start_soon(_call_in_trio, session, fut, fn, args, name=fn)
    return fut


class AioAsTrio:
    """Trio-flavoured view of an asyncio object: see :func:`aio_as_trio`."""

    __slots__ = ("_iterator", "_loop", "_obj")

    def __init__(self, obj: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._obj = obj
        self._loop = loop
        self._iterator: Any = None

    async def __call__(self, *args: Any) -> Any:
        return await run_aio(self._obj, *args, loop=self._loop)

    async def __aenter__(self) -> Any:
        return await run_aio(self._obj.__aenter__, loop=self._loop)

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await run_aio(self._obj.__aexit__, *exc_info, loop=self._loop)

    def __aiter__(self) -> AioAsTrio:
        self._iterator = self._obj.__aiter__()
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._obj.__aiter__()
        return await run_aio(self._iterator.__anext__, loop=self._loop)

    async def aclose(self) -> None:
        """Close the asyncio async generator being iterated (on its loop)."""
        iterator = self._iterator if self._iterator is not None else self._obj
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await run_aio(aclose, loop=self._loop)


def aio_as_trio(obj: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> AioAsTrio:
    """Use an asyncio async function, context manager or iterator from trio code.

    ``await aio_as_trio(fn)(*args)``, ``async with aio_as_trio(session) as s:``,
    ``async for item in aio_as_trio(agen):`` (then ``aclose()`` it if you stop early).
    Each call runs in an asyncio task of its own, as with :func:`run_aio`, so an asyncio
    context manager that must enter and exit in one task (``asyncio.timeout``,
    ``TaskGroup``) belongs inside an asyncio function instead.
    """
    return AioAsTrio(obj, loop)


class TrioAsAio:
    """asyncio-flavoured view of a trio object: see :func:`trio_as_aio`."""

    __slots__ = ("_iterator", "_loop", "_obj")

    def __init__(self, obj: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._obj = obj
        self._loop = loop
        self._iterator: Any = None

    def __call__(self, *args: Any) -> TrioCall[Any]:
        return run_trio(self._obj, *args, loop=self._loop)

    def __aenter__(self) -> TrioCall[Any]:
        return run_trio(self._obj.__aenter__, loop=self._loop)

    def __aexit__(self, *exc_info: Any) -> TrioCall[Any]:
        return run_trio(self._obj.__aexit__, *exc_info, loop=self._loop)

    def __aiter__(self) -> TrioAsAio:
        self._iterator = self._obj.__aiter__()
        return self

    def __anext__(self) -> TrioCall[Any]:
        if self._iterator is None:
            self._iterator = self._obj.__aiter__()
        return run_trio(self._iterator.__anext__, loop=self._loop)


def trio_as_aio(obj: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> TrioAsAio:
    """Use a trio async function, context manager or iterator from asyncio code.

    ``await trio_as_aio(fn)(*args)``, ``async with trio_as_aio(cm) as x:``,
    ``async for item in trio_as_aio(aiter):``.  Each call is a trio task of its own (as
    with :func:`run_trio`), so a trio context manager that must enter and exit in one task
    (a nursery, a cancel scope) belongs inside a trio function instead.
    """
    return TrioAsAio(obj, loop)
