"""asyncio inside trio: an asyncio event loop run as a guest by a trio program.

::

    async def main():                                   # a trio program
        async with sansloop.trio.open_loop() as loop:
            reader, writer = await sansloop.trio.run_aio(asyncio.open_connection, host, 80)
            await trio.sleep(1)                        # trio and asyncio side by side

    async def handler():                                # asyncio code on that loop
        await sansloop.trio.run_trio(trio.sleep, 1)    # trio code from asyncio

    sansloop.trio.run(asyncio_main())                   # an asyncio program on trio

Needs trio (``pip install sansloop[trio]``).
"""

from ._bridge import AioAsTrio as AioAsTrio
from ._bridge import TrioAsAio as TrioAsAio
from ._bridge import TrioCall as TrioCall
from ._bridge import aio_as_trio as aio_as_trio
from ._bridge import run_aio as run_aio
from ._bridge import run_trio as run_trio
from ._bridge import trio_as_aio as trio_as_aio
from ._session import Session as Session
from ._session import current_loop as current_loop
from ._session import open_loop as open_loop
from ._session import run as run

__all__ = [
    "AioAsTrio",
    "Session",
    "TrioAsAio",
    "TrioCall",
    "aio_as_trio",
    "current_loop",
    "open_loop",
    "run",
    "run_aio",
    "run_trio",
    "trio_as_aio",
]
