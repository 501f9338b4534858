"""`store(slice, value, mask = m)` and the atomics' `mask =`: only the elements where the bool
tile `m` (broadcast to the slice) is true are written or combined.

Every host target agrees with numpy bit for bit: run-time tails inside the tensor (the rest of
memory keeps its bytes, also the neighbours of sub-byte elements in the same byte), masks
broadcast from a column or a row, data-dependent masks, shared tiles, atomics, scalar stores in
a loop, constant masks. Mistakes are located errors. The CUDA C compiles for sm_80 and sm_90.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available

import lpir
from lpir.errors import LpirError

# The first n - i elements of each block's tile: a tail inside the tensor (N = 100 > n).
TAIL = """
kernel tail[T = f32, N = 100, BN = 32](x: global T[N], y: global T[N], n: i32)
    blocks(cdiv(N, BN)) threads(32) {
    i = block.x * BN
    store(y[i :+ BN], load(x[i :+ BN]), mask = arange(BN) < n - i)
}
"""

# Rows of run-time lengths (a column mask against a row of lengths), a row mask through a
# shared tile, and a data-dependent mask.
ROWS = """
kernel rows[T = f32, M = 37, N = 45, BM = 16, BN = 32](
    x: global T[M, N], y: global T[M, N], z: global T[M, N], w: global T[M, N],
    lens: global i32[M],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(64) {
    r = block.x * BM
    c = block.y * BN
    t = load(x[r :+ BM, c :+ BN])
    l = load(lens[r :+ BM])
    store(y[r :+ BM, c :+ BN], t, mask = arange(BN)[None, :] + c < l[:, None])
    s = shared<T>[BM, BN]
    store(s, zeros<T>[BM, BN])
    store(s, t, mask = l[:, None] > 20)
    store(z[r :+ BM, c :+ BN], load(s))
    store(w[r :+ BM, c :+ BN], t, mask = cast<f32>(t) > 3.0)
}
"""

# Atomics under masks: every block adds its row into y where the row's element is even, and
# takes the maximum into m of the odd columns only.
ATOMICS = """
kernel atomics[M = 50, N = 70, BN = 32](x: global i32[M, N], y: global i32[N], m: global i32[N])
    blocks(cdiv(N, BN), M) threads(32) {
    c = block.x * BN
    t = load(x[block.y, c :+ BN])
    atomic_add(y[c :+ BN], t, mask = t % 2 == 0)
    atomic_max(m[c :+ BN], t, mask = (arange(BN) + c) % 2 == 1)
}
"""

# One element a step, written where the step is below a run-time count; constant masks.
SCALARS = """
kernel scalars[N = 40](x: global f32[N], y: global f32[N], z: global f32[N], n: i32)
    blocks(1) threads(32) {
    for i in range(0, N) {
        let v = load(x[i])
        store(y[i], v * 2.0, mask = i < n)
    }
    t = load(x[0 :+ N])
    store(z[0 :+ N], t, mask = true)
    store(x[0 :+ N], t + 1.0, mask = false)
}
"""

PACKED = ("u1", "u3", "u4", "i5", "f4e2m1", "f6e3m2")


def _values(dt: str, shape, rng: np.random.Generator) -> np.ndarray:
    """Values of `dt` as numpy holds them unpacked (codes' values for packed dtypes)."""
    t = lpir.dtype(dt)
    if t.is_float:
        if t.nbits < 8:
            codes = rng.integers(0, 2**t.nbits, shape, dtype=np.uint8)
            return lpir.unpack(lpir.pack_codes(codes, t)).astype(np.float32)
        return rng.integers(-8, 8, shape).astype(t.numpy_dtype)
    return rng.integers(max(t.min, -8), min(t.max, 7) + 1, shape).astype(np.int64)


def _args(dt: str, arrays: list[np.ndarray]) -> list:
    """The kernel's arguments: packed dtypes packed, others as they are (copies)."""
    if lpir.dtype(dt).nbits < 8:
        return [lpir.pack(a, dt) for a in arrays]
    return [a.astype(lpir.dtype(dt).numpy_dtype) for a in arrays]


def _result(dt: str, argument) -> np.ndarray:
    if lpir.dtype(dt).nbits < 8:
        return lpir.unpack(argument).astype(np.float64)
    return np.asarray(argument).astype(np.float64)


def _equal(got: np.ndarray, wanted: np.ndarray, what: str) -> None:
    np.testing.assert_array_equal(got, np.asarray(wanted, np.float64), err_msg=what)


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("dt", ["f32", "i8", "f16", *PACKED])
def test_a_run_time_tail_inside_the_tensor(target: str, dt: str) -> None:
    rng = np.random.default_rng(1)
    x, before = _values(dt, 100, rng), _values(dt, 100, rng)
    kernel = lpir.compile(TAIL, target=target, T=dt)
    for n in (0, 1, 31, 33, 50, 100, 200, -5):
        args = _args(dt, [x, before])
        kernel(*args, n)
        kept = np.arange(100) < n
        _equal(_result(dt, args[1]), np.where(kept, x, before), f"n = {n}")


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
@pytest.mark.parametrize("dt", ["f32", "i16", "u3"])
def test_row_column_shared_and_data_masks(target: str, dt: str) -> None:
    rng = np.random.default_rng(2)
    m, n = 37, 45
    x = _values(dt, (m, n), rng)
    y, z, w = (_values(dt, (m, n), rng) for _ in range(3))
    lens = rng.integers(-3, 60, m).astype(np.int32)
    args = _args(dt, [x, y, z, w])
    lpir.compile(ROWS, target=target, T=dt)(*args, lens)
    _equal(_result(dt, args[1]), np.where(np.arange(n) < lens[:, None], x, y), "column mask")
    _equal(_result(dt, args[2]), np.where(lens[:, None] > 20, x, 0), "row mask, shared")
    _equal(_result(dt, args[3]), np.where(x > 3, x, w), "data mask")


def _atomics_wanted(x: np.ndarray, y: np.ndarray, m: np.ndarray) -> tuple:
    odd = np.arange(x.shape[1]) % 2 == 1
    return (
        y + np.where(x % 2 == 0, x, 0).sum(axis=0, dtype=np.int32),
        np.where(odd, np.maximum(m, x.max(axis=0)), m),
    )


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_masked_atomics_combine_only_where_true(target: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-1000, 1000, (50, 70)).astype(np.int32)
    y, m = rng.integers(-5, 5, 70).astype(np.int32), np.full(70, -2000, np.int32)
    wanted = _atomics_wanted(x, y, m)
    lpir.compile(ATOMICS, target=target)(x, y, m)
    np.testing.assert_array_equal(y, wanted[0])
    np.testing.assert_array_equal(m, wanted[1])


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_scalar_masks_and_constant_masks(target: str) -> None:
    x = np.arange(40, dtype=np.float32)
    y, z = np.full(40, -1.0, np.float32), np.zeros(40, np.float32)
    lpir.compile(SCALARS, target=target)(x, y, z, 17)
    np.testing.assert_array_equal(y, np.where(np.arange(40) < 17, 2 * np.arange(40), -1.0))
    np.testing.assert_array_equal(z, np.arange(40))
    np.testing.assert_array_equal(x, np.arange(40))  # mask = false: nothing written


def test_a_constant_false_mask_leaves_no_store_and_the_ir_prints_the_mask() -> None:
    kernel = lpir.compile(SCALARS, target="interp")
    stores = [line for line in kernel.ir("source").splitlines() if "store_global" in line]
    assert len(stores) == 2, stores  # y[i] (masked: four operands) and z (mask = true: none)
    assert stores[0].count("%") == 4 and stores[1].count("%") == 3, stores
    lowered = lpir.compile(TAIL, target="cpu").ir("after:lower-to-threads")
    store = next(line for line in lowered.splitlines() if line.strip().startswith("st("))
    mask = store.split(")")[0].split(",")[3].strip()  # st(%y, base, value, mask) {...}
    assert f"{mask} = and(" in lowered, "the edge mask and the user's mask are combined"


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("store(y[0 :+ 64], t, mask = t)", "a store's mask must be bool, not a tile"),
        ("store(y[0 :+ 64], t, mask = 1)", "a store's mask must be bool"),
        (
            "store(y[0 :+ 64], t, mask = arange(32) < 3)",
            "a mask of shape [32] does not fit a slice of shape [64]",
        ),
        ("atomic_add(y[0 :+ 64], t, mask = t)", "a store's mask must be bool"),
        ("store(y[0 :+ 64], t, where = t > 0.0)", "store has no argument 'where'"),
    ],
)
def test_mask_mistakes_are_located(statement: str, words: str) -> None:
    source = (
        "kernel k(x: global f32[64], y: global f32[64]) blocks(1) threads(32) {\n"
        f"    t = load(x[0 :+ 64])\n    {statement}\n}}\n"
    )
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    text = str(caught.value)
    assert words in text and text.startswith("<source>:3:") and "^" in text, text


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_cuda_c_compiles(arch: str) -> None:
    for source, params in [(TAIL, {"T": "u3"}), (ROWS, {"T": "f4e2m1"}), (ATOMICS, {})]:
        code = lpir.compile(source, target="cuda", **params).source("cuda")
        compile_with_nvcc(code, arch, "ptx", strict=True)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("dt", ["f32", "u3"])
def test_masks_on_the_gpu(dt: str) -> None:
    rng = np.random.default_rng(4)
    x, before = _values(dt, 100, rng), _values(dt, 100, rng)
    args = _args(dt, [x, before])
    lpir.compile(TAIL, target="cuda", T=dt)(*args, 45)
    _equal(_result(dt, args[1]), np.where(np.arange(100) < 45, x, before), "tail")
    x = rng.integers(-1000, 1000, (50, 70)).astype(np.int32)
    y, m = np.zeros(70, np.int32), np.full(70, -2000, np.int32)
    wanted = _atomics_wanted(x, y, m)
    lpir.compile(ATOMICS, target="cuda")(x, y, m)
    np.testing.assert_array_equal(y, wanted[0])
    np.testing.assert_array_equal(m, wanted[1])
