"""Masked stores to packed tensors whose lanes share their mask within each byte.

A tile of u4 codes stored with a mask by row (a KV cache's append of t new rows: `mask =
(arange(BT) < t - t0)[:, None]`) writes or skips both nibbles of every byte together, so
bit-packing makes it a plain byte `st` masked by byte; it was `st_bits`, an atomic
read-modify-write of every byte (the CPU 100x slower than the same codes packed by hand into
u8). Masks that differ within a byte, rows that end inside a byte and a tensor that ends
inside one keep `st_bits`, and all of them must write exactly what the interpreter writes,
leaving every other bit (masked-off rows, the byte's other fields, the padding after the
last element) as it was.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emulation import emulation_available

import lpir

ROWS = """
kernel rows[WT = u4, M = 16, N = 32, BR = 4, BC = 32, T = 4](
    x: global f32[M, N], q: global WT[M, N], t: i32
) blocks(cdiv(M, BR), cdiv(N, BC)) threads(T) {
    r0 = block.x * BR
    c0 = block.y * BC
    v = cast<WT>(load(x[r0 :+ BR, c0 :+ BC]))
    store(q[r0 :+ BR, c0 :+ BC], v, mask = (arange(BR) < t - r0)[:, None])
}
"""

COLUMNS = """
kernel columns[WT = u4, M = 16, N = 32, BR = 4, BC = 32, T = 4](
    x: global f32[M, N], q: global WT[M, N], t: i32
) blocks(cdiv(M, BR), cdiv(N, BC)) threads(T) {
    r0 = block.x * BR
    c0 = block.y * BC
    v = cast<WT>(load(x[r0 :+ BR, c0 :+ BC]))
    store(q[r0 :+ BR, c0 :+ BC], v, mask = (arange(BC) < t - c0)[None, :])
}
"""

TARGETS = ["threads", "threads-cuda", "cpu"]


def _run(source: str, target: str, params: dict, t: int) -> np.ndarray:
    """The bytes of q after the kernel stored into it (q starts as random bytes, padding
    included, so every bit a store must leave alone is checked)."""
    kernel = lpir.compile(source, target="interp", **params)
    values = kernel.specialize(None).params
    m, n, dt = values["M"], values["N"], lpir.dtype(values["WT"])
    rng = np.random.default_rng(m * 1000 + n)
    top = 2 ** (dt.nbits - 1) if dt.is_signed or dt.is_float else 2**dt.nbits
    x = rng.integers(0, top, (m, n)).astype(np.float32)
    q = lpir.pack_codes(np.zeros((m, n), np.uint8), dt)
    q.data[:] = rng.integers(0, 256, q.data.size, dtype=np.uint8)
    lpir.compile(source, target=target, **params)(x, q, np.int32(t))
    return q.data.copy()


def _check(source: str, target: str, params: dict, t: int) -> None:
    expected = _run(source, "interp", params, t)
    np.testing.assert_array_equal(_run(source, target, params, t), expected)


ROW_CASES = [
    {},  # rows of whole bytes: the plain masked byte store
    {"WT": "u4", "N": 31},  # a row ends inside a byte: rows' masks differ within it
    {"WT": "u4", "M": 13, "N": 31},  # and the tensor ends inside its last byte
    {"WT": "u4", "M": 13, "N": 64, "BC": 32},  # blocks along the row too; a ragged last tile
    {"WT": "u1", "N": 12, "BC": 16},  # N not a multiple of 8: bytes shared by rows
    {"WT": "u2", "M": 11, "N": 20},
    {"WT": "u3", "M": 9, "N": 40, "BC": 16},  # fields straddle bytes
    {"WT": "u3", "N": 13},
    {"WT": "i4", "T": 1},
    {"WT": "f4e2m1", "T": 32},  # a lane a thread, a byte shared by two threads
    {"WT": "bool", "N": 24, "T": 8},
    {"WT": "u1", "N": 64, "T": 32},
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("params", ROW_CASES)
@pytest.mark.parametrize("t", [0, 6, 16])
def test_a_store_masked_by_row_writes_what_the_interpreter_writes(params, t, target):
    _check(ROWS, target, params, t)


COLUMN_CASES = [{}, {"WT": "u1", "N": 24, "BC": 16}, {"WT": "u3", "M": 5, "N": 21}]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("params", COLUMN_CASES)
@pytest.mark.parametrize("t", [0, 5, 11])
def test_a_store_masked_within_a_byte_keeps_the_other_fields(params, t, target):
    """t odd: the mask is on for one nibble of a byte and off for the other."""
    _check(COLUMNS, target, params, t)


@pytest.mark.skipif(not emulation_available(), reason="needs nvcc and g++")
@pytest.mark.parametrize(
    ("source", "params", "t"),
    [(ROWS, {"T": 32}, 6), (ROWS, {"M": 13, "N": 31}, 13), (COLUMNS, {"T": 32}, 5)],
)
def test_masked_packed_stores_in_cuda_c(source, params, t):
    _check(source, "cuda-host", params, t)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize(
    ("source", "params", "t"),
    [
        (ROWS, {"T": 32}, 6),
        (ROWS, {"WT": "u3", "M": 9, "N": 40, "BC": 16}, 6),
        (ROWS, {"M": 13, "N": 31}, 13),
        (COLUMNS, {"T": 32}, 5),
    ],
)
def test_masked_packed_stores_on_the_gpu(source, params, t):
    _check(source, "cuda", params, t)


def _stores(source: str, target: str, **params: object) -> list[str]:
    ir = lpir.compile(source, target=target, **params).ir()
    return [line.split("(")[0].strip() for line in ir.splitlines() if " st" in line[:8]]


@pytest.mark.parametrize("target", ["threads", "threads-cuda"])
@pytest.mark.parametrize("WT", ["u1", "u2", "u3", "u4", "f4e2m1"])
def test_a_store_masked_by_row_is_a_plain_byte_store(WT, target):
    """Each byte holds fields of one row only (N a multiple of 8): no st_bits."""
    assert _stores(ROWS, target, WT=WT, M=13, N=64) == ["st"]


@pytest.mark.parametrize("target", ["threads", "threads-cuda"])
@pytest.mark.parametrize(
    ("source", "params"),
    [(COLUMNS, {}), (ROWS, {"N": 31}), (ROWS, {"WT": "u3", "N": 20})],
)
def test_bytes_with_fields_under_different_masks_keep_st_bits(source, params, target):
    assert _stores(source, target, **params) == ["st_bits"]
