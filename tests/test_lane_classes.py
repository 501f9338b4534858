"""Lanes that provably hold one value (lpir.ir.lane_classes), and what the passes and the CUDA
emitter make of them: edge masks of tiles whose edge is a multiple of the lanes' group are
one value per group (one predicated wide access, no per-lane zeroing of packed fields), with
results the same as the reference interpreter's on every host target."""

from __future__ import annotations

import itertools
import operator

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.examples import example_path, thread_module

import lpir
from lpir.ir import parse
from lpir.ir.analysis import IndexAnalysis
from lpir.ir.lane_classes import lane_classes, rounded_constant
from lpir.ir.ops import LoadThreadOp, SelectOp, UnpackBitsOp

COMPARE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


@pytest.mark.parametrize("comparison", sorted(COMPARE))
def test_rounded_constants_compare_alike_with_every_multiple(comparison):
    compare = COMPARE[comparison]
    for d, c in itertools.product((2, 3, 8, 32), range(-70, 71)):
        rounded = rounded_constant(comparison, c, d)
        assert rounded == rounded_constant(comparison, c - (c - rounded) % d, d)
        for n in range(-96, 97, d):
            assert compare(c, n) == compare(rounded, n), (c, d, n)
    # one value per block of d: c < n and c >= n round down, c <= n and c > n round c - 1 down
    assert {rounded_constant("lt", c, 8) for c in range(8, 16)} == {8}
    assert {rounded_constant("gt", c, 8) for c in range(9, 17)} == {9}


def _edge_mask_kernel(extent: int, splat_on_left: bool = False) -> str:
    """Thread IR of a lane mask `[0..7, 0..7] < K - 8 * (tid % 4)` (mirrored: `K - ... > C`)."""
    compare = "gt(%room, %lanes)" if splat_on_left else "lt(%lanes, %room)"
    return f"""
kernel @k[](%x: global f32[1024]) blocks(1, 1, 1) threads(128) stage(thread) {{
  %tid = thread_index : i32
  %four = constant {{value = 4}} : i32
  %eight = constant {{value = 8}} : i32
  %extent = constant {{value = {extent}}} : i32
  %part = rem(%tid, %four) : i32
  %start = mul(%part, %eight) : i32
  %left = sub(%extent, %start) : i32
  %lanes = vector_constant {{values = {list(range(8)) * 2}}} : <16 x i32>
  %room = splat(%left) {{shape = [16]}} : <16 x i32>
  %mask = {compare} : <16 x bool>
  %v = ld(%x, %start, %mask) {{offsets = {list(range(16))}}} : <16 x f32>
}}
"""


@pytest.mark.parametrize("splat_on_left", [False, True])
@pytest.mark.parametrize(
    ("extent", "classes"),
    [
        (1000, (0,) * 16),  # 8 | 1000: the 8 lanes of a row are all in or all out
        (1004, (0, 0, 0, 0, 1, 1, 1, 1) * 2),  # 4 | 1004: halves of a row
        (1001, tuple(range(8)) * 2),  # no multiple: every lane its own
    ],
)
def test_edge_mask_classes_follow_the_room_left(extent, classes, splat_on_left):
    kernel = parse(_edge_mask_kernel(extent, splat_on_left)).kernels[0]
    (load,) = [op for op in kernel.walk() if isinstance(op, LoadThreadOp)]
    assert lane_classes(load.mask, IndexAnalysis(kernel)) == classes
    assert lane_classes(load.mask) == tuple(range(8)) * 2  # by construction alone: per lane


def _gemv_wq(params: dict) -> lpir.ir.Kernel:
    return thread_module("gemv_wq", params).kernels[0]


@pytest.mark.parametrize(("K", "uniform"), [(4000, True), (4064, True), (4001, False)])
def test_gemv_edge_masks_are_one_value_where_K_is_a_multiple_of_32(K, uniform):
    """u4 weights are read 16 bytes (32 weights) at a time: with 32 | K every group is
    wholly inside the row or past it, so the edge mask is one scalar comparison and the
    unpacked weights need no select; otherwise lanes are tested one by one."""
    kernel = _gemv_wq({"K": K})
    ops = list(kernel.walk())
    weights = [op for op in ops if isinstance(op, LoadThreadOp) and op.access_dtype.name == "u8"]
    assert weights and all(op.mask is not None for op in weights)
    classes = [lane_classes(op.mask, IndexAnalysis(kernel)) for op in weights]
    assert all(len(set(c[i : i + 16])) == 1 for c in classes for i in (0, 16)) == uniform
    unpacked = {id(op.result) for op in ops if isinstance(op, UnpackBitsOp)}
    selects = [op for op in ops if isinstance(op, SelectOp) and id(op.operands[1]) in unpacked]
    assert (not selects) == uniform


def test_cuda_gemv_edge_loads_are_predicated_wide_accesses():
    source = lpir.compile(example_path("gemv_wq"), target="cuda", K=4000).source("cuda")
    assert "lpir_cp_async<16>(w_ahead_ring_0 + 0, w_at_0, v" in source
    assert "else" not in source  # no per-lane fallback
    source = lpir.compile(example_path("gemv_wq"), target="cuda", K=4001).source("cuda")
    assert "else" in source


ROW_SUMS = """
kernel row_sums[WT = u4, N = 64, K = 160, BN = 16, BK = 128](w: global WT[N, K], y: global f32[N])
    blocks(cdiv(N, BN)) threads(128) {
    rows = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        acc += cast<f32>(load(w[rows :+ BN, k0 :+ BK]))
    }
    store(y[rows :+ BN], sum(acc, axis = 1))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize(
    ("WT", "N", "K"),
    [("u4", 64, 160), ("u4", 40, 161), ("u3", 16, 96), ("i5", 30, 224), ("f6e3m2", 16, 32)],
)
def test_packed_edge_tiles_read_zeros_past_the_edge(target, WT, N, K):
    """Weights past K read as code 0 whether bit-packing zeroes them with a select (K = 161:
    a byte holds weights on both sides of the edge) or leaves them to the masked byte load
    (32 | K: each 16-byte group wholly in or out). The bytes past a row's end are the next
    row's, so a load that read them would change the sums."""
    if target == "cuda-host" and N > 32:
        pytest.skip("the host emulation runs one OS thread per GPU thread: small sizes only")
    params = {"WT": WT, "N": N, "K": K}
    codes = np.random.default_rng(K).integers(1, 1 << lpir.dtype(WT).nbits, (N, K), np.uint8)
    w = lpir.pack_codes(codes, WT)
    y, expected = np.full(N, np.nan, np.float32), np.full(N, np.nan, np.float32)
    lpir.compile(ROW_SUMS, target=target, **params)(w, y)
    lpir.compile(ROW_SUMS, target="interp", **params)(w, expected)
    assert np.array_equal(y, expected)  # sums of at most 160 small integers: exact in f32


WRAPPING_EDGES = """
kernel m(x: global i32[12], y: global i32[16], z: global i32[16], a: i32)
    blocks(1) threads(4) {
    store(y[0 :+ 16], where(arange(16) < a * 6, load(x[0 :+ 16]), 0))
    store(z[0 :+ 16], load(x[a * 6 :+ 16]))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_edges_at_a_wrapped_product_follow_the_wrapped_value(target):
    """a * 6 for a = 715827883 is 2**32 + 2, which wraps to 2 in i32: no multiple of 6, so
    masks may not be rounded by 6 (they were: lanes 2..5 on, and a slice read 4 elements
    past the tensor). Only the power-of-two part of a divisor survives wrapping."""
    x = np.arange(100, 112, dtype=np.int32)
    y, z = np.full(16, -1, np.int32), np.full(16, -1, np.int32)
    lpir.compile(WRAPPING_EDGES, target=target)(x, y, z, np.int32(715827883))
    assert np.array_equal(y, [100, 101] + [0] * 14)
    assert np.array_equal(z, np.concatenate([x[2:], np.zeros(6, np.int32)]))


def test_only_a_products_power_of_two_part_is_known_where_it_may_wrap():
    kernel = parse(
        """
kernel @k[](%a: i32) blocks(1, 1, 1) threads(128) stage(thread) {
  %tid = thread_index : i32
  %six = constant {value = 6} : i32
  %unknown = mul(%a, %six) : i32
  %bounded = mul(%tid, %six) : i32
}
"""
    ).kernels[0]
    analysis = IndexAnalysis(kernel)
    values = {op.result.name_hint: op.result for op in kernel.walk() if op.results}
    assert analysis.facts(values["unknown"]).divisor == 2
    assert analysis.facts(values["bounded"]).divisor == 6  # 0..762: no wrapping
