"""The TLS layer's states, its transition table, and what it asks of the world around it.

Kept apart from the state machine (``_tls.py``) so that the rules can be read in one place:
the states asyncio's ``sslproto`` uses, the only transitions allowed between them, the
timeout and water-mark defaults, and the small protocols the layer needs from its host
loop, its plain transport and its waiter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, Protocol

from ._transport import TransportHost

__all__ = [
    "READ_HIGH_WATER_KIB",
    "SSL_HANDSHAKE_TIMEOUT",
    "SSL_SHUTDOWN_TIMEOUT",
    "TRANSITIONS",
    "WRITE_HIGH_WATER_KIB",
    "AppState",
    "LowerTransport",
    "SSLHandshakeTimeout",
    "TLSHost",
    "TLSState",
    "TLSWaiter",
    "TimerHandle",
    "check_timeouts",
    "flow_control_limits",
]


class SSLHandshakeTimeout(ConnectionAbortedError, TimeoutError):
    """The TLS handshake outlasted ``ssl_handshake_timeout``.

    asyncio (and uvloop) raise ``ConnectionAbortedError`` here, and code catches that; it is
    also a timeout, and ``except TimeoutError`` (``asyncio.TimeoutError``) catches it too.
    """


#: asyncio's defaults (``asyncio.constants``), in seconds.
SSL_HANDSHAKE_TIMEOUT: Final = 60.0
SSL_SHUTDOWN_TIMEOUT: Final = 30.0
#: asyncio's default high-water marks of the TLS layer, in KiB.
READ_HIGH_WATER_KIB: Final = 256
WRITE_HIGH_WATER_KIB: Final = 512


class TLSState(enum.Enum):
    """Where the TLS layer is (asyncio's ``SSLProtocolState``)."""

    UNWRAPPED = "UNWRAPPED"
    DO_HANDSHAKE = "DO_HANDSHAKE"
    WRAPPED = "WRAPPED"
    FLUSHING = "FLUSHING"
    SHUTDOWN = "SHUTDOWN"


class AppState(enum.Enum):
    """What the application protocol has been told so far."""

    INIT = "INIT"  # nothing yet
    MADE = "MADE"  # connection_made
    EOF = "EOF"  # eof_received
    LOST = "LOST"  # connection_lost


_S = TLSState

#: The transitions allowed.  Anything may go to UNWRAPPED (the end, or a failed handshake);
#: otherwise the layer only moves forward: handshake, data, flushing the last plaintext,
#: exchanging close_notify.
TRANSITIONS: Final = frozenset(
    {
        (_S.UNWRAPPED, _S.DO_HANDSHAKE),
        (_S.DO_HANDSHAKE, _S.WRAPPED),
        (_S.WRAPPED, _S.FLUSHING),
        (_S.FLUSHING, _S.SHUTDOWN),
    }
)


def flow_control_limits(high: int | None, low: int | None, kib: int) -> tuple[int, int]:
    """asyncio's water-mark defaults: ``high`` is ``kib`` KiB or 4 x ``low``; ``low`` high/4."""
    if high is None:
        high = kib * 1024 if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def check_timeouts(handshake: float | None, shutdown: float | None) -> tuple[float, float]:
    """The handshake and shutdown timeouts, defaulted; asyncio's ValueError if not positive."""
    if handshake is None:
        handshake = SSL_HANDSHAKE_TIMEOUT
    elif handshake <= 0:
        raise ValueError(f"ssl_handshake_timeout should be a positive number, got {handshake}")
    if shutdown is None:
        shutdown = SSL_SHUTDOWN_TIMEOUT
    elif shutdown <= 0:
        raise ValueError(f"ssl_shutdown_timeout should be a positive number, got {shutdown}")
    return handshake, shutdown


class TimerHandle(Protocol):
    """What ``call_later`` returns: a timer that can be cancelled."""

    def cancel(self) -> None: ...


class TLSHost(TransportHost, Protocol):
    """The loop, as the TLS layer uses it: the transport host plus timers."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any: ...


class TLSWaiter(Protocol):
    """A future woken when the handshake ends (the connect call or ``start_tls`` awaits it)."""

    def cancelled(self) -> bool: ...

    def set_result(self, result: None) -> None: ...

    def set_exception(self, exc: BaseException) -> None: ...


class LowerTransport(Protocol):
    """The plain stream transport the ciphertext travels on."""

    def write(self, data: bytes) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def _force_close(self, exc: BaseException | None) -> None: ...
