"""Real asyncio software on sansloop, or on stock asyncio for comparison.

``SANSLOOP_INTEGRATION_LOOP=sansloop`` (the default) runs every test on a sansloop loop;
``=asyncio`` runs the same tests on asyncio's own loop.  Every test checks, from inside the
running loop, that it runs on the loop the mode says (the ``run`` fixture does it), so a test
cannot pass on the wrong loop by accident.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from loopmode import MODE, assert_on_the_right_loop, loop_factory

__all__ = ["MODE", "assert_on_the_right_loop", "loop_factory"]

_T = TypeVar("_T")


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
