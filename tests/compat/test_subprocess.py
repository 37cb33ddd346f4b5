"""Real child processes through ``subprocess_exec``/``_shell`` and ``asyncio.subprocess``.

Every test runs on sansloop and on asyncio's ``SelectorEventLoop`` (the reference) with the
same assertions, checks that no file descriptor is left open, and that no child process is
left behind (running or zombie).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _net import run

import sansloop

pytestmark = [
    pytest.mark.usefixtures("no_leaked_loop_state", "no_fd_leak", "no_children"),
    pytest.mark.skipif(sys.platform == "win32", reason="Unix subprocesses"),
]

PY = sys.executable
PIPE = asyncio.subprocess.PIPE


@pytest.fixture
def no_children() -> Iterator[None]:
    """The test leaves no child process: neither running nor an unreaped zombie."""
    yield
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def py(code: str) -> list[str]:
    return [PY, "-c", code]


class Recorder(asyncio.SubprocessProtocol):
    """Records the callbacks a subprocess transport makes, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.data: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.events.append(("made",))

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.events[-1] != ("data", fd):
            self.events.append(("data", fd))
        self.data[fd] += data

    def pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self.events.append(("pipe lost", fd, exc))

    def process_exited(self) -> None:
        self.events.append(("exited",))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))
        self.done.set_result(None)


def drop(holder: list[Any]) -> None:
    """Let go of the only reference to an object, and collect it."""
    holder.clear()
    gc.collect()


# -- the protocol level --------------------------------------------------------------------


def test_protocol_callbacks_in_asyncio_order(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            Recorder, *py("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
        )
        assert isinstance(transport, asyncio.SubprocessTransport)
        assert transport.get_pid() > 0
        assert transport.get_returncode() is None or transport.get_returncode() == 3
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        assert transport.get_pipe_transport(3) is None
        assert isinstance(transport.get_extra_info("subprocess"), subprocess.Popen)
        stdin.close()
        await proto.done
        assert transport.get_returncode() == 3
        events = proto.events
        assert events[0] == ("made",)
        assert events[-1] == ("lost", None)
        assert events.count(("exited",)) == 1
        for fd in (0, 1, 2):
            assert events.count(("pipe lost", fd, None)) == 1
        for fd in (1, 2):
            assert events.index(("data", fd)) < events.index(("pipe lost", fd, None))
        assert proto.data[1].strip() == b"out"
        assert proto.data[2].strip() == b"err"
        transport.close()
        with pytest.raises(ProcessLookupError):
            transport.send_signal(signal.SIGTERM)

    run(any_loop, main())


def test_shell_exit_code_and_no_pipes(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_shell(
            Recorder, "exit 7", stdin=None, stdout=subprocess.DEVNULL, stderr=None
        )
        assert transport.get_pipe_transport(0) is None
        assert transport.get_pipe_transport(1) is None
        await proto.done
        assert transport.get_returncode() == 7
        assert proto.events == [("made",), ("exited",), ("lost", None)]
        transport.close()

    run(any_loop, main())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"bufsize": 1}, "bufsize must be 0"),
        ({"text": True}, "text must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
    ],
)
def test_argument_errors(
    any_loop: asyncio.AbstractEventLoop, kwargs: dict[str, Any], message: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_exec(Recorder, "true", **kwargs)
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_shell(Recorder, "true", **kwargs)

    run(any_loop, main())


def test_shell_argument_errors(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match=r"^shell must be False$"):
            await loop.subprocess_exec(Recorder, "true", shell=True)
        with pytest.raises(ValueError, match=r"^shell must be True$"):
            await loop.subprocess_shell(Recorder, "true", shell=False)
        with pytest.raises(ValueError, match=r"^cmd must be a string$"):
            await loop.subprocess_shell(Recorder, ["true"])  # type: ignore[arg-type]

    run(any_loop, main())


def test_missing_program_raises_from_popen(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(FileNotFoundError):
            await loop.subprocess_exec(Recorder, "/nonexistent/sansloop-test-program")

    run(any_loop, main())


# -- asyncio.subprocess ---------------------------------------------------------------------


def test_echo_through_stdin_and_stdout(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; sys.stdout.write(sys.stdin.read().upper())"),
            stdin=PIPE,
            stdout=PIPE,
        )
        out, err = await proc.communicate(b"hello, child")
        assert out == b"HELLO, CHILD"
        assert err is None
        assert proc.returncode == 0

    run(any_loop, main())


def test_line_by_line_conversation(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            *py("import sys\nfor line in sys.stdin:\n print(len(line), flush=True)"),
            stdin=PIPE,
            stdout=PIPE,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        for word in (b"a", b"bb", b"ccc"):
            proc.stdin.write(word + b"\n")
            await proc.stdin.drain()
            assert await proc.stdout.readline() == str(len(word) + 1).encode() + b"\n"
        proc.stdin.close()
        assert await proc.wait() == 0

    run(any_loop, main())


def test_64_mib_through_a_child(any_loop: asyncio.AbstractEventLoop) -> None:
    chunk = os.urandom(1 << 20)
    data = chunk * 64

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        assert len(out) == len(data)
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
        assert proc.returncode == 0

    run(any_loop, main(), timeout=60)


def test_large_outputs_on_both_pipes(any_loop: asyncio.AbstractEventLoop) -> None:
    code = (
        "import sys\n"
        "for i in range(64):\n"
        " sys.stdout.buffer.write(b'o' * 65536)\n"
        " sys.stderr.buffer.write(b'e' * 65536)\n"
    )

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*py(code), stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        assert out == b"o" * (64 * 65536)
        assert err == b"e" * (64 * 65536)
        assert proc.returncode == 0

    run(any_loop, main())


def test_stderr_to_stdout(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_shell(
            "echo out; echo err >&2", stdout=PIPE, stderr=subprocess.STDOUT
        )
        out, err = await proc.communicate()
        assert sorted(out.split()) == [b"err", b"out"]
        assert err is None

    run(any_loop, main())


def test_hundred_concurrent_children(any_loop: asyncio.AbstractEventLoop) -> None:
    async def child(i: int) -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", f"echo {i}; exit {i % 7}", stdout=PIPE
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out

    async def main() -> None:
        results = await asyncio.gather(*(child(i) for i in range(100)))
        assert results == [(i % 7, f"{i}\n".encode()) for i in range(100)]

    run(any_loop, main(), timeout=60)


def test_many_children_exiting_at_once(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        # All wait on one pipe and exit together when it closes.
        r, w = os.pipe()
        try:
            procs = [
                await asyncio.create_subprocess_exec(
                    *py(f"import os, sys; os.read({r}, 1); sys.exit({i})"), pass_fds=(r,)
                )
                for i in range(40)
            ]
        finally:
            os.close(r)
            os.close(w)
        codes = await asyncio.gather(*(p.wait() for p in procs))
        assert codes == list(range(40))

    run(any_loop, main(), timeout=60)


def test_returncode_of_signals(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        for method, sig in (("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)):
            proc = await asyncio.create_subprocess_exec("sleep", "30")
            getattr(proc, method)()
            assert await proc.wait() == -sig
            assert proc.returncode == -sig
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        proc.send_signal(signal.SIGINT)
        assert await proc.wait() == -signal.SIGINT

    run(any_loop, main())


def test_signal_reaches_the_childs_handler(any_loop: asyncio.AbstractEventLoop) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGUSR1, lambda *a: (print('got usr1', flush=True), sys.exit(5)))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*py(code), stdout=PIPE)
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGUSR1)
        assert await proc.stdout.readline() == b"got usr1\n"
        assert await proc.wait() == 5

    run(any_loop, main())


def test_child_ignoring_sigterm(any_loop: asyncio.AbstractEventLoop) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(*py(code), stdout=PIPE)
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        proc.terminate()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.2)
        assert proc.returncode is None
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL

    run(any_loop, main())


def test_signal_after_exit_is_ignored_until_closed(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("true")
        assert await proc.wait() == 0
        # The transport is finished: the process object is gone, as in asyncio.
        with pytest.raises(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    run(any_loop, main())


def test_communicate_timeout(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.communicate(), 0.1)
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL

    run(any_loop, main())


def test_stdin_closed_early_by_the_child(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        # The child exits without reading: communicate() swallows the broken pipe.
        proc = await asyncio.create_subprocess_exec(
            *py("import os; os.close(0); print('bye')"), stdin=PIPE, stdout=PIPE
        )
        out, _ = await proc.communicate(b"x" * (4 << 20))
        assert out == b"bye\n"
        assert proc.returncode == 0

    run(any_loop, main())


def test_child_killed_while_we_write_its_stdin(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdin=PIPE)
        assert proc.stdin is not None
        proc.stdin.write(b"x" * (4 << 20))  # far more than the pipe holds
        proc.kill()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            await proc.stdin.drain()
        assert await proc.wait() == -signal.SIGKILL

    run(any_loop, main())


def test_cwd_env_and_pass_fds(any_loop: asyncio.AbstractEventLoop, tmp_path: Any) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            *py("import os; print(os.getcwd(), os.environ['SANSLOOP_TEST'])"),
            stdout=PIPE,
            cwd=str(tmp_path),
            env={**os.environ, "SANSLOOP_TEST": "yes"},
        )
        out, _ = await proc.communicate()
        assert out.split() == [os.fsencode(os.path.realpath(tmp_path)), b"yes"]

    run(any_loop, main())


def test_cancelled_while_starting_kills_and_reaps(any_loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE))
        await asyncio.sleep(0)  # Popen has run; the pipes are being connected
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(any_loop, main())


# -- sansloop only --------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="looks for the child in /proc")
@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "threads"])
def test_loop_closed_with_a_child_running(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, pidfd: bool
) -> None:
    if pidfd and not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    loop = sansloop.EventLoop()
    transport, _ = run(loop, loop.subprocess_exec(asyncio.SubprocessProtocol, "sleep", "30"))
    pid = transport.get_pid()
    loop.close()
    holder = [transport]
    del transport
    with pytest.warns(ResourceWarning) as caught:
        drop(holder)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("unclosed transport <SubprocessTransport") for m in messages)
    # The dropped transport killed the child; the closed driver's reaper (or the waiter
    # thread) collects it, so it does not stay a zombie: its /proc entry goes away.
    for _ in range(500):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}")
    if not pidfd:
        # The waiter thread found the loop closed: asyncio's warning, status dropped.
        for _ in range(500):
            if "that handles pid" in caplog.text:
                break
            time.sleep(0.01)
        assert f"that handles pid {pid} is closed" in caplog.text


def test_a_driver_without_processes_says_so(clock_only_driver: Any) -> None:
    loop = sansloop.EventLoop(clock_only_driver)
    try:
        with pytest.raises(NotImplementedError, match="ClockOnlyDriver driver cannot"):
            loop.run_until_complete(loop.subprocess_exec(Recorder, "true"))
    finally:
        loop.close()


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "threads"])
def test_reaping_with_and_without_pidfd(monkeypatch: pytest.MonkeyPatch, pidfd: bool) -> None:
    if pidfd and not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open")
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    loop = sansloop.EventLoop()

    async def main() -> None:
        procs = [await asyncio.create_subprocess_exec("sh", "-c", f"exit {i}") for i in range(30)]
        assert await asyncio.gather(*(p.wait() for p in procs)) == list(range(30))
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL

    try:
        run(loop, main())
    finally:
        loop.close()


def test_status_collected_by_popen_first(caplog: pytest.LogCaptureFixture) -> None:
    """A ``Popen.poll()`` that reaps the child before the loop does gives the loop Popen's
    return code (asyncio would report 255 with a warning)."""
    loop = sansloop.EventLoop()

    async def main() -> None:
        transport, proto = await asyncio.get_running_loop().subprocess_exec(
            Recorder, "sh", "-c", "exit 9", stdin=None, stdout=None, stderr=None
        )
        popen = transport.get_extra_info("subprocess")
        while popen.poll() is None:  # reaps the child under the loop's feet
            time.sleep(0.001)
        await proto.done
        assert transport.get_returncode() == 9
        transport.close()

    try:
        run(loop, main())
    finally:
        loop.close()
    assert "255" not in caplog.text
