"""Model-based test of :class:`sansloop.core.Scheduler`.

A Hypothesis ``RuleBasedStateMachine`` drives the real scheduler and a naive reference model side
by side: the model keeps a plain list of ready callbacks, a plain list of posted callbacks and a
plain sorted list of timers keyed ``(when, seq)``, and re-implements asyncio's ``_run_once`` rules
in the most obvious way (including the purge of cancelled timers, whose thresholds decide which
timers are still "in the heap" and so which ``_scheduled`` flags and statistics are right).

What each batch runs is predicted by the model *before* the real scheduler runs it and must
match exactly, in order.  The model's prediction never depends on purging (cancelled handles
simply never run), so equality also shows that heap purges and rebuilds don't change what runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from sansloop.core import MAXIMUM_TIMEOUT, Callback, Scheduler, SchedulerStatistics

# asyncio's purge thresholds (base_events._MIN_SCHEDULED_TIMER_HANDLES and
# _MIN_CANCELLED_TIMER_HANDLES_FRACTION), restated here on purpose: the model is independent.
_MIN_SCHEDULED = 100
_MIN_CANCELLED_FRACTION = 0.5

# Deadlines are now + one of these: few distinct values, so equal deadlines are common; some are
# already due, one is beyond MAXIMUM_TIMEOUT (clamping), one is sub-resolution.
_DELAYS = [-1.0, 0.0, 0.0, 0.0004, 0.25, 0.5, 1.0, 1.0, 2.0, MAXIMUM_TIMEOUT * 3]
delays = st.sampled_from(_DELAYS)

# What a callback does when it runs.  ("soon", child effects), ("at", delay), ("post",),
# ("cancel", index into the handles pushed so far).
Effect = tuple[Any, ...]
leaf_effects = st.lists(
    st.one_of(
        st.just(("soon", ())),
        st.tuples(st.just("at"), delays),
        st.just(("post",)),
        st.tuples(st.just("cancel"), st.integers(min_value=0)),
    ),
    max_size=2,
)
effects = st.one_of(
    st.just(()),
    st.lists(
        st.one_of(
            leaf_effects.map(lambda child: ("soon", tuple(child))),
            st.tuples(st.just("at"), delays),
            st.just(("post",)),
            st.tuples(st.just("cancel"), st.integers(min_value=0)),
        ),
        max_size=3,
    ).map(tuple),
)


class FakeHandle:
    """A handle of asyncio's shape: it records its id into a shared trace, then acts.

    ``actions`` are resolved when the handle is created (children are created then, cancel
    targets are chosen then), so the model and the real run refer to the very same objects.
    """

    __slots__ = ("_cancelled", "_scheduled", "_when", "actions", "hid", "is_timer", "world")

    def __init__(self, world: SchedulerMachine, hid: int, is_timer: bool) -> None:
        self._cancelled = False
        self._scheduled = False
        self._when = float("nan")
        self.hid = hid
        self.is_timer = is_timer
        self.world = world
        self.actions: tuple[tuple[str, Any], ...] = ()

    def _run(self) -> None:
        self.world.trace.append(self.hid)
        for action in self.actions:
            self.world.apply_real(action)

    def __repr__(self) -> str:
        kind = "T" if self.is_timer else "H"
        return f"<{kind}{self.hid}>"


class Model:
    """The naive reference: plain lists, linear scans, no counters."""

    def __init__(self, clock_resolution: float) -> None:
        self.clock_resolution = clock_resolution
        self.ready: list[FakeHandle] = []
        self.inbox: list[FakeHandle] = []
        # Sorted list of (when, seq, hid); handles looked up in by_hid.
        self.timers: list[tuple[float, int, int]] = []
        self.by_hid: dict[int, FakeHandle] = {}
        self.cancelled: set[int] = set()
        self.seq = 0
        self.sleeping = False
        self.rebuilds = 0

    # inputs

    def push_ready(self, handle: FakeHandle) -> None:
        self.ready.append(handle)

    def push_timer(self, handle: FakeHandle, when: float) -> None:
        bisect.insort(self.timers, (when, self.seq, handle.hid))
        self.seq += 1

    def post(self, handle: FakeHandle) -> bool:
        """The first post to find the loop asleep claims the wake-up (clears the flag)."""
        self.inbox.append(handle)
        woke, self.sleeping = self.sleeping, False
        return woke

    def cancel(self, handle: FakeHandle) -> None:
        self.cancelled.add(handle.hid)

    # queries

    def in_heap(self) -> set[int]:
        return {hid for _, _, hid in self.timers}

    def cancelled_in_heap(self) -> int:
        return sum(1 for _, _, hid in self.timers if hid in self.cancelled)

    def statistics(self) -> SchedulerStatistics:
        cancelled = self.cancelled_in_heap()
        return SchedulerStatistics(
            ready=len(self.ready),
            timers=len(self.timers) - cancelled,
            cancelled_timers=cancelled,
            inbox=len(self.inbox),
        )

    # one iteration

    def _drop_cancelled_head(self) -> None:
        while self.timers and self.timers[0][2] in self.cancelled:
            del self.timers[0]

    def timeout(self, now: float, stopping: bool) -> float | None:
        count = len(self.timers)
        if count > _MIN_SCHEDULED and self.cancelled_in_heap() / count > _MIN_CANCELLED_FRACTION:
            self.timers = [entry for entry in self.timers if entry[2] not in self.cancelled]
            self.rebuilds += 1
            hypothesis.event("timer heap rebuilt")
        else:
            self._drop_cancelled_head()
        if self.ready or self.inbox or stopping:
            return 0.0
        if not self.timers:
            return None
        return min(max(self.timers[0][0] - now, 0.0), MAXIMUM_TIMEOUT)

    def next_deadline(self) -> float | None:
        self._drop_cancelled_head()
        return self.timers[0][0] if self.timers else None

    def batch(self, now: float) -> list[FakeHandle]:
        """Take one batch off the queues: posted work, the current ready queue, due timers."""
        self.ready.extend(self.inbox)
        self.inbox.clear()
        end = now + self.clock_resolution
        while self.timers and self.timers[0][0] < end:
            self.ready.append(self.by_hid[self.timers.pop(0)[2]])
        batch, self.ready = self.ready, []
        return batch


class SchedulerMachine(RuleBasedStateMachine):
    """The real scheduler and the model, fed the same inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[int] = []
        self.handles: list[FakeHandle] = []
        # Handles that have been pushed (ready, timer or inbox) at least once: cancel targets.
        self.pushed: list[FakeHandle] = []
        self.now = 0.0
        self.sched = Scheduler(0.0)
        self.model = Model(0.0)
        self.timer_cancel_first = False

    @initialize(
        resolution=st.sampled_from([0.0, 0.001, 0.5]),
        start=st.sampled_from([0.0, 1000.0]),
        timer_cancel_first=st.booleans(),
    )
    def setup(self, resolution: float, start: float, timer_cancel_first: bool) -> None:
        self.sched = Scheduler(resolution)
        self.model = Model(resolution)
        self.now = start
        # asyncio's TimerHandle.cancel reports to the loop *before* setting _cancelled; the
        # brief for this test says after.  The core must not care: try both.
        self.timer_cancel_first = timer_cancel_first

    # -- helpers -------------------------------------------------------------------------

    def new_handle(self, is_timer: bool, spec: tuple[Effect, ...] = ()) -> FakeHandle:
        handle = FakeHandle(self, len(self.handles), is_timer)
        self.handles.append(handle)
        self.model.by_hid[handle.hid] = handle
        actions: list[tuple[str, Any]] = []
        for effect in spec:
            kind = effect[0]
            if kind == "soon":
                actions.append(("soon", self.new_handle(False, effect[1])))
            elif kind == "at":
                actions.append(("at", (self.new_handle(True), effect[1])))
            elif kind == "post":
                actions.append(("post", self.new_handle(False)))
            elif self.pushed:
                actions.append(("cancel", self.pushed[effect[1] % len(self.pushed)]))
        handle.actions = tuple(actions)
        return handle

    def cancel_real(self, handle: FakeHandle) -> None:
        """What ``Handle.cancel``/``TimerHandle.cancel`` do to the core."""
        if handle._cancelled:
            return
        if handle.is_timer and self.timer_cancel_first:
            self.sched.timer_cancelled(handle)
            handle._cancelled = True
        else:
            handle._cancelled = True
            if handle.is_timer:
                self.sched.timer_cancelled(handle)

    def apply_real(self, action: tuple[str, Any]) -> None:
        kind, arg = action
        if kind == "soon":
            self.sched.push_ready(arg)
        elif kind == "at":
            timer, delay = arg
            timer._when = self.now + delay
            self.sched.push_timer(timer)
        elif kind == "post":
            self.sched.inbox.post(arg)
        else:
            self.cancel_real(arg)

    def apply_model(self, action: tuple[str, Any]) -> None:
        kind, arg = action
        if kind == "soon":
            self.model.push_ready(arg)
            self.pushed.append(arg)
        elif kind == "at":
            timer, delay = arg
            self.model.push_timer(timer, self.now + delay)
            self.pushed.append(timer)
        elif kind == "post":
            self.model.post(arg)
            self.pushed.append(arg)
        else:
            self.model.cancel(arg)

    def predict_batch(self) -> list[int]:
        """Run one batch in the model: which handles run, in which order."""
        self.model.sleeping = False  # A batch means the loop is awake.
        expected = []
        for handle in self.model.batch(self.now):
            if handle.hid in self.model.cancelled:
                continue
            expected.append(handle.hid)
            for action in handle.actions:
                self.apply_model(action)
        return expected

    def run_batch(self, use_runner: bool) -> None:
        expected = self.predict_batch()
        self.trace.clear()
        runner: Callable[[Callback], None] | None = None
        via_runner: list[Callback] = []
        if use_runner:

            def runner(handle: Callback) -> None:
                via_runner.append(handle)
                handle._run()

        ran = self.sched.run_ready(self.now, runner)
        assert self.trace == expected
        assert ran == len(expected)
        if use_runner:
            assert [h.hid for h in via_runner] == expected  # type: ignore[attr-defined]

    def check_timeout(self, stopping: bool, sleep: bool = False) -> float | None:
        expected = self.model.timeout(self.now, stopping)
        if sleep and expected != 0.0:
            # The sleep handshake: blocked only if nothing was posted.
            self.model.sleeping = not self.model.inbox
            if self.model.inbox:
                expected = 0.0
        got = self.sched.timeout(self.now, stopping, sleep)
        assert got == expected
        assert got is None or 0.0 <= got <= MAXIMUM_TIMEOUT
        return got

    # -- inputs --------------------------------------------------------------------------

    @rule(spec=effects)
    def call_soon(self, spec: tuple[Effect, ...]) -> None:
        handle = self.new_handle(False, spec)
        self.sched.push_ready(handle)
        self.model.push_ready(handle)
        self.pushed.append(handle)

    @rule(delay=delays, spec=effects)
    def call_at(self, delay: float, spec: tuple[Effect, ...]) -> None:
        handle = self.new_handle(True, spec)
        handle._when = self.now + delay
        self.sched.push_timer(handle)
        self.model.push_timer(handle, handle._when)
        self.pushed.append(handle)

    @rule(
        count=st.integers(min_value=_MIN_SCHEDULED - 20, max_value=_MIN_SCHEDULED + 40),
        pattern=st.lists(delays, min_size=1, max_size=4),
    )
    def call_at_many(self, count: int, pattern: list[float]) -> None:
        """Enough timers at once to cross the heap-rebuild threshold."""
        for i in range(count):
            self.call_at(pattern[i % len(pattern)], ())

    @rule(index=st.integers(min_value=0))
    def cancel(self, index: int) -> None:
        if not self.pushed:
            return
        handle = self.pushed[index % len(self.pushed)]
        self.cancel_real(handle)
        self.model.cancel(handle)

    @rule(fraction=st.sampled_from([0.3, 0.55, 0.9, 1.0]), offset=st.integers(0, 3))
    def cancel_many(self, fraction: float, offset: int) -> None:
        """Cancel a fraction of the timers in the heap, spread through it."""
        in_heap = sorted(self.model.in_heap())
        wanted = int(len(in_heap) * fraction)
        for hid in (in_heap[offset:] + in_heap[:offset])[:wanted]:
            handle = self.model.by_hid[hid]
            self.cancel_real(handle)
            self.model.cancel(handle)

    @rule(spec=effects)
    def post(self, spec: tuple[Effect, ...]) -> None:
        """``call_soon_threadsafe``: the handle goes through the inbox."""
        handle = self.new_handle(False, spec)
        expected = self.model.post(handle)
        assert self.sched.inbox.post(handle) is expected
        self.pushed.append(handle)

    @rule(index=st.integers(min_value=0))
    def io_ready(self, index: int) -> None:
        """A selector queues the same reader handle again (asyncio's ``_add_callback``)."""
        candidates = [h for h in self.pushed if not h.is_timer and not h.actions]
        if not candidates:
            return
        handle = candidates[index % len(candidates)]
        self.sched.push_ready(handle)
        self.model.push_ready(handle)

    @rule()
    def begin_sleep(self) -> None:
        expected = not self.model.inbox
        self.model.sleeping = expected
        assert self.sched.inbox.begin_sleep() is expected

    @rule()
    def end_sleep(self) -> None:
        self.model.sleeping = False
        self.sched.inbox.end_sleep()

    @rule(dt=st.sampled_from([0.0, 0.0004, 0.25, 1.0, 3.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    # -- iterations ----------------------------------------------------------------------

    @rule(stopping=st.booleans(), use_runner=st.booleans(), sleep=st.booleans())
    def step(self, stopping: bool, use_runner: bool, sleep: bool) -> None:
        """One loop iteration with no time passing while "waiting"."""
        self.check_timeout(stopping, sleep)
        self.run_batch(use_runner)

    @rule(use_runner=st.booleans())
    def sleep_step(self, use_runner: bool) -> None:
        """One iteration where the driver sleeps exactly as long as it was told."""
        timeout = self.check_timeout(False, sleep=True)
        if timeout is not None:
            self.now += timeout
        self.run_batch(use_runner)

    @rule()
    def run_without_timeout(self) -> None:
        self.run_batch(False)

    @rule()
    def next_deadline(self) -> None:
        assert self.sched.next_deadline() == self.model.next_deadline()

    @rule()
    def clear(self) -> None:
        self.sched.clear()
        self.model.ready.clear()
        self.model.inbox.clear()
        self.model.timers.clear()

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def statistics_match(self) -> None:
        assert self.sched.statistics() == self.model.statistics()

    @invariant()
    def has_ready_matches(self) -> None:
        assert self.sched.has_ready() == bool(self.model.ready or self.model.inbox)
        assert len(self.sched.inbox) == len(self.model.inbox)
        assert bool(self.sched.inbox) == bool(self.model.inbox)

    @invariant()
    def flags_match(self) -> None:
        in_heap = self.model.in_heap()
        for handle in self.handles:
            assert handle._cancelled == (handle.hid in self.model.cancelled), handle
            if handle.is_timer:
                assert handle._scheduled == (handle.hid in in_heap), handle


SchedulerMachine.TestCase.settings = hypothesis.settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
TestScheduler = SchedulerMachine.TestCase
