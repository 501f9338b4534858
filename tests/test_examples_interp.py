"""Every example's CASES run on the reference interpreter and on the thread-IR interpreter (the
CPU pipeline, and the GPU pipeline as "threads-cuda") and match the numpy reference of its
companion script within the tolerance the companion states. All of it takes a few seconds.

`examples/NAME.py` defines CASES (parameter sets), `make_inputs(params, rng)`,
`reference(params, args) -> {argument index: expected array}` and
`tolerance(params) -> (rtol, atol, why)` (or `tolerance(params, args)`, see
`lpir.runner.stated_tolerance`). Integer outputs must match exactly.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.companion import in_canonical_order
from lpir.runner import compare, outputs_of, stated_tolerance

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGETS = ("interp", "threads", "threads-cuda")


def companion(name: str):
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def example_cases() -> list:
    cases = []
    for source in sorted(EXAMPLES.glob("*.lp")):
        module = companion(source.stem)
        for index, params in enumerate(module.CASES):
            for target in TARGETS:
                case_id = _case_id(source, params, target)
                cases.append(pytest.param(source.stem, index, params, target, id=case_id))
    return cases


def _case_id(source: Path, params: dict, target: str) -> str:
    shown = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{source.stem}[{shown}]-{target}"


@pytest.mark.parametrize(("name", "index", "params", "target"), example_cases())
def test_example_case_matches_numpy(name: str, index: int, params: dict, target: str):
    module = companion(name)
    kernel = lpir.compile(EXAMPLES / f"{name}.lp", target=target, **params)
    values = kernel.specialize(None).params
    arguments = module.make_inputs(values, np.random.default_rng(index))
    pristine = copy.deepcopy(arguments)
    kernel(*arguments)
    expected = module.reference(values, pristine)
    rtol, atol, why = stated_tolerance(module, values, pristine)
    results = in_canonical_order(module, values, outputs_of(arguments))
    failures = []
    for position, wanted in expected.items():
        good, text = compare(f"argument {position}", results[position], wanted, rtol, atol)
        if not good:
            failures.append(text)
    assert not failures, f"{name} {params} on {target}: {'; '.join(failures)} ({why})"


def test_every_example_has_cases():
    for source in sorted(EXAMPLES.glob("*.lp")):
        module = companion(source.stem)
        assert module.CASES, f"{source.name}: its companion defines no CASES"
        for attribute in ("make_inputs", "reference", "tolerance"):
            assert callable(getattr(module, attribute, None)), f"{source.stem}.py: {attribute}"
