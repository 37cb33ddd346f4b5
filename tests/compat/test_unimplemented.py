"""Methods whose feature has not landed raise a NotImplementedError that names the feature,
and no ``AbstractEventLoop`` method is left as asyncio's bare abstract stub."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

import sansloop
from sansloop.compat._unimplemented import UNIMPLEMENTED

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

#: What each missing method's message must name, by method.
_FEATURE_WORDS = {
    "connect_read_pipe": "pipes",
    "connect_write_pipe": "pipes",
    "subprocess_exec": "subprocesses",
    "subprocess_shell": "subprocesses",
}


def _feature_word(name: str) -> str:
    return _FEATURE_WORDS[name]


def _call(loop: sansloop.EventLoop, name: str) -> object:
    method = getattr(loop, name)
    if inspect.iscoroutinefunction(method):
        # The coroutine methods raise when awaited, as asyncio's raise their errors.
        return loop.run_until_complete(method())
    return method()


@pytest.mark.parametrize("name", sorted(UNIMPLEMENTED))
def test_missing_feature_is_named(loop: sansloop.EventLoop, name: str) -> None:
    with pytest.raises(NotImplementedError) as info:
        _call(loop, name)
    match = re.match(
        rf"^sansloop does not implement loop\.{name}\(\) yet: (?P<feature>.+) is not available",
        str(info.value),
    )
    assert match is not None, str(info.value)
    assert _feature_word(name) in match["feature"]


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
