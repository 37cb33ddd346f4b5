"""Print the integration run's counts, sansloop next to stock asyncio, from JUnit XML files.

Arguments are ``RUN:LOOP=report.xml`` (``integration:sansloop=...``).  Besides the counts it
lists the tests that fail on sansloop but pass on asyncio: those are the ones to triage.
Exits 1 if any run has a failure or an error.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

__all__ = ["main"]


def _results(path: str) -> dict[str, str]:
    """Each test case's outcome: passed, failed or skipped."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            outcomes[name] = "failed"
        elif "skipped" in tags:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes


def main(argv: list[str]) -> int:
    by_run: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for arg in argv:
        label, path = arg.split("=", 1)
        run, loop = label.split(":", 1)
        by_run[run][loop] = _results(path)
    print(f"{'run':<18} {'loop':<10} {'passed':>7} {'failed':>7} {'skipped':>8}")
    any_failed = False
    for run, loops in by_run.items():
        for loop, outcomes in loops.items():
            passed, failed, skipped = (
                sum(v == outcome for v in outcomes.values())
                for outcome in ("passed", "failed", "skipped")
            )
            any_failed = any_failed or failed > 0
            print(f"{run:<18} {loop:<10} {passed:>7} {failed:>7} {skipped:>8}")
    for run, loops in by_run.items():
        ours, theirs = loops.get("sansloop", {}), loops.get("asyncio", {})
        only = sorted(n for n, v in ours.items() if v == "failed" and theirs.get(n) == "passed")
        if only:
            print(f"\n{run}: {len(only)} fail on sansloop and pass on asyncio:")
            for name in only:
                print(f"  {name}")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
