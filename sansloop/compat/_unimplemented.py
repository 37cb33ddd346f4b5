"""Loop methods whose feature has not landed yet.

Each raises ``NotImplementedError`` naming the missing feature, so that nobody mistakes a stub
for a working method.  The README's "Limitations" section lists the same features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["UNIMPLEMENTED"]


def _message(name: str, feature: str) -> str:
    return (
        f"sansloop does not implement loop.{name}() yet: {feature} is not available "
        "(see 'Limitations' in sansloop's README)"
    )


def _async(name: str, feature: str) -> Callable[..., Any]:
    async def method(self: object, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError(_message(name, feature))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Not implemented yet: {feature}."
    return method


_PIPES = "pipes and subprocesses"

#: name -> method, for the compat loop to place in its class body.
UNIMPLEMENTED: dict[str, Callable[..., Any]] = {
    name: _async(name, _PIPES)
    for name in (
        "connect_read_pipe",
        "connect_write_pipe",
        "subprocess_exec",
        "subprocess_shell",
    )
}
