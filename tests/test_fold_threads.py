"""fold-threads (CPU): a block whose threads each hold little runs fewer threads holding more.

The folded layouts hold, in thread t', exactly what threads F t' .. F t' + F - 1 held (each
element once), thread F t' + l's slot s in slot l * S + s of every layout alike (random kernels
whose reshapes, stacks and indexes relate layouts slot by slot found a placement that was not);
the factor stops where a tile would pass `REGISTER_BYTES` a thread, and kernels with a dot keep
their threads. Kernels folded are compiled for the CPU and run through the thread interpreter
(the CPU pipeline's IR) against the reference interpreter: reductions with edges, min/max with
indices, sub-byte stores, loops carrying tiles, atomics and shared tiles of the user's.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lpir.passes.fold_threads import MATH_REGISTER_BYTES, REGISTER_BYTES, fold_low_threads

import lpir
from lpir.ir import parse
from lpir.layout import parse as parse_layout

LAYOUTS = [
    ("spatial(128).local(8)", 8),
    ("local(1,2).spatial(4,32).local(1,4)", 8),
    ("local(8).spatial(128).local(4)", 4),
    ("spatial(4).replicate(32)", 8),  # replicas folded away
    ("spatial(4,1).replicate(32)", 64),  # and past them, into a mode
    ("spatial(4,2).replicate(4).local(1,3)", 8),
    ("column_spatial(8,16).local(2,2)", 4),
    ("spatial(2,64)", 128),  # one thread holds the tile
    ("spatial(3,32).local(1,2)", 32),  # a thread count that is not a power of two
]


@pytest.mark.parametrize(("text", "factor"), LAYOUTS)
def test_a_folded_thread_holds_what_its_threads_held(text, factor):
    layout = parse_layout(text)
    folded = fold_low_threads(layout, factor)
    assert folded is not None and folded.threads == layout.threads // factor
    old, new = layout.coordinates(), folded.coordinates()
    for thread in range(folded.threads):
        held = {tuple(c) for t in range(thread * factor, (thread + 1) * factor) for c in old[t]}
        now = [tuple(c) for c in new[thread]]
        assert len(now) == len(set(now)) and set(now) == held


def test_the_folded_thread_values_are_the_most_significant_slots():
    # a thread's run of 8 over 8 threads: one run of 64
    assert (
        str(fold_low_threads(parse_layout("spatial(128).local(8)"), 8)) == "spatial(16).local(64)"
    )
    # in every layout alike, whatever its other slots: thread t' slot l * S + s is what
    # thread 8 t' + l held in slot s (so slot-by-slot relations between layouts stay)
    layout = parse_layout("local(1,2).spatial(4,32).local(1,4)")
    folded = fold_low_threads(layout, 8)
    old, new = layout.coordinates(), folded.coordinates()
    for thread in range(folded.threads):
        for low in range(8):
            for slot in range(layout.slots):
                assert (new[thread, low * layout.slots + slot] == old[8 * thread + low, slot]).all()


def test_thread_digits_that_do_not_split_at_the_factor_do_not_fold():
    assert fold_low_threads(parse_layout("spatial(3,32).local(1,2)"), 64) is None
    assert fold_low_threads(parse_layout("spatial(12)"), 8) is None
    assert fold_low_threads(parse_layout("spatial(4)"), 8) is None


def _threads(source, **params) -> int:
    return parse(lpir.compile(source, target="cpu", **params).ir("final")).kernels[0].threads


# Rows of a [BM, N] tile reduced to their max and the first column holding it; the rows past
# M and the columns past N (N < BN) masked.
ARGMAX = """
kernel argmax[M = 37, N = 1000, BM = 2, BN = 1024, THREADS = 128](
    x: global f32[M, N], out: global i32[M], top: global f32[M],
) blocks(cdiv(M, BM)) threads(THREADS) {
    rows = block.x * BM
    t = load(x[rows :+ BM, 0 :+ BN])
    cols = arange<i32>(BN)[None, :] + zeros<i32>[BM, BN]
    t = where(cols < N, t, -3.0e38)
    m = max(t, axis = 1)
    store(out[rows :+ BM], min(where(t == m[:, None], cols, BN), axis = 1))
    store(top[rows :+ BM], m)
}
"""

# A column sum in a loop over row tiles, added into y atomically by SPLIT blocks, and a
# user's shared tile between two barriers.
COLUMNS = """
kernel columns[M = 300, N = 96, BM = 16, SPLIT = 3](
    x: global f32[M, N], y: global f32[N], z: global f32[N],
) blocks(SPLIT) threads(64) {
    acc = zeros<f32>[N]
    for r in range(block.x * BM, M, SPLIT * BM) {
        acc += sum(load(x[r :+ BM, :]), axis = 0)
    }
    atomic_add(y[0 :+ N], acc)
    buffer = shared<f32>[N]
    store(buffer, acc * 2.0)
    sync()
    if block.x == 0 {
        store(z[0 :+ N], load(buffer) + 1.0)
    }
}
"""


def _run(source, target, arguments, **params):
    lpir.compile(source, target=target, **params)(*arguments)
    return arguments


@pytest.mark.parametrize("target", ["cpu", "threads"])
@pytest.mark.parametrize("params", [{}, {"BM": 4, "THREADS": 256}, {"M": 5, "N": 1024, "BM": 1}])
def test_argmax_rows_fold_and_agree(params, target):
    assert _threads(ARGMAX, **params) < params.get("THREADS", 128)
    m, n = params.get("M", 37), params.get("N", 1000)
    rng = np.random.default_rng(4)
    x = rng.integers(-20, 20, (m, n)).astype(np.float32)  # ties: the first column must win
    arguments = [x, np.zeros(m, np.int32), np.zeros(m, np.float32)]
    expected = _run(ARGMAX, "interp", copy.deepcopy(arguments), **params)
    got = _run(ARGMAX, target, arguments, **params)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    np.testing.assert_array_equal(got[1], np.argmax(x, axis=1))


@pytest.mark.parametrize("target", ["cpu", "threads"])
def test_loops_atomics_and_shared_tiles_fold_and_agree(target):
    assert _threads(COLUMNS) < 64
    x = np.random.default_rng(5).standard_normal((300, 96)).astype(np.float32)
    arguments = [x, np.zeros(96, np.float32), np.zeros(96, np.float32)]
    expected = _run(COLUMNS, "interp", copy.deepcopy(arguments))
    got = _run(COLUMNS, target, arguments)
    # the column sums in another order (and the blocks' adds in any order): 2e-6 of 300 terms
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-5, atol=4e-5)


@pytest.mark.parametrize("target", ["cpu", "threads"])
def test_sub_byte_stores_of_folded_threads(target):
    """i3 quantization of 16 x 32 tiles: 4 codes a thread of 128 (bytes shared between
    threads, merged with atomic and/or) fold into runs of whole bytes; values alike."""
    path = "examples/quantize.lp"
    params = {"M": 40, "N": 96, "WT": "i3", "ZERO": 0, "BM": 16, "G": 32}
    assert _threads(path, **params) < 128
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 96)).astype(np.float32)
    dt = lpir.dtype("i3")

    def arguments():
        return [x, lpir.pack(np.zeros((40, 96), np.float32), dt), np.zeros((40, 3), np.float32)]

    expected = _run(path, "interp", arguments(), **params)
    got = _run(path, target, arguments(), **params)
    np.testing.assert_array_equal(lpir.unpack(got[1]), lpir.unpack(expected[1]))
    np.testing.assert_array_equal(got[2], expected[2])


def test_what_keeps_its_threads():
    # a dot's tiles are register blocks chosen for it
    assert _threads("examples/matmul_wq.lp", M=64, N=64, K=128) == 128
    # 128 f32 a thread: folding by 2 would pass REGISTER_BYTES
    assert REGISTER_BYTES == 512
    assert _threads("examples/rmsnorm.lp", N=4096) == 128
    # 8 f32 a thread fold by 16 (512 bytes) ...
    assert _threads("examples/rmsnorm.lp", N=256) == 8
    # ... but by 8 (256 bytes: MATH_REGISTER_BYTES) where exp reads the tile
    assert MATH_REGISTER_BYTES == 256
    assert _threads("examples/softmax.lp", M=64, N=256) == 16


MATH = """
kernel math[M = 64, N = 1024, BM = 4, BN = 1024](x: global f32[M, N], y: global f32[M, N])
    blocks(cdiv(M, BM), cdiv(N, BN)) threads(128) {
    t = load(x[block.x * BM :+ BM, block.y * BN :+ BN])
    store(y[block.x * BM :+ BM, block.y * BN :+ BN], EXPRESSION)
}
"""


@pytest.mark.parametrize(
    ("expression", "threads"),
    [
        ("t * 2.0 + 1.0", 32),  # 32 f32 a thread: folded to 512 bytes
        ("exp(t) + 1.0", 64),  # exp reads the tile: 256 bytes
        ("t + erf(t * 0.5)", 64),
        ("t + sqrt(abs(t))", 32),  # a few instructions a vector: not an expensive function
    ],
)
def test_an_expensive_function_folds_less(expression, threads):
    source = MATH.replace("EXPRESSION", expression)
    assert _threads(source) == threads
    x = np.random.default_rng(8).standard_normal((64, 1024)).astype(np.float32)
    expected = _run(source, "interp", [x, np.zeros_like(x)])[1]
    got = _run(source, "cpu", [x, np.zeros_like(x)])[1]
    # the CPU's vector exp and erf are within a few ulps of numpy's: 1e-6 is 8 ulps of f32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
