"""Print the integration run's counts, sansloop next to stock asyncio, from JUnit XML files."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def counts(path: str) -> dict[str, int]:
    suite = ET.parse(path).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    tests = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return {"passed": tests - failed - skipped, "failed": failed, "skipped": skipped}


def main(argv: list[str]) -> int:
    print(f"{'loop':<10} {'passed':>7} {'failed':>7} {'skipped':>8}")
    worst = 0
    for pair in argv:
        mode, path = pair.split("=", 1)
        c = counts(path)
        worst = max(worst, c["failed"])
        print(f"{mode:<10} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
