"""Which loop the integration run uses, and the check every test makes from inside it.

``SANSLOOP_INTEGRATION_LOOP=sansloop`` (the default) runs everything on sansloop;
``=asyncio`` runs the same tests on asyncio's own loop, for comparison.  Shared by the
``integration/`` tests (through ``conftest.py``) and by the plugin that runs the websockets
library's own test-suite, so both answer the question the same way.
"""

from __future__ import annotations

import asyncio
import os

import sansloop

__all__ = ["MODE", "assert_on_the_right_loop", "install_policy", "loop_factory"]

MODE = os.environ.get("SANSLOOP_INTEGRATION_LOOP", "sansloop")
if MODE not in ("sansloop", "asyncio"):
    raise RuntimeError(f"SANSLOOP_INTEGRATION_LOOP must be 'sansloop' or 'asyncio', not {MODE!r}")


def loop_factory() -> asyncio.AbstractEventLoop:
    """A new loop of the mode's kind."""
    return sansloop.new_event_loop() if MODE == "sansloop" else asyncio.SelectorEventLoop()


def install_policy() -> None:
    """Make every loop that code creates through the policy the mode's kind.

    Test-suites that make their own loops (``unittest.IsolatedAsyncioTestCase``,
    ``asyncio.new_event_loop()``, ``asyncio.run``) get them from the policy.
    """
    if MODE == "sansloop":
        sansloop.install()
    else:
        asyncio.set_event_loop_policy(None)


def assert_on_the_right_loop() -> None:
    """Fail unless the running loop is the one the mode asks for."""
    loop = asyncio.get_running_loop()
    if MODE == "sansloop":
        assert isinstance(loop, sansloop.EventLoop), f"running on {type(loop)!r}, not sansloop"
    else:
        assert not isinstance(loop, sansloop.EventLoop), "running on sansloop in asyncio mode"
