"""Drivers: the only code in sansloop that touches the world (clocks, waiting, OS objects)."""

from ._contract import ChildDriver as ChildDriver
from ._contract import DatagramDriver as DatagramDriver
from ._contract import Driver as Driver
from ._contract import FileDescriptorLike as FileDescriptorLike
from ._contract import HostingDriver as HostingDriver
from ._contract import PipeDriver as PipeDriver
from ._contract import PipeLike as PipeLike
from ._contract import ReadinessDriver as ReadinessDriver
from ._contract import RunObserver as RunObserver
from ._contract import SignalDriver as SignalDriver
from ._contract import SocketDriver as SocketDriver
from ._contract import StreamDriver as StreamDriver
from ._contract import StreamListener as StreamListener
from ._contract import WorkTrackingDriver as WorkTrackingDriver
from ._deadlock import VirtualDeadlock as VirtualDeadlock
from ._deadlock import WaitingTask as WaitingTask
from ._leaks import LeakedJob as LeakedJob
from ._leaks import LeakedResource as LeakedResource
from ._leaks import LeakMode as LeakMode
from ._leaks import LeakReport as LeakReport
from ._leaks import LeakWatch as LeakWatch
from ._leaks import UnretrievedException as UnretrievedException
from ._leaks import VirtualLeakError as VirtualLeakError
from ._leaks import VirtualLeakWarning as VirtualLeakWarning
from ._selectors import SelectorDriver as SelectorDriver
from ._virtual import TimeHold as TimeHold
from ._virtual import VirtualClock as VirtualClock
from ._virtual import VirtualDriver as VirtualDriver
from ._virtual import VirtualStatistics as VirtualStatistics
from ._virtual import hold_time as hold_time
from ._virtual import virtual_clock as virtual_clock
from ._vnet import Exploration as Exploration
from ._vnet import Link as Link
from ._vnet import RealFileDescriptorError as RealFileDescriptorError
from ._vnet import TraceEvent as TraceEvent
from ._vnet import VirtualNetwork as VirtualNetwork
from ._vsocket import VirtualSocket as VirtualSocket

__all__ = [
    "ChildDriver",
    "DatagramDriver",
    "Driver",
    "Exploration",
    "FileDescriptorLike",
    "HostingDriver",
    "LeakMode",
    "LeakReport",
    "LeakWatch",
    "LeakedJob",
    "LeakedResource",
    "Link",
    "PipeDriver",
    "PipeLike",
    "ReadinessDriver",
    "RealFileDescriptorError",
    "RunObserver",
    "SelectorDriver",
    "SignalDriver",
    "SocketDriver",
    "StreamDriver",
    "StreamListener",
    "TimeHold",
    "TraceEvent",
    "UnretrievedException",
    "VirtualClock",
    "VirtualDeadlock",
    "VirtualDriver",
    "VirtualLeakError",
    "VirtualLeakWarning",
    "VirtualNetwork",
    "VirtualSocket",
    "VirtualStatistics",
    "WaitingTask",
    "WorkTrackingDriver",
    "hold_time",
    "virtual_clock",
]
