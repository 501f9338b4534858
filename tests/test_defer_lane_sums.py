"""defer-lane-sums (CPU): a loop that adds a dot's lane sums each iteration keeps the lanes and
sums them once after the loop. Compiled and run on the CPU and through the thread-IR
interpreter (the CPU pipeline's IR) against the reference interpreter, on shapes whose edges do
not divide the tiles; f32 within a tolerance (the additions' order changes: each of the
K / 16 lanes' partial sums rounds on its own), integer dots exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir

# acc[BM, BN] += dot(a, b) * s, BM x BN over THREADS threads: 4 slots a thread at 64 threads.
SCALED = """
kernel scaled[T = f32, AT = f32, M = 40, N = 8, K = 96, BM = 32, BN = 8, BK = 32, DECAY = 0](
    a: global T[M, K], b: global T[K, N], s: global f32[M, cdiv(K, BK)], c: global AT[M, N]
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(64) {
    rows = block.x * BM
    columns = block.y * BN
    acc = zeros<AT>[BM, BN]
    for k0 in range(0, K, BK) {
        product = dot(load(a[rows :+ BM, k0 :+ BK]), load(b[k0 :+ BK, columns :+ BN]))
        if DECAY == 1 {
            acc = acc * 0.5 + product
        } else {
            if AT == f32 {
                acc += product * load(s[rows :+ BM, k0 / BK])[:, None]
            } else {
                acc += product
            }
        }
    }
    store(c[rows :+ BM, columns :+ BN], acc)
}
"""


def _inputs(params: dict, rng) -> list:
    m, n, k = params["M"], params["N"], params["K"]
    if params.get("T", "f32") == "i8":
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        c = np.zeros((m, n), np.int32)
    else:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        c = np.zeros((m, n), np.float32)
    s = rng.uniform(0.5, 2, (m, -(-k // params.get("BK", 32)))).astype(np.float32)
    return [a, b, s, c]


def _run(target: str, params: dict) -> np.ndarray:
    arguments = _inputs(params, np.random.default_rng(11))
    lpir.compile(SCALED, target=target, **params)(*arguments)
    return arguments[3]


def _thread_ir(params: dict) -> str:
    return lpir.compile(SCALED, target="cpu", **params).ir("after:defer-lane-sums")


SHAPES = [
    {"M": 40, "N": 8, "K": 96},  # rows past M in the second block
    {"M": 32, "N": 5, "K": 64},  # columns past N
    {"M": 64, "N": 8, "K": 80},  # K past the last whole tile (read as 0)
]


@pytest.mark.parametrize("target", ["cpu", "threads"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda p: "x".join(map(str, p.values())))
def test_scaled_dot_sums_agree_with_the_interpreter(shape, target):
    expected = _run("interp", shape)
    got = _run(target, shape)
    # Each product is exact in f64 terms of its inputs' magnitudes; the K products of an
    # element (|a|, |b| ~ 1, scales <= 2) sum in another order: a few f32 ulps of sum |a b s|.
    scale = 2 * shape["K"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=scale * 2e-6)


def test_the_accumulator_keeps_its_lanes_in_the_loop():
    text = _thread_ir(SHAPES[0])
    loop, after = text.split("yield", 1)
    # 4 slots a thread, each summing 16 lanes (K steps 16c + lane): 64 lanes carried
    assert "iter_args(%acc.1 = " in loop and "-> <64 x f32>" in loop
    assert 'group = 16, kind = "sum"' not in loop
    assert 'reduce_lanes(%acc) {group = 16, kind = "sum"} : <4 x f32>' in after


def test_integer_dots_are_exact():
    params = {"T": "i8", "AT": "i32", "M": 40, "N": 8, "K": 96}
    assert "-> <64 x i32>" in _thread_ir(params)
    assert np.array_equal(_run("cpu", params), _run("interp", params))


def test_an_accumulator_read_otherwise_is_left_alone():
    params = {"M": 40, "N": 8, "K": 96, "DECAY": 1}
    assert "-> <4 x f32>" in _thread_ir(params)
    expected, got = _run("interp", params), _run("cpu", params)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_lanes_past_the_register_budget_are_left_alone():
    """BK = 24 is not whole registers of 16 lanes: each slot's 24 products are one group. At
    4 slots a thread (BN = 8) 96 lanes are carried; at 16 (BN = 32) 384 lanes would pass the
    budget of 16 registers (256 lanes), and the loop sums its lanes as before."""
    narrow = {"M": 32, "N": 8, "K": 48, "BK": 24}
    assert "-> <96 x f32>" in _thread_ir(narrow)
    wide = {"M": 32, "N": 32, "K": 48, "BN": 32, "BK": 24}
    loop = _thread_ir(wide).split("yield", 1)[0]
    assert "-> <16 x f32>" in loop and 'group = 24, kind = "sum"' in loop
    for params in (narrow, wide):
        np.testing.assert_allclose(_run("cpu", params), _run("interp", params), atol=1e-4)
