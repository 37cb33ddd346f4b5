"""Run every workload on every contender, interleaved, and summarise the times.

Interleaving is what makes the ratios trustworthy on a shared, noisy machine: in each round
every workload runs once on each contender, back to back, in an order rotated from round to
round, so a burst of background load hits all contenders alike instead of one of them.

A contender that raises :class:`NotImplementedError` for a workload (a loop that lacks an API
the workload needs) is marked n/a for it, with the reason, and not asked again; any other
exception, and a :class:`WorkloadError`, ends the run.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from ._contenders import Contender
from ._workloads import Workload, WorkloadError

__all__ = ["Result", "run_suite", "time_one"]


@dataclass(slots=True)
class Result:
    """The times of one workload, per contender, over the measured rounds."""

    workload: Workload
    size: int
    times: dict[str, list[float]] = field(default_factory=dict)
    #: Contenders that cannot run this workload, and why (their ``times`` entry is removed).
    unavailable: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def best(self, name: str) -> float:
        return min(self.times[name])

    def speedup(self, other: str, of: str = "sansloop", *, best: bool = False) -> float | None:
        """``other``'s median (or, with ``best``, min) time over ``of``'s: above 1, ``of`` wins."""
        if other not in self.times or of not in self.times:
            return None
        if best:
            return self.best(other) / self.best(of)
        return self.median(other) / self.median(of)


def time_one(contender: Contender, workload: Workload, size: int) -> float:
    """One run on a fresh loop: the seconds the workload reports (loop set-up excluded).

    A :class:`NotImplementedError` from the loop is let through for the caller to record.
    """
    if contender.timer is not None:
        return contender.timer(workload, size)
    loop = contender.new_loop()
    try:
        gc.collect()
        return workload.run(loop, size)
    except WorkloadError as exc:
        raise WorkloadError(f"{workload.name} on {contender.name}: {exc}") from exc
    finally:
        loop.close()


def run_suite(
    contenders: list[Contender],
    workloads: list[Workload],
    *,
    rounds: int,
    warmup: int,
    quick: bool,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Run ``warmup`` unrecorded rounds, then ``rounds`` recorded ones."""
    results = [
        Result(w, w.quick_size if quick else w.size, {c.name: [] for c in contenders})
        for w in workloads
    ]
    for round_index in range(warmup + rounds):
        recorded = round_index >= warmup
        if progress is not None:
            label = f"round {round_index - warmup + 1}/{rounds}" if recorded else "warm-up"
            progress(label)
        for result in results:
            shift = round_index % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                if contender.name in result.unavailable:
                    continue
                try:
                    took = time_one(contender, result.workload, result.size)
                except NotImplementedError as exc:
                    result.unavailable[contender.name] = str(exc) or "NotImplementedError"
                    del result.times[contender.name]
                    continue
                if recorded:
                    result.times[contender.name].append(took)
    return results
