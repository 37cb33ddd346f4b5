"""Real asyncio software on sansloop, or on stock asyncio for comparison.

``SANSLOOP_INTEGRATION_LOOP=sansloop`` (the default) runs every test on a sansloop loop;
``=asyncio`` runs the same tests on asyncio's own loop.  Every test checks, from inside the
running loop, that it runs on the loop the mode says (the ``run`` fixture does it), so a test
cannot pass on the wrong loop by accident.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import sansloop

_T = TypeVar("_T")

MODE = os.environ.get("SANSLOOP_INTEGRATION_LOOP", "sansloop")
if MODE not in ("sansloop", "asyncio"):
    raise RuntimeError(f"SANSLOOP_INTEGRATION_LOOP must be 'sansloop' or 'asyncio', not {MODE!r}")


def loop_factory() -> asyncio.AbstractEventLoop:
    return sansloop.new_event_loop() if MODE == "sansloop" else asyncio.SelectorEventLoop()


def assert_on_the_right_loop() -> None:
    """Fail unless the running loop is the one the mode asks for."""
    loop = asyncio.get_running_loop()
    if MODE == "sansloop":
        assert isinstance(loop, sansloop.EventLoop), f"running on {type(loop)!r}, not sansloop"
    else:
        assert not isinstance(loop, sansloop.EventLoop), "running on sansloop in asyncio mode"


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, _T]], _T]:
    """Run a coroutine on a fresh loop of the mode, checking the loop first; 60 s at most."""

    def runner(coro: Coroutine[Any, Any, _T]) -> _T:
        async def checked() -> _T:
            assert_on_the_right_loop()
            async with asyncio.timeout(60):
                return await coro

        with asyncio.Runner(loop_factory=loop_factory) as r:
            return r.run(checked())

    return runner


def pytest_report_header(config: pytest.Config) -> str:
    return f"integration loop: {MODE}"
