"""The IR text form round-trips: print -> parse -> print gives the same text.

Checked for every example at its default parameters, after every pass of the CPU and GPU
pipelines (the verifier must accept the IR after each pass too), and for every FileCheck input
(`tests/filecheck/**/*.lp` and `*.ir`) that compiles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lpir.passes import PIPELINES, get_pass

from lpir.errors import LpirError
from lpir.ir.core import Module
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.verifier import verify
from lpir.tools import load_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.lp"))
FILECHECK_INPUTS = sorted(
    path for suffix in ("*.lp", "*.ir") for path in (ROOT / "tests" / "filecheck").rglob(suffix)
)

# Kernel sources that should compile (the error tests are left out).
FILECHECK_KERNELS = [p for p in FILECHECK_INPUTS if p.suffix == ".lp" and p.parent.name != "errors"]


def assert_round_trip(module: Module, where: str) -> str:
    """`module`'s text, checked to parse back into a verified module that prints the same."""
    text = print_module(module)
    reparsed = parse(text, f"<{where}>")
    verify(reparsed)
    again = print_module(reparsed)
    assert again == text, f"{where}: the IR prints differently after parsing it back"
    return text


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_example_round_trips_at_defaults(example: Path):
    module = load_module(str(example))
    verify(module)
    assert_round_trip(module, example.name)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_example_round_trips_after_every_pass(example: Path, target: str):
    """And no pass changes a module it was given: `Kernel.ir(stage)` replays the pipeline from
    the source to print a stage (lpir/runtime/stages.py), which needs the source kept as it was."""
    module = load_module(str(example))
    made = [("the source", module, print_module(module))]
    for index, name in enumerate(PIPELINES[target]):
        module = get_pass(name, target=target).run(module)
        where = f"{example.name} after pass {index} ({name}, {target})"
        verify(module, require_layouts=_has_layouts(PIPELINES[target][: index + 1]))
        made.append((where, module, assert_round_trip(module, where)))
    assert module.kernels[0].stage == "thread"
    for where, earlier, text in made:
        assert print_module(earlier) == text, f"{where}: a later pass changed it in place"


def _has_layouts(passes_so_far) -> bool:
    """Between layout-selection and lower-to-threads every register tile has a layout."""
    return "layout-selection" in passes_so_far and "lower-to-threads" not in passes_so_far


def _load_or_skip(path: Path) -> Module:
    try:
        return load_module(str(path))
    except LpirError as error:
        pytest.skip(f"does not compile (an error test): {error.message}")


@pytest.mark.parametrize("path", FILECHECK_INPUTS, ids=_id)
def test_filecheck_input_round_trips(path: Path):
    module = _load_or_skip(path)
    try:
        verify(module)
    except LpirError as error:
        pytest.skip(f"fails the verifier (a verifier test): {error.message}")
    assert_round_trip(module, path.name)


def test_every_kind_of_filecheck_input_is_covered():
    folders = {path.parent.name for path in FILECHECK_INPUTS}
    assert {"parse", "errors", "passes", "print"} <= folders
    assert any(p.suffix == ".ir" for p in FILECHECK_INPUTS)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("path", FILECHECK_KERNELS, ids=_id)
def test_filecheck_kernel_round_trips_through_the_pipeline(path: Path, target: str):
    module = _load_or_skip(path)
    for name in PIPELINES[target]:
        module = get_pass(name, target=target).run(module)
        verify(module)
    assert_round_trip(module, f"{path.name} after the {target} pipeline")
