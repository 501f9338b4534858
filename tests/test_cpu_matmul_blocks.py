"""Matmuls on the CPU in register blocks: the accumulator layout (`layout_rules.blocked_dot`),
f16/bf16 operands widened before the dot (widen-dot-operands), and computed operands computed
once a block and converted for the dot (layout-selection's `operand_flow`).

Compiled for the CPU and run through the thread-IR interpreter (the CPU pipeline's IR) against
the reference interpreter, on shapes whose edges do not divide the tiles. Float dots within a
tolerance: products of f16, bf16 (exact in f32) or f32 operands are summed in another order
(the interpreter sums exactly and rounds once); integer dots exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.passes import layout_rules as rules

import lpir
from lpir.layout import parse as parse_layout
from lpir.targets import get_target

# C = A @ B' with B' = B + B where COMPUTED = 1 (a value computed from a load, like decoded
# weights), BM x BN tiles over THREADS threads.
MATMUL = """
kernel mm[T = f16, AT = f32, M = 70, N = 50, K = 96, BM = 64, BN = 64, BK = 32, COMPUTED = 1,
          THREADS = 128](
    a: global T[M, K], b: global T[K, N], c: global AT[M, N]
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(THREADS) {
    sa = shared<T>[BM, BK]
    acc = zeros<AT>[BM, BN]
    for k0 in range(0, K, BK) {
        store(sa, load(a[block.x * BM :+ BM, k0 :+ BK]))
        bt = load(b[k0 :+ BK, block.y * BN :+ BN])
        if COMPUTED == 1 {
            bt = bt + bt
        }
        sync()
        acc = dot(load(sa), bt, acc)
        sync()
    }
    store(c[block.x * BM :+ BM, block.y * BN :+ BN], acc)
}
"""


def _inputs(params: dict, rng) -> list:
    m, n, k = params["M"], params["N"], params["K"]
    element = params.get("T", "f16")
    if element == "i8":
        a = rng.integers(-128, 128, (m, k), dtype=np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int8)
        return [a, b, np.zeros((m, n), np.int32)]
    numpy_type = lpir.dtype(element).numpy_dtype
    a = rng.uniform(-1, 1, (m, k)).astype(numpy_type)
    b = rng.uniform(-1, 1, (k, n)).astype(numpy_type)
    return [a, b, np.zeros((m, n), np.float32)]


def _run(target: str, params: dict) -> np.ndarray:
    arguments = _inputs(params, np.random.default_rng(5))
    lpir.compile(MATMUL, target=target, **params)(*arguments)
    return arguments[2]


CASES = [
    {"T": "f16", "M": 70, "N": 50, "K": 96},  # rows and columns past the edge
    {"T": "f16", "M": 64, "N": 64, "K": 80, "COMPUTED": 0},  # K past the last whole tile
    {"T": "bf16", "M": 100, "N": 130, "K": 64},
    {"T": "f32", "M": 70, "N": 50, "K": 96},
    {"T": "i8", "AT": "i32", "M": 70, "N": 50, "K": 96},
    # 128 x 128 over 128 threads: 4 x 32 blocks
    {"T": "f16", "M": 130, "N": 128, "K": 64, "BM": 128, "BN": 128},
    # 32 x 64 over 64 threads
    {"T": "f16", "M": 40, "N": 64, "K": 64, "BM": 32, "THREADS": 64},
]


@pytest.mark.parametrize("target", ["cpu", "threads"])
@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(map(str, p.values())))
def test_blocked_matmuls_agree_with_the_interpreter(params, target):
    expected = _run("interp", params)
    got = _run(target, params)
    if params["T"] == "i8":
        assert np.array_equal(got, expected)
        return
    # |a|, |b'| <= 2: K products of at most 2 summed in f32 in another order than the exact
    # sum, each partial sum rounding by at most half an ulp of |sum| <= 2K
    np.testing.assert_allclose(got, expected, rtol=0, atol=params["K"] * 2 * params["K"] * 2**-24)


def _after(stage: str, params: dict) -> str:
    return lpir.compile(MATMUL, target="cpu", **params).ir(f"after:{stage}")


def test_the_accumulator_is_blocked_and_computed_operands_are_converted():
    text = _after("layout-selection", {"T": "f16", "COMPUTED": 1})
    dot = next(line for line in text.splitlines() if "dot(" in line)
    assert dot.endswith("f32[64, 64] @ spatial(32,4).local(2,16)")
    # b' is computed once a block, widened, and converted for the dot's 32 replicas
    assert "add(" in text and "f16[32, 64] @ spatial(32,4).local(1,16)" in text
    assert (
        "convert_layout" in text and "f32[32, 64] @ replicate(32).spatial(1,4).local(32,16)" in text
    )
    # a, only widened from shared memory (4 registers a thread), is cast where it is held
    assert "cast(" in text and "f32[64, 32] @ spatial(32,1).replicate(4).local(2,32)" in text
    assert text.count("convert_layout") == 1


def test_loaded_operands_are_read_where_they_are_held():
    text = _after("layout-selection", {"T": "f32", "COMPUTED": 0})
    assert "convert_layout" not in text
    assert "cast(" not in text  # f32 operands are not widened


def test_the_gpu_keeps_its_tensor_core_layouts():
    text = lpir.compile(MATMUL, target="cuda", T="f16").ir("after:layout-selection")
    assert "cast(" not in text and "local(2,16)" not in text


@pytest.mark.parametrize(
    ("m", "n", "threads", "expected"),
    [
        (64, 64, 128, "spatial(32,4).local(2,16)"),  # 2 rows of one register: 3 a step
        (128, 128, 128, "spatial(32,4).local(4,32)"),  # 4 broadcasts + 2 rows of b
        (64, 256, 128, "spatial(16,8).local(4,32)"),  # 4 x 32 over 2 x 64 (as many loads)
        (64, 32, 128, None),  # one register a thread: summed in lanes
        (64, 8, 128, None),  # a GEMV's few columns
        (48, 40, 128, None),  # no block of whole registers tiles it
    ],
)
def test_blocked_accumulator_layouts(m, n, threads, expected):
    layout = rules.blocked_dot(m, n, threads, get_target("cpu"))
    assert (str(layout) if layout else None) == expected
    assert rules.blocked_dot(m, n, threads, get_target("cuda")) is None
    if layout is not None:
        assert rules.steps_in_registers(layout, get_target("cpu"))
        assert not rules.steps_in_registers(layout, get_target("cuda"))
    assert not rules.steps_in_registers(parse_layout("spatial(16,8).local(4,2)"), get_target("cpu"))


# An i8 matmul whose b is read transposed from an [N, K] matrix (found by the random-kernel
# test: each of 16 threads of a column read its 64 x 32 share through a 2048-lane masked,
# transposing load, which took LLVM 20 s to compile, 156 s decoded from u3).
TRANSPOSED = """
kernel mm_t[TB = i8, M = 36, N = 97, K = 141, BM = 32, BN = 64, BK = 64](
    a: global i8[M, K], b: global TB[N, K], c: global i32[M, N]
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(32) {
    sa = shared<i8>[BM, BK]
    acc = zeros<i32>[BM, BN]
    for k0 in range(0, K, BK) {
        store(sa, load(a[block.x * BM :+ BM, k0 :+ BK]))
        sync()
        acc += dot(load(sa), transpose(cast<i8>(load(b[block.y * BN :+ BN, k0 :+ BK]))))
        sync()
    }
    store(c[block.x * BM :+ BM, block.y * BN :+ BN], acc)
}
"""


@pytest.mark.parametrize("weights", ["i8", "u3"])
def test_a_transposed_narrow_operand_is_converted_once(weights):
    kernel = lpir.compile(TRANSPOSED, target="cpu", TB=weights)
    assert "convert_layout" in kernel.ir("after:layout-selection")
    assert "<2048 x bool>" not in kernel.ir("final")  # no per-thread masked transposing load
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (36, 141), dtype=np.int8)
    codes = rng.integers(-4 if weights == "u3" else -128, 4 if weights == "u3" else 128, (97, 141))
    b = lpir.pack((codes + 4).astype(np.uint8), "u3") if weights == "u3" else codes.astype(np.int8)
    expected, got = np.zeros((36, 97), np.int32), np.zeros((36, 97), np.int32)
    lpir.compile(TRANSPOSED, target="interp", TB=weights)(a, b, expected)
    kernel(a, b, got)
    assert np.array_equal(got, expected)
