"""Shared driver of the example scripts: run a kernel at several sizes and compare with numpy.

Each example script defines `make_inputs(params, rng)`, `reference(params, args)` and
`tolerance(params)` (also used by `lpir run --check`; `canonical(params, outputs)` where an
output's order is free), and calls `main()` from here with the sizes it wants checked.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

import lpir
from lpir.companion import in_canonical_order
from lpir.runner import compare, outputs_of, stated_tolerance
from lpir.targets import RUN_TARGETS


def check(path: Path, target: str, module, params: dict, seed: int = 0) -> bool:
    """Run the kernel of `path` with `params` on `target`; compare with the numpy reference."""
    kernel = lpir.compile(path, target=target, **params)
    values = kernel.specialize(None).params
    rng = np.random.default_rng(seed)
    arguments = module.make_inputs(values, rng)
    pristine = copy.deepcopy(arguments)
    kernel(*arguments)
    expected = module.reference(values, pristine)
    rtol, atol, why = stated_tolerance(module, values, pristine)
    ok = True
    shown = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in values.items())
    results = in_canonical_order(module, values, outputs_of(arguments))
    for index, values_expected in expected.items():
        good, text = compare(f"arg {index}", results[index], values_expected, rtol, atol)
        print(f"{'ok  ' if good else 'FAIL'} {path.stem}[{shown}] on {target}: {text}")
        ok &= good
    if not ok:
        print(f"     tolerance: {why}")
    return ok


def main(path: Path, module, cases: list[dict], argv=None) -> int:
    """Check every case on the target the command line names; 0 when all pass. An
    `LpirError` (no GPU for cuda, a bad size) is reported as `lpir` reports it, without a
    traceback, and gives 1."""
    parser = argparse.ArgumentParser(description=f"run {path.name} and check it against numpy")
    parser.add_argument(
        "--target",
        default="cpu",
        choices=list(RUN_TARGETS),
        help="; ".join(f"{name}: {what}" for name, what in RUN_TARGETS.items()),
    )
    args = parser.parse_args(argv)
    try:
        results = [check(path, args.target, module, params) for params in cases]
    except lpir.LpirError as error:
        print(str(error), file=sys.stderr)
        return 1
    return 0 if all(results) else 1


def random_weights(dt, shape, rng) -> tuple[lpir.PackedArray, np.ndarray]:
    """Random finite codes of dtype `dt`, packed, and their values as f32 (drawn as uint8 or
    uint16 codes: no 64-bit temporaries beside a large table)."""
    codes = rng.integers(0, 1 << dt.nbits, size=shape, dtype=dt.code_numpy_dtype)
    values = dt.decode(codes).astype(np.float32, copy=False)
    if dt.is_float:
        other = ~np.isfinite(values)
        codes[other] = dt.encode(np.zeros(1, np.float32))[0]
        values[other] = 0.0
    return lpir.pack_codes(codes, dt), values
