"""widen-exact-casts (CPU): `cast<f32>(cast<f16>(q) - c)` of integer codes q is computed as
`cast<f32>(q) - c` where every step is exact in the narrow format. The values are the same
bits, so the compiled kernel must equal the reference interpreter exactly, on every code of
the weight type; a chain that could round (codes past the format's exact integers, a
non-integer constant) keeps its narrow steps.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir

DEQUANTIZE = """
kernel dequantize[WT = u8, FT = f16, C = 128, N = 512](
    w: global WT[N], y: global f32[N]
) blocks(cdiv(N, 128)) threads(32) {
    store(y[block.x * 128 :+ 128], cast<f32>(cast<FT>(load(w[block.x * 128 :+ 128])) - C))
}
"""
HALF = DEQUANTIZE.replace(") - C)", ") - 0.5)")


def _codes(name: str, n: int) -> np.ndarray | lpir.PackedArray:
    dt = lpir.dtype(name)
    values = np.resize(np.arange(int(dt.min), int(dt.max) + 1), n)
    if dt.is_packed:
        return lpir.pack(values, name)
    return values.astype(dt.numpy_dtype)


def _run(target: str, params: dict, source: str = DEQUANTIZE) -> np.ndarray:
    y = np.zeros(params.get("N", 512), np.float32)
    lpir.compile(source, target=target, **params)(_codes(params["WT"], y.size), y)
    return y


def _thread_ir(params: dict, source: str = DEQUANTIZE) -> str:
    return lpir.compile(source, target="cpu", **params).ir("final")


@pytest.mark.parametrize(
    "params",
    [
        {"WT": "u8", "C": 128},
        {"WT": "i8", "C": -3},
        {"WT": "u6", "C": 32},
        {"WT": "u7", "C": 64, "FT": "bf16"},  # bf16 holds the integers up to 256
        {"WT": "u4", "C": 8},
    ],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_exact_chains_run_in_f32_and_equal_the_interpreter(params):
    text = _thread_ir(params)
    assert "x f16>" not in text and "x bf16>" not in text
    assert np.array_equal(_run("cpu", params), _run("interp", params))


def test_chains_that_may_round_keep_their_narrow_steps():
    wide = {"WT": "u16", "C": 0}  # 65535 is past f16's exact integers (2048)
    assert "x f16>" in _thread_ir(wide)
    np.testing.assert_array_equal(_run("cpu", wide), _run("interp", wide))
    half = {"WT": "u8"}  # 0.5: not an integer
    assert "x f16>" in _thread_ir(half, HALF)
    np.testing.assert_array_equal(_run("cpu", half, HALF), _run("interp", half, HALF))


def test_bf16_up_to_its_exact_integers():
    exact = {"WT": "u8", "C": -1, "FT": "bf16"}  # 0..255 + 1 reaches 256: still exact
    assert "x bf16>" not in _thread_ir(exact)
    rounding = {"WT": "u8", "C": -2, "FT": "bf16"}  # 257 is not a bf16
    assert "x bf16>" in _thread_ir(rounding)
    for params in (exact, rounding):
        np.testing.assert_array_equal(_run("cpu", params), _run("interp", params))


# The chain stays bf16 (a CPU bf16 dot takes bf16 operands): computed in f32, cut to bf16.
STAYS_BF16 = """
kernel dequantize_bf16[WT = u8, C = 128, N = 512](
    w: global WT[N], y: global bf16[N]
) blocks(cdiv(N, 128)) threads(32) {
    store(y[block.x * 128 :+ 128], cast<bf16>(load(w[block.x * 128 :+ 128])) - C)
}
"""


def _run_bf16(target: str, params: dict) -> np.ndarray:
    y = np.zeros(512, lpir.dtype("bf16").numpy_dtype)
    lpir.compile(STAYS_BF16, target=target, **params)(_codes(params["WT"], y.size), y)
    return y.view(np.uint16)


@pytest.mark.parametrize(
    "params",
    [{"WT": "u8", "C": 128}, {"WT": "i8", "C": 0}, {"WT": "u6", "C": -100}, {"WT": "u7", "C": 5}],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_exact_bf16_chains_are_f32_cut_to_their_high_halves(params):
    """Every code: the same bf16 bits as the interpreter's, with no bf16 arithmetic left."""
    text = _thread_ir(params, STAYS_BF16)
    assert "view(" in text and not any(
        f"{op}(" in line for line in text.splitlines() if "x bf16>" in line for op in ("sub", "add")
    )
    assert np.array_equal(_run_bf16("cpu", params), _run_bf16("interp", params))


def test_bf16_chains_that_may_round_stay_bf16():
    """The cast of the codes is exact (cut from f32), the addition that may round is not."""
    rounding = {"WT": "u8", "C": -2}  # 257 is not a bf16
    text = _thread_ir(rounding, STAYS_BF16)
    lines = [line for line in text.splitlines() if "x bf16>" in line]
    assert any("sub(" in line for line in lines)
    assert np.array_equal(_run_bf16("cpu", rounding), _run_bf16("interp", rounding))


@pytest.mark.parametrize(
    "params", [{"WT": "u4", "C": 8}, {"WT": "i5", "C": -3}, {"WT": "u2", "C": 1}]
)
def test_bf16_chains_of_small_codes_stay_bf16_for_the_tables(params):
    """Chains from codes of at most 5 bits are left in bf16: the backend looks them up in
    16-bit lanes (one 32-entry table), cheaper than f32 lanes cut to their high halves. The
    same bits as the interpreter for every code."""
    text = _thread_ir(params, STAYS_BF16)
    assert "view(" not in text
    assert any("sub(" in line for line in text.splitlines() if "x bf16>" in line)
    assert np.array_equal(_run_bf16("cpu", params), _run_bf16("interp", params))
