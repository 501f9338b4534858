"""Gathers and scatters: a tensor dimension indexed by a 1-d i32 tile of positions
(`load(table[ids, :])`, `store(out[perm, :], rows)`, `atomic_add(hist[bins], ones)`) reads
(writes) one row, column, ... per element of the tile; positions outside the tensor read as 0
and are not written.

Every host target and the CUDA pipeline on the thread interpreter agree with numpy bit for bit:
embedding rows of every kind of dtype (sub-byte rows that start inside a byte), out-of-range
and negative positions, two gathered dimensions, a gathered column, gathers from a shared
tile, gathers with masks, scatters, scatter-adds with repeated positions (a histogram), an
act-order dequantization (a group's scales gathered per row of weights) in a loop, GPTQ
zeros and scales gathered and transposed (which LLVM once never finished compiling). Mistakes
are located errors. The CUDA C compiles for sm_80 and sm_90.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available
from test_masked_store import PACKED, _args, _equal, _result, _values

import lpir
from lpir.errors import LpirError

TARGETS = [*HOST_TARGETS, "threads-cuda"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Rows of a table chosen by ids: T tokens in tiles of BT, D features.
EMBEDDING = """
kernel embedding[T = f32, V = 50, D = 45, N = 13, BT = 8](
    table: global T[V, D], ids: global i32[N], out: global T[N, D],
) blocks(cdiv(N, BT)) threads(32) {
    t0 = block.x * BT
    store(out[t0 :+ BT, :], load(table[load(ids[t0 :+ BT]), :]))
}
"""

# Two gathered dimensions (every chosen row with every chosen column), a gathered column, a
# gather from a shared tile, and a gather under a mask with another value.
SHAPES = """
kernel shapes[M = 37, N = 29](
    x: global f32[M, N], rows: global i32[8], cols: global i32[16],
    both: global f32[8, 16], column: global f32[M], staged: global f32[8, N],
    masked: global f32[8, N],
) blocks(1) threads(32) {
    r = load(rows[:])
    c = load(cols[:])
    store(both[:, :], load(x[r, c]))
    store(column[:], load(x[:, c[4 : 5]])[:, 0])
    s = shared<f32>[M, N]
    store(s, load(x[:, :]))
    store(staged[:, :], load(s[r, :]))
    keep = (arange(N) % 3 != 0)[None, :]
    store(masked[:, :], load(x[r, :], mask = keep, other = -1.0))
}
"""

# Rows written where a permutation says (and only the even ones of a second copy), and a
# histogram: every element adds one to its bin (repeated bins: atomic adds), the largest value
# of each bin kept by atomic_max.
SCATTERS = """
kernel scatters[M = 21, D = 24, B = 10, N = 300, BN = 64](
    rows: global f32[M, D], perm: global i32[M], out: global f32[M, D], even: global f32[M, D],
    bins: global i32[N], values: global i32[N], hist: global i32[B], top: global i32[B],
) blocks(cdiv(N, BN)) threads(32) {
    if block.x == 0 {
        p = load(perm[:])
        t = load(rows[:, :])
        store(out[p, :], t)
        store(even[p, :], t, mask = (p % 2 == 0)[:, None])
    }
    n0 = block.x * BN
    b = load(bins[n0 :+ BN])
    inside = arange(BN) < N - n0
    atomic_add(hist[b], cast<i32>(inside))
    atomic_max(top[b], load(values[n0 :+ BN]), mask = inside)
}
"""

# Act-order dequantization: row k of the weights belongs to the group g_idx[k], whose scales
# are gathered for each tile of rows, in a loop over K.
ACT_ORDER = """
kernel act_order[K = 100, N = 48, G = 7, BK = 16](
    w: global i8[K, N], g_idx: global i32[K], scales: global f16[G, N], out: global f32[K, N],
) blocks(1) threads(64) {
    for k0 in range(0, K, BK) {
        g = load(g_idx[k0 :+ BK])
        s = cast<f32>(load(scales[g, :]))
        store(out[k0 :+ BK, :], cast<f32>(load(w[k0 :+ BK, :])) * s)
    }
}
"""


# GPTQ act-order zeros and scales: both gathered by the group of each row, each transposed.
# The u4 zeros go through shared memory on the CPU, each thread writing 64 bytes to every other
# byte. N and K leave part tiles.
ZEROS_AND_SCALES = """
kernel zeros_and_scales[N = 72, K = 40, G = 8, BN = 64, BK = 32](
    g_idx: global i32[K], qzeros: global i32[G, N / 8], scales: global f16[G, N],
    y: global f32[N],
) blocks(cdiv(N, BN)) threads(32) {
    n0 = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        g = load(g_idx[k0 :+ BK], mask = arange(BK) < K - k0, other = -1)  # past K: no group
        z = transpose(cast<f32>(view<u4>(load(qzeros[g, n0 / 8 :+ BN / 8]))))
        s = transpose(cast<f32>(load(scales[g, n0 :+ BN])))
        acc += z * s
    }
    store(y[n0 :+ BN], sum(acc, axis = 1))
}
"""


def _gathered(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    inside = (ids >= 0) & (ids < len(table))
    return np.where(inside[:, None], table[np.clip(ids, 0, len(table) - 1)], 0)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dt", ["f32", "f16", "i8", *PACKED])
def test_embedding_rows_of_every_dtype(target: str, dt: str) -> None:
    rng = np.random.default_rng(1)
    table = _values(dt, (50, 45), rng)
    ids = np.array([3, 0, 49, 50, -1, 7, 7, 12, 1, 2, 48, 4, 2**31 - 1], np.int32)
    args = _args(dt, [table, _values(dt, (13, 45), rng)])
    lpir.compile(EMBEDDING, target=target, T=dt)(args[0], ids, args[1])
    _equal(_result(dt, args[1]), _gathered(table, ids), dt)


@pytest.mark.parametrize("target", TARGETS)
def test_two_gathered_dimensions_a_column_shared_and_masked(target: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((37, 29)).astype(np.float32)
    rows = np.array([0, 36, 5, 37, -2, 5, 20, 1], np.int32)
    cols = np.array([28, 0, 3, 29, 7, 7, -1, 15, 2, 4, 6, 8, 10, 12, 14, 16], np.int32)
    outputs = [np.full(shape, np.nan, np.float32) for shape in ((8, 16), 37, (8, 29), (8, 29))]
    lpir.compile(SHAPES, target=target)(x, rows, cols, *outputs)
    both, column, staged, masked = outputs
    _equal(both, _gathered(_gathered(x, rows).T, cols).T, "rows x columns")
    _equal(column, x[:, 7], "a gathered column")
    _equal(staged, _gathered(x, rows), "from a shared tile")
    keep = np.arange(29) % 3 != 0
    read = keep & ((rows >= 0) & (rows < 37))[:, None]  # other = also past the edges
    _equal(masked, np.where(read, _gathered(x, rows), -1.0), "masked")


@pytest.mark.parametrize("target", TARGETS)
def test_scatters_and_a_histogram_of_repeated_bins(target: str) -> None:
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((21, 24)).astype(np.float32)
    perm = rng.permutation(21).astype(np.int32)
    perm[4] = 21  # past the end: not written
    out, even = np.zeros((21, 24), np.float32), np.full((21, 24), 5.0, np.float32)
    bins = rng.integers(-2, 12, 300).astype(np.int32)  # some outside the 10 bins
    values = rng.integers(-1000, 1000, 300).astype(np.int32)
    hist, top = np.zeros(10, np.int32), np.full(10, -5000, np.int32)
    lpir.compile(SCATTERS, target=target)(rows, perm, out, even, bins, values, hist, top)
    wanted = np.zeros((21, 24), np.float32)
    written = perm < 21
    wanted[perm[written]] = rows[written]
    _equal(out, wanted, "scatter")
    chosen = written & (perm % 2 == 0)
    wanted_even = np.full((21, 24), 5.0, np.float32)
    wanted_even[perm[chosen]] = rows[chosen]
    _equal(even, wanted_even, "masked scatter")
    inside = (bins >= 0) & (bins < 10)
    wanted_hist = np.zeros(10, np.int32)
    np.add.at(wanted_hist, bins[inside], 1)
    np.testing.assert_array_equal(hist, wanted_hist)
    wanted_top = np.full(10, -5000, np.int32)
    np.maximum.at(wanted_top, bins[inside], values[inside])
    np.testing.assert_array_equal(top, wanted_top)


@pytest.mark.parametrize("target", TARGETS)
def test_act_order_scales_gathered_in_a_loop(target: str) -> None:
    rng = np.random.default_rng(4)
    w = rng.integers(-8, 8, (100, 48)).astype(np.int8)
    g_idx = rng.integers(0, 7, 100).astype(np.int32)
    scales = rng.integers(1, 9, (7, 48)).astype(np.float16) / 8
    out = np.zeros((100, 48), np.float32)
    lpir.compile(ACT_ORDER, target=target)(w, g_idx, scales, out)
    np.testing.assert_array_equal(out, w * scales[g_idx].astype(np.float32))


def test_gathered_zeros_and_scales_transposed_compile_for_the_cpu() -> None:
    """LLVM 22's x86 code generator never finished the kernel (6 minutes and counting): its
    shared-memory store spread 32 bytes over every other byte of a 64-byte window, a shuffle
    it legalizes forever (LLVM issue 224266). Byte stores write windows of 32 bytes at most:
    the LLVM IR as generated has none wider, and the kernel compiles and matches numpy and
    the interpreter."""
    from lpir.backends.llvm import llvm_module

    llvm = str(llvm_module(lpir.compile(ZEROS_AND_SCALES, target="threads").module))
    stored_bytes = [int(lanes) for lanes in re.findall(r"masked\.store\.v(\d+)i8", llvm)]
    assert stored_bytes and max(stored_bytes) <= 32, sorted(set(stored_bytes))
    rng = np.random.default_rng(5)
    g_idx = rng.integers(0, 8, 40).astype(np.int32)
    g_idx[[3, 17]] = [8, -1]  # outside the groups: zeros and scales read 0
    zeros = rng.integers(0, 16, (8, 72)).astype(np.uint8)
    nibbles = zeros.astype(np.uint32).reshape(8, 9, 8) << (4 * np.arange(8, dtype=np.uint32))
    qzeros = nibbles.sum(axis=2, dtype=np.uint32).view(np.int32)  # view<u4>: low nibble first
    scales = (rng.integers(1, 9, (8, 72)) / 8).astype(np.float16)
    outputs = {}
    for target in ("interp", "cpu"):
        outputs[target] = np.zeros(72, np.float32)
        lpir.compile(ZEROS_AND_SCALES, target=target)(g_idx, qzeros, scales, outputs[target])
    weights = _gathered(zeros, g_idx) * _gathered(scales, g_idx).astype(np.float32)
    _equal(outputs["interp"], weights.sum(axis=0), "interpreter")
    _equal(outputs["cpu"], outputs["interp"], "cpu")


def test_a_gathered_row_is_read_as_vectors() -> None:
    """Each thread's elements of one gathered row are one run of addresses: 16-byte loads on
    the GPU, not one load an element."""
    code = lpir.compile(EMBEDDING, target="cuda", D=64).source("cuda")
    assert "lpir_load_if<16" in code, code


# One thread gathering and scattering a whole tile, each element at a position of its own: a
# scatter to every other element (positions past the end and negative ones not written), the
# same under a mask, a gather of elements of i8 rows of a 2-d tensor (stride D) and of f16 ones.
WIDE = """
kernel wide[BN = 256, D = 3](
    x: global f32[BN], p: global i32[BN], y: global f32[2 * BN], m: global f32[2 * BN],
    q: global i8[BN, D], h: global f16[BN], g: global f32[2, BN],
) blocks(1) threads(1) {
    positions = load(p[:])
    store(y[positions], load(x[:]))
    store(m[positions], load(x[:]), mask = arange(BN) % 3 != 0)
    store(g[0, :], cast<f32>(load(q[positions, 1])))
    store(g[1, :], cast<f32>(load(h[positions])))
}
"""


def _ops_after_lowering(source: str, **params: int) -> int:
    kernel = lpir.compile(source, target="threads", **params).specialize(None)
    return sum(1 for _ in kernel.module.kernels[0].walk())


@pytest.mark.parametrize("target", ["interp", "threads", "cpu"])
def test_a_thread_that_gathers_and_scatters_a_whole_tile(target: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(256).astype(np.float32)
    p = (rng.permutation(256) * 2).astype(np.int32)
    p[[3, 50, 100]] = [512, -1, 9999]  # outside: not written, read as 0
    q = rng.integers(-100, 100, (256, 3)).astype(np.int8)
    h = rng.standard_normal(256).astype(np.float16)
    y, m = np.full(512, 5.0, np.float32), np.full(512, 5.0, np.float32)
    g = np.zeros((2, 256), np.float32)
    lpir.compile(WIDE, target=target)(x, p, y, m, q, h, g)
    inside = (p >= 0) & (p < 512)
    wanted = np.full(512, 5.0, np.float32)
    wanted[p[inside]] = x[inside]
    _equal(y, wanted, "scatter")
    chosen = inside & (np.arange(256) % 3 != 0)
    wanted = np.full(512, 5.0, np.float32)
    wanted[p[chosen]] = x[chosen]
    _equal(m, wanted, "masked scatter")
    _equal(g[0], _gathered(q[:, 1:2], p)[:, 0].astype(np.float32), "i8 gather")
    _equal(g[1], _gathered(h[:, None], p)[:, 0].astype(np.float32), "f16 gather")


def test_a_wide_gather_and_scatter_cost_a_few_ops_not_some_per_element() -> None:
    """On the cpu a thread's gather or scatter of many elements at positions of their own is
    one `ld` or `st` with a base per lane (LLVM's masked gather and scatter): as one access per
    element it cost 7 thread-IR ops an element and LLVM time quadratic in them (a 4096-element
    scatter of one thread compiled in about 2 minutes). Gathers of 8- and 16-bit elements too:
    the LLVM backend reads them as 32-bit words (x86 gathers no narrower ones); as an access
    per lane WIDE at BN = 1024 compiled in 19.5 s, now in 1 s."""
    for source in (WIDE, "\n".join(line for line in WIDE.splitlines() if "h[" not in line)):
        small, large = (_ops_after_lowering(source, BN=n) for n in (64, 1024))
        assert large == small, (small, large)


# A gather of 8 elements a thread (128 positions over 16 threads), of 8- and 16-bit elements:
# GPTQ's x read through its permutation. The positions hold the tensor's last elements (whose
# 32-bit word would pass its end), its first, and some outside it.
NARROW = """
kernel narrow[T = f16, N = 1000, B = 128](x: global T[N], p: global i32[B], y: global f32[B])
    blocks(1) threads(16) {
    store(y[:], cast<f32>(load(x[load(p[:])])))
}
"""


def _narrow_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    p = rng.integers(0, n, 128).astype(np.int32)
    p[:8] = [n - 1, n - 2, n - 3, 0, -1, n, -(2**31), 2**31 - 1]
    p[8:16] = n - 1 - np.arange(8)
    return p


@pytest.mark.parametrize("dt", ["f16", "bf16", "u8", "i8"])
@pytest.mark.parametrize("n", [1000, 4, 3])
def test_narrow_gathers_read_only_inside_the_tensor(dt: str, n: int) -> None:
    """8- and 16-bit gathers of 8 lanes a thread equal the interpreter's, at every position
    of a tensor whose end is a page's end with an unreadable page after it: the 32-bit word a
    lane reads is moved back to end at the tensor's last byte (a tensor of fewer than 4 bytes
    keeps an access per lane)."""
    rng = np.random.default_rng(4)
    t = lpir.dtype(dt)
    if t.is_float:
        values = (rng.standard_normal(n) * 100).astype(t.numpy_dtype)
    else:
        values = rng.integers(t.min, t.max + 1, n).astype(t.numpy_dtype)
    p = _narrow_positions(n, rng)
    wanted = np.zeros(128, np.float32)
    lpir.compile(NARROW, target="interp", T=dt, N=n)(values, p, wanted)
    with _at_a_page_end(values) as x:
        y = np.zeros(128, np.float32)
        lpir.compile(NARROW, target="cpu", T=dt, N=n)(x, p, y)
    _equal(y, wanted, f"{dt}[{n}]")


@contextlib.contextmanager
def _at_a_page_end(values: np.ndarray) -> Iterator[np.ndarray]:
    """A copy of `values` that ends where a page ends, the next page unreadable."""
    page = mmap.PAGESIZE
    memory = mmap.mmap(-1, 2 * page)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(address + page, page, 0) == 0  # PROT_NONE
    try:
        copy = np.frombuffer(memory, values.dtype, values.size, page - values.nbytes)
        copy[...] = values
        yield copy
    finally:
        libc.mprotect(address + page, page, mmap.PROT_READ | mmap.PROT_WRITE)


def test_gptqs_permuted_x_is_one_gather_of_words() -> None:
    """examples/gemv_gptq.lp reads x (f16) through its permutation, 8 positions a thread: one
    32-bit gather a thread and step, where an access per lane (its bounds checked, a branch
    and a 2-byte load each) took about half the instructions of the kernel's loop."""
    kernel = lpir.compile(EXAMPLES / "gemv_gptq.lp", target="cpu").specialize(None)
    loads = [op for op in kernel.kernel_ir.walk() if op.name == "ld"]
    x_loads = [op for op in loads if op.operands[0].name_hint == "x"]
    assert len(x_loads) == 1 and x_loads[0].operands[1].type.size == 8, x_loads
    assert "llvm.masked.gather.v8i32" in kernel.source("llvm")


def _refused(body: str) -> str:
    """The error of a kernel over x, ids and y whose body (after its first line) is `body`."""
    source = (
        "kernel k(x: global f32[64, 8], ids: global i32[8], y: global f32[8, 8]) blocks(1)"
        f" threads(32) {{\n{body}}}\n"
    )
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    return str(caught.value)


@pytest.mark.parametrize(
    ("index", "words"),
    [
        ("load(ids[0 :+ 8])[:, None]", "must be a 1-d i32 tile, not"),
        ("cast<i64>(load(ids[0 :+ 8]))", "cast<i32>(cast<i64>(load(ids[0 :+ 8])))"),
        ("cast<f32>(load(ids[0 :+ 8]))", "positions are integers"),
        ("load(ids[0 :+ 8]) :+ 2", "a tile of positions reads"),
        ("arange(8) < 3", "a bool tile chooses no positions"),
    ],
)
def test_position_mistakes_are_located(index: str, words: str) -> None:
    text = _refused(f"    store(y[:, :], load(x[{index}, :]))\n")
    assert words in text and text.startswith("<source>:2:") and "^" in text, text


# IR text whose positions differ along another axis than the gathered one: row c reads
# x[c, c] (each element its own position), which the language never writes but the tile IR
# means.
ROWS = "spatial(4,1).local(1,8).replicate(8)"
DIAGONAL = f"""
kernel @diagonal[](%x: global f32[16, 8], %y: global f32[4, 8]) blocks(1, 1, 1) threads(32) {{
  %0 = constant {{value = 0}} : i32
  %4 = arange {{shape = [8]}} : i32[8] @ replicate(4).local(8).replicate(8)
  %7 = expand_dims(%4) {{axis = 0}} : i32[1, 8] @ replicate(4).local(1,8).replicate(8)
  %3 = broadcast(%7) {{shape = [4, 8]}} : i32[4, 8] @ {ROWS}
  %9 = load_global(%x, %3, %0) {{dims = [0, 1], shape = [4, 8]}} : f32[4, 8] @ {ROWS}
  store_global(%y, %0, %0, %9) {{dims = [0, 1]}}
}}
"""


@pytest.mark.parametrize("target", ["interp", "threads", "cpu"])
def test_positions_that_differ_along_another_axis_are_read_per_element(target: str) -> None:
    x = np.arange(128, dtype=np.float32).reshape(16, 8)
    y = np.zeros((4, 8), np.float32)
    lpir.compile(DIAGONAL, target=target)(x, y)
    _equal(y, np.broadcast_to(x[np.arange(8), np.arange(8)], (4, 8)), "x[c, c]")


@pytest.mark.parametrize("target", TARGETS)
def test_an_element_of_a_tile_is_an_index(target: str) -> None:
    source = """
kernel one[](x: global f32[16, 8], ids: global i32[4], y: global f32[8]) blocks(1) threads(32) {
    p = load(ids[:])
    store(y[:], load(x[p[2], :]))
}
"""
    x = np.arange(128, dtype=np.float32).reshape(16, 8)
    y = np.zeros(8, np.float32)
    lpir.compile(source, target=target)(x, np.array([1, 2, 11, 3], np.int32), y)
    _equal(y, x[11], "x[p[2], :]")


@pytest.mark.parametrize(
    ("index", "hint"),
    [
        ("ids", "x[load(ids[...]), :]"),
        ("ids[:]", "x[load(ids[:]), :]"),
        ("s", "x[load(s), :]"),
    ],
)
def test_positions_still_in_memory_say_to_load_them(index: str, hint: str) -> None:
    text = _refused(f"    s = shared<i32>[8]\n    store(y[:, :], load(x[{index}, :]))\n")
    assert "an index must be an i32 scalar or a 1-d i32 tile of positions" in text, text
    assert hint in text and text.startswith("<source>:3:"), text


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_cuda_c_compiles(arch: str) -> None:
    cases = [(EMBEDDING, {"T": "u3"}), (SHAPES, {}), (SCATTERS, {}), (ACT_ORDER, {})]
    for source, params in cases:
        code = lpir.compile(source, target="cuda", **params).source("cuda")
        compile_with_nvcc(code, arch, "ptx", strict=True)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
def test_gathers_and_scatters_on_the_gpu() -> None:
    test_embedding_rows_of_every_dtype("cuda", "u3")
    test_two_gathered_dimensions_a_column_shared_and_masked("cuda")
    test_scatters_and_a_histogram_of_repeated_bins("cuda")
    test_act_order_scales_gathered_in_a_loop("cuda")
