"""sansloop's pure core: scheduling and protocol state, with time and I/O handed in.

Nothing here makes a system call, reads a clock, starts a thread or keeps global state.
"""

from ._handles import Callback as Callback
from ._handles import Timer as Timer
from ._inbox import Inbox as Inbox
from ._lifecycle import LoopEvent as LoopEvent
from ._lifecycle import LoopState as LoopState
from ._lifecycle import next_state as next_state
from ._scheduler import MAXIMUM_TIMEOUT as MAXIMUM_TIMEOUT
from ._scheduler import Scheduler as Scheduler
from ._scheduler import SchedulerStatistics as SchedulerStatistics

__all__ = [
    "MAXIMUM_TIMEOUT",
    "Callback",
    "Inbox",
    "LoopEvent",
    "LoopState",
    "Scheduler",
    "SchedulerStatistics",
    "Timer",
    "next_state",
]
