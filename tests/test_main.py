"""``python -m sansloop``: a script or module runs as ``python`` would run it, on sansloop.

The real runs are subprocesses, compared with plain ``python`` running the same probe;
argument errors are checked in-process through ``sansloop.__main__.main``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sansloop.__main__ import main

REPO = Path(__file__).resolve().parents[1]

#: Prints what a program sees of how it was started, and which loop asyncio.run() used.
PROBE = """\
import asyncio, json, sys

async def loop_info():
    loop = asyncio.get_running_loop()
    return type(loop).__module__.partition(".")[0], loop.get_debug()

def annotated() -> int: ...

kind, debug = asyncio.run(loop_info())
print(json.dumps({
    "annotation": repr(annotated.__annotations__["return"]),  # no __future__ leaks in
    "name": __name__,
    "argv": sys.argv,
    "path0": sys.path[0],
    "file": __file__,
    "spec": None if __spec__ is None else __spec__.name,
    "main module is this one": sys.modules["__main__"].__dict__ is globals(),
    "loop": kind,
    "debug": debug,
}))
"""


def python(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -W error *args``, with no asyncio debug settings from our environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE")}
    return subprocess.run(
        [sys.executable, "-W", "error", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def probe_output(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert (result.returncode, result.stderr) == (0, "")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def compare_with_python(
    ours: subprocess.CompletedProcess[str], theirs: subprocess.CompletedProcess[str]
) -> dict[str, Any]:
    """The probe saw the same start-up under sansloop as under python, but sansloop's loop."""
    seen, expected = probe_output(ours), probe_output(theirs)
    assert (seen.pop("loop"), expected.pop("loop")) == ("sansloop", "asyncio")
    assert seen == expected
    return seen


# -- running programs ----------------------------------------------------------------------


def test_hello_example_runs_on_sansloop() -> None:
    result = python("-m", "sansloop", "examples/hello.py", "tester")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hello, tester: running on sansloop.")
    assert lines[1:] == [
        "timer: ding after 0.05s",
        "tasks finished: fast, medium, slow",
        "executor: 9592 primes below 100000, computed in another thread: True",
    ]


def test_hello_example_runs_on_asyncio_without_sansloop() -> None:
    result = python("examples/hello.py")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("hello, world: running on asyncio.")


def test_script_starts_as_under_python(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "probe.py").write_text(PROBE)
    script_args = ["sub/probe.py", "a", "--debug", "-m", "x"]  # options after it are its own
    seen = compare_with_python(
        python("-m", "sansloop", *script_args, cwd=tmp_path), python(*script_args, cwd=tmp_path)
    )
    assert seen["name"] == "__main__"
    assert seen["argv"] == script_args
    assert seen["debug"] is False


def test_directory_with_main_starts_as_under_python(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(PROBE)
    seen = compare_with_python(
        python("-m", "sansloop", "app", "c", cwd=tmp_path), python("app", "c", cwd=tmp_path)
    )
    assert seen["name"] == "__main__"
    assert seen["argv"] == ["app", "c"]


def test_module_starts_as_under_python(tmp_path: Path) -> None:
    (tmp_path / "probemod.py").write_text(PROBE)
    seen = compare_with_python(
        python("-m", "sansloop", "-m", "probemod", "b", "--driver", "x", cwd=tmp_path),
        python("-m", "probemod", "b", "--driver", "x", cwd=tmp_path),
    )
    assert seen["name"] == "__main__"
    assert seen["argv"][1:] == ["b", "--driver", "x"]


def test_package_main_starts_as_under_python(tmp_path: Path) -> None:
    (tmp_path / "probepkg").mkdir()
    (tmp_path / "probepkg" / "__init__.py").write_text("")
    (tmp_path / "probepkg" / "__main__.py").write_text(PROBE)
    seen = compare_with_python(
        python("-m", "sansloop", "-m", "probepkg", cwd=tmp_path),
        python("-m", "probepkg", cwd=tmp_path),
    )
    assert seen["spec"] == "probepkg.__main__"


def test_driver_and_debug_options(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    seen = probe_output(
        python("-m", "sansloop", "--driver", "selectors", "--debug", "probe.py", cwd=tmp_path)
    )
    assert (seen["loop"], seen["debug"]) == ("sansloop", True)


def test_script_exit_status_is_the_programs(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text("raise SystemExit(3)\n")
    assert python("-m", "sansloop", "exits.py", cwd=tmp_path).returncode == 3


def test_script_exception_is_reported_like_python(tmp_path: Path) -> None:
    (tmp_path / "fails.py").write_text(
        "import asyncio\n\nasync def f():\n    raise LookupError('boom')\n\nasyncio.run(f())\n"
    )
    result = python("-m", "sansloop", "fails.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback")
    assert result.stderr.endswith("LookupError: boom\n")


def test_import_error_inside_a_module_is_not_a_missing_module(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    result = python("-m", "sansloop", "-m", "broken", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback")
    assert "No module named 'no_such_module_here'" in result.stderr


# -- in-process: main() --------------------------------------------------------------------

RECORDER = """\
import asyncio, json, sys

async def loop_kind():
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]

with open(sys.argv[1], "w") as out:
    json.dump({"loop": asyncio.run(loop_kind()), "argv": sys.argv[1:]}, out)
"""


def test_main_restores_policy_argv_and_path(tmp_path: Path) -> None:
    script, record = tmp_path / "record.py", tmp_path / "record.json"
    script.write_text(RECORDER)
    policy, argv, path = asyncio.get_event_loop_policy(), sys.argv[:], sys.path[:]
    main_module = sys.modules["__main__"]
    main([str(script), str(record)])
    assert json.loads(record.read_text()) == {"loop": "sansloop", "argv": [str(record)]}
    assert asyncio.get_event_loop_policy() is policy
    assert (sys.argv, sys.path) == (argv, path)
    assert sys.modules["__main__"] is main_module


def test_main_rejects_a_directory_without_main(tmp_path: Path) -> None:
    policy, path = asyncio.get_event_loop_policy(), sys.path[:]
    with pytest.raises(SystemExit, match="can't find '__main__' module in"):
        main([str(tmp_path)])
    assert asyncio.get_event_loop_policy() is policy
    assert sys.path == path


def test_main_accepts_pythons_joined_m_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "recordmod.py").write_text(RECORDER)
    record = tmp_path / "record.json"
    monkeypatch.chdir(tmp_path)
    main(["-mrecordmod", str(record)])
    assert json.loads(record.read_text())["loop"] == "sansloop"


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        ([], 2, "a script or -m module is required"),
        (["--driver", "nope", "x.py"], 2, "unknown sansloop driver 'nope'"),
        (["--driver"], 2, "expected one argument"),
        (["-m"], 2, "expected one argument"),
        (["--bogus", "x.py"], 2, "unrecognized arguments: --bogus"),
        (["no_such_script.py"], 2, "can't open file 'no_such_script.py'"),
        (["-m", "no_such_module_xyz"], 1, "No module named 'no_such_module_xyz'"),
        (["-m", "no_such_package_xyz.sub"], 1, "No module named 'no_such_package_xyz'"),
        (["-m", "sansloop.compat"], 1, "'sansloop.compat' is a package and cannot be"),
    ],
)
def test_main_rejects_bad_command_lines(
    argv: list[str], status: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = asyncio.get_event_loop_policy()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == status
    err = capsys.readouterr().err
    assert message in err
    assert "error:" in err
    assert asyncio.get_event_loop_policy() is policy


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "(script.py | -m module) [args ...]" in out
    assert "--driver NAME" in out
    assert "--debug" in out


def test_console_script_entry_point() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [ep.value for ep in scripts if ep.name == "sansloop"] == ["sansloop.__main__:main"]
    assert scripts["sansloop"].load() is main
