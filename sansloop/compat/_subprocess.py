"""``subprocess_exec``/``subprocess_shell`` and asyncio's subprocess transport.

The transport follows asyncio's ``BaseSubprocessTransport`` rule for rule, because
``asyncio.subprocess.Process`` relies on its private half (``_wait()``):

* the child is started with ``subprocess.Popen`` (``universal_newlines=False``, the caller's
  ``bufsize`` and keyword arguments); its pipes become pipe transports
  (``connect_write_pipe`` for stdin, ``connect_read_pipe`` for stdout and stderr), then
  ``connection_made`` runs, then whatever the pipes reported meanwhile, in order;
* ``pipe_data_received(fd, data)``, ``pipe_connection_lost(fd, exc)`` and
  ``process_exited()`` each run through ``call_soon``; ``connection_lost(None)`` runs once
  the process has exited *and* every pipe is closed, and it completes the ``_wait()``
  futures with the return code;
* the exit status comes from the loop's driver (:class:`sansloop.drivers.ChildDriver`:
  a pidfd or a waiter thread per child; no global child watcher).  ``close()``,
  ``send_signal()`` and friends call the ``Popen``'s methods as asyncio does on each version
  (3.11/3.12: ``Popen.send_signal``, which polls first; 3.13: ``os.kill``), so a ``Popen``
  may collect the status before the driver does: the driver then reports None and the
  transport takes the ``Popen``'s return code (asyncio would report 255 with a warning).

If starting fails after the process exists (a pipe cannot be connected, the caller is
cancelled), the child is killed and waited for before the exception propagates, as asyncio
does.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ._pipes import pipe_driver

if TYPE_CHECKING:
    from sansloop.drivers import ChildDriver

    from ._loop import EventLoop

__all__ = ["SUBPROCESS_METHODS", "SubprocessTransport"]

logger = logging.getLogger("asyncio")


def _child_driver(loop: EventLoop) -> ChildDriver:
    pipe_driver(loop)  # Windows and pipe-less drivers: the same NotImplementedError.
    driver = loop._driver
    if not hasattr(driver, "watch_child"):
        raise NotImplementedError(f"the {type(driver).__name__} driver cannot run subprocesses")
    return cast("ChildDriver", driver)


class _PipeProtocol(asyncio.Protocol):
    """What one of the child's pipes reports to the subprocess transport."""

    def __init__(self, proc: SubprocessTransport, fd: int) -> None:
        self.proc: SubprocessTransport | None = proc
        self.fd = fd
        self.pipe: Any = None
        self.disconnected = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_made(self, transport: Any) -> None:
        self.pipe = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disconnected = True
        proc = self.proc
        self.proc = None
        if proc is not None:
            proc._pipe_connection_lost(self.fd, exc)

    def pause_writing(self) -> None:
        if self.proc is not None:
            self.proc._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self.proc is not None:
            self.proc._protocol.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.proc is not None:
            self.proc._pipe_data_received(self.fd, data)


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process and its pipes; see the module docstring."""

    _extra: dict[str, Any]  # asyncio.BaseTransport's, read by get_extra_info()

    def __init__(
        self,
        loop: EventLoop,
        protocol: Any,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(extra)
        self._closed = False
        self._protocol = protocol
        self._loop: EventLoop | None = loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._returncode: int | None = None
        self._exit_waiters: list[asyncio.Future[int]] | None = []
        self._pending_calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] | None
        self._pending_calls = collections.deque()
        self._pipes: dict[int, _PipeProtocol | None] = {}
        self._finished = False
        if stdin == subprocess.PIPE:
            self._pipes[0] = None
        if stdout == subprocess.PIPE:
            self._pipes[1] = None
        if stderr == subprocess.PIPE:
            self._pipes[2] = None
        try:
            self._proc = subprocess.Popen(
                args,
                shell=shell,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                universal_newlines=False,
                bufsize=bufsize,
                **kwargs,
            )
        except BaseException:
            self.close()
            raise
        self._pid = self._proc.pid
        self._extra["subprocess"] = self._proc
        if loop.get_debug():
            program = args if isinstance(args, (bytes, str)) else args[0]
            logger.debug("process %r created: pid %s", program, self._pid)
        loop.create_task(self._connect_pipes(waiter))

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")
        stdin = self._pipes.get(0)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")
        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")
        return "<{}>".format(" ".join(info))

    # -- the transport's public methods ---------------------------------------------------

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_protocol(self) -> Any:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the pipes; kill the child unless the loop has seen it exit."""
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is not None and proto.pipe is not None:
                proto.pipe.close()
        proc = self._proc
        if (
            proc is not None
            # The loop has not seen it exit, and it has not exited unseen either.
            and self._returncode is None
            and proc.poll() is None
        ):
            loop = self._loop
            if loop is not None and loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                proc.kill()
            except (ProcessLookupError, PermissionError):
                # Already gone, or running setuid.
                pass

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    def get_pid(self) -> int:
        return self._pid  # type: ignore[return-value]  # None only before Popen returned

    def get_returncode(self) -> int | None:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Any:
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def _check_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ProcessLookupError()
        return self._proc

    if sys.version_info >= (3, 13):

        def send_signal(self, signal: int) -> None:
            proc = self._check_proc()
            try:
                os.kill(proc.pid, signal)
            except ProcessLookupError:
                pass

        def terminate(self) -> None:
            self.send_signal(signal.SIGTERM)

        def kill(self) -> None:
            self.send_signal(signal.SIGKILL)

    else:

        def send_signal(self, signal: int) -> None:
            self._check_proc().send_signal(signal)

        def terminate(self) -> None:
            self._check_proc().terminate()

        def kill(self) -> None:
            self._check_proc().kill()

    # -- starting -------------------------------------------------------------------------

    async def _connect_pipes(self, waiter: asyncio.Future[None] | None) -> None:
        try:
            proc = self._proc
            loop = self._loop
            assert proc is not None
            assert loop is not None
            if proc.stdin is not None:
                _, proto = await loop.connect_write_pipe(lambda: _PipeProtocol(self, 0), proc.stdin)
                self._pipes[0] = proto
            if proc.stdout is not None:
                _, proto = await loop.connect_read_pipe(lambda: _PipeProtocol(self, 1), proc.stdout)
                self._pipes[1] = proto
            if proc.stderr is not None:
                _, proto = await loop.connect_read_pipe(lambda: _PipeProtocol(self, 2), proc.stderr)
                self._pipes[2] = proto
            assert self._pending_calls is not None
            loop.call_soon(self._protocol.connection_made, self)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    # -- what the pipes and the driver report ---------------------------------------------

    def _call(self, callback: Callable[..., Any], *data: Any) -> None:
        if self._pending_calls is not None:
            self._pending_calls.append((callback, data))
        elif self._loop is not None:
            self._loop.call_soon(callback, *data)

    def _pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd: int, data: bytes) -> None:
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode: int | None) -> None:
        """The driver reaped the child (None: the Popen had collected its status)."""
        if self._returncode is not None or self._loop is None:
            return
        proc = self._proc
        if returncode is None:
            returncode = None if proc is None else proc.returncode
            if returncode is None:
                returncode = 255
                logger.warning(
                    "child process pid %d exit status already read:  will report returncode 255",
                    self._pid,
                )
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        if proc is not None and proc.returncode is None:
            # Popen never waited for it: tell it, so it does not think the child runs.
            proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()

    async def _wait(self) -> int:
        """Wait until the process exited and every pipe closed; return the return code."""
        if self._returncode is not None:
            return self._returncode
        assert self._loop is not None
        assert self._exit_waiters is not None
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter

    def _try_finish(self) -> None:
        if self._finished or self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            for waiter in self._exit_waiters or ():
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)  # type: ignore[arg-type]
            self._exit_waiters = None
            self._loop = None
            self._proc = None
            self._protocol = None


# -- the loop's methods --------------------------------------------------------------------


def _format_pipe(fd: Any) -> str:
    if fd == subprocess.PIPE:
        return "<pipe>"
    if fd == subprocess.STDOUT:
        return "<stdout>"
    return repr(fd)


def _log_subprocess(message: str, stdin: Any, stdout: Any, stderr: Any) -> None:
    info = [message]
    if stdin is not None:
        info.append(f"stdin={_format_pipe(stdin)}")
    if stdout is not None and stderr == subprocess.STDOUT:
        info.append(f"stdout=stderr={_format_pipe(stdout)}")
    else:
        if stdout is not None:
            info.append(f"stdout={_format_pipe(stdout)}")
        if stderr is not None:
            info.append(f"stderr={_format_pipe(stderr)}")
    logger.debug(" ".join(info))


def _check_text_options(bufsize: int, text: Any, encoding: Any, errors: Any) -> None:
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


async def _spawn(
    loop: EventLoop,
    protocol: Any,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SubprocessTransport:
    driver = _child_driver(loop)
    waiter = loop.create_future()
    transport = SubprocessTransport(
        loop, protocol, args, shell, stdin, stdout, stderr, bufsize, waiter, extra, **kwargs
    )
    try:
        driver.watch_child(transport.get_pid(), transport._process_exited)
    except BaseException:
        transport.close()  # kills the child; its Popen reaps it once it is collected
        raise
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return transport


async def subprocess_shell(
    self: EventLoop,
    protocol_factory: Callable[[], asyncio.SubprocessProtocol],
    cmd: str | bytes,
    *,
    stdin: Any = subprocess.PIPE,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    universal_newlines: bool = False,
    shell: bool = True,
    bufsize: int = 0,
    encoding: Any = None,
    errors: Any = None,
    text: Any = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, asyncio.SubprocessProtocol]:
    """Run ``cmd`` through the shell, connected to a new ``SubprocessProtocol``."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("cmd must be a string")
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if not shell:
        raise ValueError("shell must be True")
    _check_text_options(bufsize, text, encoding, errors)
    return await _start(
        self,
        protocol_factory,
        cmd,
        True,
        f"run shell command {cmd!r}",
        stdin,
        stdout,
        stderr,
        bufsize,
        kwargs,
    )


async def subprocess_exec(
    self: EventLoop,
    protocol_factory: Callable[[], asyncio.SubprocessProtocol],
    program: Any,
    *args: Any,
    stdin: Any = subprocess.PIPE,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    universal_newlines: bool = False,
    shell: bool = False,
    bufsize: int = 0,
    encoding: Any = None,
    errors: Any = None,
    text: Any = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, asyncio.SubprocessProtocol]:
    """Run ``program`` with ``args``, connected to a new ``SubprocessProtocol``."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if shell:
        raise ValueError("shell must be False")
    _check_text_options(bufsize, text, encoding, errors)
    return await _start(
        self,
        protocol_factory,
        (program, *args),
        False,
        f"execute program {program!r}",
        stdin,
        stdout,
        stderr,
        bufsize,
        kwargs,
    )


async def _start(
    loop: EventLoop,
    protocol_factory: Callable[[], asyncio.SubprocessProtocol],
    args: Any,
    shell: bool,
    description: str,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    kwargs: dict[str, Any],
) -> tuple[SubprocessTransport, asyncio.SubprocessProtocol]:
    """What subprocess_exec and subprocess_shell share once their arguments are checked.

    In debug mode the log names the program or command, not the arguments: they may hold
    secrets and be long (asyncio's rule).
    """
    protocol = protocol_factory()
    debug = loop._debug
    if debug:
        _log_subprocess(description, stdin, stdout, stderr)
    transport = await _spawn(loop, protocol, args, shell, stdin, stdout, stderr, bufsize, **kwargs)
    if debug:
        logger.info("%s: %r", description, transport)
    return transport, protocol


#: name -> method, for the compat loop to place in its class body.
SUBPROCESS_METHODS: dict[str, Callable[..., Any]] = {
    "subprocess_exec": subprocess_exec,
    "subprocess_shell": subprocess_shell,
}
