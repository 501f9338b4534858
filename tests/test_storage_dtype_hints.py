"""Hints for storage dtypes passed or computed with the wrong way round.

* An ml_dtypes array no unpacked lpir dtype has (float8_e8m0fnu, the fnuz fp8s, int4, ...)
  where an integer of its width is declared: its codes are what that declaration means, so
  the hint views them (array.view(np.uint8)); converting them (astype) would change the
  values (an e8m0 scale 2^-3 becomes 0).
* Arithmetic on a storage-only float and a compute one (fp8 * f32): the hint casts the
  storage-only operand up (cast<f32>), not the other one down to fp8 (which takes no
  arithmetic either).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import lpir
from lpir import LpirError
from lpir.dtypes import dtype
from lpir.ir.ops.arith import common_compute_dtype, is_compute_dtype, mixed_dtypes_hint

COPY = """
kernel k(x: global {dt}[4, 32], y: global f32[4, 32]) blocks(1) threads(32) {{
    store(y[:, :], cast<f32>(load(x[:, :])))
}}
"""


def _hint(declared: str, array: np.ndarray) -> str:
    kernel = lpir.compile(COPY.format(dt=declared), target="interp")
    with pytest.raises(LpirError) as caught:
        kernel(array, np.zeros((4, 32), np.float32))
    assert caught.value.hint is not None
    return caught.value.hint


def _array(name: str) -> np.ndarray:
    return np.zeros((4, 32), getattr(ml_dtypes, name))


def test_e8m0_scales_for_u8_are_viewed_not_converted():
    scales = np.full((4, 32), 0.125, ml_dtypes.float8_e8m0fnu)
    hint = _hint("u8", scales)
    assert "array.view(np.uint8)" in hint and "astype(np.uint8)" not in hint
    assert "2^(code - 127)" in hint
    assert scales.view(np.uint8)[0, 0] == 124  # the code the view keeps; astype gives 0


def test_e8m0_scales_for_i8_say_to_declare_u8():
    hint = _hint("i8", _array("float8_e8m0fnu"))
    assert "declare it u8" in hint and "array.view(np.uint8)" in hint and "astype" not in hint


FP8_WITHOUT_LPIR_DTYPE = {
    "float8_e4m3fnuz": "array.astype(ml_dtypes.float8_e4m3fn)",
    "float8_e4m3b11fnuz": "array.astype(ml_dtypes.float8_e4m3fn)",
    "float8_e5m2fnuz": "array.astype(ml_dtypes.float8_e5m2)",
    "float8_e4m3": "array.astype(ml_dtypes.float8_e4m3fn)",
    "float8_e3m4": "lpir.pack(array.astype(np.float32), 'f8e3m4')",
    "float8_e5m3fnu": None,
}


@pytest.mark.parametrize("name", sorted(FP8_WITHOUT_LPIR_DTYPE))
@pytest.mark.parametrize("declared", ["u8", "i8"])
def test_fp8_without_an_lpir_dtype_for_a_byte_is_viewed(name, declared):
    """The codes by a view, and the lpir dtype its values convert to where one is near."""
    if not hasattr(ml_dtypes, name):
        pytest.skip(f"this ml_dtypes has no {name}")
    hint = _hint(declared, _array(name))
    numpy_name = {"u8": "uint8", "i8": "int8"}[declared]
    assert hint.startswith(f"pass its codes, no copy: array.view(np.{numpy_name})")
    assert f"lpir has no {name} dtype" in hint
    nearest = FP8_WITHOUT_LPIR_DTYPE[name]
    assert nearest is None or nearest in hint
    assert f"astype(np.{numpy_name})" not in hint


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2"])
def test_fp8_lpir_has_for_a_byte_offers_the_view_first(name):
    hint = _hint("u8", _array(name))
    assert hint.startswith("to pass its codes, no copy: array.view(np.uint8)")
    assert "to convert its values: array.astype(np.uint8)" in hint


def test_bf16_for_i16_offers_both_its_values_and_its_bits():
    hint = _hint("i16", np.zeros((4, 32), ml_dtypes.bfloat16))
    assert "array.astype(np.int16)" in hint and "array.view(np.int16)" in hint


@pytest.mark.parametrize(
    ("name", "lpir_name"),
    [("float4_e2m1fn", "f4e2m1"), ("float6_e2m3fn", "f6e2m3"), ("float6_e3m2fn", "f6e3m2")],
)
def test_sub_byte_floats_for_a_byte_view_the_codes_or_pack(name, lpir_name):
    hint = _hint("u8", _array(name))
    assert "array.view(np.uint8)" in hint
    assert f"declare it {lpir_name} and pass lpir.pack(array, '{lpir_name}')" in hint
    assert _hint(lpir_name, _array(name)) == (
        f"lpir stores {lpir_name} packed: lpir.pack(array, '{lpir_name}')"
    )


@pytest.mark.parametrize(
    ("name", "lpir_name"), [("int2", "i2"), ("int4", "i4"), ("uint2", "u2"), ("uint4", "u4")]
)
def test_sub_byte_integers_pack_or_convert_their_values(name, lpir_name):
    hint = _hint("i8", _array(name))
    assert f"lpir.pack(array, '{lpir_name}')" in hint and "array.astype(np.int8)" in hint
    hint = _hint("u8", _array(name))
    assert f"lpir.pack(array, '{lpir_name}')" in hint
    assert ("array.astype(np.uint8)" in hint) == name.startswith("uint")  # -1 would wrap
    assert "view" not in hint  # an integer's value is what an integer declaration means


@pytest.mark.parametrize("name", ["float4_e2m1fn", "int4"])
def test_sub_byte_types_for_a_float_convert_or_pack(name):
    hint = _hint("f32", _array(name))
    assert "array.astype(np.float32)" in hint and "lpir.pack(array, '" in hint


@pytest.mark.parametrize("name", ["float8_e8m0fnu", "float8_e4m3fnuz", "float8_e3m4"])
def test_fp8_for_a_float_converts_the_values(name):
    assert _hint("f32", _array(name)) == "convert it: array.astype(np.float32)"
    assert _hint("bf16", _array(name)) == "convert it: array.astype(ml_dtypes.bfloat16)"


@pytest.mark.parametrize("name", ["float8_e4m3fnuz", "float8_e8m0fnu", "int4"])
def test_another_ml_type_for_a_packed_dtype_packs_through_numbers(name):
    """lpir.pack refuses another ml_dtypes type: the values go through numpy's first, and
    the hint's call works."""
    plain = "np.int32" if name.startswith("int") else "np.float32"
    hint = _hint("u4", _array(name))
    assert f"lpir.pack(array.astype({plain}), 'u4')" in hint
    ones = np.ones((4, 32), getattr(ml_dtypes, name))  # (e8m0 has no 0: its zeros are 2^-127)
    lpir.pack(ones.astype(plain.replace("np.", "")), "u4")


def test_ieee_e3m4_for_lpirs_all_finite_e3m4_says_they_differ():
    hint = _hint("f8e3m4", _array("float8_e3m4"))
    assert "all-finite" in hint and "lpir.pack(array.astype(np.float32), 'f8e3m4')" in hint
    values = np.array([1.5, -0.25, 15.5], ml_dtypes.float8_e3m4)
    packed = lpir.pack(values.astype(np.float32), "f8e3m4")
    assert list(packed.unpack()) == [1.5, -0.25, 15.5]


# ---- arithmetic on dtypes that differ -------------------------------------------------------
FP8_TIMES_F32 = """
kernel k[K = 64](q: global f8e4m3[4, K], s: global f32[4], y: global f32[4, K])
    blocks(1) threads(32) {
    t = load(q[:, :])
    store(y[:, :], t * load(s[:])[:, None])
}
"""


def test_fp8_times_f32_says_cast_the_fp8_to_f32():
    with pytest.raises(LpirError) as caught:
        lpir.compile(FP8_TIMES_F32, target="interp")
    error = caught.value
    assert "operands have different dtypes: f8e4m3 and f32" in error.message
    assert error.hint is not None and "cast<f32>(...)" in error.hint
    assert "cast<f8e4m3>" not in error.hint and "storage-only" in error.hint
    fixed = FP8_TIMES_F32.replace("t * load", "cast<f32>(t) * load")
    lpir.compile(fixed, target="interp")  # the hint's cast compiles


MIXED = """
kernel k(x: global {a}[32], y: global {b}[32], z: global f32[32]) blocks(1) threads(32) {{
    store(z[:], cast<f32>(load(x[:]) + load(y[:])))
}}
"""


@pytest.mark.parametrize(
    ("a", "b", "common"),
    [
        ("f8e4m3", "f32", "f32"),
        ("f32", "f8e5m2", "f32"),
        ("f8e4m3", "f16", "f16"),
        ("f8e5m2", "bf16", "bf16"),
        ("f6e3m2", "f16", "f16"),
        ("f4e2m1", "f32", "f32"),
        ("f8e3m4", "f32", "f32"),
        ("f8e4m3", "f8e5m2", "f32"),
        ("f4e2m1", "i32", "f32"),
        ("u4", "i32", "i32"),
        ("i4", "u8", "i16"),
        ("f32", "f16", "f32"),
        ("f16", "bf16", "f32"),
        ("i8", "i32", "i32"),
        ("i32", "i8", "i32"),
        ("u32", "i32", "i64"),
        ("u8", "i8", "i16"),
        ("i32", "f32", "f32"),
        ("i8", "bf16", "bf16"),
        ("i16", "f16", "f32"),
        ("bool", "i32", "i32"),
    ],
)
def test_mixed_dtypes_get_a_cast_to_a_compute_dtype_of_both(a, b, common):
    with pytest.raises(LpirError) as caught:
        lpir.compile(MIXED.format(a=a, b=b), target="interp")
    hint = caught.value.hint
    assert hint == mixed_dtypes_hint(dtype(a), dtype(b)) and f"cast<{common}>(...)" in hint
    assert is_compute_dtype(common_compute_dtype(dtype(a), dtype(b)))
    left = "load(x[:])" if a == common else f"cast<{common}>(load(x[:]))"
    right = "load(y[:])" if b == common else f"cast<{common}>(load(y[:]))"
    fixed = MIXED.format(a=a, b=b).replace("load(x[:]) + load(y[:])", f"{left} + {right}")
    lpir.compile(fixed, target="interp")  # casting as the hint says compiles
