"""`lpir.grammar_cache`: lark parsers built once and loaded from lpir's cache directory after.

The language grammar's LALR tables took 0.11-0.15 s to build in every process; a process that
finds them on disk loads them instead. A damaged, half-written or foreign file is rebuilt, and a
cache folder that cannot be written is done without.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from lpir import grammar_cache
from lpir.grammar_cache import cache_path, cached_lark
from lpir.language import syntax
from lpir.runtime import cache

GRAMMAR = """
start: pair ("," pair)*
pair: NAME "=" INT
%import common.CNAME -> NAME
%import common.INT
%import common.WS
%ignore WS
"""
TEXT = "a = 1, bc = 23"
_LARK = lark.Lark  # the class itself, for reference parsers that `builds` does not count


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh, empty LPIR_CACHE_DIR."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("LPIR_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def builds(monkeypatch):
    """The number of times `cached_lark` built its grammar (rather than loading it) so far."""
    count = [0]
    original = grammar_cache.lark.Lark

    class Counting(original):
        def __init__(self, *args, **kwargs):
            count[0] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(grammar_cache.lark, "Lark", Counting)
    return count


def _entry(payload: bytes) -> bytes:
    """The bytes of a cache entry file holding `payload` (a valid header and checksum)."""
    header = cache._HEADER.pack(cache.MAGIC, len(payload), hashlib.sha256(payload).digest())
    return header + payload


def _parse(parser: lark.Lark) -> str:
    return parser.parse(TEXT).pretty()


def test_the_second_parser_is_loaded_from_disk(cache_dir, builds):
    expected = _parse(_LARK(GRAMMAR, parser="lalr"))
    first = cached_lark(GRAMMAR, propagate_positions=True)
    path = cache_path(GRAMMAR, propagate_positions=True)
    assert path.parent == cache_dir / "lark" and path.is_file()
    second = cached_lark(GRAMMAR, propagate_positions=True)
    assert builds[0] == 1
    assert _parse(first) == _parse(second) == expected
    assert second.parse(TEXT).children[1].meta.column == 8  # the options came back too


def test_the_key_is_the_grammar_options_and_lark_version(cache_dir, monkeypatch):
    path = cache_path(GRAMMAR)
    assert cache_path(GRAMMAR + "\n// edited\n") != path
    assert cache_path(GRAMMAR, maybe_placeholders=False) != path
    assert cache_path(GRAMMAR, postlex=syntax._BracketNewlines()) == cache_path(
        GRAMMAR, postlex=syntax._BracketNewlines()
    )
    monkeypatch.setattr(lark, "__version__", "0.0.1")
    assert cache_path(GRAMMAR) != path


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[: len(blob) // 2],  # half written
        lambda blob: b"",
        lambda blob: bytes(len(blob)),
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # one bit flipped
        # a checksum that matches a payload lark cannot load
        lambda blob: _entry(b"not a pickle"),
    ],
    ids=["truncated", "empty", "zeros", "flipped-bit", "not-a-parser"],
)
def test_a_damaged_file_is_rebuilt_and_rewritten(cache_dir, builds, damage):
    cached_lark(GRAMMAR)
    path = cache_path(GRAMMAR)
    path.write_bytes(damage(path.read_bytes()))
    assert _parse(cached_lark(GRAMMAR)) == _parse(_LARK(GRAMMAR, parser="lalr"))
    assert builds[0] == 2
    cached_lark(GRAMMAR)  # loads what the rebuild wrote over the damage
    assert builds[0] == 2


def test_a_cache_folder_that_cannot_be_made_is_done_without(tmp_path, monkeypatch, builds):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LPIR_CACHE_DIR", str(blocker / "cache"))
    for _ in range(2):
        assert _parse(cached_lark(GRAMMAR)) == _parse(_LARK(GRAMMAR, parser="lalr"))
    assert builds[0] == 2


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anyway")
def test_a_read_only_cache_folder_is_done_without(cache_dir, builds):
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        for _ in range(2):
            assert _parse(cached_lark(GRAMMAR)) == _parse(_LARK(GRAMMAR, parser="lalr"))
    finally:
        cache_dir.chmod(0o700)
    assert builds[0] == 2
    assert not (cache_dir / "lark").exists()


def test_the_language_parser_survives_a_corrupt_cache_file(cache_dir):
    source = Path(__file__).parents[1].joinpath("examples", "vector_add.lp").read_text()
    syntax._parser.cache_clear()
    try:
        expected = syntax.parse_program(source, "vector_add.lp")
        (path,) = (cache_dir / "lark").iterdir()
        path.write_bytes(path.read_bytes()[:100])
        syntax._parser.cache_clear()
        assert syntax.parse_program(source, "vector_add.lp") == expected
    finally:
        syntax._parser.cache_clear()


def test_processes_building_at_once_all_succeed(cache_dir):
    script = (
        "from lpir.language import syntax\n"
        "import pathlib\n"
        "source = pathlib.Path('examples/vector_add.lp').read_text()\n"
        "print(len(syntax.parse_program(source, 'vector_add.lp').kernels))\n"
    )
    root = Path(__file__).parents[1]
    processes = [
        subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4
    assert outputs == [b"1\n"] * 4
    assert len(list((cache_dir / "lark").iterdir())) == 1  # no temporary files left
