"""No ``AbstractEventLoop`` method is left as asyncio's bare abstract stub."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")


def _abstract_methods() -> list[str]:
    return sorted(
        name
        for name, value in vars(asyncio.AbstractEventLoop).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


@pytest.mark.parametrize("name", _abstract_methods())
def test_no_method_is_left_abstract(name: str) -> None:
    # asyncio.AbstractEventLoop's own bodies raise a bare NotImplementedError, which says
    # nothing; every method must be sansloop's own (working, or a named stub).
    ours = inspect.getattr_static(sansloop.EventLoop, name)
    assert ours is not vars(asyncio.AbstractEventLoop)[name]
