"""`atomic_max(tensor[...], value)` and `atomic_min`: blocks taking the maximum (minimum) into
the same elements of global memory, each element atomically, for i32, u32, i64 and u64 (what
GPUs have). The result does not depend on the blocks' order, so every target equals the
interpreter bit for bit: columns' maxima over blocks of rows, masked edges that combine
nothing, and an argmax over a whole row split between blocks (each block's best logit and
position packed into one u64 key, order-preserving, so that one atomic_max keeps the largest
logit and, among equal ones, the first position). Mistakes are located errors."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.source import emit_kernel, translation_unit

import lpir
from lpir.errors import LpirError

TARGETS = [*HOST_TARGETS, "threads-cuda"]

# Block (i, j) takes the maximum and the minimum of rows j, j + SPLIT, ... of its columns.
COLUMNS = """
kernel columns[T = i32, M = 300, N = 1000, BN = 64, SPLIT = 3](
    x: global T[M, N], high: global T[N], low: global T[N],
) blocks(cdiv(N, BN), SPLIT) threads(64) {
    columns = block.x * BN
    for m in range(block.y, M, SPLIT) {
        t = load(x[m, columns :+ BN])
        atomic_max(high[columns :+ BN], t)
        atomic_min(low[columns :+ BN], t)
    }
}
"""

NUMPY = {"i32": np.int32, "u32": np.uint32, "i64": np.int64, "u64": np.uint64}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "params",
    [
        {"T": "i32"},
        {"T": "u32", "M": 50, "N": 70, "BN": 32, "SPLIT": 7},
        {"T": "i64", "M": 20, "N": 100, "SPLIT": 2},
        {"T": "u64", "M": 33, "N": 64, "SPLIT": 5},
    ],
)
def test_blocks_take_the_extremes_of_columns(target, params):
    kernel = lpir.compile(COLUMNS, target=target, **params)
    values = kernel.specialize(None).params
    m, n, dt = values["M"], values["N"], NUMPY[params["T"]]
    info = np.iinfo(dt)
    rng = np.random.default_rng(len(params))
    x = rng.integers(info.min, info.max, (m, n), dtype=dt, endpoint=True)
    high, low = np.full(n, info.min, dt), np.full(n, info.max, dt)
    kernel(x, high, low)
    np.testing.assert_array_equal(high, x.max(axis=0))
    np.testing.assert_array_equal(low, x.min(axis=0))


# Greedy decoding's token for one long row, the row split between blocks: each block finds its
# chunk's best logit and first position (argmax), packs them into one u64 key that orders as
# (logit, -position) do, and atomic_max keeps the best key of all blocks.
SPLIT_ARGMAX = """
kernel split_argmax[V = 100000, BV = 1024](logits: global f32[V], best: global u64[1])
    blocks(cdiv(V, BV)) threads(128) {
    start = block.x * BV
    t = where(start + arange(BV) < V, load(logits[start :+ BV]), -inf)
    position = cast<u32>(start + argmax(t))
    bits = view<u32>(max(t))
    # order-preserving: a negative float's bits all flipped, a positive one's sign bit set
    key = where(bits >= 2147483648, ~bits, bits | 2147483648)
    packed = (cast<u64>(key) << 32) | cast<u64>(~position)
    atomic_max(best[0 :+ 1], packed)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_an_argmax_split_between_blocks(target):
    rng = np.random.default_rng(5)
    logits = np.round(rng.standard_normal(100000) * 4).astype(np.float32)  # ties
    logits[[17, 5000, 99999]] = logits.max() + 1.0  # the first of three equal maxima wins
    best = np.zeros(1, np.uint64)
    lpir.compile(SPLIT_ARGMAX, target=target)(logits, best)
    position = int(~np.uint32(int(best[0]) & 0xFFFFFFFF))
    assert position == 17


def test_float_tensors_are_refused_with_a_hint():
    source = """
kernel bad[](x: global f32[64], y: global f32[64]) blocks(1) threads(32) {
    atomic_max(y[0 :+ 64], load(x[0 :+ 64]))
}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":3:16:" in text and "atomic_max cannot take the maximum into y" in text
    assert "i32, u32, i64, u64" in text and "order-preserving integer keys" in text


def test_the_cuda_code_combines_each_lane_atomically():
    cuda = lpir.compile(COLUMNS, target="cuda").source("cuda")
    assert "lpir_atomic_max(" in cuda and "lpir_atomic_min(" in cuda


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_ptx_takes_extremes_in_global_memory():
    kernels = [
        emit_kernel(
            lpir.compile(COLUMNS, target="cuda", T=t).specialize(None).module.kernels[0], f"k_{t}"
        )
        for t in NUMPY
    ]
    ptx = compile_with_nvcc(translation_unit(kernels), "compute_90", "ptx", strict=True).decode()
    for operation in ("max", "min"):
        for kind in ("s32", "u32", "s64", "u64"):
            wanted = f"{operation}.{kind}"
            assert f"red.global.{wanted}" in ptx or f"atom.global.{wanted}" in ptx, wanted


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
def test_an_argmax_split_between_blocks_on_the_gpu():
    test_an_argmax_split_between_blocks("cuda")
