"""uvicorn serving an ASGI app in-process, with httpx (and websockets) as clients."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from conftest import assert_on_the_right_loop

uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A small ASGI app: JSON echo over HTTP, upper-casing echo over websockets."""
    assert_on_the_right_loop()
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = json.dumps(
            {"method": scope["method"], "path": scope["path"], "length": len(body)}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"].upper()})


async def _serve() -> tuple[Any, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, loop="none", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, port


def test_http_requests(run: Any) -> None:
    async def main() -> None:
        server, task, port = await _serve()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                response = await client.get("/hello")
                assert response.json() == {"method": "GET", "path": "/hello", "length": 0}
                response = await client.post("/upload", content=b"x" * 1_000_000)
                assert response.json()["length"] == 1_000_000
                answers = await asyncio.gather(*(client.get(f"/n/{i}") for i in range(200)))
                assert [r.json()["path"] for r in answers] == [f"/n/{i}" for i in range(200)]
        finally:
            server.should_exit = True
            await task

    run(main())


def test_websocket(run: Any) -> None:
    websockets = pytest.importorskip("websockets")

    async def main() -> None:
        server, task, port = await _serve()
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                for i in range(50):
                    await ws.send(f"hello {i}")
                    assert await ws.recv() == f"HELLO {i}"
        finally:
            server.should_exit = True
            await task

    run(main())
