"""``sansloop/core`` stays pure: checked by parsing its source, not by importing it.

The rules, and how far the check reaches:

1. **No world-touching imports.**  No ``import`` or ``from ... import`` of ``socket``,
   ``select``, ``selectors``, ``os``, ``time``, ``threading``, ``signal``, ``_overlapped``,
   ``subprocess``, ``asyncio`` (the core must not depend on asyncio either), their C twins and
   close relatives (``_socket``, ``_thread``, ``_signal``, ``_asyncio``, ``posix``, ``nt``,
   ``_winapi``, ``msvcrt``, ``multiprocessing``, ``concurrent``), or any of their submodules.
   The core may not import ``sansloop``'s drivers or compat layer either.
2. **ssl: pure pieces only.**  ``import ssl`` is allowed, and ``from ssl import`` of the pure
   computation classes (``MemoryBIO``, ``SSLObject``) and the exception and constant names a
   TLS state machine needs.  Referring to the socket wrappers as ``ssl.SSLSocket``,
   ``ssl.wrap_socket`` and friends is rejected.  What cannot be checked cheaply: calls through
   an object, such as ``context.wrap_socket(...)``; review catches those.
3. **No dynamic imports.**  Any use of the name ``__import__``, any import of ``importlib``,
   and ``builtins.__import__`` are rejected: they would hide an import from rule 1.
4. **No module-level mutable state.**  Pragmatically:

   * a module-level assignment (also inside module-level ``if``/``try`` blocks) must bind a
     *constant-like* value: a literal (numbers, strings, bytes, ``None``, booleans) or a tuple,
     ``frozenset(...)`` or arithmetic of them; a reference to another name or attribute (an
     alias, e.g. ``_S = LoopState``); a subscripted name (a type alias such as
     ``Callable[[int], None]``); a call of ``TypeVar``, ``ParamSpec``, ``TypeVarTuple``,
     ``NewType``, ``object`` (a sentinel), ``frozenset``, ``tuple`` or ``MappingProxyType``;
   * except that ``__all__`` may be a list, and an assignment annotated ``Final[...]`` or
     ``TypeAlias`` may bind anything (a ``Final`` dict is a lookup table by convention);
   * nothing in the module may mutate a module-level name: no ``global`` statement, no
     ``NAME[...] = ...``/``del NAME[...]``/``NAME.attr = ...``, and no call of a mutating
     method (``append``, ``update``, ``setdefault``, ...) on a module-level name.

   Classes (``attrs`` classes included) and functions are definitions, not state, and are not
   inspected.  Class bodies may keep class-level constants; instances carry the state.

The checker is tested on small snippets below, so a rule that stops biting fails a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sansloop

CORE = Path(sansloop.__file__).parent / "core"
CORE_PACKAGE = "sansloop.core"

FORBIDDEN_MODULES = frozenset(
    {
        "socket",
        "_socket",
        "select",
        "selectors",
        "os",
        "posix",
        "nt",
        "time",
        "threading",
        "_thread",
        "signal",
        "_signal",
        "_overlapped",
        "_winapi",
        "msvcrt",
        "subprocess",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "_asyncio",
        "importlib",
    }
)

SSL_ALLOWED_NAMES = frozenset(
    {
        "MemoryBIO",
        "SSLObject",
        "SSLContext",  # for typing and wrap_bio
        "SSLError",
        "SSLWantReadError",
        "SSLWantWriteError",
        "SSLZeroReturnError",
        "SSLSyscallError",
        "SSLEOFError",
        "SSLCertVerificationError",
        "CertificateError",
        "Purpose",
        "TLSVersion",
    }
)
SSL_FORBIDDEN_ATTRIBUTES = frozenset(
    {"SSLSocket", "wrap_socket", "get_server_certificate", "create_connection", "socket"}
)

ALLOWED_CALLS = frozenset(
    {
        "TypeVar",
        "ParamSpec",
        "TypeVarTuple",
        "NewType",
        "object",
        "frozenset",
        "tuple",
        "MappingProxyType",
    }
)

MUTATING_METHODS = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "remove",
        "pop",
        "popleft",
        "popitem",
        "clear",
        "add",
        "discard",
        "update",
        "setdefault",
        "sort",
        "reverse",
        "rotate",
        "__setitem__",
        "__delitem__",
    }
)


def _forbidden(module: str) -> str | None:
    """Why importing the absolute ``module`` breaks the rules, or None."""
    for bad in FORBIDDEN_MODULES:
        if module == bad or module.startswith(bad + "."):
            return f"imports {module}"
    if (module == "sansloop" or module.startswith("sansloop.")) and not (
        module == CORE_PACKAGE or module.startswith(CORE_PACKAGE + ".")
    ):
        return f"imports {module} (outside {CORE_PACKAGE})"
    return None


def _resolve(node: ast.ImportFrom, package: str) -> str | None:
    """The absolute module a ``from ... import`` names (None: above the top-level package)."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    if node.level > len(parts):
        return None
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_final_or_alias(annotation: ast.expr) -> bool:
    node = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    name = _callee_name(node)
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value.split("[", 1)[0].rsplit(".", 1)[-1] in {"Final", "TypeAlias"}
    return name in {"Final", "TypeAlias"}


def _is_constant_like(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant | ast.Name | ast.Attribute | ast.JoinedStr):
        return True
    if isinstance(node, ast.Tuple):
        return all(_is_constant_like(elt) for elt in node.elts)
    if isinstance(node, ast.BinOp):
        return _is_constant_like(node.left) and _is_constant_like(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_constant_like(node.operand)
    if isinstance(node, ast.Subscript):
        # A type alias (Callable[[int], None], dict[str, int]) or indexing a constant.
        return isinstance(node.value, ast.Name | ast.Attribute)
    if isinstance(node, ast.Call):
        return _callee_name(node.func) in ALLOWED_CALLS
    return False


def _module_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run at import time, looking into module-level if/try blocks."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, ast.If):
            out.extend(_module_level_statements(stmt.body + stmt.orelse))
        elif isinstance(stmt, ast.Try):
            inner = stmt.body + stmt.orelse + stmt.finalbody
            for handler in stmt.handlers:
                inner += handler.body
            out.extend(_module_level_statements(inner))
    return out


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for elt in target.elts for name in _target_names(elt)]
    return []


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def impurities(source: str, filename: str = "<snippet>", package: str = CORE_PACKAGE) -> list[str]:
    """Every rule the module ``source`` (in ``package``) breaks, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    problems: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        problems.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    ssl_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                why = _forbidden(alias.name)
                if why:
                    report(node, why)
                elif alias.name == "ssl":
                    ssl_aliases.add(alias.asname or "ssl")
                elif alias.name.startswith("ssl."):
                    report(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, package)
            if module is None:
                report(node, "relative import goes above the top-level package")
                continue
            why = _forbidden(module)
            if why:
                report(node, why)
                continue
            for alias in node.names:
                # ``from pkg import name`` may import the submodule pkg.name.
                why = _forbidden(f"{module}.{alias.name}")
                if why:
                    report(node, why)
                elif module == "ssl" and alias.name not in SSL_ALLOWED_NAMES:
                    report(node, f"imports ssl.{alias.name}")
                elif module == "builtins" and alias.name == "__import__":
                    report(node, "imports builtins.__import__")
        elif isinstance(node, ast.Name) and node.id == "__import__":
            report(node, "uses __import__")
        elif isinstance(node, ast.Attribute):
            if node.attr == "__import__":
                report(node, "uses __import__")
            elif (
                isinstance(node.value, ast.Name)
                and node.value.id in ssl_aliases
                and node.attr in SSL_FORBIDDEN_ATTRIBUTES
            ):
                report(node, f"uses ssl.{node.attr}")
        elif isinstance(node, ast.Global):
            report(node, f"global statement rebinds module state: {', '.join(node.names)}")

    module_names: set[str] = set()
    for stmt in _module_level_statements(tree.body):
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            module_names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            module_names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names = [name for target in stmt.targets for name in _target_names(target)]
            module_names.update(names)
            if names == ["__all__"] and isinstance(stmt.value, ast.List | ast.Tuple):
                continue
            if not _is_constant_like(stmt.value):
                report(stmt, f"module-level mutable state: {', '.join(names) or '?'}")
        elif isinstance(stmt, ast.AnnAssign):
            names = _target_names(stmt.target)
            module_names.update(names)
            if stmt.value is None or _is_final_or_alias(stmt.annotation):
                continue
            if not _is_constant_like(stmt.value):
                report(stmt, f"module-level mutable state: {', '.join(names)}")
        elif isinstance(stmt, ast.AugAssign):
            report(stmt, "module-level augmented assignment")
        elif isinstance(stmt, ast.For | ast.AsyncFor | ast.While | ast.With | ast.AsyncWith):
            report(stmt, "module-level loop or with-block")

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            targets: list[ast.expr] = (
                node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            )
            for target in targets:
                if isinstance(target, ast.Subscript | ast.Attribute):
                    root = _root_name(target)
                    if root in module_names:
                        report(node, f"mutates module-level {root}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATING_METHODS
            and _root_name(node.func.value) in module_names
        ):
            root = _root_name(node.func.value)
            report(node, f"mutates module-level {root} (.{node.func.attr}())")
    return problems


def _core_files() -> list[Path]:
    files = sorted(CORE.rglob("*.py"))
    assert files, f"no Python files under {CORE}"
    return files


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert impurities(path.read_text(encoding="utf-8"), str(path.relative_to(CORE))) == []


# -- the checker bites ---------------------------------------------------------------------

IMPURE = {
    "import socket": "imports socket",
    "import os.path": "imports os.path",
    "import time as _t": "imports time",
    "from threading import Lock": "imports threading",
    "from concurrent.futures import Future": "imports concurrent.futures",
    "import asyncio.events": "imports asyncio.events",
    "from asyncio import Handle": "imports asyncio",
    "import _overlapped": "imports _overlapped",
    "import subprocess": "imports subprocess",
    "import signal": "imports signal",
    "import selectors": "imports selectors",
    "from select import epoll": "imports select",
    "from sansloop.drivers import Driver": "imports sansloop.drivers (outside",
    "from sansloop import compat": "imports sansloop (outside",
    "from sansloop import EventLoop": "imports sansloop (outside",
    "import sansloop.compat._loop": "imports sansloop.compat._loop (outside",
    "from ..drivers import Driver": "imports sansloop.drivers (outside",
    "from .. import compat": "imports sansloop (outside",
    "from ...x import y": "relative import goes above the top-level package",
    "import importlib": "imports importlib",
    "from importlib import import_module": "imports importlib",
    "m = __import__('socket')": "uses __import__",
    "import builtins\nm = builtins.__import__('os')": "uses __import__",
    "from ssl import SSLSocket": "imports ssl.SSLSocket",
    "import ssl\nx = ssl.wrap_socket": "uses ssl.wrap_socket",
    "import ssl as s\ndef f(): return s.SSLSocket": "uses ssl.SSLSocket",
    "_cache = {}": "module-level mutable state: _cache",
    "_seen = set()": "module-level mutable state: _seen",
    "_queue = []": "module-level mutable state: _queue",
    "import itertools\n_ids = itertools.count()": "module-level mutable state: _ids",
    "_x: list[int] = []": "module-level mutable state: _x",
    "a, b = [], []": "module-level mutable state: a, b",
    "if True:\n    _late = {}": "module-level mutable state: _late",
    "try:\n    _t = dict()\nexcept Exception:\n    pass": "module-level mutable state: _t",
    "_n = 0\ndef f():\n    global _n\n    _n += 1": "global statement",
    "T: 'Final' = {}\ndef f(k):\n    T[k] = 1": "mutates module-level T",
    "T: 'Final' = {}\ndef f():\n    T.update(a=1)": "mutates module-level T",
    "from typing import Final\nT: Final = {}\ndef f():\n    del T['a']": "mutates module-level T",
    "class C: pass\nC.x = 1": "mutates module-level C",
    "import heapq\ndef f():\n    heapq.heappush = None": "mutates module-level heapq",
    "T: 'Final' = {1: []}\ndef f():\n    T[1].append(2)": "mutates module-level T",
    "from os import path": "imports os",
    "from builtins import __import__ as imp": "imports builtins.__import__",
    "for _i in range(3):\n    pass": "module-level loop",
    "X = 1\nX += 1": "module-level augmented assignment",
}

PURE = [
    "from __future__ import annotations",
    "import ssl",
    "import ssl\nbio = ssl.MemoryBIO",
    "from ssl import MemoryBIO, SSLObject, SSLWantReadError",
    "import heapq, itertools, enum\nfrom collections import deque",
    "from . import _handles\nfrom ._inbox import Inbox\nfrom ..core._x import y",
    "import sansloop.core._handles\nfrom sansloop.core import Scheduler",
    "import attrs\n@attrs.frozen\nclass Stats:\n    ready: int",
    "__all__ = ['A', 'B']",
    "MAXIMUM: 'Final' = 24 * 3600.0\nLIMIT = -1\nNAME = 'x' + 'y'\nPAIR = (1, 2.0)",
    "from typing import Final\nTABLE: Final[dict[int, str]] = {1: 'a'}",
    "from typing import TypeVar\n_T = TypeVar('_T')",
    "from typing import Callable\nFn = Callable[[int], None]",
    "from typing import TypeAlias\nFn: TypeAlias = 'list[int]'",
    "_MISSING = object()",
    "KINDS = frozenset({'a', 'b'})",
    "import enum\nclass E(enum.Enum):\n    A = 1\n_A = E.A",
    "def f():\n    cache = {}\n    cache[1] = 2\n    cache.update(a=1)\n    return cache",
    "class C:\n    __slots__ = ('a',)\n    def __init__(self):\n        self.a = []\n"
    "        self.a.append(1)",
]


@pytest.mark.parametrize(("source", "problem"), list(IMPURE.items()), ids=list(IMPURE))
def test_checker_rejects(source: str, problem: str) -> None:
    found = impurities(source)
    assert any(problem in entry for entry in found), found


@pytest.mark.parametrize("source", PURE)
def test_checker_accepts(source: str) -> None:
    assert impurities(source) == []
