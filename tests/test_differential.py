"""Differential tests: every example x random shapes x dtypes x every available target agrees
with the reference interpreter.

Shapes are drawn so that tile sizes often do not divide them. Integer outputs must match
exactly; float outputs within the tolerance the example's companion states (and why).
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.runner import compare, outputs_of, stated_tolerance

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))


def _backend_available(target: str) -> bool:
    if target != "cpu":
        return True
    try:
        from lpir.backends.llvm import compile_kernel  # noqa: F401
    except ImportError:
        return False
    return True


TARGETS = [t for t in ("threads", "threads-cuda", "cpu") if _backend_available(t)]


def companion(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def random_cases(seed: int) -> list[tuple[str, dict]]:
    """(example, parameters) pairs with shapes that mostly do not divide the tiles."""
    rng = np.random.default_rng(seed)

    def size(low, high):
        return int(rng.integers(low, high))

    weights = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "i2", "i3", "i4", "i5", "i7"]
    weights += ["i8", "f4e2m1", "f6e3m2", "f6e2m3", "f8e4m3", "f8e5m2", "f3e1m1", "f5e2m2"]
    cases = [
        ("vector_add", {"N": size(1, 3000), "T": str(rng.choice(["f32", "f16", "i32", "u8"]))}),
        ("softmax", {"M": size(1, 40), "N": size(2, 130), "T": str(rng.choice(["f32", "f16"]))}),
        (
            "rmsnorm",
            {
                "M": size(1, 40),
                "N": size(2, 700),
                "BM": int(rng.choice([1, 2, 4])),
                "THREADS": int(rng.choice([64, 128, 256])),
                "T": str(rng.choice(["f32", "f16", "bf16"])),
            },
        ),
        (
            "matmul_wq",
            {
                "M": size(1, 80),
                "N": size(1, 80),
                "K": 128,
                "WT": str(rng.choice(weights)),
                "T": str(rng.choice(["f16", "bf16"])),
            },
        ),
        (
            "attention",
            {
                "H": size(1, 3),
                "L": size(1, 150),
                "D": int(rng.choice([32, 64])),
                "CAUSAL": size(0, 2),
                "T": str(rng.choice(["f16", "bf16"])),
                "SHARED_KV": size(0, 2),
            },
        ),
        (
            "rope",
            {
                "T": size(1, 80),
                "H": size(1, 3),
                "D": int(rng.choice([32, 64, 128])),
                "INTERLEAVED": size(0, 2),
                "QT": str(rng.choice(["f16", "bf16", "f32"])),
            },
        ),
        (
            "gemv_mx",
            {
                "N": size(1, 150),
                "K": size(1, 400),
                "WT": str(rng.choice(weights)),
                **[{"ST": "u8", "G": 32}, {"ST": "f8e4m3", "G": 16}][size(0, 2)],
            },
        ),
    ]
    for wt in rng.choice(weights, size=3, replace=False):
        dt = lpir.dtype(str(wt))
        zero = 1 << (dt.nbits - 1) if dt.kind == "uint" else 0
        cases.append(
            ("gemv_wq", {"N": size(1, 150), "K": size(1, 400), "WT": dt.name, "ZERO": zero})
        )
        cases.append(
            ("dequantize", {"M": size(1, 40), "N": size(1, 100), "WT": dt.name, "ZERO": zero})
        )
        cases.append(
            ("quantize", {"M": size(1, 40), "N": size(1, 100), "WT": dt.name, "ZERO": zero})
        )
    # drawn last, so that the cases above stay what they were
    greedy = {"M": size(1, 12), "V": size(1, 5000), "BM": int(rng.choice([1, 2]))}
    greedy |= {"BV": int(rng.choice([128, 512, 2048])), "T": str(rng.choice(["f32", "bf16"]))}
    cases.append(("greedy", greedy))
    return [
        (name, {k: str(v) if isinstance(v, np.str_) else v for k, v in p.items()})
        for name, p in cases
    ]


CASES = [case for seed in range(8) for case in random_cases(seed)]


def _id(case) -> str:
    name, params = case
    return name + "-" + "-".join(f"{k}{v}" for k, v in params.items())


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_target_agrees_with_interpreter(case, target):
    name, params = case
    module = companion(name)
    path = EXAMPLES / f"{name}.lp"
    oracle = lpir.compile(path, target="interp", **params)
    values = oracle.specialize(None).params
    arguments = module.make_inputs(values, np.random.default_rng(7))
    expected = copy.deepcopy(arguments)
    oracle(*expected)
    got = copy.deepcopy(arguments)
    lpir.compile(path, target=target, **params)(*got)
    rtol, atol, why = stated_tolerance(module, values, arguments)
    for index, (mine, theirs) in enumerate(zip(outputs_of(got), outputs_of(expected))):
        if not isinstance(mine, np.ndarray):
            continue
        # a per-element bound (gemv_mx's) is its output's; the inputs stay as they were
        bound = atol if np.ndim(atol) == 0 or np.shape(atol) == mine.shape else 0.0
        good, text = compare(f"{name} arg {index} on {target}", mine, theirs, rtol, bound)
        assert good, f"{text} (tolerance: {why})"
