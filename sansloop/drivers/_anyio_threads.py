"""anyio's worker threads hold a virtual clock while they work.

``anyio.to_thread.run_sync`` runs functions on anyio's own worker threads, not on the loop's
executor, so the virtual driver's count of executor jobs never sees them: without help, the
clock would jump to the next deadline while the thread still works, and a virtual timeout
would beat a thread that takes a few real milliseconds.  Wrapping the asyncio backend's one
entry point makes each call hold the running loop's clock (:func:`hold_time`, a no-op on any
other loop) from the moment it asks for a thread until its result is back.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from ._virtual import hold_time

__all__ = ["watch_anyio_threads"]

_MARK = "__sansloop_holds_virtual_time__"


def watch_anyio_threads() -> None:
    """Wrap anyio's asyncio backend once per process, if anyio is imported (idempotent)."""
    if "anyio" not in sys.modules:
        return
    try:
        # anyio imports its backend on first use; importing it now changes nothing else.
        from anyio._backends._asyncio import AsyncIOBackend
    except ImportError:  # pragma: no cover - an anyio without the asyncio backend
        return
    original = AsyncIOBackend.__dict__.get("run_sync_in_worker_thread")
    if not isinstance(original, classmethod) or getattr(original.__func__, _MARK, False):
        return
    run = original.__func__

    @functools.wraps(run)
    async def run_sync_in_worker_thread(cls: Any, *args: Any, **kwargs: Any) -> Any:
        with hold_time():
            return await run(cls, *args, **kwargs)

    setattr(run_sync_in_worker_thread, _MARK, True)
    AsyncIOBackend.run_sync_in_worker_thread = classmethod(run_sync_in_worker_thread)  # type: ignore[method-assign,assignment]
