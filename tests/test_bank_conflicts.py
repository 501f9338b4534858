"""Shared-memory bank conflicts: the model, the swizzle layout-selection picks by it, and the
counter that replays a kernel's shared accesses on the thread interpreter.

* `lpir.layout.banks.wavefronts` against cases worked out by hand (NVIDIA's rules: 32 banks of
  4-byte words, 128 bytes a wavefront, lanes reading one word share it);
* `tile_access_cost` sees the conflicts of a column read and none of a row read;
* a tile read as k-permuted mma fragments (each thread 16-byte runs 64 bytes apart in rows of
  256 bytes: 4-way conflicts row-major) gets a swizzle that makes every access conflict-free,
  counted on the thread interpreter, and the kernel still computes what the interpreter does;
* every shared access of matmul_wq (swizzled for `ldmatrix`, written by 16-byte stores) is
  conflict-free.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from lpir.backends.cuda.bank_conflicts import count_bank_conflicts
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.examples import thread_module
from lpir.backends.cuda.source import emit_kernel
from lpir.passes import layout_rules
from lpir.passes.layout_rules import mma_layouts_permuted, pair_distance
from lpir.passes.matrix_loads import fragment_offsets

import lpir
from lpir.layout.banks import tile_access_cost, wavefronts

LANES = np.arange(32)
ALL = np.ones(32, bool)


@pytest.mark.parametrize(
    ("addresses", "nbytes", "active", "expected"),
    [
        (LANES * 4, 4, ALL, (1, 1)),  # 32 consecutive words: one per bank
        (LANES * 128, 4, ALL, (32, 1)),  # one bank, 32 words
        (LANES * 0, 4, ALL, (1, 1)),  # one word: a broadcast
        (LANES * 2, 2, ALL, (1, 1)),  # two lanes a word
        (LANES * 8, 8, ALL, (2, 2)),  # 256 bytes in two half-warps
        (LANES * 16, 16, ALL, (4, 4)),  # 512 bytes in four quarter-warps
        (LANES * 256, 16, ALL, (32, 4)),  # each quarter-warp's 8 rows in the same 4 banks
        (LANES * 128, 4, LANES < 4, (4, 1)),  # only the active lanes count
        ((LANES % 8) * 16 + (LANES // 8) * 1024, 16, ALL, (4, 4)),  # 8 rows apart by phase
    ],
)
def test_wavefronts_follow_the_bank_rules(addresses, nbytes, active, expected):
    assert wavefronts(addresses, nbytes, active) == expected


def test_a_column_read_of_a_row_major_tile_conflicts_and_a_row_read_does_not():
    column = np.arange(32)[:, None] * 32  # thread t: element (t, 0) of an f32 [32, 32] tile
    row = np.arange(32)[:, None]  # thread t: element (0, t)
    assert tile_access_cost(column, 4) == (32, 1)
    assert tile_access_cost(row, 4) == (1, 1)
    runs = np.arange(32)[:, None] * 8 + np.arange(8)[None, :]  # 8 f16 each: 16-byte accesses
    assert tile_access_cost(runs, 2) == (4, 4)


THROUGH_SHARED = """
kernel through_shared[MB = 64, N = 64, K = 128](
    x: global f16[MB, K], w: global u4[N, K], y: global f32[MB, N],
) blocks(1) threads(128) {
    sx = shared<f16>[MB, K]
    store(sx, load(x[0 :+ MB, 0 :+ K]))
    sync()
    wt = cast<f16>(load(w[0 :+ N, 0 :+ K])) - 8       # loaded along rows: k-permuted fragments
    store(y[0 :+ MB, 0 :+ N], transpose(dot(wt, transpose(load(sx)))))
}
"""


@pytest.fixture
def through_shared(tmp_path):
    path = tmp_path / "through_shared.lp"
    path.write_text(THROUGH_SHARED)
    return path


def conflicts(path, target="threads-cuda", **params):
    kernel = lpir.compile(str(path), target=target, **params).specialize(None).kernel_ir
    rng = np.random.default_rng(0)
    buffers = [rng.integers(0, 256, arg.type.nbytes, dtype=np.uint8) for arg in kernel.args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random f16 bits: NaN and inf products
        return count_bank_conflicts(kernel, buffers)


def test_k_permuted_fragments_read_a_swizzled_tile_without_conflicts(through_shared):
    found = conflicts(through_shared)
    assert [record.op.name for record in found] == ["st", "ld"]
    assert all(record.conflict == 1.0 for record in found), [r.describe() for r in found]
    assert found[0].op.operands[0].type.swizzle is not None


def test_row_major_the_same_reads_conflict_four_ways(through_shared, monkeypatch):
    monkeypatch.setattr(layout_rules, "shared_layout", lambda *args, **kwargs: None)
    monkeypatch.setattr(
        "lpir.passes.layout_selection.rules.shared_layout", lambda *args, **kwargs: None
    )
    store, load = conflicts(through_shared)
    assert store.conflict == 1.0
    assert load.conflict == 4.0


def test_the_static_cost_predicts_what_the_counter_finds(through_shared):
    """layout-selection's estimate from the layouts alone against the replay of the thread IR:
    the same wavefronts."""
    _, b = mma_layouts_permuted(64, 64, 128, 128, pair_distance(lpir.dtype("u4"), 128))
    offsets = fragment_offsets(b, [1, 128])  # b[k, n] is sx[n, k]
    load = conflicts(through_shared)[1]
    swizzle = load.op.operands[0].type.swizzle
    assert tile_access_cost(offsets, 2, swizzle) == (load.wavefronts, load.ideal)
    assert tile_access_cost(offsets, 2) == (4 * load.wavefronts, load.ideal)


def test_the_swizzled_tile_computes_what_the_interpreter_does(through_shared):
    """Every f32 product of f16 x and a 4-bit weight is exact, so the sums differ only by
    rounding in another order: at most 128 roundings of 2^-24 of the sum of magnitudes."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((64, 128)) * 0.5).astype(np.float16)
    w = rng.integers(0, 16, (64, 128)).astype(np.uint8)
    terms = x.astype(np.float64)[:, None, :] * (w.astype(np.float64) - 8)[None, :, :]
    bound = 128 * 2.0**-24 * np.abs(terms).sum(axis=2)
    y = np.zeros((64, 64), np.float32)
    lpir.compile(str(through_shared), target="threads-cuda")(x, lpir.pack(w, "u4"), y)
    assert np.all(np.abs(y - terms.sum(axis=2)) <= bound)
    if emulation_available():  # the CUDA C, swizzled addresses and all, run on the host
        module = thread_module("through_shared", {}, through_shared.parent)
        (runner,) = emulate_kernels([emit_kernel(module.kernels[0], "through_shared")])
        emulated = np.zeros((64, 64), np.float32)
        runner.run([x, lpir.pack(w, "u4").data, emulated])
        np.testing.assert_array_equal(emulated, y)  # the same sums in the same order


def test_matmul_shared_accesses_are_conflict_free():
    found = conflicts("examples/matmul_wq.lp", M=64, N=64, K=64)
    assert {record.op.name for record in found} == {"st", "ldmatrix"}
    assert all(record.conflict == 1.0 for record in found), [r.describe() for r in found]


def test_lpir_banks_prints_each_shared_access(capsys, through_shared):
    from lpir.cli import main

    assert main(["banks", str(through_shared)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{through_shared}:6:5: st 16 B/lane, 32 accesses")
    assert lines[1].startswith(f"{through_shared}:9:59: ld 16 B/lane, 128 accesses")
    assert lines[-1] == "total: 640 wavefronts in 1 block, 1.00x conflict-free"
    assert main(["banks", "examples/gemv_wq.lp", "-D", "N=64", "-D", "K=256"]) == 0
    assert "no shared-memory accesses" in capsys.readouterr().out


def test_lpir_banks_says_how_many_blocks_ran(capsys, through_shared):
    """`lpir banks --blocks 100000` of a one-block grid said "in 100000 block(s)"."""
    from lpir.cli import main

    assert main(["banks", str(through_shared), "--blocks", "100000"]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert total == "total: 640 wavefronts in 1 block (the whole grid), 1.00x conflict-free"


def test_lpir_banks_needs_a_block(capsys):
    from lpir.cli import main

    assert main(["banks", "examples/matmul_wq.lp", "--blocks", "0"]) == 1
    assert "run at least one block" in capsys.readouterr().err


#: wavefronts per conflict-free wavefront of the shared accesses of the example cases that are
#: not conflict-free (lpir banks): matmul_wq at BN = 256, whose exchange store of the
#: dequantized B stays 2-way under every one- and two-term swizzle that keeps its ldmatrix
#: conflict-free (3392 wavefronts; the classic swizzle's 4-way store made 4416); moe_topk's
#: gather of its K weights, each thread reading its own row at the positions its data chose
#: (a row padded one word longer only took the loads from 3.5-4x to 3x and made the cases
#: of 16 experts worse: random positions collide in banks whatever the row stride); moe_align's
#: atomic_adds into 64 experts' counters at the positions the ids choose (pairs of one expert
#: meet in one word, which its atomics serialize on any stride).
CONFLICTED_CASES = {
    ("matmul_wq", 5): 1.43,
    ("moe_align", 0): 1.28,
    ("moe_topk", 0): 1.55,
    ("moe_topk", 1): 1.31,
    ("moe_topk", 2): 1.05,
}


def test_the_examples_shared_accesses_stay_as_conflict_free_as_they_are():
    from lpir.backends.cuda.examples import COMPILE_CASES

    from lpir.tools import bank_conflicts

    for name, cases in COMPILE_CASES.items():
        for index, params in enumerate(cases):
            last = bank_conflicts(f"examples/{name}.lp", params, None).splitlines()[-1]
            if last.startswith("no shared-memory accesses"):
                continue
            factor = float(last.rsplit(", ", 1)[1].split("x")[0])
            assert factor <= CONFLICTED_CASES.get((name, index), 1.0), (name, params, last)


def test_lpir_banks_checks_what_the_companion_returns(tmp_path, capsys):
    """make_inputs' result went straight to the byte buffers (a traceback on None)."""
    from lpir.cli import main

    source = tmp_path / "k.lp"
    source.write_text(Path("examples/vector_add.lp").read_text())
    companion = (
        "def make_inputs(params, rng):\n    return None\n\n\n"
        "def reference(params, args):\n    return {}\n"
    )
    (tmp_path / "k.py").write_text(companion)
    assert main(["banks", str(source)]) == 1
    error = capsys.readouterr().err
    assert "make_inputs" in error and "returned None" in error and "Traceback" not in error
