"""Public-API checks that stand in for CPython conformance tests that cannot run as written.

Each test here is named by a rule in ``conformance/_rules.py``: the CPython test checks a
public behaviour through mocks of asyncio's internals (a patched module attribute, a private
method), which sansloop does not go through, so the same behaviour is checked here through the
public API, on sansloop and on asyncio's ``SelectorEventLoop`` with the same assertions.  Fixes
of sansloop bugs that a conformance run found get their regression test here too.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable

import pytest
from _net import HAS_UNIX, run

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak")

needs_unix = pytest.mark.skipif(not HAS_UNIX, reason="no Unix sockets")


@needs_unix
def test_unix_server_bind_failure_closes_the_socket(
    any_loop: asyncio.AbstractEventLoop, fd_count: Callable[[], int]
) -> None:
    # Stands in for test_unix_events' test_create_unix_server_bind_error (a mocked socket).
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "missing-directory", "sock")

        async def main() -> None:
            before = fd_count()
            with pytest.raises(FileNotFoundError) as info:
                await any_loop.create_unix_server(asyncio.Protocol, path)
            # Counted while the error (and its traceback's frames) is still alive: a socket
            # left open by the failed call would show here, before any garbage collection.
            assert fd_count() == before
            assert info.value.errno == errno.ENOENT

        run(any_loop, main())


def test_patching_base_transport_get_extra_info_reaches_the_transport(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    # Found by the websockets test-suite: it patches asyncio.BaseTransport.get_extra_info.
    import socket
    from unittest import mock

    async def main() -> None:
        a, b = socket.socketpair()
        try:
            transport, _ = await any_loop.create_connection(asyncio.Protocol, sock=a)
            with mock.patch("asyncio.BaseTransport.get_extra_info", return_value=("x", 1)):
                assert transport.get_extra_info("sockname") == ("x", 1)
            assert transport.get_extra_info("socket") is not None
            transport.close()
            await asyncio.sleep(0)
        finally:
            b.close()

    run(any_loop, main())


def test_server_has_asyncios_ssl_attributes(any_loop: asyncio.AbstractEventLoop) -> None:
    # Found by the websockets test-suite: its helpers read Server._ssl_context.
    async def main() -> None:
        server = await any_loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        assert server._ssl_context is None  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()

    run(any_loop, main())
