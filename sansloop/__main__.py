"""``python -m sansloop [--driver NAME] [--debug] (script.py | -m module) [args ...]``.

Runs a script or module the way ``python`` would (``sys.argv``, ``sys.path[0]``,
``__name__ == "__main__"``) with a ``sansloop.EventLoopPolicy`` installed for the duration,
so every ``asyncio.run()``, ``asyncio.Runner()`` or ``asyncio.new_event_loop()`` inside it
gets a sansloop loop.  The previous policy is restored afterwards.
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import importlib.util
import io
import os
import pkgutil
import runpy
import sys
import types
from collections.abc import Callable, Sequence

from sansloop.compat import EventLoop, EventLoopPolicy
from sansloop.compat._policy import _asyncio_get_policy, _asyncio_set_policy
from sansloop.drivers import Driver

__all__ = ["main"]

_USAGE = "%(prog)s [--driver NAME] [--debug] (script.py | -m module) [args ...]"


class _CommandLinePolicy(EventLoopPolicy):
    """The policy ``python -m sansloop`` installs: ``--debug`` puts every loop in debug mode."""

    def __init__(self, driver: str | Callable[[], Driver] | None, debug: bool) -> None:
        super().__init__(driver)
        self._debug = debug

    def new_event_loop(self) -> EventLoop:
        loop = super().new_event_loop()
        if self._debug:
            loop.set_debug(True)
        return loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        usage=_USAGE,
        description="Run a Python script or module with asyncio on sansloop's event loop.",
    )
    parser.add_argument("--driver", metavar="NAME", help="the loops' driver (default: selectors)")
    parser.add_argument(
        "--debug", action="store_true", help="run every loop in asyncio's debug mode"
    )
    parser.add_argument("-m", dest="module", metavar="module", help="run a module, like python -m")
    return parser


def _program_name() -> str:
    launcher = os.path.basename(sys.argv[0]) if sys.argv else ""
    return "python -m sansloop" if launcher == "__main__.py" else "sansloop"


def _split(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """Our options, the script (None with -m) and its arguments: the target ends our options."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("--driver", "-m"):
            index += 2
            if arg == "-m":
                return list(argv[: min(index, len(argv))]), None, list(argv[index:])
        elif arg.startswith("-m"):  # python's -mmodule spelling
            return [*argv[:index], "-m", arg[2:]], None, list(argv[index + 1 :])
        elif arg == "--":
            rest = argv[index + 1 :]
            return list(argv[:index]), (rest[0] if rest else None), list(rest[1:])
        elif arg.startswith("-"):
            index += 1
        else:
            return list(argv[:index]), arg, list(argv[index + 1 :])
    return list(argv), None, []


def main(argv: Sequence[str] | None = None) -> None:
    """The ``sansloop`` console script and ``python -m sansloop``."""
    parser = _parser()
    options, script, script_args = _split(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(options)
    if args.module is None and script is None:
        parser.error("a script or -m module is required")
    try:
        policy = _CommandLinePolicy(args.driver, args.debug)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if script is not None and not os.path.exists(script):
        parser.error(f"can't open file {script!r}: no such file")
    saved_argv, saved_path = sys.argv, sys.path[:]
    previous = _asyncio_get_policy()
    _asyncio_set_policy(policy)
    try:
        if args.module is not None:
            _set_path0(os.getcwd())
            _check_module(parser, args.module)
            sys.argv = [args.module, *script_args]  # runpy puts the module's file in argv[0]
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        elif script is not None:
            sys.argv = [script, *script_args]
            _run_script(script)
    finally:
        if _asyncio_get_policy() is policy:
            _asyncio_set_policy(previous)
        sys.argv = saved_argv
        sys.path[:] = saved_path


def _run_script(path: str) -> None:
    """Run a file, or a directory or zip file with a ``__main__.py``, as ``python path`` would.

    runpy.run_path() would do, but it sets ``argv[0]`` and ``__file__`` (or ``sys.path[0]``)
    to the same string, where python keeps ``argv[0]`` as given and makes the others absolute.
    """
    saved_main = sys.modules["__main__"]
    if pkgutil.get_importer(path) is None:  # a plain file
        filename = os.path.abspath(path)
        _set_path0(os.path.dirname(filename))
        with io.open_code(filename) as file:
            # dont_inherit: our own ``from __future__`` imports must not apply to the script.
            code = compile(file.read(), filename, "exec", dont_inherit=True)
        namespace: dict[str, object] = {
            "__file__": filename,
            "__cached__": None,
            "__loader__": importlib.machinery.SourceFileLoader("__main__", filename),
        }
    else:
        _set_path0(os.path.abspath(path), even_if_safe=True)
        del sys.modules["__main__"]  # or find_spec() would answer with this very module
        try:
            spec = importlib.util.find_spec("__main__")
        finally:
            sys.modules["__main__"] = saved_main
        if spec is None or spec.loader is None:
            raise SystemExit(f"sansloop: can't find '__main__' module in {path!r}")
        code = spec.loader.get_code("__main__")  # type: ignore[attr-defined]
        namespace = {
            "__file__": spec.origin,
            "__cached__": spec.cached,
            "__loader__": spec.loader,
            "__spec__": spec,
            "__package__": "",
        }
    module = types.ModuleType("__main__")
    module.__dict__.update(namespace, __builtins__=builtins)
    sys.modules["__main__"] = module  # so pickle and friends find the script's classes
    try:
        exec(code, module.__dict__)
    finally:
        sys.modules["__main__"] = saved_main


def _check_module(parser: argparse.ArgumentParser, module: str) -> None:
    """Exit as python does for a module that cannot run (an ImportError *in* it propagates)."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:
            main_spec = importlib.util.find_spec(f"{module}.__main__")
            if main_spec is None:
                parser.exit(
                    1,
                    f"{parser.prog}: error: No module named {module}.__main__; "
                    f"{module!r} is a package and cannot be directly executed\n",
                )
    except (ImportError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    if spec is None:
        parser.exit(1, f"{parser.prog}: error: No module named {module!r}\n")


def _set_path0(directory: str, *, even_if_safe: bool = False) -> None:
    """Put the target's directory where python would: first on sys.path (unless -P)."""
    if sys.flags.safe_path:
        if even_if_safe:  # python -P still needs a directory's own path to run it
            sys.path.insert(0, directory)
    elif sys.path:
        sys.path[0] = directory
    else:
        sys.path.insert(0, directory)


if __name__ == "__main__":
    main()
