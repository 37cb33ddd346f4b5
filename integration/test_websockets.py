"""The websockets library's asyncio server and client, over TCP and a Unix socket."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import pytest
from conftest import assert_on_the_right_loop

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect, unix_connect  # noqa: E402
from websockets.asyncio.server import serve, unix_serve  # noqa: E402


async def _echo(ws: Any) -> None:
    assert_on_the_right_loop()
    async for message in ws:
        await ws.send(message)


def test_echo_text_and_binary(run: Any) -> None:
    async def main() -> None:
        async with serve(_echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                for i in range(200):
                    await ws.send(f"text {i}")
                    assert await ws.recv() == f"text {i}"
                big = os.urandom(900_000)  # Under the default 1 MiB message limit.
                await ws.send(big)
                assert await ws.recv() == big

    run(main())


def test_many_clients_and_broadcast(run: Any) -> None:
    async def main() -> None:
        clients: set[Any] = set()
        ready = asyncio.Event()

        async def handler(ws: Any) -> None:
            clients.add(ws)
            if len(clients) == 20:
                ready.set()
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            connections = [await connect(f"ws://127.0.0.1:{port}") for _ in range(20)]
            await ready.wait()
            websockets.broadcast(clients, "to everyone")
            received = await asyncio.gather(*(ws.recv() for ws in connections))
            assert received == ["to everyone"] * 20
            await asyncio.gather(*(ws.close() for ws in connections))

    run(main())


def test_unix_socket(run: Any) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ws.sock")
            async with unix_serve(_echo, path), unix_connect(path) as ws:
                await ws.send("over a Unix socket")
                assert await ws.recv() == "over a Unix socket"

    run(main())


def test_ping_and_close_codes(run: Any) -> None:
    async def main() -> None:
        async def closer(ws: Any) -> None:
            await ws.recv()
            await ws.close(code=4000, reason="done")

        async with serve(closer, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                latency = await (await ws.ping())
                assert latency >= 0
                await ws.send("bye")
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 4000
                assert ws.close_reason == "done"

    run(main())
