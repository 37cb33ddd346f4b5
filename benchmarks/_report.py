"""Turn results into a table for people and a JSON document for tools."""

from __future__ import annotations

import json
import math
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._contenders import Contender
from ._runner import Result

__all__ = ["format_table", "to_json", "write_json"]

_OTHERS = ("asyncio", "uvloop")
#: The trio driver, and what it is measured against.
_TRIO = "sansloop-trio"
_TRIO_OTHERS = ("trio-asyncio", "sansloop")
#: The ratio columns: (column title, the contender whose speed is shown, against whom).
_RATIOS = (
    ("vs asyncio", "sansloop", "asyncio"),
    ("vs uvloop", "sansloop", "uvloop"),
    ("virtual vs asyncio", "virtual", "asyncio"),
    # The trio driver against the other way to run asyncio in trio, and against sansloop's
    # own selectors driver.
    ("trio vs trio-asyncio", _TRIO, "trio-asyncio"),
    ("trio vs sansloop", _TRIO, "sansloop"),
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _geomean(values: list[float]) -> float | None:
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def format_table(
    results: list[Result], contenders: list[Contender], *, rounds: int, warmup: int
) -> str:
    """Median (min) milliseconds per contender, then sansloop's speed against the others."""
    names = [c.name for c in contenders]
    ratios = [(title, of, o) for title, of, o in _RATIOS if of in names and o in names]
    header = ["workload", "size", *(f"{n} ms" for n in names), *(t for t, _, _ in ratios)]
    rows = [header]
    for result in results:
        cells = [result.workload.name, f"{result.size:,}"]
        cells += [
            f"{_ms(result.median(n))} ({_ms(result.best(n))})" if n in result.times else "n/a"
            for n in names
        ]
        cells += [
            f"{_ratio(result.speedup(o, of))} ({_ratio(result.speedup(o, of, best=True))})"
            if o in result.times and of in result.times
            else "n/a"
            for _, of, o in ratios
        ]
        rows.append(cells)
    if ratios and len(results) > 1:
        # Workloads where either side is n/a are left out of the mean, not counted as 1.0.
        geo = [
            f"{_ratio(_geomean(_present(r.speedup(o, of) for r in results)))} "
            f"({_ratio(_geomean(_present(r.speedup(o, of, best=True) for r in results)))})"
            for _, of, o in ratios
        ]
        rows.append(["geomean", "", *("" for _ in names), *geo])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    versions = ", ".join(f"{c.name} {c.version}" for c in contenders)
    out = [
        f"Python {platform.python_version()} on {platform.machine()} {sys.platform}; {versions}",
        f"{rounds} rounds after {warmup} warm-up, contenders interleaved; "
        "times: median (min) ms per run",
    ]
    if ratios:
        out.append(
            "vs X: X's time / sansloop's time (virtual's, in the virtual column), of medians "
            "(of mins); above 1: X is slower"
        )
    if any(of == _TRIO for _, of, _ in ratios):
        out.append(
            "trio vs X: X's time / sansloop-trio's time (the trio driver, each run a trio "
            "run); trio-asyncio runs in a worker process (it patches asyncio globally)"
        )
    out += ["", line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    notes = [
        f"n/a: {name} on {result.workload.name}: {why}"
        for result in results
        for name, why in result.unavailable.items()
    ]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def to_json(
    results: list[Result],
    contenders: list[Contender],
    *,
    rounds: int,
    warmup: int,
    quick: bool,
    skipped: dict[str, str],
) -> dict[str, Any]:
    """Everything measured, raw times included, so runs can be compared later."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "rounds": rounds,
        "warmup": warmup,
        "quick": quick,
        "contenders": {c.name: c.version for c in contenders},
        "skipped": skipped,
        "workloads": {
            r.workload.name: {
                "description": r.workload.description,
                "size": r.size,
                "seconds": r.times,
                "median": {n: r.median(n) for n in r.times},
                "min": {n: r.best(n) for n in r.times},
                "unavailable": r.unavailable,
                "sansloop_speedup": {o: r.speedup(o) for o in _OTHERS if o in r.times},
                "sansloop_speedup_of_mins": {
                    o: r.speedup(o, best=True) for o in _OTHERS if o in r.times
                },
                "virtual_speedup": {o: r.speedup(o, "virtual") for o in _OTHERS if o in r.times},
                "trio_driver_speedup": {
                    o: r.speedup(o, _TRIO) for o in _TRIO_OTHERS if o in r.times
                },
            }
            for r in results
        },
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
