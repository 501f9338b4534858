"""What a kernel ported from Triton or numpy writes by habit gets a located error whose hint
names the lpir form (lpir/language/habits.py).

Each case was a bare syntax error ("unexpected '*'"), an unknown name or function with a
misleading nearest spelling (`fma`: did you mean 'max'?), or an attribute error without a
hint. Each is checked at its place (line, column, the span the caret marks), by its message and
hint, and, where the hint gives the code to write, by that code compiling in its place.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir
from lpir.errors import LpirError
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

HEAD = """kernel k[M = 64, N = 100, BN = 128](
    x: global f32[M, N], y: global f32[M, N], o: global f32[M],
) blocks(M) threads(128) {
    row = block.x
    cols = arange(BN)
    t = load(x[row, 0 :+ BN], mask = cols < N, other = -inf)
"""
TAIL = "    store(y[row, 0 :+ BN], u, mask = cols < N)\n}\n"
LINE = HEAD.count("\n") + 1  # the line each case's body is on
NO_FMA = "lpir has no fma"
INF = "lpir has no float(): infinity and NaN are the constants inf and nan"
TUPLE = "lpir has no tuple assignment"

# (body, the text the caret marks, message, hint, the body written as the hint says or None)
HABITS = [
    # Python's constants
    ("u = where(True, t, 0.0)", "True", "unknown name 'True'",
     "lpir's booleans are lowercase: write true", "u = where(true, t, 0.0)"),
    ("u = where(cols < N, t, float('-inf'))", "float('-inf')", INF, "write -inf",
     "u = where(cols < N, t, -inf)"),
    ("u = where(cols < N, t, -float(\"inf\"))", 'float("inf")', INF, "write inf",
     "u = where(cols < N, t, -inf)"),
    ("u = t + np.inf", "np.inf", "lpir has no modules: np.inf", "write inf", "u = t + inf"),
    ("u = t * math.pi", "math.pi", "lpir has no modules: math.pi", "write 3.141592653589793",
     "u = t * 3.141592653589793"),
    # conversions
    ("u = float(cast<i32>(t))", "float(cast<i32>(t))",
     "lpir has no float(): a conversion is cast<T>(x)", "write cast<f32>(cast<i32>(t))",
     "u = cast<f32>(cast<i32>(t))"),
    ("u = cast<f32>(int(t))", "int(t)", "lpir has no int(): a conversion is cast<T>(x)",
     "write cast<i32>(t) (it truncates toward zero, as int() does)",
     "u = cast<f32>(cast<i32>(t))"),
    ("u = t.to(f16) + 0.0", "t.to(f16)", "lpir has no methods: t.to(...)", "write cast<f16>(t)",
     "u = cast<f32>(cast<f16>(t))"),
    ("u = t.to(tl.int32, bitcast = True)", "t.to(tl.int32, bitcast = True)",
     "lpir has no methods: t.to(...)", "write view<i32>(t)", "u = t"),
    # functions lpir spells otherwise, whose nearest spelling misleads
    ("u = fma(t, t, t)", "fma(t, t, t)", NO_FMA, "write t * t + t", "u = t * t + t"),
    ("u = fma(t, t + 1.0, t)", "fma(t, t + 1.0, t)", NO_FMA, "write t * (t + 1.0) + t",
     "u = t * (t + 1.0) + t"),
    ("u = t + cast<f32>(program_id(0))", "program_id(0)",
     "lpir has no program_id: a block's index is block.x, block.y, block.z", "write block.x",
     "u = t + cast<f32>(block.x)"),
    ("u = t + cast<f32>(num_programs(axis = 0))", "num_programs(axis = 0)",
     "lpir has no num_programs: the grid is the kernel's blocks(...)",
     "write its count along x, M", "u = t + cast<f32>(M)"),
    ("u = log1p(t)", "log1p(t)", "lpir has no log1p", "write log(1.0 + t)", "u = log(1.0 + t)"),
    ("u = sigmoid(t)", "sigmoid(t)", "lpir has no sigmoid", "write 1.0 / (1.0 + exp(-t))",
     "u = 1.0 / (1.0 + exp(-t))"),
    ("u = pow(t, 2)", "pow(t, 2)", "lpir has no pow", "write t * t", "u = t * t"),
    ("u = pow(t, 2.5)", "pow(t, 2.5)", "lpir has no pow",
     "write exp2(2.5 * log2(t)) for t > 0, or products for a small integer power (t * t)",
     "u = exp2(2.5 * log2(t))"),
    ("u = maximum(t, 0.0)", "maximum(t, 0.0)", "lpir has no maximum: max(a, b) is elementwise",
     "write max(t, 0.0)", "u = max(t, 0.0)"),
    ("u = minimum(t, 1.0)", "minimum(t, 1.0)", "lpir has no minimum: min(a, b) is elementwise",
     "write min(t, 1.0)", "u = min(t, 1.0)"),
    ("u = tl.exp(t)", "tl.exp(t)", "lpir has no modules: tl.exp", "write exp(t)", "u = exp(t)"),
    ("u = np.maximum(t, 0.0)", "np.maximum(t, 0.0)", "lpir has no modules: np.maximum",
     "write max(t, 0.0)", "u = max(t, 0.0)"),
    ("u = tl.where(cols < N, t, float('-inf'))", "tl.where(cols < N, t, float('-inf'))",
     "lpir has no modules: tl.where", "write where(cols < N, t, -inf)",
     "u = where(cols < N, t, -inf)"),
    ("u = t + cast<f32>(tl.program_id(axis = 0))", "tl.program_id(axis = 0)",
     "lpir has no modules: tl.program_id", "write block.x", "u = t + cast<f32>(block.x)"),
    ("u = t + t.sum(axis = 0)", "t.sum(axis = 0)", "lpir has no methods: t.sum(...)",
     "write sum(t, axis = 0)", "u = t + sum(t, axis = 0)"),
    # operators
    ("u = t ** 2", "**", "lpir has no power operator **", "write t * t", "u = t * t"),
    ("u = (t + 1.0) ** 3", "**", "lpir has no power operator **",
     "write (t + 1.0) * (t + 1.0) * (t + 1.0)", "u = (t + 1.0) * (t + 1.0) * (t + 1.0)"),
    ("u = t * cast<f32>(row // 2)", "//", "lpir has no // operator",
     "write row / 2: / of integers truncates toward zero, as in C, where Python's // floors "
     "(-7 // 2 is -4, -7 / 2 is -3); of floats write floor(row / 2)",
     "u = t * cast<f32>(row / 2)"),
    ("u = t if row > 3 else -t", "t if", "lpir has no conditional expression a if c else b",
     "write where(row > 3, t, -t), for tiles and scalars alike", "u = where(row > 3, t, -t)"),
    # attributes
    ("u = reshape(t[None, :].T, BN)", "t[None, :].T",
     "a tile of type f32[1, 128] has no attribute 'T'", "write transpose(t[None, :])",
     "u = reshape(transpose(t[None, :]), BN)"),
    ("u = t + x.shape[1]", "x.shape", "the tensor x: global f32[64, 100] has no attribute 'shape'",
     "its shape is [64, 100]: write its sizes as the kernel names them (the header's "
     "parameters, the tile sizes it was built with)", "u = t + N"),
    # tile constructors written as Triton's and numpy's
    ("u = zeros([BN], dtype = f32)", "zeros([BN], dtype = f32)",
     "zeros is written zeros<T>[d, ...]", "write zeros<f32>[BN]", "u = zeros<f32>[BN]"),
    ("u = zeros((BN,), f32)", "zeros((BN,), f32)", "zeros is written zeros<T>[d, ...]",
     "write zeros<f32>[BN]", "u = zeros<f32>[BN]"),
    ("u = max(t, full([BN], -inf, f32))", "full([BN], -inf, f32)",
     "full is written full<T>[d, ...](value)", "write full<f32>[BN](-inf)",
     "u = max(t, full<f32>[BN](-inf))"),
    ("u = tl.full([BN], float('-inf'), tl.float32)", "tl.full([BN], float('-inf'), tl.float32)",
     "lpir has no modules: tl.full", "write full<f32>[BN](-inf)", "u = full<f32>[BN](-inf)"),
    # tuple assignment, and a reduction's position
    ("u, v = t, t", "u, v", TUPLE, "assign each name on its own: u = ...; v = ...",
     "u = t; v = t"),
    ("m, i = max(t, axis = 0, return_indices = true)", "m, i", TUPLE,
     "assign each: m = max(t, axis = 0) for the values, i = argmax(t, axis = 0) for their "
     "positions", "m = max(t, axis = 0); i = argmax(t, axis = 0); u = t + m + cast<f32>(i)"),
    ("u = t + max(t, axis = 0, return_indices = true)", "return_indices = true",
     "max has no argument 'return_indices'",
     "max(t, axis = 0) gives the values and argmax(t, axis = 0) their positions: call both",
     "u = t + max(t, axis = 0)"),
    ("w = t[None, :] * sum(t[None, :], axis = 1, keep_dims = true); u = reshape(w, BN)",
     "keep_dims = true", "sum has no argument 'keep_dims'",
     "the reduced axis is dropped: add it back with None in a subscript, s[:, None]",
     "w = t[None, :] * sum(t[None, :], axis = 1)[:, None]; u = reshape(w, BN)"),
    # scans and sorts: the axis named, numpy's accumulate a scan
    ("u = tl.cumsum(t, 0, reverse = True)", "tl.cumsum(t, 0, reverse = True)",
     "lpir has no modules: tl.cumsum",
     "write cumsum(t, axis = 0) (lpir scans forward only: a reversed cumsum is the line's "
     "sum - cumsum + t)", "u = cumsum(t, axis = 0)"),
    ("u = torch.sort(t, dim = 0, descending = True)", "torch.sort(t, dim = 0, descending = True)",
     "lpir has no modules: torch.sort", "write sort(t, axis = 0, descending = true)",
     "u = sort(t, axis = 0, descending = true)"),
    ("u = np.maximum.accumulate(t, axis = 0)", "np.maximum.accumulate(t, axis = 0)",
     "lpir has no modules: np.maximum.accumulate", "write cummax(t, axis = 0)",
     "u = cummax(t, axis = 0)"),
    # picking elements by position: numpy's, torch's and Triton's gathers are lpir's gather
    ("u = tl.gather(t, cols, 0)", "tl.gather(t, cols, 0)", "lpir has no modules: tl.gather",
     "write gather(t, cols, axis = 0)", "u = gather(t, cols, axis = 0)"),
    ("u = torch.gather(t, 0, cols)", "torch.gather(t, 0, cols)",
     "lpir has no modules: torch.gather", "write gather(t, cols, axis = 0)",
     "u = gather(t, cols, axis = 0)"),
    ("u = take_along_axis(t, cols, axis = 0)", "take_along_axis(t, cols, axis = 0)",
     "lpir has no take_along_axis", "write gather(t, cols, axis = 0)",
     "u = gather(t, cols, axis = 0)"),
    ("u = np.take(t, cols)", "np.take(t, cols)", "lpir has no modules: np.take",
     "write gather(t, cols[None, :], axis = k) for a 2-d t: the positions take t's rank, of "
     "size 1 (broadcast) along the other axes; of a 1-d tile, gather(t, cols)",
     "u = gather(t, cols)"),
    ("u = gather(t, cols, 0)", "0", "gather takes the axis as a keyword",
     "write gather(t, cols, axis = 0)", "u = gather(t, cols, axis = 0)"),
    # Triton's tl.max(x, 0) reduces axis 0; lpir's max(t, 0) is elementwise
    ("u = t; store(o[row], max(t, 0))", "max(t, 0)",
     "cannot store a tile of shape [128] into a slice of shape []",
     "max(t, 0) is elementwise, of each element and 0 (Triton's tl.max(x, 0) reduces axis 0): "
     "to reduce, write max(t, axis = 0)", "u = t; store(o[row], max(t, axis = 0))"),
]  # fmt: skip


def lower(body: str) -> None:
    specialize(parse_program(HEAD + f"    {body}\n" + TAIL, "m.lp"), None, {})


@pytest.mark.parametrize(("body", "marked", "message", "hint", "fixed"), HABITS)
def test_a_ported_habit_is_located_and_its_hint_compiles(
    body: str, marked: str, message: str, hint: str, fixed: str | None
) -> None:
    with pytest.raises(LpirError) as caught:
        lower(body)
    error = caught.value
    column = 5 + body.index(marked)
    assert error.location is not None, str(error)
    place = error.location
    assert (place.line, place.column, place.end_column) == (
        LINE,
        column,
        column + len(marked),
    ), str(error)
    assert str(error).startswith(f"m.lp:{LINE}:{column}: error: {message}\n"), str(error)
    assert f"\n    {' ' * (column - 1)}{'^' * len(marked)}\n" in str(error), str(error)
    assert error.hint == hint
    if fixed is not None:
        lower(fixed)


def test_a_real_typo_still_gets_the_nearest_spelling() -> None:
    with pytest.raises(LpirError) as caught:
        lower("u = exq(t)")
    assert caught.value.message == "unknown function 'exq'"
    assert caught.value.hint == "did you mean 'exp'?"


def test_a_def_may_take_a_name_the_habits_know() -> None:
    """A kernel that defines its own sigmoid (or names a value np) calls it."""
    source = "def sigmoid(v) {\n    return 1.0 / (1.0 + exp(-v))\n}\n" + HEAD
    source += "    np = 2.0\n    u = sigmoid(t) * np\n" + TAIL
    specialize(parse_program(source, "m.lp"), None, {})


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_max_of_a_float_tile_and_an_integer_is_elementwise(target: str) -> None:
    """docs/language.md: `max(t, 0)` is a ReLU (the 0 takes the tile's dtype), not Triton's
    reduction along axis 0. Exact: max picks one of its operands."""
    kernel = lpir.compile(
        "kernel relu[N = 100, BN = 128](x: global f32[N], y: global f32[N]) blocks(1) "
        "threads(128) {\n    m = arange(BN) < N\n"
        "    store(y[0 :+ BN], max(load(x[0 :+ BN], mask = m), 0), mask = m)\n}\n",
        target=target,
    )
    x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    y = np.zeros(100, np.float32)
    kernel(x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
