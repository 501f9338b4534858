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
SWAP_01 = (
    "write transpose(v, 1, 0) for a rank-2 tile, transpose(v, 1, 0, 2) for rank 3: torch's "
    "transpose(u, 0, 1) swaps two dimensions, lpir's transpose takes the whole order of them, "
    "as numpy's"
)
# a reversed scan: the line reversed, scanned, reversed back (sum - cumsum + t cancels)
REVERSED_CUMSUM = (
    "write cumsum(t, axis = 0) (lpir has no reversed scan: a reversed cumsum is the cumsum of "
    "the line reversed, reversed back; of a 1-d t of n, with r = n - 1 - arange(n), "
    "gather(cumsum(gather(t, r)), r); along axis 1 of a 2-d t, with r = (n - 1 - "
    "arange(n))[None, :], gather(cumsum(gather(t, r, axis = 1), axis = 1), r, axis = 1))"
)
# an exclusive cumsum: the inclusive one moved one place (cumsum - t cancels)
EXCLUSIVE_CUMSUM = (
    "lpir's scans are inclusive: an exclusive cumsum is the inclusive one moved one place "
    "along the line; of a 1-d t of n, gather(cumsum(t), arange(n) - 1) (position -1 reads 0; "
    "exact, where cumsum(t) - t cancels in floats); along axis 1 of a 2-d t, "
    "gather(cumsum(t, axis = 1), (arange(n) - 1)[None, :], axis = 1)"
)
TOPK_LAST = (
    "write sort(t, axis = -1, descending = true)[0:8] for the values of a 1-d tile ([:, 0:8] "
    "of a 2-d one), argsort(...)[0:8] for their positions; for both, argsort once and "
    "gather(t, ids, axis = -1) the values at the positions ids (one sort network, not two). "
    "[0:8] must be an aligned block (8 dividing the line's length): otherwise cut the next "
    "power of two and store it with a mask"
)
TOPK_FIRST = (
    "write sort(t, axis = 0, descending = true)[0:8] for the values, argsort(...)[0:8] for "
    "their positions; for both, argsort once and gather(t, ids, axis = 0) the values at the "
    "positions ids (one sort network, not two). [0:8] must be an aligned block (8 dividing "
    "the line's length): otherwise cut the next power of two and store it with a mask"
)

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
     "lpir has no modules: tl.cumsum", REVERSED_CUMSUM,
     "r = BN - 1 - arange(BN); u = gather(cumsum(gather(t, r)), r)"),
    ("u = tl.cumsum(t, 0, exclusive = True)", "tl.cumsum(t, 0, exclusive = True)",
     "lpir has no modules: tl.cumsum", f"write cumsum(t, axis = 0) ({EXCLUSIVE_CUMSUM})",
     "u = gather(cumsum(t), arange(BN) - 1)"),
    ("u = torch.sort(t, dim = 0, descending = True)", "torch.sort(t, dim = 0, descending = True)",
     "lpir has no modules: torch.sort", "write sort(t, axis = 0, descending = true)",
     "u = sort(t, axis = 0, descending = true)"),
    ("u = np.maximum.accumulate(t, axis = 0)", "np.maximum.accumulate(t, axis = 0)",
     "lpir has no modules: np.maximum.accumulate", "write cummax(t, axis = 0) (cummax passes "
     "NaNs over as np.fmax.accumulate does, where np.maximum.accumulate carries the first NaN "
     "to the line's end)", "u = cummax(t, axis = 0)"),
    # Triton's positional descending and reverse, which were dropped or read as cumsum's
    ("u = tl.sort(t, 0, True)", "tl.sort(t, 0, True)", "lpir has no modules: tl.sort",
     "write sort(t, axis = 0, descending = true)", "u = sort(t, axis = 0, descending = true)"),
    ("u = tl.cumprod(t, 0, reverse = True)", "tl.cumprod(t, 0, reverse = True)",
     "lpir has no modules: tl.cumprod", "write cumprod(t, axis = 0) (lpir has no reversed scan: "
     "a reversed cumprod is the cumprod of the line reversed, reversed back; of a 1-d t of n, "
     "with r = n - 1 - arange(n), gather(cumprod(gather(t, r)), r); along axis 1 of a 2-d t, "
     "with r = (n - 1 - arange(n))[None, :], gather(cumprod(gather(t, r, axis = 1), "
     "axis = 1), r, axis = 1))",
     "r = BN - 1 - arange(BN); u = gather(cumprod(gather(t, r)), r)"),
    ("u = np.sort(t, 0, 'stable')", "np.sort(t, 0, 'stable')", "lpir has no modules: np.sort",
     "write sort(t, axis = 0) (lpir's sort is always stable, equal keys keeping their order)",
     "u = sort(t, axis = 0)"),
    # methods: the axis and the direction named as for the module's function
    ("u = t.cumsum(0)", "t.cumsum(0)", "lpir has no methods: t.cumsum(...)",
     "write cumsum(t, axis = 0)", "u = cumsum(t, axis = 0)"),
    ("u = t.sort(0, descending = True)", "t.sort(0, descending = True)",
     "lpir has no methods: t.sort(...)", "write sort(t, axis = 0, descending = true)",
     "u = sort(t, axis = 0, descending = true)"),
    ("u = cast<f32>(t.argsort(dim = 0))", "t.argsort(dim = 0)",
     "lpir has no methods: t.argsort(...)", "write argsort(t, axis = 0)",
     "u = cast<f32>(argsort(t, axis = 0))"),
    # top-k: a sort cut to its first k
    ("u = t + sum(tl.topk(t, 8))", "tl.topk(t, 8)", "lpir has no modules: tl.topk", TOPK_LAST,
     "u = t + sum(sort(t, axis = -1, descending = true)[0:8])"),
    ("u = t + sum(torch.topk(t, 8, dim = 0))", "torch.topk(t, 8, dim = 0)",
     "lpir has no modules: torch.topk", TOPK_FIRST,
     "u = t + sum(sort(t, axis = 0, descending = true)[0:8])"),
    # lpir's own scans and sorts called with numpy's, torch's and Triton's arguments
    ("u = cumsum(t, 0)", "cumsum(t, 0)", "cumsum takes 1 argument, got 2",
     "axis is a keyword: write cumsum(t, axis = 0)", "u = cumsum(t, axis = 0)"),
    ("u = sort(t, 0, True)", "sort(t, 0, True)", "sort takes 1 argument, got 3",
     "axis and descending are keywords: write sort(t, axis = 0, descending = true)",
     "u = sort(t, axis = 0, descending = true)"),
    ("u = cumsum(t, 0, true)", "cumsum(t, 0, true)", "cumsum takes 1 argument, got 3",
     REVERSED_CUMSUM, "r = BN - 1 - arange(BN); u = gather(cumsum(gather(t, r)), r)"),
    ("u = load(x[row, 0 :+ BN], cols < N, 0.0)", "load(x[row, 0 :+ BN], cols < N, 0.0)",
     "load takes 1 argument, got 3", "mask and other are keywords: write load(x[row, 0 :+ BN], "
     "mask = cols < N, other = 0.0)", "u = load(x[row, 0 :+ BN], mask = cols < N, other = 0.0)"),
    ("u = sort(t, dim = 0)", "dim = 0", "sort has no argument 'dim'",
     "lpir calls it axis: write axis = 0", "u = sort(t, axis = 0)"),
    ("u = cast<f32>(argsort(t, desc = true))", "desc = true", "argsort has no argument 'desc'",
     "write descending = true", "u = cast<f32>(argsort(t, descending = true))"),
    ("u = sort(t, reverse = true)", "reverse = true", "sort has no argument 'reverse'",
     "write descending = true", "u = sort(t, descending = true)"),
    ("u = sort(t, stable = true)", "stable = true", "sort has no argument 'stable'",
     "lpir's sort is always stable, equal keys keeping their order: leave stable out",
     "u = sort(t)"),
    ("u = cumsum(t, exclusive = true)", "exclusive = true", "cumsum has no argument 'exclusive'",
     EXCLUSIVE_CUMSUM, "u = gather(cumsum(t), arange(BN) - 1)"),
    ("u = cumprod(t, exclusive = true)", "exclusive = true",
     "cumprod has no argument 'exclusive'", "lpir's scans are inclusive: an exclusive cumprod "
     "is the inclusive one moved one place along the line; of a 1-d t of n, gather(cumprod(t), "
     "arange(n) - 1, other = v) with v 1.0 (1 for integers); along axis 1 of a 2-d t, "
     "gather(cumprod(t, axis = 1), (arange(n) - 1)[None, :], axis = 1, other = v)",
     "u = gather(cumprod(t), arange(BN) - 1, other = 1.0)"),
    ("u = cast<f32>(np.cumsum(cast<i32>(t)))", "np.cumsum(cast<i32>(t))",
     "lpir has no modules: np.cumsum", "write cumsum(cast<i32>(t)) (for a 1-d tile; numpy's "
     "cumsum without an axis flattens: cumsum(reshape(cast<i32>(t), -1)), or name the axis)",
     "u = cast<f32>(cumsum(cast<i32>(t)))"),
    ("u = np.sort(t)", "np.sort(t)", "lpir has no modules: np.sort",
     "write sort(t, axis = -1)", "u = sort(t, axis = -1)"),
    ("u = torch.flip(t, (0,))", "torch.flip(t, (0,))", "lpir has no modules: torch.flip",
     "write gather(t, n - 1 - arange(n)) for a 1-d t of n (along axis 1 of a 2-d tile: "
     "gather(t, (n - 1 - arange(n))[None, :], axis = 1))",
     "u = gather(t, BN - 1 - arange(BN))"),
    ("u = cummax(t, reverse = true)", "reverse = true", "cummax has no argument 'reverse'",
     "lpir has no reversed scan: a reversed cummax is the cummax of the line reversed, "
     "reversed back; of a 1-d t of n, with r = n - 1 - arange(n), gather(cummax(gather(t, r)), "
     "r); along axis 1 of a 2-d t, with r = (n - 1 - arange(n))[None, :], "
     "gather(cummax(gather(t, r, axis = 1), axis = 1), r, axis = 1)",
     "r = BN - 1 - arange(BN); u = gather(cummax(gather(t, r)), r)"),
    ("m = reshape(t, 8, 16); r = (15 - arange(16))[None, :]; "
     "u = reshape(cumsum(m, axis = 1, reverse = true), BN)", "reverse = true",
     "cumsum has no argument 'reverse'", REVERSED_CUMSUM.split(" (", 1)[1][:-1],
     "m = reshape(t, 8, 16); r = (15 - arange(16))[None, :]; "
     "u = reshape(gather(cumsum(gather(m, r, axis = 1), axis = 1), r, axis = 1), BN)"),
    # numpy's stepped slices: a gather of the positions
    ("u = t[::-1]", "t[::-1]", "a subscript has no step: t[::-1]",
     "write gather(t, n - 1 - arange(n)) for a 1-d tile of n (numpy's t[::-1] of a 2-d one "
     "steps over its rows: gather(t, (n - 1 - arange(n))[:, None], axis = 0))",
     "u = gather(t, BN - 1 - arange(BN))"),
    ("m = reshape(t, 8, 16); u = reshape(m[:, ::-1], BN)", "m[:, ::-1]",
     "a subscript has no step: m[:, ::-1]", "write gather(m, (n - 1 - arange(n))[None, :], "
     "axis = 1), n the length of axis 1",
     "m = reshape(t, 8, 16); u = reshape(gather(m, (16 - 1 - arange(16))[None, :], axis = 1), "
     "BN)"),
    ("u = reshape(stack(t[::2], t[1::2]), BN)", "t[::2]", "a subscript has no step: t[::2]",
     "write gather(t, 2 * arange(n / 2)) for a 1-d tile of n (numpy's t[::2] of a 2-d one "
     "steps over its rows: gather(t, (2 * arange(n / 2))[:, None], axis = 0))",
     "u = reshape(stack(gather(t, 2 * arange(BN / 2)), gather(t, 1 + 2 * arange(BN / 2))), "
     "BN)"),
    ("u = sort(t, descending = N)", "N", "descending must be true or false, but this is the "
     "constant 100", "write descending = N != 0", "u = sort(t, descending = N != 0)"),
    # transposes: torch's swaps two dimensions, lpir's (numpy's) takes the whole order
    ("v = reshape(t, 8, 16); u = reshape(v.transpose(0, 1), BN)", "v.transpose(0, 1)",
     "lpir has no methods: v.transpose(...)", SWAP_01,
     "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
    ("v = reshape(t, 8, 16); u = reshape(torch.transpose(v, 0, 1), BN)",
     "torch.transpose(v, 0, 1)", "lpir has no modules: torch.transpose", SWAP_01,
     "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
    ("w = reshape(t, 2, 4, 16); u = reshape(w.transpose(-1, -2), BN)", "w.transpose(-1, -2)",
     "lpir has no methods: w.transpose(...)", "write transpose(w, 1, 0) for a rank-2 tile, "
     "transpose(w, 0, 2, 1) for rank 3: torch's transpose(u, -1, -2) swaps two dimensions, "
     "lpir's transpose takes the whole order of them, as numpy's",
     "w = reshape(t, 2, 4, 16); u = reshape(transpose(w, 0, 2, 1), BN)"),
    ("v = reshape(t, 8, 16); u = reshape(swapaxes(v, 0, 1), BN)", "swapaxes(v, 0, 1)",
     "lpir has no swapaxes", SWAP_01.replace("torch's transpose(u", "swapaxes(u"),
     "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
    ("v = reshape(t, 8, 16); u = reshape(v.t(), BN)", "v.t()", "lpir has no methods: v.t()",
     "write transpose(v)", "v = reshape(t, 8, 16); u = reshape(transpose(v), BN)"),
    ("w = reshape(t, 2, 4, 16); u = reshape(w.mT, BN)", "w.mT",
     "a tile of type f32[2, 4, 16] has no attribute 'mT'",
     "write transpose(w, 0, 2, 1): mT swaps the last two dimensions",
     "w = reshape(t, 2, 4, 16); u = reshape(transpose(w, 0, 2, 1), BN)"),
    ("w = reshape(t, 2, 4, 16); u = reshape(w.permute(0, 2, 1), BN)", "w.permute(0, 2, 1)",
     "lpir has no methods: w.permute(...)", "write transpose(w, 0, 2, 1)",
     "w = reshape(t, 2, 4, 16); u = reshape(transpose(w, 0, 2, 1), BN)"),
    # an order as a tuple or list: its dimensions are the arguments
    ("v = reshape(t, 8, 16); u = reshape(np.transpose(v, (1, 0)), BN)",
     "np.transpose(v, (1, 0))", "lpir has no modules: np.transpose", "write transpose(v, 1, 0)",
     "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
    ("w = reshape(t, 2, 4, 16); u = reshape(tl.trans(w, (0, 2, 1)), BN)",
     "tl.trans(w, (0, 2, 1))", "lpir has no modules: tl.trans", "write transpose(w, 0, 2, 1)",
     "w = reshape(t, 2, 4, 16); u = reshape(transpose(w, 0, 2, 1), BN)"),
    ("w = reshape(t, 2, 4, 16); u = reshape(tl.permute(w, (0, 2, 1)), BN)",
     "tl.permute(w, (0, 2, 1))", "lpir has no modules: tl.permute",
     "write transpose(w, 0, 2, 1)",
     "w = reshape(t, 2, 4, 16); u = reshape(transpose(w, 0, 2, 1), BN)"),
    ("v = reshape(t, 8, 16); u = reshape(transpose(v, [1, 0]), BN)", "[1, 0]",
     "transpose takes the order of dimensions as its arguments, not a list",
     "write transpose(v, 1, 0)", "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
    ("v = reshape(t, 8, 16); u = reshape(transpose(v, axes = (1, 0)), BN)", "axes = (1, 0)",
     "transpose takes the order of dimensions as its arguments, not a tuple",
     "write transpose(v, 1, 0)", "v = reshape(t, 8, 16); u = reshape(transpose(v, 1, 0), BN)"),
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


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_cummax_is_numpys_fmax_accumulate(target: str) -> None:
    """The hint for np.maximum.accumulate and docs/language.md: cummax and cummin pass NaNs
    over as np.fmax.accumulate does (a leading NaN is the first result, a later one changes
    nothing), where np.maximum.accumulate carries the first NaN to the line's end."""
    kernel = lpir.compile(
        "kernel k[N = 16](x: global f32[N], c: global f32[N], d: global f32[N]) blocks(1) "
        "threads(4) {\n    t = load(x[:])\n    store(c[:], cummax(t))\n"
        "    store(d[:], cummin(t))\n}\n",
        target=target,
    )
    x = np.array([np.nan, 1, 0, -0.0, 2, np.nan, 1, -np.inf, np.inf, 0, 1, np.nan, 3, -1, 1, 0])
    x = x.astype(np.float32)
    c, d = np.zeros(16, np.float32), np.zeros(16, np.float32)
    kernel(x, c, d)
    np.testing.assert_array_equal(c, np.fmax.accumulate(x))
    np.testing.assert_array_equal(d, np.fmin.accumulate(x))
    assert not np.array_equal(c, np.maximum.accumulate(x), equal_nan=True)
