"""insert-syncs: a tile that reads or writes memory the block touched before waits at a
barrier, so every target keeps the interpreter's program order; where each thread touches
only what it touched before, where slices are apart, and between atomic adds, none is added.

The hazards below gave wrong results on the CPU and under the CUDA host emulation before the
pass (a stored tile read back in another layout, a shared tile without `sync()`, a loop
reading what its previous iteration stored); every example's IR is unchanged by it.
"""

from __future__ import annotations

import copy
import glob

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel
from lpir.passes import PassPipeline

import lpir
from lpir.ir.ops import SyncOp
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program
from lpir.tools import load_module

# residual += x as one tile, then read back row by row: other threads stored those rows
READ_BACK = """
kernel read_back[M = 8, N = 256, BM = 4](
    x: global f32[M, N], residual: global f32[M, N], y: global f32[M, N],
) blocks(cdiv(M, BM)) threads(128) {
    rows = block.x * BM
    store(residual[rows :+ BM, :], load(x[rows :+ BM, :]) + load(residual[rows :+ BM, :]))
    for i in range(0, BM) {
        store(y[rows + i, :], load(residual[rows + i, :]) * 3.0)
    }
}
"""

# a shared tile stored in one layout and loaded in another, no sync() written
SHARED = """
kernel shared_no_sync[M = 3, N = 512](x: global f32[M, N], y: global f32[M, N])
    blocks(M) threads(32) {
    s = shared<f32>[N]
    store(s, load(x[block.x, :]) @ spatial(32).local(16))
    store(y[block.x, :], (load(s) @ local(16).spatial(32)) + 1.0)
}
"""

# each iteration reads, in another layout, the chunk the previous one stored
PREVIOUS = """
kernel previous[N = 2048, BN = 512](x: global f32[N], y: global f32[N], z: global f32[BN])
    blocks(1) threads(8) {
    store(y[0 :+ BN], load(x[0 :+ BN]) @ spatial(8).local(64))
    acc = zeros<f32>[BN] @ local(64).spatial(8)
    for n0 in range(BN, N, BN) {
        acc += load(y[n0 - BN :+ BN]) @ local(64).spatial(8)
        store(y[n0 :+ BN], load(x[n0 :+ BN]) * 2.0 @ spatial(8).local(64))
    }
    store(z[0 :+ BN], acc)
}
"""

HAZARDS = {"read_back": READ_BACK, "shared": SHARED, "previous": PREVIOUS}

# in place, chunk by chunk: each thread stores what it loaded, and the next chunk is apart
IN_PLACE = """
kernel in_place[M = 3, N = 1000, BN = 128](x: global f32[M, N]) blocks(M) threads(64) {
    for n0 in range(0, N, BN) {
        store(x[block.x, n0 :+ BN], load(x[block.x, n0 :+ BN]) * 2.0)
    }
}
"""

# single elements apart, and atomic adds into the same tensor
APART = """
kernel apart(x: global f32[4], y: global f32[8], z: global f32[4]) blocks(1) threads(32) {
    t = load(x[:])
    store(y[0], sum(t))
    store(y[1], max(t))
    store(y[2 :+ 4], t)
    store(y[6], load(y[7]))
    atomic_add(z[:], t)
    atomic_add(z[:], t * 2.0)
}
"""


def _syncs(module) -> int:
    return sum(isinstance(op, SyncOp) for kernel in module.kernels for op in kernel.walk())


def _syncs_added(source, target: str = "cuda", **params) -> int:
    """How many syncs insert-syncs adds to the kernel once layouts are chosen."""
    if "\n" in source:
        module = specialize(parse_program(source, "<test>"), None, params)[1]
    else:
        module = load_module(source, params)
    layouts = ("canonicalize", "cse", "dce", "layout-selection", "canonicalize")
    before = PassPipeline(layouts, target=target).run(module)
    return _syncs(PassPipeline(("insert-syncs",), target=target).run(before)) - _syncs(before)


@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_hazards_get_a_sync(name):
    # previous: one before the loop (the first chunk's store), one in it
    assert _syncs_added(HAZARDS[name]) == (2 if name == "previous" else 1)


@pytest.mark.parametrize("source", [IN_PLACE, APART], ids=["in_place", "apart"])
def test_no_sync_where_threads_touch_their_own_elements_or_slices_are_apart(source):
    assert _syncs_added(source) == 0


@pytest.mark.parametrize("path", sorted(glob.glob("examples/*.lp")))
@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_examples_need_no_sync_added(path, target):
    assert _syncs_added(path, target) == 0


def _random_args(kernel_source: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    module = specialize(parse_program(kernel_source, "<test>"), None, {})[1]
    return [
        rng.standard_normal(arg.type.shape).astype(np.float32) for arg in module.kernels[0].args
    ]


@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_hazards_equal_the_interpreter_on_the_cpu(name):
    args = _random_args(HAZARDS[name], seed=len(name))
    wanted = copy.deepcopy(args)
    lpir.compile(HAZARDS[name], target="interp")(*wanted)
    lpir.compile(HAZARDS[name], target="cpu")(*args)
    for got, expected in zip(args, wanted):
        np.testing.assert_array_equal(got, expected)  # the same additions in the same order


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
@pytest.mark.parametrize("name", sorted(HAZARDS))
def test_hazards_equal_the_interpreter_under_emulation(name):
    spec = lpir.compile(HAZARDS[name], target="cuda").specialize(None)
    (runner,) = emulate_kernels([emit_kernel(spec.module.kernels[0], name)])
    args = _random_args(HAZARDS[name], seed=len(name))
    wanted = copy.deepcopy(args)
    lpir.compile(HAZARDS[name], target="interp")(*wanted)
    runner.run(args)
    for got, expected in zip(args, wanted):
        np.testing.assert_array_equal(got, expected)
