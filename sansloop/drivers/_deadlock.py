"""Deadlock diagnosis for the virtual driver: which tasks wait, on what, and where.

When the virtual clock finds that nothing can ever run again, a hang would be the honest
answer of a real loop; under virtual time it is a test failing slowly for no reason.  The
driver raises :class:`VirtualDeadlock` instead, and this module writes its diagnosis from
what asyncio's own objects expose:

* ``task._fut_waiter``: the future a pending task is blocked on (a task, a ``gather``, a
  plain future);
* the coroutine's ``cr_await`` chain (``task.get_stack()`` only shows the outermost frame):
  the innermost asyncio frame's ``self`` names the primitive (``Event``, ``Lock``, ``Queue``,
  ``Condition``, ``Semaphore``, ``Barrier``, ``StreamReader``), and the innermost frame
  outside asyncio is where the user's code is suspended.

The text holds no ``id()`` or address, so the same program gives the same diagnosis.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from types import FrameType
from typing import Any

import attrs

__all__ = ["VirtualDeadlock", "WaitingTask", "waiting_tasks"]

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_SANSLOOP_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep


@attrs.frozen
class WaitingTask:
    """One task of a deadlocked loop, described in words (it keeps no reference to the task)."""

    #: The task's name (``Task-3`` unless it was given one).
    name: str
    #: The qualified name of the task's coroutine.
    coroutine: str
    #: What the task awaits, e.g. ``asyncio.Event.wait() (the event is not set)``.
    awaits: str
    #: ``file:line in function`` of the innermost frame outside asyncio.
    where: str
    #: The await chain, outermost first, as ``file:line in function``.
    stack: tuple[str, ...]

    def __str__(self) -> str:
        return f"task {self.name!r} ({self.coroutine}) awaits {self.awaits}, at {self.where}"


class VirtualDeadlock(RuntimeError):
    """Nothing can run again on a virtual-time loop: no callback is ready, no timer will fire,
    and nothing (executor job, registered thread, time hold) can post work.

    Raised out of ``run_until_complete``/``run_forever`` (and so out of ``asyncio.run``) at
    the moment the loop would otherwise block for ever.
    """

    def __init__(self, now: float, reason: str, tasks: tuple[WaitingTask, ...]) -> None:
        self.now = now
        self.reason = reason
        self.tasks = tasks
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"deadlock at virtual time {self.now!r}: {self.reason}."]
        if self.tasks:
            count = len(self.tasks)
            lines.append(f"{count} pending task{'s' if count != 1 else ''}:")
            lines.extend(f"  {task}" for task in self.tasks)
        else:
            lines.append("No task is pending (a bare future or run_forever() waits).")
        lines.append(
            "If another thread will call call_soon_threadsafe(), register it with "
            "VirtualClock.register_thread() or hold the clock with VirtualClock.hold_time()."
        )
        return "\n".join(lines)


def waiting_tasks(loop: asyncio.AbstractEventLoop) -> tuple[WaitingTask, ...]:
    """Describe every pending task of ``loop``, in a stable order (by name, numbers natural)."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    pending.sort(key=lambda task: _natural_key(task.get_name()))
    return tuple(_describe_task(task) for task in pending)


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )


def _describe_task(task: asyncio.Task[Any]) -> WaitingTask:
    coro = task.get_coro()
    frames = list(_await_chain(coro))
    stack = tuple(_where(frame) for frame in frames)
    user = [frame for frame in frames if not _in_asyncio(frame)]
    if user:
        where = _where(user[-1])
    elif frames:
        where = _where(frames[0])
    else:
        where = "an unknown place (the coroutine has no frame)"
    return WaitingTask(
        name=task.get_name(),
        coroutine=getattr(coro, "__qualname__", type(coro).__qualname__),
        awaits=_primitive(frames) or _future(getattr(task, "_fut_waiter", None)),
        where=where,
        stack=stack,
    )


def _await_chain(awaitable: object) -> Iterator[FrameType]:
    """The frames of a coroutine and of everything it awaits, outermost first."""
    obj: object = awaitable
    while obj is not None:
        frame = _frame_of(obj)
        if frame is None:
            return
        yield frame
        obj = _awaited_by(obj)


def _frame_of(obj: object) -> FrameType | None:
    for attr in ("cr_frame", "ag_frame", "gi_frame"):
        frame = getattr(obj, attr, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _awaited_by(obj: object) -> object:
    for attr in ("cr_await", "ag_await", "gi_yieldfrom"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            return inner
    return None


def _in_asyncio(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_ASYNCIO_DIR)


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}"


def _primitive(frames: list[FrameType]) -> str | None:
    """Name the asyncio primitive or stream the chain waits in (the innermost), if any."""
    for frame in reversed(frames):
        if not _in_asyncio(frame):
            continue
        owner = frame.f_locals.get("self")
        if owner is None:
            continue
        detail = _state_of(owner, frame.f_code.co_name)
        if detail is None:
            continue
        cls = type(owner)
        module = "asyncio" if cls.__module__.startswith("asyncio.") else cls.__module__
        return f"{module}.{cls.__qualname__}.{frame.f_code.co_name}() ({detail})"
    return None


def _state_of(owner: object, method: str) -> str | None:
    """Why a primitive's waiter cannot proceed; None for objects we do not know."""
    if isinstance(owner, asyncio.Event):
        return "the event is set" if owner.is_set() else "the event is not set"
    if isinstance(owner, asyncio.Condition):
        return "nobody notifies the condition"
    if isinstance(owner, asyncio.Lock):
        return "the lock is held" if owner.locked() else "the lock is free"
    if isinstance(owner, asyncio.Semaphore):
        return "the semaphore is at zero" if owner.locked() else "the semaphore is free"
    if isinstance(owner, asyncio.Barrier):
        return f"{owner.n_waiting} of {owner.parties} parties are waiting"
    if isinstance(owner, asyncio.Queue):
        if method == "get":
            return "the queue is empty"
        if method == "put":
            return f"the queue is full ({owner.maxsize} items)"
        if method == "join":
            return "task_done() is not called for every item"
        return f"{owner.qsize()} items queued"
    if isinstance(owner, asyncio.StreamReader):
        return "no data arrives and the stream never ends"
    return None


def _future(waiter: object) -> str:
    """Describe the future a task is blocked on when no primitive explains it."""
    if waiter is None:
        return "nothing the loop knows of (an awaitable outside asyncio?)"
    if isinstance(waiter, asyncio.Task):
        return f"task {waiter.get_name()!r} ({_qualname(waiter.get_coro())})"
    children = getattr(waiter, "_children", None)
    if isinstance(children, list):
        pending = [child for child in children if not child.done()]
        names = ", ".join(_short(child) for child in pending)
        return f"asyncio.gather() of {len(children)} ({len(pending)} pending: {names})"
    text = f"a {type(waiter).__qualname__} that nothing resolves"
    # In debug mode asyncio records where the future was made: name the caller's frame,
    # not loop.create_future() itself.
    created = [
        entry
        for entry in getattr(waiter, "_source_traceback", None) or ()
        if not entry[0].startswith((_ASYNCIO_DIR, _SANSLOOP_DIR))
    ]
    if created:
        filename, lineno, name, _line = created[-1]
        text += f" (created at {filename}:{lineno} in {name})"
    return text


def _short(fut: object) -> str:
    if isinstance(fut, asyncio.Task):
        return f"task {fut.get_name()!r}"
    return type(fut).__qualname__


def _qualname(coro: object) -> str:
    return getattr(coro, "__qualname__", type(coro).__qualname__)
