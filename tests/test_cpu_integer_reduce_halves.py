"""Integer reductions of a thread's lanes combine half with half (any order gives the same
bits), floats keep lpir.ir.order's tree of neighbours (their rounding depends on it).

LLVM's x86 code generation of the neighbours' tree over a select of 1000 lanes took 26 s (a
search's `min(where(c > t, arange(n), n))` held by one thread), of the halves about a second.
Checked: the shuffles each form emits, and the results at lane counts that are not powers of
two (an odd row carried) against numpy on the CPU."""

from __future__ import annotations

import re

import numpy as np
import pytest
from llvmlite import ir
from lpir.backends.llvm.vectors import Vectors

import lpir


def _shuffle_masks(any_order: bool, element: ir.Type) -> list[list[int]]:
    """The lane lists of each shuffle reduce_lanes emits for one group of 8 lanes."""
    module = ir.Module()
    vector_type = ir.VectorType(element, 8)
    function = ir.Function(module, ir.FunctionType(vector_type, [vector_type]), "f")
    builder = ir.IRBuilder(function.append_basic_block())
    add = builder.add if isinstance(element, ir.IntType) else builder.fadd
    reduced = Vectors(builder).reduce_lanes(function.args[0], 8, add, any_order=any_order)
    builder.ret(
        builder.shuffle_vector(
            reduced, reduced, ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8)
        )
    )
    lines = [line for line in str(module).splitlines() if "shufflevector" in line]
    masks = [re.findall(r"<\d+ x i32> <([^>]*)>", line)[-1] for line in lines[:-1]]
    return [[int(lane.split()[1]) for lane in mask.split(", ")] for mask in masks]


def test_integers_combine_half_with_half_and_floats_neighbours():
    assert _shuffle_masks(True, ir.IntType(32))[:2] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert _shuffle_masks(False, ir.FloatType())[:2] == [[0, 2, 4, 6], [1, 3, 5, 7]]


SEARCH = """
kernel search[N = 512](x: global f32[N], t: global f32[1], first: global i32[1],
    count: global i32[1], top: global i32[1]) blocks(1) threads(1) {
    c = load(x[0 :+ N])
    th = load(t[0])
    store(first[0], min(where(c > th, arange(N), N)))
    store(count[0], sum(cast<i32>(c > th)))
    store(top[0], max(cast<i32>(c * 1000.0)))
}
"""


@pytest.mark.parametrize("n", [7, 12, 100, 1000])
def test_a_threads_integer_reductions_at_any_lane_count(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    first, count, top = (np.zeros(1, np.int32) for _ in range(3))
    threshold = np.array([1.0], np.float32)
    lpir.compile(SEARCH, target="cpu", N=n)(x, threshold, first, count, top)
    above = np.flatnonzero(x > 1.0)
    assert first[0] == (above[0] if len(above) else n)
    assert count[0] == len(above)
    assert top[0] == (x * np.float32(1000.0)).astype(np.int32).max()


def test_the_cpu_takes_the_halves_for_integer_reductions_only():
    """The search's i32 min and sum pair no neighbours (even with odd lanes); its f32 sum
    does."""
    source = SEARCH.replace("max(cast<i32>(c * 1000.0))", "cast<i32>(sum(c))")
    llvm = lpir.compile(source, target="cpu", N=64).source("llvm")
    lines = [line for line in llvm.splitlines() if "shufflevector" in line]
    neighbours = [line for line in lines if "<i32 0, i32 2, i32 4" in line]
    assert neighbours, "the f32 sum's tree"
    assert not [line for line in neighbours if re.search(r"shufflevector <\d+ x i32>", line)]
