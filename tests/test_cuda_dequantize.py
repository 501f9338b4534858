"""The CUDA dequantization fast paths, bit for bit: packed integers of every width (fields
inside bytes, straddling bytes and straddling 32-bit words; signed and unsigned) and small
floats (every code) cast to f32, bf16 and f16, integers with a folded zero point, on the cuda
pipeline's thread IR (thread interpreter) and in the emitted CUDA C run on the host, against
the reference interpreter. Zero points of 256 and -200 push bf16 results past its 8
significant bits, so the one rounding is checked too. Rows that start one element into an
odd-width row put fields off the width's bit grid."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel

import lpir

SOURCE = """
kernel dq[WT = u3, OUT = bf16, M = 32, N = 96, Z = 3, OFF = 0](
    q: global WT[M, N + OFF],
    y: global OUT[M, N],
) blocks(1) threads(64) {
    store(y[0 :+ M, 0 :+ N], cast<OUT>(load(q[0 :+ M, OFF :+ N])) - Z)
}
"""
WEIGHTS = ["u1", "u2", "u3", "i3", "u4", "i4", "u5", "i5", "u6", "i6", "u7", "i7", "u8", "i8"]
CASES = [
    (weight, out, zero)
    for weight in WEIGHTS
    for out in ("f32", "bf16", "f16")
    for zero in ((3, 256) if out == "f32" else (-200, 256) if out == "bf16" else (3,))
]
# Small floats: fp6/fp7/fp5 fields straddle bytes (pairs of windows), fp3/fp4 do not.
SMALL_FLOATS = ["f3e1m1", "f4e2m1", "f5e2m2", "f6e3m2", "f6e2m3", "f7e3m3"]
CASES += [(weight, out, 0) for weight in SMALL_FLOATS for out in ("f32", "bf16", "f16")]
# Rows that start mid-byte (an odd column of an odd width): fields off the width's grid.
OFFSET_CASES = [(weight, "f32", 3, 1) for weight in ("u3", "i5", "u5", "u6", "i7")]


def packed(weight: str, rng: np.random.Generator, columns: int):
    """Random weights of `weight` (every code of a small float), packed."""
    dt = lpir.dtype(weight)
    if dt.is_small_float:
        return lpir.pack_codes(
            rng.integers(0, 1 << dt.nbits, size=(32, columns), dtype=np.uint8), dt
        )
    bits = dt.nbits
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if weight[0] == "i" else (0, 1 << bits)
    return lpir.pack(rng.integers(low, high, size=(32, columns)), weight)


def dequantize_cases(directory):
    """(params, packed q, wanted y, thread-IR kernel) per case, each checked bit for bit on
    the thread interpreter against the reference on the way."""
    path = directory / "dq.lp"
    path.write_text(SOURCE)
    rng = np.random.default_rng(7)
    prepared = []
    for weight, out, zero, offset in [(*case, 0) for case in CASES] + OFFSET_CASES:
        params = {"WT": weight, "OUT": out, "Z": zero, "OFF": offset}
        q = packed(weight, rng, 96 + offset)
        wanted = np.zeros((32, 96), lpir.dtype(out).numpy_dtype)
        lpir.compile(str(path), target="interp", **params)(q, wanted)
        kernel = lpir.compile(str(path), target="threads-cuda", **params)
        lowered = np.zeros_like(wanted)
        kernel(q, lowered)
        np.testing.assert_array_equal(lowered.view(np.uint8), wanted.view(np.uint8), str(params))
        prepared.append((params, q, wanted, kernel.last.module.kernels[0]))
    return prepared


def dequantize_sources(prepared):
    return [emit_kernel(case[3], f"dq_{index}") for index, case in enumerate(prepared)]


def check_dequantized(prepared, runners) -> None:
    for (params, q, wanted, _), runner in zip(prepared, runners):
        got = np.zeros_like(wanted)
        runner.run([q, got])
        np.testing.assert_array_equal(got.view(np.uint8), wanted.view(np.uint8), str(params))


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_packed_integers_dequantize_bit_exactly(tmp_path):
    prepared = dequantize_cases(tmp_path)
    check_dequantized(prepared, emulate_kernels(dequantize_sources(prepared)))


OFF_GRID = (
    (
        "kernel @off_grid[](%q: global u8[256], %y: global f32[32, 6]) "
        "blocks(1, 1, 1) threads(32) stage(thread) {"
    )
    + """
  %tid = thread_index : i32
  %eight = constant {value = 8} : i32
  %base = mul(%tid, %eight) : i32
  %bytes = ld(%q, %base) {offsets = [0, 1, 2, 3, 4, 5, 6, 7], vector = 8} : <8 x u8>
  %fields = unpack_bits(%bytes) {bit_offsets = [0, 7, 18, 25, 40, 57]} : <6 x u7>
  %values = cast(%fields) : <6 x f32>
  %six = constant {value = 6} : i32
  %out = mul(%tid, %six) : i32
  st(%y, %out, %values) {offsets = [0, 1, 2, 3, 4, 5]}
}
"""
)


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_fields_off_the_width_grid_get_windows_of_their_own():
    """7-bit fields at bits 18 and 40 would sit at bit 18 or 19 of their 21-bit-spaced
    windows, past what the mantissa of 2^23 holds with 7 bits: they get their own window."""
    from lpir.interpreter.thread import run_thread_kernel
    from lpir.ir.parser import parse

    kernel = parse(OFF_GRID).kernels[0]
    source = emit_kernel(kernel, "off_grid")
    assert "__funnelshift_r" in source.text and ", 18);" in source.text
    q = np.random.default_rng(3).integers(0, 256, 256).astype(np.uint8)
    wanted = np.zeros((32, 6), np.float32)
    run_thread_kernel(kernel, [q.copy(), wanted.view(np.uint8).ravel()])
    bits = np.unpackbits(q.reshape(32, 8), axis=1, bitorder="little")
    for lane, bit in enumerate([0, 7, 18, 25, 40, 57]):
        expected = bits[:, bit : bit + 7] @ (1 << np.arange(7))
        np.testing.assert_array_equal(wanted[:, lane], expected)
    (runner,) = emulate_kernels([source])
    emulated = np.zeros_like(wanted)
    runner.run([q, emulated])
    np.testing.assert_array_equal(emulated, wanted)


# Rows whose slots pair fields d apart (as a k-permuted mma operand does, see
# tests/test_mma_permuted.py): both fields of a pair in one 32-bit window, decoded by one lop3
# into two mantissas of different powers of two and one hadd2 (`lpir_magic_f16x2_at`), or, for
# fp4 16 bits apart, by the small-float decoder on the word itself. Such a layout is no product
# of primitives, so the kernel is tile IR with the layout spelled out.
PAIRED = """
kernel dq[WT = u3, M = 32, N = 96, Z = 3](q: global WT[M, N], y: global f16[M, N])
    blocks(1) threads(64) {
    store(y[0 :+ M, 0 :+ N], cast<f16>(load(q[0 :+ M, 0 :+ N]) @ spatial(32, 2).local(1, 48)) - Z)
}
"""
PAIRED_WEIGHTS = ["u1", "u2", "u3", "i3", "u4", "i4", "u5", "i5", "u6", "i6", "u7", "i7"]


def paired_layout(distance: int) -> str:
    """[32, 96] over 64 threads: a row per 2 threads, 48 columns each, slot pairs `distance`
    apart (columns u1 * 2d + e * d + u0, slots in the order u1, u0, e)."""
    from lpir.layout.draft import LayoutDraft
    from lpir.layout.text import format_layout

    draft = LayoutDraft(
        {0: 32, 1: 2, 2: 48 // (2 * distance), 3: 2, 4: distance},
        [[0], [1, 2, 3, 4]],
        [0, 1],
        [2, 4, 3],
    )
    return format_layout(draft.finish())


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
@pytest.mark.parametrize("weight", [*PAIRED_WEIGHTS, "f4e2m1"])
def test_fields_paired_in_one_window_dequantize_bit_exactly(tmp_path, weight):
    from lpir.passes.layout_rules import pair_distance

    dt = lpir.dtype(weight)
    distance = min(pair_distance(dt, 128), 8)  # 48 columns: d divides 24
    source = tmp_path / "dq.lp"
    source.write_text(PAIRED)
    params = {"WT": weight, "Z": 0 if dt.is_float else 3}
    tile_ir = lpir.compile(str(source), target="interp", **params).ir("after:canonicalize")
    layout = paired_layout(distance)
    assert layout.startswith("layout(")
    path = tmp_path / "dq.ir"
    path.write_text(tile_ir.replace("spatial(32,2).local(1,48)", layout))
    q = packed(weight, np.random.default_rng(5), 96)
    wanted = np.zeros((32, 96), np.float16)
    lpir.compile(str(path), target="interp")(q, wanted)
    kernel = lpir.compile(str(path), target="threads-cuda")
    lowered = np.zeros_like(wanted)
    kernel(q, lowered)
    np.testing.assert_array_equal(lowered.view(np.uint16), wanted.view(np.uint16))
    emitted = emit_kernel(kernel.last.module.kernels[0], "dq_paired")
    decoder = "lpir_small_fields_to_f16x2<" if dt.is_float else "lpir_magic_f16x2_at("
    assert decoder in emitted.text and "__byte_perm" not in emitted.text
    (runner,) = emulate_kernels([emitted])
    emulated = np.zeros_like(wanted)
    runner.run([q, emulated])
    np.testing.assert_array_equal(emulated.view(np.uint16), wanted.view(np.uint16))
