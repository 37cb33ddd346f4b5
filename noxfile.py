"""sansloop's task runner: tests, lint, types, benchmarks and CPython conformance.

Every session passes ``session.posargs`` through.  Interpreters a machine lacks are skipped,
not failed (also on CI, where nox would otherwise treat a missing one as an error).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typing", "conformance"]
nox.options.error_on_missing_interpreters = False
nox.options.default_venv_backend = "venv"


def _find_pyenv_interpreters() -> None:
    """Put pyenv's installed interpreters on PATH: its shims fail for non-global versions."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for version in PYTHONS:
        for candidate in sorted(root.glob(f"{version}.*"), reverse=True):
            if (candidate / "bin" / f"python{version}").exists():
                found.append(str(candidate / "bin"))
                break
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_find_pyenv_interpreters()


def _install(session: nox.Session, *groups: str) -> None:
    deps = [dep for group in groups for dep in nox.project.dependency_groups(PYPROJECT, group)]
    session.install("-e", ".", *deps)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test-suite (pytest + hypothesis)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", *session.posargs)
    session.run("ruff", "format", "--check", "sansloop", "tests", "noxfile.py")


@nox.session(python=PYTHONS)
def typing(session: nox.Session) -> None:
    """mypy: strict on sansloop/core, checked for Linux and for Windows."""
    _install(session, "typing")
    session.run("mypy", *session.posargs)
    session.run("mypy", "--platform", "win32", *session.posargs)


@nox.session(python=PYTHONS)
def conformance(session: nox.Session) -> None:
    """Run CPython's own test.test_asyncio against sansloop; print counts per module."""
    _install(session)
    session.run("python", "-m", "conformance", *session.posargs)


@nox.session(python=PYTHONS)
def bench(session: nox.Session) -> None:
    """Benchmarks: sansloop vs asyncio vs uvloop, interleaved, as ratios."""
    _install(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHONS)
def integration(session: nox.Session) -> None:
    """Real asyncio software on sansloop and on asyncio, counts side by side.

    Not a default session: it installs third-party servers and clients, and fetches the
    websockets library's own test-suite (see integration/websockets_suite.py).  Two runs per
    loop: integration/'s tests (aiohttp, uvicorn + httpx, websockets) and that suite.
    ``session.posargs`` go to both pytest runs.
    """
    _install(session, "integration")
    tmp = Path(session.create_tmp())
    suite = session.run(
        "python", "integration/websockets_suite.py", str(tmp / "websockets-suite"), silent=True
    )
    suite_root = str(suite).strip().splitlines()[-1]
    runs = {
        "integration": ["-c", "integration/pytest.ini", "integration"],
        "websockets-suite": [
            "-c",
            "integration/websockets_suite.ini",
            "--rootdir",
            suite_root,
            f"{suite_root}/tests/asyncio",
            f"{suite_root}/tests/legacy",
        ],
    }
    reports = []
    for mode in ("sansloop", "asyncio"):
        for name, args in runs.items():
            report = tmp / f"{name}-{mode}.xml"
            session.run(
                "pytest",
                *args,
                f"--junitxml={report}",
                *session.posargs,
                env={"SANSLOOP_INTEGRATION_LOOP": mode, "PYTHONPATH": "integration"},
                success_codes=[0, 1],
            )
            reports.append(f"{name}:{mode}={report}")
    session.run("python", "integration/summary.py", *reports)
