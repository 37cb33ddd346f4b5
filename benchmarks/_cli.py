"""``python -m benchmarks``: parse options, run the suite, print the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._contenders import CONTENDER_NAMES, available_contenders
from ._report import format_table, to_json, write_json
from ._runner import run_suite
from ._workloads import WORKLOADS, WorkloadError

__all__ = ["main"]

_DEFAULT_ROUNDS = 7
_QUICK_ROUNDS = 2


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _parser() -> argparse.ArgumentParser:
    workloads = ", ".join(w.name for w in WORKLOADS)
    groups = ", ".join(dict.fromkeys(w.group for w in WORKLOADS))
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="sansloop vs asyncio vs uvloop on scheduling and networking workloads, "
        "run interleaved.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"measured rounds (default {_DEFAULT_ROUNDS}; {_QUICK_ROUNDS} with --quick)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of a few seconds"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="run only these workloads (comma-separated or repeated), by name or by group "
        f"({groups}): {workloads}",
    )
    parser.add_argument(
        "--loops",
        default=None,
        metavar="NAMES",
        help=f"contenders, comma-separated (default: {','.join(CONTENDER_NAMES)}, "
        "skipping any that cannot be imported)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    rounds = (
        args.rounds
        if args.rounds is not None
        else (_QUICK_ROUNDS if args.quick else _DEFAULT_ROUNDS)
    )
    if rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")

    if args.only:
        wanted = [name for text in args.only for name in _names(text)]
        known = {w.name for w in WORKLOADS} | {w.group for w in WORKLOADS}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            parser.error(
                f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        workloads = [w for w in WORKLOADS if w.name in wanted or w.group in wanted]
    else:
        workloads = list(WORKLOADS)

    names = _names(args.loops) if args.loops is not None else list(CONTENDER_NAMES)
    unknown = [name for name in names if name not in CONTENDER_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        parser.error(f"--loops takes distinct names from {', '.join(CONTENDER_NAMES)}")
    try:
        contenders, skipped = available_contenders(names, required=args.loops is not None)
    except ImportError as exc:
        parser.error(f"a requested loop cannot be imported: {exc}")
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)

    def progress(label: str) -> None:
        print(f"  {label} ...", file=sys.stderr, flush=True)

    try:
        results = run_suite(
            contenders,
            workloads,
            rounds=rounds,
            warmup=args.warmup,
            quick=args.quick,
            progress=progress,
        )
    except WorkloadError as exc:
        print(f"benchmark FAILED: {exc}", file=sys.stderr)
        return 1
    print(format_table(results, contenders, rounds=rounds, warmup=args.warmup))
    if args.json is not None:
        document = to_json(
            results,
            contenders,
            rounds=rounds,
            warmup=args.warmup,
            quick=args.quick,
            skipped=skipped,
        )
        write_json(args.json, document)
        print(f"\nwrote {args.json}")
    return 0
