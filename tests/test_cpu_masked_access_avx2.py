"""The CPU's masked loads, stores and gathers compiled for a host without AVX-512, on any host.

Without AVX-512, LLVM 22's x86 code generator handles the masks of `llvm.masked.load` as
vectors of 32- or 64-bit lanes (whose sign bits count) instead of mask registers, and turned
some masked loads into plain ones: a load wider than a register, split into register-wide
parts, whose part it found all off; and a register-wide load whose mask became constant only
there (a part of a tile's row past the array's last column: `and(row inside, column
inside)` with every column outside), read as all on. Their masked-off lanes read the next
row, or the buffer's first elements (`Memory.masked_load`). Each kernel here is compiled with
every AVX-512 and AVX10 feature of the host turned off, so a CI host with AVX-512 checks the
AVX2 code too (it runs there), against numpy, bit for bit: tiles of 16 or 32 columns over
arrays of 1 to 24 (the edge inside a register, on one, and whole registers past it; a
sentinel after the input), elements of 1 to 8 bytes, loads, stores, and the shared-memory
gather of `gather(...)`.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import jit

import lpir

NUMPY = {
    "f32": np.float32,
    "i32": np.int32,
    "f64": np.float64,
    "i64": np.int64,
    "f16": np.float16,
    "u8": np.uint8,
}

GATHER = """
kernel pick[T = f32, M = 37, N = 24, K = 12, BM = 16, BN = 32](
    x: global T[M, N], ids: global i32[M, K], y: global T[M, K]
) blocks(cdiv(M, BM)) threads(64) {
    r = block.x * BM
    t = load(x[r :+ BM, 0 :+ BN])
    store(y[r :+ BM, 0 :+ K], gather(t, load(ids[r :+ BM, 0 :+ K]), axis = 1))
}
"""

COPY = """
kernel copy[T = f32, M = 37, N = 24, BM = 16, BN = 32](x: global T[M, N], y: global T[M, N])
    blocks(cdiv(M, BM)) threads(64) {
    r = block.x * BM
    store(y[r :+ BM, 0 :+ BN], load(x[r :+ BM, 0 :+ BN]))
}
"""


@pytest.fixture
def avx2_host(monkeypatch) -> None:
    """Compile as on an x86 CPU with AVX2 and without AVX-512 (LLVM's features of the host,
    AVX-512's and AVX10's turned off: the cache key sees them too)."""
    triple, cpu, features = jit.host()
    if not triple.startswith("x86_64"):
        pytest.skip("x86's AVX2 code path")
    if "+avx2" not in features.split(","):
        pytest.skip("the host has no AVX2 to run the AVX2 code with")
    wide = ("avx512", "avx10", "evex512")
    kept = [f for f in features.split(",") if f and not f[1:].startswith(wide)]
    chosen = ",".join([*kept, "-avx512f"])
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, chosen))


def _values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.startswith("f"):
        return (rng.standard_normal(shape) + 3).astype(NUMPY[dtype])  # (never 0)
    return rng.integers(1, 100, size=shape).astype(NUMPY[dtype])


def _assert_avx2_code(kernel) -> None:
    assembly = kernel.source("asm")
    assert "%zmm" not in assembly and "%k1" not in assembly  # compiled without AVX-512


@pytest.mark.parametrize(
    "dtype, columns",
    [("f32", 24), ("i32", 24), ("f64", 12), ("i64", 20), ("f32", 5), ("f16", 24), ("u8", 5)],
)
def test_gathered_rows_read_zeros_past_the_edge(avx2_host, dtype, columns):
    """Positions `columns`..31 of a tile of 32 read the tile's zeros (not the buffer's first
    elements: the gather test of tests/test_gather_builtin.py gave those on an AVX2 host)."""
    rng = np.random.default_rng(columns)
    x = _values(dtype, (37, columns), rng)
    ids = rng.integers(0, 32, size=(37, 12)).astype(np.int32)
    y = np.zeros((37, 12), NUMPY[dtype])
    kernel = lpir.compile(GATHER, target="cpu", T=dtype, N=columns)
    kernel(x, ids, y)
    padded = np.pad(x, [(0, 0), (0, 32 - columns)])
    np.testing.assert_array_equal(y, np.take_along_axis(padded, ids, 1))
    _assert_avx2_code(kernel)


@pytest.mark.parametrize("dtype, columns", [("f32", 24), ("f64", 5), ("f16", 12), ("u8", 24)])
def test_masked_copies_write_only_inside(avx2_host, dtype, columns):
    """A tile of 32 columns copied over arrays of fewer: every element arrives, and the
    memory after the output is untouched (a masked-off lane written would show there, or
    in the next row)."""
    rng = np.random.default_rng(columns)
    x = _values(dtype, (37, columns), rng)
    memory = np.zeros(37 * columns + 64, NUMPY[dtype])
    y = memory[: 37 * columns].reshape(37, columns)
    kernel = lpir.compile(COPY, target="cpu", T=dtype, N=columns)
    kernel(x, y)
    np.testing.assert_array_equal(y, x)
    assert not memory[37 * columns :].any()
    _assert_avx2_code(kernel)


ROW_MAXIMA = """
kernel absmax[M = 3, N = 7, G = 32, BM = 16](x: global f32[M, N], s: global f32[M, cdiv(N, G)])
    blocks(cdiv(M, BM), cdiv(N, G)) threads(128) {
    t = load(x[block.x * BM :+ BM, block.y * G :+ G])
    store(s[block.x * BM :+ BM, block.y], max(abs(t), axis = 1))
}
"""


@pytest.mark.parametrize("rows, columns", [(26, 7), (2, 19), (1, 3)])
def test_row_maxima_read_only_the_row(avx2_host, rows, columns):
    """max |x| of each row's group of 32 (examples/quantize.lp's scale): a masked-off lane
    that reads the next row, or the sentinel 1e30 after the input, shows in the maximum."""
    x = np.random.default_rng(rows).standard_normal((rows, columns)).astype(np.float32)
    memory = np.full(rows * columns + 64, 1e30, np.float32)
    memory[: rows * columns] = x.ravel()
    scales = np.zeros((rows, 1), np.float32)
    kernel = lpir.compile(ROW_MAXIMA, target="cpu", M=rows, N=columns)
    kernel(memory[: rows * columns].reshape(rows, columns), scales)
    np.testing.assert_array_equal(scales, np.abs(x).max(1, keepdims=True))
    _assert_avx2_code(kernel)
