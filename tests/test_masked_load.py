"""`load(slice, mask = m, other = v)`: the elements where the bool tile `m` (broadcast to the
slice) is false are not read; they read as `other` (0 without it), as those past the edge do.

Every host target and the CUDA pipeline on the thread interpreter agree with numpy bit for bit:
run-time tails inside the tensor of every kind of dtype (sub-byte fields that share a byte with
masked ones read as `other`), masks broadcast from a row or a column, data-dependent masks,
shared tiles, `other` as a constant, a run-time scalar and a tile, scalar loads in a loop, loads
pipelined ahead in a loop, masked `dot` operands (no `ldmatrix` for them), constant masks.
Mistakes are located errors. The CUDA C compiles for sm_80 and sm_90.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available
from test_masked_store import PACKED, _args, _equal, _result, _values

import lpir
from lpir.errors import LpirError

TARGETS = [*HOST_TARGETS, "threads-cuda"]

# The first n - i elements of each block's tile, the rest `other` (1): a tail inside the tensor.
TAIL = """
kernel tail[T = f32, N = 100, BN = 32](x: global T[N], y: global T[N], n: i32)
    blocks(cdiv(N, BN)) threads(32) {
    i = block.x * BN
    store(y[i :+ BN], load(x[i :+ BN], mask = arange(BN) < n - i, other = 1))
}
"""

# Rows of run-time lengths (a column mask, other a run-time scalar), a row mask through a shared
# tile (other a column of the tile), and a data-dependent mask (other 0: the default).
ROWS = """
kernel rows[T = f32, M = 37, N = 45, BM = 16, BN = 32](
    x: global T[M, N], y: global T[M, N], z: global T[M, N], w: global T[M, N],
    lens: global i32[M], fill: T,
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(64) {
    r = block.x * BM
    c = block.y * BN
    l = load(lens[r :+ BM])
    in_length = arange(BN)[None, :] + c < l[:, None]
    store(y[r :+ BM, c :+ BN], load(x[r :+ BM, c :+ BN], mask = in_length, other = fill))
    s = shared<T>[BM, BN]
    store(s, load(x[r :+ BM, c :+ BN]))
    first = load(x[r :+ BM, c])
    store(z[r :+ BM, c :+ BN], load(s, mask = l[:, None] > 20, other = first[:, None]))
    marked = cast<f32>(load(w[r :+ BM, c :+ BN])) == 2.0
    store(w[r :+ BM, c :+ BN], load(x[r :+ BM, c :+ BN], mask = marked))
}
"""

# One element a step, read where the step is below a run-time count; constant masks.
SCALARS = """
kernel scalars[N = 40](x: global f32[N], y: global f32[N], z: global f32[N], n: i32)
    blocks(1) threads(32) {
    for i in range(0, N) {
        store(y[i], load(x[i], mask = i < n, other = -0.0) * 2.0)
    }
    every = load(x[0 :+ N], mask = true, other = 5.0)
    store(z[0 :+ N], every + load(x[0 :+ N], mask = false, other = 3.0))
}
"""

# A loop over k whose loads stop at a run-time length (pipelined ahead on the GPU), into a dot
# of f16 operands (mma on the GPU) whose b also passes through a shared tile read with a mask.
DOT = """
kernel dots[M = 32, N = 32, K = 96, BK = 32](
    a: global f16[M, K], b: global f16[K, N], c: global f32[M, N], klen: i32,
) blocks(1) threads(128) {
    acc = zeros<f32>[M, N]
    s = shared<f16>[BK, N]
    for k0 in range(0, K, BK) {
        ka = k0 + arange(BK) < klen
        at = load(a[:, k0 :+ BK], mask = ka[None, :])
        store(s, load(b[k0 :+ BK, :]))
        bt = load(s, mask = ka[:, None])
        acc = dot(at, bt, acc)
    }
    store(c[:, :], acc)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("dt", ["f32", "i8", "f16", *PACKED])
def test_a_run_time_tail_inside_the_tensor_reads_other(target: str, dt: str) -> None:
    rng = np.random.default_rng(1)
    x = _values(dt, 100, rng)
    kernel = lpir.compile(TAIL, target=target, T=dt)
    for n in (0, 1, 31, 33, 50, 100, 200, -5):
        args = _args(dt, [x, _values(dt, 100, rng)])
        kernel(*args, n)
        _equal(_result(dt, args[1]), np.where(np.arange(100) < n, x, 1), f"n = {n}")


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
@pytest.mark.parametrize("dt", ["f32", "i16", "u3"])
def test_row_column_shared_and_data_masks(target: str, dt: str) -> None:
    rng = np.random.default_rng(2)
    m, n = 37, 45
    x, y, z = (_values(dt, (m, n), rng) for _ in range(3))
    w = _values(dt, (m, n), rng)
    fill = 2
    w[::3] = fill  # a third of the rows read x where w holds the fill, the rest 0
    lens = rng.integers(-3, 60, m).astype(np.int32)
    wanted_w = np.where(w == fill, x, 0)
    args = _args(dt, [x, y, z, w])
    lpir.compile(ROWS, target=target, T=dt)(*args, lens, fill)
    _equal(_result(dt, args[1]), np.where(np.arange(n) < lens[:, None], x, fill), "column mask")
    first = x[:, (np.arange(n) // 32) * 32]  # each block's first column
    _equal(_result(dt, args[2]), np.where(lens[:, None] > 20, x, first), "row mask, shared")
    _equal(_result(dt, args[3]), wanted_w, "data mask")


# A tile overhanging the tensor's edges, and a row past them: other = fills every element not
# read, the masked ones and those outside the tensor alike.
EDGES = """
kernel edges[M = 5, N = 45, BN = 32](x: global f32[M, N], y: global f32[8, 64], r: i32)
    blocks(1) threads(32) {
    store(y[:, :], load(x[r - 2 :+ 8, 0 :+ 64], mask = (arange(64) % 5 != 0)[None, :],
                        other = -inf))
    store(y[0, 0 :+ 32], load(x[r + 9, 0 :+ 32], mask = true, other = 7.0))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_other_fills_what_lies_outside_the_tensor_too(target: str) -> None:
    x = np.arange(5 * 45, dtype=np.float32).reshape(5, 45)
    y = np.zeros((8, 64), np.float32)
    lpir.compile(EDGES, target=target)(x, y, 1)
    padded = np.full((8, 64), -np.inf, np.float32)
    padded[1:6, :45] = x  # rows r - 2 = -1 .. 6 of x
    wanted = np.where((np.arange(64) % 5 != 0)[None, :], padded, -np.inf)
    wanted[0, :32] = 7.0  # mask = true reads every element inside; the row r + 9 is not
    np.testing.assert_array_equal(y, wanted)


# A row maximum over tiles the index analysis proves inside the tensor: other = then costs
# what a where after the load does (its bounds test lowers to nothing).
INSIDE = """
kernel rowmax[M = 256, N = 1024, BM = 16, BN = 256](x: global f32[M, N], y: global f32[M], n: i32)
    blocks(M / BM) threads(128) {
    r0 = block.x * BM
    acc = zeros<f32>[BM, BN]
    for c in range(0, N, BN) {
        m = (arange(BN) < n - c)[None, :]
        acc = max(acc, LOAD)
    }
    store(y[r0 :+ BM], max(acc, axis = 1))
}
"""


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_other_inside_the_tensor_costs_what_a_where_does(target: str) -> None:
    other = INSIDE.replace("LOAD", "load(x[r0 :+ BM, c :+ BN], mask = m, other = -1.0)")
    where = INSIDE.replace("LOAD", "where(m, load(x[r0 :+ BM, c :+ BN], mask = m), -1.0)")
    ops = [
        sorted(re.findall(r"= (\w+)\(", lpir.compile(source, target=target).ir("final")))
        for source in (other, where)
    ]
    assert ops[0] == ops[1]
    assert "in_bounds" in lpir.compile(other, target="interp").ir("source")


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_scalar_masks_and_constant_masks(target: str) -> None:
    x = np.arange(40, dtype=np.float32) + 1
    y, z = np.full(40, 7.0, np.float32), np.zeros(40, np.float32)
    lpir.compile(SCALARS, target=target)(x, y, z, 17)
    wanted = np.where(np.arange(40) < 17, 2 * x, -0.0)
    np.testing.assert_array_equal(y, wanted)
    assert np.signbit(y[17:]).all(), "other = -0.0 keeps its sign"
    np.testing.assert_array_equal(z, x + 3.0)


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_masked_dot_operands_and_pipelined_loads(target: str) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-4, 5, (32, 96)).astype(np.float16)
    b = rng.integers(-4, 5, (96, 32)).astype(np.float16)
    kernel = lpir.compile(DOT, target=target)
    for klen in (0, 1, 40, 96):
        c = np.full((32, 32), np.nan, np.float32)
        kernel(a, b, c, klen)
        wanted = a[:, :klen].astype(np.float32) @ b[:klen].astype(np.float32)
        np.testing.assert_array_equal(c, wanted, err_msg=f"klen = {klen}")  # small integers


def _ldmatrix_sources(ir: str) -> set[str]:
    return {
        line.split("ldmatrix(")[1].split(",")[0] for line in ir.splitlines() if "ldmatrix(" in line
    }


def test_the_gpu_pipeline_keeps_the_masks() -> None:
    """On the GPU the loop's loads are issued a stage ahead and b's shared tile is read per
    element (ldmatrix reads every element: a masked read cannot be one; a's exchange between
    layouts still is)."""
    ir = lpir.compile(DOT, target="cuda").ir("final")
    assert "stages 2" in ir, "the masked global loads are still pipelined"
    assert all(s.startswith("%exchange") for s in _ldmatrix_sources(ir)), ir
    unmasked = lpir.compile(DOT.replace(", mask = ka[:, None]", ""), target="cuda")
    sources = _ldmatrix_sources(unmasked.ir("final"))
    assert any(not s.startswith("%exchange") for s in sources), "without the mask b's is one"


def test_the_ir_prints_the_mask_and_the_other_value() -> None:
    source = lpir.compile(TAIL, target="interp").ir("source")
    load = next(line for line in source.splitlines() if "load_global" in line)
    assert load.count("%") == 4, load  # the result, x, the offset, the mask
    assert "where(" in source, "other = 1 is a select after the load"
    lowered = lpir.compile(TAIL, target="cpu").ir("after:lower-to-threads")
    ld = next(line for line in lowered.splitlines() if " = ld(" in line)
    mask = ld.split(")")[0].split(",")[-1].strip()  # ld(%x, base, mask) {...}
    assert f"{mask} = and(" in lowered, "the edge mask and the user's mask are combined"


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("u = load(y[0 :+ 64], mask = t)", "a load's mask must be bool, not a tile"),
        ("u = load(y[0 :+ 64], mask = 1)", "a load's mask must be bool"),
        (
            "u = load(y[0 :+ 64], mask = arange(32) < 3)",
            "a mask of shape [32] does not fit a slice of shape [64]",
        ),
        ("u = load(y[0 :+ 64], mask = t > 0.0, other = 1)", None),
        ("u = load(y[0 :+ 64], mask = t > 0.0, other = t > 0.0)", "other = must be an f32 value"),
        ("u = load(y[0 :+ 64], mask = t > 0.0, other = cast<f16>(t))", "cast<f32>(...)"),
        (
            "u = load(y[0 :+ 64], mask = t > 0.0, other = arange(32))",
            "other = must be an f32 value",
        ),
        (
            "u = load(y[0 :+ 64], mask = t > 0.0, other = t[0 :+ 32])",
            None,  # (a tile slice is no expression of the language: a located parse error)
        ),
        ("u = load(y[0 :+ 64], mask = t > 0.0, other = 1e40)", "does not fit in f32"),
        ("u = load(y[0 :+ 64], where = t > 0.0)", "load has no argument 'where'"),
    ],
)
def test_mask_mistakes_are_located(statement: str, words: str | None) -> None:
    source = (
        "kernel k(x: global f32[64], y: global f32[64]) blocks(1) threads(32) {\n"
        f"    t = load(x[0 :+ 64])\n    {statement}\n    store(x[0 :+ 64], u)\n}}\n"
    )
    if words is None:  # a valid load, or another located mistake
        try:
            lpir.compile(source, target="interp").specialize(None)
        except LpirError as error:
            assert str(error).startswith("<source>:3:") and "^" in str(error), str(error)
        return
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    text = str(caught.value)
    assert words in text and text.startswith("<source>:3:") and "^" in text, text


@pytest.mark.parametrize("mask", ["true", "false", "c[:, None] > 0.0"])
def test_other_is_checked_whatever_the_mask(mask: str) -> None:
    """With mask = true other is never read, but a wrong one is still a mistake."""
    source = (
        "kernel k(x: global f32[64, 8], y: global f32[64, 8]) blocks(1) threads(32) {\n"
        "    c = load(x[0 :+ 64, 0])\n"
        f"    u = load(x[:, :], mask = {mask}, other = cast<i32>(c))\n"
        "    store(y[:, :], u)\n}\n"
    )
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    assert "other = must be an f32 value, the loaded dtype, not a tile of type i32" in str(
        caught.value
    )


def test_other_of_another_shape_is_located() -> None:
    source = (
        "kernel k(x: global f32[64, 8], y: global f32[64, 8]) blocks(1) threads(32) {\n"
        "    c = load(x[0 :+ 64, 0])\n"
        "    u = load(x[:, :], mask = c[:, None] > 0.0, other = c)\n"
        "    store(y[:, :], u)\n}\n"
    )
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    text = str(caught.value)
    assert "other = of shape [64] does not fit a slice of shape [64, 8]" in text, text
    assert text.startswith("<source>:3:") and "c[:, None]" in text, text


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_cuda_c_compiles(arch: str) -> None:
    for source, params in [(TAIL, {"T": "u3"}), (ROWS, {"T": "f4e2m1"}), (DOT, {})]:
        code = lpir.compile(source, target="cuda", **params).source("cuda")
        compile_with_nvcc(code, arch, "ptx", strict=True)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("dt", ["f32", "u3"])
def test_masked_loads_on_the_gpu(dt: str) -> None:
    rng = np.random.default_rng(4)
    x = _values(dt, 100, rng)
    args = _args(dt, [x, _values(dt, 100, rng)])
    lpir.compile(TAIL, target="cuda", T=dt)(*args, 45)
    _equal(_result(dt, args[1]), np.where(np.arange(100) < 45, x, 1), "tail")
    a = rng.integers(-4, 5, (32, 96)).astype(np.float16)
    b = rng.integers(-4, 5, (96, 32)).astype(np.float16)
    c = np.zeros((32, 32), np.float32)
    lpir.compile(DOT, target="cuda")(a, b, c, 40)
    np.testing.assert_array_equal(c, a[:, :40].astype(np.float32) @ b[:40].astype(np.float32))


@pytest.mark.parametrize("target", ["interp", "threads", "cpu"])
def test_other_without_a_mask_fills_the_elements_outside_the_tensor(target: str) -> None:
    """Ids of a run-time length read -1 past it (an id no gather reads), not 0 (row 0): a
    scatter through them would have overwritten row 0 (found by an explorer)."""
    source = """
kernel scatter_rows[BT = 4](
    rows: global f32[n, 8], slots: global i32[n], cache: global f32[16, 8], n: i32,
) blocks(cdiv(n, BT)) threads(32) {
    t0 = block.x * BT
    slot = load(slots[t0 :+ BT], other = -1)
    store(cache[slot, :], load(rows[t0 :+ BT, :]))
}
"""
    kernel = lpir.compile(source, target=target)
    rows = np.arange(8, dtype=np.float32)[None, :] + np.float32(100.0)
    cache = np.full((16, 8), 7.0, np.float32)
    kernel(rows, np.array([5], np.int32), cache, 1)
    expected = np.full((16, 8), 7.0, np.float32)
    expected[5] = rows[0]
    np.testing.assert_array_equal(cache, expected)
