"""The process workloads: spawning and collecting children, and bytes through pipes.

As in the networking workloads, ``run(loop, size)`` returns the seconds spent on the work
itself, every byte is checked (length and adler32), and everything is closed before the loop
is (pipe transports' ``connection_lost`` awaited, every child waited for).  A wrong result
raises :class:`WorkloadError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from ._net import _BLOCK, _close_all, _Sink, _Source, _stream_checksum, _timed, _Tracked
from ._workloads import Workload, WorkloadError

__all__ = ["proc_workloads"]

#: Children alive at once in the spawn workload.
_CONCURRENCY = 16


class _PipeSource(_Source):
    """:class:`_Source` for a write pipe, whose ``write_eof()`` is a close.

    The close goes through ``call_soon``: asyncio's write pipe transport drops what
    ``resume_writing()`` buffered when the same call also closes it (sansloop's does not).
    """

    def pump(self) -> None:
        write = self.transport.write
        while self.blocks and not self.paused:
            self.blocks -= 1
            write(_BLOCK)
        if not self.blocks:
            asyncio.get_running_loop().call_soon(self.transport.close)


def spawn_collect(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """``n`` short children (``true``, stdout piped), ``_CONCURRENCY`` at a time."""
    true = shutil.which("true") or "/bin/true"

    async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
        async def one(gate: asyncio.Semaphore) -> int:
            async with gate:
                proc = await asyncio.create_subprocess_exec(true, stdout=subprocess.PIPE)
                out, _ = await proc.communicate()
                if out:
                    raise WorkloadError(f"unexpected output {out!r}")
                return proc.returncode if proc.returncode is not None else -1

        async def work() -> None:
            gate = asyncio.Semaphore(_CONCURRENCY)
            codes = await asyncio.gather(*(one(gate) for _ in range(n)))
            if codes != [0] * n:
                raise WorkloadError(f"exit codes {sorted(set(codes))}, expected 0")

        return work

    return _timed(loop, setup)


def pipe_throughput(loop: asyncio.AbstractEventLoop, mib: int) -> float:
    """``mib`` MiB through an ``os.pipe()``: a write pipe transport with flow control into a
    read pipe transport on the same loop."""
    blocks = mib * 1024 * 1024 // len(_BLOCK)
    expected = (blocks * len(_BLOCK), _stream_checksum(blocks))

    async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
        peers: list[_Tracked] = []
        stack.push_async_callback(_close_all, peers)
        r, w = os.pipe()
        rf, wf = os.fdopen(r, "rb", 0), os.fdopen(w, "wb", 0)
        stack.callback(rf.close)  # (the transports close them first; closing twice is fine)
        stack.callback(wf.close)
        _, sink = await loop.connect_read_pipe(_Sink, rf)
        peers.append(sink)
        _, source = await loop.connect_write_pipe(lambda: _PipeSource(blocks), wf)
        peers.append(source)

        async def work() -> None:
            source.pump()  # closing the write end is the sink's EOF
            got = await sink.done
            if got != expected:
                raise WorkloadError(f"received (size, adler32) {got}, expected {expected}")

        return work

    return _timed(loop, setup)


class _CatProtocol(asyncio.SubprocessProtocol):
    """Feeds ``blocks`` blocks to the child's stdin with flow control; checks its stdout."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks
        self.paused = False
        self.size = 0
        self.checksum = 1
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stdin: asyncio.WriteTransport | None = None

    def connection_made(self, transport: Any) -> None:
        # (uvloop's subprocess transport is not an asyncio.SubprocessTransport instance.)
        self.stdin = transport.get_pipe_transport(0)
        self.pump()

    def pump(self) -> None:
        stdin = self.stdin
        assert stdin is not None
        while self.blocks and not self.paused:
            self.blocks -= 1
            stdin.write(_BLOCK)
        if not self.blocks:
            # Closed from a callback of its own: asyncio's write pipe transport drops what
            # resume_writing() buffered if the same call also closes it.
            asyncio.get_running_loop().call_soon(stdin.close)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.size += len(data)
        self.checksum = zlib.adler32(data, self.checksum)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def cat_throughput(loop: asyncio.AbstractEventLoop, mib: int) -> float:
    """``mib`` MiB through a ``cat`` child: its stdin pipe in, its stdout pipe out."""
    blocks = mib * 1024 * 1024 // len(_BLOCK)
    expected = (blocks * len(_BLOCK), _stream_checksum(blocks))
    cat = shutil.which("cat") or "/bin/cat"

    async def setup(stack: contextlib.AsyncExitStack) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            transport, proto = await loop.subprocess_exec(
                lambda: _CatProtocol(blocks), cat, stderr=None
            )
            try:
                await proto.done
            finally:
                transport.close()
            got = (proto.size, proto.checksum)
            if got != expected:
                raise WorkloadError(f"received (size, adler32) {got}, expected {expected}")
            if transport.get_returncode() != 0:
                raise WorkloadError(f"cat exited with {transport.get_returncode()}")

        return work

    return _timed(loop, setup)


def proc_workloads() -> tuple[Workload, ...]:
    """The process workloads (none on Windows, where selector loops have no pipes)."""
    if sys.platform == "win32":
        return ()
    return (
        Workload(
            "spawn_collect",
            f"short children (true, stdout piped) spawned and waited for, {_CONCURRENCY} at once",
            spawn_collect,
            400,
            20,
            "proc",
        ),
        Workload(
            "pipe_throughput",
            "MiB through an os.pipe() between two pipe transports, flow control, checked",
            pipe_throughput,
            512,
            16,
            "proc",
        ),
        Workload(
            "cat_throughput",
            "MiB through a cat child: stdin pipe in, stdout pipe out, checked",
            cat_throughput,
            256,
            8,
            "proc",
        ),
    )
