"""The trio driver: asyncio programs and libraries running inside ``trio.run``.

Every test runs a real trio program (``trio.run``), most of them under
``trio.testing.MockClock(autojump_threshold=0)`` so that hours of asyncio timers pass at once
and exactly; the networking tests use real sockets and the real clock.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

trio = pytest.importorskip("trio")
trio_testing = pytest.importorskip("trio.testing")
sniffio = pytest.importorskip("sniffio")

import sansloop  # noqa: E402  (after the skip: sansloop.trio needs trio)
import sansloop.trio as st  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _run(main: Callable[[], Any], *, mock: bool = True) -> Any:
    """trio.run(main), in virtual time unless ``mock`` is False."""
    if mock:
        return trio.run(main, clock=trio_testing.MockClock(autojump_threshold=0))
    return trio.run(main)


# -- the loop as a guest ----------------------------------------------------------------


def test_asyncio_code_sees_a_running_loop_only_inside_the_loop() -> None:
    seen: dict[str, Any] = {}

    async def aio() -> str:
        loop = asyncio.get_running_loop()
        seen["running"] = loop
        seen["task"] = asyncio.current_task()
        seen["library"] = sniffio.current_async_library()
        await asyncio.sleep(0)
        return "done"

    async def main() -> None:
        async with st.open_loop() as loop:
            assert isinstance(loop, sansloop.EventLoop)
            assert loop.is_running()
            assert st.current_loop() is loop
            assert await st.run_aio(aio) == "done"
            assert seen["running"] is loop
            assert isinstance(seen["task"], asyncio.Task)
            assert seen["library"] == "asyncio"
            # Between batches, trio code sees neither a running asyncio loop nor asyncio.
            assert asyncio._get_running_loop() is None
            assert sniffio.current_async_library() == "trio"
        assert loop.is_closed()
        assert not loop.is_running()

    _run(main)


def test_run_aio_takes_functions_coroutines_and_futures() -> None:
    async def main() -> None:
        async with st.open_loop() as loop:
            assert await st.run_aio(asyncio.sleep, 1, "by function") == "by function"
            assert await st.run_aio(asyncio.sleep(1, "by coroutine")) == "by coroutine"
            fut = loop.create_future()
            loop.call_later(5, fut.set_result, "by future")
            assert await st.run_aio(fut) == "by future"
            # A function is called inside the loop, so asyncio.gather() finds it.
            assert await st.run_aio(asyncio.gather, asyncio.sleep(1, 1), asyncio.sleep(2, 2)) == [
                1,
                2,
            ]
            with pytest.raises(TypeError, match="awaitable"):
                await st.run_aio(42)  # type: ignore[arg-type]

    _run(main)


def test_outside_a_session_the_bridges_say_so() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="open_loop"):
            await st.run_aio(asyncio.sleep, 0)
        with pytest.raises(RuntimeError, match="open_loop"):
            st.current_loop()

    _run(main)


# -- time -------------------------------------------------------------------------------


def test_mock_clock_autojump_drives_asyncio_timers() -> None:
    async def aio() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        slept = loop.time() - start
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 10)
        return slept, loop.time() - start

    async def main() -> None:
        async with st.open_loop() as loop:
            start = trio.current_time()
            assert loop.time() == start
            slept, total = await st.run_aio(aio)
            assert slept == pytest.approx(3600, abs=1e-6)
            assert total == pytest.approx(3610, abs=1e-6)
            assert trio.current_time() - start == pytest.approx(3610, abs=1e-6)

    _run(main)


def test_asyncio_and_trio_timers_interleave_in_one_timeline() -> None:
    order: list[tuple[str, float]] = []

    async def aio_sleeper(delay: float) -> None:
        await asyncio.sleep(delay)
        order.append(("asyncio", delay))

    async def trio_sleeper(delay: float) -> None:
        await trio.sleep(delay)
        order.append(("trio", delay))

    async def main() -> None:
        async with st.open_loop(), trio.open_nursery() as nursery:
            for delay in (1, 3, 5):
                nursery.start_soon(st.run_aio, aio_sleeper, delay)
            for delay in (2, 4):
                nursery.start_soon(trio_sleeper, delay)

    _run(main)
    assert [delay for _, delay in order] == [1, 2, 3, 4, 5]
    assert [side for side, _ in order] == ["asyncio", "trio", "asyncio", "trio", "asyncio"]


# -- exceptions both ways ---------------------------------------------------------------


class Boom(Exception):
    pass


def test_exceptions_cross_both_ways_as_themselves() -> None:
    raised = Boom("from asyncio")
    trio_raised = Boom("from trio")

    async def aio_fails() -> None:
        await asyncio.sleep(1)
        raise raised

    async def trio_fails() -> None:
        await trio.sleep(1)
        raise trio_raised

    async def aio_calls_trio() -> BaseException | None:
        try:
            await st.run_trio(trio_fails)
        except Boom as exc:
            return exc
        return None

    async def main() -> None:
        async with st.open_loop():
            with pytest.raises(Boom) as info:
                await st.run_aio(aio_fails)
            assert info.value is raised
            assert await st.run_aio(aio_calls_trio) is trio_raised

    _run(main)


def test_an_error_in_the_block_comes_out_unwrapped_after_shutdown() -> None:
    cancelled = []

    async def pending() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        async with st.open_loop() as loop:
            loop.create_task(pending())
            await trio.sleep(1)
            raise Boom("body")

    with pytest.raises(Boom, match="body"):
        _run(main)
    assert cancelled == [True]


class Leave(SystemExit):
    pass


def test_system_exit_in_asyncio_code_ends_the_block_without_hanging() -> None:
    """SystemExit escapes the loop's callbacks (as in asyncio): the driver task ends with it,
    trio code awaiting asyncio work is released, and it comes out of open_loop unwrapped."""

    async def aio() -> None:
        await asyncio.sleep(1)
        raise Leave(3)

    async def main() -> None:
        async with st.open_loop():
            await st.run_aio(aio)

    with pytest.raises(Leave) as info:
        _run(main)
    assert info.value.code == 3


def test_sansloop_run_with_the_trio_driver() -> None:
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(0.01)
        return sniffio.current_async_library(), loop.time() - start

    library, took = sansloop.run(main(), driver="trio")
    assert library == "asyncio"
    assert took >= 0.01

    async def fails() -> None:
        raise Boom("main")

    with pytest.raises(Boom, match="main"):
        sansloop.run(fails(), driver="trio")
    assert st.run(asyncio.sleep(0, "direct")) == "direct"


# -- cancellation both ways -------------------------------------------------------------


def test_a_trio_cancel_scope_cancels_the_asyncio_work_it_awaits() -> None:
    seen: list[str] = []

    async def aio() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("asyncio cancelled")
            await asyncio.sleep(1)  # clean-up that takes time still runs to the end
            seen.append("cleaned up")
            raise

    async def main() -> None:
        async with st.open_loop():
            start = trio.current_time()
            with trio.move_on_after(10) as scope:
                await st.run_aio(aio)
            assert scope.cancelled_caught
            assert trio.current_time() - start == pytest.approx(11)

    _run(main)
    assert seen == ["asyncio cancelled", "cleaned up"]


def test_asyncio_work_that_survives_cancellation_returns_its_value() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "kept"
        return "slept"

    async def main() -> None:
        async with st.open_loop():
            with trio.CancelScope() as scope:
                scope.deadline = trio.current_time() + 5
                assert await st.run_aio(stubborn) == "kept"
                # The cancellation is not lost: the next checkpoint raises it.
                await trio.sleep(0)
                pytest.fail("not cancelled")
            assert scope.cancelled_caught

    _run(main)


def test_cancelling_an_asyncio_task_cancels_the_trio_code_it_awaits() -> None:
    events: list[str] = []

    async def trio_side() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            events.append("trio cancelled")
            with trio.CancelScope(shield=True):
                await trio.sleep(2)  # unwinding takes time; asyncio waits for it
            events.append("trio unwound")
            raise

    async def aio() -> None:
        task = asyncio.create_task(_await_trio(trio_side))
        await asyncio.sleep(5)
        task.cancel("stop it")
        with pytest.raises(asyncio.CancelledError):
            await task
        events.append("asyncio task ended")

    async def main() -> None:
        async with st.open_loop():
            await st.run_aio(aio)

    _run(main)
    assert events == ["trio cancelled", "trio unwound", "asyncio task ended"]


async def _await_trio(fn: Callable[..., Any], *args: Any) -> Any:
    return await st.run_trio(fn, *args)


def test_asyncio_timeouts_apply_to_trio_calls() -> None:
    async def aio() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3):
                await st.run_trio(trio.sleep, 3600)
        first = loop.time() - start
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(st.run_trio(trio.sleep_forever), 4)
        return first, loop.time() - start

    async def main() -> None:
        async with st.open_loop():
            first, total = await st.run_aio(aio)
            assert first == pytest.approx(3)
            assert total == pytest.approx(7)

    _run(main)


def test_a_trio_call_that_survives_cancellation_returns_its_value() -> None:
    async def shielded() -> str:
        with trio.CancelScope(shield=True):
            await trio.sleep(5)
        return "finished"

    async def aio() -> str:
        call = st.run_trio(shielded)
        await asyncio.sleep(1)
        assert call.cancel()
        assert not call.done()  # ends when the trio code does
        result: str = await call
        return result

    async def main() -> None:
        async with st.open_loop():
            assert await st.run_aio(aio) == "finished"

    _run(main)


_cvar: contextvars.ContextVar[str] = contextvars.ContextVar("sansloop_test_cvar")


def test_context_variables_flow_into_each_crossing_and_not_back() -> None:
    """As with a new task on either side: the callee starts with a copy of the caller's
    context, and what it sets stays its own."""

    async def in_trio() -> str:
        seen = _cvar.get()
        _cvar.set("trio")
        return seen

    async def in_asyncio() -> list[str]:
        seen = [_cvar.get()]
        _cvar.set("asyncio")
        seen.append(await st.run_trio(in_trio))
        seen.append(_cvar.get())
        return seen

    async def main() -> None:
        _cvar.set("outer")
        async with st.open_loop():
            assert await st.run_aio(in_asyncio) == ["outer", "asyncio", "asyncio"]
            assert _cvar.get() == "outer"

    _run(main)


# -- adapters: what trio-asyncio users write ----------------------------------------------


class _AioResource:
    """An asyncio async context manager that needs its loop to enter and to exit."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __aenter__(self) -> _AioResource:
        await asyncio.sleep(1)
        self.events.append(f"enter {sniffio.current_async_library()}")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.sleep(1)
        self.events.append(f"exit {exc_info[0].__name__ if exc_info[0] else None}")


def test_asyncio_context_managers_iterators_and_functions_from_trio() -> None:
    closed = []

    async def numbers() -> Any:
        try:
            for i in range(10):
                await asyncio.sleep(1)
                yield i
        finally:
            closed.append(True)

    async def main() -> None:
        async with st.open_loop():
            resource = _AioResource()
            async with st.aio_as_trio(resource) as entered:
                assert entered is resource
            with pytest.raises(Boom):
                async with st.aio_as_trio(resource):
                    raise Boom
            assert resource.events == ["enter asyncio", "exit None", "enter asyncio", "exit Boom"]
            assert [i async for i in st.aio_as_trio(numbers())] == list(range(10))
            # Leaving early: aclose() finalizes the generator on its loop.
            early = st.aio_as_trio(numbers())
            async for i in early:
                if i == 2:
                    break
            await early.aclose()
            assert closed == [True, True]
            assert await st.aio_as_trio(asyncio.sleep)(1, "called") == "called"

    _run(main)


def test_trio_context_managers_iterators_and_functions_from_asyncio() -> None:
    events: list[str] = []

    class TrioResource:
        async def __aenter__(self) -> str:
            await trio.sleep(1)
            events.append(f"enter {sniffio.current_async_library()}")
            return "resource"

        async def __aexit__(self, *exc_info: Any) -> None:
            await trio.sleep(1)
            events.append("exit")

    async def trio_numbers() -> Any:
        for i in range(5):
            await trio.sleep(1)
            yield i

    async def aio() -> list[Any]:
        got: list[Any] = []
        async with st.trio_as_aio(TrioResource()) as value:
            got.append(value)
        got.append([i async for i in st.trio_as_aio(trio_numbers())])
        got.append(await st.trio_as_aio(trio.sleep)(1))
        return got

    async def main() -> None:
        async with st.open_loop():
            assert await st.run_aio(aio) == ["resource", [0, 1, 2, 3, 4], None]

    _run(main)
    assert events == ["enter trio", "exit"]


# -- many tasks on both sides -----------------------------------------------------------


def test_many_concurrent_tasks_on_both_sides() -> None:
    count = 500
    results: list[int] = []

    async def trio_double(i: int) -> int:
        await trio.sleep(i % 7)
        return i * 2

    async def aio_worker(i: int) -> None:
        await asyncio.sleep(i % 5)
        results.append(await st.run_trio(trio_double, i))

    async def trio_worker(i: int) -> None:
        await trio.sleep(i % 3)
        await st.run_aio(aio_worker, i)

    async def main() -> None:
        async with st.open_loop(), trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(trio_worker, i)

    _run(main)
    assert sorted(results) == [i * 2 for i in range(count)]


# -- wake-ups ---------------------------------------------------------------------------


def test_call_soon_threadsafe_and_executors_wake_the_loop() -> None:
    def blocking(x: int) -> int:
        return x + 1

    async def aio() -> list[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        thread = threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, "t"))
        thread.start()
        got = [await fut]
        thread.join()
        got.append(await loop.run_in_executor(None, blocking, 1))
        got.append(await asyncio.to_thread(blocking, 2))
        return got

    async def main() -> None:
        async with st.open_loop():
            assert await st.run_aio(aio) == ["t", 2, 3]

    _run(main, mock=False)


def test_trio_code_handing_the_loop_work_wakes_it() -> None:
    """A trio task completes an asyncio future directly (no bridge call): the parked loop
    notices before trio blocks, so the waiter does not sleep until its own timeout."""

    async def main() -> None:
        async with st.open_loop() as loop:
            fut = loop.create_future()
            waiter = loop.create_task(asyncio.wait_for(fut, 3600))
            await trio.sleep(1)
            start = loop.time()
            fut.set_result("handed over")
            assert await st.run_aio(waiter) == "handed over"
            assert loop.time() - start < 1
            # A timer scheduled from trio code, earlier than the one the loop sleeps for.
            done = loop.create_future()
            loop.create_task(asyncio.sleep(3600))
            await trio.sleep(0.5)
            loop.call_later(2, done.set_result, "timer")
            start = loop.time()
            assert await st.run_aio(done) == "timer"
            assert loop.time() - start == pytest.approx(2)

    _run(main)


def test_a_busy_asyncio_loop_still_lets_trio_run() -> None:
    """asyncio code spinning on sleep(0) until trio code (needing many checkpoints of its
    own) sets a flag: the loop's back-to-back batches must not starve trio."""
    flag = []

    async def trio_side() -> None:
        for _ in range(100):
            await trio.lowlevel.checkpoint()
        flag.append(True)

    async def spin() -> int:
        spins = 0
        while not flag:
            spins += 1
            await asyncio.sleep(0)
        return spins

    async def main() -> None:
        async with st.open_loop(), trio.open_nursery() as nursery:
            nursery.start_soon(trio_side)
            assert await st.run_aio(spin) > 0

    _run(main)


def test_loop_stop_from_asyncio_does_not_strand_the_block() -> None:
    async def main() -> None:
        async with st.open_loop() as loop:
            loop.call_soon(loop.stop)
            assert await st.run_aio(asyncio.sleep, 1, "still running") == "still running"

    _run(main)


# -- closing ----------------------------------------------------------------------------


def test_closing_cancels_pending_work_on_both_sides_and_reports_failures() -> None:
    events: list[str] = []
    reported: list[dict[str, Any]] = []

    async def aio_pending() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("asyncio task cancelled")

    async def aio_fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise Boom("during shutdown") from None

    async def trio_pending() -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append("trio call cancelled")

    async def main() -> None:
        async with st.open_loop() as loop:
            loop.set_exception_handler(lambda loop, context: reported.append(context))
            loop.create_task(aio_pending())
            loop.create_task(aio_fails_on_cancel())
            call = st.run_trio(trio_pending)
            loop.call_later(3600, events.append, "timer ran")
            await trio.sleep(1)
        assert loop.is_closed()
        assert call.cancelled()

    _run(main)
    assert sorted(events) == ["asyncio task cancelled", "trio call cancelled"]
    assert [type(context["exception"]) for context in reported] == [Boom]
    assert "shutdown" in reported[0]["message"]


def test_cancelling_the_whole_block_shuts_down_in_order() -> None:
    events: list[str] = []

    async def aio() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(1)
            events.append("asyncio cleaned up")
            raise

    async def main() -> None:
        with trio.move_on_after(10) as scope:
            async with st.open_loop() as loop:
                loop.create_task(aio())
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert loop.is_closed()

    _run(main)
    assert events == ["asyncio cleaned up"]


def test_async_generators_belong_to_their_side() -> None:
    closed: list[str] = []

    async def aio_gen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # needs the asyncio loop to finalize
            closed.append("asyncio")

    async def trio_gen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            await trio.sleep(0)
            closed.append("trio")

    async def aio() -> None:
        gen = aio_gen()
        assert await gen.__anext__() == 1
        # Left unfinished: shutdown_asyncgens() closes it on the asyncio loop.

    async def main() -> None:
        async with st.open_loop():
            await st.run_aio(aio)
            gen = trio_gen()
            assert await gen.__anext__() == 1
            await gen.aclose()

    _run(main)
    assert sorted(closed) == ["asyncio", "trio"]


# -- I/O --------------------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _streams_echo(clients: int, rounds: int) -> int:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def client(i: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        total = 0
        for n in range(rounds):
            payload = bytes([i % 256]) * (1 + (n * 7919) % 200_000)
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            total += len(payload)
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        return total

    try:
        totals = await asyncio.gather(*(client(i) for i in range(clients)))
    finally:
        server.close()
        await server.wait_closed()
    return sum(totals)


@pytest.mark.usefixtures("no_fd_leak")
def test_asyncio_streams_echo_server_and_client_inside_trio() -> None:
    async def main() -> int:
        # trio keeps doing its own work at the same time.
        async with st.open_loop(), trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0.01)
            return await st.run_aio(_streams_echo, 5, 20)

    assert _run(main, mock=False) > 0


@pytest.mark.usefixtures("no_fd_leak")
def test_sock_operations_and_readiness_callbacks() -> None:
    async def aio() -> list[Any]:
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        got: list[Any] = []
        try:
            accepting = loop.create_task(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            server, _ = await accepting
            with server:
                # A receive that has to wait, then the data that completes it.
                receiving = loop.create_task(loop.sock_recv(server, 100))
                await asyncio.sleep(0.01)
                await loop.sock_sendall(client, b"hello")
                got.append(await receiving)
                # A big sendall that must wait for the peer to read.
                big = b"x" * 5_000_000
                sending = loop.create_task(loop.sock_sendall(client, big))
                received = bytearray()
                while len(received) < len(big):
                    received += await loop.sock_recv(server, 1 << 20)
                await sending
                got.append(len(received))
                # add_reader / remove_reader.
                readable = loop.create_future()
                loop.add_reader(server, lambda: readable.done() or readable.set_result("r"))
                await loop.sock_sendall(client, b"!")
                got.append(await readable)
                assert loop.remove_reader(server)
                assert not loop.remove_reader(server)
                assert await loop.sock_recv(server, 10) == b"!"
                # A cancelled receive leaves no watcher behind it.
                pending = loop.create_task(loop.sock_recv(server, 10))
                await asyncio.sleep(0.01)
                pending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await pending
                await loop.sock_sendall(client, b"?")
                got.append(await loop.sock_recv(server, 10))
        finally:
            client.close()
            listener.close()
        return got

    async def main() -> list[Any]:
        async with st.open_loop():
            return await st.run_aio(aio)

    assert _run(main, mock=False) == [b"hello", 5_000_000, "r", b"?"]


@pytest.mark.usefixtures("no_fd_leak")
def test_datagram_endpoint() -> None:
    async def aio() -> bytes:
        loop = asyncio.get_running_loop()
        received = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.transport.sendto(data.upper(), addr)

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                received.set_result(data)

        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        client, _ = await loop.create_datagram_endpoint(
            Client, remote_addr=server.get_extra_info("sockname")
        )
        try:
            client.sendto(b"ping")
            return await asyncio.wait_for(received, 10)  # type: ignore[no-any-return]
        finally:
            client.close()
            server.close()

    async def main() -> bytes:
        async with st.open_loop():
            return await st.run_aio(aio)

    assert _run(main, mock=False) == b"PING"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signal_handlers_go_through_trio() -> None:
    async def aio() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        arrived = asyncio.Event()

        def on_signal(sig: int) -> None:
            got.append(sig)
            arrived.set()

        loop.add_signal_handler(signal.SIGUSR1, on_signal, signal.SIGUSR1)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1)
        with pytest.raises(RuntimeError, match="cannot be caught"):
            loop.add_signal_handler(signal.SIGKILL, on_signal)
        return got

    async def main() -> list[int]:
        async with st.open_loop():
            return await st.run_aio(aio)

    before = signal.getsignal(signal.SIGUSR1)
    assert _run(main, mock=False) == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_the_loop_leaves_no_watcher_or_task_behind() -> None:
    async def main() -> None:
        await trio.sleep(0.01)  # trio's own tasks settle first
        before = trio.lowlevel.current_statistics()
        a, b = socket.socketpair()
        with a, b:
            async with st.open_loop() as loop:
                loop.add_reader(a, lambda: None)
                loop.add_writer(b, lambda: None)
                call = st.run_trio(trio.sleep_forever)
                await trio.sleep(0.01)
                during = trio.lowlevel.current_statistics()
                assert (
                    during.io_statistics.tasks_waiting_read
                    > before.io_statistics.tasks_waiting_read
                )
            after = trio.lowlevel.current_statistics()
        assert call.cancelled()
        assert after.tasks_living == before.tasks_living
        assert after.io_statistics.tasks_waiting_read == before.io_statistics.tasks_waiting_read
        assert after.io_statistics.tasks_waiting_write == before.io_statistics.tasks_waiting_write

    _run(main, mock=False)


# -- hosted: an ordinary loop, each run a trio run --------------------------------------


@pytest.mark.usefixtures("no_fd_leak")
def test_hosted_loop_runs_each_run_in_trio() -> None:
    loop = sansloop.new_event_loop(driver="trio")
    try:

        async def library_and_time() -> tuple[str, float]:
            start = loop.time()
            await asyncio.sleep(0.01)
            return sniffio.current_async_library(), loop.time() - start

        library, took = loop.run_until_complete(library_and_time())
        assert library == "asyncio"
        assert took >= 0.01
        # Readiness callbacks outlive a run: the next run watches the descriptor again.
        a, b = socket.socketpair()
        with a, b:
            got: list[bytes] = []
            loop.add_reader(a, lambda: got.append(a.recv(100)))
            b.send(b"first")
            loop.run_until_complete(asyncio.sleep(0.05))
            b.send(b"second")
            loop.run_until_complete(asyncio.sleep(0.05))
            assert loop.remove_reader(a)
        assert got == [b"first", b"second"]
        # Streams, executors and errors, as on any loop.
        assert loop.run_until_complete(_streams_echo(2, 5)) > 0
        assert loop.run_until_complete(asyncio.to_thread(pow, 2, 10)) == 1024

        async def fails() -> None:
            raise Boom("hosted")

        with pytest.raises(Boom, match="hosted"):
            loop.run_until_complete(fails())
        # Signal handlers: plain Python handlers, woken through trio's own wake-up fd.
        before = signal.getsignal(signal.SIGUSR1)
        signals: list[int] = []

        async def wait_for_signal() -> None:
            os.kill(os.getpid(), signal.SIGUSR1)
            while not signals:
                await asyncio.sleep(0.001)

        loop.add_signal_handler(signal.SIGUSR1, signals.append, signal.SIGUSR1)
        loop.run_until_complete(asyncio.wait_for(wait_for_signal(), 10))
        assert signals == [signal.SIGUSR1]
        assert loop.remove_signal_handler(signal.SIGUSR1)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
        signal.signal(signal.SIGUSR1, before)
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def test_a_guest_loop_cannot_be_run_by_hand() -> None:
    async def main() -> None:
        async with st.open_loop() as loop:
            coro = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="already running"):
                loop.run_until_complete(coro)
            coro.close()

    _run(main)


def test_asyncio_runner_on_the_hosted_driver() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return sniffio.current_async_library()

    with asyncio.Runner(loop_factory=lambda: sansloop.new_event_loop(driver="trio")) as runner:
        assert runner.run(main()) == "asyncio"


# -- subprocesses, pipes and TLS through the trio driver ----------------------------------


def _no_children() -> None:
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.mark.skipif(sys.platform == "win32", reason="no subprocesses on the trio driver there")
@pytest.mark.usefixtures("no_fd_leak")
def test_subprocesses_inside_trio() -> None:
    async def aio() -> list[Any]:
        code = "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data.upper())"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"piped " * 50_000)
        # Many children exiting together, one killed.
        sleepers = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", f"raise SystemExit({i})")
            for i in range(10)
        ]
        victim = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(60)"
        )
        victim.kill()
        codes = await asyncio.gather(*(p.wait() for p in [*sleepers, victim]))
        return [out == b"PIPED " * 50_000, proc.returncode, codes]

    async def main() -> list[Any]:
        async with st.open_loop():
            return await st.run_aio(aio)

    assert _run(main, mock=False) == [True, 0, [*range(10), -signal.SIGKILL]]
    _no_children()


@pytest.mark.skipif(sys.platform == "win32", reason="no pipes on the trio driver there")
@pytest.mark.usefixtures("no_fd_leak")
def test_pipe_transports_inside_trio() -> None:
    async def aio() -> bytes:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        reader = asyncio.StreamReader()
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
        )
        write_transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(write_fd, "wb", 0)
        )
        write_transport.write(b"x" * 1_000_000)
        write_transport.close()
        data = await reader.read()
        read_transport.close()
        return data

    async def main() -> bytes:
        async with st.open_loop():
            return await st.run_aio(aio)

    assert _run(main, mock=False) == b"x" * 1_000_000


@pytest.mark.usefixtures("no_fd_leak")
def test_tls_inside_trio() -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def aio() -> tuple[bytes, Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(100_000))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "localhost", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("localhost", port, ssl=client_context)
        writer.write(b"t" * 100_000)
        echoed = await reader.readexactly(100_000)
        cert = writer.get_extra_info("peercert")["subjectAltName"]
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return echoed, cert

    async def main() -> tuple[bytes, Any]:
        async with st.open_loop():
            return await st.run_aio(aio)

    assert _run(main, mock=False) == (b"t" * 100_000, (("DNS", "localhost"),))


@pytest.mark.skipif(sys.platform == "win32", reason="no subprocesses on the trio driver there")
@pytest.mark.usefixtures("no_fd_leak")
def test_closing_a_hosted_loop_while_a_child_is_watched() -> None:
    loop = sansloop.new_event_loop(driver="trio")
    try:

        async def start() -> asyncio.SubprocessTransport:
            transport, _ = await loop.subprocess_exec(
                asyncio.SubprocessProtocol,
                sys.executable,
                "-c",
                "pass",
                stdin=None,
                stdout=None,
                stderr=None,
            )
            return transport

        transport = loop.run_until_complete(start())
        transport.get_extra_info("subprocess").wait()  # the loop has not heard yet
        transport.close()
    finally:
        loop.close()  # the reaper lets go of its watch first, then the driver closes
    _no_children()
