"""sansloop's pure core: scheduling and protocol state, with time and I/O handed in.

Nothing here makes a system call, reads a clock, starts a thread or keeps global state.
"""

from ._datagram import DatagramChannel as DatagramChannel
from ._datagram import DatagramSink as DatagramSink
from ._datagram import DatagramTransportCore as DatagramTransportCore
from ._handles import Callback as Callback
from ._handles import Timer as Timer
from ._inbox import Inbox as Inbox
from ._lifecycle import LoopEvent as LoopEvent
from ._lifecycle import LoopState as LoopState
from ._lifecycle import next_state as next_state
from ._pipe import PipeChannel as PipeChannel
from ._pipe import PipeReadTransportCore as PipeReadTransportCore
from ._pipe import PipeSink as PipeSink
from ._pipe import PipeWriteTransportCore as PipeWriteTransportCore
from ._scheduler import MAXIMUM_TIMEOUT as MAXIMUM_TIMEOUT
from ._scheduler import Scheduler as Scheduler
from ._scheduler import SchedulerStatistics as SchedulerStatistics
from ._stream import StreamChannel as StreamChannel
from ._stream import StreamSink as StreamSink
from ._stream import StreamTransportCore as StreamTransportCore
from ._stream import Waiter as Waiter
from ._tls import TLSLayer as TLSLayer
from ._tls_states import SSLHandshakeTimeout as SSLHandshakeTimeout
from ._tls_states import TLSState as TLSState
from ._tls_states import check_timeouts as check_tls_timeouts
from ._tls_transport import TLSTransportCore as TLSTransportCore
from ._transport import LOG_THRESHOLD_FOR_CONNLOST_WRITES as LOG_THRESHOLD_FOR_CONNLOST_WRITES
from ._transport import TransportCore as TransportCore
from ._transport import TransportHost as TransportHost

__all__ = [
    "LOG_THRESHOLD_FOR_CONNLOST_WRITES",
    "MAXIMUM_TIMEOUT",
    "Callback",
    "DatagramChannel",
    "DatagramSink",
    "DatagramTransportCore",
    "Inbox",
    "LoopEvent",
    "LoopState",
    "PipeChannel",
    "PipeReadTransportCore",
    "PipeSink",
    "PipeWriteTransportCore",
    "SSLHandshakeTimeout",
    "Scheduler",
    "SchedulerStatistics",
    "StreamChannel",
    "StreamSink",
    "StreamTransportCore",
    "TLSLayer",
    "TLSState",
    "TLSTransportCore",
    "Timer",
    "TransportCore",
    "TransportHost",
    "Waiter",
    "check_tls_timeouts",
    "next_state",
]
