"""The loops compared: sansloop, stock asyncio, uvloop (when importable); sansloop on the
virtual driver (virtual time: its sleeps take no real time, so only its per-step cost and
its sleep-heavy runs say something); sansloop's trio driver and trio-asyncio (when trio and
trio-asyncio are importable)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTENDER_NAMES", "Contender", "available_contenders"]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: Every contender this suite knows, in table order.
CONTENDER_NAMES: tuple[str, ...] = (
    "sansloop",
    "asyncio",
    "uvloop",
    "virtual",
    "sansloop-trio",
    "trio-asyncio",
)


@dataclass(frozen=True, slots=True)
class Contender:
    """A named loop factory and the version of what it runs."""

    name: str
    new_loop: LoopFactory
    version: str
    #: Times a run itself instead of on a loop from ``new_loop`` (trio-asyncio's worker).
    timer: Callable[[Any, int], float] | None = None


def _stock_asyncio_factory() -> LoopFactory:
    # The class asyncio.run() uses under the default policy, whatever policy is installed now.
    loop_class: LoopFactory | None = getattr(asyncio, "EventLoop", None)  # 3.13+
    if loop_class is not None:
        return loop_class
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop
    return asyncio.SelectorEventLoop


def _sansloop() -> Contender:
    import sansloop

    version = getattr(sansloop, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("sansloop")
    return Contender("sansloop", sansloop.EventLoop, version)


def _virtual() -> Contender:
    import functools

    import sansloop

    sansloop_version = _sansloop().version
    return Contender(
        "virtual", functools.partial(sansloop.new_event_loop, driver="virtual"), sansloop_version
    )


def _asyncio() -> Contender:
    return Contender("asyncio", _stock_asyncio_factory(), sys.version.split()[0])


def _uvloop() -> Contender:
    import uvloop

    return Contender("uvloop", uvloop.new_event_loop, getattr(uvloop, "__version__", "?"))


def _sansloop_trio() -> Contender:
    import functools

    import trio

    import sansloop

    return Contender(
        "sansloop-trio",
        functools.partial(sansloop.new_event_loop, driver="trio"),
        f"trio {trio.__version__}",
    )


def _trio_asyncio() -> Contender:
    import importlib.util

    if importlib.util.find_spec("trio_asyncio") is None:
        raise ImportError("No module named 'trio_asyncio'")
    from ._trio_worker import TrioAsyncioWorker

    worker = TrioAsyncioWorker()
    return Contender("trio-asyncio", _no_local_loop, worker.version(), timer=worker)


def _no_local_loop() -> asyncio.AbstractEventLoop:
    raise RuntimeError("trio-asyncio runs in its worker process")


_MAKERS: dict[str, Callable[[], Contender]] = {
    "sansloop": _sansloop,
    "asyncio": _asyncio,
    "uvloop": _uvloop,
    "virtual": _virtual,
    "sansloop-trio": _sansloop_trio,
    "trio-asyncio": _trio_asyncio,
}


def available_contenders(
    names: list[str], *, required: bool
) -> tuple[list[Contender], dict[str, str]]:
    """The contenders named, and why any were skipped.

    With ``required`` a contender that cannot be imported is an error; without it (the
    default list) it is skipped with a note, as uvloop is on Windows.
    """
    contenders = []
    skipped = {}
    for name in names:
        try:
            contenders.append(_MAKERS[name]())
        except ImportError as exc:
            if required:
                raise
            skipped[name] = f"not importable: {exc}"
    return contenders, skipped
