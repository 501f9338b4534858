"""Tiles annotated with different layouts (`t @ L`) meet in one op: each op that holds its
tiles alike converts one of them, as docs/language.md says an annotation that disagrees with
what an op needs does. `a @ spatial(...) + b @ column_spatial(...)` was refused with "operands
of 'add' have different layouts" and a hint naming convert_layout, which the language does not
have; a loop, an if, a masked access, a stack and a dot refused such tiles alike."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

ROWS = "spatial(8, 2).local(1, 8)"
COLUMNS = "column_spatial(8, 2).local(1, 8)"
SPREAD = "local(8, 1).spatial(1, 16)"
X = "load(x[0 :+ 8, 0 :+ 16])"
STORE = "store(y[0 :+ 8, 0 :+ 16], "

# (body, y from x as numpy computes it)
CASES = {
    "add": (f"a = {X} @ {ROWS}\nb = {X} @ {COLUMNS}\n{STORE}a + b * 2.0)", lambda x: 3 * x),
    "where": (
        f"a = {X} @ {ROWS}\nm = ({X} @ {COLUMNS}) > 1.0\n"
        f"{STORE}where(m, a, (a @ {COLUMNS}) - 5.0))",
        lambda x: np.where(x > 1, x, x - 5),
    ),
    "clamp": (
        f"a = {X} @ {ROWS}\n{STORE}clamp(a, ({X} @ {COLUMNS}) - 1.0, ({X} @ {SPREAD}) + 2.0))",
        lambda x: x,
    ),
    "augmented assignment": (f"a = {X} @ {ROWS}\na += {X} @ {COLUMNS}\n{STORE}a)", lambda x: 2 * x),
    "loop-carried tile": (
        f"acc = zeros<f32>[8, 16] @ {ROWS}\n"
        f"for i in range(0, 3) {{\n acc = acc * 2.0 + {X} @ {COLUMNS}\n}}\n{STORE}acc)",
        lambda x: 7 * x,
    ),
    "tile rebound in an if": (
        f"t = {X} @ {ROWS}\nlet n = load(x[0, 0])\n"
        f"if n < 100.0 {{\n t = ({X} @ {COLUMNS}) + 1.0\n}}\n{STORE}t)",
        lambda x: x + 1,
    ),
    "names joined after an if": (
        f"let n = load(x[0, 0])\nif n < 100.0 {{\n t = {X} @ {ROWS}\n}} else {{\n"
        f" t = {X} @ {COLUMNS}\n}}\n{STORE}t)",
        lambda x: x,
    ),
    "store mask": (
        f"m = ({X} @ {COLUMNS}) > 0.0\n{STORE}({X} @ {ROWS}) + 1.0, mask = m)",
        lambda x: np.where(x > 0, x + 1, 0),
    ),
    "load mask and other": (
        f"m = ({X} @ {COLUMNS}) > 0.0\n"
        f"{STORE}load(x[0 :+ 8, 0 :+ 16], mask = m, other = ({X} @ {ROWS}) * 3.0))",
        lambda x: np.where(x > 0, x, 3 * x),
    ),
    "stack": (
        f"{STORE}sum(stack({X} @ {ROWS}, {X} @ {COLUMNS}), axis = 0))",
        lambda x: 2 * x,
    ),
    "dot": (
        "s = load(x[0 :+ 8, 0 :+ 8])\n"
        f"acc = zeros<f32>[8, 16] @ {SPREAD}\n"
        f"{STORE}dot(s @ spatial(8, 2).local(1, 4), {X} @ {COLUMNS}, acc))",
        lambda x: x[:, :8].astype(np.float64) @ x.astype(np.float64),
    ),
}


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("case", CASES)
def test_differently_annotated_tiles_meet_through_a_conversion(case: str, target: str) -> None:
    body, expected = CASES[case]
    source = (
        "kernel k(x: global f32[8, 16], y: global f32[8, 16]) blocks(1) threads(16) {\n"
        + "\n".join("    " + line for line in body.splitlines())
        + "\n}\n"
    )
    kernel = lpir.compile(source, target=target)
    x = np.random.default_rng(7).standard_normal((8, 16)).astype(np.float32)
    y = np.zeros_like(x)
    kernel(x, y)
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-5)
