"""A parameter used only inside a dimension expression (`bitmask: global i32[B, cdiv(V, 32)]`)
is not deduced from the argument (only a bare name is: an expression's size does not say which
value gave it), so it takes its default; the shape error then says so and asks for V=..., not
only "with ..., V = 32000" (found building a token bitmask from ids).
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir
from lpir.errors import ArgumentError

BITMASK = """
kernel build_bitmask_ids[B = 4, V = 32000, N = 256, BN = 128](
    ids: global i32[B, N],
    bitmask: global i32[B, cdiv(V, 32)],
) blocks(B, cdiv(N, BN)) threads(128) {
    b = block.x
    n0 = block.y * BN
    id = load(ids[b, n0 :+ BN], other = -1)
    atomic_or(bitmask[b, id / 32], cast<i32>(1) << (id % 32), mask = id >= 0)
}
"""


def _arguments(vocabulary: int):
    ids = np.full((3, 256), -1, np.int32)
    ids[:, :4] = [[0, 5, 33, vocabulary - 1]]
    return ids, np.zeros((3, (vocabulary + 31) // 32), np.int32)


def test_a_parameter_only_in_a_dimension_expression_is_named_with_its_default():
    kernel = lpir.compile(BITMASK, target="interp")
    with pytest.raises(ArgumentError) as error:
        kernel(*_arguments(1000))
    text = str(error.value)
    assert "argument bitmask must have shape (3, 1000), got (3, 32)" in text
    assert "V took its default (V = 32000), not deduced from bitmask's cdiv(V, 32)" in text
    assert "only a dimension written as a bare parameter name deduces it" in text
    assert "hint: pass V=... to lpir.compile" in text
    assert "bitmask: global i32[B, cdiv(V, 32)]" in text  # the declaration, with its caret


def test_given_the_parameter_the_call_runs():
    ids, bitmask = _arguments(1000)
    lpir.compile(BITMASK, target="interp", V=1000)(ids, bitmask)
    expected = (1 << 0) | (1 << 5)
    np.testing.assert_array_equal(bitmask[:, 0], expected)
    np.testing.assert_array_equal(bitmask[:, 1], 1 << 1)
    np.testing.assert_array_equal(bitmask[:, 31], 1 << 7)  # token 999: word 31, bit 7


def test_a_deduced_or_given_parameter_keeps_the_plain_message():
    source = """
    kernel pair[N = 64](x: global f32[N], y: global f32[cdiv(N, 32)]) blocks(1) threads(32) {
        store(y[0], load(x[0]))
    }
    """
    # N is deduced from x: y's size is just wrong
    with pytest.raises(ArgumentError) as error:
        lpir.compile(source, target="interp")(np.zeros(64, np.float32), np.zeros(5, np.float32))
    assert "must have shape (2,), got (5,)" in str(error.value)
    assert "hint: with N = 64" in str(error.value)
    assert "default" not in str(error.value)


def test_a_run_time_row_count_does_not_shift_the_dimensions():
    source = """
    kernel rows[V = 4096](x: global f32[M, cdiv(V, 32)], M: i32) blocks(M) threads(32) {
        store(x[block.x, 0], 1.0)
    }
    """
    with pytest.raises(ArgumentError) as error:
        lpir.compile(source, target="interp")(np.zeros((7, 3), np.float32), 7)
    text = str(error.value)
    assert "must have shape (M, 128), got (7, 3)" in text
    assert "V took its default (V = 4096), not deduced from x's cdiv(V, 32)" in text
