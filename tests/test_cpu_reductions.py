"""Reductions across many threads on the CPU: partials read as vectors, folded in two rounds.

A reduction whose partner threads do not all hold the result goes through shared memory: every
thread stores its partial, then reads its group's partials and folds them as the balanced tree
of `lpir.ir.order` (passes/thread_reductions.py, `combine_through_shared`). A CPU runs a block's
threads one after another, so a group of P threads cost P reads a thread, P * P a group (a
row of 256 threads: 65536). There a large group is folded in two rounds: each thread folds a
chunk of C consecutive partners (the tree's first levels), then every thread folds the P / C
chunk results (its last levels), C + P / C reads a thread, the same tree: the results are bit
for bit those of one round, which the thread interpreter runs both ways here, and the compiled
code equals the thread interpreter. And the partials of a group (`tid - tid % P` onwards) are
read as vectors: the index analysis knows `a - a % c` is a multiple of c.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.passes.lower_to_threads import _Lowering

import lpir
from lpir.layout.register import Digit

ROWS = """
kernel rows[T = f32, M = 13, N = 4096, BM = 2, THREADS = 256](x: global T[M, N], y: global T[M])
    blocks(cdiv(M, BM)) threads(THREADS) {
    store(y[block.x * BM :+ BM], KIND(load(x[block.x * BM :+ BM, :]), axis = 1))
}
"""

COLUMNS = """
kernel columns[M = 256, N = 8](x: global f32[M, N], y: global f32[N]) blocks(1) threads(256) {
    store(y[0 :+ N], KIND(load(x[0 :+ M, 0 :+ N]), axis = 0))
}
"""

# (source, reduction, params): rows of 128 threads (2 rows a block) and of 256 (1 row), a row
# edge (M % BM), f16 and i32, 192 threads (a group of 192: chunks of 8 over 24); columns of
# 256 / 8 threads, each with its own lanes
CASES = [
    (ROWS, "sum", {}),
    (ROWS, "max", {"BM": 1}),
    (ROWS, "min", {"M": 9, "BM": 4}),
    (ROWS, "sum", {"T": "f16", "N": 2048, "BM": 1}),
    (ROWS, "sum", {"T": "i32", "BM": 1}),
    (ROWS, "sum", {"N": 768, "BM": 1, "THREADS": 192}),
    (COLUMNS, "sum", {}),
    (COLUMNS, "max", {}),
]
IDS = [f"{'rows' if c[0] is ROWS else 'columns'}-{c[1]}-{c[2]}" for c in CASES]


def _source(case) -> str:
    return case[0].replace("KIND", case[1])


def _inputs(case) -> list[np.ndarray]:
    """Values with ties and signed zeros (max/min must pick the one the tree order picks)."""
    kernel = lpir.compile(_source(case), target="interp", **case[2])
    params = kernel.specialize(None).params
    m, n = params["M"], params["N"]
    t = lpir.dtype(params["T"]) if "T" in params else lpir.dtype("f32")
    rng = np.random.default_rng(5)
    if t.is_float:
        x = rng.choice([-2.5, -1.0, -0.0, 0.0, 0.5, 3.0], (m, n)) + rng.standard_normal((m, n))
        x[rng.random((m, n)) < 0.3] = rng.choice([0.0, -0.0])
    else:
        x = rng.integers(-100000, 100000, (m, n))
    out = m if case[0] is ROWS else n
    return [x.astype(t.numpy_dtype), np.zeros(out, t.numpy_dtype)]


def _run(case, target: str) -> np.ndarray:
    args = _inputs(case)
    lpir.compile(_source(case), target=target, **case[2])(*args)
    return args[1]


def _bits(array: np.ndarray) -> np.ndarray:
    return array.view(f"u{array.dtype.itemsize}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_two_rounds_fold_as_one(case, monkeypatch):
    compiled = _run(case, "cpu")
    two_rounds = _run(case, "threads")
    np.testing.assert_array_equal(_bits(compiled), _bits(two_rounds))
    monkeypatch.setattr(_Lowering, "first_round_chunk", lambda self, digits, lanes: 1)
    one_round = _run(case, "threads")
    np.testing.assert_array_equal(_bits(two_rounds), _bits(one_round))
    # and all are the reduction (rounding aside: numpy sums in another order, and f16 sums
    # of 2048 terms round each of the tree's 11 levels to f16, half an ulp of up to 0.06)
    x = _inputs(case)[0].astype(np.float64)
    atol = 0.5 if compiled.dtype == np.float16 else 1e-3
    reduce = {"sum": np.sum, "max": np.max, "min": np.min}[case[1]]
    wanted = reduce(x, axis=1 if case[0] is ROWS else 0)
    np.testing.assert_allclose(compiled.astype(np.float64), wanted, rtol=2e-3, atol=atol)


def test_a_row_of_128_threads_reads_8_then_16_partials_as_vectors():
    # 128 floats a thread: as many as fold-threads leaves a thread, so 128 threads a row
    kernel = lpir.compile(_source(CASES[0]), target="cpu", N=16384)
    reads = [line for line in kernel.ir("final").splitlines() if "ld(%partials" in line]
    assert len(reads) == 2
    assert "offsets = [0, 1, 2, 3, 4, 5, 6, 7], vector = 8}" in reads[0]
    assert "15], vector = 16}" in reads[1]
    assert "gather" not in kernel.source("asm")
    # the GPU folds each warp with shuffles and the 4 warps' partials in one round
    cuda = lpir.compile(_source(CASES[0]), target="cuda", N=16384).ir("final")
    assert cuda.count("ld(%partials") == 1


def test_the_chunk_of_the_first_round():
    def chunk(size: int, lanes: int = 1, stride: int = 1, target: str = "cpu") -> int:
        return _Lowering(target).first_round_chunk([Digit(size, stride, 1, 1)], lanes)

    assert chunk(256) == 16  # 16 + 16 reads instead of 256
    assert chunk(128) == 8  # 8 + 16
    assert chunk(64) == 8
    assert chunk(192) == 8  # a power of two that divides the group: 8 + 24
    assert chunk(32) == 1  # two vectors of partials: one round
    assert chunk(32, lanes=4) == 4
    assert chunk(96, stride=2) == 8
    assert chunk(81) == 1  # no power of two divides it
    assert chunk(256, target="cuda") == 1
