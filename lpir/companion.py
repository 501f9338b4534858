"""A kernel file's companion `name.py`: finding it, loading it, and checking what it returns.

A companion defines, in its module's scope (`lpir.runner` describes them):

    make_inputs(params, rng) -> list     # the call's arguments, in declaration order
    reference(params, args) -> dict      # {argument index: expected values} in plain numpy
    tolerance(params[, args]) -> (rtol, atol, why)   # optional
    canonical(params, outputs) -> list   # optional: outputs whose order is free, put in one

A `.py` beside a kernel that binds neither name is someone else's script and is ignored, even
when Python cannot parse it. Every other mistake is an `LpirError` placed in the companion: a
syntax error at its line, a name bound to something that is not a function, or a function
that returns what `lpir run` cannot use, at the line that defines it, with what to return.
Exceptions raised inside the companion's own code propagate with their Python traceback,
which points into that code.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from lpir import dtype_conversions as conversions
from lpir.errors import LpirError, SourceLocation, location_in

#: what a companion defines; a .py beside the kernel that defines neither is someone else's
COMPANION_FUNCTIONS = ("make_inputs", "reference")
_SIGNATURES = {
    "make_inputs": "def make_inputs(params, rng) returning the kernel's arguments as a list",
    "reference": "def reference(params, args) returning {argument index: expected values}",
    "tolerance": "def tolerance(params) returning (rtol, atol, why)",
    "canonical": "def canonical(params, outputs) returning the outputs, each in one order",
}
_MENTIONS_A_FUNCTION = re.compile(r"\b(?:make_inputs|reference)\b")


def load_companion(path: str | os.PathLike) -> ModuleType | None:
    """The companion `name.py` of a kernel file, or None: where the file binds neither of
    `COMPANION_FUNCTIONS` in its module's scope (read without running it: it may be any
    script),
    it is not one; where it binds one only, or binds one to something other than a function,
    that is an error."""
    companion = Path(path).with_suffix(".py")
    if not companion.is_file():
        return None
    raw = companion.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        tree = ast.parse(raw, filename=str(companion))
    except (SyntaxError, ValueError) as error:
        if not _MENTIONS_A_FUNCTION.search(text):
            return None  # not Python lpir can read, and no companion by its names
        raise _unparsable(companion, text, error) from None
    places = _top_level_bindings(tree)
    present = [name for name in COMPANION_FUNCTIONS if name in places]
    if not present:
        return None
    if len(present) < len(COMPANION_FUNCTIONS):
        missing = next(name for name in COMPANION_FUNCTIONS if name not in places)
        raise LpirError(
            f"{companion} defines {present[0]} but not {missing}",
            hint="a companion defines make_inputs(params, rng) and reference(params, args) "
            "(and may define tolerance); rename the file if it is not one",
        )
    spec = importlib.util.spec_from_file_location(f"lpir_companion_{companion.stem}", companion)
    if spec is None or spec.loader is None:
        raise LpirError(f"cannot load {companion} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in (*COMPANION_FUNCTIONS, "tolerance", "canonical"):
        value = getattr(module, name, None)
        if value is not None and not callable(value):
            raise LpirError(
                f"the companion's {name} is {_described(value)}, not a function",
                definition_place(module, name, str(companion)),
                f"write {_SIGNATURES[name]}",
            )
    return module


def _unparsable(companion: Path, text: str, error: SyntaxError | ValueError) -> LpirError:
    hint = (
        "fix it: lpir run reads make_inputs and reference from it (rename the file if it "
        "is not this kernel's companion)"
    )
    if not isinstance(error, SyntaxError) or error.lineno is None:
        return LpirError(f"the companion {companion} is not valid Python: {error}", hint=hint)
    column = error.offset or 1
    end = error.end_offset if error.end_lineno == error.lineno else None
    place = location_in(text, str(companion), error.lineno, column, end)
    return LpirError(f"the companion is not valid Python: {error.msg}", place, hint)


def _module_scope(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run in the module's own scope: those of `body` and, inside `if`,
    `try`, `with`, `for`, `while` and `match` among them, theirs (not a def's or a class's)."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _module_scope(getattr(node, field, None) or [])
        for part in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:
            yield from _module_scope(part.body)


def _top_level_bindings(tree: ast.Module) -> dict[str, tuple[int, int, int]]:
    """{name: (line, column, end column)} of each name the module binds in its own scope (a
    def, a class, an assignment, an import; at the top level or under `if True:`, `try:`
    and the like), at its last binding in the text."""
    places: dict[str, tuple[int, int, int]] = {}
    for node in _module_scope(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            start = len("async def " if isinstance(node, ast.AsyncFunctionDef) else "def ")
            if isinstance(node, ast.ClassDef):
                start = len("class ")
            column = node.col_offset + start + 1
            places[node.name] = (node.lineno, column, column + len(node.name))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        column = name.col_offset + 1
                        places[name.id] = (name.lineno, column, column + len(name.id))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                places[bound] = (node.lineno, node.col_offset + 1, node.end_col_offset or 0)
    return places


def definition_place(
    module: ModuleType, name: str, shown_as: str | None = None
) -> SourceLocation | None:
    """Where the companion `module` binds `name` in its scope (None where it is unknown);
    `shown_as`: the file's path as the message shows it (else relative to the working
    directory where it lies below it)."""
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    text = Path(file).read_bytes().decode("utf-8", errors="replace")
    place = _top_level_bindings(ast.parse(text)).get(name)
    if place is None:
        return None
    line, column, end = place
    if shown_as is None:
        relative = os.path.relpath(file)
        shown_as = file if relative.startswith("..") else relative
    return location_in(text, shown_as, line, column, end if end > column else None)


def _described(value: Any) -> str:
    """A value as a message names it: "None", "an int (5)", "a list of 3", "a dict"."""
    if value is None:
        return "None"
    kind = type(value).__name__
    article = "an" if kind[:1] in "aeiou" else "a"
    if isinstance(value, list | tuple | dict):
        return f"{article} {kind} of {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} of shape {list(value.shape)}"
    if isinstance(value, int | float | str | np.generic):
        return f"{article} {kind} ({value!r})"
    return f"{article} {kind}"


def _returned_error(module: ModuleType, name: str, message: str, hint: str) -> LpirError:
    place = definition_place(module, name)
    if place is None:
        return LpirError(
            f"{name} in {getattr(module, '__file__', 'the companion')} {message}", None, hint
        )
    return LpirError(f"the companion's {name} {message}", place, hint)


def in_canonical_order(module: ModuleType | None, params: dict, outputs: list) -> list:
    """A call's arguments after it ran (`outputs`, packed ones unpacked) as the companion's
    `canonical` puts them: outputs whose order the kernel leaves free (the slots atomics
    hand out: moe_align's pairs within an expert's range) in one order, so that targets
    and the reference compare element by element. Without `canonical`, `outputs` itself."""
    function = getattr(module, "canonical", None)
    if function is None:
        return outputs
    ordered = function(params, [np.copy(o) if isinstance(o, np.ndarray) else o for o in outputs])
    if not isinstance(ordered, list | tuple) or len(ordered) != len(outputs):
        raise _returned_error(
            module,  # type: ignore[arg-type]
            "canonical",
            f"returned {_described(ordered)}",
            f"return the {len(outputs)} arguments it was given as a list, outputs reordered",
        )
    return list(ordered)


def companion_inputs(
    module: ModuleType, params: dict, rng: np.random.Generator, names: list[str]
) -> list:
    """The arguments the companion's `make_inputs` returns, checked to be one per kernel
    argument (`names`: the kernel's arguments, in declaration order)."""
    arguments = module.make_inputs(params, rng)
    listed = f"[{', '.join(names)}]"
    if not isinstance(arguments, list | tuple):
        raise _returned_error(
            module,
            "make_inputs",
            f"returned {_described(arguments)}",
            f"return the kernel's {len(names)} arguments as a list, in declaration order: {listed}",
        )
    if len(arguments) != len(names):
        raise _returned_error(
            module,
            "make_inputs",
            f"returned {len(arguments)} arguments; the kernel takes {len(names)}",
            f"return one value per argument, in declaration order: {listed}",
        )
    return list(arguments)


def companion_expected(
    module: ModuleType, params: dict, args: list, names: list[str]
) -> dict[int, Any]:
    """The expected outputs the companion's `reference` returns, by argument index, checked
    to be a non-empty dict whose keys are indices of the kernel's arguments (`names`)."""
    expected = module.reference(params, args)
    last = len(names) - 1
    example = f"{{{last}: ...}} for {names[last]}" if names else "{0: ...}"
    if not isinstance(expected, dict):
        raise _returned_error(
            module,
            "reference",
            f"returned {_described(expected)}",
            f"return a dict {{argument index: expected values}}, e.g. {example}",
        )
    if not expected:
        raise _returned_error(
            module,
            "reference",
            "returned an empty dict: it would check nothing",
            f"return the expected value of each output by its argument index, e.g. {example}",
        )
    checked: dict[int, Any] = {}
    for key, value in expected.items():
        if isinstance(key, str) and key in names:
            raise _returned_error(
                module,
                "reference",
                f"returned a dict keyed by argument name ({key!r})",
                f"key it by the argument's index: {names.index(key)} for {key}",
            )
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise _returned_error(
                module,
                "reference",
                f"returned a dict with the key {key!r}, which is not an argument index",
                f"key it by argument index (0 to {last}), e.g. {example}",
            )
        if not 0 <= key <= last:
            raise _returned_error(
                module,
                "reference",
                f"returned a dict with the key {key}, but the kernel has {len(names)} "
                f"arguments: {', '.join(names)}",
                f"key it by argument index (0 to {last}), e.g. {example}",
            )
        if not _holds_numbers(value):
            raise _returned_error(
                module,
                "reference",
                f"returned {_described(value)} for argument {int(key)} ({names[int(key)]}), "
                "not an array of numbers",
                f"give {names[int(key)]}'s expected values as a numpy array of numbers (of "
                "its shape), e.g. the output computed with numpy",
            )
        checked[int(key)] = value
    return checked


def _holds_numbers(value: Any) -> bool:
    """Whether `value` reads as an array of numbers (integers, floats or bool, numpy's or
    ml_dtypes'), as outputs are compared."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # a ragged list
        return False
    return array.dtype.kind in "biuf" or conversions.is_ml_float(array.dtype)


_TOLERANCE_HINT = (
    "return (rtol, atol, why): two numbers (atol may be an array, a bound per output element) "
    "and a sentence saying why, e.g. (1e-5, 1e-6, 'one f32 rounding')"
)


def checked_tolerance(module: ModuleType, stated: Any) -> tuple[float, Any, str]:
    """The companion's `tolerance` result, checked to be (rtol, atol, why) with rtol and atol
    (a number or an array of them) finite and not negative."""
    if not (isinstance(stated, tuple | list) and len(stated) == 3):
        raise _returned_error(
            module, "tolerance", f"returned {_described(stated)}", _TOLERANCE_HINT
        )
    rtol, atol, why = stated
    wrong = []
    if not _is_number(rtol):
        wrong.append(f"rtol {_described(rtol)}")
    if not (_is_number(atol) or _is_array(atol)):
        wrong.append(f"atol {_described(atol)}")
    if wrong:
        raise _returned_error(
            module,
            "tolerance",
            f"returned a {type(stated).__name__} of 3 with {' and '.join(wrong)}: rtol must be "
            "a number, atol a number or an array of numbers",
            _TOLERANCE_HINT,
        )
    for name, value in (("rtol", rtol), ("atol", atol)):
        values = np.asarray(value, np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            bad = values[~(np.isfinite(values) & (values >= 0))].reshape(-1)[0]
            raise _returned_error(
                module,
                "tolerance",
                f"returned {name} = {float(bad)!r}; a tolerance is a finite number, 0 or more",
                "return how far the kernel's values may lie from the reference's, e.g. (1e-5, "
                "1e-6, 'one f32 rounding'); 0 asks for equality",
            )
    return float(rtol), atol, str(why)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind in "iuf"


__all__ = [
    "COMPANION_FUNCTIONS",
    "checked_tolerance",
    "companion_expected",
    "companion_inputs",
    "definition_place",
    "load_companion",
]
