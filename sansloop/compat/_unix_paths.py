"""Unix socket files: the stale one an earlier process left behind is replaced, as in asyncio."""

from __future__ import annotations

import logging
import os
import stat

__all__ = ["remove_stale_socket"]

logger = logging.getLogger("asyncio")


def remove_stale_socket(path: str | bytes) -> None:
    """Remove a socket file at ``path`` (not any other file) so that ``bind`` can succeed."""
    if path[0] in (0, "\x00"):
        return  # An abstract socket (Linux) has no file.
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        # The directory may allow creating the socket but not looking at it.
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)
