"""Stand-ins for what the core's transport state machines talk to, shared by the core tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Channel", "Host"]


class Host:
    """The loop, reduced to what a transport uses: call_soon runs when the test says."""

    def __init__(self) -> None:
        self.soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self.errors: list[dict[str, Any]] = []

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        self.soon.append((callback, args))

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def get_debug(self) -> bool:
        return False

    def run_soon(self) -> None:
        while self.soon:
            callback, args = self.soon.pop(0)
            callback(*args)


class Channel:
    """A scripted channel: ``accept`` bytes go at once; records every request."""

    def __init__(self) -> None:
        self.accept = 0
        self.wire = bytearray()
        self.writing = False
        self.reading = False
        self.shutdowns = 0
        self.closed = 0
        self.fail: BaseException | None = None

    def send_now(self, data: Any) -> int:
        if self.fail is not None:
            raise self.fail
        if not self.accept:
            raise BlockingIOError
        n = min(self.accept, len(memoryview(data).cast("B")))
        self.wire += memoryview(data).cast("B")[:n]
        return n

    def want_write(self) -> None:
        self.writing = True

    def stop_write(self) -> None:
        self.writing = False

    def start_reading(self) -> None:
        self.reading = True

    def stop_reading(self) -> None:
        self.reading = False

    def shutdown_write(self) -> None:
        self.shutdowns += 1

    def close(self) -> None:
        self.closed += 1
        self.reading = self.writing = False
