"""One element of a register tile (`p[2]`, a 0-d tile) stands wherever a scalar does: in
`let`, as a slice start, a loop bound, an `if` condition, `full`'s value, a value carried
through a loop or joined after an `if`, an argument of cdiv/min/max bound by `let`. Every
thread holds the element (layout selection gives each thread the whole axis it is taken from,
here 128 elements that a block of 64 threads would otherwise split), so an `item` op makes it
the block's scalar.

Every host target and the CUDA pipeline on the thread interpreter agree with numpy; the IR text
of such a kernel round-trips; the CUDA C compiles. An element of a float tile as an index or
loop bound still says to cast it.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc

import lpir
from lpir.errors import LpirError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.verifier import verify
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

# Each statement puts p[k] (or f[k]) where the language requires a scalar.
ELEMENTS = """
kernel elements[N = 128](
    ids: global i32[N], x: global f32[N], y: global f32[2, N], out: global f32[16],
) blocks(1) threads(64) {
    p = load(ids[:])
    f = load(x[:])
    let i = p[2] * 2 + 1
    store(y[0, i :+ 4], f[0 :+ 4])
    store(y[1, p[100] :+ 4], load(x[p[101] :+ 4]))
    s = 0.0
    for k in range(p[3], p[3] + p[4]) {
        s = s + load(x[k])
    }
    store(out[0], s)
    if p[5] > p[6] and f[0] == 0.0 {
        store(out[1], f[7])
    } else {
        store(out[1], -f[7])
    }
    store(out[2 :+ 2], full<f32>[2](f[8] + 1.0))
    let c = cdiv(p[9], 3) + min(p[10], p[11]) * max(p[12], 4)
    store(out[4], cast<f32>(c))
    t = 0.0
    n = p[13]
    for k in range(0, 3) {
        t = t + f[120 + 2]
        n = n + p[14]
    }
    store(out[5], t)
    store(out[6], cast<f32>(n))
    if p[15] > 10 {
        e = p[16]
    } else {
        let e0 = p[17] + 1
        e = e0
    }
    store(out[7 :+ 2], load(x[e :+ 2]))
}
"""


def _arguments(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 40, 128).astype(np.int32)
    x = rng.standard_normal(128).astype(np.float32)
    x[0] = 0.0
    return ids, x, np.zeros((2, 128), np.float32), np.zeros(16, np.float32)


def _expected(ids: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, f = ids.astype(np.int64), x
    y = np.zeros((2, 128), np.float32)
    out = np.zeros(16, np.float32)
    i = p[2] * 2 + 1
    y[0, i : i + 4] = f[:4]
    y[1, p[100] : p[100] + 4] = x[p[101] : p[101] + 4]
    s = np.float32(0)
    for k in range(p[3], p[3] + p[4]):
        s = np.float32(s + x[k])
    out[0] = s
    out[1] = f[7] if p[5] > p[6] and f[0] == 0 else -f[7]
    out[2:4] = f[8] + np.float32(1)
    out[4] = -(-p[9] // 3) + min(p[10], p[11]) * max(p[12], 4)
    t = np.float32(0)
    for _ in range(3):
        t = np.float32(t + f[122])
    out[5] = t
    out[6] = p[13] + 3 * p[14]
    e = p[16] if p[15] > 10 else p[17] + 1
    out[7:9] = x[e : e + 2]
    return y, out


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_an_element_of_a_tile_stands_where_a_scalar_does(target: str, seed: int) -> None:
    """Each of these positions refused p[2] ("load the element from memory as a scalar"),
    and a name carried through a loop or joined after an if changed from i32 to i32[]."""
    ids, x, y, out = _arguments(seed)
    lpir.compile(ELEMENTS, target=target)(ids, x, y, out)
    want_y, want_out = _expected(ids, x)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(out, want_out)


@pytest.mark.parametrize(("target", "stage"), [("interp", "source"), ("cuda", "final")])
def test_the_ir_text_of_elements_as_scalars_round_trips(target: str, stage: str) -> None:
    text = lpir.compile(ELEMENTS, target=target).ir(stage)
    assert " = item(" in text or stage == "final", text
    assert print_module(verify(parse(text))) == text
    if stage == "source":
        ids, x, y, out = _arguments(2)
        lpir.compile(text, target="cpu")(ids, x, y, out)
        want_y, want_out = _expected(ids, x)
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(y, want_y)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_the_cuda_c_of_elements_as_scalars_compiles() -> None:
    code = lpir.compile(ELEMENTS, target="cuda").source("cuda")
    compile_with_nvcc(code, "sm_90", "ptx", strict=True)


HEAD = """
kernel k(x: global f32[128], y: global f32[128]) blocks(1) threads(64) {
    f = load(x[:])
"""


@pytest.mark.parametrize(
    ("statement", "column", "message", "hint"),
    [
        ("store(y[f[2] :+ 4], f[0 :+ 4])", 13, "an index must be an i32 scalar", "cast<i32>(f[2])"),
        ("store(y[f[2]], 1.0)", 13, "an index must be an i32 scalar", "cast<i32>(f[2])"),
        (
            "for k in range(0, f[1]) { }",
            23,
            "a loop bound must be an i32 scalar",
            "cast<i32>(f[1])",
        ),
        ("if f[1] { }", 8, "an if condition must be a bool scalar", "if f[1] != 0.0 {"),
        (
            "store(y[0 :+ 4], full<i32>[4](f[1]))",
            35,
            "full<i32> fills with i32, but this is a scalar of type f32",
            "full<i32>[...](cast<i32>(f[1]))",
        ),
    ],
)
def test_an_element_of_a_float_tile_is_still_no_index(statement, column, message, hint):
    """An element of a float tile becomes an f32 scalar there: the refusals say to cast it."""
    with pytest.raises(LpirError) as caught:
        specialize(parse_program(HEAD + f"    {statement}\n}}\n", "<source>"), None, {})
    error = caught.value
    assert f"<source>:4:{column}:" in str(error) and message in str(error), str(error)
    assert hint in (error.hint or ""), error.hint
