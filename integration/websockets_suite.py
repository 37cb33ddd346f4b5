"""Fetch the websockets library's own test-suite, to run it on sansloop.

Why not PyPI: websockets' sdists ship no asyncio tests (10.4 to 17.4 were checked: the
ones that have a ``tests/`` folder carry only the sans-IO tests, without the ``utils.py``
they import).  Debian's source package carries the upstream release tarball whole, suite
included, and Debian's archive is one of the registries this project's machines and CI reach.
So the tarball comes from there, through apt itself: a private apt configuration (its own
sources list, lists and cache under the cache folder; the machine's apt setup is left as it
is) pointed at the same Debian mirror the machine's apt uses, with trixie's source index, and
apt's own downloader checking the hash the signed index gives.  The tarball's SHA-256 is also
pinned here.  ``WEBSOCKETS_SUITE_TARBALL=/path/to/websockets-X.orig.tar.gz`` skips apt.

The suite tests the library's internals, so the installed websockets must be the same
release (``pyproject.toml``'s ``integration`` group pins it).

Usage: ``python integration/websockets_suite.py CACHE_DIR`` prints the folder holding
``tests/``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

__all__ = ["SUITE_VERSION", "fetch"]

SUITE_VERSION = "15.0.1"
_DEBIAN_SOURCE = "python-websockets"
_DEBIAN_VERSION = f"{SUITE_VERSION}-1"
_DEBIAN_SUITE = "trixie"
_TARBALL = f"{_DEBIAN_SOURCE}_{SUITE_VERSION}.orig.tar.gz"
_SHA256 = "8451495265af3e368f794c4dc15c99ce90c771d95560f542bff8c64b5455af3b"
_SYSTEM_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_SYSTEM_SOURCES_LIST = Path("/etc/apt/sources.list")
_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_APT_HELPER = "/usr/lib/apt/apt-helper"


def _debian_mirror() -> str:
    """The Debian mirror the machine's apt already uses (deb822 or one-line format)."""
    if _SYSTEM_SOURCES.exists():
        match = re.search(r"^URIs:\s*(\S+)", _SYSTEM_SOURCES.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    if _SYSTEM_SOURCES_LIST.exists():
        for line in _SYSTEM_SOURCES_LIST.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "deb" and "security" not in fields[2]:
                return next(f for f in fields[1:] if not f.startswith("["))
    raise RuntimeError("no Debian apt source on this machine: set WEBSOCKETS_SUITE_TARBALL")


def _apt_options(apt: Path) -> list[str]:
    """apt options that keep every file apt reads or writes under ``apt``."""
    return [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        f"-oDir::Etc::SourceParts={apt / 'sources.list.d'}",
        f"-oDir::Etc::PreferencesParts={apt / 'preferences.d'}",
        "-oDir::Etc::Preferences=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Get::List-Cleanup=0",
        # As root, apt would hand downloads to its "_apt" user, who cannot write here.
        *(["-oAPT::Sandbox::User=root"] if os.geteuid() == 0 else []),
    ]


def _download_with_apt(apt: Path, target: Path) -> None:
    """Resolve the tarball in Debian's signed source index and download it, hash-checked."""
    for sub in ("sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text("")
    (apt / "sources.list.d" / "websockets-suite.sources").write_text(
        f"Types: deb-src\nURIs: {_debian_mirror()}\nSuites: {_DEBIAN_SUITE}\n"
        f"Components: main\nSigned-By: {_KEYRING}\n"
    )
    options = _apt_options(apt)
    subprocess.run(["apt-get", *options, "-q", "update"], check=True, stdout=subprocess.DEVNULL)
    uris = subprocess.run(
        [
            "apt-get",
            *options,
            "-q",
            "source",
            "--print-uris",
            f"{_DEBIAN_SOURCE}={_DEBIAN_VERSION}",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=target.parent,
    ).stdout
    for line in uris.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1] == _TARBALL:
            uri, hash_ = fields[0].strip("'"), fields[3]
            break
    else:
        raise RuntimeError(f"apt's index for {_DEBIAN_SUITE} lists no {_TARBALL}:\n{uris}")
    subprocess.run(
        [_APT_HELPER, *options, "download-file", uri, str(target), hash_],
        check=True,
        stdout=sys.stderr,  # Our stdout is the answer: the suite's folder.
    )


def _extract_tests(tarball: Path, dest: Path) -> None:
    """Unpack only ``tests/`` and the licence: the library itself comes from the install."""
    prefix = f"websockets-{SUITE_VERSION}/"
    with tarfile.open(tarball) as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith(prefix + "tests/") or m.name == prefix + "LICENSE"
        ]
        archive.extractall(dest, members=members, filter="data")


def fetch(cache: Path) -> Path:
    """The folder holding the suite's ``tests/`` package, downloading it on first use."""
    cache = cache.resolve()
    root = cache / f"websockets-{SUITE_VERSION}"
    done = root / ".complete"
    if done.exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    local = os.environ.get("WEBSOCKETS_SUITE_TARBALL")
    tarball = Path(local) if local else cache / _TARBALL
    if not tarball.exists():
        _download_with_apt(cache / "apt", tarball)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != _SHA256:
        raise RuntimeError(f"{tarball}: SHA-256 {digest}, expected {_SHA256}")
    _extract_tests(tarball, cache)
    done.write_text(_SHA256 + "\n")
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(fetch(Path(sys.argv[1])))
