"""The cache of compiled code: in memory, over files on disk (`~/.cache/lpir`, `$LPIR_CACHE_DIR`).

`get(kind, key)` looks in the process's memory first, then on disk; `put(kind, key, payload)`
writes both. `kind` names a backend ("llvm", "cuda"); `key` is a hex digest of everything the
code depends on (see `digest`).

Disk entries are files named by their key, written atomically (a temporary file in the same
folder renamed into place, so a reader never sees half a file) with a header holding a magic
string, the payload length and a SHA-256 over the entry's file name and the payload. An entry
whose header or checksum does not match — truncated, corrupt, written by another format
version, or another entry's file copied under this one's name — is deleted and counted as a
miss, so it gets rebuilt; it is never trusted. A cache folder that cannot be written is
skipped silently (the code is compiled every time instead).

`stats` counts what happened, so tests can assert that a second compile in one process hits
memory and a new process hits the disk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import stat
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from lpir.runtime.fork_safe import ForkSafeLock

MAGIC = b"LPIRCACHE2"  # 2: the checksum covers the file name
_HEADER = struct.Struct("<10sQ32s")
MEMORY_ENTRIES = 512  # payloads kept in memory (least recently used dropped first)


@dataclass
class CacheStats:
    """Counters since the process started (or since `reset`)."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    corrupt: int = 0
    stores: int = 0

    @property
    def hits(self) -> int:
        """Disk hits (the name older callers use)."""
        return self.disk_hits

    def reset(self) -> None:
        for field in fields(self):
            setattr(self, field.name, 0)


stats = CacheStats()
_memory: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_lock = ForkSafeLock()  # new in a forked child


def digest(*parts: str | bytes) -> str:
    """A hex key over `parts`, each length-prefixed so that no two part lists collide."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def directory() -> Path:
    """`$LPIR_CACHE_DIR`, else `lpir` in `$XDG_CACHE_HOME`, else `~/.cache/lpir` (an empty
    variable counts as unset, as the XDG specification says; `~` is expanded)."""
    configured = os.environ.get("LPIR_CACHE_DIR")
    if configured:
        return _absolute(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return _absolute(xdg) / "lpir" if xdg else Path.home() / ".cache" / "lpir"


@functools.cache
def _absolute(configured: str) -> Path:
    """A configured folder as an absolute path, fixed when first seen: a relative one names
    the folder under the working directory of that moment, not of each later chdir."""
    return Path(configured).expanduser().absolute()


def _path(kind: str, key: str) -> Path:
    return directory() / kind / key[:2] / f"{key}.bin"


# ---- memory over disk ------------------------------------------------------------------------
def get(kind: str, key: str) -> bytes | None:
    """The payload for `key` from memory, else from disk (then kept in memory), else None."""
    with _lock:
        payload = _memory.get((kind, key))
        if payload is not None:
            _memory.move_to_end((kind, key))
            stats.memory_hits += 1
            return payload
    payload = load(kind, key)
    if payload is not None:
        _remember(kind, key, payload)
    return payload


def put(kind: str, key: str, payload: bytes) -> None:
    """Keep `payload` in memory and write it to disk."""
    _remember(kind, key, payload)
    store(kind, key, payload)


def forget_memory() -> None:
    """Drop the in-memory layer (the disk entries stay)."""
    with _lock:
        _memory.clear()


def _remember(kind: str, key: str, payload: bytes) -> None:
    with _lock:
        _memory[(kind, key)] = payload
        _memory.move_to_end((kind, key))
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)


# ---- disk ------------------------------------------------------------------------------------
def load(kind: str, key: str) -> bytes | None:
    """The payload stored on disk under `key`, or None (missing or not trustworthy)."""
    payload, found = read_entry(_path(kind, key))
    if payload is None:
        stats.corrupt += found
        stats.misses += 1
        return None
    stats.disk_hits += 1
    return payload


def store(kind: str, key: str, payload: bytes) -> None:
    """Write `payload` to disk under `key`, atomically; skipped if the folder is not writable."""
    if write_entry(_path(kind, key), payload):
        stats.stores += 1


def read_entry(path: Path) -> tuple[bytes | None, bool]:
    """(the payload of the entry file at `path`, or None where it is missing or damaged;
    whether a file was there). A damaged file is removed."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None, False
    payload = _verified(blob, path.name)
    if payload is None:
        with contextlib.suppress(OSError):
            path.unlink()
    return payload, True


def _verified(blob: bytes, name: str) -> bytes | None:
    if len(blob) < _HEADER.size:
        return None
    magic, length, checksum = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size :]
    if magic != MAGIC or length != len(payload):
        return None
    if _checksum(name, payload) != checksum:
        return None
    return payload


def _checksum(name: str, payload: bytes) -> bytes:
    """The SHA-256 of an entry's file name and payload: an entry's bytes under another
    entry's name (copied, swapped) do not pass as that entry."""
    return bytes.fromhex(digest(name, payload))


def write_entry(path: Path, payload: bytes) -> bool:
    """Write an entry file (header with the payload's length and the SHA-256 of its file name
    and payload, then the payload) atomically; False where the folder cannot be made or
    written."""
    header = _HEADER.pack(MAGIC, len(payload), _checksum(path.name, payload))
    return write_bytes_atomically(path, header + payload)


def write_bytes_atomically(path: Path, data: bytes) -> bool:
    """Make the file `path` hold `data`, whole or not at all (see `write_atomically`)."""

    def fill(name: str) -> bool:
        Path(name).write_bytes(data)
        return True

    return write_atomically(path, fill)


def write_atomically(path: Path, fill: Callable[[str], bool]) -> bool:
    """Make the file `path` whole or not at all: `fill(name)` writes a temporary file beside
    it (and says whether it succeeded), which is then renamed into place, so that no reader,
    in this process or another, sees half of it. False where the folder cannot be made or
    written, or `fill` fails (returns False or raises OSError)."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.close(handle)
        if not fill(temporary):
            return False
        os.replace(temporary, path)
        temporary = None
        return True
    except OSError:
        return False
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


# The kinds of entries lpir writes, each a folder of `directory()` (`lpir cache` counts and
# clears these folders only: the cache folder may be one the user keeps other files in).
KINDS = ("llvm", "cuda", "emulation", "lark")


def usage() -> dict[str, tuple[int, int]]:
    """(files, bytes) of each kind's folder on disk (kinds without a folder left out)."""
    found = {}
    for kind in KINDS:
        folder = directory() / kind
        if folder.is_dir():
            sizes = [size for path in folder.rglob("*") if (size := _file_size(path)) is not None]
            found[kind] = (len(sizes), sum(sizes))
    return found


def _file_size(path: Path) -> int | None:
    """The size of the file `path`; None for a folder, or a file another process removed
    (compiles replace entries, `--clear` deletes them) since the folder was listed."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def clear() -> int:
    """Delete every kind's folder (and forget the memory layer); the bytes freed."""
    freed = sum(size for _, size in usage().values())
    for kind in KINDS:
        shutil.rmtree(directory() / kind, ignore_errors=True)
    forget_memory()
    return freed


def entry_path(kind: str, key: str) -> Path:
    """Where the disk entry for `key` lives (for tests that damage it on purpose)."""
    return _path(kind, key)


__all__ = [
    "KINDS",
    "CacheStats",
    "clear",
    "digest",
    "directory",
    "entry_path",
    "forget_memory",
    "get",
    "load",
    "put",
    "read_entry",
    "stats",
    "store",
    "usage",
    "write_atomically",
    "write_bytes_atomically",
    "write_entry",
]
