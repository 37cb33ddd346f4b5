"""Drivers: the only code in sansloop that touches the world (clocks, waiting, OS objects)."""

from ._contract import Driver as Driver
from ._contract import SignalDriver as SignalDriver
from ._selectors import SelectorDriver as SelectorDriver

__all__ = ["Driver", "SelectorDriver", "SignalDriver"]
