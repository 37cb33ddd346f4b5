"""Opt-in clock patching under the virtual driver: ``time`` and ``datetime`` read the virtual
clock in code running in the loop, real time everywhere else, and nothing is left behind."""

from __future__ import annotations

import asyncio
import copy
import copyreg
import datetime
import gc
import logging
import pickle
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import sansloop
from sansloop.drivers import VirtualClock, VirtualDriver, virtual_clock

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state", "clocks_restored")

_NS = 1_000_000_000
#: The real clock functions, taken before any patch.
REAL = {
    name: getattr(time, name)
    for name in (
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "time",
        "time_ns",
        "localtime",
        "gmtime",
        "ctime",
        "asctime",
        "strftime",
    )
}
REAL_DATETIME = datetime.datetime
UTC = datetime.UTC
#: 2030-01-01T00:00:00Z, a whole second: wall times below are exact.
WALL = 1_893_456_000


@pytest.fixture
def clocks_restored() -> Iterator[None]:
    """Every test ends with the real clocks in place (checked even if it failed)."""
    yield
    for name, real in REAL.items():
        assert getattr(time, name) is real, f"time.{name} is still patched"
    assert type(sys.modules["datetime"]) is types.ModuleType
    assert datetime.datetime is REAL_DATETIME
    assert REAL_DATETIME not in copyreg.dispatch_table


def _patched_loop(origin: float = 0.0, **options: Any) -> sansloop.EventLoop:
    options.setdefault("wall_origin", WALL)
    clock = VirtualClock(origin, patch_clocks=True, **options)
    return sansloop.new_event_loop(driver=VirtualDriver(clock))


def _run(coro: Coroutine[Any, Any, Any], **options: Any) -> Any:
    """Run ``coro`` on a fresh patched loop, closing it afterwards."""
    with asyncio.Runner(loop_factory=lambda: _patched_loop(**options)) as runner:
        return runner.run(coro)


def _between(read: Callable[[], float], real: Callable[[], float]) -> bool:
    """``read()`` is a real-clock reading: bracketed by two real readings."""
    before = real()
    value = read()
    after = real()
    return before <= value <= after


# -- the loop's own code sees virtual time ---------------------------------------------------


def test_monotonic_and_perf_counter_are_loop_time() -> None:
    async def main() -> list[tuple[float, ...]]:
        loop = asyncio.get_running_loop()
        clock = virtual_clock()
        seen: list[tuple[float, ...]] = []
        for _ in range(2):
            seen.append(
                (
                    loop.time(),
                    time.monotonic(),
                    time.perf_counter(),
                    time.monotonic_ns(),
                    time.perf_counter_ns(),
                    clock.now_ns,
                )
            )
            await asyncio.sleep(3600)
        return seen

    (t0, m0, p0, mns0, pns0, ns0), (t1, m1, p1, mns1, pns1, ns1) = _run(main(), origin=12.5)
    assert (t0, m0, p0) == (12.5, 12.5, 12.5)
    assert mns0 == pns0 == ns0 == 12_500_000_000
    assert (t1, m1, p1) == (3612.5, 3612.5, 3612.5)
    assert mns1 - mns0 == pns1 - pns0 == 3600 * _NS
    assert ns1 == mns1


def test_wall_clock_is_the_origin_plus_virtual_elapsed() -> None:
    async def main() -> list[tuple[Any, ...]]:
        seen = []
        for _ in range(2):
            seen.append(
                (
                    time.time(),
                    time.time_ns(),
                    datetime.datetime.now(UTC),
                    datetime.datetime.now(),
                    datetime.datetime.today(),
                    datetime.date.today(),
                )
            )
            await asyncio.sleep(3600)
        return seen

    (w0, ns0, utc0, local0, today0, date0), (w1, ns1, utc1, local1, today1, date1) = _run(
        main(), origin=100.0
    )
    assert (w0, ns0) == (WALL, WALL * _NS)
    assert w1 - w0 == 3600.0
    assert ns1 - ns0 == 3600 * _NS
    start = REAL_DATETIME(2030, 1, 1, tzinfo=UTC)
    assert (utc0, utc1) == (start, start + datetime.timedelta(hours=1))
    for naive, aware in ((local0, utc0), (local1, utc1), (today0, utc0), (today1, utc1)):
        assert type(naive) is REAL_DATETIME
        assert naive == aware.astimezone().replace(tzinfo=None)
    assert date0 == local0.date()
    assert date1 == local1.date()


def test_time_functions_without_a_time_argument_use_the_virtual_wall() -> None:
    async def main() -> tuple[Any, ...]:
        await asyncio.sleep(90)
        return (
            time.localtime(),
            time.gmtime(),
            time.ctime(),
            time.asctime(),
            time.strftime("%Y-%m-%d %H:%M:%S"),
            time.gmtime(0),  # an explicit argument is untouched
            time.localtime(None),
        )

    local, gm, ctime, asctime, formatted, epoch, local_none = _run(main())
    wall = WALL + 90
    assert local == local_none == REAL["localtime"](wall)
    assert gm == REAL["gmtime"](wall)
    assert ctime == REAL["ctime"](wall)
    assert asctime == REAL["asctime"](REAL["localtime"](wall))
    assert formatted == REAL["strftime"]("%Y-%m-%d %H:%M:%S", REAL["localtime"](wall))
    assert epoch == REAL["gmtime"](0)


def test_utcnow_is_virtual_and_deprecated_like_the_real_one() -> None:
    async def main() -> datetime.datetime:
        await asyncio.sleep(60)
        if sys.version_info >= (3, 12):
            with pytest.warns(DeprecationWarning, match="utcnow"):
                return datetime.datetime.utcnow()
        return datetime.datetime.utcnow()

    assert _run(main()) == REAL_DATETIME(2030, 1, 1, 0, 1)


def test_now_rejects_a_non_tzinfo_like_the_real_one() -> None:
    with pytest.raises(TypeError) as real:
        REAL_DATETIME.now(1)  # type: ignore[arg-type]

    async def main() -> None:
        datetime.datetime.now(1)  # type: ignore[arg-type]

    with pytest.raises(TypeError) as patched:
        _run(main())
    assert str(patched.value) == str(real.value)


def test_wall_origin_as_datetime_and_default() -> None:
    async def wall() -> int:
        return time.time_ns()

    aware = REAL_DATETIME(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert _run(wall(), wall_origin=aware) == int(aware.timestamp()) * _NS + 123_456_000
    naive = REAL_DATETIME(2031, 5, 6, 7, 8, 9)
    assert _run(wall(), wall_origin=naive) == int(naive.timestamp()) * _NS
    # By default the wall clock starts at the real wall time of the clock's creation.
    before = REAL["time_ns"]()
    clock = VirtualClock(5.0, patch_clocks=True)
    after = REAL["time_ns"]()
    loop = sansloop.new_event_loop(driver=VirtualDriver(clock))
    try:
        start = loop.run_until_complete(wall())
    finally:
        loop.close()
    assert before <= start <= after


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="patch_clocks"):
        VirtualClock(wall_origin=WALL)
    with pytest.raises(TypeError, match="wall_origin"):
        VirtualClock(patch_clocks=True, wall_origin="2030")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        VirtualClock(patch_clocks=True, wall_origin=float("nan"))
    with pytest.raises(TypeError, match="module names"):
        VirtualClock(patch_modules=(time,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of module names"):
        VirtualClock(patch_modules="app.retry")  # type: ignore[arg-type]
    with pytest.raises(ModuleNotFoundError):
        VirtualClock(patch_modules=("no_such_module_for_sansloop",))
    assert VirtualClock(patch_clocks=True).patches_clocks
    assert not VirtualClock().patches_clocks


def test_asyncio_timeouts_and_logging_keep_working() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("sansloop.tests.clock_patch")
    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False

    async def main() -> tuple[float, ...]:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 5)
        after_wait_for = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.Event().wait()
        after_timeout = time.monotonic()
        logger.warning("at %s", after_timeout)
        return start, after_wait_for, after_timeout

    try:
        start, after_wait_for, after_timeout = _run(main())
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert after_wait_for - start == 5
    assert after_timeout - after_wait_for == 2
    [record] = records
    assert record.created == WALL + 7
    assert (
        logging.Formatter("%(asctime)s")
        .format(record)
        .startswith(REAL["strftime"]("%Y-%m-%d %H:%M:%S", REAL["localtime"](WALL + 7)))
    )


def test_datetimes_stay_real_objects() -> None:
    async def main() -> None:
        now = datetime.datetime.now()
        built = datetime.datetime(2020, 1, 2, 3, 4, 5, fold=1)
        assert type(now) is type(built) is REAL_DATETIME
        assert isinstance(now, datetime.datetime)
        assert issubclass(REAL_DATETIME, datetime.datetime)
        assert datetime.datetime.fromtimestamp(0, UTC) == REAL_DATETIME(1970, 1, 1, tzinfo=UTC)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            again = pickle.loads(pickle.dumps(built, protocol))
            assert (again, again.fold, type(again)) == (built, 1, REAL_DATETIME)
        assert copy.deepcopy(now) == copy.copy(now) == now
        # Another thread pickles with the real class at the same time.
        assert await asyncio.to_thread(lambda: pickle.loads(pickle.dumps(now))) == now

    _run(main())


def test_a_subclass_made_in_a_patched_run_stays_a_subclass() -> None:
    async def main() -> type[datetime.datetime]:
        # What a module first imported during a patched run does.
        class Stamp(datetime.datetime):
            pass

        await asyncio.sleep(60)
        made = Stamp(2020, 1, 1)
        now = Stamp.now(UTC)
        assert (type(made), type(now), type(Stamp.utcnow())) == (Stamp, Stamp, Stamp)
        assert now == REAL_DATETIME(2030, 1, 1, 0, 1, tzinfo=UTC)
        assert not isinstance(REAL_DATETIME(2020, 1, 1), Stamp)
        assert not issubclass(REAL_DATETIME, Stamp)
        assert isinstance(made, REAL_DATETIME)
        return Stamp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # utcnow, 3.12+
        stamp = _run(main())
    # After the patch, the class still works, with real time.
    after = stamp.now()
    assert type(after) is stamp
    assert after.year < 2030


# -- where virtual time stops ---------------------------------------------------------------


def test_restored_after_close_and_real_outside_a_run() -> None:
    loop = _patched_loop(origin=50.0)
    try:
        assert time.monotonic is not REAL["monotonic"]
        # The loop's thread between runs: no loop runs, so the clocks are real.
        assert _between(time.monotonic, REAL["monotonic"])
        assert _between(time.time, REAL["time"])
        assert datetime.datetime is REAL_DATETIME
        assert loop.run_until_complete(asyncio.sleep(10, result=None)) is None
        assert loop.run_until_complete(_read_monotonic()) == 60.0
        assert _between(time.perf_counter, REAL["perf_counter"])
    finally:
        loop.close()
    # clocks_restored checks the modules; the values are real again too.
    assert _between(time.monotonic, REAL["monotonic"])


async def _read_monotonic() -> float:
    return time.monotonic()


def test_restored_when_the_run_fails() -> None:
    class Boom(Exception):
        pass

    async def main() -> None:
        await asyncio.sleep(1)
        raise Boom

    with pytest.raises(Boom):
        _run(main())
    with pytest.raises(Boom), asyncio.Runner(loop_factory=_patched_loop) as runner:
        runner.run(main())


def test_a_loop_dropped_unclosed_is_unpatched_when_collected() -> None:
    loop = _patched_loop()
    seen = loop.run_until_complete(_read_monotonic())
    # The loop sits in a reference cycle: any collection from here on may finalize it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del loop
        gc.collect()
    assert seen == 0.0
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == [
        "unclosed event loop <EventLoop running=False closed=False debug=False>"
    ]
    # clocks_restored checks that its __del__ (closing it) undid the patch.


def test_executor_jobs_and_other_threads_see_real_time() -> None:
    def job() -> tuple[bool, bool, bool, float, type]:
        start = time.monotonic()
        time.sleep(0.01)
        return (
            _between(time.monotonic, REAL["monotonic"]),
            _between(time.time, REAL["time"]),
            _between(time.perf_counter, REAL["perf_counter"]),
            time.monotonic() - start,
            datetime.datetime,
        )

    async def main() -> None:
        await asyncio.sleep(3600)
        loop = asyncio.get_running_loop()
        for result in (await loop.run_in_executor(None, job), await asyncio.to_thread(job)):
            mono_real, wall_real, perf_real, slept, cls = result
            assert (mono_real, wall_real, perf_real) == (True, True, True)
            assert slept > 0  # virtual time would stand still: the job holds the clock
            assert cls is REAL_DATETIME
        assert time.monotonic() == 3600.0  # the loop's view did not move meanwhile

    _run(main())


def test_a_real_loop_in_another_thread_keeps_real_time() -> None:
    def real_loop() -> tuple[bool, float]:
        async def inner() -> tuple[bool, float]:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), 0.01)
            return _between(loop.time, REAL["monotonic"]), loop.time() - start

        return asyncio.run(inner())

    async def main() -> None:
        real, waited = await asyncio.to_thread(real_loop)
        assert real
        assert waited > 0

    _run(main())


def test_an_unpatched_loop_sees_real_time_while_another_is_patched() -> None:
    patched = _patched_loop(origin=7.0)
    plain = sansloop.new_event_loop(driver=VirtualDriver(VirtualClock(7.0)))
    try:

        async def reading() -> bool:
            await asyncio.sleep(1)
            return _between(time.monotonic, REAL["monotonic"])

        assert plain.run_until_complete(reading())
        assert patched.run_until_complete(_read_monotonic()) == 7.0
    finally:
        plain.close()
        patched.close()


def test_two_patched_loops_in_two_threads_each_see_their_own_clock() -> None:
    both_patched = threading.Barrier(2, timeout=30)
    closed = threading.Event()
    results: dict[str, Any] = {}

    def run(name: str, origin: float, wall: int) -> None:
        async def main() -> tuple[float, int]:
            await asyncio.sleep(origin)
            # Both loops are open and patched now: each still reads its own clock.
            await asyncio.to_thread(both_patched.wait)
            return time.monotonic(), time.time_ns()

        loop = _patched_loop(origin=origin, wall_origin=wall)
        try:
            results[name] = loop.run_until_complete(main())
        except BaseException as exc:  # pragma: no cover - reported below
            results[name] = exc
        finally:
            if name == "first":
                loop.close()
                closed.set()
            else:
                closed.wait(30)
                # The other loop closed: this one is still patched.
                results["after"] = loop.run_until_complete(_read_monotonic())
                loop.close()

    threads = [
        threading.Thread(target=run, args=("first", 10.0, WALL)),
        threading.Thread(target=run, args=("second", 20.0, 2 * WALL)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {
        "first": (20.0, (WALL + 10) * _NS),
        "second": (40.0, (2 * WALL + 20) * _NS),
        "after": 40.0,
    }


def test_a_clock_shared_by_two_loops_keeps_its_wall_time() -> None:
    clock = VirtualClock(patch_clocks=True, wall_origin=WALL)
    readings = []
    for _ in range(2):
        loop = sansloop.new_event_loop(driver=VirtualDriver(clock))
        try:
            readings.append(loop.run_until_complete(_sleep_and_read_wall(30)))
        finally:
            loop.close()
    assert readings == [(WALL + 30) * _NS, (WALL + 60) * _NS]


async def _sleep_and_read_wall(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return time.time_ns()


# -- references taken before the patch -------------------------------------------------------

_FROM_IMPORTS = """
from time import monotonic, time as wall
from datetime import datetime
"""


@pytest.fixture
def from_imports() -> Iterator[types.ModuleType]:
    """A module that did ``from time import monotonic`` (and friends) at import."""
    name = "sansloop_test_from_imports"
    module = types.ModuleType(name)
    exec(_FROM_IMPORTS, module.__dict__)
    sys.modules[name] = module
    try:
        yield module
    finally:
        del sys.modules[name]


def test_from_imports_keep_the_real_clock_unless_listed(from_imports: types.ModuleType) -> None:
    async def read() -> tuple[bool, int]:
        await asyncio.sleep(5)
        return (
            _between(from_imports.monotonic, REAL["monotonic"]),
            from_imports.datetime.now(UTC) == REAL_DATETIME(2030, 1, 1, 0, 0, 5, tzinfo=UTC),
        )

    assert _run(read()) == (True, False)
    assert _run(read(), patch_modules=[from_imports.__name__]) == (False, True)
    assert from_imports.monotonic is REAL["monotonic"]
    assert from_imports.wall is REAL["time"]
    assert from_imports.datetime is REAL_DATETIME

    async def listed() -> tuple[float, float]:
        await asyncio.sleep(5)
        return from_imports.monotonic(), from_imports.wall()

    assert _run(listed(), patch_modules=[from_imports.__name__]) == (5.0, WALL + 5)


def test_a_patch_made_later_by_someone_else_is_left_alone() -> None:
    loop = _patched_loop()
    stand_in = time.monotonic
    try:

        def fake() -> float:
            return -1.0

        time.monotonic = fake
        loop.close()
        assert time.monotonic is fake
    finally:
        time.monotonic = REAL["monotonic"]
        loop.close()
    # A stand-in someone kept answers with the real clock once the patch is over.
    assert _between(stand_in, REAL["monotonic"])
