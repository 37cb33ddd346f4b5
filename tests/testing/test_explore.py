"""Seeded exploration and replay in virtual time: asyncio's order by default, seeded
perturbation on request, the same seed giving the same trace, and Hypothesis shrinking
the seed."""

from __future__ import annotations

import asyncio
import random

import hypothesis
import pytest

from sansloop.drivers import Exploration, virtual_clock
from sansloop.testing import NondeterminismError, check_determinism, run_virtual, seeds

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak")


async def _race() -> list[str]:
    """Two clients send their name at the same virtual moment; the server notes the order."""
    order: list[str] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        order.append((await reader.readexactly(1)).decode())
        virtual_clock().mark("arrived", order[-1])
        writer.close()
        await writer.wait_closed()
        if len(order) == 2:
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 9999)

    async def client(name: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", 9999)
        writer.write(name.encode())
        await reader.read()
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(client("A"), client("B"))
    await done.wait()
    server.close()
    await server.wait_closed()
    return order


def test_fifo_order_is_the_default_whatever_the_seed() -> None:
    assert {tuple(run_virtual(_race, seed=seed)) for seed in range(8)} == {("A", "B")}


def test_exploration_finds_the_other_order_and_each_seed_replays() -> None:
    orders = {seed: run_virtual(_race, seed=seed, explore=True) for seed in range(12)}
    assert {tuple(order) for order in orders.values()} == {("A", "B"), ("B", "A")}
    for seed, order in orders.items():
        assert run_virtual(_race, seed=seed, explore=True) == order


def test_same_seed_same_trace_and_a_nondeterministic_run_is_caught() -> None:
    trace = check_determinism(_race, seed=5, explore=True)
    assert [event.source for event in trace if event.kind == "mark"] == ["arrived", "arrived"]
    assert any(event.kind == "data" for event in trace)

    async def unseeded() -> None:
        await asyncio.sleep(random.random())  # real randomness, outside the seed

    # Event 0 is the main task's first step; the sleep's jump of the clock comes next.
    with pytest.raises(NondeterminismError, match="seed=1 diverged from run 1 at event 1"):
        check_determinism(unseeded, seed=1)


def test_the_trace_holds_every_callback_and_catches_an_order_that_changes() -> None:
    """No network and no sleeps: only the order in which callbacks run differs."""

    def first() -> None:
        pass

    def second() -> None:
        pass

    async def worker() -> None:
        await asyncio.sleep(0)

    async def fixed() -> None:
        loop = asyncio.get_running_loop()
        for callback in (first, second):
            loop.call_soon(callback)
        await asyncio.gather(worker(), worker())

    trace = check_determinism(fixed)
    callbacks = [event.source for event in trace if event.kind == "callback"]
    here = "test_the_trace_holds_every_callback_and_catches_an_order_that_changes.<locals>"
    assert callbacks[0].startswith("step ")  # the main task's first step
    assert callbacks.index(f"{here}.first") < callbacks.index(f"{here}.second")
    assert callbacks.count(f"step {here}.worker") >= 4

    async def shuffled() -> None:
        loop = asyncio.get_running_loop()
        callbacks = [first, second] * 8
        random.shuffle(callbacks)  # real randomness, outside the seed
        for callback in callbacks:
            loop.call_soon(callback)
        await asyncio.sleep(0)

    with pytest.raises(NondeterminismError, match="diverged from run 1"):
        check_determinism(shuffled, runs=4)


def test_timer_lateness_is_bounded_and_never_early() -> None:
    async def sleeper() -> int:
        await asyncio.sleep(1)
        return virtual_clock().now_ns

    exploration = Exploration(io_order=False, timer_lateness=0.01, network_jitter=0.0)
    ends = {run_virtual(sleeper, seed=seed, explore=exploration) for seed in range(10)}
    assert all(1_000_000_000 <= end <= 1_010_000_000 for end in ends)
    assert len(ends) > 1
    assert run_virtual(sleeper, seed=3) == 1_000_000_000


def test_hypothesis_draws_and_shrinks_the_seed() -> None:
    def reversed_order(seed: int) -> bool:
        return run_virtual(_race, seed=seed, explore=True) == ["B", "A"]

    found = hypothesis.find(
        seeds(), reversed_order, settings=hypothesis.settings(database=None, max_examples=200)
    )
    assert reversed_order(found)  # the seed Hypothesis reports replays the failure


def test_a_failing_run_names_its_seed() -> None:
    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        run_virtual(failing, seed=42, explore=True)
    assert info.value.__notes__ == ["sansloop: this virtual run replays with seed=42 explore=True"]


def test_injected_faults_come_from_the_seed() -> None:
    async def exchange() -> str:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(100):
                    writer.write(data)
            except ConnectionResetError:
                pass
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 9998)
        reader, writer = await asyncio.open_connection("127.0.0.1", 9998)
        try:
            for i in range(5):
                writer.write(b"%d" % i)
                await reader.readexactly(1)
            outcome = "ok"
        except ConnectionResetError:
            outcome = "reset"
        writer.close()
        server.close()
        await asyncio.sleep(1)
        return outcome

    faulty = Exploration(fault_rate=0.1)
    outcomes = {seed: run_virtual(exchange, seed=seed, explore=faulty) for seed in range(10)}
    assert set(outcomes.values()) == {"ok", "reset"}
    for seed, outcome in outcomes.items():
        assert run_virtual(exchange, seed=seed, explore=faulty) == outcome
    assert {run_virtual(exchange, seed=seed, explore=True) for seed in range(10)} == {"ok"}
