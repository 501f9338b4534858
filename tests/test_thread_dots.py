"""lower-to-threads' slot maps of a dot's steps (`thread_values.required_step_slot_maps`, from
`lpir.ir.layout_checks.step_slot_maps`, which the verifier also checks f32 and i8 dots with).

A dot's thread code multiplies, at each step of k, the slots of a and b that hold each
accumulator slot's row and column. The tables those maps come from (the accumulator's
coordinates, the operands' slot tables) are built once per dot, not once per step: compile time
was quadratic in k (attention at BKV = 256 spent 5.8 s in lower-to-threads, now 0.1 s).
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.passes import thread_dots
from lpir.passes.thread_values import required_slot_map, required_step_slot_maps

import lpir
from lpir import layout as L
from lpir.errors import VerifyError
from lpir.ir import layout_checks

DOT_KERNEL = """
kernel k[M = 16, N = 16, K = 16](a: global f32[M, K], b: global f32[K, N], c: global f32[M, N])
        blocks(1) threads(32) {
    store(c[:, :], dot(load(a[:, :]), load(b[:, :]), zeros<f32>[M, N]))
}
"""


def _per_step(acc: L.RegisterLayout, operand: L.RegisterLayout, dim: int, k: int):
    """The maps as one `required_slot_map` per step (how they were computed before)."""

    def project(coordinates: np.ndarray, step: int) -> np.ndarray:
        projected = coordinates.copy()
        projected[..., dim] = step
        return projected

    return [required_slot_map(acc, operand, lambda c, s=step: project(c, s)) for step in range(k)]


@pytest.fixture
def dot_layouts(monkeypatch):
    """dot_layouts(**params): the (accumulator, a, b) layouts and k of each dot that
    lower-to-threads lowers on the CPU ("threads" target) in `DOT_KERNEL` with `params`."""
    seen = []
    original = thread_dots.DotLowering._dot_slots

    def spy(self, op, k):
        a, b, acc = (thread_dots.tile_layout(v) for v in op.operands)
        seen.append((acc, a, b, k))
        return original(self, op, k)

    monkeypatch.setattr(thread_dots.DotLowering, "_dot_slots", spy)

    def compile_dot(**params):
        seen.clear()
        lpir.compile(DOT_KERNEL, target="threads", **params).specialize(None)
        assert seen, "the kernel's dot was not lowered as ordinary arithmetic"
        return list(seen)

    return compile_dot


@pytest.mark.parametrize(
    "params", [{}, {"K": 8}, {"K": 64}, {"M": 32, "N": 8, "K": 48}, {"M": 4, "N": 64, "K": 32}]
)
def test_step_maps_are_the_per_step_maps(dot_layouts, params):
    for acc, a, b, k in dot_layouts(**params):
        assert required_step_slot_maps(acc, a, 1, k) == _per_step(acc, a, 1, k)
        assert required_step_slot_maps(acc, b, 0, k) == _per_step(acc, b, 0, k)


def test_steps_looked_up_in_blocks_give_the_same_maps(dot_layouts, monkeypatch):
    ((acc, a, b, k),) = dot_layouts(K=64)
    whole = required_step_slot_maps(acc, a, 1, k), required_step_slot_maps(acc, b, 0, k)
    for lookups in (1, acc.size, 3 * acc.size + 1):
        monkeypatch.setattr(layout_checks, "_LOOKUPS_AT_ONCE", lookups)
        blocks = required_step_slot_maps(acc, a, 1, k), required_step_slot_maps(acc, b, 0, k)
        assert blocks == whole


def test_tables_are_built_once_per_dot_whatever_k(dot_layouts, monkeypatch):
    """The number of slot tables lowering builds does not grow with k (it was 2 per step)."""
    calls = []
    original = layout_checks.slot_table

    def counted(layout):
        calls.append(layout)
        return original(layout)

    monkeypatch.setattr(layout_checks, "slot_table", counted)
    built = {}
    for k in (16, 128):
        calls.clear()
        dot_layouts(K=k)
        built[k] = len(calls)
    assert built[16] == built[128], built


def test_an_operand_missing_a_step_is_refused():
    acc = L.local(1, 8).spatial(8, 4)  # [8, 32]: 4 threads a row, 8 columns each
    whole_rows = L.local(1, 64).spatial(8, 1).replicate(4)  # [8, 64]: each thread a whole row
    assert required_step_slot_maps(acc, whole_rows, 1, 64) == _per_step(acc, whole_rows, 1, 64)
    split_rows = L.local(1, 16).spatial(8, 4)  # [8, 64]: 16 of a row's 64 in each thread
    with pytest.raises(VerifyError, match="does not hold, in each thread"):
        required_step_slot_maps(acc, split_rows, 1, 64)
