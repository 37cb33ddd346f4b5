"""aiohttp's server and client talking to each other over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import assert_on_the_right_loop

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

_PEERS = web.AppKey("peers", set)


async def _started(app: Any, ssl_context: Any = None) -> tuple[Any, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if ssl_context is not None:
        return runner, f"https://localhost:{port}"
    return runner, f"http://127.0.0.1:{port}"


def _app() -> Any:
    async def hello(request: Any) -> Any:
        assert_on_the_right_loop()
        request.app[_PEERS].add(request.transport.get_extra_info("peername"))
        return web.Response(text="hello " + request.query.get("name", "world"))

    async def echo(request: Any) -> Any:
        body = await request.read()
        return web.Response(body=body, headers={"X-Length": str(len(body))})

    async def digest(request: Any) -> Any:
        # Reads a chunked request body piece by piece.
        sha = hashlib.sha256()
        async for chunk in request.content.iter_chunked(65536):
            sha.update(chunk)
        return web.Response(text=sha.hexdigest())

    async def stream(request: Any) -> Any:
        # A chunked response, written in pieces with drains in between.
        size = int(request.query["size"])
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def websocket(request: Any) -> Any:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data.upper())
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_PEERS] = set()
    app.add_routes(
        [
            web.get("/", hello),
            web.post("/echo", echo),
            web.post("/digest", digest),
            web.get("/stream", stream),
            web.get("/ws", websocket),
        ]
    )
    return app


def test_get_and_post(run: Any) -> None:
    async def main() -> None:
        runner, url = await _started(_app())
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/?name=sansloop") as response:
                    assert response.status == 200
                    assert await response.text() == "hello sansloop"
                body = os.urandom(200_000)
                async with session.post(url + "/echo", data=body) as response:
                    assert response.headers["X-Length"] == str(len(body))
                    assert await response.read() == body
        finally:
            await runner.cleanup()

    run(main())


def test_chunked_request_body(run: Any) -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]
            await asyncio.sleep(0)

    async def main() -> None:
        runner, url = await _started(_app())
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/digest", data=chunks()) as response,
            ):
                assert await response.text() == hashlib.sha256(payload).hexdigest()
        finally:
            await runner.cleanup()

    run(main())


def test_large_chunked_response_streamed(run: Any) -> None:
    size = 20 * 1024 * 1024 + 17
    block = bytes(range(256)) * 256

    async def main() -> None:
        runner, url = await _started(_app())
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url + "/stream", params={"size": str(size)}) as response,
            ):
                assert response.headers.get("Transfer-Encoding") == "chunked"
                received = 0
                sha = hashlib.sha256()
                async for chunk in response.content.iter_chunked(1 << 16):
                    sha.update(chunk)
                    received += len(chunk)
            expected = hashlib.sha256()
            for i in range(0, size, len(block)):
                expected.update(block[: min(len(block), size - i)])
            assert received == size
            assert sha.hexdigest() == expected.hexdigest()
        finally:
            await runner.cleanup()

    run(main())


def test_websockets_both_ways(run: Any) -> None:
    async def main() -> None:
        runner, url = await _started(_app())
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(url + "/ws") as ws:
                for i in range(100):
                    await ws.send_str(f"message {i}")
                    assert (await ws.receive_str()) == f"MESSAGE {i}"
                big = os.urandom(1_000_000)
                await ws.send_bytes(big)
                assert (await ws.receive_bytes()) == big[::-1]
                await ws.close()
        finally:
            await runner.cleanup()

    run(main())


def test_many_concurrent_requests_reuse_connections(run: Any) -> None:
    async def main() -> None:
        app = _app()
        runner, url = await _started(app)
        try:
            connector = aiohttp.TCPConnector(limit=10)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def one(i: int) -> str:
                    async with session.get(url + f"/?name={i}") as response:
                        return await response.text()

                answers = await asyncio.gather(*(one(i) for i in range(500)))
                assert answers == [f"hello {i}" for i in range(500)]
            # Keep-alive: 500 requests came over at most 10 connections.
            assert 1 <= len(app[_PEERS]) <= 10
        finally:
            await runner.cleanup()

    run(main())


def test_https_client_and_server(run: Any) -> None:
    """HTTPS and wss:// between aiohttp's client and server, certificates from a test CA."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def whoami(request: Any) -> Any:
        assert_on_the_right_loop()
        ssl_object = request.transport.get_extra_info("ssl_object")
        return web.Response(text=ssl_object.version() if ssl_object else "plain")

    async def main() -> None:
        app = _app()
        app.router.add_get("/tls", whoami)
        runner, url = await _started(app, server_ctx)
        try:
            connector = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(url + "/tls") as response:
                    assert (await response.text()).startswith("TLSv1")
                body = os.urandom(5_000_000)
                async with session.post(url + "/echo", data=body) as response:
                    assert await response.read() == body
                async with session.ws_connect(url + "/ws") as ws:
                    await ws.send_str("secure")
                    assert (await ws.receive_str()) == "SECURE"
                    await ws.close()
            # A client that does not trust the CA is refused.
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.get(url + "/tls")
        finally:
            await runner.cleanup()

    run(main())
