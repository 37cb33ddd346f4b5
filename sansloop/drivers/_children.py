"""Reaping a loop's child processes without a process-wide child watcher.

Each loop waits for its own children, as uvloop's do and as CPython 3.14's do once the policy
watchers are gone, so nothing global is installed (no ``SIGCHLD`` handler, no policy watcher)
and two loops in two threads never steal each other's exit statuses.  The two ways are those
of CPython 3.12's default watchers:

* **pidfd** (Linux 5.3+): ``os.pidfd_open(pid)`` gives a descriptor that becomes readable when
  the child exits; the driver watches it like any reader, and its callback reaps the child with
  ``waitpid`` and schedules ``exited(returncode)`` with ``call_soon`` -- the batch after the
  readiness report, where asyncio's ``PidfdChildWatcher`` puts it (through
  ``call_soon_threadsafe``).  No thread, one descriptor per running child.
* **a waiter thread** everywhere else (no ``pidfd_open``, or the kernel or a seccomp filter
  refuses it): a daemon thread per child blocks in ``waitpid`` and posts ``exited`` with
  ``call_soon_threadsafe`` (asyncio's ``ThreadedChildWatcher``).

Return codes are ``os.waitstatus_to_exitcode``'s: the exit status, or ``-signal``.  A child
whose status someone else already collected (``Popen.poll()`` or ``Popen.send_signal()`` on
the ``subprocess.Popen`` object) is reported as None: its owner knows better (the Popen has
the status) than asyncio's "will report returncode 255".

When the loop closes with children still running, each watched pidfd is closed and its child
handed to a silent reaper thread, so no descriptor stays open and no zombie is left once the
child ends; a waiter thread that finishes after the loop closed logs asyncio's "Loop ... that
handles pid ... is closed" warning and drops the status.  Either way the driver lets go of the
``exited`` callbacks, so a subprocess transport nobody else holds is collected (and warns,
and kills its child) instead of living as long as the child.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._contract import ReadinessDriver

__all__ = ["ChildReaper"]

_log = logging.getLogger("asyncio")


#: waitpid's "do not block" flag (Windows has none; the driver refuses children there).
if sys.platform != "win32":
    _WNOHANG = os.WNOHANG
else:
    _WNOHANG = 1

#: What :func:`_reap` returns for a child that is still running.
_RUNNING = -(2**31)


def _reap(pid: int, flags: int) -> int | None:
    """Collect ``pid``'s exit status: its return code, ``_RUNNING``, or None if someone else
    (a ``Popen.poll()``, another watcher) collected it first."""
    try:
        reaped, status = os.waitpid(pid, flags)
    except ChildProcessError:
        return None
    if reaped == 0:
        return _RUNNING
    return os.waitstatus_to_exitcode(status)


def _reap_silently(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class ChildReaper:
    """Waits for the child processes of one loop; see the module docstring."""

    def __init__(self, driver: ReadinessDriver, loop: asyncio.AbstractEventLoop) -> None:
        self._driver = driver
        self._loop = loop
        self._use_pidfd = hasattr(os, "pidfd_open")
        # pid -> (pidfd, exited) for the children watched through a pidfd.
        self._pidfds: dict[int, tuple[int, Callable[[int | None], object]]] = {}
        # pid -> exited for the children waited for by a thread: the thread itself holds only
        # the pid, so that closing the driver lets go of the transports.
        self._waiting: dict[int, Callable[[int | None], object]] = {}
        self._closed = False

    def __len__(self) -> int:
        """Children watched through a pidfd and not yet reaped."""
        return len(self._pidfds)

    def watch(self, pid: int, exited: Callable[[int | None], object]) -> None:
        """Schedule ``exited(returncode)`` on the loop once child ``pid`` has exited."""
        if self._closed:
            raise RuntimeError("the driver is closed")
        if sys.platform == "linux" and self._use_pidfd:
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                pidfd = -1  # Gone already (reaped elsewhere): let waitpid say so.
            except OSError as exc:
                # Out of descriptors: a thread for this child.  Anything else (ENOSYS on
                # an old kernel, EPERM from seccomp): threads from now on.
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    self._use_pidfd = False
                pidfd = -1
            if pidfd >= 0:
                self._pidfds[pid] = (pidfd, exited)
                handle = asyncio.Handle(self._pidfd_ready, (pid,), self._loop, None)
                self._driver.add_reader(pidfd, handle)
                return
        self._waiting[pid] = exited
        thread = threading.Thread(
            target=self._wait_in_thread,
            args=(pid,),
            name=f"sansloop-waitpid-{pid}",
            daemon=True,
        )
        thread.start()

    def _pidfd_ready(self, pid: int) -> None:
        entry = self._pidfds.get(pid)
        if entry is None:
            return
        pidfd, exited = entry
        returncode = _reap(pid, _WNOHANG)
        if returncode == _RUNNING:
            return  # Not yet (a spurious report): keep watching.
        del self._pidfds[pid]
        handle = self._driver.remove_reader(pidfd)
        if handle is not None:
            handle.cancel()
        os.close(pidfd)
        self._loop.call_soon(exited, returncode)

    def _wait_in_thread(self, pid: int) -> None:
        returncode = _reap(pid, 0)
        exited = self._waiting.pop(pid, None)
        loop = self._loop
        if loop.get_debug():
            _log.debug("process %s exited with returncode %s", pid, returncode)
        try:
            if exited is None or loop.is_closed():
                raise RuntimeError("Event loop is closed")
            loop.call_soon_threadsafe(exited, returncode)
        except RuntimeError:
            _log.warning("Loop %r that handles pid %r is closed", loop, pid)

    def close(self) -> None:
        """The loop is closing: stop watching; reap what is still running, silently."""
        if self._closed:
            return
        self._closed = True
        self._waiting.clear()  # (their threads still reap them, and say the loop closed)
        pidfds, self._pidfds = self._pidfds, {}
        for pid, (pidfd, _) in pidfds.items():
            handle = self._driver.remove_reader(pidfd)
            if handle is not None:
                handle.cancel()
            os.close(pidfd)
            if _reap(pid, _WNOHANG) == _RUNNING:
                threading.Thread(
                    target=_reap_silently, args=(pid,), name=f"sansloop-reap-{pid}", daemon=True
                ).start()
