"""`cast` between every pair of lpir's 54 dtypes, compiled, against the thread-IR interpreter
(`lpir.dtypes.convert`): bit for bit on every output byte.

Sources of 8 bits or fewer and 16-bit sources are tried on every code. f32 and f64 sources
are tried on specials (zeros, infinities, NaNs, extremes), on the midpoints between
neighbouring values of every narrower float format and one ulp either side of them (where
round-to-nearest-even decides), on values just past each format's largest finite value (where
saturation or overflow to infinity decides), on half-integers and values around the integer
types' limits, and on random bit patterns. f64 midpoints are also nudged by far less than an
f32 ulp, which catches double rounding through f32. Wide integer sources are tried at their
limits, around 2^k, where int -> float rounding ties happen, one away from ties past 2^53
(where a conversion through a rounded f64 rounds twice), and at random.

The only freedom: a NaN result may carry any payload (NaN codes are compared as "is NaN").
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from dtype_references import near_ties_past_f64
from test_llvm_harness import (  # noqa: F401
    LaneKernel,
    codes_array,
    empty_for,
    private_cache,
    run_both,
)

from lpir.dtypes import ALL_DTYPE_NAMES, DType, dtype

LANES = 8
BLOCKS = 2  # few blocks of many threads: the interpreter steps a block's threads together
FLOATS = [dtype(n) for n in ALL_DTYPE_NAMES if dtype(n).is_float]
rng = np.random.default_rng(2024)


@np.errstate(all="ignore")
def grid(dt: DType) -> np.ndarray:
    """Every finite value of a float format of 16 bits or fewer, sorted, as float64."""
    codes = np.arange(1 << dt.nbits, dtype=np.uint32).astype(dt.code_numpy_dtype)
    values = dt.decode(codes).astype(np.float64)
    return np.unique(values[np.isfinite(values)])


@functools.cache
@np.errstate(all="ignore")
def decision_points() -> np.ndarray:
    """float64 values where narrower formats round or saturate: midpoints and extremes."""
    points = []
    for dt in FLOATS:
        if dt.nbits > 16:
            continue
        values = grid(dt)
        top = float(dt.max)
        ulp = top - values[-2]
        if dt.nbits == 16:
            values = np.unique(rng.choice(values, 3000))
        points.append((values[1:] + values[:-1]) / 2)
        points.append(np.array([top, top + ulp / 2, top + ulp / 4, top + ulp, 2 * top, 1e30]))
        tiny = float(dt.smallest_subnormal)
        points.append(np.array([tiny / 2, tiny / 4, tiny * 0.75, tiny * 1.5]))
    points.append(np.arange(-300, 300) + 0.5)
    for k in range(66):
        p = 2.0**k
        points.append(np.array([p - 1, p - 0.5, p, p + 0.5, p + 1]))
    merged = np.concatenate(points)
    return np.concatenate([merged, -merged])


@np.errstate(all="ignore")
def f32_values() -> np.ndarray:
    points = decision_points().astype(np.float32)
    near = np.concatenate(
        [points, np.nextafter(points, np.float32(np.inf)), np.nextafter(points, np.float32(0))]
    )
    big = np.finfo(np.float32).max
    specials = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            big,
            -big,
            np.finfo(np.float32).tiny,
            1e-45,
            3.4e38,
            2.0**31,
            -(2.0**31),
            2.0**63,
            -(2.0**63),
            2.0**64,
            4294967295.0,
        ],
        np.float32,
    )
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF], np.uint32).view(np.float32)
    bits = rng.integers(0, 2**32, 8000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = (rng.standard_normal(4000) * 10.0 ** rng.integers(-8, 8, 4000)).astype(np.float32)
    return np.concatenate([specials, nans, near, bits, normal])


@np.errstate(all="ignore")
def f64_values() -> np.ndarray:
    points = decision_points()
    nudges = points * 2.0**-35  # far below an f32 ulp: f32 rounding alone would hit the tie
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e308, -1e308, 5e-324])
    f32_ties = np.nextafter(np.float32(points), np.float32(np.inf)).astype(np.float64)
    f32_ties = (f32_ties + points.astype(np.float32).astype(np.float64)) / 2
    bits = rng.integers(0, 2**63, 6000, dtype=np.uint64).view(np.float64) * rng.choice(
        [-1, 1], 6000
    )
    normal = rng.standard_normal(4000) * 10.0 ** rng.integers(-12, 12, 4000)
    return np.concatenate(
        [specials, points, points + nudges, points - nudges, f32_ties, bits, normal]
    )


def int_values(dt: DType) -> np.ndarray:
    info = np.iinfo(dt.numpy_dtype)
    edges = [info.min, info.max, 0, 1, info.max - 1, info.min + 1]
    for k in range(dt.nbits):
        for delta in (-1, 0, 1):
            edges += [2**k + delta, -(2**k) + delta, 2**k + 2 ** max(0, k - 24) * 3]
    edges += [65504, 65519, 65520, 65536, 2**24 + 1, 2**24 + 3, 2**53 + 1, 2**53 + 3]
    edges += near_ties_past_f64(dt.nbits, dt.is_signed)
    edges = [e for e in edges if info.min <= e <= info.max]
    random = rng.integers(info.min, info.max, 8000, dtype=np.int64 if dt.is_signed else np.uint64)
    return np.concatenate([np.array(edges, dt.numpy_dtype), random.astype(dt.numpy_dtype)])


def source_codes(dt: DType) -> np.ndarray:
    """The codes a cast from `dt` is tried on (see the module docstring)."""
    if dt.nbits <= 16:
        codes = np.arange(1 << dt.nbits, dtype=np.uint32).astype(dt.code_numpy_dtype)
        return codes.astype(np.uint8) if dt.nbits < 8 else codes
    if dt.is_float:
        values = f32_values() if dt.nbits == 32 else f64_values()
        return values.astype(dt.numpy_dtype).view(dt.code_numpy_dtype)
    return int_values(dt).view(dt.code_numpy_dtype)


def padded(codes: np.ndarray) -> np.ndarray:
    """Repeated up to a power of two times BLOCKS * LANES elements."""
    size = max(codes.size, BLOCKS * LANES)
    return np.resize(codes, 1 << (size - 1).bit_length())


def compare(source: DType, target: DType, reference: np.ndarray, compiled: np.ndarray, inputs):
    if target.is_float:
        ref_nan = np.isnan(target.decode(reference).astype(np.float64))
        our_nan = np.isnan(target.decode(compiled).astype(np.float64))
        bad = np.flatnonzero((ref_nan != our_nan) | (~ref_nan & (reference != compiled)))
    else:
        bad = np.flatnonzero(reference != compiled)
    assert bad.size == 0, (
        f"cast {source.name} -> {target.name}: {bad.size} wrong, e.g. source codes "
        f"{inputs[bad[:4]]} gave {compiled[bad[:4]]}, expected {reference[bad[:4]]}"
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("source", ALL_DTYPE_NAMES)
def test_cast_to_every_dtype_is_bit_exact(source):
    check_casts_from(source)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("source", ["f16", "f32", "f64", "i32"])
def test_f16_casts_are_bit_exact_without_f16c_too(source, monkeypatch):
    """Where the host has F16C (this one, most likely), f16 converts by `vcvtph2ps` and
    `vcvtps2ph`; elsewhere by the integer codec. The same casts with F16C hidden from the
    backend (and the compiled-code cache, whose key holds the host's features), and AVX-512
    with it (which requires F16C: no host has one without the other, and LLVM turns it off)."""
    from lpir.backends.llvm import jit

    triple, cpu, features = jit.host()
    hidden = ",".join(
        f for f in features.split(",") if f and f != "+f16c" and not f.startswith("+avx512")
    )
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, hidden + ",-f16c"))
    check_casts_from(source)


def test_f16_converts_with_f16c_where_the_host_has_it():
    from llvmlite import ir
    from lpir.backends.llvm.casts import Caster
    from lpir.backends.llvm.intrinsics import Intrinsics

    def f16_to_f32_and_back(features: str) -> str:
        module = ir.Module()
        function = ir.Function(module, ir.FunctionType(ir.IntType(16), [ir.IntType(16)]), "f")
        builder = ir.IRBuilder(function.append_basic_block())
        caster = Caster(builder, Intrinsics(module), features)
        wide = caster.cast(function.args[0], dtype("f16"), dtype("f32"))
        builder.ret(caster.cast(wide, dtype("f32"), dtype("f16")))
        return str(module)

    native = f16_to_f32_and_back("+avx2,+f16c")
    assert "fpext half" in native and "fptrunc float" in native
    portable = f16_to_f32_and_back("+avx2,-f16c")
    assert "half" not in portable


def check_casts_from(source: str) -> None:
    """Casts from `source` to every dtype, compiled, bit for bit against the interpreter."""
    src = dtype(source)
    codes = padded(source_codes(src))
    kernel = LaneKernel(codes.size, LANES, codes.size // BLOCKS // LANES)
    value = kernel.load(src)
    for target in ALL_DTYPE_NAMES:
        kernel.store(kernel.op(f"cast({value})", target), target)
    outputs = [empty_for(target, codes.size) for target in ALL_DTYPE_NAMES]
    reference, compiled = run_both(kernel.text(f"cast_{source}"), [codes, *outputs])
    for index, target in enumerate(ALL_DTYPE_NAMES):
        compare(src, dtype(target), reference[index + 1], compiled[index + 1], codes)


def test_source_sets_cover_the_decisions():
    """The f32 set holds exact midpoints of f4e2m1 (e.g. 0.25, 2.5, 5.0) and values past max."""
    values = f32_values()
    for point in (0.25, 2.5, 5.0, 7.0, 65520.0, 464.0, -464.0):
        assert point in values
    assert codes_array(np.array([1.5], np.float32), "f32").dtype == np.uint32


def f16_nan_kernel(use: str) -> tuple[str, np.ndarray]:
    """A kernel storing `use` of `cast<f32>` of f16 codes that include NaNs with payloads and
    signs ("stored": the cast itself; "arithmetic": the cast times 2 plus 1); and the codes."""
    codes = np.array([0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x7D55, 0x7FFF, 0x3C00, 0xC000], np.uint16)
    codes = np.resize(codes, BLOCKS * LANES * 4)
    kernel = LaneKernel(codes.size, LANES, codes.size // BLOCKS // LANES)
    wide = kernel.op(f"cast({kernel.load('f16')})", "f32")
    if use == "arithmetic":
        two = kernel.op("splat(%c2) {shape = [8]}", "f32")
        one = kernel.op("splat(%c1) {shape = [8]}", "f32")
        wide = kernel.op(f"add({kernel.op(f'mul({wide}, {two})', 'f32')}, {one})", "f32")
        kernel.body.insert(0, "  %c2 = constant {value = 2.0} : f32")
        kernel.body.insert(0, "  %c1 = constant {value = 1.0} : f32")
    kernel.store(wide, "f32")
    return kernel.text(f"f16_nans_{use}"), codes


def test_a_stored_f16_cast_has_the_same_nan_bits_on_every_host(monkeypatch):
    """The native f16 -> f32 cast quiets NaNs and keeps their payloads, the integer codec
    (hosts without F16C) drops them: where the cast's bits are stored, the native cast's NaNs
    are made the codec's, so every host stores the same bytes."""
    from lpir.backends.llvm import jit

    text, codes = f16_nan_kernel("stored")
    native = run_both(text, [codes, np.zeros(codes.size, np.float32)])[1][1]
    triple, cpu, features = jit.host()
    hidden = ",".join(f for f in features.split(",") if f not in ("+f16c", ""))
    monkeypatch.setattr(jit, "host", lambda: (triple, cpu, hidden + ",-f16c"))
    portable = run_both(text, [codes, np.zeros(codes.size, np.float32)])[1][1]
    assert np.array_equal(native.view(np.uint32), portable.view(np.uint32))


def test_nan_bits_are_not_fixed_where_only_arithmetic_reads_them():
    """A cast whose NaNs only arithmetic reads (which may give any payload) skips the select
    that makes them lpir's: the values are the interpreter's, NaNs as NaNs of the same sign."""
    from lpir.backends.llvm import compile_kernel

    from lpir.ir import parse

    stored, _ = f16_nan_kernel("stored")
    arithmetic, codes = f16_nan_kernel("arithmetic")
    assert "fcmp uno" in compile_kernel(parse(stored), {}).llvm_ir
    assert "fcmp uno" not in compile_kernel(parse(arithmetic), {}).llvm_ir
    out = np.zeros(codes.size, np.float32)
    reference, compiled = run_both(arithmetic, [codes, out])
    expected, got = reference[1], compiled[1]
    assert np.array_equal(np.isnan(expected), np.isnan(got))
    assert np.array_equal(np.signbit(expected), np.signbit(got))
    assert np.array_equal(expected[~np.isnan(expected)], got[~np.isnan(got)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("lanes", [32, 48, 100])
@pytest.mark.parametrize("values", ["normal", "mixed"])
def test_f32_to_bf16_in_wide_registers_is_bit_exact(lanes, values):
    """On AVX512-BF16 hosts f32 -> bf16 is `vcvtne2ps2bf16` (32 lanes, 16 for a last part)
    where no lane of the vector is a NaN or subnormal, the integer codec where one is: vectors
    of normal values only (ties, overflow to infinity, tiny normals), and vectors where a few
    hold a NaN or a subnormal, bit for bit against the interpreter."""
    if values == "normal":
        everything = f32_values()
        magnitude = np.abs(everything)
        normal = everything[(magnitude >= np.finfo(np.float32).tiny) & np.isfinite(magnitude)]
        codes = np.concatenate([normal, np.float32([np.inf, -np.inf, 0.0, -0.0])])
    else:
        codes = f32_values()
    n = 4 * lanes * max(1, -(-codes.size // (4 * lanes)))
    inputs = np.resize(codes, n).view(np.uint32)
    kernel = LaneKernel(n, lanes, threads=2)
    kernel.store(kernel.op(f"cast({kernel.load('f32')})", "bf16"), "bf16")
    reference, compiled = run_both(kernel.text(f"to_bf16_{lanes}"), [inputs, empty_for("bf16", n)])
    compare(dtype("f32"), dtype("bf16"), reference[1], compiled[1], inputs)


def test_float_to_int_casts_of_vectors_are_vector_code():
    """f32 -> integers of up to 32 bits clamp, convert and select in vector instructions
    (casts.py `f32_to_int`): llvm.fptosi.sat on a vector became a vmaxss, vminss, vcvttss2si
    and vpinsrb per lane (quantize.lp 4096 x 4096 to i4: 26 -> 10 ms). The values are
    test_cast_to_every_dtype_is_bit_exact's."""
    from pathlib import Path

    import lpir

    quantize = Path(__file__).resolve().parent.parent / "examples" / "quantize.lp"
    for target in ("i4", "u8", "i32", "u32"):
        zero = {"i4": 0, "u8": 128, "i32": 0, "u32": 0}[target]
        kernel = lpir.compile(quantize, target="cpu", WT=target, ZERO=zero, M=64, N=64)
        llvm = kernel.specialize(None).source("llvm")
        assert "fptosi.sat" not in llvm and "fptoui.sat" not in llvm, target
        assert "fptosi <" in llvm or "fptoui <" in llvm, target
