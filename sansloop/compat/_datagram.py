"""Placeholder: filled in by the networking work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DATAGRAM_METHODS"]

#: name -> method, for the compat loop to place in its class body.
DATAGRAM_METHODS: dict[str, Callable[..., Any]] = {}
