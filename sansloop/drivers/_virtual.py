"""The virtual driver: integer-nanosecond virtual time that jumps when nothing can run.

Theory of operation
-------------------

``VirtualClock`` holds the time as an integer number of nanoseconds; ``time()`` returns it as
float seconds.  The loop drives the driver through the ordinary contract (``timeout``,
``wait``, ``run_ready``); ``wait(timeout)`` with a non-zero timeout means "the core has
nothing ready", and then the **idle rule** decides, exactly and without heuristics:

1. work was posted (``call_soon_threadsafe``) or ``wakeup()`` was called: return;
2. something outside the core can still post work: the clock is *held*, and the driver really
   blocks (on a ``threading.Condition``) until a wake-up or the last hold is released.
   Holds are: executor jobs in flight (the loop hands every ``run_in_executor`` job, hence
   ``asyncio.to_thread``, to :meth:`VirtualDriver.track_job`; a job releases its hold only
   after its result was posted back, so a virtual timeout can never win that race),
   registered threads (until they end), and explicit :meth:`VirtualClock.hold_time` holds;
3. otherwise the loop is idle at the current virtual time: controllers waiting for that
   (``advance``, ``run_until_idle``) resume, or the clock jumps to the next event, the
   earliest timer (read from the core's ``next_deadline()``) or an ``advance`` target;
4. nothing left at all: :class:`VirtualDeadlock` is raised, naming every pending task.

Landing on deadlines.  The integer is the truth and ``time()`` is always its float image,
``now_ns / 1e9`` correctly rounded.  A jump to a timer lands on the nanosecond *nearest* to
its ``when`` (not the next one above: float noise in ``when = time() + delay`` would then add
a nanosecond per sleep), so ``await asyncio.sleep(3600)`` moves the clock by exactly
3600 * 10**9 ns and ten thousand ``sleep(0.001)`` by exactly 10 s, with no drift.  The
timer is then due by the core's rule (``when < now + clock_resolution``, one nanosecond),
and ``loop.time()`` in its callback is within half a nanosecond of ``handle.when()`` (equal
whenever ``when`` is a whole number of nanoseconds).

Far from zero.  Past 2**23 s (97 days) of clock value a float's spacing exceeds 1 ns, and
``now + 1e-9 == now``: a timer at ``loop.time()`` would never be due and the loop would spin.
So the clock keeps the core's ``clock_resolution`` at least one float spacing of the time
it reaches (1 ns below 2**23 s, 238 ns at an epoch-like 1.7e9 s), as a real clock's
resolution bounds how exactly asyncio can fire timers.

The control API, and why it looks like this
-------------------------------------------

The clock is the user's handle (``virtual_clock(loop)`` finds it; ``VirtualDriver(clock)``
lets a test make it first, with an ``origin`` and ``auto_advance``).  The driver is only the
loop's side of the contract, and will also carry the in-memory network.  Controls are
clock methods because they are about time, not about I/O.

``advance()``, ``advance_to_next_timer()``, ``run_until_idle()`` and ``step()`` work from
both sides of the loop.  Outside (the loop is not running) they run the loop themselves and
return when done; inside a coroutine on the loop they return an awaitable to ``await``
(forgetting the ``await`` gives Python's "never awaited" warning).  Both mean the same:
every event up to the target time happens at its own time, in order, and the call ends when
the loop is idle at the target.  With ``auto_advance=False`` the clock moves only through
these calls; an idle loop with nothing advancing it is a deadlock.

Leaks
-----

At the end of a run the clock reports what the program left behind (pending tasks,
executor jobs still running, exceptions never retrieved) instead of letting
``asyncio.run()`` cancel and wait for it silently; ``_leaks.py`` explains when "the end" is.
``leaks="warn"`` (the default) issues a :class:`VirtualLeakWarning`, ``"raise"`` raises
:class:`VirtualLeakError` from ``loop.close()`` (so from ``asyncio.run``), ``"ignore"``
does neither.  ``clock.leaks()`` returns the report at any moment, ``clock.check_leaks()``
also warns or raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import heapq
import itertools
import math
import threading
import weakref
from asyncio import events as _events
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import attrs

from sansloop.core import Scheduler

from ._clock_patch import ClockPatch, WallOrigin
from ._contract import (
    DatagramDriver,
    Driver,
    ReadinessDriver,
    RunObserver,
    SocketDriver,
    StreamDriver,
    WorkTrackingDriver,
)
from ._deadlock import VirtualDeadlock, waiting_tasks
from ._leaks import LeakMode, LeakReport, LeakWatch, check_mode, emit
from ._virtual_channels import VirtualIO, VirtualIOMethods, attach_io
from ._vnet import Exploration, VirtualNetwork

__all__ = [
    "CLOCK_RESOLUTION",
    "TimeHold",
    "VirtualClock",
    "VirtualDriver",
    "VirtualStatistics",
    "hold_time",
    "virtual_clock",
]

_NS: Final = 1_000_000_000
#: Timers this close to now are due: one virtual nanosecond.
CLOCK_RESOLUTION: Final = 1e-9

#: Which clock drives which loop (weakly, so neither keeps the other alive).
_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VirtualClock] = (
    weakref.WeakKeyDictionary()
)


def _to_ns(seconds: float) -> int:
    """The integer nanosecond nearest to the exact value of ``seconds`` (ties to even)."""
    num, den = float(seconds).as_integer_ratio()
    whole, rest = divmod(num * _NS, den)
    if 2 * rest > den or (2 * rest == den and whole % 2):
        whole += 1
    return whole


def _check_seconds(seconds: float, what: str) -> float:
    value = float(seconds)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {seconds!r}")
    return value


@attrs.frozen
class VirtualStatistics:
    """A snapshot of a virtual loop: its time and what could still run."""

    #: ``loop.time()``, and the same instant in integer nanoseconds.
    now: float
    now_ns: int
    #: Callbacks ready to run, live timers, cancelled timers still in the heap, posted work.
    ready: int
    timers: int
    cancelled_timers: int
    inbox: int
    #: The earliest live timer's deadline, or None.
    next_deadline: float | None
    #: Executor jobs, registered threads and explicit holds pinning the clock.
    holds: int
    auto_advance: bool


class TimeHold:
    """One hold on a virtual clock: while any exists, time does not jump.

    Taken by :meth:`VirtualClock.hold_time`; released by leaving its ``with`` block or by
    :meth:`release` (idempotent, from any thread).  A hold on no clock (``clock=None``, what
    :func:`hold_time` gives on a loop that is not virtual) does nothing.
    """

    __slots__ = ("__weakref__", "_clock", "_released")

    def __init__(self, clock: VirtualClock | None) -> None:
        self._clock = clock
        self._released = False
        if clock is not None:
            clock._acquire()

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        clock = self._clock
        if clock is None:
            self._released = True
            return
        with clock._cond:
            if self._released:
                return
            self._released = True
            clock._release()

    def __enter__(self) -> TimeHold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class _Completed:
    """What a control returns when it already ran: awaiting it does nothing."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_COMPLETED: Final = _Completed()


class VirtualClock:
    """Virtual time for one loop at a time, with holds, controls and deadlock detection.

    ``origin`` is the first value of ``loop.time()``.  The clock never goes backwards, also
    when a closed loop's clock is reused by a new loop (``VirtualDriver(clock)``).

    ``leaks`` says what the end of a run does with a non-empty :class:`LeakReport`:
    ``"warn"`` (the default), ``"raise"`` or ``"ignore"``.  Warning is the default because
    the virtual loop must be a drop-in: code that ``asyncio.run()`` accepts keeps its
    result, while a test-suite, which is where virtual time runs, still hears of the leak.
    pytest shows the warning with the test that caused it and ``filterwarnings = error`` (or
    ``-W error::ResourceWarning``) turns it into a failure; ``"raise"`` fails the run itself,
    for suites that want that without touching warning filters.  (Outside pytest Python
    ignores ``ResourceWarning`` unless ``-X dev`` or ``-W default`` is on, as it does for
    unclosed files.)

    ``patch_clocks=True`` makes ``time.monotonic()``, ``time.time()``, ``datetime.now()``
    and friends read this clock in code running in the loop, while the loop is open
    (``_clock_patch.py`` says who sees what); wall time starts at ``wall_origin`` (epoch
    seconds or a datetime; default: the real time now).  ``patch_modules`` names modules
    whose ``from time import monotonic``-style references are patched too.
    """

    def __init__(
        self,
        origin: float = 0.0,
        *,
        auto_advance: bool = True,
        leaks: LeakMode = "warn",
        patch_clocks: bool = False,
        wall_origin: WallOrigin = None,
        patch_modules: tuple[str, ...] | list[str] = (),
        seed: int = 0,
        real_io: bool = False,
        explore: Exploration | bool | None = None,
    ) -> None:
        origin = _check_seconds(origin, "origin")
        self._network = VirtualNetwork(self._read_now_ns, seed)
        self._network._on_trace_start = self._trace_callbacks
        if explore is True:
            explore = Exploration()
        #: What this clock perturbs from its seed (None: asyncio's order, unperturbed).
        self.exploration: Exploration | None = explore or None
        self._lateness_ns = 0
        if self.exploration is not None:
            self._lateness_ns = _to_ns(self.exploration.timer_lateness)
            self._network.jitter = self.exploration.network_jitter
            self._network.shuffle_io = self.exploration.io_order
            self._network.fault_rate = self.exploration.fault_rate
        #: Whether real file descriptors may be watched (the clock holds while they are).
        self.real_io = bool(real_io)
        # Set while the driver blocks on real I/O: makes that wait return.
        self._poke: Callable[[], None] | None = None
        self._leak_mode = check_mode(leaks)
        self._watch: LeakWatch | None = None
        self._now_ns = _to_ns(origin)
        self._now = self._now_ns / _NS  # always the float image of _now_ns
        self._auto_advance = bool(auto_advance)
        # Reentrant: a finalizer on the loop thread may call wakeup() while wait() holds it.
        self._cond = threading.Condition(threading.RLock())
        self._holds = 0
        self._woken = False
        # Controllers waiting for the loop to be idle at a time: (ns, seq, future).
        self._targets: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
        self._core: Scheduler | None = None
        self._clock_patch: ClockPatch | None = None
        if patch_clocks or patch_modules:
            self._clock_patch = ClockPatch(self, wall_origin=wall_origin, modules=patch_modules)
        elif wall_origin is not None:
            raise ValueError("wall_origin needs patch_clocks=True")

    def __repr__(self) -> str:
        return (
            f"<VirtualClock now={self._now!r} holds={self._holds} "
            f"auto_advance={self._auto_advance}>"
        )

    # -- time ------------------------------------------------------------------------------

    def time(self) -> float:
        """The virtual time in seconds: what ``loop.time()`` returns."""
        return self._now

    @property
    def now_ns(self) -> int:
        """The virtual time in integer nanoseconds."""
        return self._now_ns

    def _read_now_ns(self) -> int:
        return self._now_ns

    @property
    def network(self) -> VirtualNetwork:
        """The in-memory network of every loop this clock drives (see ``_vnet.py``)."""
        return self._network

    @property
    def seed(self) -> int:
        """The seed of the network's random source: a run replays from it."""
        return self._network.seed

    @property
    def auto_advance(self) -> bool:
        """Whether time jumps by itself when the loop is idle (else only ``advance`` moves it)."""
        return self._auto_advance

    @auto_advance.setter
    def auto_advance(self, value: bool) -> None:
        with self._cond:
            self._auto_advance = bool(value)
            self._cond.notify_all()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The open loop this clock drives, if any."""
        loop = self._loop() if self._loop is not None else None
        return None if loop is None or loop.is_closed() else loop

    @property
    def patches_clocks(self) -> bool:
        """Whether this clock patches ``time``/``datetime`` for code in its loop."""
        return self._clock_patch is not None

    @property
    def leak_mode(self) -> LeakMode:
        """``"warn"``, ``"raise"`` or ``"ignore"``: what the end of a run does with leaks."""
        return self._leak_mode

    @leak_mode.setter
    def leak_mode(self, mode: LeakMode) -> None:
        self._leak_mode = check_mode(mode)

    # -- leaks -----------------------------------------------------------------------------

    def leaks(self) -> LeakReport:
        """What the loop holds now that a finished run should not: pending tasks (except the
        caller's), executor jobs in flight and exceptions never retrieved so far.

        Call it from the loop's thread (inside a coroutine or while the loop is stopped).
        A future caught in a reference cycle is counted once the garbage collector freed it:
        call ``gc.collect()`` first to be sure (tasks need no collection).
        """
        watch = self._watch
        return watch.report() if watch is not None else LeakReport(now=self._now)

    def check_leaks(self) -> LeakReport:
        """:meth:`leaks`, then warn or raise as :attr:`leak_mode` says; returns the report."""
        report = self.leaks()
        emit(report, self._leak_mode)
        return report

    # -- holds -----------------------------------------------------------------------------

    @property
    def holds(self) -> int:
        """How many holds pin the clock now (executor jobs, threads, ``hold_time``)."""
        return self._holds

    def hold_time(self) -> TimeHold:
        """Pin the clock until the returned hold is released (``with clock.hold_time(): ...``).

        For work the loop cannot see that will post back with ``call_soon_threadsafe``: while
        a hold exists the loop really waits instead of jumping.  Thread-safe.
        """
        return TimeHold(self)

    def register_thread(self, thread: threading.Thread) -> TimeHold:
        """Hold the clock until ``thread`` (already started) ends."""
        if thread.ident is None:
            raise RuntimeError("start the thread before registering it with the virtual clock")
        hold = TimeHold(self)
        watcher = threading.Thread(
            target=_release_after, args=(thread, hold), name=f"hold for {thread.name}", daemon=True
        )
        watcher.start()
        return hold

    def _acquire(self) -> None:
        with self._cond:
            self._holds += 1

    def _release(self) -> None:
        with self._cond:
            self._holds -= 1
            if not self._holds:
                self._cond.notify_all()

    # -- controls --------------------------------------------------------------------------

    def advance(self, seconds: float) -> Awaitable[None]:
        """Let ``seconds`` of virtual time pass, every event at its own time, then settle."""
        seconds = _check_seconds(seconds, "seconds")
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative time ({seconds!r} s)")
        return self._drive(self._advance_by(_to_ns(seconds)))

    def advance_to_next_timer(self) -> Awaitable[None]:
        """Settle, jump to the next live timer (if any), run what is due, settle again."""
        return self._drive(self._advance_to_next_timer())

    def run_until_idle(self) -> Awaitable[None]:
        """Run until nothing can happen without time passing (held work included)."""
        return self._drive(self._advance_by(0))

    def step(self) -> Awaitable[None]:
        """Run one loop iteration at the current time (inside: yield for one iteration)."""
        loop = self._require_loop()
        if loop.is_running():
            self._check_inside(loop)
            return asyncio.sleep(0)
        loop.stop()
        loop.run_forever()
        return _COMPLETED

    def statistics(self) -> VirtualStatistics:
        """What the loop holds and when it is (call from the loop's thread or while stopped)."""
        core = self._core
        if core is None:
            ready = timers = cancelled = inbox = 0
            deadline = None
        else:
            stats = core.statistics()
            ready, timers, cancelled, inbox = (
                stats.ready,
                stats.timers,
                stats.cancelled_timers,
                stats.inbox,
            )
            deadline = core.next_deadline()
        return VirtualStatistics(
            now=self._now,
            now_ns=self._now_ns,
            ready=ready,
            timers=timers,
            cancelled_timers=cancelled,
            inbox=inbox,
            next_deadline=deadline,
            holds=self._holds,
            auto_advance=self._auto_advance,
        )

    def _drive(self, coro: Coroutine[Any, Any, None]) -> Awaitable[None]:
        try:
            loop = self._require_loop()
            if loop.is_running():
                self._check_inside(loop)
                return coro
        except BaseException:
            coro.close()
            raise
        loop.run_until_complete(coro)
        return _COMPLETED

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None:
            raise RuntimeError("this VirtualClock drives no open event loop")
        return loop

    @staticmethod
    def _check_inside(loop: asyncio.AbstractEventLoop) -> None:
        if _events._get_running_loop() is not loop:
            raise RuntimeError(
                "the virtual loop is running in another thread: call clock controls from "
                "a coroutine on that loop (and await them), or while it is stopped"
            )

    async def _advance_by(self, ns: int) -> None:
        await self._idle_at(self._now_ns + ns)

    async def _advance_to_next_timer(self) -> None:
        await self._idle_at(self._now_ns)
        core = self._core
        deadline = core.next_deadline() if core is not None else None
        if deadline is not None:
            await self._idle_at(self._landing(deadline))

    def _idle_at(self, ns: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self._require_loop().create_future()
        heapq.heappush(self._targets, (ns, next(self._seq), fut))
        return fut

    # -- the driver's side -----------------------------------------------------------------

    def _attach(self, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
        current = self.loop
        if current is not None and current is not loop:
            raise RuntimeError(f"this VirtualClock already drives {current!r}; close it first")
        self._loop = weakref.ref(loop)
        self._core = core
        self._targets.clear()
        self._fit_resolution(self._now)
        _clocks[loop] = self
        # anyio's worker threads are not executor jobs: make them hold the clock too.
        from ._anyio_threads import watch_anyio_threads

        watch_anyio_threads()
        if self._clock_patch is not None:
            self._clock_patch.start(loop)
        self._trace_callbacks(loop)

    def _trace_callbacks(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """While the network records a trace, record every callback the loop runs too."""
        if loop is None:
            loop = self.loop
        observe = getattr(loop, "_observe_handles", None)
        if observe is not None and self._network.tracing:
            observe(self._record_callback)

    def _record_callback(self, handle: asyncio.Handle) -> None:
        self._network.record("callback", _describe_callback(handle), None)

    def _detach(self) -> None:
        if self._clock_patch is not None:
            self._clock_patch.stop()
        loop = self._loop() if self._loop is not None else None
        if loop is not None:
            _clocks.pop(loop, None)
        self._loop = None
        self._core = None
        self._targets.clear()

    def _wakeup(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()
            poke = self._poke
        if poke is not None:
            poke()

    def _wait_real(self, block: Callable[[], None], poke: Callable[[], None]) -> None:
        """The idle wait while real descriptors are watched: time holds still, and the
        driver blocks on them (``block``) until they are ready or the loop is woken."""
        core = self._core
        with self._cond:
            if self._woken or (core is not None and core.inbox):
                self._woken = False
                return
            self._poke = poke
        try:
            block()
        finally:
            with self._cond:
                self._poke = None
                self._woken = False

    def _wait(self) -> None:
        """The idle rule (see the module docstring): called when the core has nothing ready."""
        core = self._core
        if core is None:
            return
        with self._cond:
            while True:
                if self._woken:
                    self._woken = False
                    return
                # A job posts its result before it releases its hold: seeing no hold
                # below, and then an empty inbox, means nothing was posted.
                if self._holds:
                    self._cond.wait()
                    continue
                if core.inbox:
                    return
                break
            if self._wake_controllers():
                return
            landing = self._next_landing(core)
            if landing is not None:
                if landing > self._now_ns:
                    self._now_ns = landing
                    self._now = landing / _NS
                    self._fit_resolution(self._now)
                    if self._network._trace is not None:
                        self._network.record("time", None, None)
                return
        raise self._deadlock(core)

    def _wake_controllers(self) -> bool:
        """Resume every controller whose target time has come; True if any did."""
        targets = self._targets
        woke = False
        while targets and (targets[0][2].done() or targets[0][0] <= self._now_ns):
            fut = heapq.heappop(targets)[2]
            if not fut.done():
                fut.set_result(None)
                woke = True
        return woke

    def _next_landing(self, core: Scheduler) -> int | None:
        """Where time jumps next, in ns, or None if nothing moves it."""
        deadline = core.next_deadline()
        target = self._targets[0][0] if self._targets else None
        if target is None:
            if deadline is None or not self._auto_advance:
                return None
            return self._late(self._landing(deadline))
        if deadline is None:
            return target
        return min(self._late(self._landing(deadline)), target)

    def _late(self, landing: int) -> int:
        """``landing``, plus a seeded lateness when exploring."""
        if self._lateness_ns:
            landing += self._network.random.randint(0, self._lateness_ns)
        return landing

    def mark(self, label: str, detail: Any = None) -> None:
        """Add a ``("mark", label, detail)`` event to the network's trace (if recording),
        so determinism checks compare what the program itself observed too."""
        self._network.record("mark", label, detail)

    def _landing(self, when: float) -> int:
        """The nanosecond nearest ``when`` at which a timer due at ``when`` is due."""
        ns = _to_ns(when)
        resolution = self._fit_resolution(when)
        # A safety net: the resolution fitted to ``when`` makes the first try due.
        while not when < ns / _NS + resolution:
            ns += max(1, int(math.ulp(ns / _NS) * _NS))
        return ns

    def _fit_resolution(self, seconds: float) -> float:
        """Keep the core's resolution at least the float spacing at ``seconds``."""
        core = self._core
        if core is None:
            return CLOCK_RESOLUTION
        spacing = math.ulp(seconds)
        if spacing > core.clock_resolution:
            core.clock_resolution = spacing
        return core.clock_resolution

    def _deadlock(self, core: Scheduler) -> VirtualDeadlock:
        loop = self.loop
        timers = core.statistics().timers
        if timers:
            reason = (
                f"{timers} timer{'s are' if timers != 1 else ' is'} pending but the clock "
                "does not advance by itself (auto_advance=False) and no advance() runs"
            )
        else:
            reason = (
                "no callback is ready, no timer is pending and nothing holds the clock, so "
                "nothing can run again"
            )
        held = self._network.held_back()
        if held:
            reason += f"; the network holds {held} behind a partition (heal() would send it)"
        tasks = waiting_tasks(loop) if loop is not None else ()
        return VirtualDeadlock(self._now, reason, tasks)


def _describe_callback(handle: asyncio.Handle) -> str:
    """What a handle runs, the same in every run: ``step <coroutine>`` for a task's step or
    wake-up (task names count tasks process-wide, so they are left out), else the
    callback's qualified name."""
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"step {getattr(coro, '__qualname__', type(coro).__name__)}"
    while isinstance(callback, functools.partial):
        callback = callback.func
    return str(getattr(callback, "__qualname__", type(callback).__name__))


def _release_after(thread: threading.Thread, hold: TimeHold) -> None:
    try:
        thread.join()
    finally:
        hold.release()


class VirtualDriver(VirtualIOMethods):
    """The loop's side of virtual time: the driver contract, run by a :class:`VirtualClock`.

    It also carries the clock's in-memory network: stream, datagram and socket operations
    on virtual sockets (``_virtual_channels.py``).

    ``sansloop.new_event_loop(driver="virtual")`` makes one with a fresh clock; pass
    ``VirtualDriver(VirtualClock(origin=..., auto_advance=..., leaks=...))`` for more
    control.  ``leaks``, if given, sets the clock's :attr:`VirtualClock.leak_mode`.
    """

    clock_resolution: float = CLOCK_RESOLUTION

    def __init__(self, clock: VirtualClock | None = None, *, leaks: LeakMode | None = None) -> None:
        self._clock = clock if clock is not None else VirtualClock()
        if leaks is not None:
            self._clock.leak_mode = leaks
        self._attached = False
        self._closed = False
        self._watch: LeakWatch | None = None
        self._io = VirtualIO(self._clock.network, real_io=self._clock.real_io)
        self._core: Scheduler | None = None

    @property
    def clock(self) -> VirtualClock:
        return self._clock

    def time(self) -> float:
        return self._clock._now

    def wait(self, timeout: float | None) -> None:
        io = self._io
        if io._user_fds:
            # Ready virtual sockets first: the clock may only move when nothing is ready.
            io.poll()
            if timeout != 0.0 and self._core is not None and self._core.has_ready():
                return
        if timeout == 0.0:
            return
        selector = io.selector
        if selector.real_fds:
            # Real I/O is pending: the clock holds still while it is.
            self._clock._wait_real(selector.block, selector.poke)
        else:
            self._clock._wait()

    def wakeup(self) -> None:
        self._clock._wakeup()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._io.close()
            if self._attached:
                self._clock.network._attach(None)
                self._clock._detach()

    # -- optional hooks the compat loop calls ------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop, core: Scheduler) -> None:
        """Called once by the loop that owns this driver, with its scheduling core."""
        if self._closed or self._attached:
            raise RuntimeError("a VirtualDriver serves one loop; make a new one")
        self._clock._attach(loop, core)
        self._attached = True
        self._core = core
        attach_io(self._io, loop, core)
        clock = self._clock
        self._watch = clock._watch = LeakWatch(loop, clock.time, lambda: clock.leak_mode)

    @property
    def leak_watch(self) -> LeakWatch | None:
        """The loop's leak bookkeeping (see ``_leaks.py``); the loop calls its hooks."""
        return self._watch

    def track_job(self, job: concurrent.futures.Future[Any]) -> None:
        """Hold the clock until ``job`` is done (its result is posted back first)."""
        hold = TimeHold(self._clock)
        if self._watch is not None:
            self._watch.job_submitted(job)
        job.add_done_callback(lambda _job: hold.release())

    def track_thread(self, thread: threading.Thread) -> None:
        """Hold the clock until ``thread`` ends."""
        self._clock.register_thread(thread)


def virtual_clock(loop: asyncio.AbstractEventLoop | None = None) -> VirtualClock:
    """The clock of a loop on the virtual driver (default: the running loop)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    clock = _clocks.get(loop)
    if clock is None:
        raise TypeError(f"{loop!r} does not run on sansloop's virtual driver")
    return clock


def hold_time(loop: asyncio.AbstractEventLoop | None = None) -> TimeHold:
    """Pin the loop's clock if it is virtual; a hold that does nothing on any other loop.

    For code that must run the same under real and virtual time.  Take the hold on the
    loop's thread *before* handing work away, and release it after the work posted back::

        hold = sansloop.drivers.hold_time()
        def work() -> None:
            try:
                loop.call_soon_threadsafe(done.set_result, compute())
            finally:
                hold.release()
        threading.Thread(target=work).start()
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    return TimeHold(_clocks.get(loop))


if TYPE_CHECKING:

    def _meets_the_contract(
        driver: VirtualDriver, watch: LeakWatch
    ) -> tuple[
        Driver,
        WorkTrackingDriver,
        RunObserver,
        ReadinessDriver,
        SocketDriver,
        StreamDriver,
        DatagramDriver,
    ]:
        """mypy checks that the virtual driver and its leak watch meet their Protocols."""
        return driver, driver, watch, driver, driver, driver, driver
