"""The trio driver: an asyncio loop run as a guest by a task of a trio program.

Theory of operation.  The compat loop unrolls ``run_forever`` into a generator
(``EventLoop._run_as_guest``) that yields how long each iteration may wait;
:meth:`TrioDriver.drive`, awaited by one trio task, does the waiting the trio way and resumes
the generator to run the next batch.  Everything else a driver owns maps onto trio:

* **Clock.**  ``time()`` is the trio run's clock (``trio.lowlevel.current_clock()``), so a
  ``trio.testing.MockClock`` -- autojump included -- drives asyncio's timers too.
* **Waiting.**  A zero timeout is a plain trio checkpoint (other trio tasks and I/O run
  between two batches; when batch after batch leaves more ready, up to eight run back to
  back first); otherwise the driver task parks with ``wait_task_rescheduled`` under a cancel
  scope whose deadline is the next timer, so trio's own deadline machinery (and MockClock's
  autojump) wakes it.
* **Wake-ups.**  Other threads (``call_soon_threadsafe``, executor results) and signal
  handlers go through the trio token's ``run_sync_soon``.  Trio code on the loop's thread
  that hands the loop work directly (setting an asyncio future, ``loop.call_soon``) is
  noticed by a trio instrument: before trio blocks for I/O, it checks whether the parked
  loop has work ready or a timer earlier than the one it sleeps for.
* **Readiness.**  ``add_reader``/``add_writer`` and the ``sock_*`` operations share one
  :class:`_Direction` per descriptor and direction, each with a trio task awaiting
  ``trio.lowlevel.wait_readable``/``wait_writable``.  When the descriptor is ready the task
  retries the queued socket operations in order (``_socket_ops``, as the selectors driver
  does) and pushes the live reader/writer handle onto the core.  If the loop's task is
  parked, the readiness task runs the batch itself, then and there (the loop's iterations
  are a generator any task may resume while no one else does), which saves two trio task
  steps per report; otherwise it wakes the loop's task and waits until the batch that runs
  the handle is over before it looks at the descriptor again (level triggering without a
  busy loop).  Removing the last interest cancels the task, which
  drops trio's registration before the caller can close the descriptor.  Stream, datagram
  and listener channels are the readiness ones the selectors driver uses, unchanged.
* **Signals** are trio's: ``trio.open_signal_receiver`` per signal (asyncio's
  ``signal.set_wakeup_fd`` would take trio's own wake-up descriptor away).  Removing a
  handler restores the disposition that was there before, trio's included.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import math
import os
import signal
import socket
import sys
import time as _time
from collections import deque
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import outcome
import sniffio
import trio

from sansloop.core import Callback, Scheduler

from . import _socket_ops as ops
from ._children import ChildReaper
from ._contract import FileDescriptorLike, PipeLike
from ._selector_datagrams import ReadinessDatagram
from ._selector_pipes import ReadinessPipe
from ._selector_streams import ReadinessListener, ReadinessStream

if TYPE_CHECKING:
    from sansloop.core import DatagramSink, PipeSink, StreamSink

    from ._contract import (
        ChildDriver,
        DatagramDriver,
        PipeDriver,
        ReadinessDriver,
        SignalDriver,
        SocketDriver,
        StreamDriver,
    )

__all__ = ["TrioDriver", "await_future", "sole_exception"]

_Abort = trio.lowlevel.Abort
#: How many batches may run back to back, each leaving more ready, before trio's tasks and
#: I/O get a checkpoint (a checkpoint costs a whole trio scheduler pass; asyncio code that
#: keeps the loop busy still lets trio in every few batches).
_BUSY_BATCHES = 8


def _not_attached(handle: Callback) -> None:
    raise RuntimeError("the driver was never attached to a core (call attach() first)")


def _fileno(fd: FileDescriptorLike) -> int:
    """The descriptor number, with the selectors module's ValueErrors."""
    if isinstance(fd, int):
        number = fd
    else:
        try:
            number = int(fd.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fd!r}") from None
    if number < 0:
        raise ValueError(f"Invalid file descriptor: {number}")
    return number


class _Direction:
    """One descriptor watched in one direction: the user's handle, queued socket
    operations, and the trio task waiting for readiness (cancelled through ``scope``)."""

    __slots__ = ("fd", "handle", "obj", "ops", "reading", "scope")

    def __init__(self, fd: int, obj: object, reading: bool) -> None:
        self.fd = fd
        self.obj = obj
        self.reading = reading
        self.handle: asyncio.Handle | None = None
        self.ops: deque[ops.Op] = deque()
        self.scope = trio.CancelScope()

    def wanted(self) -> bool:
        return self.handle is not None or bool(self.ops)


class _SignalWatch:
    """One signal delivered to the loop by a trio signal receiver."""

    __slots__ = ("deliver", "receiver", "scope")

    def __init__(
        self, receiver: AbstractContextManager[Any], deliver: Callable[[int], None]
    ) -> None:
        self.receiver = receiver
        self.deliver = deliver
        self.scope = trio.CancelScope()


class _HostedSignals:
    """Signal handlers of a hosted driver, whose trio runs come and go.

    A Python-level handler per signal delivers it to the loop (Python runs it in the main
    thread); during a trio run, trio's own ``set_wakeup_fd`` descriptor makes the wait
    return, and between runs the inbox keeps the signal for the next one.
    """

    def __init__(self) -> None:
        self._deliver: dict[int, Callable[[int], None]] = {}

    def add(self, sig: int, deliver: Callable[[int], None]) -> None:
        try:
            previous = signal.signal(sig, self._on_signal)
        except ValueError as exc:  # not the main thread
            raise RuntimeError(str(exc)) from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        del previous
        self._deliver[sig] = deliver
        if sys.platform != "win32":
            signal.siginterrupt(sig, False)

    def remove(self, sig: int) -> None:
        if self._deliver.pop(sig, None) is None:
            return
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise

    def close(self) -> None:
        for sig in list(self._deliver):
            self.remove(sig)

    def _on_signal(self, sig: int, frame: Any) -> None:
        deliver = self._deliver.get(sig)
        if deliver is not None:
            deliver(sig)


class _WakeOnForeignWork(trio.abc.Instrument):
    """Before trio blocks for I/O: wake the parked loop if trio code handed it work."""

    def __init__(self, driver: TrioDriver) -> None:
        self._driver = driver

    def before_io_wait(self, timeout: float) -> None:
        self._driver._check_foreign_work()


class _PerfCounterClock(trio.abc.Clock):
    """The clock of a hosted driver's trio runs: ``time.perf_counter``, the loop's clock too,
    so deadlines mean the same on both sides and time goes on between runs."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return _time.perf_counter()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - _time.perf_counter()


class TrioDriver(ops.SocketOperations):
    """The driver of an asyncio loop run by a trio task (see the module docstring).

    Two ways to use it:

    * **guest** (``TrioDriver(nursery)``, made inside a trio run): the loop lives inside a
      trio program; :func:`sansloop.trio.open_loop` makes one and a task of the program
      drives it.  Time is the trio run's clock.
    * **hosted** (``TrioDriver()``, or ``new_event_loop(driver="trio")``, made anywhere):
      the loop is an ordinary asyncio loop, and each ``run_forever``/``run_until_complete``
      is one ``trio.run`` that drives it (:meth:`host`), its readiness watchers started
      again in every run.  Time is ``time.perf_counter``.  Signal handlers are plain Python
      handlers (trio's signal receivers live in one trio run).
    """

    clock_resolution: float = _time.get_clock_info("perf_counter").resolution

    def __init__(self, nursery: trio.Nursery | None = None) -> None:
        self._nursery = nursery
        self._guest = nursery is not None
        self._token: trio.lowlevel.TrioToken | None
        if self._guest:
            self._token = trio.lowlevel.current_trio_token()
            clock: trio.abc.Clock = trio.lowlevel.current_clock()
        else:
            self._token = None
            clock = _PerfCounterClock()
        self._clock = clock
        # The clock's own method: loop.time() costs no frame of ours, and works from any
        # thread (a trio call such as trio.current_time() would not).
        self.time: Callable[[], float] = (  # type: ignore[method-assign]
            clock.current_time if self._guest else _time.perf_counter
        )
        self._readers: dict[int, _Direction] = {}
        self._writers: dict[int, _Direction] = {}
        self._signals: dict[int, _SignalWatch] = {}
        self._hosted_signals = _HostedSignals()
        self._sleeper: trio.lowlevel.Task | None = None
        self._deadline = math.inf
        self._wake_requested = False
        self._parked: list[trio.lowlevel.Task] = []
        self._instrument = _WakeOnForeignWork(self)
        #: trio tasks waiting in await_future(), and for what.
        self._waiters: dict[trio.lowlevel.Task, asyncio.Future[Any]] = {}
        #: The driver task ended by an exception: the loop's callbacks no longer run.
        self.broken = False
        #: The loop's iterations while :meth:`drive` runs them.
        self._run: Generator[float | None, None, None] | None = None
        self._in_batch = False
        self._finished = False
        self._closed = False
        self._core: Scheduler | None = None
        self._push_ready: Callable[[Callback], None] = _not_attached
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: ChildReaper | None = None

    # -- the core contract ----------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
        self._core = core
        self._push_ready = core.push_ready
        self._loop = loop

    def time(self) -> float:  # replaced per instance by the trio clock's method
        raise NotImplementedError

    def wait(self, timeout: float | None) -> None:
        raise RuntimeError(
            "a loop on the trio driver is run by trio, not by run_forever() or "
            "run_until_complete(): use 'async with sansloop.trio.open_loop()'"
        )

    def wakeup(self) -> None:
        """Make a parked :meth:`drive` run its next iteration.  Thread-safe, signal-safe."""
        token = self._token
        if token is None:
            # Hosted and between runs: the next run looks at the inbox before it waits.
            return
        try:
            token.run_sync_soon(self._wake, idempotent=True)
        except trio.RunFinishedError:
            pass

    def host(self, run: Generator[float | None, None, None]) -> None:
        """Run the loop's iterations in a trio run of their own (hosted mode)."""
        if self._guest:
            run.close()
            raise RuntimeError(
                "this loop runs inside a trio program (sansloop.trio.open_loop()); "
                "run_forever() and run_until_complete() cannot block it"
            )
        if self._closed:
            run.close()
            raise RuntimeError("the trio driver is closed")
        trio.run(self._hosted_run, run, clock=self._clock)

    async def _hosted_run(self, run: Generator[float | None, None, None]) -> None:
        body_error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                # The watchers of the previous run ended with it.
                for table in (self._readers, self._writers):
                    for direction in table.values():
                        direction.scope = trio.CancelScope()
                        self._spawn_watcher(direction)
                try:
                    await self.drive(run)
                except BaseException as exc:
                    body_error = exc
                    raise
                finally:
                    self._token = None
                    self._nursery = None
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            sole = sole_exception(group)
            if sole is None:
                raise
            body_error = sole
        if body_error is not None:
            # One exception came out, wrapped by trio (perhaps more than once, when it reached
            # this task and a readiness task): raise it as it was.
            raise body_error

    def wake_from_trio(self) -> None:
        """Like :meth:`wakeup`, for trio code on the loop's thread (no system call)."""
        self._wake()

    def close(self) -> None:
        if self._closed:
            return
        if self._children is not None:
            # First: the reaper lets go of its pidfd readers through us.
            self._children.close()
        self._closed = True
        for table in (self._readers, self._writers):
            for direction in table.values():
                direction.scope.cancel()
            table.clear()
        for sig in list(self._signals):
            self.remove_signal(sig)
        self._hosted_signals.close()

    # -- driving --------------------------------------------------------------------------

    async def drive(
        self,
        run: Generator[float | None, None, None],
        started: Callable[[], object] | None = None,
    ) -> None:
        """Run the loop's iterations (``run``, from ``EventLoop._run_as_guest``) in this
        trio task until the loop stops; ``started()`` is called once the loop runs."""
        trio.lowlevel.add_instrument(self._instrument)
        self._finished = False
        try:
            timeout = next(run)
            self._run = run
            if started is not None:
                started()
            busy = 0
            while True:
                if timeout is not None and timeout <= 0.0 and busy < _BUSY_BATCHES:
                    # More is ready: run the next batch at once, a few times in a row,
                    # before letting trio's tasks and I/O in again.
                    busy += 1
                else:
                    busy = 0
                    await self._wait(timeout)
                    if self._finished:
                        # A readiness task ran the batch in which the loop stopped.
                        return
                try:
                    timeout = self._step()
                except StopIteration:
                    return
        except BaseException:
            # An exception escaped a callback (SystemExit, KeyboardInterrupt) or the task was
            # cancelled: nothing runs the loop's callbacks any more, so trio code waiting
            # for an asyncio future must not wait for one.
            self.broken = True
            self._release_waiters()
            raise
        finally:
            self._run = None
            run.close()
            self._release_parked()
            trio.lowlevel.remove_instrument(self._instrument)

    def _step(self) -> float | None:
        """Run one batch (resume the loop's iterations); StopIteration once it stopped."""
        assert self._run is not None
        # asyncio code runs now: libraries that ask sniffio must hear "asyncio".
        library = sniffio.thread_local
        previous, library.name = library.name, "asyncio"
        self._in_batch = True
        try:
            return self._run.send(None)
        finally:
            self._in_batch = False
            library.name = previous
            self._release_parked()

    def _run_batch_here(self) -> bool:
        """From a readiness task: run the batch now, in this task, if the loop's task is
        parked waiting (this saves two trio task steps per readiness report: waking the
        loop's task, and coming back to watch again).  Return whether it ran."""
        if self._sleeper is None or self._run is None or self._in_batch:
            return False
        try:
            # What the batch makes ready (a task woken by the data) runs here too, within
            # the same limit as back-to-back batches in the loop's own task.
            timeout = self._step()
            for _ in range(_BUSY_BATCHES):
                if timeout is None or timeout > 0.0:
                    break
                timeout = self._step()
        except StopIteration:
            self._finished = True
            self._wake()
            return True
        except BaseException:
            self._finished = True
            raise
        if timeout is not None:
            if timeout <= 0.0:
                self._wake()
            else:
                assert self._core is not None
                when = self._core.next_deadline()
                if when is None or when - self.time() > timeout:
                    when = self.time() + timeout
                if when < self._deadline:
                    self._wake()
        return True

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for task, fut in waiters.items():
            if fut.done():
                trio.lowlevel.reschedule(task, outcome.capture(fut.result))
            else:
                error = RuntimeError("the asyncio loop stopped running (its driver task ended)")
                trio.lowlevel.reschedule(task, outcome.Error(error))

    async def _wait(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0.0:
            await trio.lowlevel.checkpoint()
            return
        self._sleeper = trio.lowlevel.current_task()
        self._wake_requested = False
        try:
            if timeout is None:
                await trio.lowlevel.wait_task_rescheduled(self._abort_sleep)
            else:
                # Sleep until the timer itself (the loop's clock is trio's), not until
                # "now + timeout" read a little later; beyond the core's longest wait, for
                # that long.
                assert self._core is not None
                when = self._core.next_deadline()
                now = self.time()
                if when is None or when - now > timeout:
                    when = now + timeout
                self._deadline = when
                with trio.CancelScope(deadline=when):
                    await trio.lowlevel.wait_task_rescheduled(self._abort_sleep)
        finally:
            self._sleeper = None
            self._deadline = math.inf

    def _abort_sleep(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self._sleeper = None
        return _Abort.SUCCEEDED

    def _wake(self) -> None:
        self._wake_requested = False
        task = self._sleeper
        if task is not None:
            self._sleeper = None
            trio.lowlevel.reschedule(task)

    def _check_foreign_work(self) -> None:
        if self._sleeper is None or self._wake_requested or self._core is None:
            return
        core = self._core
        if not core.has_ready():
            deadline = core.next_deadline()
            if deadline is None or deadline >= self._deadline:
                return
        # Trio has already chosen how long to block: interrupt that through the token.
        self._wake_requested = True
        self.wakeup()

    async def _until_batch_ran(self) -> None:
        task = trio.lowlevel.current_task()
        self._parked.append(task)

        def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
            try:
                self._parked.remove(task)
            except ValueError:
                pass
            return _Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _release_parked(self) -> None:
        if self._parked:
            parked, self._parked = self._parked, []
            for task in parked:
                trio.lowlevel.reschedule(task)

    # -- readiness callbacks --------------------------------------------------------------

    def add_reader(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._set_handle(fd, handle, True)

    def remove_reader(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._set_handle(fd, None, True)

    def add_writer(self, fd: FileDescriptorLike, handle: asyncio.Handle) -> asyncio.Handle | None:
        return self._set_handle(fd, handle, False)

    def remove_writer(self, fd: FileDescriptorLike) -> asyncio.Handle | None:
        return self._set_handle(fd, None, False)

    def _set_handle(
        self, fd: FileDescriptorLike, handle: asyncio.Handle | None, reading: bool
    ) -> asyncio.Handle | None:
        if self._closed:
            raise RuntimeError("the trio driver is closed")
        table = self._readers if reading else self._writers
        direction = self._lookup(table, fd)
        if direction is None:
            if handle is not None:
                if self._push_ready is _not_attached:
                    _not_attached(handle)
                direction = self._open(table, _fileno(fd), fd, reading)
                direction.handle = handle
            return None
        old, direction.handle = direction.handle, handle
        if not direction.wanted():
            self._forget(table, direction)
        return old

    @staticmethod
    def _lookup(table: dict[int, _Direction], fd: FileDescriptorLike) -> _Direction | None:
        try:
            return table.get(_fileno(fd))
        except ValueError:
            # A closed file object is still found by identity, as with selectors.
            for direction in table.values():
                if direction.obj is fd:
                    return direction
            raise

    def _open(
        self, table: dict[int, _Direction], fd: int, obj: object, reading: bool
    ) -> _Direction:
        direction = table[fd] = _Direction(fd, obj, reading)
        self._spawn_watcher(direction)
        return direction

    def _spawn_watcher(self, direction: _Direction) -> None:
        # Hosted and between runs, the next run starts it.
        if self._nursery is not None:
            self._nursery.start_soon(
                self._watch, direction, name=f"sansloop watcher fd={direction.fd}"
            )

    def _forget(self, table: dict[int, _Direction], direction: _Direction) -> None:
        direction.scope.cancel()
        if table.get(direction.fd) is direction:
            del table[direction.fd]

    async def _watch(self, direction: _Direction) -> None:
        """The trio task of one direction: report readiness until nothing wants it."""
        wait = trio.lowlevel.wait_readable if direction.reading else trio.lowlevel.wait_writable
        table = self._readers if direction.reading else self._writers
        with direction.scope:
            while True:
                try:
                    await wait(direction.fd)
                except (OSError, trio.BusyResourceError, trio.ClosedResourceError) as exc:
                    self._failed(table, direction, exc)
                    return
                if self._ready(table, direction) and not self._run_batch_here():
                    await self._until_batch_ran()

    def _ready(self, table: dict[int, _Direction], direction: _Direction) -> bool:
        """The descriptor is ready: settle queued operations, push the handle (if any)."""
        queue = direction.ops
        woken = False
        while queue:
            op = queue[0]
            if op.fut.done() or ops.settle(op, False):
                queue.popleft()
                woken = True
            else:
                break
        pushed = False
        handle = direction.handle
        if handle is not None:
            if handle._cancelled:
                direction.handle = None
            else:
                self._push_ready(handle)
                pushed = True
        if pushed:
            # The caller runs the batch itself if the loop's task is parked, else wakes it.
            if self._sleeper is None:
                self._wake()
        elif woken:
            self._wake()
        if not direction.wanted():
            self._forget(table, direction)
        return pushed

    def _failed(
        self, table: dict[int, _Direction], direction: _Direction, exc: BaseException
    ) -> None:
        """Trio cannot watch the descriptor (closed behind our back, not pollable)."""
        self._forget(table, direction)
        for op in direction.ops:
            if not op.fut.done():
                if op.abandon is not None:
                    op.fut.remove_done_callback(op.abandon)
                op.fut.set_exception(exc)
        direction.ops.clear()
        if direction.handle is not None and self._loop is not None:
            self._loop.call_exception_handler(
                {
                    "message": f"the trio driver stopped watching file descriptor {direction.fd}",
                    "exception": exc,
                    "handle": direction.handle,
                }
            )
        self._wake()

    # -- socket operations ----------------------------------------------------------------

    def _start(self, op: ops.Op) -> None:
        fd = op.sock.fileno()
        table = self._readers if op.reading else self._writers
        direction = table.get(fd)
        if direction is not None:
            # Cancelled operations leave the queue one batch later: a new one must not
            # wait behind them (a connect would skip its first attempt).
            queue = direction.ops
            while queue and queue[0].fut.done():
                queue.popleft()
        # Behind operations already waiting in this direction, an attempt would jump the
        # queue (and interleave the bytes of two sendall() calls).
        if (direction is None or not direction.ops) and ops.settle(op, True):
            return
        if self._closed:
            op.fut.set_exception(RuntimeError("the trio driver is closed"))
            return
        if direction is None:
            direction = self._open(table, fd, op.sock, op.reading)
        direction.ops.append(op)
        op.abandon = functools.partial(self._abandon, table, direction, op)
        op.fut.add_done_callback(op.abandon)

    def _abandon(
        self,
        table: dict[int, _Direction],
        direction: _Direction,
        op: ops.Op,
        fut: asyncio.Future[Any],
    ) -> None:
        """``op``'s future was completed by someone else (cancelled): stop waiting for it."""
        try:
            direction.ops.remove(op)
        except ValueError:
            return
        if not direction.wanted():
            self._forget(table, direction)

    # -- streams and datagrams ------------------------------------------------------------

    def _attached_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the driver was never attached to a loop (call attach() first)")
        return self._loop

    def open_stream(self, sock: socket.socket, sink: StreamSink) -> ReadinessStream:
        return ReadinessStream(self, self._attached_loop(), sock, sink)

    def open_listener(
        self,
        sock: socket.socket,
        backlog: int,
        accepted: Callable[[socket.socket, Any], None],
        failed: Callable[[OSError], None],
    ) -> ReadinessListener:
        return ReadinessListener(self, self._attached_loop(), sock, backlog, accepted, failed)

    def open_datagram(self, sock: socket.socket, sink: DatagramSink) -> ReadinessDatagram:
        return ReadinessDatagram(self, self._attached_loop(), sock, sink)

    # -- pipes and child processes ---------------------------------------------------------

    def open_pipe(self, pipe: PipeLike, sink: PipeSink, write_end: bool) -> ReadinessPipe:
        """The selectors driver's pipe channel: it needs only add_reader/add_writer."""
        return ReadinessPipe(self, self._attached_loop(), pipe, sink, write_end)

    def watch_child(self, pid: int, exited: Callable[[int | None], object]) -> None:
        """Children are reaped as on the selectors driver: a pidfd watched through trio's
        ``wait_readable`` where the kernel has pidfds, else a waiter thread per child."""
        loop = self._attached_loop()
        if sys.platform == "win32":
            raise NotImplementedError("the trio driver cannot watch processes on Windows")
        if self._children is None:
            self._children = ChildReaper(self, loop)
        self._children.watch(pid, exited)

    # -- signals --------------------------------------------------------------------------

    def add_signal(self, sig: int, deliver: Callable[[int], None]) -> None:
        if not self._guest:
            self._hosted_signals.add(sig, deliver)
            return
        watch = self._signals.get(sig)
        if watch is not None:
            watch.deliver = deliver
            return
        receiver = trio.open_signal_receiver(sig)
        try:
            # Entered here, not in the task, so the handler is in place on return.
            signals = receiver.__enter__()
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        watch = self._signals[sig] = _SignalWatch(receiver, deliver)
        assert self._nursery is not None  # a guest driver always has its nursery
        self._nursery.start_soon(
            self._deliver_signals, watch, signals, name=f"sansloop signal {sig}"
        )

    async def _deliver_signals(self, watch: _SignalWatch, signals: Any) -> None:
        with watch.scope:
            async for sig in signals:
                watch.deliver(sig)

    def remove_signal(self, sig: int) -> None:
        if not self._guest:
            self._hosted_signals.remove(sig)
            return
        watch = self._signals.pop(sig, None)
        if watch is not None:
            watch.scope.cancel()
            watch.receiver.__exit__(None, None, None)


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception object every leaf of ``group`` is, or None."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if leaves and all(leaf is leaves[0] for leaf in leaves):
        return leaves[0]
    return None


def _forget_trio_run_after_fork() -> None:
    """A child forked inside a trio run (a process pool started from an asyncio callback)
    inherits the run in its thread-local state, and trio would refuse to start one there."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT
    except ImportError:  # pragma: no cover - trio moved its internals
        return
    for name in ("runner", "task"):
        try:
            delattr(GLOBAL_RUN_CONTEXT, name)
        except AttributeError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_trio_run_after_fork)


async def await_future(fut: asyncio.Future[Any], driver: TrioDriver) -> Any:
    """Wait, in trio, for an asyncio future of ``driver``'s loop; return or raise its outcome.

    Cancelling the trio scope cancels the future (a task gets ``CancelledError`` thrown in)
    and waits for it to finish: if it ends cancelled, ``trio.Cancelled`` is raised;
    otherwise its own outcome is (the cancellation is not lost: trio raises it again at the
    next checkpoint).
    """
    if fut.done():
        await trio.lowlevel.checkpoint()
        return fut.result()
    if driver.broken:
        raise RuntimeError("the asyncio loop stopped running (its driver task ended)")
    task = trio.lowlevel.current_task()
    raise_cancel: Callable[[], Any] | None = None
    waiters = driver._waiters

    def done(fut: asyncio.Future[Any]) -> None:
        if waiters.pop(task, None) is not None:
            trio.lowlevel.reschedule(task, outcome.capture(fut.result))

    def abort(raise_cancel_arg: Callable[[], Any]) -> trio.lowlevel.Abort:
        nonlocal raise_cancel
        raise_cancel = raise_cancel_arg
        fut.cancel()
        driver.wake_from_trio()
        # Wait for the future to end, as its cancellation may take time, unless nothing
        # runs the loop any more.
        if driver.broken:
            waiters.pop(task, None)
            return _Abort.SUCCEEDED
        return _Abort.FAILED

    waiters[task] = fut
    fut.add_done_callback(done)
    driver.wake_from_trio()
    try:
        return await trio.lowlevel.wait_task_rescheduled(abort)
    except asyncio.CancelledError:
        if raise_cancel is not None:
            raise_cancel()
        raise


if TYPE_CHECKING:

    def _meets_the_contract(
        driver: TrioDriver,
    ) -> tuple[
        SignalDriver,
        ReadinessDriver,
        SocketDriver,
        StreamDriver,
        DatagramDriver,
        PipeDriver,
        ChildDriver,
    ]:
        # mypy checks TrioDriver against every capability it claims.
        return driver, driver, driver, driver, driver, driver, driver
