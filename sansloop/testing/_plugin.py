"""The pytest plugin (entry point ``sansloop``): virtual time for tests that ask for it.

Two ways to run a test, one meaning.  A test is *virtual* when it carries
``@pytest.mark.virtual_time`` (or, with the ini option ``sansloop_virtual_time = true``,
when it is an ``async def`` test).  Then:

* if pytest-asyncio runs it (``@pytest.mark.asyncio``, or its auto mode), pytest-asyncio's
  ``pytest_asyncio_loop_factories`` hook hands it a virtual loop, so its loop scopes, async
  fixtures and runners work unchanged;
* otherwise this plugin runs the coroutine itself (``pytest_pyfunc_call``) in an
  ``asyncio.Runner`` on a virtual loop, kept on the node of the marker's ``loop_scope``.

Virtual tests can also patch ``time.monotonic()``, ``time.time()``, ``datetime.now()`` and
friends for code running in the loop (``VirtualClock(patch_clocks=True)``): per test with
the marker's ``patch_clocks=True`` (and ``wall_origin=``), or for every virtual test with
the ini option ``sansloop_patch_clocks = true`` (a marker's ``patch_clocks=False`` wins).

The hook is registered only once a session needs it (the ini option is on, or a virtual
test is collected): pytest-asyncio parametrizes every test once any implementation exists,
and a session that never asks for virtual time must see no difference.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import pytest

from ._factory import virtual_loop_factory

if TYPE_CHECKING:
    from sansloop.drivers import VirtualClock

__all__ = ["INI_OPTION", "MARKER", "PATCH_CLOCKS_OPTION"]

MARKER: Final = "virtual_time"
INI_OPTION: Final = "sansloop_virtual_time"
PATCH_CLOCKS_OPTION: Final = "sansloop_patch_clocks"
_MARKER_KWARGS: Final = (
    "loop_scope",
    "origin",
    "auto_advance",
    "patch_clocks",
    "wall_origin",
    "seed",
    "explore",
)
_SCOPES: Final = ("function", "class", "module", "package", "session")
_FACTORIES_PLUGIN: Final = "sansloop-virtual-loop-factories"
_MARKER_HELP: Final = (
    f"{MARKER}(*, loop_scope='function', origin=0.0, auto_advance=True, patch_clocks=False, "
    "wall_origin=None, seed=0, explore=False): run this test on a sansloop loop in virtual "
    "time (with pytest-asyncio, its own loop_scope applies); patch_clocks makes "
    "time.monotonic(), time.time() and datetime.now() virtual in the loop; seed and explore go "
    "to the VirtualClock"
)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
_RunnerMap = dict[LoopFactory, asyncio.Runner]
_RUNNERS: Final = pytest.StashKey[_RunnerMap]()


@attrs.frozen
class _Options:
    """What a virtual test asked for."""

    loop_scope: str | None = None
    origin: float = 0.0
    auto_advance: bool = True
    patch_clocks: bool = False
    wall_origin: float | datetime.datetime | None = None
    seed: int = 0
    explore: bool = False

    @property
    def factory(self) -> LoopFactory:
        return virtual_loop_factory(
            self.origin,
            auto_advance=self.auto_advance,
            patch_clocks=self.patch_clocks,
            wall_origin=self.wall_origin,
            seed=self.seed,
            explore=self.explore,
        )


# -- which tests are virtual ---------------------------------------------------------------


def _options(item: pytest.Item) -> _Options | None:
    """The virtual-time options of ``item``, or None if it did not opt in."""
    marker = item.get_closest_marker(MARKER)
    patch_clocks = bool(item.config.getini(PATCH_CLOCKS_OPTION))
    if marker is not None:
        return _parse_marker(marker, item.nodeid, patch_clocks)
    if item.config.getini(INI_OPTION) and _is_async_test(item):
        return _Options(patch_clocks=patch_clocks)
    return None


def _parse_marker(marker: pytest.Mark, nodeid: str, patch_clocks: bool) -> _Options:
    unknown = set(marker.kwargs) - set(_MARKER_KWARGS)
    if marker.args or unknown:
        pytest.fail(
            f"{nodeid}: mark.{MARKER} takes only the keyword arguments "
            f"{', '.join(_MARKER_KWARGS[:-1])} and {_MARKER_KWARGS[-1]}",
            pytrace=False,
        )
    scope = marker.kwargs.get("loop_scope")
    if scope is not None and scope not in _SCOPES:
        pytest.fail(
            f"{nodeid}: mark.{MARKER} got loop_scope={scope!r}; valid scopes are "
            f"{', '.join(_SCOPES)}",
            pytrace=False,
        )
    wall_origin = marker.kwargs.get("wall_origin")
    try:
        options = _Options(
            loop_scope=scope,
            origin=float(marker.kwargs.get("origin", 0.0)),
            auto_advance=bool(marker.kwargs.get("auto_advance", True)),
            patch_clocks=bool(marker.kwargs.get("patch_clocks", patch_clocks)),
            wall_origin=(
                wall_origin
                if wall_origin is None or isinstance(wall_origin, datetime.datetime)
                else float(wall_origin)
            ),
            seed=int(marker.kwargs.get("seed", 0)),
            explore=bool(marker.kwargs.get("explore", False)),
        )
        options.factory  # noqa: B018 (checks wall_origin against patch_clocks)
        return options
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{nodeid}: mark.{MARKER}: {exc}", pytrace=False)


def _is_async_test(item: pytest.Item) -> bool:
    if _owned_by_pytest_asyncio(item):
        return True
    return isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj)


def _has_pytest_asyncio(config: pytest.Config) -> bool:
    caller = getattr(config.hook, "pytest_asyncio_loop_factories", None)
    return caller is not None and caller.spec is not None


def _owned_by_pytest_asyncio(item: pytest.Item) -> bool:
    if not _has_pytest_asyncio(item.config):
        return False
    import pytest_asyncio

    return pytest_asyncio.is_async_test(item)


# -- hooks ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        PATCH_CLOCKS_OPTION,
        type="bool",
        default=False,
        help="virtual tests patch time.monotonic(), time.time(), datetime.now() and friends "
        "for code running in their loop (as if marked "
        f"@pytest.mark.{MARKER}(patch_clocks=True))",
    )
    parser.addini(
        INI_OPTION,
        type="bool",
        default=False,
        help="run every async test on a sansloop loop in virtual time (as if marked "
        f"@pytest.mark.{MARKER})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    if config.getini(INI_OPTION):
        _use_loop_factories(config)


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Iterator[None]:
    # Before pytest-asyncio parametrizes this test by loop factory.
    if metafunc.definition.get_closest_marker(MARKER) is not None:
        _use_loop_factories(metafunc.config)
    return (yield)


def _use_loop_factories(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if _has_pytest_asyncio(config) and manager.get_plugin(_FACTORIES_PLUGIN) is None:
        manager.register(_LoopFactories(), name=_FACTORIES_PLUGIN)


class _LoopFactories:
    """pytest-asyncio's loop-factory hook: a virtual loop for virtual tests."""

    @pytest.hookimpl(wrapper=True)
    def pytest_asyncio_loop_factories(
        self, item: pytest.Item
    ) -> Generator[None, Mapping[str, LoopFactory] | None, Mapping[str, LoopFactory]]:
        result = yield
        options = _options(item)
        if options is not None:
            if options.loop_scope is not None:
                pytest.fail(
                    f"{item.nodeid}: pytest-asyncio runs this test; give its loop scope "
                    f"as @pytest.mark.asyncio(loop_scope={options.loop_scope!r}), not "
                    f"in mark.{MARKER}",
                    pytrace=False,
                )
            return {"sansloop_virtual": options.factory}
        if result is None:
            # What pytest-asyncio does without any hook: a loop from the current policy.
            return {"asyncio": asyncio.new_event_loop}
        return result


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or _owned_by_pytest_asyncio(pyfuncitem):
        return None
    options = _options(pyfuncitem)
    if options is None:
        return None
    runner = _runner(pyfuncitem, options)
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    runner.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # A deadlock's traceback runs through the loop's internals, never through the test (it
    # is suspended): the diagnosis, which says where every task waits, is the useful part.
    excinfo = call.excinfo
    if (
        excinfo is not None
        and report.failed
        and item.config.option.tbstyle == "auto"
        and _is_deadlock(excinfo.value)
        and _options(item) is not None
    ):
        report.longrepr = f"{type(excinfo.value).__name__}: {excinfo.value}"
    return report


def _is_deadlock(exc: BaseException) -> bool:
    from sansloop.drivers import VirtualDeadlock

    return isinstance(exc, VirtualDeadlock)


# -- the plugin's own runners --------------------------------------------------------------


def _scope_node(item: pytest.Item, scope: str) -> pytest.Item | pytest.Collector | pytest.Session:
    """The node a loop of ``scope`` lives on (pytest's rules for scoped fixtures)."""
    node: pytest.Item | pytest.Collector | None
    if scope == "session":
        return item.session
    if scope == "package":
        node = item.getparent(pytest.Package)
        return node if node is not None else item.session
    if scope == "module":
        node = item.getparent(pytest.Module)
    elif scope == "class":
        node = item.getparent(pytest.Class)
    else:
        node = None
    return node if node is not None else item


def _runner(item: pytest.Item, options: _Options) -> asyncio.Runner:
    """The runner of ``item``'s loop, made on first use and closed with its scope's node."""
    node = _scope_node(item, options.loop_scope or "function")
    runners = node.stash.setdefault(_RUNNERS, {})
    factory = options.factory
    runner = runners.get(factory)
    if runner is None:
        runner = asyncio.Runner(loop_factory=factory)
        runners[factory] = runner

        def close() -> None:
            del runners[factory]
            runner.close()

        node.addfinalizer(close)
    return runner


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def virtual_loop(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoop:
    """The virtual-time loop this test runs on (the test must opt in to virtual time)."""
    item = request.node
    options = _options(item)
    if options is None:
        pytest.fail(
            f"{item.nodeid} uses the virtual_loop/virtual_clock fixture but does not run in "
            f"virtual time: mark it @pytest.mark.{MARKER}",
            pytrace=False,
        )
    if _owned_by_pytest_asyncio(item):
        return _pytest_asyncio_loop(request, item)
    return _runner(item, options).get_loop()


@pytest.fixture
def virtual_clock(virtual_loop: asyncio.AbstractEventLoop) -> VirtualClock:
    """The :class:`~sansloop.drivers.VirtualClock` of the test's loop: advance, step, holds."""
    # Imported here, as every sansloop module: the plugin loads in every pytest session
    # (before coverage measurement may start), virtual or not.
    from sansloop.drivers import virtual_clock as clock_of

    return clock_of(virtual_loop)


def _pytest_asyncio_loop(request: pytest.FixtureRequest, item: Any) -> asyncio.AbstractEventLoop:
    marker = item.get_closest_marker("asyncio")
    scope = None
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    if scope is None:
        scope = item.config.getini("asyncio_default_test_loop_scope")
    runner: asyncio.Runner = request.getfixturevalue(f"_{scope}_scoped_runner")
    return runner.get_loop()
