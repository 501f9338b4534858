"""`sort(t, axis = k, descending = false)` and `argsort`: each line of a tile axis sorted,
stably (equal keys, -0.0 and 0.0 among them, keep their order), NaN above every number (last
ascending, first descending), as numpy's stable sort and torch's sort order them.

A sort runs within each thread (`passes/thread_sorts.py`, a bitonic network with ties broken
by position); where the layout splits the axis over threads, layout-selection converts the
operand to one where each thread holds whole lines. Checked on every target against numpy,
plus the GPU's limit, the errors and the IR text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.backends.cuda.compiler import find_nvcc

import lpir
from lpir.errors import LpirError, VerifyError
from lpir.ir.ops import SortOp
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.types import as_tile
from lpir.ir.verifier import verify

TARGETS = ["interp", "threads", "threads-cuda", "cpu"]

ROWS = """
kernel sort_rows[T = f32, M = 37, BM = 16, BN = 32, DOWN = 0](
    x: global T[M, BN], y: global T[M, BN], p: global i32[M, BN]
) blocks(cdiv(M, BM)) threads(64) {
    r = block.x * BM
    t = load(x[r :+ BM, 0 :+ BN])
    store(y[r :+ BM, 0 :+ BN], sort(t, axis = AXIS, descending = DOWN == 1))
    store(p[r :+ BM, 0 :+ BN], argsort(t, axis = AXIS, descending = DOWN == 1))
}
"""


def stable_order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """numpy's stable argsort with NaN above every number, either way."""
    x = np.moveaxis(x, axis, -1)
    wide = x.astype(np.float64)
    nan = np.isnan(wide)
    key = np.where(nan, 0.0, -wide if descending else wide)
    positions = np.broadcast_to(np.arange(x.shape[-1]), x.shape)
    first = ~nan if descending else nan  # the lexsort key of least weight goes first
    order = np.lexsort((positions, key, first), axis=-1)
    return np.moveaxis(order, -1, axis)


def _keys(dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Few distinct values (many ties), with NaNs and signed zeros among the floats."""
    if dtype == "bool":
        return rng.random((37, 32)) < 0.5
    values = rng.integers(-4, 5, size=(37, 32))
    if dtype in ("i32", "u8"):
        return values.astype({"i32": np.int32, "u8": np.uint8}[dtype])
    x = values.astype({"f32": np.float32, "f16": np.float16}[dtype])
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.random(x.shape) < 0.08] = -0.0
    x[0, :3] = [np.inf, -np.inf, np.nan]
    return x


def _tiles(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """stable_order of each tile of 16 rows (the kernel's blocks)."""
    return np.concatenate(
        [stable_order(x[i : i + 16], axis, descending) for i in range(0, len(x), 16)]
    )


# (the thread interpreter runs the cpu's thread IR: f32 and i32 cover it there)
@pytest.mark.parametrize(
    "target, dtype",
    [
        (target, dtype)
        for dtype in ("f32", "f16", "i32", "u8", "bool")
        for target in TARGETS
        if target != "threads" or dtype in ("f32", "i32")
    ],
)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("axis", [1, 0])
def test_sorts_along_either_axis_stably(target, descending, axis, dtype):
    x = _keys(dtype, np.random.default_rng(11))
    if axis == 0:  # 37 rows: the last block's 11 rows are padded with zeros past the edge
        x = x[:32]
    y, p = np.zeros_like(x), np.zeros(x.shape, np.int32)
    source = ROWS.replace("AXIS", str(axis))
    kernel = lpir.compile(source, target=target, T=dtype, DOWN=int(descending), M=len(x))
    if dtype == "bool":  # lpir's bool tensors are packed, 8 to a byte
        packed = lpir.pack(np.zeros_like(x), "bool")
        kernel(lpir.pack(x, "bool"), packed, p)
        y = lpir.unpack(packed)
    else:
        kernel(x, y, p)
    want = _tiles(x, axis, descending)
    np.testing.assert_array_equal(p, want)  # the positions: stability included
    sorted_x = np.concatenate(
        [np.take_along_axis(x[i : i + 16], want[i : i + 16], axis) for i in range(0, len(x), 16)]
    )
    assert np.array_equal(y, sorted_x, equal_nan=dtype in ("f32", "f16"))
    if dtype in ("f32", "f16"):  # -0.0 and 0.0 where they were
        np.testing.assert_array_equal(np.signbit(y), np.signbit(sorted_x))


@pytest.mark.parametrize(
    "target, n, b", [("interp", 200, 256), ("cpu", 200, 256), ("threads-cuda", 50, 64)]
)
def test_top_k_of_a_vector_padded_past_its_edge(target, n, b):
    """A rank-1 tile needs no axis; past the tensor's edge the load pads with -inf, which a
    descending sort puts last."""
    source = """
kernel top[N = 200, B = 256, K = 8](x: global f32[N], ids: global i32[K], v: global f32[K])
    blocks(1) threads(128) {
    t = load(x[0 :+ B], mask = arange(B) < N, other = -inf)
    order = argsort(t, descending = true)
    store(ids[0 :+ K], order[0:K])
    store(v[0 :+ K], sort(t, descending = true)[0:K])
}
"""
    x = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    ids, v = np.zeros(8, np.int32), np.zeros(8, np.float32)
    lpir.compile(source, target=target, N=n, B=b)(x, ids, v)  # (the GPU sorts <= 64 a thread)
    want = np.argsort(-x, kind="stable")[:8]
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_array_equal(v, x[want])


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_cuda_code_of_a_sort_of_short_lines_compiles():
    kernel = lpir.compile(ROWS.replace("AXIS", "1"), target="cuda", M=64, BM=64)
    threads = kernel.ir("after:lower-to-threads")
    assert "= sort(" not in threads
    assert ".entry" in kernel.source("ptx")


def test_a_gpu_sort_of_many_elements_a_thread_is_a_located_error():
    source = """
kernel long[N = 8192](x: global f32[N], y: global f32[N]) blocks(1) threads(128) {
    store(y[0 :+ N], sort(load(x[0 :+ N])))
}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cuda").source("cuda")
    text = str(caught.value)
    assert ":3:22:" in text and "64 elements (a run of 64 of a line of 8192)" in text
    assert "so 1024 threads a line: threads(1024) for this line; or sort on the cpu" in text


@pytest.mark.parametrize("target", ["interp", "threads", "threads-cuda", "cpu"])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("length, threads", [(1024, 128), (256, 64), (64, 32), (128, 96)])
def test_lines_split_over_threads_sort_through_shared_memory(target, descending, length, threads):
    """Each thread holds a run of each line; the steps whose partners lie in another run
    exchange through shared memory. Many ties (stability across threads), NaNs, -0.0, and a
    thread count that is not a power of two (96: runs over 32 threads, 3 lines a block)."""
    lines = 3 if threads == 96 else 2
    source = f"""
kernel split[L = {lines}, N = {length}](
    x: global f32[L, N], y: global f32[L, N], p: global i32[L, N]
) blocks(1) threads({threads}) {{
    t = load(x[0 :+ L, 0 :+ N])
    store(y[0 :+ L, 0 :+ N], sort(t, axis = 1, descending = {str(descending).lower()}))
    store(p[0 :+ L, 0 :+ N], argsort(t, axis = 1, descending = {str(descending).lower()}))
}}
"""
    rng = np.random.default_rng(length)
    x = rng.integers(-20, 20, size=(lines, length)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -0.0
    y, p = np.zeros_like(x), np.zeros(x.shape, np.int32)
    kernel = lpir.compile(source, target=target)
    kernel(x, y, p)
    want = stable_order(x, 1, descending)
    np.testing.assert_array_equal(p, want)
    assert np.array_equal(y, np.take_along_axis(x, want, 1), equal_nan=True)
    if target == "threads-cuda" and threads == 128:  # 8 a thread: the runs meet in memory
        assert "= sort(" not in kernel.ir("after:lower-to-threads")


def test_a_sort_round_trips_through_ir_text():
    kernel = lpir.compile(ROWS.replace("AXIS", "0"), target="cpu", M=32)
    text = kernel.ir("after:layout-selection")
    assert "= sort(" in text and "descending = false" in text
    assert print_module(parse(text)) == text


def test_sort_operands_in_other_layouts_are_a_verifier_error():
    source = """
kernel @bad[](%a: global f32[8, 32]) blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %t = load_global(%a, %0, %0) {dims = [0, 1], shape = [8, 32]} : f32[8, 32] @ A
  %u = load_global(%a, %0, %0) {dims = [0, 1], shape = [8, 32]} : f32[8, 32] @ B
  %r = sort(%t, %u) {axis = 1, descending = false} : f32[8, 32] @ A
}
""".replace("A", "spatial(8,4).local(1,8)").replace("B", "local(8,1).spatial(1,32)")
    with pytest.raises(VerifyError) as caught:
        verify(parse(source, "bad.ir"))
    text = str(caught.value)
    assert "bad.ir:6:" in text and "operand 1's layout" in text


@pytest.mark.parametrize(
    "call, message, hint",
    [
        ("sort(t)", "sort of a rank-2 tile needs the axis", "sort(t, axis = 1)"),
        ("sort(t, axis = 1, descending = 1)", "descending must be true or false", "= true"),
        ("argsort(t, axis = 0)", "power-of-two length, not 12", "where(arange(BN) < n, t, inf)"),
        (
            "sort(cast<i32>(t), axis = 0, descending = true)",
            "power-of-two length, not 12",
            "where(arange(BN) < n, t, min_value(i32))",
        ),
        ("sort(x, axis = 0)", "sort sorts a tile", "load(x[...])"),
        ("sort(t, axis = 1, stable = true)", "sort has no argument 'stable'", "always stable"),
    ],
)
def test_sort_mistakes_are_located_errors(call, message, hint):
    source = f"""
kernel bad[](x: global f32[12, 32], w: global u4[12, 32], y: global f32[12, 32])
    blocks(1) threads(32) {{
    t = load(x[0 :+ 12, 0 :+ 32])
    q = load(w[0 :+ 12, 0 :+ 32])
    s = {call}
    store(y[0 :+ 12, 0 :+ 32], cast<f32>(s))
}}
"""
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cpu").specialize(None)
    text = str(caught.value)
    assert ":6:" in text and message in text and hint in text and "^" in text


def test_a_gpu_sort_spreads_lines_over_threads_where_that_holds_fewer_a_thread():
    """moe_topk's [64, 64] probabilities, coalesced, give each of 64 threads 64 runs of 4:
    256 elements through 21 steps, past the GPU's limit; one line a thread is 64."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    kernel = lpir.compile(examples / "moe_topk.lp", target="cuda", E=60, BE=64, K=4)
    module = parse(kernel.ir("after:layout-selection"))
    sort = next(op for op in module.kernels[0].walk() if isinstance(op, SortOp))
    layout = as_tile(sort.result.type).layout
    assert layout is not None and layout.slots == 64 and layout.threads == 64
    assert "__global__" in kernel.source("cuda")


@pytest.mark.parametrize("target", ["interp", "threads-cuda", "cpu"])
@pytest.mark.parametrize("dtype", ["u4", "i3", "f8e4m3", "f4e2m1"])
def test_keys_of_storage_types_sort_by_their_values(target, dtype):
    """Sub-byte integers and small floats have no comparison of their own: sorted in u8, i8
    or f32, which hold each value exactly, and the values put back in the dtype."""
    source = """
kernel small[T = u4](x: global T[4, 32], y: global T[4, 32], p: global i32[4, 32])
    blocks(1) threads(32) {
    t = load(x[0 :+ 4, 0 :+ 32])
    store(y[0 :+ 4, 0 :+ 32], sort(t, axis = 1))
    store(p[0 :+ 4, 0 :+ 32], argsort(t, axis = 1, descending = true))
}
"""
    kind = lpir.dtype(dtype)
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 1 << kind.nbits, size=(4, 32)).astype(kind.code_numpy_dtype)
    values = kind.decode(codes).astype(np.float64)
    if kind.is_float:  # finite values only (NaN codes sort last, checked elsewhere)
        codes = np.where(np.isfinite(values), codes, 0).astype(codes.dtype)
        values = kind.decode(codes).astype(np.float64)
    y = lpir.pack_codes(np.zeros_like(codes), kind)
    p = np.zeros((4, 32), np.int32)
    lpir.compile(source, target=target, T=dtype)(lpir.pack_codes(codes, kind), y, p)
    np.testing.assert_array_equal(p, stable_order(values, 1, descending=True))
    got = kind.decode(y.codes()).astype(np.float64)
    np.testing.assert_array_equal(got, np.sort(values, axis=1))
