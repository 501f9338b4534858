"""The compile cache of the CPU backend (lpir/runtime/cache.py, backends/llvm/jit.py): a second
compile in one process hits memory, a new process hits the disk, damaged entries are rebuilt and
never trusted, and the key follows the thread IR."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel, jit

from lpir.ir import parse
from lpir.runtime import cache

KERNEL = """
kernel @add_constant[](%x: global f32[256], %y: global f32[256]) blocks(2, 1,
    1) threads(16) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c8 = constant {value = 8} : i32
  %c128 = constant {value = 128} : i32
  %0 = mul(%bx, %c128) : i32
  %1 = mul(%tid, %c8) : i32
  %at = add(%0, %1) : i32
  %v = ld(%x, %at) {offsets = [0, 1, 2, 3, 4, 5, 6, 7], vector = 8} : <8 x f32>
  %c = constant {value = CONSTANT} : f32
  %cs = splat(%c) {shape = [8]} : <8 x f32>
  %r = add(%v, %cs) : <8 x f32>
  st(%y, %at, %r) {offsets = [0, 1, 2, 3, 4, 5, 6, 7], vector = 8}
}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LPIR_CACHE_DIR", str(tmp_path / "cache"))
    cache.forget_memory()
    yield
    cache.forget_memory()


def fresh_kernel() -> str:
    """A kernel no other test compiled (its constant is unique)."""
    return KERNEL.replace("CONSTANT", f"{uuid.uuid4().int % 10**6}.5")


def works(text: str) -> None:
    x = np.arange(256, dtype=np.float32)
    y = np.zeros(256, np.float32)
    compile_kernel(parse(text), {}).run([x, y])
    constant = float(text.split("constant {value = ")[-1].split("}")[0])
    assert np.array_equal(y, x + np.float32(constant))


def test_second_compile_in_a_process_hits_memory():
    text = fresh_kernel()
    before = (cache.stats.memory_hits, cache.stats.stores)
    first = compile_kernel(parse(text), {})
    assert cache.stats.stores == before[1] + 1
    second = compile_kernel(parse(text), {})
    assert cache.stats.memory_hits == before[0] + 1
    assert cache.stats.stores == before[1] + 1
    assert second.executable is first.executable  # one engine for both
    del first, second
    gc.collect()
    third = compile_kernel(parse(text), {})  # engine gone: the object code is still in memory
    assert cache.stats.memory_hits == before[0] + 2
    del third
    works(text)


def test_a_new_process_hits_the_disk(tmp_path):
    text = fresh_kernel()
    path = tmp_path / "kernel.ir"
    path.write_text(text)
    script = (
        "import sys; from lpir.ir import parse; from lpir.runtime import cache; "
        "from lpir.backends.llvm import compile_kernel; "
        "compile_kernel(parse(open(sys.argv[1]).read()), {}); "
        "s = cache.stats; print(s.memory_hits, s.disk_hits, s.stores)"
    )
    env = dict(os.environ)
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert runs[0].stdout.split() == ["0", "0", "1"], runs[0].stderr
    assert runs[1].stdout.split() == ["0", "1", "0"], runs[1].stderr


def compiled_entry(text: str):
    """Compile once (writing the entry), then forget everything held in memory."""
    compile_kernel(parse(text), {})
    gc.collect()
    cache.forget_memory()
    entries = list(cache.directory().rglob("*.bin"))
    assert len(entries) == 1
    return entries[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-10],  # truncated payload
        lambda blob: blob[:20],  # truncated header
        lambda blob: b"",
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 0x40]),  # one flipped bit
        lambda blob: b"NOTLPIR..." + blob[10:],  # another format
    ],
)
def test_damaged_entries_are_rebuilt(damage):
    text = fresh_kernel()
    entry = compiled_entry(text)
    entry.write_bytes(damage(entry.read_bytes()))
    before = (cache.stats.corrupt, cache.stats.stores)
    works(text)
    assert cache.stats.corrupt == before[0] + 1
    assert cache.stats.stores == before[1] + 1
    assert cache.load(jit.CACHE_KIND, entry.stem) is not None  # rewritten whole


def test_an_entry_that_is_not_object_code_is_rebuilt():
    """A checksummed entry that LLVM cannot load is not trusted either."""
    text = fresh_kernel()
    entry = compiled_entry(text)
    cache.store(jit.CACHE_KIND, entry.stem, b"\x7fELF but not really an object file")
    before = cache.stats.corrupt
    works(text)
    assert cache.stats.corrupt == before + 1


def test_the_key_follows_the_thread_ir():
    a, b = fresh_kernel(), fresh_kernel()
    assert jit.cache_key(a) == jit.cache_key(a)
    assert jit.cache_key(a) != jit.cache_key(b)
    assert len(jit.cache_key(a)) == 64


def test_an_unwritable_cache_folder_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LPIR_CACHE_DIR", str(blocker / "cache"))
    works(fresh_kernel())


def test_an_entry_copied_under_another_name_is_not_trusted():
    """Two entries swapped on disk passed their checksums: a cuda-host library ran another
    size's code (and crashed), a parser entry broke every compile (found by an explorer).
    The checksum covers the entry's name: each is rebuilt."""
    first, second = cache.digest("first"), cache.digest("second")
    cache.store("swap", first, b"payload of the first")
    cache.store("swap", second, b"payload of the second")
    a, b = cache.entry_path("swap", first), cache.entry_path("swap", second)
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)
    before = cache.stats.corrupt
    assert cache.load("swap", first) is None and cache.load("swap", second) is None
    assert cache.stats.corrupt == before + 2
    assert not a.exists() and not b.exists()  # removed, to be written again


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({"LPIR_CACHE_DIR": "~/lpir-cache"}, "HOME/lpir-cache"),
        ({"LPIR_CACHE_DIR": "", "XDG_CACHE_HOME": ""}, "HOME/.cache/lpir"),
        ({"XDG_CACHE_HOME": "~/xdg"}, "HOME/xdg/lpir"),
        ({"LPIR_CACHE_DIR": "relative/cache"}, "CWD/relative/cache"),
    ],
)
def test_where_the_cache_lives(variables, expected, tmp_path, monkeypatch):
    """An empty XDG_CACHE_HOME made the cache `./lpir` and `~` was taken literally (found by
    an explorer): empty counts as unset, `~` is the home folder, and a relative folder is
    taken from the working folder when first seen, not after each chdir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("LPIR_CACHE_DIR", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    cache._absolute.cache_clear()
    first = cache.directory()
    monkeypatch.chdir(tmp_path / "..")
    assert cache.directory() == first
    expected = expected.replace("HOME", str(tmp_path / "home")).replace("CWD", str(tmp_path))
    assert str(first) == expected


def copy_of_lpir(destination, nested: bool) -> dict:
    """lpir's source copied as in the repository (passes/ and backends/ beside lpir/) or as
    installed (under lpir/); the folders by package, as `jit.package_directories` gives them."""
    ignore = shutil.ignore_patterns("__pycache__")
    directories = {}
    for name, folder in jit.package_directories().items():
        target = destination / name if name == "lpir" or not nested else destination / "lpir" / name
        shutil.copytree(folder, target, ignore=ignore)
        directories[name] = target
    return directories


@pytest.mark.parametrize("nested", [False, True])
def test_the_fingerprint_covers_every_source_file_of_lpir(tmp_path, nested):
    """The code made from one thread IR depends on more than backends/llvm/ (dtypes' cast
    tables, the IR's analyses, layouts, ...): an edit anywhere in lpir changes the key."""
    directories = copy_of_lpir(tmp_path, nested)
    unchanged = jit.source_fingerprint(directories)
    assert unchanged == jit.source_fingerprint(jit.package_directories())  # however laid out
    for edited in ("lpir/dtypes.py", "lpir/ir/loops.py", "passes/cse.py", "backends/llvm/ops.py"):
        package, _, rest = edited.partition("/")
        path = directories[package] / rest
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        assert jit.source_fingerprint(directories) != unchanged, edited
        path.write_text(original)
    assert jit.source_fingerprint(directories) == unchanged


def test_a_kernel_compiled_by_another_lpir_is_not_reused(monkeypatch):
    text = fresh_kernel()
    works(text)
    gc.collect()
    cache.forget_memory()
    before = (cache.stats.disk_hits, cache.stats.stores)
    with monkeypatch.context() as patch:
        patch.setattr(jit, "lpir_fingerprint", lambda: "another version of lpir")
        works(text)
    assert (cache.stats.disk_hits, cache.stats.stores) == (before[0], before[1] + 1)  # a miss
    gc.collect()
    cache.forget_memory()
    works(text)
    assert (cache.stats.disk_hits, cache.stats.stores) == (before[0] + 1, before[1] + 1)  # a hit


def test_lpir_cache_counts_and_clears_only_its_own_folders(capsys):
    """The cache is never evicted (an explorer found 414 MB after some weeks): `lpir cache`
    says what each kind holds and `--clear` deletes lpir's folders, not the user's files."""
    from lpir.backends.cuda.cache import KIND as CUDA_KIND

    from lpir.cli import main

    assert {jit.CACHE_KIND, CUDA_KIND, "emulation", "lark"} == set(cache.KINDS)
    works(fresh_kernel())
    cache.store(CUDA_KIND, cache.digest("a cubin"), b"x" * 1000)
    mine = cache.directory() / "notes.txt"
    mine.write_text("the user's own file")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(cache.directory()) in out and "llvm" in out and "cuda" in out, out
    assert main(["cache", "--clear"]) == 0
    assert "freed" in capsys.readouterr().out
    assert cache.usage() == {} and mine.read_text() == "the user's own file"
    works(fresh_kernel())  # compiles and caches again
    assert set(cache.usage()) == {jit.CACHE_KIND}


def test_lpir_cache_skips_files_removed_while_it_counts(monkeypatch):
    """A file another process removed between the listing and its size (a compile replacing
    an entry, another --clear) ended `lpir cache` with FileNotFoundError (found by a
    reviewer, 2 calls in 600 beside a writer)."""
    works(fresh_kernel())
    listing = type(cache.directory()).rglob

    def listing_with_a_removed_file(folder, pattern):
        yield folder / "removed-meanwhile.bin"
        yield from listing(folder, pattern)

    monkeypatch.setattr(type(cache.directory()), "rglob", listing_with_a_removed_file)
    files, nbytes = cache.usage()[jit.CACHE_KIND]
    assert files >= 1 and nbytes > 0
