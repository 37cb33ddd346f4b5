"""sansloop: an asyncio event loop built the sans-IO way.

The top-level names are loaded on first use (PEP 562), so that ``import sansloop.core`` —
the pure core, which the trio and virtual drivers build on — does not drag in asyncio,
sockets and selectors through this package.
"""

from __future__ import annotations

import typing as _typing

if _typing.TYPE_CHECKING:
    from .compat import EventLoop as EventLoop
    from .compat import EventLoopPolicy as EventLoopPolicy
    from .compat import get_event_loop as get_event_loop
    from .compat import get_event_loop_policy as get_event_loop_policy
    from .compat import get_running_loop as get_running_loop
    from .compat import install as install
    from .compat import new_event_loop as new_event_loop
    from .compat import run as run
    from .compat import set_event_loop as set_event_loop
    from .compat import set_event_loop_policy as set_event_loop_policy

__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "get_event_loop",
    "get_event_loop_policy",
    "get_running_loop",
    "install",
    "new_event_loop",
    "run",
    "set_event_loop",
    "set_event_loop_policy",
]


def __getattr__(name: str) -> _typing.Any:
    if name in __all__:
        from . import compat

        value = getattr(compat, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sansloop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
