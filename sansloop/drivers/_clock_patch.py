"""Virtual time for code that reads clocks itself: ``time.monotonic()``, ``datetime.now()``.

Theory of operation
-------------------

Opt-in, with ``VirtualClock(patch_clocks=True)``.  While a loop on such a clock is open,
the ``time`` module's clock functions are replaced by stand-ins, and the ``datetime``
module's ``datetime`` name answers with a stand-in class.  Each stand-in first asks *is the
running loop of the calling thread a loop whose clock is patched?*  If so it answers from
that loop's virtual clock; otherwise it calls the function it replaced.  The last patched
loop to close puts everything back.

Who sees virtual time.  Code running *in* the loop (its callbacks and tasks) does: that is
the code whose clock jumps.  Every other thread sees real time, executor jobs included,
because the clock is *held* while a job runs (the idle rule): virtual time stands still in
every job, so a job that polls ``time.monotonic()`` until a deadline would spin forever
while ``time.sleep()`` in it takes real time.  Real event loops in other threads keep the
real clock too: asyncio's ``BaseEventLoop.time()`` calls ``time.monotonic()``, and
patching that process-wide is how freezegun 1.1 and time-machine 2.13 hung real loops.
(looptime fakes only ``loop.time()`` and patches no module; time-machine and freezegun
patch every thread.)  The loop's own thread outside a run (between two
``run_until_complete`` calls) sees real time as well: no loop runs there.

Which clock.  ``time.monotonic()``, ``time.perf_counter()`` and their ``_ns`` forms are
``loop.time()`` exactly (the clock's integer nanoseconds).  Wall time (``time.time()``,
``time.time_ns()``, ``datetime.now()``/``utcnow()``/``today()``, ``date.today()``, and
``time.localtime()``/``gmtime()``/``ctime()``/``asctime()``/``strftime()`` without a time
argument) is ``wall_origin`` plus the virtual time elapsed since the clock's origin, also
in integer nanoseconds: wall minus monotonic is constant for the clock's whole life, across
loops that share it.  ``wall_origin`` defaults to the real wall time when the clock is made.

References taken before.  The stand-ins live in the modules: ``time.monotonic()`` reaches
them, a reference taken earlier (``from time import monotonic``) keeps the real clock.  For
the standard library that is what must happen: ``threading`` and ``queue`` took
``monotonic`` at import, and their timeouts must stay real.  For modules of your own, list
them (``patch_modules=("app.retry",)``): their names bound to a real clock function or to
``datetime.datetime`` are rebound to the stand-ins while the loop is open.
``date.today()`` and ``datetime.today()`` need no help: they call ``time.time`` through
the module.  A stand-in bound somewhere while patched (a module first imported in a patched
run) keeps working after the patch ends, as the function it replaced.

``datetime.datetime``.  The class is immutable, so the *name* changes: the ``datetime``
module's type is swapped for a subclass of ``ModuleType`` whose attribute lookup gives
patched runs a stand-in subclass of ``datetime`` (and every other thread the real class).
Its constructor and class methods return real ``datetime`` objects, ``isinstance`` and
``issubclass`` treat it as the real class, and ``pickle``/``copy`` of datetimes work (a
``copyreg`` reducer names the class the calling thread sees).  What differs, in patched
runs only: ``datetime.datetime is type(datetime.datetime.now())`` is False.

Not patched: ``time.sleep()`` (it blocks the loop in real time, as it always does),
``time.clock_gettime()``, CPU clocks (``process_time``, ``thread_time``), and extension
modules that read the system clock in C.  In a patched run time moves only when the loop
goes idle, so blocking code on the loop's thread that waits in real time until a patched
clock passes a deadline (``concurrent.futures.as_completed(timeout=...)``, a hand-written
poll loop) waits until its work is done, not until the deadline.
"""

from __future__ import annotations

import copyreg
import datetime as _dt
import importlib
import math
import sys
import threading
import time
import types
import warnings
from asyncio import AbstractEventLoop
from asyncio import events as _events
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, Final, Protocol

__all__ = ["ClockPatch", "WallOrigin"]

_NS: Final = 1_000_000_000
_REAL_DATETIME = _dt.datetime
_EPOCH: Final = _REAL_DATETIME(1970, 1, 1, tzinfo=_dt.UTC)
_running_loop: Final = _events._get_running_loop

#: What ``wall_origin`` accepts: epoch seconds, or a datetime (naive means local time).
WallOrigin = float | _dt.datetime | None


class _Clock(Protocol):
    """What a patch reads: the virtual clock's time (``VirtualClock`` has it)."""

    @property
    def now_ns(self) -> int: ...

    def time(self) -> float: ...


# -- which loops are patched -----------------------------------------------------------------

#: Open patched loops, by ``id()``, and their patches.  Read without the lock (a dict lookup
#: is atomic), changed under it.  Keyed by id so that a loop dropped unclosed can still be
#: collected: its ``__del__`` closes it, which stops its patch before the id can be reused.
_active: dict[int, ClockPatch] = {}
_lock = threading.Lock()


def _current() -> ClockPatch | None:
    """The patch of the loop running in this thread, if it is patched."""
    return _active.get(id(_running_loop()))


class ClockPatch:
    """One virtual clock's view of the process clocks; active while its loop is open.

    The virtual driver makes one for ``VirtualClock(patch_clocks=True)``, starts it when
    a loop attaches to the clock and stops it when that loop closes.
    """

    __slots__ = ("_clock", "_loop", "_modules", "_wall_offset_ns")

    def __init__(
        self, clock: _Clock, *, wall_origin: WallOrigin = None, modules: Iterable[str] = ()
    ) -> None:
        wall_ns = time.time_ns() if wall_origin is None else _wall_ns(wall_origin)
        if isinstance(modules, str):
            raise TypeError(f"patch_modules takes a sequence of module names, not {modules!r}")
        names = tuple(modules)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"patch_modules takes module names, not {name!r}")
        self._clock = clock
        self._wall_offset_ns = wall_ns - clock.now_ns
        self._modules = tuple(importlib.import_module(name) for name in names)
        self._loop: int | None = None

    @property
    def wall_ns(self) -> int:
        """The virtual wall time in integer nanoseconds since the epoch."""
        return self._clock.now_ns + self._wall_offset_ns

    @property
    def active(self) -> bool:
        return self._loop is not None

    def start(self, loop: AbstractEventLoop) -> None:
        """Patch the clocks for code running in ``loop`` (until :meth:`stop`)."""
        with _lock:
            if self._loop is not None:
                raise RuntimeError("this clock patch is already active")
            if not _active:
                _install()
            key = id(loop)
            _active[key] = self
            self._loop = key
            for module in self._modules:
                _rebind(module)

    def stop(self) -> None:
        """Undo :meth:`start`; the last active patch restores the modules.  Idempotent."""
        with _lock:
            key, self._loop = self._loop, None
            if key is None or _active.get(key) is not self:
                return
            del _active[key]
            if not _active:
                _uninstall()


def _wall_ns(origin: float | _dt.datetime) -> int:
    if isinstance(origin, _dt.datetime):
        aware = origin if origin.tzinfo is not None else origin.astimezone()
        return (aware - _EPOCH) // _dt.timedelta(microseconds=1) * 1000
    if isinstance(origin, bool) or not isinstance(origin, int | float):
        raise TypeError(f"wall_origin must be epoch seconds or a datetime, not {origin!r}")
    if isinstance(origin, float) and not math.isfinite(origin):
        raise ValueError(f"wall_origin must be finite, got {origin!r}")
    value = Fraction(origin) if isinstance(origin, int) else Fraction(float(origin))
    return round(value * _NS)


# -- the stand-ins ---------------------------------------------------------------------------


def _float_clock(real: Callable[[], float]) -> Callable[[], float]:
    def clock() -> float:
        patch = _current()
        return real() if patch is None else patch._clock.time()

    return clock


def _ns_clock(real: Callable[[], int]) -> Callable[[], int]:
    def clock_ns() -> int:
        patch = _current()
        return real() if patch is None else patch._clock.now_ns

    return clock_ns


def _wall_clock(real: Callable[[], float]) -> Callable[[], float]:
    def wall() -> float:
        patch = _current()
        return real() if patch is None else patch.wall_ns / _NS

    return wall


def _wall_clock_ns(real: Callable[[], int]) -> Callable[[], int]:
    def wall_ns() -> int:
        patch = _current()
        return real() if patch is None else patch.wall_ns

    return wall_ns


def _seconds_default(real: Callable[..., Any]) -> Callable[..., Any]:
    """``localtime``/``gmtime``/``ctime``: ``secs=None`` (or omitted) means virtual now."""

    def convert(secs: float | None = None, /) -> Any:
        if secs is None:
            patch = _current()
            if patch is not None:
                secs = patch.wall_ns / _NS
        return real(secs)

    return convert


_NO_TUPLE: Final[Any] = object()


def _strftime(real: Callable[..., str]) -> Callable[..., str]:
    def strftime(format: str, t: Any = _NO_TUPLE, /) -> str:
        if t is _NO_TUPLE:
            patch = _current()
            if patch is None:
                return real(format)
            t = time.localtime(patch.wall_ns / _NS)
        return real(format, t)

    return strftime


def _asctime(real: Callable[..., str]) -> Callable[..., str]:
    def asctime(t: Any = _NO_TUPLE, /) -> str:
        if t is _NO_TUPLE:
            patch = _current()
            if patch is None:
                return real()
            t = time.localtime(patch.wall_ns / _NS)
        return real(t)

    return asctime


_TIME_STAND_INS: Final[dict[str, Callable[[Any], Callable[..., Any]]]] = {
    "monotonic": _float_clock,
    "perf_counter": _float_clock,
    "monotonic_ns": _ns_clock,
    "perf_counter_ns": _ns_clock,
    "time": _wall_clock,
    "time_ns": _wall_clock_ns,
    "localtime": _seconds_default,
    "gmtime": _seconds_default,
    "ctime": _seconds_default,
    "strftime": _strftime,
    "asctime": _asctime,
}


def _utc_now(patch: ClockPatch) -> _dt.datetime:
    """The virtual wall time as an aware UTC datetime (microseconds rounded half-even)."""
    micros, rest = divmod(patch.wall_ns, 1000)
    if rest > 500 or (rest == 500 and micros % 2):
        micros += 1
    return _EPOCH + _dt.timedelta(microseconds=micros)


def _warn_utcnow() -> None:
    if sys.version_info >= (3, 12):
        warnings.warn(
            "datetime.datetime.utcnow() is deprecated and scheduled for removal in a future "
            "version. Use timezone-aware objects to represent datetimes in UTC: "
            "datetime.datetime.now(datetime.UTC).",
            DeprecationWarning,
            stacklevel=3,
        )


class _DatetimeType(type):
    """The stand-in class counts as the real ``datetime`` for isinstance/issubclass.

    Subclasses made from the stand-in (a module first imported in a patched run subclassing
    ``datetime.datetime``) keep the ordinary checks.
    """

    def __instancecheck__(cls, obj: object) -> bool:
        if cls is _Datetime:
            return isinstance(obj, _REAL_DATETIME)
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        if cls is _Datetime:
            return issubclass(sub, _REAL_DATETIME)
        return type.__subclasscheck__(cls, sub)


class _Datetime(_REAL_DATETIME, metaclass=_DatetimeType):
    """``datetime.datetime`` in patched runs: real datetimes, virtual ``now``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Datetime:
        if cls is _Datetime:
            # Not an instance of cls, so Python returns it as is: callers get real datetimes.
            return _REAL_DATETIME(*args, **kwargs)  # type: ignore[return-value]
        return _REAL_DATETIME.__new__(cls, *args, **kwargs)

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _Datetime:
        patch = _current()
        if patch is None:
            return super().now(tz)
        if tz is not None and not isinstance(tz, _dt.tzinfo):
            raise TypeError(
                f"tzinfo argument must be None or of a tzinfo subclass, not type "
                f"'{type(tz).__name__}'"
            )
        utc = _utc_now(patch)
        if tz is None:
            return cls._made(utc.astimezone().replace(tzinfo=None))
        return cls._made(tz.fromutc(utc.replace(tzinfo=tz)))

    @classmethod
    def utcnow(cls) -> _Datetime:
        _warn_utcnow()
        patch = _current()
        utc = _REAL_DATETIME.now(_dt.UTC) if patch is None else _utc_now(patch)
        return cls._made(utc.replace(tzinfo=None))

    @classmethod
    def _made(cls, value: _dt.datetime) -> _Datetime:
        """``value`` as the class asked for: real for the stand-in, else the subclass."""
        if cls is _Datetime:
            return value  # type: ignore[return-value]
        return cls(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            value.tzinfo,
            fold=value.fold,
        )


_Datetime.__module__ = _REAL_DATETIME.__module__
_Datetime.__qualname__ = _REAL_DATETIME.__qualname__


class _DatetimeModule(types.ModuleType):
    """The ``datetime`` module while patched: ``datetime`` names the stand-in in patched runs."""

    def __getattribute__(self, name: str) -> Any:
        if name == "datetime" and _current() is not None:
            return _Datetime
        return super().__getattribute__(name)


def _reduce_datetime(value: _dt.datetime) -> tuple[Any, ...]:
    """Pickle and copy datetimes under the class name the calling thread sees."""
    args = value.__reduce_ex__(4)[1]
    return (sys.modules["datetime"].datetime, args)


# -- installing and restoring ----------------------------------------------------------------

#: (namespace, name, what was there, the stand-in) for everything installed.
_installed: list[tuple[Any, str, Any, Any]] = []
_stand_ins: dict[int, Any] = {}  # id(real function or class) -> its stand-in, while installed
_module_swapped: list[types.ModuleType] = []
_reducer_installed: list[bool] = []


def _install() -> None:
    for name, make in _TIME_STAND_INS.items():
        real = getattr(time, name)
        stand_in = make(real)
        stand_in.__name__ = stand_in.__qualname__ = name
        stand_in.__doc__ = real.__doc__
        setattr(time, name, stand_in)
        _installed.append((time, name, real, stand_in))
        _stand_ins[id(real)] = stand_in
    _stand_ins[id(_REAL_DATETIME)] = _Datetime
    module = sys.modules.get("datetime")
    if module is not None and type(module) is types.ModuleType:
        module.__class__ = _DatetimeModule
        _module_swapped.append(module)
    if _REAL_DATETIME not in copyreg.dispatch_table:
        copyreg.pickle(_REAL_DATETIME, _reduce_datetime)
        _reducer_installed.append(True)


def _rebind(module: types.ModuleType) -> None:
    """Point ``module``'s names bound to a real clock (or ``datetime``) at the stand-ins."""
    for name, value in list(vars(module).items()):
        stand_in = _stand_ins.get(id(value))
        if stand_in is not None and stand_in is not value:
            setattr(module, name, stand_in)
            _installed.append((module, name, value, stand_in))


def _uninstall() -> None:
    # Only what is still ours goes back: a later patcher's work (mock.patch) stays.
    while _installed:
        namespace, name, real, stand_in = _installed.pop()
        if getattr(namespace, name, None) is stand_in:
            setattr(namespace, name, real)
    _stand_ins.clear()
    while _module_swapped:
        module = _module_swapped.pop()
        if type(module) is _DatetimeModule:
            module.__class__ = types.ModuleType  # type: ignore[assignment]
    if _reducer_installed:
        _reducer_installed.clear()
        if copyreg.dispatch_table.get(_REAL_DATETIME) is _reduce_datetime:
            del copyreg.dispatch_table[_REAL_DATETIME]
