"""The transport a TLS application writes to, over a :class:`~sansloop.core.TLSLayer`.

Every call is passed to the layer (``_tls.py``), which owns the state; this object is what
the application holds, so that dropping it unclosed can be noticed (the compat layer warns)
and so that forgetting the layer can break the reference cycle through an application that
keeps its transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._tls_states import READ_HIGH_WATER_KIB, WRITE_HIGH_WATER_KIB, flow_control_limits

if TYPE_CHECKING:
    from ._tls import TLSLayer

__all__ = ["TLSTransportCore"]


class TLSTransportCore:
    """The transport the application sees over a :class:`TLSLayer` (asyncio's
    ``_SSLProtocolTransport``).  The compat layer mixes it with ``asyncio.Transport``.

    Like asyncio's, a ``close()`` after the transport was closed (by the application or the
    layer) forgets the layer: an application that keeps its transport in its protocol
    would otherwise keep a cycle (protocol, transport, layer, protocol) alive until the
    collector runs.  Unlike asyncio's, which then raises ``AttributeError`` from nearly every
    method, the forgotten transport answers as a closed one: nothing is reading, nothing is
    buffered, writes are dropped.
    """

    def __init__(self, layer: TLSLayer) -> None:
        self._layer: TLSLayer | None = layer
        self._closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        layer = self._layer
        return default if layer is None else layer._get_extra_info(name, default)

    def set_protocol(self, protocol: Any) -> None:
        if self._layer is not None:
            self._layer._set_app_protocol(protocol)

    def get_protocol(self) -> Any:
        return None if self._layer is None else self._layer._app_protocol

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Flush, exchange ``close_notify``, then close the plain transport."""
        if not self._closed:
            self._closed = True
            if self._layer is not None:
                self._layer._start_shutdown()
        else:
            self._layer = None

    def is_reading(self) -> bool:
        return self._layer is not None and not self._layer._app_reading_paused

    def pause_reading(self) -> None:
        if self._layer is not None:
            self._layer._pause_reading()

    def resume_reading(self) -> None:
        if self._layer is not None:
            self._layer._resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        layer = self._layer
        if layer is None:
            flow_control_limits(high, low, WRITE_HIGH_WATER_KIB)  # Still checked.
            return
        layer._set_write_buffer_limits(high, low)
        layer._control_app_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        layer = self._layer
        if layer is None:
            high, low = flow_control_limits(None, None, WRITE_HIGH_WATER_KIB)
            return (low, high)
        return (layer._write_low, layer._write_high)

    def get_write_buffer_size(self) -> int:
        return 0 if self._layer is None else self._layer._get_write_buffer_size()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        layer = self._layer
        if layer is None:
            flow_control_limits(high, low, READ_HIGH_WATER_KIB)  # Still checked.
            return
        layer._set_read_buffer_limits(high, low)
        layer._control_lower_reading()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        layer = self._layer
        if layer is None:
            high, low = flow_control_limits(None, None, READ_HIGH_WATER_KIB)
            return (low, high)
        return (layer._read_low, layer._read_high)

    def get_read_buffer_size(self) -> int:
        return 0 if self._layer is None else self._layer._get_read_buffer_size()

    @property
    def _protocol_paused(self) -> bool:
        # loop.sendfile()'s fallback reads it.
        return self._layer is not None and self._layer._app_writing_paused

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if data and self._layer is not None:
            self._layer._write_one(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        if self._layer is not None:
            self._layer._write_appdata(list_of_data)

    def write_eof(self) -> None:
        """TLS has no half-close here (as in asyncio)."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        return False

    def abort(self) -> None:
        """Close at once: buffered data is dropped."""
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        self._closed = True
        if self._layer is not None:
            self._layer._abort(exc)
