"""trio-asyncio as a contender, timed in a worker process of its own.

Importing trio_asyncio replaces asyncio's running-loop and policy functions process-wide
(inside trio it answers from its own context variable), which would break every other loop
that runs inside trio -- sansloop's trio driver among them.  So its runs happen in a child
process, started once and fed one (workload, size) at a time, still interleaved with the
other contenders by the runner.

Its loop is trio-asyncio's ``SyncTrioEventLoop`` (the kind ``asyncio.new_event_loop()``
gives outside trio: trio runs in a thread of its own and ``run_until_complete`` hands the
work over), since the workloads drive their loop with ``run_until_complete``.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
from typing import Any

from ._workloads import WORKLOADS, Workload, WorkloadError

__all__ = ["TrioAsyncioWorker"]


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """The child: run each requested workload on a fresh trio-asyncio loop."""
    import gc

    from trio_asyncio._sync import SyncTrioEventLoop

    by_name = {w.name: w for w in WORKLOADS}
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent is gone
            return
        if request is None:
            return
        name, size = request
        loop = SyncTrioEventLoop()
        try:
            gc.collect()
            reply: tuple[str, Any] = ("ok", by_name[name].run(loop, size))
        except NotImplementedError as exc:
            reply = ("n/a", str(exc) or "NotImplementedError")
        except WorkloadError as exc:
            # A wrong result is reported, not timed: the table shows why.
            reply = ("n/a", f"wrong result: {exc}")
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            loop.close()
        conn.send(reply)


class TrioAsyncioWorker:
    """Times workloads on trio-asyncio in a child process (started on first use)."""

    def __init__(self) -> None:
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: Any = None

    def version(self) -> str:
        from importlib.metadata import version

        return version("trio-asyncio")

    def __call__(self, workload: Workload, size: int) -> float:
        if self._conn is None:
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(child,), daemon=True)
            self._process.start()
            child.close()
            self._conn = parent
            atexit.register(self.close)
        self._conn.send((workload.name, size))
        status, value = self._conn.recv()
        if status == "ok":
            return float(value)
        if status == "n/a":
            raise NotImplementedError(value)
        raise WorkloadError(f"{workload.name} on trio-asyncio: {value}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.send(None)
            self._conn.close()
            self._process.join(10)
            self._conn = None
