"""i8 dots on the GPU's integer tensor cores: `mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32`.

A dot of i8 tiles into i32 whose shapes are whole m16n8k32 atoms over whole warps takes the
m16n8k32 fragment layouts (`layout_rules.MMA_A8`, `MMA_B8`: the m16n8k16 ones with 4 elements
along k a register instead of 2) and becomes one warp-wide `mma` per atom and step of 32 (before,
4 `dp4a` per thread per step of 4: `IDP.4A` in the SASS, no `IMMA`). The thread-IR op takes 8-bit
integers of either signedness on each side (the PTX's s8/u8 forms), which the thread interpreter
and the host emulation (`lpir_host::mma_m16n8k32`) define from the PTX fragment tables; the
W8A8 GEMM (x[m, K] and w[N, K] in i8, per-row and per-column scales) equals the interpreter
exactly on `threads-cuda` and `cuda-host` at shapes whose edges do not divide the tiles, and its
PTX and SASS (nvcc, sm_80 and sm_90) hold the integer mma and no `dp4a`.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emulation import emulation_available

import lpir

NO_NVCC = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
NO_EMULATION = pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
TARGETS = ["threads-cuda", pytest.param("cuda-host", marks=NO_EMULATION)]
NUMPY = {"i8": np.int8, "u8": np.uint8}

# ---- the thread-IR op: one warp, the PTX fragment tables -----------------------------------------
MMA_KERNEL = """
kernel @mma8[](%a: global {a}[512], %b: global {b}[256], %c: global i32[128], \
%d: global i32[128]) blocks(1, 1, 1) threads(32) stage(thread) {{
  %tid = thread_index : i32
  %k16 = constant {{value = 16}} : i32
  %k8 = constant {{value = 8}} : i32
  %k4 = constant {{value = 4}} : i32
  %a_at = mul(%tid, %k16) : i32
  %b_at = mul(%tid, %k8) : i32
  %c_at = mul(%tid, %k4) : i32
  %av = ld(%a, %a_at) {{offsets = [{sixteen}]}} : <16 x {a}>
  %bv = ld(%b, %b_at) {{offsets = [0, 1, 2, 3, 4, 5, 6, 7]}} : <8 x {b}>
  %cv = ld(%c, %c_at) {{offsets = [0, 1, 2, 3]}} : <4 x i32>
  %dv = mma(%av, %bv, %cv) {{shape = "m16n8k32"}} : <4 x i32>
  st(%d, %c_at, %dv) {{offsets = [0, 1, 2, 3]}}
}}
"""


def _fragments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[lane, register element] -> (row, column) of A (16x32), B (32x8) and C (16x8), written
    from the PTX ISA's "Matrix Fragments for mma.m16n8k32" (not from lpir's layouts)."""
    lane = np.arange(32)[:, None]
    group, within = lane // 4, lane % 4
    i = np.arange(16)[None, :]
    a = np.stack(
        np.broadcast_arrays(group + 8 * ((i // 4) % 2), within * 4 + (i % 4) + 16 * (i >= 8)),
        axis=-1,
    )
    j = np.arange(8)[None, :]
    b = np.stack(np.broadcast_arrays(within * 4 + (j % 4) + 16 * (j >= 4), group), axis=-1)
    q = np.arange(4)[None, :]
    c = np.stack(np.broadcast_arrays(group + 8 * (q >= 2), within * 2 + (q % 2)), axis=-1)
    return a, b, c


def _extremes(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(NUMPY[name])
    values = rng.integers(int(info.min), int(info.max) + 1, size)
    values[::5] = info.min
    values[1::5] = info.max
    return values.astype(NUMPY[name])


@pytest.mark.parametrize("target", ["threads", pytest.param("cuda-host", marks=NO_EMULATION)])
@pytest.mark.parametrize("a_type, b_type", [("i8", "i8"), ("u8", "i8"), ("i8", "u8"), ("u8", "u8")])
def test_the_mma_op_follows_the_ptx_fragments(tmp_path, target, a_type, b_type):
    """D = A @ B + C of each lane's fragment elements, C near i32's ends so that sums wrap."""
    path = tmp_path / "mma8.ir"
    sixteen = ", ".join(str(i) for i in range(16))
    path.write_text(MMA_KERNEL.format(a=a_type, b=b_type, sixteen=sixteen))
    rng = np.random.default_rng(len(a_type + b_type))
    a, b = _extremes(a_type, 512, rng), _extremes(b_type, 256, rng)
    c = rng.integers(-(2**31), 2**31, 128, dtype=np.int64).astype(np.int32)
    c[:4] = [2**31 - 1, -(2**31), 2**31 - 1, -(2**31)]  # thread 0: rows 0, 8, columns 0, 1
    a_map, b_map, c_map = _fragments()
    a_tile = np.zeros((16, 32), np.int64)
    b_tile = np.zeros((32, 8), np.int64)
    c_tile = np.zeros((16, 8), np.int64)
    a_tile[a_map[..., 0], a_map[..., 1]] = a.reshape(32, 16)
    b_tile[b_map[..., 0], b_map[..., 1]] = b.reshape(32, 8)
    c_tile[c_map[..., 0], c_map[..., 1]] = c.reshape(32, 4)
    d_tile = (a_tile @ b_tile + c_tile).astype(np.int32)  # wraps modulo 2^32
    d = np.zeros(128, np.int32)
    lpir.compile(path, target=target)(a, b, c, d)
    assert np.array_equal(d.reshape(32, 4), d_tile[c_map[..., 0], c_map[..., 1]])


@NO_NVCC
@pytest.mark.parametrize("a_type, b_type", [("i8", "i8"), ("u8", "i8"), ("i8", "u8"), ("u8", "u8")])
def test_the_mma_op_is_the_ptx_integer_mma(tmp_path, a_type, b_type):
    path = tmp_path / "mma8.ir"
    sixteen = ", ".join(str(i) for i in range(16))
    path.write_text(MMA_KERNEL.format(a=a_type, b=b_type, sixteen=sixteen))
    kernel = lpir.compile(path, target="cuda")
    ptx_types = {"i8": "s8", "u8": "u8"}
    form = f"mma.sync.aligned.m16n8k32.row.col.s32.{ptx_types[a_type]}.{ptx_types[b_type]}.s32"
    for arch in ("sm_80", "sm_90"):
        assert form in kernel.source("ptx", arch)


# ---- ldmatrix of bytes: the m16n8k32 A fragment of a [16, 32] shared tile -----------------------
LDMATRIX_KERNEL = """
kernel @ldmatrix8[](%a: global i8[512], %d: global i8[512]) blocks(1, 1, 1) threads(32) \
stage(thread) {
  %tid = thread_index : i32
  %k16 = constant {value = 16} : i32
  %k32 = constant {value = 32} : i32
  %tile = alloc_shared : shared i8[16, 32]
  %at = mul(%tid, %k16) : i32
  %own = ld(%a, %at) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]} : <16 x i8>
  st(%tile, %at, %own) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
  barrier
  %r = rem(%tid, %k16) : i32
  %h = div(%tid, %k16) : i32
  %row_at = mul(%r, %k32) : i32
  %half_at = mul(%h, %k16) : i32
  %row = add(%row_at, %half_at) : i32
  %v = ldmatrix(%tile, %row) {count = 4, transpose = false} : <16 x i8>
  st(%d, %at, %v) {offsets = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
}
"""


@pytest.mark.parametrize("target", ["threads", pytest.param("cuda-host", marks=NO_EMULATION)])
def test_ldmatrix_of_bytes_gives_the_a_fragment(tmp_path, target):
    """Thread t gives row t % 16, half t / 16 of a row-major [16, 32] byte tile: matrices 0..3
    are rows 0-7 and 8-15 of bytes 0-15, then of bytes 16-31, so each thread receives the
    m16n8k32 A fragment (PTX's table, `_fragments`)."""
    path = tmp_path / "ldmatrix8.ir"
    path.write_text(LDMATRIX_KERNEL)
    rng = np.random.default_rng(8)
    tile = _extremes("i8", 512, rng)
    got = np.zeros(512, np.int8)
    lpir.compile(path, target=target)(tile, got)
    a_map = _fragments()[0]
    assert np.array_equal(got.reshape(32, 16), tile.reshape(16, 32)[a_map[..., 0], a_map[..., 1]])


def test_byte_fragments_plan_as_16_bit_units():
    """MMA_A8 of a row-major [16, 32] byte tile is one ldmatrix.x4 (rows at byte offsets 32 r +
    16 h); MMA_B8 read from a [32, 8] (k-major rows) tile is no matrix load (its bytes along k
    are a column), nor are lone bytes."""
    from lpir.passes.layout_rules import MMA_A8, MMA_B8, transposed
    from lpir.passes.matrix_loads import fragment_offsets, plan_matrix_loads

    plan = plan_matrix_loads(fragment_offsets(MMA_A8, [32, 1]), 8)
    assert plan is not None and len(plan) == 1
    (load,) = plan
    assert load.count == 4 and not load.transpose and load.slots == tuple(range(16))
    lane = np.arange(32)
    assert np.array_equal(load.rows, 32 * (lane % 16) + 16 * (lane // 16))
    assert plan_matrix_loads(fragment_offsets(MMA_B8, [8, 1]), 8) is None
    w_rows = transposed(MMA_B8, (1, 0))  # the fragment of w[n, k], k contiguous
    assert w_rows.shape == (8, 32)
    assert plan_matrix_loads(fragment_offsets(w_rows, [32, 1]), 8) is not None


# ---- the W8A8 GEMM ------------------------------------------------------------------------------
W8A8 = """
# y[m, n] = (sum_k x[m, k] * w[n, k]) * sx[m] * sw[n], and the i32 sums themselves
kernel w8a8[M, N, K, BM = 16, BN = 64, BK = 64, THREADS = 128](
    x: global i8[M, K],
    sx: global f32[M],
    w: global i8[N, K],
    sw: global f32[N],
    y: global f16[M, N],
    sums: global i32[M, N],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(THREADS) {
    r0 = block.x * BM
    n0 = block.y * BN
    acc = zeros<i32>[BM, BN]
    for k0 in range(0, K, BK) {
        acc = dot(load(x[r0 :+ BM, k0 :+ BK]), transpose(load(w[n0 :+ BN, k0 :+ BK])), acc)
    }
    store(sums[r0 :+ BM, n0 :+ BN], acc)
    scaled = cast<f32>(acc) * load(sx[r0 :+ BM])[:, None] * load(sw[n0 :+ BN])[None, :]
    store(y[r0 :+ BM, n0 :+ BN], cast<f16>(scaled))
}

# a[M, K] @ b[K, N], b row-major (its k-major fragments gathered through shared memory)
kernel gemm[M, N, K, BM = 32, BN = 32, BK = 32, THREADS = 128](
    a: global i8[M, K],
    b: global i8[K, N],
    c: global i32[M, N],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(THREADS) {
    rows = block.x * BM
    cols = block.y * BN
    acc = zeros<i32>[BM, BN]
    for k0 in range(0, K, BK) {
        acc = dot(load(a[rows :+ BM, k0 :+ BK]), load(b[k0 :+ BK, cols :+ BN]), acc)
    }
    store(c[rows :+ BM, cols :+ BN], acc)
}
"""

# (M, N, K, tiles): edges that do not divide the tiles in every dimension
W8A8_CASES = {
    "m 5, n and k edges": (5, 100, 96, {}),
    "m 37 over two warps along m": (37, 72, 160, {"BM": 32, "BN": 32, "BK": 32}),
    "one warp, k 64 a step": (20, 24, 200, {"BM": 16, "BN": 16, "BK": 64, "THREADS": 32}),
}
GEMM_CASES = {
    "edges everywhere": (50, 40, 96, {}),
    "64 x 64 over 256 threads": (70, 130, 100, {"BM": 64, "BN": 64, "BK": 64, "THREADS": 256}),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("int8_mma") / "w8a8.lp"
    path.write_text(W8A8)
    return str(path)


def _w8a8_arguments(m: int, n: int, k: int) -> list[np.ndarray]:
    rng = np.random.default_rng(m * n + k)
    x = _extremes("i8", m * k, rng).reshape(m, k)
    w = _extremes("i8", n * k, rng).reshape(n, k)
    sx = rng.uniform(1e-4, 1e-2, m).astype(np.float32)
    sw = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
    return [x, sx, w, sw, np.zeros((m, n), np.float16), np.zeros((m, n), np.int32)]


def _run(source: str, name: str, target: str, arguments: list[np.ndarray], params: dict):
    kernel = lpir.compile(source, target=target, kernel=name, **params)
    copies = [a.copy() for a in arguments]
    kernel(*copies)
    return kernel, copies


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", list(W8A8_CASES))
def test_w8a8_equals_the_interpreter(source, target, case):
    m, n, k, params = W8A8_CASES[case]
    arguments = _w8a8_arguments(m, n, k)
    _, expected = _run(source, "w8a8", "interp", arguments, params)
    x, w = arguments[0].astype(np.int64), arguments[2].astype(np.int64)
    assert np.array_equal(expected[5], x @ w.T)
    kernel, got = _run(source, "w8a8", target, arguments, params)
    assert np.array_equal(got[5], expected[5])
    assert np.array_equal(got[4].view(np.uint16), expected[4].view(np.uint16))
    assert 'shape = "m16n8k32"' in kernel.ir()
    assert "ldmatrix(%exchange" in kernel.ir()  # x's fragments from the exchange tile


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", list(GEMM_CASES))
def test_gemm_of_row_major_b_equals_the_interpreter(source, target, case):
    m, n, k, params = GEMM_CASES[case]
    rng = np.random.default_rng(m + n + k)
    a = _extremes("i8", m * k, rng).reshape(m, k)
    b = _extremes("i8", k * n, rng).reshape(k, n)
    arguments = [a, b, np.zeros((m, n), np.int32)]
    _, expected = _run(source, "gemm", "interp", arguments, params)
    assert np.array_equal(expected[2], a.astype(np.int64) @ b.astype(np.int64))
    kernel, got = _run(source, "gemm", target, arguments, params)
    assert np.array_equal(got[2], expected[2])
    assert 'shape = "m16n8k32"' in kernel.ir()


def test_a_dot_that_is_not_whole_atoms_stays_on_ordinary_arithmetic(source):
    """BK = 16 is half an m16n8k32 step: the dot keeps its per-thread multiply-adds."""
    m, n, k = 20, 24, 48
    params = {"BM": 16, "BN": 16, "BK": 16, "THREADS": 32}
    arguments = _w8a8_arguments(m, n, k)
    _, expected = _run(source, "w8a8", "interp", arguments, params)
    kernel, got = _run(source, "w8a8", "threads-cuda", arguments, params)
    assert np.array_equal(got[5], expected[5])
    assert "mma(" not in kernel.ir()


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("case", list(W8A8_CASES))
def test_w8a8_on_a_gpu_equals_the_interpreter(source, case):
    """The hardware's m16n8k32 against the interpreter (benchmarks/gpu_session.sh runs the
    tests marked gpu on a lent GPU)."""
    m, n, k, params = W8A8_CASES[case]
    arguments = _w8a8_arguments(m, n, k)
    _, expected = _run(source, "w8a8", "interp", arguments, params)
    _, got = _run(source, "w8a8", "cuda", arguments, params)
    assert np.array_equal(got[5], expected[5])
    assert np.array_equal(got[4].view(np.uint16), expected[4].view(np.uint16))


# ---- the machine code ---------------------------------------------------------------------------
@NO_NVCC
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_w8a8_compiles_to_the_integer_mma(source, arch):
    """nvcc with warnings as errors; the PTX has the s8 mma and no dp4a, and where cuobjdump is
    installed the SASS has `IMMA` and no `IDP` (before: 256 `IDP.4A` in the main loop)."""
    from lpir.backends.cuda.sass import disassemble, find_cuobjdump

    kernel = lpir.compile(source, target="cuda", kernel="w8a8", M=100, N=4096, K=4096)
    ptx = kernel.source("ptx", arch)
    assert "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32" in ptx
    assert "dp4a" not in ptx
    log: list[str] = []
    cubin = compile_with_nvcc(
        kernel.source("cuda"), arch, "cubin", strict=True, extra=("-Xptxas", "-v"), log=log
    )
    assert " 0 bytes stack frame" in "".join(log), log
    if find_cuobjdump() is None:
        pytest.skip("cuobjdump is not installed")
    sass = disassemble(cubin)
    assert "IMMA.16832.S8.S8" in sass
    assert "IDP" not in sass
