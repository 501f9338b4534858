"""Random kernels (tests/random_kernels.py) on the thread interpreter and the CPU backend
against the reference interpreter.

Integer results must be equal. Float results (always stored as f32) within rtol of the largest
result of the case: the compiled code may fuse a multiply and an add into one FMA and calls its
own exp, and the reference reduces with numpy's pairwise order — each a difference of a few
ulps of the values involved, which stay within a few orders of magnitude of the largest result.
f16/bf16 arithmetic rounds every step to 8 or 11 bits, so its tolerance is wider.

LPIR_RANDOM_KERNELS=n runs n cases instead of the fixed set (a new seed each time).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from random_kernels import random_case

import lpir
from lpir.runner import outputs_of

# random programs are where a pass breaks an invariant the next one relies on
pytestmark = pytest.mark.usefixtures("verify_every_pass")
TOLERANCE = {"f32": 1e-4, "f16": 2e-2, "bf16": 5e-2}
COUNT = int(os.environ.get("LPIR_RANDOM_KERNELS", "0") or 0)
SEEDS = list(range(1000, 1000 + COUNT)) if COUNT else list(range(60))
if COUNT:
    SEEDS = [int(s) for s in np.random.default_rng().integers(0, 2**31, COUNT)]


def check_close(case, got: np.ndarray, wanted: np.ndarray, target: str) -> None:
    if case.compute not in TOLERANCE:  # integer arithmetic: exact whatever the output type
        same = np.asarray(got) == np.asarray(wanted)
        both_nan = np.isnan(np.asarray(got, np.float64)) & np.isnan(np.asarray(wanted, np.float64))
        bad = np.flatnonzero(~(same | both_nan).ravel())
        assert bad.size == 0, f"{target}: {bad.size} differ\n{case.description}\n{case.source}"
        return
    got64 = np.asarray(got, np.float64)
    wanted64 = np.asarray(wanted, np.float64)
    finite = wanted64[np.isfinite(wanted64)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    rtol = TOLERANCE[case.compute]
    close = np.isclose(got64, wanted64, rtol=rtol, atol=rtol * scale, equal_nan=True)
    bad = np.flatnonzero(~close)
    assert bad.size == 0, (
        f"{target}: {bad.size} of {close.size} outside rtol {rtol} (scale {scale:.3g}), e.g. "
        f"{got64.ravel()[bad[:3]]} vs {wanted64.ravel()[bad[:3]]}\n{case.description}\n"
        f"{case.source}"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_random_kernel_agrees_with_the_interpreter(seed):
    rng = np.random.default_rng(seed)
    case = random_case(rng)
    arguments = case.arguments(rng)
    results = {}
    for target in ("interp", "threads", "cpu"):
        mine = copy.deepcopy(arguments)
        kernel = lpir.compile(case.source, target=target, **case.params)
        kernel(*mine)
        results[target] = outputs_of(mine)[2]
    for target in ("threads", "cpu"):
        check_close(case, results[target], results["interp"], target)
