"""Lark parsers whose LALR tables are kept on disk between processes.

Building the language grammar's LALR tables took 0.11-0.15 s of every process that compiles a
kernel; loading them takes about a tenth of that. `cached_lark(grammar, **options)` is
`lark.Lark(grammar, **options)` with the built parser (`Lark.save`) kept in
`lark/<key>.lark` under lpir's cache directory (`lpir.runtime.cache.directory()`:
`$LPIR_CACHE_DIR`, else `~/.cache/lpir`). The key is a digest of the grammar text, the options,
the lark version and the Python version, so an edited grammar or another lark builds anew.

The file is an entry of lpir's code cache (`lpir.runtime.cache.write_entry`: a header with the
payload's length and SHA-256, written to a temporary file in the same folder and renamed into
place, so another process never reads half of it). A file that is missing, unreadable, damaged
or not loadable is rebuilt from the grammar (and rewritten); a cache folder that is missing and
cannot be made, or read-only, is skipped: the grammar is built in every process, as without a
cache.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import lark

from lpir.runtime.cache import digest, directory, read_entry, write_entry


def cached_lark(grammar: str, **options: Any) -> lark.Lark:
    """`lark.Lark(grammar, parser="lalr", **options)`, loaded from lpir's cache directory
    where an earlier process built it (options such as `postlex` must be picklable)."""
    options.setdefault("parser", "lalr")
    path = cache_path(grammar, **options)
    parser = _load(path)
    if parser is None:
        parser = lark.Lark(grammar, **options)
        _store(path, parser)
    return parser


def cache_path(grammar: str, **options: Any) -> Path:
    """Where `cached_lark(grammar, **options)` keeps its parser."""
    options.setdefault("parser", "lalr")
    described = sorted((name, _describe(value)) for name, value in options.items())
    key = digest(grammar, repr(described), lark.__version__, sys.version)
    return directory() / "lark" / f"{key}.lark"


def _describe(option: Any) -> str:
    """An option as a key: plain values as themselves, objects (a post-lexer) by their class."""
    if option is None or isinstance(option, (bool, int, float, str)):
        return repr(option)
    kind = type(option)
    return f"{kind.__module__}.{kind.__qualname__}"


def _load(path: Path) -> lark.Lark | None:
    payload, _ = read_entry(path)
    if payload is None:
        return None
    try:
        return lark.Lark.load(io.BytesIO(payload))
    except Exception:  # a payload another lark wrote: build it again
        return None


def _store(path: Path, parser: lark.Lark) -> None:
    buffer = io.BytesIO()
    parser.save(buffer)
    write_entry(path, buffer.getvalue())
