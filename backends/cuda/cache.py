"""Compiled CUDA code cached in memory, over lpir's on-disk cache.

The disk layer is `lpir.runtime.cache` (shared with the CPU backend: `~/.cache/lpir` or
`$LPIR_CACHE_DIR`, checksummed entries written atomically; a corrupt entry is deleted and
rebuilt, never trusted), under the kind "cuda". Keys cover the source, the helper header, the
GPU architecture, the output kind, the compiler and its version, and the options.
"""

from __future__ import annotations

import hashlib

from lpir.runtime import cache as disk

KIND = "cuda"


def cache_key(*parts: str | bytes) -> str:
    """A hex key over the parts (source, architecture, compiler, options, ...)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class CodeCache:
    """Cubins and PTX by key: a dict in front of the disk cache."""

    def __init__(self) -> None:
        self.memory: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        payload = self.memory.get(key)
        if payload is None:
            payload = disk.load(KIND, key)
            if payload is not None:
                self.memory[key] = payload
        return payload

    def put(self, key: str, payload: bytes) -> None:
        self.memory[key] = payload
        disk.store(KIND, key, payload)


_CACHE = CodeCache()


def default_cache() -> CodeCache:
    """The process-wide cache."""
    return _CACHE
