"""The pytest plugin, run in inner pytest sessions (``pytester``): standalone and under
pytest-asyncio, with every loop scope, deadlocks, fixtures, and tests that do not opt in."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

#: The inner sessions are as strict as ours (and lighter: each re-imports its plugins).
_INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider -p no:hypothesispytest
    -p no:benchmark
filterwarnings = error
{extra}
"""

_STANDALONE = ("-p", "no:asyncio")


def _ini(pytester: pytest.Pytester, extra: str = "", *, asyncio: bool = True) -> None:
    if asyncio:
        extra = f"asyncio_default_fixture_loop_scope = function\n{extra}"
    pytester.makeini(_INI.format(extra=extra))


# -- standalone: the plugin runs the test itself ---------------------------------------------


@pytest.mark.parametrize("args", [_STANDALONE, ()], ids=["no-pytest-asyncio", "strict-mode"])
def test_an_hour_of_sleep_is_exact(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    _ini(pytester, asyncio=not args)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import sansloop
        from sansloop.drivers import virtual_clock

        @pytest.mark.virtual_time
        async def test_sleep():
            loop = asyncio.get_running_loop()
            assert isinstance(loop, sansloop.EventLoop)
            assert loop.time() == 0.0
            await asyncio.sleep(3600)
            assert loop.time() == 3600.0
            assert virtual_clock().now_ns == 3600 * 10**9
        """
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_marker_origin_and_auto_advance(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.virtual_time(origin=1e6)
        async def test_origin():
            loop = asyncio.get_running_loop()
            assert loop.time() == 1e6
            await asyncio.sleep(1.5)
            assert loop.time() == 1e6 + 1.5

        @pytest.mark.virtual_time(auto_advance=False)
        async def test_manual(virtual_clock):
            assert not virtual_clock.auto_advance
            fired = []
            asyncio.get_running_loop().call_later(5, fired.append, 5)
            await virtual_clock.advance(4)
            assert fired == []
            await virtual_clock.advance(1)
            assert fired == [5]
            assert virtual_clock.time() == 5.0
        """
    )
    pytester.runpytest(*_STANDALONE).assert_outcomes(passed=2)


def test_marker_seed_and_explore(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.virtual_time(seed=42, explore=True)
        async def test_seeded(virtual_clock):
            assert virtual_clock.seed == 42
            assert virtual_clock.exploration is not None

        @pytest.mark.virtual_time
        async def test_default(virtual_clock):
            assert virtual_clock.seed == 0
            assert virtual_clock.exploration is None
        """
    )
    pytester.runpytest(*_STANDALONE).assert_outcomes(passed=2)


def test_deadlock_fails_with_the_diagnosis(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        async def wait_for_it(event):
            await event.wait()

        @pytest.mark.virtual_time
        async def test_stuck():
            event = asyncio.Event()
            waiter = asyncio.create_task(wait_for_it(event), name="waiter")
            await waiter

        @pytest.mark.virtual_time
        async def test_after_it():
            await asyncio.sleep(1)
        """
    )
    result = pytester.runpytest(*_STANDALONE, "-ra")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*VirtualDeadlock: deadlock at virtual time 0.0: no callback is ready*",
            "*task 'waiter' (wait_for_it) awaits asyncio.Event.wait() (the event is not set)*",
        ]
    )
    out = result.stdout.str()
    assert "test_deadlock_fails_with_the_diagnosis.py:5 in wait_for_it" in out
    # The summary line is the diagnosis; the loop's internals are left out of the report
    # unless a traceback style is asked for.
    result.stdout.fnmatch_lines(["FAILED *::test_stuck - VirtualDeadloc*"])
    assert "_virtual.py" not in out
    long = pytester.runpytest(*_STANDALONE, "--tb=long")
    long.assert_outcomes(passed=1, failed=1)
    long.stdout.fnmatch_lines(["*_virtual.py:*: VirtualDeadlock"])


# -- fixtures ------------------------------------------------------------------------------


def test_fixtures_give_the_loop_and_its_clock(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from sansloop.drivers import VirtualClock, virtual_clock as clock_of

        @pytest.mark.virtual_time
        async def test_async(virtual_loop, virtual_clock):
            assert asyncio.get_running_loop() is virtual_loop
            assert virtual_clock is clock_of(virtual_loop)
            await virtual_clock.advance(7)
            assert virtual_loop.time() == 7.0

        @pytest.mark.virtual_time
        def test_sync_drives_the_loop_from_outside(virtual_loop, virtual_clock):
            assert isinstance(virtual_clock, VirtualClock)
            fired = []
            virtual_loop.call_later(30, fired.append, "late")
            virtual_clock.advance(29)
            assert fired == []
            virtual_clock.advance_to_next_timer()
            assert fired == ["late"]
            assert virtual_loop.time() == 30.0

        def test_unmarked(virtual_clock):
            pass
        """
    )
    result = pytester.runpytest(*_STANDALONE)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_unmarked uses the virtual_loop/virtual_clock fixture but does not run in "
            "virtual time: mark it @pytest.mark.virtual_time*"
        ]
    )


def test_bad_marker_arguments(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.virtual_time(loop_scope="galaxy")
        async def test_scope():
            pass

        @pytest.mark.virtual_time(speed=2)
        async def test_unknown():
            pass

        @pytest.mark.virtual_time(wall_origin=0.0)
        async def test_wall_origin_alone():
            pass
        """
    )
    result = pytester.runpytest(*_STANDALONE)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*loop_scope='galaxy'; valid scopes are function, class, module, package, session",
            "*takes only the keyword arguments loop_scope, origin, auto_advance, patch_clocks, "
            "wall_origin, seed and explore",
            "*test_wall_origin_alone: mark.virtual_time: wall_origin needs patch_clocks=True",
        ]
    )


# -- patching time.monotonic() and friends ---------------------------------------------------

_PATCHED_TESTS = """
import asyncio
import datetime
import time

import pytest

BUILTIN = type(len)
WALL = 1_893_456_000


async def _check_patched():
    loop = asyncio.get_running_loop()
    start = time.time()
    await asyncio.sleep(3600)
    assert time.monotonic() == loop.time()
    assert time.time() - start == 3600.0
    return start


async def _check_real():
    await asyncio.sleep(3600)
    assert type(time.monotonic) is BUILTIN
    assert time.monotonic() != asyncio.get_running_loop().time()


@pytest.mark.virtual_time(patch_clocks=True, wall_origin=WALL, origin=5.0)
async def test_marked():
    assert await _check_patched() == WALL
    assert datetime.datetime.now(datetime.UTC) == datetime.datetime(
        2030, 1, 1, 1, tzinfo=datetime.UTC
    )


@pytest.mark.virtual_time(patch_clocks=False)
async def test_opted_out():
    await _check_real()


@pytest.mark.virtual_time
async def test_by_the_ini_option():
    if {ini}:
        await _check_patched()
    else:
        await _check_real()


def test_sync_tests_see_real_clocks():
    assert type(time.monotonic) is BUILTIN
    assert datetime.datetime.now().year < 2030
"""

#: Valid only when the ini option turns patching on.
_WALL_ORIGIN_ALONE = """

@pytest.mark.virtual_time(wall_origin=WALL)
async def test_wall_origin_alone():
    assert await _check_patched() == WALL
"""


@pytest.mark.parametrize("ini", [False, True], ids=["marker", "ini-option"])
@pytest.mark.parametrize("args", [_STANDALONE, ()], ids=["no-pytest-asyncio", "auto-mode"])
def test_patch_clocks(pytester: pytest.Pytester, args: tuple[str, ...], ini: bool) -> None:
    extra = "sansloop_patch_clocks = true" if ini else ""
    if not args:
        extra += "\nasyncio_mode = auto"
    _ini(pytester, extra, asyncio=not args)
    source = _PATCHED_TESTS.replace("{ini}", repr(ini))
    pytester.makepyfile(source + _WALL_ORIGIN_ALONE if ini else source)
    pytester.runpytest(*args).assert_outcomes(passed=5 if ini else 4)


# -- tests that do not opt in --------------------------------------------------------------


def test_unmarked_async_tests_are_not_taken(pytester: pytest.Pytester) -> None:
    _ini(pytester, asyncio=False)
    pytester.makepyfile(
        """
        async def test_plain():
            pass
        """
    )
    result = pytester.runpytest(*_STANDALONE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_pytest_asyncio_sessions_without_virtual_time_are_unchanged(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester)
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            plugin = session.config.pluginmanager.get_plugin("sansloop-virtual-loop-factories")
            print("factories plugin:", plugin)
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_default_loop():
            assert isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)
            await asyncio.sleep(0)

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop():
            pass
        """
    )
    result = pytester.runpytest("-v", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "factories plugin: None",
            "*::test_default_loop PASSED*",
            "*::test_module_loop PASSED*",
        ]
    )


# -- pytest-asyncio ------------------------------------------------------------------------


def test_pytest_asyncio_marked_tests(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import pytest_asyncio
        import sansloop
        from sansloop.drivers import virtual_clock as clock_of

        @pytest_asyncio.fixture
        async def started():
            loop = asyncio.get_running_loop()
            # 100 s of virtual time, but never real sleep on the test that is not virtual.
            await asyncio.sleep(100 if isinstance(loop, sansloop.EventLoop) else 0)
            return loop

        @pytest.mark.asyncio
        @pytest.mark.virtual_time
        async def test_virtual(started, virtual_loop, virtual_clock):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, sansloop.EventLoop)
            assert started is loop is virtual_loop
            assert virtual_clock is clock_of(loop)
            assert loop.time() == 100.0
            await asyncio.sleep(3600)
            assert loop.time() == 3700.0

        @pytest.mark.asyncio
        async def test_not_virtual(started):
            loop = asyncio.get_running_loop()
            assert started is loop
            with pytest.raises(TypeError, match="virtual driver"):
                clock_of(loop)

        @pytest.mark.asyncio
        @pytest.mark.virtual_time(origin=50.0)
        async def test_origin():
            assert asyncio.get_running_loop().time() == 50.0

        @pytest.mark.asyncio
        @pytest.mark.virtual_time
        async def test_deadlock():
            await asyncio.get_running_loop().create_future()
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*VirtualDeadlock: deadlock at virtual time 0.0*",
            "*awaits a Future that nothing resolves*",
        ]
    )


def test_pytest_asyncio_ini_option_and_auto_mode(pytester: pytest.Pytester) -> None:
    _ini(pytester, "asyncio_mode = auto\nsansloop_virtual_time = true")
    pytester.makepyfile(
        """
        import asyncio
        import sansloop

        async def test_virtual_everywhere(virtual_clock):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, sansloop.EventLoop)
            await asyncio.sleep(86400)
            assert virtual_clock.time() == loop.time() == 86400.0

        def test_sync_untouched():
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_pytest_asyncio_scope_belongs_to_its_marker(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.virtual_time(loop_scope="module")
        async def test_it():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.asyncio(loop_scope='module'), not in mark.*"])


# -- scoped loops --------------------------------------------------------------------------

_SCOPED = """
import asyncio
import pytest

SEEN = []

def _mark(scope):
    if {asyncio}:
        return lambda f: pytest.mark.asyncio(loop_scope=scope)(pytest.mark.virtual_time(f))
    return pytest.mark.virtual_time(loop_scope=scope)

@_mark("{scope}")
async def test_first():
    SEEN.append(asyncio.get_running_loop())
    assert asyncio.get_running_loop().time() == {start}
    await asyncio.sleep(10)

@_mark("{scope}")
async def test_second():
    loop = asyncio.get_running_loop()
    assert (loop is SEEN[-1]) is {shared}
    # Time never goes backwards on a shared loop.
    assert loop.time() == ({start} + 10.0 if {shared} else 0.0)
    await asyncio.sleep(5)

class TestInClass:
    @_mark("{scope}")
    async def test_third(self):
        loop = asyncio.get_running_loop()
        SEEN.append(loop)
        await asyncio.sleep(1)

    @_mark("{scope}")
    async def test_fourth(self, virtual_loop):
        loop = asyncio.get_running_loop()
        assert loop is virtual_loop
        assert (loop is SEEN[-1]) is {shared_in_class}
        print("{name}", "{scope}", loop.time())
"""


@pytest.mark.parametrize("asyncio", [False, True], ids=["standalone", "pytest-asyncio"])
@pytest.mark.parametrize("scope", ["function", "class", "module", "package", "session"])
def test_scoped_loops(pytester: pytest.Pytester, scope: str, asyncio: bool) -> None:
    _ini(pytester, asyncio=asyncio)
    shared = scope in ("module", "package", "session")
    for name in ("test_a", "test_b"):
        # In the second module a session- or package-scoped loop is still the same one.
        start = 16.0 if scope in ("package", "session") and name == "test_b" else 0.0
        pytester.makepyfile(
            **{
                name: _SCOPED.format(
                    asyncio=asyncio,
                    scope=scope,
                    start=start,
                    shared=shared,
                    shared_in_class=scope != "function",
                    name=name,
                )
            }
        )
    args = ["-s"] if asyncio else ["-s", *_STANDALONE]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=8)
    # Per module: 10 + 5 + 1 seconds of sleep before test_fourth.
    if scope == "function":
        expected = ["test_a function 0.0", "test_b function 0.0"]
    elif scope == "class":
        expected = ["test_a class 1.0", "test_b class 1.0"]
    elif scope == "module":
        expected = ["test_a module 16.0", "test_b module 16.0"]
    else:
        expected = [f"test_a {scope} 16.0", f"test_b {scope} 32.0"]
    result.stdout.fnmatch_lines([f"*{line}" for line in expected])
