"""Per-group zero points (GPTQ's and AWQ's layout: one scale and one zero per group of G weights
along K) on the CPU: `(cast<f32>(w) - z[:, None]) * s[:, None]` with z loaded per group as u4
codes, f16 or f32. Where each register of weights lies in one group of one row, the zero is
one value per register, and the code tables (backends/llvm/code_tables.py) take it as they
take a constant zero: one 16-entry table per row, `(c - z) * s` for every code c, and a
permute per 16 weights. A u4 zero's own codes are tabulated too (`cast<f32>(z)`); the
broadcast zero was refused as an operand tabulated on another index, and the subtraction and
the multiply ran on every lane. The zeros' bytes are read one a row: a u4 field starts at bit
0 or 4 of its byte and never needs the next (bit-packing read two bytes, the second under a
mask computed at run time).

Results are bit for bit the interpreter's (a dequantization, no sums) and, for a GEMV, the
direct computation's (code tables off), for u4, u3 and i4 weights, edges of rows and of K
where K is not a multiple of the group."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lpir.backends.llvm import jit
from lpir.backends.llvm.code_tables import CodeTables

import lpir

AVX512 = "+avx512f" in jit.host()[2].split(",")
PERMUTE = "llvm.x86.avx512.permvar.sf.512"

DEQUANTIZE = """
kernel dequantize[WT = u4, ZT = u4, N = 100, K = 320, G = 128, BN = 64, BK = 128](
    w: global WT[N, K], s: global f32[N, cdiv(K, G)], z: global ZT[N, cdiv(K, G)],
    y: global f32[N, K],
) blocks(cdiv(N, BN)) threads(128) {
    static_assert(G % BK == 0, "a tile inside one group")
    rows = block.x * BN
    for k0 in range(0, K, BK) {
        zt = cast<f32>(load(z[rows :+ BN, k0 / G]))
        st = load(s[rows :+ BN, k0 / G])
        wt = cast<f32>(load(w[rows :+ BN, k0 :+ BK]))
        store(y[rows :+ BN, k0 :+ BK], (wt - zt[:, None]) * st[:, None])
    }
}
"""

GEMV = (Path(__file__).resolve().parent.parent / "examples" / "gemv_zeros.lp").read_text()

WEIGHTS = ["u4", "u3", "i4"]
ZEROS = ["u4", "f16", "f32"]


def arguments(kernel: str, wt: str, zt: str, n: int, k: int, g: int) -> list:
    """Every code of `wt` in every row; zeros drawn from u4's range (f16/f32 ones with a
    fraction, as AWQ's f16 zeros may have); scales in [0.01, 0.1)."""
    rng = np.random.default_rng(7)
    weight = lpir.dtype(wt)
    groups = -(-k // g)
    codes = rng.integers(0, 1 << weight.nbits, (n, k))
    w = lpir.pack_codes(codes.astype(np.uint8), weight)
    s = rng.uniform(0.01, 0.1, (n, groups)).astype(np.float32)
    if zt == "u4":
        z = lpir.pack(rng.integers(0, 16, (n, groups)), "u4")
    else:
        z = (rng.integers(0, 64, (n, groups)) / 4).astype(np.dtype(zt.replace("f", "float")))
    if kernel == "dequantize":
        return [w, s, z, np.zeros((n, k), np.float32)]
    x = rng.standard_normal(k).astype(np.float32)
    return [x, w, s, z, np.zeros(n, np.float32)]


def run(source: str, kernel: str, target: str, wt: str, zt: str, **sizes) -> np.ndarray:
    params = {"N": 100, "K": 320, "G": 128, **sizes}
    args = arguments(kernel, wt, zt, params["N"], params["K"], params["G"])
    lpir.compile(source, target=target, WT=wt, ZT=zt, **params)(*args)
    return args[-1]


@pytest.mark.parametrize("zt", ZEROS)
@pytest.mark.parametrize("wt", WEIGHTS)
@pytest.mark.parametrize(
    "sizes",
    [{}, {"K": 200, "G": 64, "BK": 64}, {"N": 64, "K": 256}],
    ids=["K=320,G=128", "K=200,G=64", "whole tiles"],
)
def test_dequantized_weights_with_group_zeros_are_the_interpreters(wt, zt, sizes):
    """(w - z) * s per group, stored: the interpreter's bits, edges included (100 rows in
    tiles of 64; K past its last whole group)."""
    expected = run(DEQUANTIZE, "dequantize", "interp", wt, zt, **sizes)
    got = run(DEQUANTIZE, "dequantize", "cpu", wt, zt, **sizes)
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(expected) > expected.size // 2


@pytest.mark.parametrize("zt", ZEROS)
@pytest.mark.parametrize("wt", WEIGHTS)
def test_a_gemv_with_group_zeros_sums_what_the_lanes_would(wt, zt):
    """The GEMV: the same bits with the code tables and without them (the lanes computed one
    by one), and the interpreter's within its tolerance (sums in another order)."""
    tables = run(GEMV, "qgemv", "cpu", wt, zt)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CodeTables, "emit", lambda self, op: None)
        direct = run(GEMV, "qgemv", "cpu", wt, zt)
    np.testing.assert_array_equal(tables, direct)
    expected = run(GEMV, "qgemv", "interp", wt, zt)
    np.testing.assert_allclose(tables, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())


def loop_body(llvm_ir: str) -> str:
    """The kernel's loop over k0 (its block, up to the back edge)."""
    start = llvm_ir.index("loop.body")
    return llvm_ir[start : llvm_ir.index('br label %"loop.header"', start)]


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
@pytest.mark.parametrize("zt", ZEROS)
@pytest.mark.parametrize("wt", WEIGHTS)
def test_group_zeros_fold_into_one_table_per_row(wt, zt):
    """Each thread's 64 weights of one row: the subtraction of the zero and the multiply by
    the scale happen on one 16-entry table (`<16 x float>`), not on the 64 lanes, and each
    16 weights are one permute; no lane is converted from its code."""
    llvm_ir = lpir.compile(GEMV, target="cpu", WT=wt, ZT=zt, N=4096, K=4096).source("llvm")
    body = loop_body(llvm_ir)
    assert re.search(r"fsub contract <16 x float>", body), body
    assert not re.search(r"fsub contract <64 x float>", body)
    assert not re.search(r"[su]itofp <64 x", body)
    assert body.count(PERMUTE) >= 4


def test_a_u4_zero_is_one_byte_a_row():
    """The zero of a row's group is one byte, read unmasked: a u4 field at bit 0 or 4 of it
    (the shift at run time) needs no second byte. Its byte is the element's index shifted
    right by 1 and its shift the index's low bit times 4 (no division by 8 elements, then
    of bits by 8)."""
    ir = lpir.compile(GEMV, target="cpu", N=4096, K=4096).ir()
    loads = re.findall(r"ld\(%z, (%\w+)\) \{[^}]*\} : <(\d+) x u8>", ir)
    assert [lanes for _, lanes in loads] == ["1"], ir
    byte = loads[0][0]
    assert re.search(rf"{byte} = shr\(%\w+, %\w+\) : i32", ir), ir
    unpack = re.search(r"unpack_bits\(%\w+, (%\w+)\)", ir)
    assert unpack and re.search(rf"{unpack[1]} = mul\(", ir), ir
    assert not re.search(r"= (div|rem)\(%\w+, %\w+\) : i32\n.*ld\(%z", ir)
