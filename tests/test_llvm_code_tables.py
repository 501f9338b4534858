"""Functions of small codes as table lookups (backends/llvm/code_tables.py): chains of casts and
elementwise ops on the codes of 1- to 5-bit types, with operands the same across each register
(scalars, a lane of a vector repeated), against the thread-IR interpreter bit for bit, for
every code; and the LLVM IR shows where tables are built and where lanes are computed as they
are (too many distinct tables, or a runtime table for a single register of lanes)."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel, jit, llvm_module
from test_llvm_harness import LaneKernel, check, codes_array, empty_for, private_cache  # noqa: F401

import lpir
from lpir.dtypes import dtype
from lpir.ir import parse

AVX512 = "+avx512f" in jit.host()[2].split(",")
AVX512_BW = "+avx512bw" in jit.host()[2].split(",")
LANES, THREADS = 64, 4
SOURCES = ["u1", "u2", "u3", "u4", "u5", "i2", "i3", "i4", "i5", "f3e1m1", "f4e2m1", "f5e2m2"]
PERMUTES = ("llvm.x86.avx512.permvar.sf.512", "llvm.x86.avx512.vpermi2var.ps.512")


def every_code(source: str) -> np.ndarray:
    """Every code of `source`, repeated to fill a grid of LANES x THREADS lanes per block."""
    dt = dtype(source)
    codes = np.arange(1 << dt.nbits, dtype=np.uint16).astype(np.uint8)
    per_block = LANES * THREADS
    return np.resize(codes, 2 * per_block)


def values_of(codes: np.ndarray, source: str) -> np.ndarray:
    dt = dtype(source)
    return dt.decode(codes) if dt.is_float else dt.from_codes(codes)


def dequantize_kernel(source: str, shuffle: list[int] | None = None) -> tuple[str, list]:
    """f32: max(((cast(q) - 3) * s) / t, -1); s a scalar argument, t a lane of a loaded
    vector repeated by `shuffle` (every lane by default). i32: cast(q) * k + 5
    (wrapping integer arithmetic). No multiply feeds an add in f32: LLVM may fuse those into one
    rounding, which the interpreter does not."""
    kernel = LaneKernel(2 * LANES * THREADS, LANES, THREADS)
    q = kernel.load(source)
    s = kernel.scalar("f32")
    divisors = kernel.load("f32")
    t = kernel.op(f"shuffle({divisors}) {{indices = {shuffle or [0] * LANES}}}", "f32")
    three = kernel.fresh("c")
    kernel.emit(f"{three}s = constant {{value = 3.0}} : f32")
    kernel.emit(f"{three} = splat({three}s) {{shape = [{LANES}]}} : <{LANES} x f32>")
    wide = kernel.op(f"cast({q})", "f32")
    scaled = kernel.op(f"mul({kernel.op(f'sub({wide}, {three})', 'f32')}, {s})", "f32")
    divided = kernel.op(f"div({scaled}, {t})", "f32")
    minus_one = kernel.fresh("c")
    kernel.emit(f"{minus_one}s = constant {{value = -1.0}} : f32")
    kernel.emit(f"{minus_one} = splat({minus_one}s) {{shape = [{LANES}]}} : <{LANES} x f32>")
    kernel.store(kernel.op(f"max({divided}, {minus_one})", "f32"), "f32")
    k = kernel.scalar("i32")
    integer = kernel.op(f"mul({kernel.op(f'cast({q})', 'i32')}, {k})", "i32")
    five = kernel.fresh("c")
    kernel.emit(f"{five}s = constant {{value = 5}} : i32")
    kernel.emit(f"{five} = splat({five}s) {{shape = [{LANES}]}} : <{LANES} x i32>")
    kernel.store(kernel.op(f"add({integer}, {five})", "i32"), "i32")
    n = 2 * LANES * THREADS
    rng = np.random.default_rng(4)
    divisor_values = rng.uniform(0.5, 2.0, n).astype(np.float32)
    arguments = [
        every_code(source),
        np.float32(0.37),
        divisor_values,
        empty_for("f32", n),
        np.int32(-7),
        empty_for("i32", n),
    ]
    return kernel.text(f"tables_{source}"), arguments


@pytest.mark.parametrize("source", SOURCES)
def test_tabulated_chains_are_bit_exact(source):
    text, arguments = dequantize_kernel(source)
    result = check(text, arguments)  # identical bytes to the thread interpreter
    values = values_of(arguments[0], source).astype(np.float64)
    divisors = np.repeat(arguments[2][::LANES], LANES)  # each thread's first lane
    expected = np.maximum((values - 3) * np.float64(np.float32(0.37)) / divisors, -1)
    np.testing.assert_allclose(result[3].view(np.float32), expected, rtol=1e-6)  # (and right)
    np.testing.assert_array_equal(result[5].view(np.int32), values.astype(np.int32) * -7 + 5)


@pytest.mark.parametrize("source", ["u4", "i3", "u5"])
def test_two_tables_per_thread_are_bit_exact(source):
    """Half a thread's lanes divide by one value, half by another: two tables."""
    text, arguments = dequantize_kernel(source, [0] * 32 + [1] * 32)
    check(text, arguments)


def permutes_per_stored_register(text: str) -> float:
    """Permutes in the optimized IR per register of 16 lanes stored: a ratio, because LLVM
    may unroll the loops over threads and blocks (LLVM 22 does), copying both alike."""
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir_optimized
    permutes = sum(llvm_ir.count(f"call <16 x float> @{name}(") for name in PERMUTES)
    stores = sum(llvm_ir.count(f"store <16 x {t}> ") for t in ("float", "i32"))
    assert stores
    return permutes / stores


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
def test_which_values_are_tabulated():
    # one table per thread for every value: each stored register of both results (4 + 4) is
    # one permute, and nothing else is
    assert permutes_per_stored_register(dequantize_kernel("u4")[0]) == 1
    # two distinct divisors: still fewer tables than the 4 registers of lanes
    assert permutes_per_stored_register(dequantize_kernel("u4", [0] * 32 + [1] * 32)[0]) == 1
    # four distinct divisors, one per register: the division is computed lane by lane, from
    # the lookups of its operand (the i32 chain stays tabulated)
    four = [0] * 16 + [1] * 16 + [2] * 16 + [3] * 16
    assert permutes_per_stored_register(dequantize_kernel("u4", four)[0]) == 1
    text = dequantize_kernel("u4", four)[0]
    assert "fdiv <16 x float>" not in compile_kernel(parse(text), {}).llvm_ir_optimized
    # 32 codes: a pair of registers per table (vpermi2ps)
    llvm_ir = compile_kernel(parse(dequantize_kernel("u5")[0]), {}).llvm_ir_optimized
    assert "llvm.x86.avx512.vpermi2var.ps.512" in llvm_ir


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
def test_one_register_of_lanes_takes_constant_tables_only():
    """With 16 lanes a table built at run time costs what the lanes do: only the cast (a
    constant table) is a lookup, the multiply by a run-time scalar is computed."""
    kernel = LaneKernel(16 * THREADS, 16, THREADS)
    q = kernel.load("u4")
    s = kernel.scalar("f32")
    kernel.store(kernel.op(f"mul({kernel.op(f'cast({q})', 'f32')}, {s})", "f32"), "f32")
    text = kernel.text("one_register")
    llvm_ir = str(llvm_module(parse(text)))  # as emitted: one lookup, then the lanes' fmul
    assert llvm_ir.count('call <16 x float> @"llvm.x86.avx512.permvar.sf.512"') == 1
    assert "fmul contract <16 x float>" in llvm_ir
    codes = codes_array(np.resize(np.arange(16), 16 * THREADS), "u4")
    check(text, [codes, np.float32(1.5), empty_for("f32", 16 * THREADS)])


def half_chain_kernel(source: str) -> tuple[str, list]:
    """skinny_wq's weights: f16 `cast(q) - 8` (stored as f16 too), then into f32 and scaled by
    a scalar: tables of 16-bit entries on the way to 32-bit ones."""
    kernel = LaneKernel(2 * LANES * THREADS, LANES, THREADS)
    q = kernel.load(source)
    eight = kernel.fresh("c")
    kernel.emit(f"{eight}s = constant {{value = 8.0}} : f16")
    kernel.emit(f"{eight} = splat({eight}s) {{shape = [{LANES}]}} : <{LANES} x f16>")
    centered = kernel.op(f"sub({kernel.op(f'cast({q})', 'f16')}, {eight})", "f16")
    kernel.store(centered, "f16")
    s = kernel.scalar("f32")
    kernel.store(kernel.op(f"mul({kernel.op(f'cast({centered})', 'f32')}, {s})", "f32"), "f32")
    n = 2 * LANES * THREADS
    arguments = [every_code(source), empty_for("f16", n), np.float32(0.37), empty_for("f32", n)]
    return kernel.text(f"half_{source}"), arguments


@pytest.mark.parametrize("source", ["u4", "i4", "f4e2m1", "u5"])
def test_chains_through_f16_are_bit_exact(source):
    text, arguments = half_chain_kernel(source)
    check(text, arguments)


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
def test_chains_through_f16_are_lookups():
    """Neither the f16 subtraction (an f32 one and a rounding to f16 per lane) nor the casts
    are computed lane by lane: every 16 stored lanes of both results are one permute."""
    text, _ = half_chain_kernel("u4")
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir_optimized
    assert "fptrunc <16 x float>" not in llvm_ir and "fsub <16 x float>" not in llvm_ir
    permutes = sum(llvm_ir.count(f"call <16 x float> @{name}(") for name in PERMUTES)
    stored = sum(
        lanes * llvm_ir.count(f"store <{lanes} x {t}> ")
        for lanes in (16, 32)
        for t in ("float", "i16")
    )
    assert stored and 16 * permutes == stored


def bf16_chain_kernel(source: str) -> tuple[str, list]:
    """skinny_wq's weights with bf16 x: bf16 `cast(q) - 8` from packed codes, stored."""
    kernel = LaneKernel(2 * LANES * THREADS, LANES, THREADS)
    q = kernel.load(source)
    eight = kernel.fresh("c")
    kernel.emit(f"{eight}s = constant {{value = 8.0}} : bf16")
    kernel.emit(f"{eight} = splat({eight}s) {{shape = [{LANES}]}} : <{LANES} x bf16>")
    kernel.store(kernel.op(f"sub({kernel.op(f'cast({q})', 'bf16')}, {eight})", "bf16"), "bf16")
    return kernel.text(f"bf16_{source}"), [
        every_code(source),
        empty_for("bf16", 2 * LANES * THREADS),
    ]


@pytest.mark.parametrize("source", ["u4", "i4", "u3", "u5", "i5", "f4e2m1", "u1"])
def test_bf16_chains_in_16_bit_lanes_are_bit_exact(source):
    text, arguments = bf16_chain_kernel(source)
    check(text, arguments)


@pytest.mark.skipif(not AVX512_BW, reason="the host has no AVX-512BW")
def test_bf16_chains_are_one_vpermw_per_32_lanes():
    """The codes go straight into 16-bit words and each 32 lanes of the chain's result are one
    `vpermw` of a 32-entry table: no f32 lookups, no bf16 arithmetic per lane."""
    text, _ = bf16_chain_kernel("u4")
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir_optimized
    words = llvm_ir.count("call <32 x i16> @llvm.x86.avx512.permvar.hi.512(")
    assert words and not any(name in llvm_ir for name in PERMUTES)
    assert "fsub" not in llvm_ir
    stored = sum(lanes * llvm_ir.count(f"store <{lanes} x i16> ") for lanes in (16, 32, 64))
    assert 32 * words == stored


# NF4 (bitsandbytes): bytes of two 4-bit codes, the high nibble first, looked up in a codebook of
# E f32 entries (16; fewer: the codes past its end read 0), one scale per 64 weights. A code of
# SKIP is masked off (reads 0), and so are a block's elements from LANES on (no function of
# the code: it selects after the lookups).
NF4 = """
kernel nf4_dequant[N = 37, K = 320, E = 16, BM = 16, BK = 256, SKIP = 16, LANES = 4096](
    w: global u8[N, K / 2], absmax: global f32[N, K / 64], cb: global f32[E], y: global f32[N, K],
) blocks(cdiv(N, BM), cdiv(K, BK)) threads(128) {
    r = block.x * BM
    c = block.y * BK
    b = load(w[r :+ BM, c / 2 :+ BK / 2])
    codes = reshape(stack(cast<i32>(b >> 4), cast<i32>(b & 0x0F), axis = -1), BM * BK)
    keep = (codes != SKIP) & (arange(BM * BK) < LANES)
    v = reshape(load(cb[codes], mask = keep), BM, BK / 64, 64)
    s = load(absmax[r :+ BM, c / 64 :+ BK / 64])
    store(y[r :+ BM, c :+ BK], reshape(v * s[:, :, None], BM, BK))
}

kernel nf4_gemv[N = 100, K = 320, E = 16, BN = 64, BK = 128](
    x: global f32[K], w: global u8[N, K / 2], absmax: global f32[N, K / 64], cb: global f32[E],
    y: global f32[N],
) blocks(cdiv(N, BN)) threads(128) {
    rows = block.x * BN
    sc = shared<f32>[E]
    store(sc, load(cb[0 :+ E]))
    acc = zeros<f32>[BN, BK / 64, 64]
    for k0 in range(0, K, BK) {
        b = load(w[rows :+ BN, k0 / 2 :+ BK / 2])
        codes = reshape(stack(cast<i32>(b >> 4), cast<i32>(b & 0x0F), axis = -1), BN * BK)
        v = reshape(load(sc[codes]), BN, BK / 64, 64)
        s = load(absmax[rows :+ BN, k0 / 64 :+ BK / 64])
        xt = reshape(load(x[k0 :+ BK]), BK / 64, 64)
        acc += v * s[:, :, None] * xt[None, :, :]
    }
    store(y[rows :+ BN], sum(sum(acc, axis = 2), axis = 1))
}

kernel codebook_per_block[N = 37, K = 320, BM = 16, BK = 256](
    q: global u4[N, K], cb: global f32[cdiv(N, BM), 16], y: global f32[N, K],
) blocks(cdiv(N, BM), cdiv(K, BK)) threads(128) {
    r = block.x * BM
    c = block.y * BK
    codes = reshape(cast<i32>(load(q[r :+ BM, c :+ BK])), BM * BK)
    store(y[r :+ BM, c :+ BK], reshape(load(cb[block.x, codes + 1]), BM, BK))
}
"""
NF4_CODEBOOK = np.array(
    [-1.0, -0.6961928, -0.52507305, -0.3949175, -0.28444138, -0.18477343, -0.091050036, 0.0,
     0.0795803, 0.1609302, 0.2461123, 0.33791524, 0.44070983, 0.562617, 0.72295684, 1.0],
    np.float32,
)  # fmt: skip


def nf4_arguments(kernel: str, n: int, k: int, entries: int) -> list:
    rng = np.random.default_rng(11)
    codes = np.resize(np.arange(16, dtype=np.uint8), n * k).reshape(n, k)  # every code, often
    rng.shuffle(codes, axis=1)
    w = (codes[:, 0::2] << 4) | codes[:, 1::2]
    absmax = rng.uniform(0.5, 2, (n, k // 64)).astype(np.float32)
    codebook = NF4_CODEBOOK[:entries].copy()
    if kernel == "codebook_per_block":
        codebooks = rng.standard_normal((-(-n // 16), 16)).astype(np.float32)
        import lpir

        return [lpir.pack_codes(codes, dtype("u4")), codebooks, np.zeros((n, k), np.float32)]
    if kernel == "nf4_gemv":
        x = rng.standard_normal(k).astype(np.float32)
        return [x, w, absmax, codebook, np.zeros(n, np.float32)]
    return [w, absmax, codebook, np.zeros((n, k), np.float32)]


def run_nf4(kernel: str, target: str, **params) -> np.ndarray:
    import lpir

    n, k, entries = params.get("N", 37 if kernel != "nf4_gemv" else 100), 320, params.get("E", 16)
    arguments = nf4_arguments(kernel, n, k, entries)
    lpir.compile(NF4, target=target, kernel=kernel, **params)(*arguments)
    return arguments[-1]


def table_loads_in(kernel: str, **params) -> str:
    import lpir

    return lpir.compile(NF4, target="cpu", kernel=kernel, **params).source("llvm")


@pytest.mark.parametrize(
    "params",
    [{}, {"E": 10}, {"E": 10, "SKIP": 3}, {"SKIP": 15, "LANES": 3000}],
    ids=["16 entries", "10 entries", "10 entries, code 3 masked", "code 15 and lanes masked"],
)
def test_nf4_codebook_gathers_are_bit_exact(params):
    """A codebook gathered by u4 codes cut out of bytes (the high nibble first, as
    bitsandbytes packs them) with shifts and masks: on AVX-512 hosts one masked load of the
    codebook and a permute per 16 lanes, bit for bit the interpreter's; codes past a codebook
    of 10 entries and masked codes read 0, and nothing past its end is read; rows and columns
    past the tensor's edges (37 x 320 in tiles of 16 x 256)."""
    expected = run_nf4("nf4_dequant", "interp", **params)
    np.testing.assert_array_equal(run_nf4("nf4_dequant", "cpu", **params), expected)
    if not params:
        assert (expected != 0).mean() > 0.8  # (not all zeros: code 7 is the only 0.0)
    if AVX512:
        llvm_ir = table_loads_in("nf4_dequant", **params)
        assert "llvm.x86.avx512.permvar.sf.512" in llvm_ir
        assert "llvm.masked.load.v16f32" in llvm_ir and "llvm.masked.gather" not in llvm_ir


def test_nf4_gemv_from_a_shared_codebook_is_exact():
    """The GEMV, its codebook copied to shared memory, 100 rows in tiles of 64 and K = 320 in
    steps of 128: the same bits with and without tables (the interpreter sums without FMAs)."""
    tables = run_nf4("nf4_gemv", "cpu")
    expected = run_nf4("nf4_gemv", "interp")
    np.testing.assert_allclose(tables, expected, rtol=1e-5, atol=1e-5)
    from lpir.backends.llvm.code_tables import CodeTables

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CodeTables, "emit", lambda self, op: None)
        np.testing.assert_array_equal(tables, run_nf4("nf4_gemv", "cpu"))
    if AVX512:
        assert "llvm.x86.avx512.permvar.sf.512" in table_loads_in("nf4_gemv")


def test_positions_that_are_not_constants_gather_the_table():
    """A codebook per block of rows (`cb[block.x, codes + 1]`: its positions not constants,
    code 15 past each row's end): one masked gather of the table, then the permutes."""
    expected = run_nf4("codebook_per_block", "interp")
    np.testing.assert_array_equal(run_nf4("codebook_per_block", "cpu"), expected)
    if AVX512:
        llvm_ir = table_loads_in("codebook_per_block")
        assert "llvm.x86.avx512.permvar.sf.512" in llvm_ir
        # 16 entries gathered, where each thread gathered its 32 lanes
        assert "llvm.masked.gather.v16f32" in llvm_ir
        assert "llvm.masked.gather.v32f32" not in llvm_ir


# ---- the reviewer's cases of 4037e02: tables built where every reader sees them ---------------
NIBBLES_IN_AND_AFTER_A_LOOP = """
kernel k[N = 256](w: global u8[N / 2], s: global f32[4], n: i32, y: global f32[N])
    blocks(1) threads(4) {
    b = load(w[0 :+ N / 2])
    v = reshape(stack(cast<f32>(b >> 4), cast<f32>(b & 0x0F), axis = -1), N)
    acc = zeros<f32>[N]
    for i in range(0, n) {
        acc += (v - 8.0) * load(s[i])
    }
    store(y[0 :+ N], acc + (v - 8.0))
}
"""
CODEBOOK_UNDER_AN_IF = """
kernel k[N = 256](w: global u8[N / 2], cb: global f32[16], flag: global i32[1],
    y: global f32[N], z: global f32[N]) blocks(1) threads(4) {
    b = load(w[0 :+ N / 2])
    codes = reshape(stack(cast<i32>(b >> 4), cast<i32>(b & 0x0F), axis = -1), N)
    let f = load(flag[0])
    if f > 0 {
        store(y[0 :+ N], load(cb[codes]))
    }
    store(z[0 :+ N], load(cb[codes]))
}
"""


def _cpu_equals_interp(source: str, arguments) -> None:
    results = []
    for target in ("interp", "cpu"):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]
        lpir.compile(source, target=target)(*copies)
        results.append(copies)
    for wanted, got in zip(*results, strict=True):
        if isinstance(wanted, np.ndarray):
            np.testing.assert_array_equal(got, wanted)


def test_nibble_tables_read_in_and_after_a_loop_or_an_if():
    """A value of nibbles tabulated at its first reader (inside a loop, or inside an `if`) and
    reused after it: LLVM refused the module ('Instruction does not dominate all uses')."""
    rng = np.random.default_rng(0)
    w = rng.integers(0, 256, 128).astype(np.uint8)
    scales = np.arange(4, dtype=np.float32)
    _cpu_equals_interp(NIBBLES_IN_AND_AFTER_A_LOOP, [w, scales, 3, np.zeros(256, np.float32)])
    codebook = rng.standard_normal(16).astype(np.float32)
    for flag in (0, 1):
        zeros = np.zeros(256, np.float32)
        flags = np.array([flag], np.int32)
        _cpu_equals_interp(CODEBOOK_UNDER_AN_IF, [w, codebook, flags, zeros, zeros.copy()])


def test_a_field_of_u64_words_and_a_codebook_of_run_time_rows():
    """`cast<f32>(w >> 60)` of u64 words: LLVM refused a zext from i64 to i32. A codebook with a
    run-time first dimension read under a lane mask: the row's edge was applied after the
    table read, which read the rows past the tensor."""
    fields = """
kernel k[N = 256](w: global u64[N], s: f32, y: global f32[N]) blocks(1) threads(4) {
    store(y[:], (cast<f32>(load(w[:]) >> 60) - 8.0) * s)
}
"""
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2**63, 256, dtype=np.uint64) * 2 + 1
    _cpu_equals_interp(fields, [w, np.float32(0.5), np.zeros(256, np.float32)])
    rows = """
kernel k[N = 256, NB = 4](q: global u4[N], m: i32, cb: global f32[m, 16], y: global f32[NB, N])
    blocks(NB) threads(4) {
    codes = cast<i32>(load(q[0 :+ N]))
    store(y[block.x, 0 :+ N], load(cb[block.x, codes], mask = arange(N) < 200))
}
"""
    q = lpir.pack_codes(rng.integers(0, 16, 256).astype(np.uint8), "u4")
    codebook = rng.standard_normal((1, 16)).astype(np.float32)
    _cpu_equals_interp(rows, [q, 1, codebook, np.zeros((4, 256), np.float32)])
    kernel = lpir.compile(rows, target="cpu")
    kernel(q, 1, codebook, np.zeros((4, 256), np.float32))
    llvm_ir = kernel.source("llvm")
    assert "llvm.masked.gather.v64f32" in llvm_ir  # each lane gathered: no table of the row


@pytest.mark.parametrize("field_too", [False, True])
def test_codes_read_again_past_a_barrier(field_too):
    """Codes that cross a `sync()` are reloaded at the top of the next thread loop, the field
    they were cut from after them (where it crosses too): their tables were built right after
    the codes' reload, before the field's ('Instruction does not dominate all uses'); without
    the field, the cast's operand was not there at all ('value ? is not available here')."""
    later = "\n    store(u[0 :+ N], sh)" if field_too else ""
    source = f"""
kernel k[N = 256](w: global u8[N], cb: global f32[16], y: global f32[N], u: global u8[N])
    blocks(1) threads(4) {{
    sh = load(w[0 :+ N]) >> 4
    codes = cast<i32>(sh)
    s = shared<f32>[N]
    store(s, load(cb[codes]))
    sync()
    store(y[0 :+ N], load(s[N - 1 - arange(N)]) + load(cb[codes])){later}
}}
"""
    rng = np.random.default_rng(0)
    w = rng.integers(0, 256, 256).astype(np.uint8)
    codebook = rng.standard_normal(16).astype(np.float32)
    _cpu_equals_interp(source, [w, codebook, np.zeros(256, np.float32), np.zeros(256, np.uint8)])
