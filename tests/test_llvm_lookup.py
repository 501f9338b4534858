"""Table-lookup casts (backends/llvm/lookup.py): every small float and fp8 to f32, f16 and
bf16, every code, against the thread-IR interpreter bit for bit (up to NaN payloads, as in
test_llvm_casts.py) — with codes loaded as bytes and cut out of packed words, for lane counts
that fill whole registers and ones that do not; the same kernels through the generic decode
(floats.py) that hosts without AVX-512 use; and the instructions that show which path ran."""

from __future__ import annotations

import re

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel, jit, lookup
from test_llvm_casts import compare
from test_llvm_harness import LaneKernel, empty_for, private_cache, run_both  # noqa: F401

from lpir.dtypes import ALL_DTYPE_NAMES, dtype
from lpir.ir import parse

SOURCES = [n for n in ALL_DTYPE_NAMES if dtype(n).is_float and dtype(n).nbits <= 8]
TARGETS = ["f32", "f16", "bf16"]
AVX512 = {"+avx512f", "+avx512bw"} <= set(jit.host()[2].split(","))


def cast_kernel(source: str, lanes: int, name: str) -> tuple[str, list]:
    """A kernel casting every code of `source` (repeated to fill the grid) to each target."""
    dt = dtype(source)
    codes = np.arange(1 << dt.nbits, dtype=np.uint16).astype(np.uint8)
    per_block = lanes * 4
    codes = np.resize(codes, -(-max(codes.size, 2 * per_block) // per_block) * per_block)
    kernel = LaneKernel(codes.size, lanes, threads=4)
    value = kernel.load(dt)  # 8-bit formats: byte loads; narrower: unpack_bits from words
    for target in TARGETS:
        kernel.store(kernel.op(f"cast({value})", target), target)
    arguments = [codes, *(empty_for(target, codes.size) for target in TARGETS)]
    return kernel.text(name), arguments


def check_all_targets(source: str, lanes: int, name: str) -> None:
    text, arguments = cast_kernel(source, lanes, name)
    reference, compiled = run_both(text, arguments)
    for index, target in enumerate(TARGETS):
        ours, theirs = compiled[index + 1], reference[index + 1]
        compare(dtype(source), dtype(target), theirs, ours, arguments[0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("lanes", [64, 48, 8])
@pytest.mark.parametrize("source", SOURCES)
def test_table_casts_are_bit_exact(source, lanes):
    check_all_targets(source, lanes, f"table_{source.replace('.', '_')}_{lanes}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("source", ["f4e2m1", "f6e3m2", "f8e4m3", "f8e5m2", "f8e6m1"])
def test_generic_decode_is_bit_exact(source, monkeypatch):
    monkeypatch.setattr(lookup.TableCaster, "applies", lambda *arguments: False)
    check_all_targets(source, 64, f"generic_{source}")  # its own name: its own cache entry


def test_every_f_format_but_the_widest_range_goes_through_f16():
    assert lookup.exact_through_f16(dtype("f8e4m3")) and lookup.exact_through_f16(dtype("f8e5m2"))
    assert lookup.exact_through_f16(dtype("f6e3m2")) and lookup.exact_through_f16(dtype("f3e1m1"))
    assert not lookup.exact_through_f16(dtype("f8e6m1"))  # 2^32 is past the f16 range


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
@pytest.mark.parametrize(
    ("source", "patterns"),
    [
        ("f4e2m1", [r"vperm(ps|d)\b"]),  # 16 f32 entries, indexed by the unpacked words
        ("f6e3m2", [r"vperm[it]2w", "vcvtph2ps"]),  # 64 entries: a pair of f16 registers
        ("f8e4m3", [r"vperm[it]2w", "vcvtph2ps"]),  # 256 entries: four pairs
    ],
)
def test_lookup_instructions(source, patterns):
    text, _ = cast_kernel(source, 64, f"asm_{source}")
    assembly = compile_kernel(parse(text), {}).assembly()
    for pattern in patterns:
        assert re.search(pattern, assembly), f"no {pattern} for {source}"


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
@pytest.mark.parametrize("source", ["f6e3m2", "f7e3m3", "f6e2m3"])
def test_fields_index_16_bit_tables_in_16_bit_lanes(source):
    """Fields cut out of bytes for 16-bit table entries go straight into 16-bit lanes
    (lookup.py: `cast_fields`): shifted there, never cut into 32-bit words and narrowed."""
    text, _ = cast_kernel(source, 64, f"words_{source}")
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir
    assert re.search(r"lshr <64 x i16> .*, <i16 0, i16 \d", llvm_ir)  # the fields' shifts
    assert not re.search(r"trunc <\d+ x i32> .* to <\d+ x i16>", llvm_ir)


def test_sign_symmetric_tables_are_looked_up_by_magnitude():
    """fp8's 256 entries are the 128 of the codes with the sign bit clear, with the sign bit
    set: the lookup reads those (2 register pairs of f16 entries, not 4) and ORs the sign."""
    f16, f32 = dtype("f16"), dtype("f32")
    for source in ("f8e4m3", "f8e5m2", "f8e3m4"):
        half = lookup.magnitude_table(dtype(source), f16, 16)
        assert half is not None and half.size == 128
        full = lookup.table_of(dtype(source), f16)[:256]
        np.testing.assert_array_equal(full[128:], half | 0x8000)
    assert lookup.magnitude_table(dtype("f6e3m2"), f16, 16) is None  # one pair already
    assert lookup.magnitude_table(dtype("f8e4m3"), f32, 32).size == 128


@pytest.mark.skipif(not AVX512, reason="the host has no AVX-512")
def test_fp8_lookups_read_two_register_pairs():
    text, _ = cast_kernel("f8e4m3", 64, "pairs_f8e4m3")
    llvm_ir = compile_kernel(parse(text), {}).llvm_ir
    pair_permutes = llvm_ir.count('call <32 x i16> @"llvm.x86.avx512.vpermi2var.hi.512"')
    assert pair_permutes == 2 * 2 * 3  # 2 pairs x 2 registers of 32 lanes x (f32, f16, bf16)
