"""Real asyncio libraries inside ``trio.run`` on the trio driver.

Each library is skipped when it is not installed (they belong to the ``integration``
dependency group).  Every handler checks that it runs on the session's loop and that sniffio
says "asyncio" there, which is what anyio-based libraries (httpx) decide by.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

trio = pytest.importorskip("trio")
sniffio = pytest.importorskip("sniffio")

import sansloop.trio as st  # noqa: E402  (after the skip: sansloop.trio needs trio)


def _optional(name: str) -> Any:
    """Import ``name`` now (an import inside a test would upset the fd count), or None."""
    try:
        return __import__(name)
    except ImportError:
        return None


aiohttp = _optional("aiohttp")
httpx = _optional("httpx")
uvicorn = _optional("uvicorn")
websockets = _optional("websockets")
needs = {
    name: pytest.mark.skipif(module is None, reason=f"{name} is not installed")
    for name, module in [
        ("aiohttp", aiohttp),
        ("httpx", httpx),
        ("uvicorn", uvicorn),
        ("websockets", websockets),
    ]
}

pytestmark = pytest.mark.timeout(60)


def _check_side() -> None:
    assert asyncio.get_running_loop() is st.current_loop()
    assert sniffio.current_async_library() == "asyncio"


def _in_trio(aio_main: Any) -> Any:
    async def main() -> Any:
        # trio keeps its own tasks going beside the asyncio program.
        async with st.open_loop(), trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0.05)
            return await st.run_aio(aio_main)

    return trio.run(main)


@needs["aiohttp"]
@pytest.mark.usefixtures("no_fd_leak")
def test_aiohttp_server_and_client() -> None:
    from aiohttp import web

    async def hello(request: Any) -> Any:
        _check_side()
        # The handler awaits trio code in the middle of a request.
        await st.run_trio(trio.sleep, 0.001)
        return web.json_response({"path": request.path, "size": len(await request.read())})

    async def ws_echo(request: Any) -> Any:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data.upper())
        return ws

    async def aio_main() -> list[Any]:
        app = web.Application()
        app.router.add_route("*", "/ws", ws_echo)
        app.router.add_route("*", "/{tail:.*}", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        results: list[Any] = []
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/up", data=b"x" * 300_000) as r:
                    results.append(await r.json())
                answers = await asyncio.gather(
                    *(session.get(f"http://127.0.0.1:{port}/n/{i}") for i in range(50))
                )
                results.append(sorted([(await a.json())["path"] for a in answers])[:2])
                for answer in answers:
                    answer.release()
                async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    await ws.send_str("hello")
                    results.append((await ws.receive()).data)
        finally:
            await runner.cleanup()
        return results

    assert _in_trio(aio_main) == [
        {"path": "/up", "size": 300_000},
        ["/n/0", "/n/1"],
        "HELLO",
    ]


@needs["aiohttp"]
@pytest.mark.usefixtures("no_fd_leak")
def test_aiohttp_client_used_from_trio_code() -> None:
    """trio code drives an aiohttp client session directly, through aio_as_trio, against an
    aiohttp server running on the same loop."""
    from aiohttp import web

    async def hello(request: Any) -> Any:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def main() -> list[str]:
        async with st.open_loop():
            app = web.Application()
            app.router.add_get("/{name}", hello)
            runner = web.AppRunner(app)
            await st.run_aio(runner.setup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await st.run_aio(site.start)
            port = runner.addresses[0][1]
            texts: list[str] = []
            try:
                # Made inside the loop: a ClientSession needs a running loop.
                new_session = await st.run_aio(aiohttp.ClientSession)
                async with st.aio_as_trio(new_session) as session:

                    async def fetch(name: str) -> None:
                        response = await st.aio_as_trio(session.get)(
                            f"http://127.0.0.1:{port}/{name}"
                        )
                        async with st.aio_as_trio(response):
                            texts.append(await st.aio_as_trio(response.text)())

                    async with trio.open_nursery() as nursery:
                        for name in ("a", "b", "c"):
                            nursery.start_soon(fetch, name)
            finally:
                await st.run_aio(runner.cleanup)
            return sorted(texts)

    assert trio.run(main) == ["hello a", "hello b", "hello c"]


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    _check_side()
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = json.dumps({"path": scope["path"], "length": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


@needs["httpx"]
@needs["uvicorn"]
def test_httpx_against_uvicorn() -> None:
    # No fd count here: uvicorn closes a /dev/null descriptor that pytest opened.
    async def aio_main() -> list[Any]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(_asgi_app, loop="none", log_level="warning", lifespan="on")
        )
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                first = (await client.post("/upload", content=b"y" * 100_000)).json()
                many = await asyncio.gather(*(client.get(f"/n/{i}") for i in range(50)))
                return [first, sum(r.status_code == 200 for r in many)]
        finally:
            server.should_exit = True
            await task
            sock.close()

    assert _in_trio(aio_main) == [{"path": "/upload", "length": 100_000}, 50]


@needs["websockets"]
@pytest.mark.usefixtures("no_fd_leak")
def test_websockets_server_and_client() -> None:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        _check_side()
        async for message in ws:
            await ws.send(message)

    async def aio_main() -> list[Any]:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send("text")
                await ws.send(b"\x00binary")
                return [await ws.recv(), await ws.recv()]

    assert _in_trio(aio_main) == ["text", b"\x00binary"]
