"""Reductions across the threads of a warp: `shfl_xor` butterflies instead of shared memory.

On CUDA, a reduction whose partner threads all lie in one warp (power-of-two groups) is folded
with warp shuffles (passes/thread_reductions.py, `butterfly_masks`); one whose partners span
warps folds each warp's share with shuffles and then one partial per warp through shared
memory between two barriers (`split_at_warps`). All fold the partners as the same balanced
tree as shared memory alone would, so they agree bit for bit: the thread interpreter runs
both lowerings of each case, the generated C runs under the host emulation, and where there is
a GPU the kernels run on it. GPU layouts keep a row within a warp where the tile's other
dimensions can take the rest of the threads, so row reductions (softmax's max and sum, a
GEMV's row sums) are shuffles.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel
from lpir.passes import thread_reductions
from lpir.passes.layout_rules import coalesced_layout
from lpir.passes.thread_reductions import butterfly_masks, split_at_warps

import lpir
from lpir.errors import LpirError
from lpir.layout.register import Digit

ROWS = """
kernel rows[T = f32, M = 13, N = 256, BM = 4, THREADS = 128](x: global T[M, N], y: global T[M])
    blocks(cdiv(M, BM)) threads(THREADS) {
    store(y[block.x * BM :+ BM], KIND(load(x[block.x * BM :+ BM, :]), axis = 1))
}
"""

COLUMNS = """
kernel columns[T = f32, M = 64, N = 8](x: global T[M, N], y: global T[N]) blocks(1) threads(128) {
    store(y[0 :+ N], KIND(load(x[0 :+ M, 0 :+ N]), axis = 0))
}
"""

# An 8 x 8 tile whose rows are split over two thread digits of one warp (masks 1, 2 and 16).
TWO_DIGITS = """
kernel @rows[M = 7, N = 8](%x: global f32[7, 8], %y: global f32[7]) blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %1 = load_global(%x, %0, %0) {dims = [0, 1], shape = [8, 8]} : f32[8, 8]
  %c = convert_layout(%1) : f32[8, 8] @ spatial(1,2).local(2,1).spatial(4,4)
  %2 = reduce(%c) {axis = 1, kind = "KIND"} : f32[8]
  store_global(%y, %0, %2) {dims = [0]}
}
"""

# (source, reduction, params, shuffled only): rows of 32 threads (5 butterfly levels), a block
# of 16 threads (a partial warp), f16 and i32, a row edge (M % BM); columns of 64 threads
# across two warps (shuffles within each warp, then shared memory)
CASES = [
    (ROWS, "sum", {}, True),
    (ROWS, "max", {}, True),
    (ROWS, "min", {"M": 9}, True),
    (ROWS, "max", {"T": "f16", "N": 64, "THREADS": 16}, True),
    (ROWS, "sum", {"T": "i32", "N": 128, "BM": 8}, True),
    (COLUMNS, "sum", {}, False),
    (COLUMNS, "min", {}, False),
]
IDS = [f"{'rows' if src is ROWS else 'columns'}-{kind}-{params}" for src, kind, params, _ in CASES]


def _source(case) -> str:
    source, kind, _, _ = case
    return source.replace("KIND", kind)


def _params(case) -> dict:
    return {"T": "f32", **case[2]}


def _inputs(case) -> list[np.ndarray]:
    """Values with ties and signed zeros (max/min must pick the one the tree order picks)."""
    params = lpir.compile(_source(case), target="interp", **_params(case)).specialize(None).params
    m, n, t = params["M"], params["N"], lpir.dtype(params["T"])
    rng = np.random.default_rng(3)
    if t.is_float:
        x = rng.choice([-2.5, -1.0, -0.0, 0.0, 0.5, 3.0], (m, n)) + rng.standard_normal((m, n))
        x[rng.random((m, n)) < 0.3] = rng.choice([0.0, -0.0])
    else:
        x = rng.integers(-1000, 1000, (m, n))
    out = m if case[0] is ROWS else n
    return [x.astype(t.numpy_dtype), np.zeros(out, t.numpy_dtype)]


def _run(case, target: str) -> np.ndarray:
    args = _inputs(case)
    lpir.compile(_source(case), target=target, **_params(case))(*args)
    return args[1]


def _bits(array: np.ndarray) -> np.ndarray:
    return array.view(f"u{array.dtype.itemsize}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_warp_groups_shuffle_and_others_use_shared_memory(case):
    final = lpir.compile(_source(case), target="cuda", **_params(case)).ir("final")
    assert "shfl_xor" in final
    assert ("%partials" in final) != case[3]  # the shared-memory reduction's scratch
    cpu = lpir.compile(_source(case), target="cpu", **_params(case)).ir("final")
    assert "shfl_xor" not in cpu


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shuffles_fold_in_the_order_of_shared_memory(case, monkeypatch):
    shuffled = _run(case, "threads-cuda")
    monkeypatch.setattr(thread_reductions, "butterfly_masks", lambda digits: None)
    through_memory = _run(case, "threads-cuda")
    np.testing.assert_array_equal(_bits(shuffled), _bits(through_memory))
    # and both are the reduction (rounding aside: numpy sums in another order)
    x = _inputs(case)[0].astype(np.float64)
    reduce = {"sum": np.sum, "max": np.max, "min": np.min}[case[1]]
    wanted = reduce(x, axis=1 if case[0] is ROWS else 0)
    np.testing.assert_allclose(shuffled.astype(np.float64), wanted, rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["sum", "max"])
def test_a_group_split_over_two_thread_digits(kind, tmp_path, monkeypatch):
    path = tmp_path / "two_digits.ir"
    path.write_text(TWO_DIGITS.replace("KIND", kind))
    final = lpir.compile(str(path), target="cuda").ir("final")
    assert [int(m) for m in _masks(final)] == [1, 2, 16]
    x = np.random.default_rng(1).standard_normal((7, 8)).astype(np.float32)
    results = []
    for masks in (butterfly_masks, lambda digits: None):
        monkeypatch.setattr(thread_reductions, "butterfly_masks", masks)
        y = np.zeros(7, np.float32)
        lpir.compile(str(path), target="threads-cuda")(x, y)
        results.append(y)
    np.testing.assert_array_equal(_bits(results[0]), _bits(results[1]))


def _masks(ir: str) -> list[str]:
    lines = [line for line in ir.splitlines() if "shfl_xor" in line]
    return [line.split("mask = ")[1].split("}")[0] for line in lines]


def test_butterfly_masks_follow_the_tree_and_stay_in_the_warp():
    # the last digit varies fastest in the shared-memory order: its bits are the first levels
    assert butterfly_masks([Digit(4, 8, 1, 1), Digit(2, 1, 1, 4)]) == [1, 8, 16]
    assert butterfly_masks([Digit(32, 1, 1, 1)]) == [1, 2, 4, 8, 16]
    assert butterfly_masks([Digit(2, 64, 1, 1), Digit(32, 1, 1, 2)]) is None  # two warps
    assert butterfly_masks([Digit(3, 1, 1, 1)]) is None  # not a power of two
    assert butterfly_masks([Digit(2, 3, 1, 1)]) is None


def test_groups_past_a_warp_split_where_the_warp_ends():
    # 64 threads a column, 2 apart: 16 of them in each warp (masks 2, 4, 8, 16), 4 warps
    across, within = split_at_warps([Digit(64, 2, 0, 1)])
    assert (across, within) == ([Digit(4, 32, 0, 16)], [Digit(16, 2, 0, 1)])
    assert butterfly_masks(within) == [2, 4, 8, 16]
    # a whole digit inside the warp, the one before it across warps
    digits = [Digit(2, 64, 1, 4), Digit(4, 1, 1, 1)]
    assert split_at_warps(digits) == ([digits[0]], [digits[1]])
    assert split_at_warps([Digit(3, 32, 1, 1)]) == ([Digit(3, 32, 1, 1)], [])
    assert split_at_warps([Digit(8, 4, 1, 1)]) == ([], [Digit(8, 4, 1, 1)])


def test_rows_stay_within_a_warp_where_the_tile_allows():
    # softmax's [4, 256] f32 tile: a row over 32 threads (4 x 16 bytes each), not 64
    assert str(coalesced_layout((4, 256), 32, 128, 16)) == "local(1,2).spatial(4,32).local(1,4)"
    # too few rows to take the other threads: the row spreads over all of them, no replicas
    assert str(coalesced_layout((2, 1024), 32, 128, 16)) == "local(2,2).spatial(1,128).local(1,4)"
    assert str(coalesced_layout((4096,), 32, 128, 16)) == "local(8).spatial(128).local(4)"


def test_the_cpu_target_refuses_warp_shuffles_with_a_location(tmp_path):
    path = tmp_path / "shuffle.ir"
    path.write_text(
        "kernel @k[](%y: global f32[32]) blocks(1, 1, 1) threads(32) stage(thread) {\n"
        "  %t = thread_index : i32\n"
        "  %v = cast(%t) : f32\n"
        "  %s = shfl_xor(%v) {mask = 1} : f32\n"
        "  %w = splat(%s) {shape = [1]} : <1 x f32>\n"
        "  st(%y, %t, %w) {offsets = [0]}\n"
        "}\n"
    )
    with pytest.raises(LpirError, match="shfl_xor") as error:
        lpir.compile(str(path), target="cpu")(np.zeros(32, np.float32))
    assert error.value.location is not None
    y = np.zeros(32, np.float32)
    lpir.compile(str(path), target="threads")(y)
    np.testing.assert_array_equal(y, np.arange(32) ^ 1)


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_emulated_shuffles_equal_the_thread_interpreter():
    kernels = [
        emit_kernel(
            lpir.compile(_source(case), target="cuda", **_params(case))
            .specialize(None)
            .module.kernels[0],
            f"reduce_{index}",
        )
        for index, case in enumerate(CASES)
    ]
    for case, runner in zip(CASES, emulate_kernels(kernels)):
        args = _inputs(case)
        emulated = copy.deepcopy(args)
        runner.run(emulated)
        wanted = _run(case, "threads-cuda")
        np.testing.assert_array_equal(_bits(emulated[1]), _bits(wanted), err_msg=str(case[1:3]))


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shuffle_reductions_on_the_gpu(case):
    """The same values on the GPU (sums bit for bit; the sign of a zero that max/min pick
    between +0 and -0 is the hardware's `max.f32`, which lpir leaves open)."""
    got, wanted = _run(case, "cuda"), _run(case, "threads-cuda")
    if case[1] == "sum":
        np.testing.assert_array_equal(_bits(got), _bits(wanted))
    else:
        np.testing.assert_array_equal(got, wanted)
