"""``sansloop.EventLoop``: asyncio's ``AbstractEventLoop`` on one core and one driver.

The loop composes a :class:`sansloop.core.Scheduler` (what runs when) with a driver (the
clock, the waiting, the OS objects).  Futures and tasks are asyncio's own and handles are
``asyncio.Handle``/``asyncio.TimerHandle`` instances, so code that inspects them keeps working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time as _time
import warnings
import weakref
from asyncio import events as _events
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar, TypeVarTuple, Unpack

from sansloop.core import LoopEvent, LoopState, Scheduler, next_state
from sansloop.drivers import (
    Driver,
    RunObserver,
    SelectorDriver,
    VirtualDriver,
)

from ._connections import CONNECTION_METHODS
from ._datagram import DATAGRAM_METHODS
from ._errors import ExceptionHandler, call_handler, log_context
from ._pipes import PIPE_METHODS
from ._readiness import READINESS_METHODS
from ._sendfile import SENDFILE_METHODS
from ._servers import SERVER_METHODS
from ._sockets import SOCKET_METHODS
from ._subprocess import SUBPROCESS_METHODS
from ._tls import TLS_METHODS

__all__ = ["EventLoop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

logger = logging.getLogger("asyncio")

_Handle = asyncio.Handle
_TimerHandle = asyncio.TimerHandle
# Later 3.12/3.13 releases give call_soon_threadsafe a handle whose cancel() is thread-safe.
_ThreadsafeHandle: type[asyncio.Handle] = getattr(_events, "_ThreadSafeHandle", asyncio.Handle)

_IDLE = LoopState.IDLE
_RUNNING = LoopState.RUNNING
_STOPPING = LoopState.STOPPING
_CLOSED = LoopState.CLOSED

#: How deep coroutine origins are tracked in debug mode (asyncio's DEBUG_STACK_DEPTH).
_DEBUG_STACK_DEPTH = 10


def _debug_from_environment() -> bool:
    """asyncio's default debug setting: ``-X dev`` or ``PYTHONASYNCIODEBUG``."""
    # asyncio's own rule when it has one (BaseEventLoop asks it too), so the two agree.
    is_debug_mode = getattr(asyncio.coroutines, "_is_debug_mode", None)
    if is_debug_mode is not None:
        return bool(is_debug_mode())
    return sys.flags.dev_mode or (
        not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    )


def _is_coroutine_like(func: object) -> bool:
    return asyncio.iscoroutine(func) or inspect.iscoroutinefunction(func)


def _check_callback(callback: object, method: str) -> None:
    if _is_coroutine_like(callback):
        raise TypeError(f"coroutines cannot be used with {method}()")
    if not callable(callback):
        raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")


def _describe_handle(handle: asyncio.Handle) -> str:
    owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
    return repr(owner) if isinstance(owner, asyncio.Task) else str(handle)


def _stop_when_done(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The exception will reach the caller of run_until_complete() through the
            # task itself; stopping now would hide it behind "stopped before completed".
            return
    fut.get_loop().stop()


def _make_driver(driver: Driver | str | None) -> Driver:
    if driver is None or driver == "selectors":
        return SelectorDriver()
    if driver == "virtual":
        return VirtualDriver()
    if driver == "trio":
        try:
            from sansloop.drivers._trio import TrioDriver
        except ImportError as exc:
            raise ValueError(
                f"the trio driver needs trio (pip install sansloop[trio]): {exc}"
            ) from None
        return TrioDriver()
    if isinstance(driver, str):
        raise ValueError(
            f"unknown sansloop driver {driver!r}; available: 'selectors', 'trio', 'virtual'"
        )
    missing = [
        name for name in ("attach", "time", "wait", "wakeup", "close") if not hasattr(driver, name)
    ]
    if missing:
        raise TypeError(
            f"driver must be a driver name or a driver object, not {driver!r} "
            f"(it has no {', '.join(missing)})"
        )
    return driver


class EventLoop(asyncio.AbstractEventLoop):
    """An asyncio event loop: sansloop's core, run by a driver."""

    def __init__(self, driver: Driver | str | None = None) -> None:
        self._state = _CLOSED  # until the driver exists, so __del__ has nothing to close
        self._driver = _make_driver(driver)
        self._core = Scheduler(self._driver.clock_resolution)
        # Before attaching: a driver may ask to observe callbacks (_observe_handles) then.
        self._debug = False
        self._runner: Callable[[Any], None] | None = None
        # Told of every callback before it runs, if set (_observe_handles).
        self._observer: Callable[[asyncio.Handle], None] | None = None
        self._driver.attach(self, self._core)
        self._state = _IDLE
        self._push_ready = self._core.push_ready
        # Work other threads posted; call_soon() drains it first, so that what another
        # thread posted before a call_soon() runs before it, as in asyncio.
        self._posted = self._core.inbox.pending
        # TimerHandle.cancel() calls this; bound straight to the core, it costs no frame.
        self._timer_handle_cancelled = self._core.timer_cancelled  # type: ignore[method-assign,assignment]
        self._clock: Callable[[], float] = (
            self._driver.time if type(self).time is EventLoop.time else self.time
        )
        self._wait = self._driver.wait
        # Optional (drivers.HostingDriver): a driver that runs the iterations itself.
        self._host: Callable[[Generator[float | None, None, None]], None] | None = getattr(
            self._driver, "host", None
        )
        # Optional (drivers.WorkTrackingDriver): work outside the core the clock waits for.
        self._track_job: Callable[[concurrent.futures.Future[Any]], None] | None = getattr(
            self._driver, "track_job", None
        )
        self._track_thread: Callable[[threading.Thread], None] | None = getattr(
            self._driver, "track_thread", None
        )
        # Optional (drivers.RunObserver): the virtual driver's leak report.
        self._leak_watch: RunObserver | None = getattr(self._driver, "leak_watch", None)
        self._thread_id: int | None = None
        # True from the moment _run_once looks for a timeout until its wait returns: on the
        # loop's thread only signal handlers and finalizers run then, and they must go
        # through the inbox so that a wait in progress is woken.
        self._polling = False
        #: Open and not in debug mode: call_soon() may skip its checks.
        self._plain = False
        self.slow_callback_duration = 0.1
        self._current_handle: asyncio.Handle | None = None
        self._exception_handler: ExceptionHandler | None = None
        self._task_factory: Any = None
        self._default_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_shutdown_called = False
        self._asyncgens: weakref.WeakSet[Any] = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._old_agen_hooks: Any = None
        self._origin_tracking = False
        self._saved_origin_depth = 0
        self._signal_handlers: dict[int, asyncio.Handle] = {}
        # Descriptors owned by transports: the readiness and sock_* methods refuse them.
        self._transports: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        # The servers made on this loop (weakly): the virtual driver's leak report names the
        # ones still open when the loop closes.
        self._servers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.set_debug(_debug_from_environment())

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    # -- running and stopping --------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until :meth:`stop` is called."""
        if self._host is not None:
            # The driver runs the iterations itself (the trio driver, inside a trio run).
            self._check_closed()
            self._check_running()
            self._host(self._run_as_guest())
            return
        self._run_forever_setup()
        try:
            if type(self)._run_once is not EventLoop._run_once:
                # A subclass's own iteration (CPython's test loops override it, as they
                # may asyncio's).
                run_once = self._run_once
                while True:
                    run_once()
                    if self._state is _STOPPING:
                        break
                return
            # _run_once(), inlined with its lookups hoisted: this loop is every iteration's
            # fixed cost.  The runner is read each time: set_debug() may change it.
            core = self._core
            timeout = core.timeout
            run_ready = core.run_ready
            wait = self._wait
            clock = self._clock
            while True:
                self._polling = True
                wait(timeout(clock(), self._state is _STOPPING, True))
                self._polling = False
                run_ready(clock(), self._runner)
                if self._state is _STOPPING:
                    break
        finally:
            self._run_forever_cleanup()

    def run_until_complete(self, future: Generator[Any, None, _T] | Awaitable[_T]) -> _T:
        """Run until ``future`` is done; return its result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not asyncio.isfuture(future)
        fut = asyncio.ensure_future(future, loop=self)  # type: ignore[arg-type]
        if self._leak_watch is not None:
            self._leak_watch.run_starting(fut)
        if new_task:
            # An exception reaches the caller if the task did not finish, so the
            # "Task was destroyed but it is pending" log would only be noise.
            fut._log_destroy_pending = False  # type: ignore[attr-defined]
        fut.add_done_callback(_stop_when_done)
        try:
            self.run_forever()
        except BaseException:
            if new_task and fut.done() and not fut.cancelled():
                # The coroutine raised a BaseException the caller is about to see; mark it
                # retrieved so the task does not log it again.
                fut.exception()
            raise
        finally:
            fut.remove_done_callback(_stop_when_done)
        if not fut.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return fut.result()

    def stop(self) -> None:
        """Stop after the current iteration; callbacks already queued still run."""
        self._state = next_state(self._state, LoopEvent.STOP)

    def is_running(self) -> bool:
        return self._state.is_running

    def is_closed(self) -> bool:
        return self._state is _CLOSED

    def close(self) -> None:
        """Close the loop: drop queued callbacks, release the driver, stop the executor."""
        if self._state is _CLOSED:
            return
        self._state = next_state(self._state, LoopEvent.CLOSE)
        self._plain = False
        if self._debug:
            logger.debug("Close %r", self)
        self._close_signal_handlers()
        self._core.clear()
        self._driver.close()
        self._executor_shutdown_called = True
        executor, self._default_executor = self._default_executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        if self._leak_watch is not None:
            self._leak_watch.loop_closed()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_state", _CLOSED) is not _CLOSED:
            try:
                _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            finally:
                # Also when warnings are errors: the driver's resources (and a virtual
                # clock's patched time functions) must still be released.
                if not self.is_running():
                    self.close()

    def _check_closed(self) -> None:
        if self._state is _CLOSED:
            raise RuntimeError("Event loop is closed")

    def _check_running(self) -> None:
        if self._state.is_running:
            raise RuntimeError("This event loop is already running")
        if _events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def _run_forever_setup(self) -> None:
        self._check_closed()
        self._check_running()
        self._begin_run()
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
        )
        # Looked up on each run, as asyncio does, so that whichever implementation
        # asyncio.events holds (C or Python) is the one told.
        _events._set_running_loop(self)

    def _run_forever_cleanup(self) -> None:
        self._end_run()
        _events._set_running_loop(None)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def _begin_run(self) -> None:
        self._state = next_state(self._state, LoopEvent.RUN)
        self._set_origin_tracking(self._debug)
        self._thread_id = threading.get_ident()

    def _end_run(self) -> None:
        if self._state.is_running:
            self._state = next_state(self._state, LoopEvent.FINISH)
        self._polling = False
        self._thread_id = None
        self._set_origin_tracking(False)

    def _run_as_guest(self) -> Generator[float | None, None, None]:
        """``run_forever``, unrolled for a driver that waits asynchronously (trio's).

        The generator yields each iteration's timeout; the driver waits that long (or until
        woken), queuing ready I/O on the core, then resumes it to run one batch.  It ends
        when the loop is stopped; closing it ends the run at once.  The loop counts as
        running throughout, but it is asyncio's running loop (with its async-generator
        hooks) only while a batch runs: between batches the host's own code runs on this
        thread and must not see it.
        """
        self._check_closed()
        self._begin_run()
        core = self._core
        hooks = (self._asyncgen_firstiter_hook, self._asyncgen_finalizer_hook)
        try:
            while True:
                self._polling = True
                yield core.timeout(self._clock(), self._state is _STOPPING, True)
                self._polling = False
                host_loop = _events._get_running_loop()
                host_hooks = sys.get_asyncgen_hooks()
                _events._set_running_loop(self)
                sys.set_asyncgen_hooks(*hooks)
                try:
                    core.run_ready(self._clock(), self._runner)
                finally:
                    sys.set_asyncgen_hooks(*host_hooks)
                    _events._set_running_loop(host_loop)
                if self._state is _STOPPING:
                    return
        finally:
            self._end_run()

    def _run_once(self) -> None:
        """One iteration: wait for I/O (or not at all), then run one batch."""
        core = self._core
        self._polling = True
        # Blocks only if nothing was posted meanwhile: timeout(sleep=True) starts the
        # inbox's sleep handshake and run_ready() ends it.
        self._wait(core.timeout(self._clock(), self._state is _STOPPING, True))
        self._polling = False
        core.run_ready(self._clock(), self._runner)

    def _observe_handles(self, observer: Callable[[asyncio.Handle], None] | None) -> None:
        """Call ``observer(handle)`` before each callback runs (None: stop).

        For drivers that trace a run (the virtual driver's determinism check); unset, it
        costs nothing, because the core then runs handles itself.
        """
        self._observer = observer
        self._choose_runner()

    def _choose_runner(self) -> None:
        if self._debug:
            self._runner = self._run_debug
        elif self._observer is not None:
            self._runner = self._run_observed
        else:
            self._runner = None

    def _run_observed(self, handle: asyncio.Handle) -> None:
        observer = self._observer
        if observer is not None:
            observer(handle)
        handle._run()

    def _run_debug(self, handle: asyncio.Handle) -> None:
        """Run one callback, warning when it hogs the loop (debug mode)."""
        self._current_handle = handle
        if self._observer is not None:
            self._observer(handle)
        try:
            start = self.time()
            handle._run()
            took = self.time() - start
            if took >= self.slow_callback_duration:
                logger.warning("Executing %s took %.3f seconds", _describe_handle(handle), took)
        finally:
            self._current_handle = None
            # A failing coroutine's traceback keeps this frame alive (through f_back): drop
            # the handle, or the task it runs stays alive in a cycle and its "exception was
            # never retrieved" report waits for the garbage collector (asyncio's _run_once
            # does the same).
            handle = None  # type: ignore[assignment]

    # -- time and callbacks ---------------------------------------------------------------

    def time(self) -> float:
        """The loop's clock: the driver's (``time.monotonic`` for the selectors driver)."""
        return self._driver.time()

    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """Run ``callback(*args)`` in a later iteration, in FIFO order."""
        if self._plain:
            # Open and not in debug mode: every task step comes through here.
            handle = _Handle(callback, args, self, context)
        else:
            if self._state is _CLOSED:
                raise RuntimeError("Event loop is closed")
            if self._debug:
                self._check_thread()
                _check_callback(callback, "call_soon")
            handle = _Handle(callback, args, self, context)
            if handle._source_traceback:  # type: ignore[attr-defined]
                del handle._source_traceback[-1]  # type: ignore[attr-defined]
        if self._posted:
            self._core.drain_inbox()
        self._push_ready(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` ``delay`` seconds from now."""
        # call_at() inlined: asyncio.sleep() and every timeout come through here.
        if delay is None:
            raise TypeError("delay must not be None")
        if self._state is _CLOSED:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            _check_callback(callback, "call_at")
        timer = _TimerHandle(self._clock() + delay, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        self._core.push_timer(timer)  # type: ignore[arg-type]
        return timer

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Run ``callback(*args)`` when :meth:`time` reaches ``when``."""
        if when is None:
            raise TypeError("when cannot be None")
        if self._state is _CLOSED:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            _check_callback(callback, "call_at")
        timer = _TimerHandle(when, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        self._core.push_timer(timer)  # type: ignore[arg-type]
        return timer

    def call_soon_threadsafe(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """Like :meth:`call_soon`, callable from any thread (or a signal handler)."""
        if self._state is _CLOSED:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            _check_callback(callback, "call_soon_threadsafe")
        handle = _ThreadsafeHandle(callback, args, self, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        thread_id = self._thread_id
        if thread_id is None or (thread_id == threading.get_ident() and not self._polling):
            # Not running, or in a callback on the loop's own thread: join the ready queue
            # itself, so that call_soon_threadsafe() and call_soon() keep one FIFO order, as
            # in asyncio.  (A signal handler interrupting the wait takes the inbox below.)
            if self._posted:
                self._core.drain_inbox()
            self._push_ready(handle)
            if thread_id is None:
                # The loop may be starting in another thread right now: make sure its first
                # wait does not sleep past this callback.
                self._driver.wakeup()
        elif self._core.inbox.post(handle):
            self._driver.wakeup()
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        # Called by asyncio.TimerHandle.cancel().
        self._core.timer_cancelled(handle)  # type: ignore[arg-type]

    def _write_to_self(self) -> None:
        """Wake the loop up (kept under asyncio's name for code that calls it)."""
        self._driver.wakeup()

    def _check_thread(self) -> None:
        if self._thread_id is not None and self._thread_id != threading.get_ident():
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other than the current one"
            )

    # -- futures and tasks ----------------------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        """Wrap ``coro`` in a task (or whatever the task factory makes)."""
        self._check_closed()
        if self._task_factory is None:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
            if task._source_traceback:  # type: ignore[attr-defined]
                del task._source_traceback[-1]  # type: ignore[attr-defined]
            return task
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task  # type: ignore[no-any-return]

    def set_task_factory(self, factory: Any) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    # -- executors ------------------------------------------------------------------------

    def run_in_executor(
        self,
        executor: concurrent.futures.Executor | None,
        func: Callable[[Unpack[_Ts]], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run ``func(*args)`` in ``executor`` (None: the default thread pool)."""
        self._check_closed()
        if self._debug:
            _check_callback(func, "run_in_executor")
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if self._default_executor is None:
                self._default_executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="asyncio"
                )
            executor = self._default_executor
        job = executor.submit(func, *args)
        fut = asyncio.wrap_future(job, loop=self)
        if self._track_job is not None:
            # After wrap_future, so the driver hears of the end after the result was posted.
            self._track_job(job)
        return fut

    def set_default_executor(self, executor: Any) -> None:
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Join the default executor's threads without blocking the loop."""
        if self._leak_watch is not None:
            self._leak_watch.shutting_down()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return
        done = self.create_future()
        thread = threading.Thread(target=self._join_executor, args=(executor, done))
        thread.start()
        if self._track_thread is not None:
            self._track_thread(thread)
        try:
            async with asyncio.timeout(timeout):
                await done
        except TimeoutError:
            warnings.warn(
                f"The executor did not finishing joining its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            executor.shutdown(wait=False)
        else:
            thread.join()

    def _join_executor(
        self, executor: concurrent.futures.ThreadPoolExecutor, done: asyncio.Future[None]
    ) -> None:
        try:
            executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_cancelled, done, None)
        except Exception as exc:
            if not self.is_closed() and not done.cancelled():
                self.call_soon_threadsafe(done.set_exception, exc)

    # -- async generators -----------------------------------------------------------------

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                "loop.shutdown_asyncgens() call",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
        self._asyncgens.add(agen)

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    async def shutdown_asyncgens(self) -> None:
        """Close every asynchronous generator still alive on this loop."""
        if self._leak_watch is not None:
            self._leak_watch.shutting_down()
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(*[agen.aclose() for agen in closing], return_exceptions=True)
        for result, agen in zip(results, closing, strict=True):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": "an error occurred during closing of asynchronous "
                        f"generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    # -- errors ---------------------------------------------------------------------------

    def get_exception_handler(self) -> ExceptionHandler | None:
        return self._exception_handler

    def set_exception_handler(self, handler: ExceptionHandler | None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log ``context`` (with where the failing handle was created, in debug mode)."""
        log_context(context, self._current_handle)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Hand ``context`` to the exception handler; errors inside it are logged."""
        if self._leak_watch is not None:
            self._leak_watch.exception_reported(context)
        call_handler(self, self._exception_handler, context)

    # -- debug mode -----------------------------------------------------------------------

    def get_debug(self) -> bool:
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled
        self._choose_runner()
        self._plain = not enabled and self._state is not _CLOSED
        if self.is_running():
            self.call_soon_threadsafe(self._set_origin_tracking, enabled)

    def _set_origin_tracking(self, enabled: bool) -> None:
        if bool(enabled) == self._origin_tracking:
            return
        if enabled:
            self._saved_origin_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._saved_origin_depth)
        self._origin_tracking = bool(enabled)

    # -- signals --------------------------------------------------------------------------

    def add_signal_handler(
        self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> None:
        """Run ``callback(*args)`` in the loop whenever signal ``sig`` arrives."""
        if _is_coroutine_like(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        _check_signal(sig)
        self._check_closed()
        add_signal = getattr(self._driver, "add_signal", None)
        if add_signal is None:
            raise NotImplementedError(
                f"the {type(self._driver).__name__} driver cannot route signals"
            )
        handle = _Handle(callback, args, self, None)
        previous = self._signal_handlers.get(sig)
        self._signal_handlers[sig] = handle
        try:
            add_signal(sig, self._deliver_signal)
        except BaseException:
            if previous is None:
                del self._signal_handlers[sig]
            else:
                self._signal_handlers[sig] = previous
            raise

    def remove_signal_handler(self, sig: int) -> bool:
        """Stop watching ``sig``; return whether a handler was registered."""
        _check_signal(sig)
        if self._signal_handlers.pop(sig, None) is None:
            return False
        self._driver.remove_signal(sig)  # type: ignore[attr-defined]
        return True

    def _deliver_signal(self, sig: int) -> None:
        # Runs in the main thread, between two bytecodes of whatever was running.
        handle = self._signal_handlers.get(sig)
        if handle is not None and not handle._cancelled and self._core.inbox.post(handle):
            self._driver.wakeup()

    def _close_signal_handlers(self) -> None:
        if not self._signal_handlers:
            return
        if sys.is_finalizing():
            warnings.warn(
                f"Closing the loop {self!r} on interpreter shutdown stage, skipping signal "
                "handlers removal",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
            self._signal_handlers.clear()
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)

    # -- name resolution (runs in the default executor, as asyncio does) ------------------

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        resolve = getattr(self._driver, "getaddrinfo", None)
        if resolve is not None:
            # The driver's own network (virtual) answers at once, without a thread.
            return resolve(host, port, family, type, proto, flags)  # type: ignore[no-any-return]
        if self._debug:
            func: Callable[..., list[Any]] = self._getaddrinfo_logged
        else:
            func = socket.getaddrinfo
        return await self.run_in_executor(None, func, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        resolve = getattr(self._driver, "getnameinfo", None)
        if resolve is not None:
            return resolve(sockaddr, flags)  # type: ignore[no-any-return]
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    def _getaddrinfo_logged(self, *args: Any) -> list[Any]:
        started = _time.monotonic()
        result = socket.getaddrinfo(*args)
        took = _time.monotonic() - started
        log = logger.info if took >= self.slow_callback_duration else logger.debug
        log("Getting address info %r took %.3f ms: %r", args, took * 1e3, result)
        return result


# The I/O methods, each family in its own module.
_METHODS = {
    **READINESS_METHODS,
    **SOCKET_METHODS,
    **CONNECTION_METHODS,
    **SERVER_METHODS,
    **DATAGRAM_METHODS,
    **SENDFILE_METHODS,
    **PIPE_METHODS,
    **SUBPROCESS_METHODS,
    **TLS_METHODS,
}
for _name, _method in _METHODS.items():
    setattr(EventLoop, _name, _method)
del _name, _method, _METHODS


def _check_signal(sig: object) -> None:
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


def _set_result_unless_cancelled(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)
