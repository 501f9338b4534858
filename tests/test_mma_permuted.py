"""k-permuted tensor-core operands: a dot whose a is a row-major matrix read from global memory
(a GEMV's weights) and whose b is computed (x broadcast into the mma's columns) gets operand
layouts with k renumbered alike in both (`layout_rules.mma_layouts_permuted`), so each thread
loads its fragments of a straight from memory and packed fields decode in pairs without a
`prmt`. Checked here: the permutation is one and the same for a and b in every thread and
slot, the layouts are chosen where they pay and nowhere else, a permuted load reads in address
order, and the dot agrees with the reference on the thread interpreter (examples/gemv_tc.lp at
every weight type also runs in tests/test_examples_interp.py and, as CUDA C on the host, in
tests/test_cuda_emulation.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.backends.cuda.device import gpu_available
from lpir.passes.layout_rules import (
    mma_k_permutation,
    mma_layouts,
    mma_layouts_permuted,
    pair_distance,
)
from lpir.passes.lower_to_threads import address_order
from lpir.passes.thread_dots import _fragment_slots

import lpir
from lpir.runner import stated_tolerance

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SHAPES = [  # (m, n, k, threads, pair)
    (64, 8, 128, 128, 4),
    (128, 8, 128, 128, 4),
    (16, 8, 32, 32, 1),
    (64, 64, 32, 128, 2),
    (64, 8, 64, 128, 8),
    (64, 8, 128, 128, 16),
    (32, 16, 48, 128, 2),
    (64, 8, 128, 128, 1),
    (128, 16, 64, 256, 4),
]


@pytest.mark.parametrize(("m", "n", "k", "threads", "pair"), SHAPES)
def test_a_and_b_renumber_k_alike_in_every_thread(m, n, k, threads, pair):
    a, b, _ = mma_layouts(m, n, k, threads, split_rows=True)
    permuted = mma_layouts_permuted(m, n, k, threads, pair)
    permutation = mma_k_permutation(k, pair)
    assert sorted(permutation) == list(range(k))
    for canonical, layout, k_dim in ((a, permuted[0], 1), (b, permuted[1], 0)):
        assert (layout.threads, layout.slots) == (canonical.threads, canonical.slots)
        slots = _fragment_slots(canonical, layout, permutation, k_dim)
        for thread in range(threads):
            for slot in range(canonical.slots):
                coordinate = list(canonical.map(thread, slot))
                coordinate[k_dim] = permutation[coordinate[k_dim]]
                assert layout.map(thread, slots[slot]) == tuple(coordinate)


@pytest.mark.parametrize(("m", "n", "k", "threads", "pair"), SHAPES)
def test_a_thread_holds_one_run_of_k_with_pairs_apart(m, n, k, threads, pair):
    a, _ = mma_layouts_permuted(m, n, k, threads, pair)
    for thread in (0, 5, threads - 1):
        rows: dict[int, list[int]] = {}
        for slot in range(a.slots):
            row, column = a.map(thread, slot)
            rows.setdefault(row, []).append(column)
        for columns in rows.values():
            start = min(columns)
            assert sorted(columns) == list(range(start, start + k // 4))
            pairs = list(zip(columns[::2], columns[1::2], strict=True))
            assert all(high - low == pair for low, high in pairs)
            if pair == 1:  # whole-byte rows load without permuting bytes
                assert columns == sorted(columns)


def test_pair_distance_per_element_type():
    distances = {
        name: pair_distance(lpir.dtype(name), 128)
        for name in ("u1", "u2", "u3", "u4", "i4", "u5", "u6", "u7", "u8", "i8", "f16")
    }
    assert distances == {
        "u1": 16,  # 16 bits apart: same bit of both halves
        "u2": 8,
        "u3": 4,  # 12 bits apart: bits p and p - 4 of the halves
        "u4": 4,
        "i4": 4,
        "u5": 4,
        "u6": 2,
        "u7": 2,
        "u8": 1,  # whole bytes: neighbours (prmt under 1024.0 places any byte)
        "i8": 1,
        "f16": 1,
    }
    assert pair_distance(lpir.dtype("f4e2m1"), 128) == 4  # same bit of both halves
    assert pair_distance(lpir.dtype("f6e3m2"), 128) == 2  # same bit of 12-bit steps
    assert pair_distance(lpir.dtype("f5e2m2"), 128) == 1  # 3 fields a 16-bit window
    assert pair_distance(lpir.dtype("f8e4m3"), 128) == 1
    assert pair_distance(lpir.dtype("u2"), 32) == 4  # 4 register pairs per row: d divides 4
    assert pair_distance(lpir.dtype("u1"), 16) == 1  # 2 pairs a row: no d of 7..25 divides 2


def test_address_order_only_where_it_makes_runs():
    assert address_order([0, 1, 2, 3]) is None
    assert address_order([0, 4, 1, 5, 2, 6, 3, 7]) == [0, 2, 4, 6, 1, 3, 5, 7]
    assert address_order([0, 64, 1, 65]) == [0, 2, 1, 3]
    assert address_order([8, 0, 24, 16]) is None  # strided either way: keep the lanes' order


def _gemv_tc(**params):
    defaults = {"N": 256, "K": 512, "WT": "u4", "ZERO": 8}
    return lpir.compile(str(EXAMPLES / "gemv_tc.lp"), target="cuda", **{**defaults, **params})


def test_gemv_weights_load_straight_into_the_fragments():
    kernel = _gemv_tc()
    tiles = kernel.ir("after:layout-selection")
    assert "convert_layout" not in tiles
    threads = kernel.ir("after:vectorize")
    weights = [line for line in threads.splitlines() if "ld(%w" in line]
    x = [line for line in threads.splitlines() if "ld(%x" in line]
    assert len(weights) == 1 and "vector = 16" in weights[0] and "<32 x u8>" in weights[0]
    assert len(x) == 1 and "vector = 8" in x[0]  # 16 bytes of x at a time, in address order
    assert threads.count("= mma(") == 8  # 16 rows x 128 k per warp: 8 k16 steps
    cuda = kernel.source("cuda")
    assert "lpir_magic_f16x2_at(" in cuda and "__byte_perm" not in cuda.split("lpir_mma")[0]


def test_fragments_of_mma_operands_loaded_from_shared_memory_stay_canonical():
    kernel = lpir.compile(str(EXAMPLES / "matmul_wq.lp"), target="cuda", M=64, N=64, K=128, WT="u4")
    assert "ldmatrix" in kernel.ir("after:vectorize")  # a: shared tile, canonical fragments


def test_a_dot_of_two_loaded_tiles_keeps_its_conversion():
    """b loaded from a row-major [K, N] tile would be read column-wise in the permuted layout:
    the dot keeps the canonical operands (a coalesced load and an exchange)."""
    source = """
kernel mm[](a: global f16[32, 64], b: global f16[64, 32], c: global f32[32, 32]) blocks(1)
    threads(128) {
    store(c[0 :+ 32, 0 :+ 32], dot(load(a[0 :+ 32, 0 :+ 64]), load(b[0 :+ 64, 0 :+ 32])))
}
"""
    kernel = lpir.compile(source, target="cuda")
    assert "convert_layout" in kernel.ir("after:layout-selection")


@pytest.mark.parametrize("weight", ["u1", "u2", "u3", "i5", "u6", "u8", "f4e2m1", "f8e4m3"])
def test_permuted_dot_agrees_with_the_reference_on_threads(weight):
    """The cuda pipeline's thread IR (the mma emulated by the thread interpreter) at a shape
    with edges (N and K not multiples of the tile)."""
    params = {"N": 72, "K": 200, "WT": weight, "ZERO": 0, "BK": 64 if weight == "u2" else 128}
    path = EXAMPLES / "gemv_tc.lp"
    rng = np.random.default_rng(11)
    module = _companion()
    values = lpir.compile(str(path), target="interp", **params).specialize(None).params
    inputs = module.make_inputs(values, rng)
    wanted = module.reference(values, inputs)[3]
    got = [*inputs[:3], np.zeros_like(inputs[3])]
    lpir.compile(str(path), target="threads-cuda", **params)(*got)
    rtol, atol, _ = stated_tolerance(module, values, inputs)
    np.testing.assert_allclose(got[3], wanted, rtol=rtol, atol=atol)


def _companion():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gemv_tc_example", EXAMPLES / "gemv_tc.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_an_annotated_operand_or_accumulator_keeps_the_canonical_operands():
    """The user's layouts win: the dot then converts to the canonical fragments."""
    body = """
kernel k[](x: global f16[128], w: global u4[64, 128], y: global f32[64]) blocks(1)
    threads(128) {
    wt = cast<f16>(WEIGHTS) - 8
    xt = load(x[0 :+ 128])[:, None] * ones<f16>[1, 8]
    acc = dot(wt, xt, ACC)
    store(y[0 :+ 64], max(acc, axis = 1))
}
"""
    plain = {"WEIGHTS": "load(w[0 :+ 64, 0 :+ 128])", "ACC": "zeros<f32>[64, 8]"}
    annotated_weights = {**plain, "WEIGHTS": f"{plain['WEIGHTS']} @ spatial(32, 4).local(2, 32)"}
    annotated_acc = {**plain, "ACC": "zeros<f32>[64, 8] @ spatial(64, 2).local(1, 4)"}
    for names, permuted in ((plain, True), (annotated_weights, False), (annotated_acc, False)):
        source = body
        for name, text in names.items():
            source = source.replace(name, text)
        tiles = lpir.compile(source, target="cuda").ir("after:layout-selection")
        assert ("convert_layout" not in tiles) == permuted, source


SHAPED_DOT = """
kernel shaped[WT = u4, M = 64, N = 16, K = 64, ROWS = 64, COLS = 16, T = 128](
    a: global WT[M, K],
    x: global f16[N, K],
    y: global f32[M, N],
) blocks(cdiv(M, ROWS), cdiv(N, COLS)) threads(T) {
    acc = zeros<f32>[ROWS, COLS]
    for k0 in range(0, K, 32) {
        at = cast<f16>(load(a[block.x * ROWS :+ ROWS, k0 :+ 32]))
        xt = transpose(load(x[block.y * COLS :+ COLS, k0 :+ 32]))
        acc = dot(at, xt, acc)
    }
    store(y[block.x * ROWS :+ ROWS, block.y * COLS :+ COLS], acc)
}
"""
SHAPES_OF_DOTS = [  # (weight, M, N, K, ROWS, COLS, threads): tiles, warp grids and pairs
    ("u4", 70, 20, 96, 64, 16, 128),
    ("u3", 40, 8, 64, 32, 8, 64),
    ("u2", 16, 40, 64, 16, 32, 32),
    ("u6", 128, 16, 32, 128, 16, 256),
    ("u8", 48, 24, 96, 16, 8, 32),
    ("i5", 64, 64, 64, 32, 32, 128),
    ("u1", 32, 8, 128, 32, 8, 64),
    ("f16", 64, 16, 64, 64, 16, 128),
]


def _shaped_dot_arguments(weight, m, n, k):
    """(a, x, the float64 product) for SHAPED_DOT."""
    rng = np.random.default_rng(sum(map(ord, weight)) + m + n + k)
    dt = lpir.dtype(weight)
    if dt.name == "f16":
        a = rng.standard_normal((m, k)).astype(np.float16)
        values = a.astype(np.float64)
    else:
        low, high = (
            (-(1 << (dt.nbits - 1)), 1 << (dt.nbits - 1)) if dt.is_signed else (0, 2**dt.nbits)
        )
        codes = rng.integers(low, high, size=(m, k))
        a = lpir.pack(codes, weight) if dt.nbits < 8 else codes.astype(dt.numpy_dtype)
        values = codes.astype(np.float64)
    x = rng.standard_normal((n, k)).astype(np.float16)
    return a, x, values @ x.astype(np.float64).T


@pytest.mark.parametrize(("weight", "m", "n", "k", "rows", "cols", "threads"), SHAPES_OF_DOTS)
def test_permuted_dots_of_many_shapes_agree_with_the_reference(
    weight, m, n, k, rows, cols, threads
):
    """Tiles of one to eight warps, warp grids split along rows, every pair distance, edges
    in M, N and K, on the thread interpreter (the cuda pipeline) and as CUDA C on the host."""
    from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
    from lpir.backends.cuda.source import emit_kernel

    params = {"WT": weight, "M": m, "N": n, "K": k, "ROWS": rows, "COLS": cols, "T": threads}
    a, x, wanted = _shaped_dot_arguments(weight, m, n, k)
    kernel = lpir.compile(SHAPED_DOT, target="threads-cuda", **params)
    tiles = kernel.ir("after:layout-selection")
    assert "convert_layout" not in tiles  # the permuted operands load straight
    assert "= mma(" in kernel.ir("after:lower-to-threads")
    got = np.zeros((m, n), np.float32)
    kernel(a, x, got)
    # products of small integers (or f16) and f16 are exact in f32; sums of up to 128 of them
    # in f32, in the mma's order
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-3)
    if emulation_available():
        (runner,) = emulate_kernels([emit_kernel(kernel.last.module.kernels[0], "shaped")])
        emulated = np.zeros_like(got)
        runner.run([a, x, emulated])
        np.testing.assert_allclose(emulated, wanted, rtol=1e-5, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize(("weight", "m", "n", "k", "rows", "cols", "threads"), SHAPES_OF_DOTS)
def test_permuted_dots_of_many_shapes_on_the_gpu(weight, m, n, k, rows, cols, threads):
    """The same dots launched on a GPU (the real mma and its fragment order)."""
    params = {"WT": weight, "M": m, "N": n, "K": k, "ROWS": rows, "COLS": cols, "T": threads}
    a, x, wanted = _shaped_dot_arguments(weight, m, n, k)
    got = np.zeros((m, n), np.float32)
    lpir.compile(SHAPED_DOT, target="cuda", **params)(a, x, got)
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-3)
