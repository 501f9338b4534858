"""Reading kernel sources and IR text from files: UTF-8, a byte-order mark skipped, line ends
made "\n"; what cannot be read is a located `LpirError`, not an OSError or UnicodeDecodeError."""

from __future__ import annotations

from pathlib import Path

from lpir.errors import LpirError, SourceLocation


def read_source_file(path: Path) -> str:
    """The text of a kernel source file: UTF-8, a byte-order mark at the start skipped, line
    ends made "\n" (as `Path.read_text` makes them). What cannot be read is an `LpirError`: a
    directory, a file the OS refuses, bytes that are not UTF-8 (placed at the first one)."""
    if path.is_dir():
        raise LpirError(f"{path} is a directory, not a kernel file", hint="pass a .lp file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LpirError(f"cannot read {path}: {error.strerror}") from None
    return decode_source(data, str(path))


def decode_source(data: bytes, file: str) -> str:
    """Source bytes as text: UTF-8 (else a located `LpirError`), a byte-order mark skipped,
    line ends made "\n"."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _not_utf8(data, error.start, file) from None
    return normalize_source_text(text)


def normalize_source_text(text: str) -> str:
    """Source text as the parser reads it: a byte-order mark at the start skipped, CR LF and
    CR-only line ends made "\n" (so a string compiles as the same text read from a file)."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _not_utf8(data: bytes, offset: int, file: str) -> LpirError:
    """The error for a source whose byte at `offset` is not UTF-8."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line_end = data.find(b"\n", offset)
    line = data[line_start : len(data) if line_end < 0 else line_end]
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    where = SourceLocation(
        file, data.count(b"\n", 0, offset) + 1, column, line.decode("utf-8", errors="replace")
    )
    if file == "<source>":  # bytes given to lpir.compile
        hint = "lpir reads source bytes as UTF-8; decode them yourself and pass the str"
    else:
        hint = (
            "lpir reads kernel sources as UTF-8; save the file as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)"
        )
    return LpirError(
        f"the source is not UTF-8: byte {offset} (0x{data[offset]:02x}) starts no UTF-8 character",
        where,
        hint,
    )
