"""asyncio's public surface on sansloop's core and drivers."""

from ._loop import EventLoop as EventLoop

__all__ = ["EventLoop"]
