"""Run the selected ``test.test_asyncio`` modules on sansloop, one worker process per module.

Each module runs in its own process (``conformance._worker``), a few at a time.  A test that
hangs is ended by the worker's per-test watchdog; the runner records it as an error and starts
a new worker for the rest of that module, so one hang costs one test, not the module.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _rules

__all__ = ["main"]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_OUTCOMES = ("passed", "failed", "error", "skipped", "expected_failure")
#: How many times a module's worker is restarted after a hang or crash before giving up.
_MAX_RESTARTS = 5


class ModuleResult:
    """Everything one module's workers reported."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.results: dict[str, dict[str, Any]] = {}
        self.excluded: dict[str, dict[str, str]] = {}
        self.loops = 0
        self.problems: list[str] = []
        self.unused_rules: list[str] = []
        self.seconds = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results.values() if r["outcome"] == outcome)

    def excluded_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for why in self.excluded.values():
            counts[why["kind"]] = counts.get(why["kind"], 0) + 1
        return dict(sorted(counts.items()))

    @property
    def on_sansloop(self) -> int:
        """Tests that created at least one sansloop loop: the ones that exercised it."""
        return sum(1 for r in self.results.values() if r.get("loops", 0) > 0)

    @property
    def ok(self) -> bool:
        return not self.problems and not (self.count("failed") or self.count("error"))

    def summary(self) -> dict[str, Any]:
        return {
            "run": len(self.results),
            **{outcome: self.count(outcome) for outcome in _OUTCOMES},
            "excluded": len(self.excluded),
            "loops_created": self.loops,
            "tests_on_sansloop": self.on_sansloop,
            "seconds": round(self.seconds, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "problems": self.problems,
            "failures": {
                test_id: {"outcome": r["outcome"], "detail": r.get("detail", "")}
                for test_id, r in self.results.items()
                if r["outcome"] in ("failed", "error")
            },
            "excluded_tests": self.excluded,
            "excluded_by_kind": self.excluded_by_kind(),
            "unused_rules": self.unused_rules,
            "tests": {
                test_id: {"outcome": r["outcome"], "loops": r.get("loops", 0)}
                for test_id, r in self.results.items()
            },
        }


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    # A line cut short by a process that was ended mid-write.
                    pass
    return events


def _run_module(module: str, args: argparse.Namespace, workdir: Path) -> ModuleResult:
    result = ModuleResult(module)
    started = time.monotonic()
    deadline = started + args.module_timeout
    out = workdir / f"{module}.jsonl"
    skip = workdir / f"{module}.skip"
    log = workdir / f"{module}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
    for attempt in range(_MAX_RESTARTS + 1):
        skip.write_text("".join(f"{t}\n" for t in [*result.results, *result.excluded]))
        out.write_text("")
        command = [
            sys.executable,
            "-m",
            "conformance._worker",
            module,
            "--out",
            str(out),
            "--skip-file",
            str(skip),
            "--test-timeout",
            str(args.test_timeout),
            "--policy",
            args.policy,
            *(["--no-exclusions"] if args.no_exclusions else []),
        ]
        log_start = log.stat().st_size if log.exists() else 0
        with log.open("a", encoding="utf-8") as stderr:
            stderr.write(f"--- attempt {attempt}: {' '.join(command)}\n")
            stderr.flush()
            try:
                proc = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    env=env,
                    # CPython's tests may leave files in the current directory: not the repo.
                    cwd=str(workdir),
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
                returncode: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = None
        running: str | None = None
        finished = False
        loops_in_tests = 0
        for event in _read_events(out):
            kind = event["event"]
            if kind == "start":
                running = event["id"]
            elif kind == "result":
                result.results[event["id"]] = event
                loops_in_tests += event.get("loops", 0)
                if event["id"] == running:
                    running = None
            elif kind == "excluded":
                result.excluded[event["id"]] = {"kind": event["kind"], "reason": event["reason"]}
            elif kind == "unused_rules":
                if attempt == 0:
                    result.unused_rules = event["patterns"]
            elif kind == "finished":
                # The worker's own total also counts loops made outside tests (fixtures).
                result.loops += event["loops"]
                finished = True
            elif kind == "crash":
                result.problems.append(f"worker crashed: {event['detail']}")
        if finished and returncode == 0:
            break
        if not finished:
            result.loops += loops_in_tests
        attempt_log = _read_from(log, log_start)
        if returncode is None:
            why = f"the module timed out after {args.module_timeout:.0f}s"
        elif running is not None and "Timeout (" in attempt_log:
            why = f"timed out after {args.test_timeout:.0f}s (watchdog)"
        else:
            why = f"the worker exited with status {returncode}"
        if running is None:
            result.problems.append(f"{why}, outside any test; see {log}")
            break
        result.results[running] = {
            "id": running,
            "outcome": "error",
            "detail": f"{why}\n{_watchdog_report(attempt_log)}",
            "loops": 0,
        }
        if returncode is None:
            result.problems.append(why)
            break
    result.seconds = time.monotonic() - started
    return result


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


def _watchdog_report(log: str, size: int = 4000) -> str:
    """The faulthandler dump (innermost frame first) if there is one, else the log's end."""
    start = log.find("Timeout (")
    return log[start : start + size] if start >= 0 else log[-size:]


def _print_table(results: list[ModuleResult]) -> None:
    header = (
        f"{'module':<26}{'run':>6}{'pass':>6}{'fail':>6}{'error':>6}{'skip':>6}"
        f"{'xfail':>6}{'excl':>6}{'loops':>7}{'on-sl':>7}{'secs':>7}"
    )
    print(header)
    print("-" * len(header))
    totals = dict.fromkeys(
        ("run", *_OUTCOMES, "excluded", "loops_created", "tests_on_sansloop", "seconds"), 0.0
    )
    for result in results:
        s = result.summary()
        for key in totals:
            totals[key] += s[key]
        _print_row(result.module, s)
    print("-" * len(header))
    _print_row("TOTAL", totals)


def _print_row(name: str, s: dict[str, Any]) -> None:
    print(
        f"{name:<26}{s['run']:>6.0f}{s['passed']:>6.0f}{s['failed']:>6.0f}{s['error']:>6.0f}"
        f"{s['skipped']:>6.0f}{s['expected_failure']:>6.0f}{s['excluded']:>6.0f}"
        f"{s['loops_created']:>7.0f}{s['tests_on_sansloop']:>7.0f}{s['seconds']:>7.1f}"
    )


def _print_failures(results: list[ModuleResult], verbose: bool) -> None:
    for result in results:
        for problem in result.problems:
            print(f"\n[{result.module}] PROBLEM: {problem.splitlines()[0]}")
        for test_id, r in result.results.items():
            if r["outcome"] not in ("failed", "error"):
                continue
            print(f"\n[{result.module}] {r['outcome'].upper()}: {test_id}")
            detail = r.get("detail", "").rstrip()
            lines = detail.splitlines()
            if verbose:
                shown = lines
            elif detail.startswith(("timed out", "the worker", "the module")):
                shown = lines[:10]  # why, then the innermost frames of the dump
            else:
                shown = lines[-6:]  # the assertion and the frames just above it
            for line in shown:
                print(f"    {line}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    version = sys.version_info[:2]
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Run CPython's test.test_asyncio modules with sansloop as the event loop.",
    )
    parser.add_argument(
        "modules",
        nargs="*",
        help="modules to run (default: all that apply on this Python): "
        + ", ".join(_rules.modules_for(version)),
    )
    parser.add_argument("--json", metavar="PATH", help="write the full results as JSON")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="modules run at once")
    parser.add_argument("--test-timeout", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--module-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument(
        "--policy",
        choices=("shim", "sansloop"),
        default="shim",
        help="asyncio's default policy: a DefaultEventLoopPolicy subclass making sansloop "
        "loops (shim), or sansloop.EventLoopPolicy",
    )
    parser.add_argument(
        "--no-exclusions",
        action="store_true",
        help="run the excluded tests too (to see what a landed feature now passes)",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the workers' logs in DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    parser.add_argument(
        "--list-excluded", action="store_true", help="print every excluded test with its reason"
    )
    args = parser.parse_args(argv)
    known = _rules.modules_for(version)
    for module in args.modules:
        if module not in known:
            parser.error(f"{module!r} is not a conformance module on this Python; choose {known}")
    args.modules = args.modules or list(known)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    print(f"sansloop conformance: test.test_asyncio on Python {sys.version.split()[0]}")
    if importlib.util.find_spec("test.test_asyncio") is None:
        print(
            "error: this interpreter has no test.test_asyncio (CPython's test-suite is not "
            "installed; Debian and Ubuntu ship it as libpythonX.Y-testsuite)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="sansloop-conformance-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # Longest first, so the two slowest modules do not end up last.
        order = sorted(args.modules, key=_rules.expected_cost, reverse=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            done = dict(
                zip(order, pool.map(lambda m: _run_module(m, args, workdir), order), strict=True)
            )
    results = [done[m] for m in args.modules]
    if args.list_excluded:
        for result in results:
            for test_id, why in result.excluded.items():
                label = _rules.KINDS[why["kind"]]
                print(f"[{result.module}] EXCLUDED {test_id}: {label} ({why['reason']})")
    for result in results:
        for pattern in result.unused_rules:
            print(f"[{result.module}] note: rule {pattern!r} matched no test on this Python")
    _print_failures(results, args.verbose)
    print()
    _print_table(results)
    print(
        "\nloops = sansloop loops created; on-sl = tests that created one (the rest ran on "
        "CPython's own TestLoop, mocks, or no loop)"
    )
    by_kind: dict[str, int] = {}
    for result in results:
        for kind, count in result.excluded_by_kind().items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    if by_kind:
        print("excluded, by kind (conformance/RULES.md):")
        for kind, count in sorted(by_kind.items()):
            print(f"  {count:>5}  {kind}: {_rules.KINDS[kind]}")
    if args.json:
        document = {
            "python": sys.version.split()[0],
            "modules": {r.module: r.to_json() for r in results},
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    passed = sum(r.count("passed") for r in results)
    failed = sum(r.count("failed") + r.count("error") for r in results)
    skipped = sum(r.count("skipped") for r in results)
    print(f"\nconformance: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if all(r.ok for r in results) else 1
