"""Reporting errors the way asyncio does: the default handler's log record, and the
protection layers around a user-set exception handler."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["call_handler", "log_context"]

logger = logging.getLogger("asyncio")

ExceptionHandler = Callable[["asyncio.AbstractEventLoop", dict[str, Any]], object]


def _format_stack(label: str, stack: traceback.StackSummary | list[Any]) -> str:
    frames = "".join(traceback.format_list(stack)).rstrip()
    return f"{label} created at (most recent call last):\n{frames}"


def log_context(context: dict[str, Any], current_handle: asyncio.Handle | None) -> None:
    """Log ``context`` as asyncio's ``default_exception_handler`` does."""
    message = context.get("message") or "Unhandled exception in event loop"
    exception = context.get("exception")
    exc_info: Any = (
        (type(exception), exception, exception.__traceback__) if exception is not None else False
    )
    handle_traceback = getattr(current_handle, "_source_traceback", None)
    if "source_traceback" not in context and handle_traceback:
        context["handle_traceback"] = handle_traceback

    lines = [message]
    for key in sorted(context):
        if key in ("message", "exception"):
            continue
        value = context[key]
        if key == "source_traceback":
            text = _format_stack("Object", value)
        elif key == "handle_traceback":
            text = _format_stack("Handle", value)
        else:
            text = repr(value)
        lines.append(f"{key}: {text}")
    logger.error("\n".join(lines), exc_info=exc_info)


def _context_of(context: dict[str, Any]) -> Any:
    """The contextvars.Context the failing object ran in, if it has one."""
    for key in ("task", "future", "handle"):
        thing = context.get(key)
        if thing is not None:
            get_context = getattr(thing, "get_context", None)
            return get_context() if get_context is not None else None
    return None


def call_handler(
    loop: asyncio.AbstractEventLoop,
    handler: ExceptionHandler | None,
    context: dict[str, Any],
) -> None:
    """Run the loop's exception handler; never let an error inside it escape."""
    if handler is None:
        try:
            loop.default_exception_handler(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # The default handler failed (or a subclass overrode it badly).
            logger.error("Exception in default exception handler", exc_info=True)
        return
    try:
        ctx = _context_of(context)
        if ctx is not None and hasattr(ctx, "run"):
            ctx.run(handler, loop, context)
        else:
            handler(loop, context)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        try:
            loop.default_exception_handler(
                {
                    "message": "Unhandled error in exception handler",
                    "exception": exc,
                    "context": context,
                }
            )
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            logger.error(
                "Exception in default exception handler while handling an unexpected "
                "error in custom exception handler",
                exc_info=True,
            )
