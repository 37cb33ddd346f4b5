"""The exception handler API and the default handler's log records, against asyncio's."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest

import sansloop

pytestmark = pytest.mark.usefixtures("no_leaked_loop_state")

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")

Context = dict[str, Any]


def _boom() -> None:
    raise ValueError("boom")


def _asyncio_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "asyncio"]


def _collect(contexts: list[Context]) -> Callable[[asyncio.AbstractEventLoop, Context], None]:
    def handler(loop: asyncio.AbstractEventLoop, context: Context) -> None:
        contexts.append(context)

    return handler


def test_set_and_get_exception_handler(any_loop: asyncio.AbstractEventLoop) -> None:
    assert any_loop.get_exception_handler() is None
    handler = _collect([])
    any_loop.set_exception_handler(handler)
    assert any_loop.get_exception_handler() is handler
    any_loop.set_exception_handler(None)
    assert any_loop.get_exception_handler() is None


def test_exception_handler_must_be_callable(any_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match=r"^A callable object or None is expected, got 'x'$"):
        any_loop.set_exception_handler("x")  # type: ignore[arg-type]


def test_failing_callback_goes_to_the_handler_and_the_loop_goes_on(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    any_loop.set_debug(False)  # debug mode adds a source_traceback to the context
    contexts: list[Context] = []
    ran: list[str] = []
    any_loop.set_exception_handler(_collect(contexts))
    handle = any_loop.call_soon(_boom)
    any_loop.call_soon(ran.append, "after")
    any_loop.call_later(0.001, ran.append, "timer")
    any_loop.call_later(0.002, any_loop.stop)
    any_loop.run_forever()
    assert ran == ["after", "timer"]
    assert len(contexts) == 1
    context = contexts[0]
    assert set(context) == {"message", "exception", "handle"}
    assert context["message"].startswith("Exception in callback _boom()")
    assert isinstance(context["exception"], ValueError)
    assert context["handle"] is handle


def test_call_exception_handler_passes_the_context_through(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    contexts: list[Context] = []
    any_loop.set_exception_handler(_collect(contexts))
    context = {"message": "custom", "extra": 1}
    any_loop.call_exception_handler(context)
    assert contexts == [context]
    assert contexts[0] is context


def _log_of_failing_callback(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, schedule: Callable[[], Any]
) -> logging.LogRecord:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        schedule()
        loop.call_soon(loop.stop)
        loop.run_forever()
    records = [r for r in _asyncio_records(caplog) if r.levelno == logging.ERROR]
    assert len(records) == 1
    return records[0]


_SOURCE = "source_traceback: Object created at (most recent call last):\n"


@pytest.mark.parametrize("debug", [False, True])
def test_default_handler_logs_like_asyncio(caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    messages = []
    for factory in (sansloop.EventLoop, asyncio.SelectorEventLoop):
        loop = factory()
        loop.set_debug(debug)
        try:
            # Scheduled from the same line for both loops, so debug-mode tracebacks match.
            record = _log_of_failing_callback(loop, caplog, lambda: loop.call_soon(_boom))  # noqa: B023 - used within the iteration
        finally:
            loop.close()
        assert record.name == "asyncio"
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ValueError)
        messages.append(record.getMessage())
    ours, theirs = messages
    lines = ours.splitlines()
    assert lines[0].startswith("Exception in callback _boom()")
    assert lines[1].startswith("handle: <Handle _boom()")
    if not debug:
        assert ours == theirs
        assert len(lines) == 2
        return
    # Both show DEBUG_STACK_DEPTH frames counted from inside the loop; asyncio's call_soon
    # is one frame deeper (it calls _call_soon), so its cut-off drops one more outer frame.
    our_head, our_stack = ours.split(_SOURCE)
    their_head, their_stack = theirs.split(_SOURCE)
    assert our_head == their_head
    assert our_stack.endswith(their_stack)
    assert f'File "{__file__}"' in their_stack.splitlines()[-2]


def test_default_handler_format(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    exc = KeyError("k")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        any_loop.default_exception_handler({"zeta": [1], "exception": exc, "alpha": "a"})
        any_loop.default_exception_handler({"message": "no exception here"})
    first, second = _asyncio_records(caplog)
    assert first.getMessage() == "Unhandled exception in event loop\nalpha: 'a'\nzeta: [1]"
    assert first.exc_info is not None
    assert first.exc_info[1] is exc
    assert second.getMessage() == "no exception here"
    assert not second.exc_info


def test_error_inside_a_custom_handler_is_logged(
    any_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(loop: asyncio.AbstractEventLoop, context: Context) -> None:
        raise RuntimeError("handler is broken")

    ran: list[str] = []
    any_loop.set_exception_handler(broken)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        any_loop.call_soon(_boom)
        any_loop.call_soon(ran.append, "after")
        any_loop.call_soon(any_loop.stop)
        any_loop.run_forever()
    assert ran == ["after"]
    (record,) = _asyncio_records(caplog)
    message = record.getMessage()
    assert message.startswith("Unhandled error in exception handler\ncontext: {'message': ")
    assert "Exception in callback _boom()" in message
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_error_inside_an_overridden_default_handler_is_logged(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    base: Any = loop_factory

    class Broken(base):  # type: ignore[misc, valid-type]
        def default_exception_handler(self, context: Context) -> None:
            raise RuntimeError("default handler is broken")

    loop = Broken()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"message": "m"})
    finally:
        loop.close()
    (record,) = _asyncio_records(caplog)
    assert record.getMessage() == "Exception in default exception handler"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_unretrieved_task_exception_reaches_the_handler(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    contexts: list[Context] = []
    any_loop.set_exception_handler(_collect(contexts))

    async def fail() -> None:
        raise ValueError("never retrieved")

    task = any_loop.create_task(fail())
    any_loop.run_until_complete(asyncio.sleep(0.001))
    assert task.done()
    del task
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]["message"] == "Task exception was never retrieved"
    assert isinstance(contexts[0]["exception"], ValueError)
    assert isinstance(contexts[0]["future"], asyncio.Task)
    contexts.clear()


@pytest.mark.parametrize("key", ["task", "future", "handle"])
def test_handler_runs_in_the_failing_objects_context(
    any_loop: asyncio.AbstractEventLoop, key: str
) -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(_var.set, "object's context")
    any_loop.set_exception_handler(lambda loop, context: seen.append(_var.get()))
    if key == "handle":
        thing: Any = any_loop.call_soon(lambda: None, context=ctx)
    else:
        thing = any_loop.create_task(asyncio.sleep(0), context=ctx)
    any_loop.call_exception_handler({"message": "m", key: thing})
    any_loop.run_until_complete(asyncio.sleep(0))
    # asyncio runs the handler in the object's context from 3.12 (get_context()).
    expected = "object's context" if sys.version_info >= (3, 12) else "unset"
    assert seen == [expected]


def test_failing_callback_handler_sees_the_callbacks_context(
    any_loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []
    any_loop.set_exception_handler(lambda loop, context: seen.append(_var.get()))
    ctx = contextvars.copy_context()
    ctx.run(_var.set, "callback's context")
    any_loop.call_soon(_boom, context=ctx)
    any_loop.call_soon(any_loop.stop)
    any_loop.run_forever()
    # From 3.12 asyncio runs the handler in the failing handle's context.
    assert seen == ["callback's context" if sys.version_info >= (3, 12) else "unset"]
