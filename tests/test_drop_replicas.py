"""drop-replicas (CPU): a block whose every tile is held in copies over its top thread bits
runs fewer threads. Compiled for the CPU and through the thread-IR interpreter (the CPU
pipeline's IR) against the reference interpreter; the thread counts and layouts it leaves.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from lpir.passes.drop_replicas import common_copies, top_replication, without_top_copies

import lpir
from lpir.ir import parse
from lpir.layout import parse as parse_layout
from lpir.runner import stated_tolerance

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A tile of N elements over 128 threads, normalized by its sum (a reduction across threads);
# ATOMIC adds it into y instead of storing it (each element once, whatever the copies).
NORMALIZE = """
kernel normalize[N = 16, ATOMIC = 0](x: global f32[N], y: global f32[N]) blocks(1) threads(128) {
    t = exp(load(x[0 :+ N]))
    if ATOMIC == 1 {
        atomic_add(y[0 :+ N], t / sum(t, axis = 0))
    } else {
        store(y[0 :+ N], t / sum(t, axis = 0))
    }
}
"""


def _threads(source, **params) -> int:
    kernel = lpir.compile(source, target="cpu", **params)
    return parse(kernel.ir("after:drop-replicas")).kernels[0].threads


@pytest.mark.parametrize("target", ["cpu", "threads"])
@pytest.mark.parametrize(("n", "atomic", "threads"), [(16, 0, 16), (16, 1, 16), (32, 0, 32)])
def test_copies_are_dropped_and_the_values_stay(n, atomic, threads, target):
    assert _threads(NORMALIZE, N=n, ATOMIC=atomic) == threads
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    expected, got = np.ones(n, np.float32), np.ones(n, np.float32)
    lpir.compile(NORMALIZE, target="interp", N=n, ATOMIC=atomic)(x, expected)
    lpir.compile(NORMALIZE, target=target, N=n, ATOMIC=atomic)(x, got)
    # exp within an ulp or two of numpy's, the sum of N of them in another order
    np.testing.assert_allclose(got, expected, rtol=4e-7 * n, atol=0)


def test_a_tile_over_every_thread_keeps_them_all():
    assert _threads(NORMALIZE, N=128) == 128


@pytest.mark.parametrize("target", ["cpu", "threads"])
@pytest.mark.parametrize(
    "params",
    [
        {"N": 200, "K": 384, "WT": "u4", "ZERO": 8},  # rows past N in the last block
        {"N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 2},  # K past its tiles, atomics
    ],
)
def test_the_tensor_core_gemv_runs_each_row_once(params, target):
    """gemv_tc at BN = 64: a [64, 1] accumulator over 128 threads, held in 2 copies."""
    path = EXAMPLES / "gemv_tc.lp"
    assert _threads(path, **params) == 64
    spec = importlib.util.spec_from_file_location("drop_replicas_gemv_tc", path.with_suffix(".py"))
    companion = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(companion)  # type: ignore[union-attr]
    reference = lpir.compile(path, target="interp", **params)
    values = reference.specialize(None).params
    arguments = companion.make_inputs(values, np.random.default_rng(2))
    expected = copy.deepcopy(arguments)
    reference(*expected)
    lpir.compile(path, target=target, **params)(*arguments)
    rtol, atol, _ = stated_tolerance(companion, values, expected)
    np.testing.assert_allclose(arguments[3], expected[3], rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    ("layout", "factor", "expected"),
    [
        ("replicate(2).spatial(64,1)", 2, "spatial(64,1)"),
        ("replicate(128).local(128,1)", 2, "replicate(64).local(128,1)"),
        ("replicate(8).spatial(16).local(4)", 8, "spatial(16).local(4)"),
    ],
)
def test_layouts_lose_their_top_copies(layout, factor, expected):
    assert str(without_top_copies(parse_layout(layout), factor)) == expected


def test_only_copies_on_the_top_thread_bits_count():
    assert top_replication(parse_layout("replicate(4).spatial(32)")) == 4
    assert top_replication(parse_layout("spatial(32).replicate(4)")) == 1
    kernel = lpir.compile(NORMALIZE, target="cpu", N=16).ir("after:layout-selection")
    assert common_copies(parse(kernel).kernels[0]) == 8
