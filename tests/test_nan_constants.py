"""A NaN constant keeps its sign (and payload) through the IR text and through cse.

The sign of a NaN is visible in the reference: a cast to an all-finite small float turns a
NaN into a zero of the opposite sign (`lpir/dtypes.py`), so `1.0 / cast<f32>(cast<f4e2m1>(-nan))`
is +inf and with `nan` -inf. The printer once wrote both NaNs as `nan` and cse keyed both by
`float.hex()` ('nan'), so a print/parse round trip or cse alone turned one into the other.
Compiled code need not keep a NaN's sign (`lpir/dtypes.py`): there the promise is a zero, so
an infinity.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.passes.base import get_pass

import lpir
from lpir.errors import ParseError
from lpir.ir import parse
from lpir.ir.ops import ConstantOp
from lpir.ir.printer import print_module, print_op
from lpir.runtime.specialization import _run_interpreter, stored_positions
from lpir.tools import load_module

NEGNAN = """\
kernel negnan[N = 32](y: global f32[2, N]) blocks(1) threads(32) {
    store(y[0, :], 1.0 / cast<f32>(cast<f4e2m1>(full<f32>[N](-nan))))
    store(y[1, :], 1.0 / cast<f32>(cast<f4e2m1>(full<f32>[N](nan))))
}
"""
REFERENCE = [math.inf, -math.inf]  # encode(-nan) is +0.0, encode(nan) is -0.0

CONSTANTS = """\
kernel @k[](%y: global f32[4]) blocks(1, 1, 1) threads(32) {{
  %a = constant {{value = {a}}} : f32
  %b = constant {{value = {b}}} : f32
  %s = splat(%a) {{shape = [4]}} : f32[4]
  %t = splat(%b) {{shape = [4]}} : f32[4]
  %u = add(%s, %t) : f32[4]
  %0 = constant {{value = 0}} : i32
  store_global(%y, %0, %u) {{dims = [0]}}
}}
"""


def _bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


def _float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def _constants(module) -> list[float]:
    return [op.value for op in module.kernels[0].body.ops if isinstance(op, ConstantOp)]


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        (0x7FF8000000000000, "nan"),
        (0xFFF8000000000000, "-nan"),
        (0xFFF8000020000000, "-nan(0x8000020000000)"),  # f32 0xffc00001
        (0x7FF0000000000001, "nan(0x1)"),  # signalling
    ],
    ids=["nan", "minus_nan", "payload", "signalling"],
)
def test_a_nan_prints_with_its_sign_and_payload_and_reads_back_bit_for_bit(bits, text):
    assert f"value = {text}}}" in print_op(ConstantOp.create(_float(bits), "f32"))
    module = parse(CONSTANTS.format(a=text, b="1.0"))
    assert _bits(_constants(module)[0]) == bits
    printed = print_module(module)
    assert f"value = {text}}}" in printed
    assert print_module(parse(printed)) == printed


def test_a_nan_payload_that_is_not_a_nan_is_a_located_error():
    with pytest.raises(ParseError) as caught:
        parse(CONSTANTS.format(a="-nan(0x0)", b="1.0"), "k.ir")
    text = str(caught.value)
    assert "k.ir:2:26:" in text and "-nan(0x0) is not a NaN" in text and "^" in text, text
    assert "write nan for the default quiet NaN" in text, text


def test_cse_keeps_nans_of_opposite_sign_apart():
    module = parse(CONSTANTS.format(a="-nan", b="nan"))
    merged = get_pass("cse", target="interp").run(module)
    assert [_bits(v) >> 63 for v in _constants(merged)] == [1, 0, 0]
    same = get_pass("cse", target="interp").run(parse(CONSTANTS.format(a="-nan", b="-nan")))
    assert len(_constants(same)) == 2  # the two -nan are one constant; the i32 0 is the other


def test_a_folded_nan_keeps_its_bits_through_the_text():
    """canonicalize folds 0.0 * -inf to the NaN the host's arithmetic gives (x86: -nan)."""
    text = CONSTANTS.format(a="0.0", b="-inf").replace("add(%s, %t)", "add(%s, %s)")
    text = text.replace("%s = splat(%a)", "%p = mul(%a, %b) : f32\n  %s = splat(%p)")
    folded = get_pass("canonicalize", target="interp").run(parse(text))
    (nan,) = [v for v in _constants(folded) if isinstance(v, float) and math.isnan(v)]
    with np.errstate(invalid="ignore"):
        expected = _bits(float(np.float32(0.0) * np.float32(-np.inf)))
    assert _bits(nan) == expected
    printed = print_module(folded)
    assert _bits(next(v for v in _constants(parse(printed)) if math.isnan(v))) == expected
    assert print_module(parse(printed)) == printed


@pytest.fixture
def negnan(tmp_path: Path) -> Path:
    path = tmp_path / "negnan.lp"
    path.write_text(NEGNAN)
    return path


def test_the_reference_keeps_a_nans_sign_after_cse_and_through_the_text(negnan: Path):
    expected = np.repeat(np.array(REFERENCE, np.float32)[:, None], 32, 1)
    y = np.zeros((2, 32), np.float32)
    cse = get_pass("cse", target="interp")
    kernel = cse.run(load_module(str(negnan))).kernels[0]
    _run_interpreter(kernel, stored_positions(kernel), [y])
    np.testing.assert_array_equal(y, expected)
    kernel = lpir.compile(negnan, target="interp")
    for stage in ["source", "final"]:
        y = np.zeros((2, 32), np.float32)
        lpir.compile(kernel.ir(stage), target="interp")(y)
        np.testing.assert_array_equal(y, expected, err_msg=stage)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_nan_cast_to_an_all_finite_small_float_is_a_zero_on_every_target(negnan, target):
    """Every target keeps a NaN constant's sign (the CUDA C wrote every NaN constant as
    0x7fc00000, so cuda-host gave -inf for both rows)."""
    y = np.zeros((2, 32), np.float32)
    lpir.compile(negnan, target=target)(y)
    expected = np.repeat(np.array(REFERENCE, np.float32)[:, None], 32, 1)
    np.testing.assert_array_equal(y, expected)


NAN_BITS = """
kernel bits(y: global u32[4], z: global u64[4]) blocks(1) threads(4) {
    store(y[0 :+ 4], view<u32>(full<f32>[4](-nan)))
    store(z[0 :+ 4], view<u64>(full<f64>[4](-nan)))
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_nan_constant_keeps_its_bits_on_every_target(target):
    y, z = np.zeros(4, np.uint32), np.zeros(4, np.uint64)
    lpir.compile(NAN_BITS, target=target)(y, z)
    assert np.all(y == 0xFFC00000) and np.all(z == 0xFFF8000000000000)


def test_the_cuda_c_of_a_nan_constant_is_its_bits_and_compiles():
    from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc

    source = lpir.compile(NAN_BITS, target="cuda").source("cuda")
    assert "__int_as_float((int)0xffc00000u)" in source
    assert "__longlong_as_double((long long)0xfff8000000000000ull)" in source
    if find_nvcc() is not None:
        compile_with_nvcc(source, "sm_80", "ptx", strict=True)
