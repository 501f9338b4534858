"""The on-disk cache of compiled code (`~/.cache/lpir`, or `$LPIR_CACHE_DIR`).

Entries are files named by a hex key (a hash of everything the code depends on), written
atomically (a temporary file renamed into place) with a header holding a magic string, the
payload length and its SHA-256. An entry whose header or checksum does not match — truncated,
corrupt, written by another version — is deleted and reported as a miss, so it gets rebuilt;
it is never trusted. A cache directory that cannot be written is silently skipped (the code is
compiled every time instead).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"LPIRCACHE1"
_HEADER = struct.Struct("<10sQ32s")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    stores: int = 0


stats = CacheStats()


def directory() -> Path:
    configured = os.environ.get("LPIR_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lpir"


def _path(kind: str, key: str) -> Path:
    return directory() / kind / key[:2] / f"{key}.bin"


def load(kind: str, key: str) -> bytes | None:
    """The payload stored under `key`, or None (missing or not trustworthy)."""
    path = _path(kind, key)
    try:
        blob = path.read_bytes()
    except OSError:
        stats.misses += 1
        return None
    payload = _verified(blob)
    if payload is None:
        stats.corrupt += 1
        stats.misses += 1
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    stats.hits += 1
    return payload


def _verified(blob: bytes) -> bytes | None:
    if len(blob) < _HEADER.size:
        return None
    magic, length, digest = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size :]
    if magic != MAGIC or length != len(payload):
        return None
    if hashlib.sha256(payload).digest() != digest:
        return None
    return payload


def store(kind: str, key: str, payload: bytes) -> None:
    path = _path(kind, key)
    header = _HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as file:
            file.write(header + payload)
        os.replace(temporary, path)
        stats.stores += 1
    except OSError:
        return


def entry_path(kind: str, key: str) -> Path:
    """Where the entry for `key` lives (for tests that damage it on purpose)."""
    return _path(kind, key)
