"""sansloop's public surface: every public name has one home, and nothing private leaks.

Public modules are found by walking the package (never from a hard-coded list): a module is
public when no component of its dotted name starts with ``_``.  The rules:

1. Every public module defines ``__all__``: a list or tuple of unique strings, none starting
   with ``_``, each naming an attribute that exists.
2. ``__all__`` never exports a private module, and a public module's namespace shows nothing
   public beyond ``__all__`` and its public submodules (no stray ``import asyncio`` showing up
   as ``sansloop.compat.asyncio``).
3. **One home.**  A class or function defined in sansloop has exactly one home: the module it
   is defined in if that is public, otherwise the nearest public package above its private
   module (``sansloop.compat._loop.EventLoop`` lives in ``sansloop.compat``).  It must be
   exported there.  Any other public module may re-export it only if it is an *ancestor* of
   the home, under the same name: a façade such as the top-level ``sansloop`` re-exporting
   ``sansloop.compat``'s names.  Siblings may not re-export each other's names
   (``sansloop.drivers`` exporting a core class would be a second home).  Objects defined
   elsewhere (re-exported from asyncio, say) and other values follow the same rule, with the
   deepest public module that exports them as their home.  Plain values (numbers, strings)
   are matched by name, since their identity means nothing.
4. ``import sansloop.core`` imports no asyncio, socket, selectors, ssl, signal or subprocess
   module as a side effect (checked in a fresh interpreter).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import types
from collections import defaultdict

import pytest

import sansloop

PRIMITIVES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)


def _is_public_name(dotted: str) -> bool:
    return not any(part.startswith("_") for part in dotted.split("."))


def _public_modules() -> list[types.ModuleType]:
    """sansloop and every public module below it, imported, in a stable order."""
    found = [sansloop]
    stack = [sansloop]
    while stack:
        package = stack.pop()
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if not _is_public_name(info.name):
                continue
            module = importlib.import_module(info.name)
            found.append(module)
            if info.ispkg:
                stack.append(module)
    return sorted(found, key=lambda m: m.__name__)


PUBLIC_MODULES = _public_modules()
PUBLIC_MODULE_NAMES = [m.__name__ for m in PUBLIC_MODULES]


def test_walk_finds_the_known_packages() -> None:
    # A sanity check that the walk works, not the list of what must exist.
    assert {"sansloop", "sansloop.core", "sansloop.drivers", "sansloop.compat"} <= set(
        PUBLIC_MODULE_NAMES
    )


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=PUBLIC_MODULE_NAMES)
def test_all_is_well_formed(module: types.ModuleType) -> None:
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{module.__name__} has no __all__"
    assert all(isinstance(name, str) for name in exported)
    assert len(set(exported)) == len(exported), f"duplicates in {module.__name__}.__all__"
    private = [name for name in exported if name.startswith("_")]
    assert private == [], f"{module.__name__}.__all__ exports private names"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{module.__name__}.__all__ names what does not exist"


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=PUBLIC_MODULE_NAMES)
def test_nothing_private_leaks(module: types.ModuleType) -> None:
    exported = set(module.__all__)
    for name in exported:
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            assert _is_public_name(value.__name__), f"{module.__name__}.{name} is private"
    stray = []
    for name, value in vars(module).items():
        if name.startswith(("_", "@")) or name in exported:  # "@": pytest's rewrite globals
            continue
        if isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}":
            continue  # a public submodule, bound by importing it
        if type(value).__module__ == "__future__":
            continue  # from __future__ import annotations
        stray.append(name)
    assert stray == [], f"{module.__name__} shows public names that are not in __all__"


def _defining_home(obj: object) -> str | None:
    """Where a class or function defined in sansloop must be exported, or None."""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return None
    defined_in = getattr(obj, "__module__", None)
    if not isinstance(defined_in, str) or defined_in.split(".")[0] != "sansloop":
        return None
    parts = defined_in.split(".")
    while not _is_public_name(".".join(parts)):
        parts.pop()
    return ".".join(parts)


def _is_ancestor(outer: str, inner: str) -> bool:
    return inner.startswith(outer + ".")


def home_problems(exports: dict[str, dict[str, object]]) -> list[str]:
    """Rule 3 over ``{module name: {exported name: object}}``; returns what is wrong."""
    groups: dict[object, list[tuple[str, str]]] = defaultdict(list)
    objects: dict[object, object] = {}
    for module_name, names in exports.items():
        for name, value in names.items():
            key: object = ("value", name) if isinstance(value, PRIMITIVES) else id(value)
            groups[key].append((module_name, name))
            objects[key] = value
    problems = []
    for key, exporters in groups.items():
        value = objects[key]
        aliases = sorted({name for _, name in exporters})
        modules = sorted({module for module, _ in exporters}, key=lambda m: (m.count("."), m))
        label = f"{aliases[0]} (from {', '.join(modules)})"
        if len(aliases) > 1:
            problems.append(f"one object exported under several names: {aliases} in {modules}")
            continue
        home = modules[-1]
        others = [m for m in modules[:-1] if not _is_ancestor(m, home)]
        if others:
            problems.append(f"{label}: more than one home")
        expected = _defining_home(value)
        if expected is not None and home != expected:
            problems.append(f"{label}: defined under {expected}, but its home is {home}")
    return sorted(problems)


def test_every_public_name_has_one_home() -> None:
    exports = {
        module.__name__: {name: getattr(module, name) for name in module.__all__}
        for module in PUBLIC_MODULES
    }
    assert home_problems(exports) == []


# -- the home rule bites -------------------------------------------------------------------


class _Loop:
    pass


_Loop.__module__ = "sansloop.compat._loop"


class _Scheduler:
    pass


_Scheduler.__module__ = "sansloop.core._scheduler"


def _foreign() -> None:
    pass


@pytest.mark.parametrize(
    ("exports", "problem"),
    [
        ({"sansloop.compat": {"EventLoop": _Loop}}, None),
        ({"sansloop": {"EventLoop": _Loop}, "sansloop.compat": {"EventLoop": _Loop}}, None),
        # The façade exports it but its home does not.
        ({"sansloop": {"EventLoop": _Loop}}, "defined under sansloop.compat"),
        # A sibling re-exports it.
        (
            {
                "sansloop.compat": {"Scheduler": _Scheduler},
                "sansloop.core": {"Scheduler": _Scheduler},
            },
            "more than one home",
        ),
        # A different name for the same object.
        (
            {"sansloop": {"Loop": _Loop}, "sansloop.compat": {"EventLoop": _Loop}},
            "several names",
        ),
        # Two unrelated packages export the same foreign object, or values of the same name.
        ({"sansloop.core": {"f": _foreign}, "sansloop.drivers": {"f": _foreign}}, "more than one"),
        ({"sansloop.core": {"LIMIT": 1.5}, "sansloop.drivers": {"LIMIT": 2.5}}, "more than one"),
        ({"sansloop": {"LIMIT": 1.5}, "sansloop.core": {"LIMIT": 1.5}}, None),
    ],
)
def test_home_rule(exports: dict[str, dict[str, object]], problem: str | None) -> None:
    found = home_problems(exports)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert problem in found[0], found


# -- import side effects -------------------------------------------------------------------

SIDE_EFFECT_FREE = ["asyncio", "_asyncio", "socket", "_socket", "selectors", "select", "ssl"]
ALSO_CHECKED = ["_ssl", "signal", "subprocess", "_overlapped", "concurrent.futures"]

_PROBE = """
import json, sys
before = set(sys.modules)
{setup}
import sansloop.core
print(json.dumps({{"before": sorted(before), "after": sorted(sys.modules)}}))
"""

# Load sansloop.core without running sansloop/__init__.py: an empty stand-in parent package.
_STUB_PARENT = """
import importlib.util, types
spec = importlib.util.find_spec("sansloop")
parent = types.ModuleType("sansloop")
parent.__path__ = list(spec.submodule_search_locations)
sys.modules["sansloop"] = parent
"""


def _probe(setup: str) -> tuple[set[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(done.stdout)
    return set(seen["before"]), set(seen["after"])


def _newly_imported_forbidden(setup: str) -> list[str]:
    before, after = _probe(setup)
    # The check means nothing for a module the interpreter already had at startup.
    assert not before & set(SIDE_EFFECT_FREE), before & set(SIDE_EFFECT_FREE)
    return sorted((after - before) & set(SIDE_EFFECT_FREE + ALSO_CHECKED))


def test_core_import_closure_touches_no_io_module() -> None:
    """The core and everything it imports, without the top-level package's own imports."""
    assert _newly_imported_forbidden(_STUB_PARENT) == []


def test_import_sansloop_core_touches_no_io_module() -> None:
    assert _newly_imported_forbidden("") == []
