"""The leak report of a virtual-time loop: what a run left behind, named instead of hidden.

``asyncio.run()`` ends by cancelling every task still pending, waits for executor jobs and
closes the loop; futures whose exception nobody retrieved are logged whenever the garbage
collector gets to them.  A program (or a test) that forgot a task, a job or an error still
"passes".  On the virtual driver a :class:`LeakWatch` sees the end of the run coming and
writes a :class:`LeakReport`:

* **pending tasks**, described like a deadlock's (name, what they await, where), and
  pending tasks the garbage collector took during the run ("Task was destroyed but it is
  pending!": asyncio holds tasks weakly, so a forgotten task waiting on an object nobody
  else holds can vanish before the end);
* **executor jobs** still running, with where they were submitted;
* **exceptions never retrieved**: every "... exception was never retrieved" context the
  loop's exception handler received during the run (refcounting frees a forgotten future
  at once, so this is deterministic), and, at the end, every done task of the loop still
  alive with an unretrieved exception (one kept alive by a reference cycle would otherwise
  be logged only when the collector runs, maybe during another test).

* **transports and servers left open** when the loop closes (asyncio would only warn
  "unclosed transport" whenever the collector got to them, if ever).

A report is a set of named sections, each a tuple of frozen descriptions, so adding a kind
adds a field and a heading.

When is the end of a run?
-------------------------

Not ``loop.close()``: ``asyncio.run()``/``Runner.close()`` (and ``sansloop.run()``, which
uses them) first cancel all tasks, so by then the tasks are gone and their frames with
them.  The report is therefore **captured** at the first of:

1. the start of the run asyncio's shutdown makes to cancel the leftovers: a
   ``run_until_complete(gather(...))`` of every pending task of the loop, each already
   cancelled while the loop was stopped.  ``task.cancel()`` only marks a task, so its
   coroutine is still suspended where the program left it, and the report says where;
2. ``shutdown_asyncgens()``/``shutdown_default_executor()`` run as a run's own future (what
   ``asyncio.run`` does next, and the first step when no task was left): catches executor
   jobs before ``shutdown_default_executor`` waits for them;
3. ``loop.close()``, for code that just closes its loop;

and **emitted** at ``loop.close()``, once the shutdown finished, so a raised
:class:`VirtualLeakError` does not cut the cleanup short.

A run that failed reports nothing: when the last ``run_until_complete`` raised (the program's
exception, a :class:`~sansloop.drivers.VirtualDeadlock` naming every task, an interrupt),
that failure is what the caller must see, and leftovers are expected after it; a leak
warning turned into an error by ``-W error`` would otherwise replace it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Final, Literal, TypeAlias

import attrs

from ._deadlock import WaitingTask, _await_chain, _describe_task, _natural_key

__all__ = [
    "LeakMode",
    "LeakReport",
    "LeakWatch",
    "LeakedJob",
    "LeakedResource",
    "UnretrievedException",
    "VirtualLeakError",
    "VirtualLeakWarning",
]

#: What to do with a non-empty leak report at the end of a run.
LeakMode: TypeAlias = Literal["warn", "raise", "ignore"]
_MODES: Final = ("warn", "raise", "ignore")

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_SANSLOOP_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep
_CONCURRENT_DIR = os.path.dirname(os.path.dirname(asyncio.__file__)) + os.sep + "concurrent"
_LIBRARY_DIRS: Final = (_ASYNCIO_DIR, _SANSLOOP_DIR, _CONCURRENT_DIR)
_NEVER_RETRIEVED: Final = " exception was never retrieved"
_DESTROYED_PENDING: Final = "Task was destroyed but it is pending!"
#: The report's sections: field, heading for one, heading for many.
_SECTIONS: Final = (
    ("tasks", "pending task", "pending tasks"),
    ("executor_jobs", "executor job still running", "executor jobs still running"),
    ("unretrieved", "exception never retrieved", "exceptions never retrieved"),
    ("transports", "transport left open", "transports left open"),
    ("servers", "server left open", "servers left open"),
)


def check_mode(mode: str) -> LeakMode:
    """``mode`` if it is a leak mode, else ``ValueError`` naming the choices."""
    if mode not in _MODES:
        raise ValueError(f"leaks must be one of 'warn', 'raise', 'ignore', not {mode!r}")
    return mode  # type: ignore[return-value]


@attrs.frozen
class LeakedJob:
    """An executor job (``run_in_executor``, ``asyncio.to_thread``) still running."""

    #: ``file:line in function`` of the code that submitted it (outside asyncio).
    where: str

    def __str__(self) -> str:
        return f"executor job submitted at {self.where} is still running"


@attrs.frozen
class LeakedResource:
    """A transport or server still open when its loop closed."""

    #: What it is and where: ``_SelectorTransport 127.0.0.1:8080 -> 127.0.0.1:40000
    #: (protocol StreamReaderProtocol)``.
    description: str

    def __str__(self) -> str:
        return self.description


@attrs.frozen
class UnretrievedException:
    """A future or task that ended with an exception nobody retrieved."""

    #: ``task 'Task-3' (coro)`` or the future's class name.
    owner: str
    #: ``repr()`` of the exception.
    exception: str
    #: ``file:line in function`` where it was raised (innermost frame outside asyncio).
    where: str

    def __str__(self) -> str:
        return f"{self.owner} failed with {self.exception}, raised at {self.where}"


@attrs.frozen
class LeakReport:
    """What a run left behind; empty (false) when it cleaned up after itself.

    Each field is one section, a tuple of frozen descriptions that keep no reference to the
    objects they describe; the text holds no ``id()``, so a program gives the same report.
    """

    #: ``loop.time()`` when the report was taken.
    now: float
    tasks: tuple[WaitingTask, ...] = ()
    executor_jobs: tuple[LeakedJob, ...] = ()
    unretrieved: tuple[UnretrievedException, ...] = ()
    transports: tuple[LeakedResource, ...] = ()
    servers: tuple[LeakedResource, ...] = ()

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name, _, _ in _SECTIONS)

    def __str__(self) -> str:
        if not self:
            return f"no leaks at virtual time {self.now!r}"
        lines = [f"the run left resources behind at virtual time {self.now!r}:"]
        for name, one, many in _SECTIONS:
            items = getattr(self, name)
            if items:
                lines.append(f"{len(items)} {one if len(items) == 1 else many}:")
                lines.extend(f"  {item}" for item in items)
        return "\n".join(lines)


class VirtualLeakWarning(ResourceWarning):
    """A virtual-time run left tasks, executor jobs or unretrieved exceptions behind.

    A ``ResourceWarning``, like an unclosed file or loop: pytest shows it with the test that
    caused it, ``-W error::ResourceWarning`` (or ``filterwarnings = error``) makes it fail.
    """


class VirtualLeakError(RuntimeError):
    """A virtual-time run left resources behind and its clock says ``leaks="raise"``."""

    def __init__(self, report: LeakReport) -> None:
        self.report = report
        super().__init__(str(report))


class _Run:
    """How one ``run_until_complete`` ended: None while unfinished, then True if it failed."""

    __slots__ = ("__weakref__", "failed", "future")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.failed: bool | None = None
        self.future = weakref.ref(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        # The caller of run_until_complete retrieves this outcome anyway.
        self.failed = future.cancelled() or future.exception() is not None


class LeakWatch:
    """One loop's leak bookkeeping; the loop calls the four hooks, the clock reads reports.

    ``now`` gives the virtual time; ``mode`` the current :data:`LeakMode` (read when
    capturing and when emitting, so it can change during a run).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        now: Callable[[], float],
        mode: Callable[[], LeakMode],
    ) -> None:
        self._loop = weakref.ref(loop)
        self._now = now
        self._mode = mode
        # Jobs in flight, in submission order; done callbacks (any thread) pop them.
        self._jobs: dict[int, LeakedJob] = {}
        self._job_seq = itertools.count()
        self._unretrieved: list[UnretrievedException] = []
        # Pending tasks the collector took (asyncio holds tasks weakly), as they were.
        self._destroyed: list[WaitingTask] = []
        self._runs: tuple[_Run | None, _Run | None] = (None, None)  # (previous, last)
        self._captured: LeakReport | None = None
        self._judged: _Run | None = None
        self._closed = False

    # -- the loop's hooks ------------------------------------------------------------------

    def run_starting(self, future: asyncio.Future[Any]) -> None:
        """``run_until_complete(future)`` begins (the loop is stopped)."""
        if self._captured is not None or self._mode() == "ignore":
            return
        if self._is_cancel_all(future):
            # Tasks someone else had asked to stop already were not forgotten.
            self._capture(self._runs[1], exclude=None, cancelled_once=True)
            return
        self._runs = (self._runs[1], _Run(future))

    def shutting_down(self) -> None:
        """``shutdown_asyncgens()`` or ``shutdown_default_executor()`` begins."""
        if self._captured is not None or self._mode() == "ignore":
            return
        current = asyncio.current_task()
        previous, last = self._runs
        # Only when the shutdown coroutine (our caller) is the run's own task, as in
        # asyncio.run's shutdown; awaited inside a program, the run goes on.
        if (
            current is not None
            and last is not None
            and last.future() is current
            and getattr(current.get_coro(), "cr_frame", None) is sys._getframe(1)
        ):
            self._capture(previous, exclude=current)

    def exception_reported(self, context: dict[str, Any]) -> None:
        """The loop's exception handler is about to receive ``context``."""
        message = context.get("message")
        if self._closed or not isinstance(message, str):
            return
        if message.endswith(_NEVER_RETRIEVED):
            self._unretrieved.append(_unretrieved(context.get("future"), context.get("exception")))
        elif message == _DESTROYED_PENDING:
            task = context.get("task")
            if isinstance(task, asyncio.Task):
                described = _describe(task)
                awaits = f"{described.awaits} (the task was garbage-collected while pending)"
                self._destroyed.append(attrs.evolve(described, awaits=awaits))

    def job_submitted(self, job: Any) -> None:
        """An executor job was submitted; ``job`` is its ``concurrent.futures.Future``."""
        seq = next(self._job_seq)
        self._jobs[seq] = LeakedJob(where=_submitter())
        job.add_done_callback(lambda _job: self._jobs.pop(seq, None))

    def loop_closed(self) -> None:
        """The loop is closed: emit the report (warn or raise), unless ignored or failed."""
        if self._closed:
            return
        if self._mode() == "ignore":
            self._closed = True
            return
        if self._captured is None:
            self._capture(self._runs[1], exclude=None)
        self._closed = True
        captured = self._captured
        assert captured is not None
        judged = self._judged
        if judged is not None and judged.failed is not False:
            return
        report = attrs.evolve(
            captured,
            tasks=captured.tasks + tuple(self._destroyed),
            unretrieved=self._all_unretrieved(),
        )
        report = self._with_open_resources(report)
        if report:
            emit(report, self._mode())

    # -- reports ---------------------------------------------------------------------------

    def report(self) -> LeakReport:
        """The leaks now: pending tasks (but the caller's), jobs in flight, lost errors."""
        report = self._build(exclude=asyncio.current_task() if self._running() else None)
        report = attrs.evolve(report, tasks=report.tasks + tuple(self._destroyed))
        return self._with_open_resources(report)

    def _with_open_resources(self, report: LeakReport) -> LeakReport:
        """Transports and servers of the loop not closed yet.

        Read when the loop closes (or when asked), not when the report is captured: asyncio's
        shutdown cancels the leftover tasks after that, and their ``async with`` blocks
        close what they own.  The compat loop keeps both weakly (``_transports``,
        ``_servers``); a transport already collected was warned about by its finaliser.
        """
        loop = self._loop()
        if loop is None:
            return report
        transports = sorted(
            _describe_transport(transport)
            for transport in list(getattr(loop, "_transports", {}).values())
            if not transport.is_closing()
        )
        servers = sorted(
            _describe_server(server)
            for server in list(getattr(loop, "_servers", ()))
            if getattr(server, "_sockets", None) is not None
        )
        return attrs.evolve(
            report,
            transports=tuple(LeakedResource(text) for text in transports),
            servers=tuple(LeakedResource(text) for text in servers),
        )

    def _running(self) -> bool:
        loop = self._loop()
        return loop is not None and asyncio._get_running_loop() is loop

    def _capture(
        self,
        judged: _Run | None,
        exclude: asyncio.Task[Any] | None,
        *,
        cancelled_once: bool = False,
    ) -> None:
        self._judged = judged
        self._captured = self._build(exclude, cancelled_once=cancelled_once)

    def _build(
        self, exclude: asyncio.Task[Any] | None, *, cancelled_once: bool = False
    ) -> LeakReport:
        loop = self._loop()
        tasks: tuple[WaitingTask, ...] = ()
        if loop is not None:
            pending = [
                task
                for task in asyncio.all_tasks(loop)
                if task is not exclude and not (cancelled_once and task.cancelling() > 1)
            ]
            pending.sort(key=lambda task: _natural_key(task.get_name()))
            tasks = tuple(_describe(task) for task in pending)
        return LeakReport(
            now=self._now(),
            tasks=tasks,
            executor_jobs=tuple(job for _, job in sorted(self._jobs.copy().items())),
            unretrieved=self._all_unretrieved(),
        )

    def _all_unretrieved(self) -> tuple[UnretrievedException, ...]:
        """Observed ones, then done tasks still alive whose exception nobody retrieved."""
        found = list(self._unretrieved)
        loop = self._loop()
        if loop is not None:
            alive = [
                task
                for task in _known_tasks()
                if task.get_loop() is loop
                and task.done()
                and not task.cancelled()
                and getattr(task, "_log_traceback", False)
            ]
            alive.sort(key=lambda task: _natural_key(task.get_name()))
            # exception() would mark it retrieved; _exception does not.
            found.extend(_unretrieved(task, getattr(task, "_exception", None)) for task in alive)
        return tuple(found)

    def _is_cancel_all(self, future: asyncio.Future[Any]) -> bool:
        """Is this asyncio's shutdown run: a gather of every pending task, all cancelled?"""
        children = getattr(future, "_children", None)
        loop = self._loop()
        if not isinstance(children, list) or loop is None:
            return False
        pending = asyncio.all_tasks(loop)
        if not pending or not all(task.cancelling() for task in pending):
            return False
        gathered = set(children)  # membership only, never iterated
        return all(task in gathered for task in pending)


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = f"[{address[0]}]" if ":" in str(address[0]) else str(address[0])
        return f"{host}:{address[1]}"
    return repr(address) if address not in (None, "", b"") else "?"


def _describe_transport(transport: Any) -> str:
    local = _address(transport.get_extra_info("sockname"))
    peer = transport.get_extra_info("peername")
    where = f"{local} -> {_address(peer)}" if peer is not None else f"on {local}"
    protocol = type(transport.get_protocol()).__name__
    return f"{type(transport).__name__} {where} (protocol {protocol})"


def _describe_server(server: Any) -> str:
    addresses = ", ".join(_address(sock.getsockname()) for sock in server.sockets)
    return f"server on {addresses or '?'}"


def emit(report: LeakReport, mode: LeakMode) -> None:
    """Warn about or raise ``report`` as ``mode`` says (nothing for an empty report).

    The warning is attributed to the innermost caller outside asyncio and sansloop (the
    line that called ``asyncio.run()``, ``loop.close()`` or ``check_leaks()``).
    """
    if not report or mode == "ignore":
        return
    if mode == "raise":
        raise VirtualLeakError(report)
    warnings.warn(VirtualLeakWarning(str(report)), stacklevel=_user_stacklevel())


def _known_tasks() -> list[asyncio.Task[Any]]:
    """Every task object still alive that asyncio tracks (done ones included)."""
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if registry is None:  # 3.11
        registry = getattr(asyncio.tasks, "_all_tasks", None)
    if registry is None:
        return []
    while True:
        try:
            return list(registry)
        except RuntimeError:  # the set changed during iteration (another thread)
            continue


def _describe(task: asyncio.Task[Any]) -> WaitingTask:
    """A deadlock's description of ``task``, naming a sleep (a timer is no deadlock)."""
    described = _describe_task(task)
    frames = list(_await_chain(task.get_coro()))
    if frames:
        inner = frames[-1]
        if inner.f_code.co_name == "sleep" and inner.f_code.co_filename.startswith(_ASYNCIO_DIR):
            timer = inner.f_locals.get("h")
            if isinstance(timer, asyncio.TimerHandle):
                awaits = f"asyncio.sleep() until virtual time {timer.when()!r}"
            else:
                awaits = "asyncio.sleep()"
            described = attrs.evolve(described, awaits=awaits)
    return described


def _unretrieved(future: object, exc: object) -> UnretrievedException:
    if isinstance(future, asyncio.Task):
        coro = future.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__qualname__)
        owner = f"task {future.get_name()!r} ({name})"
    else:
        owner = type(future).__qualname__
    tb = exc.__traceback__ if isinstance(exc, BaseException) else None
    return UnretrievedException(owner=owner, exception=repr(exc), where=_raised_at(tb))


def _raised_at(tb: TracebackType | None) -> str:
    """The innermost traceback entry outside asyncio and sansloop."""
    where = "an unknown place (the exception was never raised)"
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(_LIBRARY_DIRS):
            where = f"{code.co_filename}:{tb.tb_lineno} in {code.co_qualname}"
        tb = tb.tb_next
    return where


def _user_stacklevel() -> int:
    """The ``stacklevel`` for a warning issued in ``emit`` that names the user's frame."""
    level = 2  # emit's caller
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 2


def _submitter() -> str:
    """``file:line in function`` of the innermost caller outside asyncio and sansloop."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not code.co_filename.startswith(_LIBRARY_DIRS):
            return f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}"
        frame = frame.f_back
    return "an unknown place"
