"""prune-barriers: barriers that separate no conflicting accesses go, the others stay.

Counts of barriers in the final thread IR, for kernels where the answer is known: matmul_wq's
loop keeps two of its four (the exchange's first and the second `sync()` separated accesses
to different tiles), softmax's reductions on the CPU two of four; a `sync()` between a write
and a read of the same shared tile or global tensor stays, also across a loop's back edge.
The kernels whose barriers went still equal the interpreter on the CPU (where a barrier splits
the per-thread loops) and under the CUDA host emulation (threads are OS threads).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel

import lpir


def _barriers(source, target: str, stage: str = "final", **params) -> int:
    return lpir.compile(source, target=target, **params).ir(stage).count("barrier")


def test_matmul_keeps_two_barriers_of_four_in_its_loop():
    path = "examples/matmul_wq.lp"
    assert _barriers(path, "cuda", "after:vectorize") == 4
    assert _barriers(path, "cuda") == 2


def test_softmax_on_the_cpu_keeps_two_of_four():
    assert _barriers("examples/softmax.lp", "cpu", "after:vectorize") == 4
    assert _barriers("examples/softmax.lp", "cpu") == 2


# Both syncs separate a write of s from a read of it (the second across the loop's back edge,
# before the next iteration's write): the pass does not know which thread reads what.
REVERSE = """
kernel reverse[N = 64, R = 3](x: global f32[N], y: global f32[N]) blocks(1) threads(64) {
    s = shared<f32>[N]
    acc = zeros<f32>[N]
    for r in range(0, R) {
        store(s, load(x[0 :+ N]) + cast<f32>(r))
        sync()
        acc += load(s)
        sync()
    }
    store(y[0 :+ N], acc)
}
"""

# A write of y that other threads read back after a sync: a global hazard.
GLOBAL = """
kernel twice[N = 64](x: global f32[N], y: global f32[N], z: global f32[N])
    blocks(1) threads(64) {
    store(y[0 :+ N], load(x[0 :+ N]) * 2.0)
    sync()
    store(z[0 :+ N], load(y[0 :+ N]) + 1.0)
}
"""


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_syncs_between_a_write_and_a_read_of_the_same_memory_stay(target):
    assert _barriers(REVERSE, target, "after:vectorize") == _barriers(REVERSE, target) == 2
    assert _barriers(GLOBAL, target) == 1


def test_kernels_with_pruned_barriers_equal_the_interpreter_on_the_cpu():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 100)).astype(np.float32)
    wanted, got = np.zeros_like(x), np.zeros_like(x)
    lpir.compile("examples/softmax.lp", target="interp", M=37, N=100)(x, wanted)
    lpir.compile("examples/softmax.lp", target="cpu", M=37, N=100)(x, got)
    np.testing.assert_allclose(got, wanted, rtol=1e-6, atol=1e-7)
    x = rng.standard_normal(64).astype(np.float32)
    for source, outputs in ((REVERSE, 1), (GLOBAL, 2)):
        args = [x] + [np.zeros(64, np.float32) for _ in range(outputs)]
        reference = copy.deepcopy(args)
        lpir.compile(source, target="interp")(*reference)
        lpir.compile(source, target="cpu")(*args)
        for got_, wanted_ in zip(args[1:], reference[1:]):
            np.testing.assert_array_equal(got_, wanted_)


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_the_pruned_matmul_equals_the_interpreter_under_emulation():
    params = {"M": 100, "N": 96, "K": 256, "BK": 64, "STAGES": 3}
    spec = lpir.compile("examples/matmul_wq.lp", target="cuda", **params).specialize(None)
    (runner,) = emulate_kernels([emit_kernel(spec.module.kernels[0], "mm")])
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((100, 256)) * 0.5).astype(np.float16)
    b = lpir.pack(rng.integers(0, 16, (256, 96)), "u4")
    s = rng.uniform(0.01, 0.05, (2, 96)).astype(np.float16)
    got, wanted = np.zeros((100, 96), np.float16), np.zeros((100, 96), np.float16)
    runner.run([a, b, s, got])
    lpir.compile("examples/matmul_wq.lp", target="interp", **params)(a, b, s, wanted)
    # f16 results of f32 sums over 256 products in another order: within f16 rounding
    np.testing.assert_allclose(
        got.astype(np.float32), wanted.astype(np.float32), rtol=1e-2, atol=1e-2
    )
