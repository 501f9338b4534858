"""`def`s in the kernel language: functions inlined where they are called.

A def's parameters take any value of the call (tiles, scalars, constants, dtypes, tensors and
slices of them); its body sees only them; `return value` ends it. The kernels compute the
same on every target as with the body written out; mistakes are located errors, inside the
body with the call named.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.errors import ParseError, TypeCheckError
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

HELPERS = """
def silu(x) {
    return x / (1.0 + exp(-x))
}

# q's codes to T, less a zero point, times a scale (a dtype and a constant as arguments)
def dequant(q, scale, T, ZERO) {
    return (cast<T>(q) - ZERO) * scale
}

# a procedure (no return): sums a tile's rows over K in steps, through a tensor and a slice
def row_sums(w, s, x, y, rows, K, BN, BK) {
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        acc += (silu(dequant(load(w[rows :+ BN, k0 :+ BK]), load(s[rows :+ BN])[:, None], f32, 8))
            * load(x[k0 :+ BK])[None, :])
    }
    store(y, sum(acc, axis = 1))
}

kernel k[WT = u4, N = 100, K = 300, BN = 16, BK = 64](
    w: global WT[N, K], s: global f32[N], x: global f32[K], y: global f32[N]
) blocks(cdiv(N, BN)) threads(64) {
    rows = block.x * BN
    row_sums(w, s, x, y[rows :+ BN], rows, K, BN = BN, BK = BK)
}
"""

WRITTEN_OUT = """
kernel k[WT = u4, N = 100, K = 300, BN = 16, BK = 64](
    w: global WT[N, K], s: global f32[N], x: global f32[K], y: global f32[N]
) blocks(cdiv(N, BN)) threads(64) {
    rows = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        q = load(w[rows :+ BN, k0 :+ BK])
        scale = load(s[rows :+ BN])[:, None]  # a def's arguments come first, as in a call
        t = (cast<f32>(q) - 8) * scale
        acc += t / (1.0 + exp(-t)) * load(x[k0 :+ BK])[None, :]
    }
    store(y[rows :+ BN], sum(acc, axis = 1))
}
"""


def test_a_def_lowers_to_what_its_body_written_out_does():
    """The same ops either way (names aside): the call is its body, nothing more."""

    def ops(source):
        kernel = lpir.compile(source, target="interp").specialize(None).kernel_ir
        return [op.name for op in kernel.walk()]

    assert ops(HELPERS) == ops(WRITTEN_OUT)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_defs_run_alike_on_every_target(target):
    rng = np.random.default_rng(1)
    w = lpir.pack(rng.integers(0, 16, (100, 300)), "u4")
    s = rng.uniform(0.01, 0.1, 100).astype(np.float32)
    x = rng.standard_normal(300).astype(np.float32)
    got, wanted = np.zeros(100, np.float32), np.zeros(100, np.float32)
    lpir.compile(HELPERS, target=target)(w, s, x, got)
    lpir.compile(WRITTEN_OUT, target="interp")(w, s, x, wanted)
    # the same f32 products; the sum over K in each target's order (300 terms of < ~1)
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-4)


KERNEL = """
kernel k(x: global f32[64], y: global f32[64]) blocks(1) threads(32) {{
    {body}
}}
"""

# (defs, kernel body, error class, (line, column) of the caret, words the message must contain)
MISTAKES = [
    (
        "def f(a) {\n    return a + zeros<f32>[3]\n}",
        "store(y[0:64], f(load(x[0:64])))",
        TypeCheckError,
        (2, 12),
        "do not broadcast (in f, called at 6:20)",
    ),
    (
        "def f(a) {\n    return g(a)\n}\ndef g(a) {\n    return f(a)\n}",
        "store(y[0:64], f(load(x[0:64])))",
        TypeCheckError,
        (5, 12),
        "'f' calls itself (f -> g -> f)",
    ),
    (
        "def f(a) {\n    store(a, zeros<f32>[64])\n}",
        "t = f(y[0:64]) + 1.0",
        TypeCheckError,
        (6, 9),
        "f() has no value",
    ),
    (
        "def f(a, b) {\n    return a\n}",
        "store(y[0:64], f(1.0))",
        TypeCheckError,
        (6, 20),
        "needs 'b'",
    ),
    (
        "def f(a) {\n    return a\n}",
        "store(y[0:64], f(1.0, 2.0))",
        TypeCheckError,
        (6, 20),
        "f takes 1 argument, got 2",
    ),
    (
        "def f(a) {\n    return a\n}",
        "store(y[0:64], f(1.0, a = 2.0))",
        TypeCheckError,
        (6, 27),
        "'a' is given twice",
    ),
    (
        "def f(a) {\n    return a\n}",
        "store(y[0:64], f(b = 1.0))",
        TypeCheckError,
        (6, 22),
        "f has no parameter 'b'",
    ),
    (
        "def f(a) {\n    if a > 0.0 {\n        return a\n    }\n    return 0.0\n}",
        "store(y[0:64], load(x[0:64]) * f(2.0))",
        TypeCheckError,
        (3, 9),
        "return may only end 'f'",
    ),
    (
        "def f(a) {\n    return x\n}",
        "store(y[0:64], f(1.0))",
        TypeCheckError,
        (2, 12),
        "unknown name 'x'",
    ),
    ("", "return 1", TypeCheckError, (4, 5), "return may only end a def"),
    ("def max(a) {\n    return a\n}", "sync()", ParseError, (1, 5), "'max': it names a builtin"),
    ("def f(a, a) {\n    return a\n}", "sync()", ParseError, (1, 10), "'a' of 'f' is listed twice"),
    (
        "def f(a) {\n    return a\n}\ndef f(b) {\n    return b\n}",
        "sync()",
        ParseError,
        (4, 5),
        "'f' is defined twice (first at line 1)",
    ),
]


@pytest.mark.parametrize(("defs", "body", "kind", "place", "words"), MISTAKES)
def test_a_mistake_in_or_around_a_def_is_located(defs, body, kind, place, words):
    source = defs + "\n" + KERNEL.format(body=body)
    with pytest.raises(kind) as caught:
        specialize(parse_program(source, "defs.lp"), None, {})
    error = caught.value
    assert words in error.message, str(error)
    assert (error.location.line, error.location.column) == place, str(error)
    assert error.hint, str(error)


def test_a_name_of_the_caller_is_not_seen_but_the_hint_says_how():
    source = "def f(a) {\n    return a * x0\n}\n" + KERNEL.format(
        body="x0 = load(x[0:64])\n    store(y[0:64], f(x0))"
    )
    with pytest.raises(TypeCheckError, match="unknown name 'x0'") as caught:
        specialize(parse_program(source, "defs.lp"), None, {})
    assert caught.value.hint == "a def sees only its parameters: pass 'x0' to f as an argument"


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_names_may_be_those_of_builtin_functions(target):
    """A variable named like a builtin (`bits`, `max`, `sum`) is fine, in a def and in a
    kernel, as in Python; builtins are only ever called, so `max(a, b)` still reaches the
    builtin beside a variable called max."""
    source = """
def top(t) {
    bits = view<u32>(t)
    return view<f32>(bits & 0xFFFF0000)
}

kernel k[](x: global f32[64], y: global f32[64]) blocks(1) threads(32) {
    max = top(load(x[0 :+ 64]))
    sum = max(max, 0.5)
    store(y[0 :+ 64], sum + cast<f32>(bits(f16)))
}
"""
    x = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    y = np.zeros(64, np.float32)
    lpir.compile(source, target=target)(x, y)
    truncated = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(y, np.maximum(truncated, 0.5) + 16)
