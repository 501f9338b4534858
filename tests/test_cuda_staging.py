"""Pipelined loads staged in shared memory with cp.async (backends/cuda/staging.py).

The emulated CUDA C lands each cp.async only when the thread waits for its group (as late as
a GPU may), so a kernel that read a slot too early would read stale bytes here: the staged
kernels below equal the interpreter at every pipeline depth, and one with its wait count off
by one does not; where there is a GPU, the same kernels run on it. The plan: per-block tiles
are staged, tiles every block reads alike stay in registers one iteration ahead, nothing is
staged past the shared-memory budget or with LPIR_CUDA_ASYNC_COPY=0.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lpir.backends.cuda import emit_staging
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emitter import KernelEmitter
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel
from lpir.backends.cuda.staging import plan_staging

import lpir

# Rows of packed weights per block, x shared by all blocks, one scale per row: the GEMV's
# shape. N and K need not divide the tile (masks at both edges); u3 rows of 64 come in 24-byte
# groups (cp.async of 8 bytes), u4 and u8 in 16-byte ones, the f32 scales lane by lane.
GEMV = """
kernel gemv[WT = u3, N = 100, K = 1000, BN = 16, BK = 64, STAGES = 2](
    x: global f32[K], w: global WT[N, K], s: global f32[N], y: global f32[N],
) blocks(cdiv(N, BN)) threads(64) {
    rows = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK, stages = STAGES) {
        wt = cast<f32>(load(w[rows :+ BN, k0 :+ BK]))
        acc += wt * load(s[rows :+ BN])[:, None] * load(x[k0 :+ BK])[None, :]
    }
    store(y[rows :+ BN], sum(acc, axis = 1))
}
"""

# (weights, N, K, BK, BN): the row edge (N % BN) and the K edge, in chunks whose lanes' masks
# agree and in chunks where they differ; u3 in 4-byte copies (12-byte groups)
SHAPES = [
    ("u4", 100, 992, 64, 16),
    ("u4", 64, 1000, 64, 16),
    ("u8", 40, 200, 64, 16),
    ("u3", 100, 1024, 128, 64),
]
CASES = [(*shape, stages) for shape in SHAPES for stages in (1, 2, 3, 8)]


def _kernel(wt: str, n: int, k: int, bk: int, bn: int, stages: int):
    params = {"WT": wt, "N": n, "K": k, "BK": bk, "BN": bn, "STAGES": stages}
    return lpir.compile(GEMV, target="cuda", **params).specialize(None)


def _arguments(wt: str, n: int, k: int) -> list:
    rng = np.random.default_rng(5)
    bits = lpir.dtype(wt).nbits
    w = lpir.pack(rng.integers(0, 1 << bits, (n, k)), wt)
    x = rng.standard_normal(k).astype(np.float32)
    s = rng.uniform(0.5, 1.5, n).astype(np.float32)
    return [x, w, s, np.zeros(n, np.float32)]


def _interpreted(wt: str, n: int, k: int, bk: int, bn: int) -> np.ndarray:
    args = _arguments(wt, n, k)
    lpir.compile(GEMV, target="interp", WT=wt, N=n, K=k, BK=bk, BN=bn)(*args)
    return args[3]


def _emulated(cases) -> list[np.ndarray]:
    kernels = [
        emit_kernel(_kernel(*case).module.kernels[0], f"gemv_{index}")
        for index, case in enumerate(cases)
    ]
    results = []
    for runner, (wt, n, k, *_) in zip(emulate_kernels(kernels), cases):
        args = _arguments(wt, n, k)
        emulated = copy.deepcopy(args)
        runner.run(emulated)
        results.append(emulated[3])
    return results


needs_compiler = pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")


@needs_compiler
def test_staged_pipelines_equal_the_interpreter():
    for case in CASES:  # the cases do stage (1 stage: nothing to stage)
        source = emit_kernel(_kernel(*case).module.kernels[0]).text
        assert ("lpir_cp_async<" in source) == (case[-1] > 1), case
    # f32 sums of up to 1000 products of |x| < 5, |w| < 256 in another order: 1e-5 relative
    for case, got in zip(CASES, _emulated(CASES)):
        wanted = _interpreted(*case[:5])
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-3, err_msg=str(case))


@needs_compiler
def test_waiting_for_one_group_too_few_is_reported(monkeypatch):
    """What makes the test above able to fail: each thread then reads its slot before its
    own copy has landed (the emulation lands copies as late as a GPU may, so it would read a
    stale tile), which the emulation's race check reports."""
    monkeypatch.setattr(emit_staging, "pending_groups", lambda ahead: ahead)
    case = ("u4", 64, 512, 64, 16, 3)
    with pytest.raises(lpir.LpirError, match=r"before its own cp\.async copy there has landed"):
        _emulated([case])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, case)) for case in CASES])
def test_staged_pipelines_on_the_gpu(case):
    """The same kernels where the copies really land late (sm_80+: cp.async)."""
    wt, n, k, bk, bn, stages = case
    args = _arguments(wt, n, k)
    params = {"WT": wt, "N": n, "K": k, "BK": bk, "BN": bn, "STAGES": stages}
    lpir.compile(GEMV, target="cuda", **params)(*args)
    np.testing.assert_allclose(args[3], _interpreted(*case[:5]), rtol=1e-5, atol=1e-3)


# A tile stored into shared memory and read back transposed (each thread reads what others
# wrote): the pipelined loads of `a` become copies straight into STAGES buffers of `sa`. Rows
# past M and columns past K are masked (zero-filled copies; lane by lane where the compiler
# cannot tell a chunk's lanes agree). The replicated `v` is stored by one replica (a masked
# store), which is not buffered. f16 tiles come in 16-, 8- or 4-byte copies as K's row
# alignment allows, into swizzled shared memory.
SHARED_TILE = """
kernel shared_tile[T = f32, M = 100, K = 200, BM = 32, BK = 32, STAGES = 2, AFTER = 0](
    a: global T[M, K], v: global f32[K], y: global f32[M],
) blocks(cdiv(M, BM)) threads(64) {
    sa = shared<T>[BM, BK]
    sv = shared<f32>[BK]
    acc = zeros<f32>[BK, BM]
    for k0 in range(0, K, BK, stages = STAGES) {
        store(sa, load(a[block.x * BM :+ BM, k0 :+ BK]))
        store(sv, load(v[k0 :+ BK]))
        sync()
        acc += cast<f32>(transpose(load(sa))) * load(sv)[:, None]
        sync()
    }
    if AFTER == 1 {
        acc += cast<f32>(transpose(load(sa)))           # the last tile, read after the loop
    }
    store(y[block.x * BM :+ BM], sum(acc, axis = 0))
}
"""
SHARED_TILE_CASES = [
    {"M": 100, "K": 200, "STAGES": 2},
    {"M": 100, "K": 200, "STAGES": 3},
    {"M": 64, "K": 256, "STAGES": 4},
    {"M": 70, "K": 96, "STAGES": 4, "AFTER": 1},
    {"T": "f16", "M": 77, "K": 300, "BM": 64, "BK": 64, "STAGES": 3},
    {"T": "f16", "M": 40, "K": 1000, "BM": 16, "BK": 128, "STAGES": 2},
    {"T": "f16", "M": 33, "K": 250, "BM": 32, "BK": 32, "STAGES": 5},
]


def _shared_tile_arguments(case: dict) -> list:
    rng = np.random.default_rng(7)
    m, k = case["M"], case["K"]
    a = rng.standard_normal((m, k)).astype(case.get("T", "f32").replace("f", "float"))
    return [a, rng.standard_normal(k).astype(np.float32), np.zeros(m, np.float32)]


def _shared_tile_results(cases) -> list[tuple[np.ndarray, np.ndarray]]:
    """(emulated CUDA, interpreter) outputs of each case of SHARED_TILE."""
    kernels = [
        emit_kernel(
            lpir.compile(SHARED_TILE, target="cuda", **case).specialize(None).module.kernels[0],
            f"shared_tile_{index}",
        )
        for index, case in enumerate(cases)
    ]
    results = []
    for runner, case in zip(emulate_kernels(kernels), cases):
        emulated = _shared_tile_arguments(case)
        runner.run(emulated)
        interpreted = _shared_tile_arguments(case)
        lpir.compile(SHARED_TILE, target="interp", **case)(*interpreted)
        results.append((emulated[2], interpreted[2]))
    return results


@needs_compiler
def test_tiles_copied_straight_into_shared_buffers_equal_the_interpreter():
    for case in SHARED_TILE_CASES:
        plan = _plan(SHARED_TILE, **case)
        buffered = {
            ring.fetch.memory.name_hint: ring.store.memory  # type: ignore[union-attr]
            for rings in plan.rings.values()
            for ring in rings
            if ring.buffered
        }
        # a tile read after the loop keeps one buffer; v is buffered where one thread holds
        # each element (BK >= 64 threads: no replica, so an unmasked store)
        assert ("a" in buffered) == (not case.get("AFTER")), case
        assert ("v" in buffered) == (case.get("BK", 32) >= 64), case
        assert all(plan.copies(tile) == case["STAGES"] for tile in buffered.values())
    # sums of up to 1000 products of normal numbers in the same order: 1e-5 relative
    for case, (got, wanted) in zip(SHARED_TILE_CASES, _shared_tile_results(SHARED_TILE_CASES)):
        np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-5, err_msg=str(case))


@needs_compiler
def test_reading_the_buffer_being_filled_is_a_race(monkeypatch):
    """What makes the test above able to fail: the body reading the buffer that the copies
    are filling (landing an iteration late) is a race the emulation reports (other threads'
    copies are in flight there); it read stale tiles before the emulation checked races."""

    def wrong_buffer(emitter, state, tile):
        state.stage, real = state.next_slot, state.stage
        try:
            read_buffer(emitter, state, tile)
        finally:
            state.stage = real

    read_buffer = emit_staging._read_buffer
    monkeypatch.setattr(emit_staging, "_read_buffer", wrong_buffer)
    with pytest.raises(lpir.LpirError, match="shared-memory race"):
        _shared_tile_results([SHARED_TILE_CASES[1]])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize(
    "case", SHARED_TILE_CASES, ids=lambda case: "-".join(map(str, case.values()))
)
def test_tiles_copied_straight_into_shared_buffers_on_the_gpu(case):
    """The same kernels where the copies really land late and other threads read them."""
    got = _shared_tile_arguments(case)
    lpir.compile(SHARED_TILE, target="cuda", **case)(*got)
    wanted = _shared_tile_arguments(case)
    lpir.compile(SHARED_TILE, target="interp", **case)(*wanted)
    np.testing.assert_allclose(got[2], wanted[2], rtol=1e-5, atol=1e-5)


# A buffered tile in a loop inside a staged loop whose 3 iterations do not fill whole groups
# of STAGES: the outer body, inner loop and all, is written twice (groups, then the rest), and
# each inner loop needs its own copy of the buffer addresses computed before it.
NESTED = """
kernel nested[M = 64, K = 96, R = 3, STAGES = 2](
    a: global f32[R, M, K], v: global f32[R, M], y: global f32[R, M],
) blocks(M / 32) threads(64) {
    sa = shared<f32>[32, 32]
    for r in range(0, R, 1, stages = STAGES) {
        acc = zeros<f32>[32, 32]
        for k0 in range(0, K, 32, stages = STAGES) {
            store(sa, load(a[r, block.x * 32 :+ 32, k0 :+ 32]))
            sync()
            acc += transpose(load(sa))
            sync()
        }
        store(y[r, block.x * 32 :+ 32], sum(acc, axis = 0) * load(v[r, block.x * 32 :+ 32]))
    }
}
"""


def _nested_arguments() -> list:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 64, 96)).astype(np.float32)
    return [a, rng.standard_normal((3, 64)).astype(np.float32), np.zeros((3, 64), np.float32)]


@needs_compiler
@pytest.mark.parametrize("stages", [2, 3])
def test_a_buffered_loop_inside_a_loop_written_twice_equals_the_interpreter(stages):
    kernel = lpir.compile(NESTED, target="cuda", STAGES=stages).specialize(None)
    emitted = emit_kernel(kernel.module.kernels[0], "nested")
    assert len(re.findall(r"for \(int k0\w*_group_", emitted.text)) == (2 if 3 % stages else 1)
    (runner,) = emulate_kernels([emitted])
    got, wanted = _nested_arguments(), _nested_arguments()
    runner.run(got)
    lpir.compile(NESTED, target="interp")(*wanted)
    # sums of 96 normal numbers in another order (tree vs sequential), times a normal: 1e-5
    np.testing.assert_allclose(got[2], wanted[2], rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("stages", [2, 3])
def test_a_buffered_loop_inside_a_loop_written_twice_on_the_gpu(stages):
    got, wanted = _nested_arguments(), _nested_arguments()
    lpir.compile(NESTED, target="cuda", STAGES=stages)(*got)
    lpir.compile(NESTED, target="interp")(*wanted)
    np.testing.assert_allclose(got[2], wanted[2], rtol=1e-5, atol=1e-5)


def test_matmul_copies_its_a_tile_straight_into_shared_buffers():
    """matmul_wq's `store(sa, load(a[...]))`: no slot, no store, S buffers of sa."""
    from lpir.backends.cuda.examples import example_path

    params = {"M": 256, "N": 256, "K": 512, "STAGES": 3}
    plan = _plan(str(example_path("matmul_wq")), **params)
    ((a, s, b),) = plan.rings.values()
    assert a.buffered and not s.buffered and not b.buffered
    assert list(plan.buffers.values()) == [3]
    source = lpir.compile(example_path("matmul_wq"), target="cuda", **params).source("cuda")
    assert "a_ahead" not in source and "lpir_store<16>(v0" not in source
    assert "LPIR_SHARED(v0_storage, 12288);" in source  # 3 x 64 x 32 f16


def _plan(source: str, budget: int | None = None, **params):
    kernel = lpir.compile(source, target="cuda", **params).specialize(None).module.kernels[0]
    emitter = KernelEmitter(kernel)
    if budget is not None:
        return plan_staging(kernel, emitter.users, budget)
    emitter.emit()
    return emitter.staging


def test_per_block_tiles_are_staged_and_shared_ones_are_not():
    plan = _plan(GEMV, WT="u4", N=256, K=1024, STAGES=4)
    ((ring,),) = plan.rings.values()  # s does not change in the loop: not pipelined at all
    assert ring.fetch.memory.name_hint == "w" and ring.ahead == 3 and ring.slots == 4
    # a 16 x 64 u4 tile is 8 bytes a thread: one 8-byte cp.async, 4 slots for 64 threads
    assert ring.chunk_bytes == 8 and ring.chunks == 1 and ring.nbytes == 4 * 8 * 64
    source = lpir.compile(GEMV, target="cuda", WT="u4", N=256, K=1024, STAGES=4).source("cuda")
    # x is the same in every block: in registers, one tile ahead
    assert "x_ahead" in source and "x_ahead_1" not in source
    # unrolled by the 4 slots (groups of 4 of the 16 iterations): slot indices are constants
    assert "lpir_cp_async_wait<2>();" in source
    assert "for (int k0_group_0 = 0; k0_group_0 < 1024; k0_group_0 += 256)" in source
    assert "for (int stage_0 = 0; stage_0 < 4; ++stage_0)" in source


def test_nothing_is_staged_past_the_budget_or_when_turned_off(monkeypatch):
    assert not _plan(GEMV, budget=0, WT="u4", N=256, K=1024, STAGES=4).rings
    monkeypatch.setenv("LPIR_CUDA_ASYNC_COPY", "0")
    source = lpir.compile(GEMV, target="cuda", WT="u4", N=256, K=1024, STAGES=4).source("cuda")
    assert "cp_async" not in source and "w_ahead_2" in source  # three tiles in registers


def test_a_split_k_gemv_stages_its_own_tiles_and_keeps_the_shared_x_in_registers():
    """gemv_splitk: w and the scales differ per block (staged, S - 1 ahead); x differs per
    split but every tile of rows reads it alike, each of its elements held by 16 threads: from
    cache, one tile ahead in registers (staged, it would be copied by all 128 threads)."""
    from lpir.backends.cuda.examples import example_path

    params = {"N": 4096, "K": 4096, "SPLIT": 4, "STAGES": 4}
    plan = _plan(str(example_path("gemv_splitk")), **params)
    ((w, s),) = plan.rings.values()
    assert (w.fetch.memory.name_hint, s.fetch.memory.name_hint) == ("w", "s")
    assert w.ahead == s.ahead == 3
    final = lpir.compile(example_path("gemv_splitk"), target="cuda", **params).ir("final")
    header = final.split(" = for ", 1)[1].split("\n", 1)[0]
    assert header.count("%x_ahead") == 1 and header.count("%w_ahead") == 3


_EMIT_SHARED_TILES = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import lpir, test_cuda_staging as t
from lpir.backends.cuda.source import emit_kernel
for case in t.SHARED_TILE_CASES:
    kernel = lpir.compile(t.SHARED_TILE, target="cuda", **case).specialize(None).module.kernels[0]
    print(hashlib.sha256(emit_kernel(kernel).text.encode()).hexdigest())
"""


def test_the_same_kernel_is_emitted_alike_in_every_process():
    """Layout selection broke ties between equally large classes by the values' addresses, so
    these kernels got one of two layouts (a swizzled tile, or a plain one and a reduction
    through shared memory) depending on the process: it breaks them by program order now."""
    tests = str(Path(__file__).resolve().parent)
    texts = set()
    for seed in ("1", "2", "3"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", _EMIT_SHARED_TILES, tests],
            capture_output=True,
            text=True,
            env=environment,
            check=True,
        )
        texts.add(result.stdout)
    assert len(texts) == 1
