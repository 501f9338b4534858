"""`argmax(t, axis)` and `argmin(t, axis)`: the i32 position of the first largest (smallest)
element along an axis, or in row-major order without one (numpy's flat index); NaNs are passed
over as `max` and `min` pass them over, and a line of NaNs gives 0. Checked on every host
target against numpy for float, integer and bool tiles, with ties and NaNs, along each axis of
rank-1, -2 and -3 tiles; plus the float constants `inf` and `nan`, examples/greedy.lp (a
vocabulary's largest logit, chunk by chunk, past an edge) and the errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS
from located_errors import assert_located_error

import lpir
from lpir.errors import LpirError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGETS = [*HOST_TARGETS, "threads-cuda"]

NUMPY = {
    "f32": np.float32,
    "f16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "i32": np.int32,
    "i8": np.int8,
    "u8": np.uint8,
}

# one block: a [4, 6, 8] tile's positions along `AXIS`, and its flat position
RANK_3 = """
kernel positions[T = f32, AXIS = 1, A = 4, B = 6, C = 8, D0 = 4, D1 = 8](
    x: global T[A, B, C], first_max: global i32[D0, D1], first_min: global i32[D0, D1],
    flat: global i32[2],
) blocks(1) threads(64) {
    t = load(x[:, :, :])
    store(first_max[:, :], argmax(t, axis = AXIS))
    store(first_min[:, :], argmin(t, axis = AXIS - 3))
    store(flat[0], argmax(t))
    store(flat[1], argmin(t))
}
"""

_REMAINING = {0: (6, 8), 1: (4, 8), 2: (4, 6)}


def _masked(x: np.ndarray, fill: float) -> np.ndarray:
    """Float values as numpy's argmax should see them: NaNs replaced by `fill` (-inf for
    argmax, inf for argmin), so that they are passed over."""
    values = x.astype(np.float64)
    return np.where(np.isnan(values), fill, values)


def _tile_with_ties(name: str, rng) -> np.ndarray:
    """Values on a grid of four steps (many equal largest and smallest elements in each line),
    a NaN in some lines and one line of NaNs only, for floats."""
    steps = rng.integers(0, 4, size=(4, 6, 8))
    if name == "bool":
        return steps > 2
    if name in ("i32", "i8"):
        return (steps - 2).astype(NUMPY[name])
    if name == "u8":
        return (steps * 60).astype(np.uint8)
    x = ((steps - 1.5) * 0.5).astype(NUMPY[name])
    x[0, 2, 3] = x[1, 0, 0] = np.nan
    x[2, :, 5] = np.nan  # a line along axis 1 of NaNs only
    return x


def _arrays(name: str, axis: int, rng):
    x = _tile_with_ties(name, rng)
    if name == "bool":
        x = lpir.pack(x, "bool")
    shape = _REMAINING[axis]
    return [x, np.full(shape, -1, np.int32), np.full(shape, -1, np.int32), np.full(2, -1, np.int32)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["f32", "f16", "bf16", "i32", "i8", "u8", "bool"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_first_position_of_the_extreme_along_each_axis(target, name, axis):
    arrays = _arrays(name, axis, np.random.default_rng(axis))
    d0, d1 = _REMAINING[axis]
    kernel = lpir.compile(RANK_3, target=target, T=name, AXIS=axis, D0=d0, D1=d1)
    kernel(*arrays)
    x = lpir.unpack(arrays[0]) if name == "bool" else arrays[0]
    high, low = _masked(x, -np.inf), _masked(x, np.inf)
    np.testing.assert_array_equal(arrays[1], np.argmax(high, axis=axis))
    np.testing.assert_array_equal(arrays[2], np.argmin(low, axis=axis))
    np.testing.assert_array_equal(arrays[3], [np.argmax(high), np.argmin(low)])


def test_a_line_of_nans_gives_zero():
    x = np.full((4, 6, 8), np.nan, np.float32)
    x[1, 3, 2] = 7.0
    arrays = [x, *(np.full((4, 8), -1, np.int32) for _ in range(2)), np.full(2, -1, np.int32)]
    lpir.compile(RANK_3, target="cpu")(*arrays)
    expected = np.zeros((4, 8), np.int32)
    expected[1, 2] = 3
    np.testing.assert_array_equal(arrays[1], expected)
    np.testing.assert_array_equal(arrays[2], expected)
    np.testing.assert_array_equal(arrays[3], [1 * 48 + 3 * 8 + 2] * 2)


# rows of a tensor whose edges the tile overhangs: the columns past N are masked with -inf
# (they read as 0, which could be a row's largest value)
OVERHANG = """
kernel rows[M = 37, N = 100, BM = 8, BN = 128](x: global f32[M, N], top: global i32[M])
    blocks(cdiv(M, BM)) threads(128) {
    t = load(x[block.x * BM :+ BM, 0 :+ BN])
    store(top[block.x * BM :+ BM], argmax(where(arange(BN)[None, :] < N, t, -inf), axis = 1))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_argmax_of_rows_past_the_tensors_edges(target):
    x = -np.abs(np.random.default_rng(2).standard_normal((37, 100))).astype(np.float32) - 1
    top = np.full(37, -1, np.int32)
    lpir.compile(OVERHANG, target=target)(x, top)
    np.testing.assert_array_equal(top, np.argmax(x, axis=1))


def _greedy():
    spec = importlib.util.spec_from_file_location("example_greedy", EXAMPLES / "greedy.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "params",
    [
        {"M": 3, "V": 5000, "BV": 512},
        {"M": 5, "V": 1000, "BV": 256, "T": "f16"},
        {"M": 3, "V": 3001, "BM": 2, "BV": 1024, "T": "bf16"},
    ],
)
def test_greedy_example_picks_the_first_largest_logit(target, params):
    greedy = _greedy()
    kernel = lpir.compile(EXAMPLES / "greedy.lp", target=target, **params)
    values = kernel.specialize(None).params
    logits, ids = greedy.make_inputs(values, np.random.default_rng(len(params)))
    kernel(logits, ids)
    np.testing.assert_array_equal(ids, greedy.reference(values, [logits, ids])[1])


CONSTANTS = """
kernel constants[N = 100](x: global f32[N], y: global f32[N], z: global f32[N])
    blocks(1) threads(32) {
    t = load(x[0 :+ 128])
    store(y[0 :+ 128], clamp(t * inf, -inf, 1e300 * 1e300))
    store(z[0 :+ 128], where(t > 0.0, nan, t - inf * 0.0))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_inf_and_nan_constants(target):
    x = np.random.default_rng(4).standard_normal(100).astype(np.float32)
    x[7] = 0.0
    y, z = np.zeros_like(x), np.zeros_like(x)
    with np.errstate(invalid="ignore"):
        lpir.compile(CONSTANTS, target=target)(x, y, z)
        # 0 * inf is NaN, which clamp's max passes over: -inf
        np.testing.assert_array_equal(y, np.fmax(x * np.float32(np.inf), -np.inf))
    assert np.isnan(z).all()  # t - nan, and nan where t > 0


def test_a_kernels_own_inf_hides_the_constant():
    source = """
kernel own[](y: global f32[4]) blocks(1) threads(32) {
    inf = 2.0
    store(y[0 :+ 4], full<f32>[4](inf))
}
"""
    y = np.zeros(4, np.float32)
    lpir.compile(source, target="cpu")(y)
    np.testing.assert_array_equal(y, 2.0)


def test_an_integer_tile_cannot_hold_inf():
    source = """
kernel bad[](x: global i32[8], y: global i32[8]) blocks(1) threads(32) {
    store(y[0 :+ 8], max(load(x[0 :+ 8]), -inf))
}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":3:" in text and "float constant -inf" in text and "^" in text, text


@pytest.mark.parametrize(
    ("expression", "column", "message", "hint"),
    [
        ("argmax(N)", 16, "argmax reduces a tile, but this is", None),
        ("argmin(t, axis = 2)", 26, "axis 2 is out of range for a rank-2 tile", "between 0 and 1"),
        ("argmax(t, 1)", 9, "argmax takes 1 argument, got 2", "write argmax(t, axis = 1)"),
        ("argmax(t, dim = 1)", 19, "argmax has no argument 'dim'", None),
        ("argmax(view<u4>(t))", 9, "is not defined on u4", "cast it to a compute type"),
    ],
)
def test_argmax_errors_are_located(expression, column, message, hint):
    assert_located_error(expression, column, message, hint)


def test_argmax_costs_two_reductions_a_line():
    tiles = lpir.compile(RANK_3, target="cpu").ir("after:cse")
    # argmax and argmin along an axis and over the whole tile: an extreme, then a least position
    assert tiles.count('kind = "max"') == 2  # argmax's extremes
    assert tiles.count('kind = "min"') == 2 + 4  # argmin's, and the four least positions


def test_max_and_min_of_constants_pass_over_nan_as_at_run_time():
    source = """
kernel folded[](x: global f32[4], y: global f32[4], z: global f32[4]) blocks(1) threads(32) {
    store(y[0 :+ 4], full<f32>[4](max(nan, 2.0) + min(3.0, nan)))
    store(z[0 :+ 4], max(load(x[0 :+ 4]), 2.0) + min(3.0, load(x[0 :+ 4])))
}
"""
    x = np.full(4, np.nan, np.float32)
    y, z = np.zeros(4, np.float32), np.zeros(4, np.float32)
    lpir.compile(source, target="cpu")(x, y, z)
    np.testing.assert_array_equal(y, 5.0)
    np.testing.assert_array_equal(z, y)  # the same at run time
