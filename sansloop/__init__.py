"""sansloop: an asyncio event loop built the sans-IO way."""

from .compat import EventLoop as EventLoop

__all__ = ["EventLoop"]
