"""sansloop's benchmark suite: scheduling workloads on sansloop, asyncio and uvloop.

Run it with ``python -m benchmarks`` (``--help`` lists the options) or ``nox -s bench``.
Every workload checks its own result, and the contenders run interleaved in one process so
that their times are comparable on a noisy machine.
"""

from ._cli import main as main
from ._workloads import WORKLOADS as WORKLOADS
from ._workloads import Workload as Workload
from ._workloads import WorkloadError as WorkloadError

__all__ = ["WORKLOADS", "Workload", "WorkloadError", "main"]
