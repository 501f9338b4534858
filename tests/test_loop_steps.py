"""Loops end where Python's range would. A loop whose step is a run-time value (IR text: the
language takes compile-time steps only) ends on every target when the step is 0 or negative:
the interpreters report it, compiled code runs no iteration instead of looping forever; a loop
whose last step would pass the largest i32 ends there. Each call runs in a child process with a
time limit, so that a regression fails instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from host_targets import HOST_TARGETS

STEPS_IR = """
kernel @steps[](%x: global f32[64], %y: global f32[64], %step: i32) blocks(1, 1, 1) threads(32) {
  %c0 = constant {value = 0} : i32
  %c8 = constant {value = 8} : i32
  %f0 = constant {value = 0.0} : f32
  %zero = splat(%f0) {shape = [64]} : f32[64]
  %acc = for %i = %c0 to %c8 step %step iter_args(%a = %zero) -> f32[64] {
    %t = load_global(%x, %c0) {dims = [0], shape = [64]} : f32[64]
    %n = add(%a, %t) : f32[64]
    yield(%n)
  }
  store_global(%y, %c0, %acc) {dims = [0]}
}
"""

CALL = """
import numpy as np, lpir
y = np.full(64, 7.0, np.float32)
try:
    lpir.compile({path!r}, target={target!r})(np.ones(64, np.float32), y, {step})
    print("ran", y[0])
except lpir.LpirError as error:
    print("error", error.message)
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize(("step", "sum_of_ones"), [(3, 3.0), (0, None), (-1, None)])
def test_a_run_time_step_of_zero_or_less_ends_the_loop(tmp_path, target, step, sum_of_ones):
    path = tmp_path / "steps.ir"
    path.write_text(STEPS_IR)
    code = textwrap.dedent(CALL.format(path=str(path), target=target, step=step))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    said = done.stdout.strip()
    if sum_of_ones is not None:
        assert said == f"ran {sum_of_ones}"
    elif target in ("interp", "threads"):
        assert said == f"error a loop step must be positive, not {step}"
    else:  # compiled: no iteration
        assert said == "ran 0.0"


NEAR_MAX = """
kernel near_max(lo: i32, hi: i32, x: global f32[64], out: global i32[5], sums: global f32[16])
    blocks(1) threads(32) {
    let c = 0
    let last = 0
    for i in range(lo, hi, 4) {
        c += 1
        last = i
    }
    let d = 0
    let end = 0
    for j in range(2147483640, 2147483647, 3) {
        d += 1
        end = j
    }
    acc = zeros<f32>[16]
    let e = 0
    for k in range(2147483600, 2147483647, 16, stages = 2) {
        acc += load(x[k - 2147483600 :+ 16])
        e += 1
    }
    store(out[0], c)
    store(out[1], last)
    store(out[2], d)
    store(out[3], end)
    store(out[4], e)
    store(sums[:], acc)
}
"""

NEAR_MAX_CALL = """
import numpy as np, lpir
out, sums = np.zeros(5, np.int32), np.zeros(16, np.float32)
kernel = lpir.compile({path!r}, target={target!r})
kernel(2147483640, 2147483647, np.arange(64, dtype=np.float32), out, sums)
print(*out, *sums[:2])
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_loop_whose_last_step_passes_the_largest_i32_ends(tmp_path, target):
    """range(lo, hi, 4) with hi near 2^31 - 1 runs as Python's range: compiled code once added
    past the largest i32, wrapped below hi and never ended (run-time and constant bounds, and a
    pipelined loop)."""
    path = tmp_path / "near_max.lp"
    path.write_text(NEAR_MAX)
    code = textwrap.dedent(NEAR_MAX_CALL.format(path=str(path), target=target))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["2", "2147483644", "3", "2147483646", "3", "48.0", "51.0"]
