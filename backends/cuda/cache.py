"""Compiled CUDA code cached in memory and on disk.

Entries live under `$LPIR_CACHE_DIR/cuda` (default `~/.cache/lpir/cuda`), one file per key:
a magic tag, the SHA-256 of the payload, then the payload (a cubin or PTX). A file whose
checksum does not match is deleted and rebuilt, never trusted. Writes go to a temporary file
renamed into place, so concurrent processes never read half an entry. Set `LPIR_CACHE_DIR=`
(empty) to keep the cache in memory only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

_MAGIC = b"LPIRCUDA1"
_DIGEST = 32


def cache_directory() -> Path | None:
    """Where compiled code is kept on disk, or None when the disk cache is off."""
    configured = os.environ.get("LPIR_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "cuda" if configured else None
    return Path.home() / ".cache" / "lpir" / "cuda"


def cache_key(*parts: str | bytes) -> str:
    """A hex key over the parts (source, architecture, compiler, options, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class CodeCache:
    """A two-level cache of compiled code keyed by `cache_key` strings."""

    def __init__(self, directory: Path | None = None):
        self.memory: dict[str, bytes] = {}
        self.directory = directory

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.bin" if self.directory is not None else None

    def get(self, key: str) -> bytes | None:
        if key in self.memory:
            return self.memory[key]
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        payload = blob[len(_MAGIC) + _DIGEST :]
        if (
            not blob.startswith(_MAGIC)
            or blob[len(_MAGIC) : len(_MAGIC) + _DIGEST] != hashlib.sha256(payload).digest()
        ):
            path.unlink(missing_ok=True)
            return None
        self.memory[key] = payload
        return payload

    def put(self, key: str, payload: bytes) -> None:
        self.memory[key] = payload
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(handle, "wb") as file:
                file.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only or full disk only costs a recompilation next time


_CACHE: CodeCache | None = None


def default_cache() -> CodeCache:
    """The process-wide cache (its directory read from the environment on first use)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = CodeCache(cache_directory())
    return _CACHE
