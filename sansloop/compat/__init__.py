"""asyncio's public surface on sansloop's core and drivers."""

from ._loop import EventLoop as EventLoop
from ._policy import EventLoopPolicy as EventLoopPolicy
from ._policy import get_event_loop as get_event_loop
from ._policy import get_event_loop_policy as get_event_loop_policy
from ._policy import get_running_loop as get_running_loop
from ._policy import new_event_loop as new_event_loop
from ._policy import set_event_loop as set_event_loop
from ._policy import set_event_loop_policy as set_event_loop_policy
from ._run import install as install
from ._run import run as run

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
