"""Run one ``test.test_asyncio`` module on sansloop, in this process, and record every outcome.

Started by the runner as ``python -m conformance._worker MODULE --out FILE ...``.  It writes
one JSON object per line to ``FILE`` as it goes, so that when a test hangs (the per-test
``faulthandler`` watchdog ends the process) the runner knows which one, and can start a new
worker for the rest of the module.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import signal
import sys
import traceback
import unittest
from collections.abc import Iterator
from typing import IO, Any

from . import _rules, _shim, _variants

__all__ = ["main"]

#: How an outcome ranks when one test reports several (subtests, errors in tearDown, ...).
_RANK = {"passed": 0, "expected_failure": 1, "skipped": 2, "failed": 3, "error": 4}


def _iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from _iter_tests(item)
    else:
        yield suite


def _short_id(test: Any, module: str) -> str:
    test_id = test.id()
    prefix = f"test.test_asyncio.{module}."
    return test_id[len(prefix) :] if test_id.startswith(prefix) else test_id


class _Recorder(unittest.TestResult):
    """Writes one line per finished test: outcome, details, sansloop loops it created."""

    def __init__(self, out: IO[str], module: str, test_timeout: float) -> None:
        super().__init__()
        self._out = out
        self._module = module
        self._timeout = test_timeout
        self._outcome: dict[str, Any] | None = None
        self._loops_before = 0

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def _note(self, test: Any, outcome: str, detail: str = "") -> None:
        if self._outcome is None or self._outcome.get("id") != _short_id(test, self._module):
            # An error outside any test: setUpClass, setUpModule, tearDownModule...
            self._emit(
                {
                    "event": "result",
                    "id": _short_id(test, self._module),
                    "outcome": outcome,
                    "detail": detail,
                    "loops": 0,
                }
            )
            return
        if _RANK[outcome] >= _RANK[self._outcome["outcome"]]:
            self._outcome["outcome"] = outcome
            if detail:
                self._outcome["detail"] = detail

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        test_id = _short_id(test, self._module)
        self._emit({"event": "start", "id": test_id})
        self._outcome = {"event": "result", "id": test_id, "outcome": "passed", "detail": ""}
        self._loops_before = _shim.loops_created()
        faulthandler.dump_traceback_later(self._timeout, exit=True)

    def stopTest(self, test: Any) -> None:
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        if self._outcome is not None:
            self._outcome["loops"] = _shim.loops_created() - self._loops_before
            self._emit(self._outcome)
        self._outcome = None

    def addError(self, test: Any, err: Any) -> None:
        self._note(test, "error", self._exc_info_to_string(err, test))

    def addFailure(self, test: Any, err: Any) -> None:
        self._note(test, "failed", self._exc_info_to_string(err, test))

    def addSkip(self, test: Any, reason: str) -> None:
        self._note(test, "skipped", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._note(test, "expected_failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._note(test, "failed", "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is None:
            return
        failed = issubclass(err[0], test.failureException)
        detail = f"{subtest.id()}\n{self._exc_info_to_string(err, test)}"
        self._note(test, "failed" if failed else "error", detail)


def _run(args: argparse.Namespace, out: IO[str]) -> None:
    module_name = args.module
    done: set[str] = set()
    if args.skip_file:
        with open(args.skip_file, encoding="utf-8") as skip:
            done = {line.strip() for line in skip if line.strip()}
    version = sys.version_info[:2]

    prefix = f"test.test_asyncio.{module_name}."

    def use_cpython_testloop(test_id: str) -> bool:
        short = test_id.removeprefix(prefix)
        return _rules.uses_cpython_testloop(module_name, short, version)

    _shim.install(use_cpython_testloop, args.policy)
    module = importlib.import_module(f"test.test_asyncio.{module_name}")
    _variants.add_variants(module_name, module)

    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    rules = _rules.rules_for(module_name, version)
    matched: set[str] = set()
    selected = []
    for test in _iter_tests(loaded):
        test_id = _short_id(test, module_name)
        matched.update(rule.pattern for rule in rules if rule.applies(test_id, version))
        if test_id in done:
            continue
        rule = None if args.no_exclusions else _rules.exclusion(module_name, test_id, version)
        if rule is not None:
            record = {"event": "excluded", "id": test_id, "kind": rule.kind, "reason": rule.reason}
            out.write(json.dumps(record) + "\n")
            continue
        selected.append(test)
    unused = sorted({rule.pattern for rule in rules if not rule.optional} - matched)
    out.write(json.dumps({"event": "unused_rules", "patterns": unused}) + "\n")
    out.flush()

    recorder = _Recorder(out, module_name, args.test_timeout)
    unittest.TestSuite(selected).run(recorder)
    recorder._emit({"event": "finished", "loops": _shim.loops_created()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conformance._worker")
    parser.add_argument("module")
    parser.add_argument("--out", required=True, help="JSON-lines file to append results to")
    parser.add_argument("--skip-file", help="file of test ids already done, one a line")
    parser.add_argument("--test-timeout", type=float, default=60.0)
    parser.add_argument("--policy", choices=sorted(_shim.POLICIES), default="shim")
    parser.add_argument("--no-exclusions", action="store_true", help="run excluded tests too")
    args = parser.parse_args(argv)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started from a background job (``cmd &`` in a script ignores SIGINT, and children
        # inherit that): Python then leaves Ctrl-C ignored, and test_runners' interrupt
        # tests, which simulate one, would wait for ever.  Restore what a foreground start has.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(args.out, "a", encoding="utf-8") as out:
        try:
            _run(args, out)
        except BaseException:
            out.write(json.dumps({"event": "crash", "detail": traceback.format_exc()}) + "\n")
            out.flush()
            raise


if __name__ == "__main__":
    main()
