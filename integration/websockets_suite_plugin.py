"""pytest plugin: run the websockets library's own asyncio test-suite on the mode's loop.

The suite makes its own loops: ``unittest.IsolatedAsyncioTestCase`` (``tests/asyncio``) and
``asyncio.new_event_loop()`` in ``tests/legacy``'s ``AsyncioTestCase``.  Both ask asyncio's
policy, so installing sansloop's policy at start-up makes them sansloop loops; the check
added to each test's set-up then proves it from inside the running loop.

Collected but not run:
- the HTTPS-proxy tests that fail on stock asyncio too here (``BROKEN_HERE``);
- tests that never start a loop (the sans-IO parts of ``tests/legacy``: framing, handshake,
  auth header parsing), deselected: they would pass the same on any loop.
The TLS tests run (on both loops) since sansloop has TLS.
"""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from loopmode import MODE, assert_on_the_right_loop, install_policy
from websockets_suite import SUITE_VERSION

__all__ = ["BROKEN_HERE", "BROKEN_HERE_REASON"]

# Fail on stock asyncio as well, on this project's machines: mitmproxy 11.0.2 (the last
# release for Python 3.11) cannot finish the TLS handshake its HTTPS proxy mode makes with the
# client ("Client TLS handshake failed ... connection type not set" from OpenSSL).
BROKEN_HERE_REASON = "fails on stock asyncio too: mitmproxy 11.0.2's HTTPS proxy handshake"
BROKEN_HERE: tuple[str, ...] = tuple(
    f"tests/asyncio/test_client.py::HTTPProxyClientTests::{name}"
    for name in (
        "test_https_proxy",
        "test_https_proxy_invalid_proxy_certificate",
        "test_https_proxy_invalid_server_certificate",
        "test_https_server_hostname",
        "test_secure_https_proxy",
    )
)

_CHECKED = "_sansloop_integration_checked"


def pytest_configure(config: pytest.Config) -> None:
    import websockets.version

    installed = websockets.version.version
    if installed != SUITE_VERSION:
        raise pytest.UsageError(
            f"websockets {installed} is installed; the suite fetched is {SUITE_VERSION}'s"
        )
    install_policy()


def pytest_report_header(config: pytest.Config) -> str:
    return f"integration loop: {MODE}; websockets {SUITE_VERSION}'s own test-suite"


def _suite_id(item: pytest.Item) -> str:
    """The node id relative to the suite's folder: the first one up without ``__init__.py``."""
    root = item.path.parent
    while (root / "__init__.py").exists():
        root = root.parent
    return "::".join([item.path.relative_to(root).as_posix(), *item.nodeid.split("::")[1:]])


def _check_in_async_set_up(cls: type[unittest.IsolatedAsyncioTestCase]) -> None:
    """Wrap ``asyncSetUp``, which runs on the test's loop, to check that loop first."""
    original: Callable[[Any], Coroutine[Any, Any, None]] = cls.asyncSetUp

    @functools.wraps(original)
    async def asyncSetUp(self: Any) -> None:
        assert_on_the_right_loop()
        await original(self)

    cls.asyncSetUp = asyncSetUp  # type: ignore[method-assign]


def _check_after_set_up(cls: type[unittest.TestCase]) -> None:
    """Wrap ``setUp`` of ``tests/legacy``'s ``AsyncioTestCase``, which makes ``self.loop``.

    The check runs on that loop right after it is made, before subclasses' ``setUp`` go on:
    an extra loop run after them would move their protocols along before the test starts.
    """
    original: Callable[[Any], None] = cls.setUp

    async def check() -> None:
        assert_on_the_right_loop()

    @functools.wraps(original)
    def setUp(self: Any) -> None:
        original(self)
        self.loop.run_until_complete(check())

    cls.setUp = setUp  # type: ignore[method-assign]


def _legacy_base(cls: type[Any]) -> type[unittest.TestCase] | None:
    return next((base for base in cls.__mro__ if base.__name__ == "AsyncioTestCase"), None)


def _uses_a_loop(cls: type[Any] | None) -> bool:
    if cls is None:
        return False
    return issubclass(cls, unittest.IsolatedAsyncioTestCase) or _legacy_base(cls) is not None


def _add_the_check(cls: type[Any]) -> None:
    """Once per class: the test class itself, or the legacy suite's ``AsyncioTestCase``."""
    if issubclass(cls, unittest.IsolatedAsyncioTestCase):
        if not cls.__dict__.get(_CHECKED):
            _check_in_async_set_up(cls)
            setattr(cls, _CHECKED, True)
        return
    base = _legacy_base(cls)
    assert base is not None
    if not base.__dict__.get(_CHECKED):
        _check_after_set_up(base)
        setattr(base, _CHECKED, True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        cls = getattr(item, "cls", None)
        if not _uses_a_loop(cls):
            dropped.append(item)
            continue
        kept.append(item)
        assert cls is not None
        if _suite_id(item) in BROKEN_HERE:
            item.add_marker(pytest.mark.skip(reason=BROKEN_HERE_REASON))
        _add_the_check(cls)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
