"""What Python, numpy and Triton habits write that lpir spells otherwise.

Someone porting a Triton or numpy kernel writes `tl.exp(t)`, `t.to(tl.float16)`, `t ** 2`,
`float('-inf')`, `True`, `a, b = ...`. The front end meets these where it fails (a syntax error,
an unknown function, name or attribute) and asks here for a message and a hint that name the
lpir form: `exp(t)`, `cast<f16>(t)`, `t * t`, `-inf`, `true`, one assignment each. Anything
else is left to the caller (an unknown function's nearest spelling, for a real typo). Calls
about axes and orders (transposes, scans, sorts, top-k) get their hints from axis_habits.py.

The parse-time forms (`foreign_syntax`, `quoted_float`) see only the source line, so they work
on its text: the arguments of a call are shown as written, with the habits inside them (a
`float('-inf')` argument, a `tl.float32` dtype) rewritten too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from lpir.language import ast
from lpir.language.axis_habits import (
    ALONG_AN_AXIS,
    TRANSPOSES,
    along_an_axis_hint,
    axis_keyword_hint,
    dims_of,
    last_two_swapped_hint,
    topk_hint,
    transpose_hint,
)

# Names a Python kernel imports its functions from: `tl.exp`, `np.maximum`, `math.inf`.
MODULES = ("tl", "triton", "np", "numpy", "math", "torch", "jnp", "libdevice")

# Triton's, numpy's and torch's dtype names (after the module) and lpir's for them.
_DTYPES = {
    "float64": "f64",
    "float32": "f32",
    "float16": "f16",
    "bfloat16": "bf16",
    "half": "f16",
    "float": "f32",
    "float8e4nv": "f8e4m3",
    "float8_e4m3fn": "f8e4m3",
    "float8e5": "f8e5m2",
    "float8_e5m2": "f8e5m2",
    "int64": "i64",
    "int32": "i32",
    "int16": "i16",
    "int8": "i8",
    "uint64": "u64",
    "uint32": "u32",
    "uint16": "u16",
    "uint8": "u8",
    "int1": "bool",
    "bool_": "bool",
}
_CONSTANTS = {"inf": "inf", "infinity": "inf", "nan": "nan", "pi": "3.141592653589793"}
_CONSTANTS["e"] = "2.718281828459045"
_TILE_FORMS = {"zeros": "zeros<T>[d, ...]", "ones": "ones<T>[d, ...]"}
_TILE_FORMS |= {"full": "full<T>[d, ...](value)", "shared": "shared<T>[d, ...]"}
_SIMPLE = re.compile(r"-?[\w.]+(?:\[[^\[\]]*\])?")  # t, x.y, 2.0, t[:, None]: no parentheses


class Habit(NamedTuple):
    """A parse error's message and hint, and the columns (1-based, end exclusive) it marks."""

    message: str
    hint: str
    start: int
    end: int


# ---- calls of functions lpir has under another name, or not at all -------------------------
#: CUDA's and Triton's atomics that lpir spells otherwise or lacks (a typo match would offer
#: atomic_xor for atomic_xchg: another operation that compiles)
_ATOMICS_WRITTEN_OTHERWISE = frozenset(
    ("atomic_sub", "atomic_inc", "atomic_dec", "atomic_xchg", "atomic_exch", "atomic_cas")
)


def _atomic_habit(func: str, x: str, y: str) -> tuple[str, str]:
    """(message, hint) for an atomic lpir writes otherwise (`_ATOMICS_WRITTEN_OTHERWISE`)."""
    if func == "atomic_sub":
        return "lpir has no atomic_sub", f"write atomic_add({x}, -{_operand(y)})"
    if func in ("atomic_inc", "atomic_dec"):  # (CUDA's wrap at a bound aside)
        step = "1" if func == "atomic_inc" else "-1"
        return f"lpir has no {func}", f"write atomic_add({x}, {step}) (no wrap at a bound)"
    what = "compare-and-swap" if func == "atomic_cas" else "atomic exchange"
    return f"lpir has no {what} ({func})", (
        "store(slice, value) writes (of several writers one wins); atomic_add, atomic_max, "
        "atomic_min, atomic_and, atomic_or and atomic_xor used as a value give what memory "
        "held before (old = atomic_or(flags[i], bit): whether the bit was already set)"
    )


def foreign_call(
    func: str, args: Sequence[str], keywords: dict[str, str], grid: Sequence[str] = ()
) -> tuple[str, str] | None:
    """(message, hint) for a call `func(args, keywords)` (the arguments' source text) of a
    function Python, numpy or Triton has and lpir writes otherwise, or None. `grid` is the
    kernel's block counts as written, for `num_programs`."""
    x = args[0] if args else "x"
    y = args[1] if len(args) > 1 else "y"
    if func in ("float", "int", "bool"):
        return _conversion(func, x)
    if func in ("maximum", "minimum", "fmax", "fmin"):
        kind = "max" if func in ("maximum", "fmax") else "min"
        return f"lpir has no {func}: {kind}(a, b) is elementwise", f"write {kind}({x}, {y})"
    if func == "fma":
        z = args[2] if len(args) > 2 else "c"
        return "lpir has no fma", f"write {_operand(x)} * {_operand(y)} + {z}"
    if func in ("program_id", "num_programs"):
        axis = keywords.get("axis", args[0] if args else "0").strip()
        return _block_index(func, {"0": 0, "1": 1, "2": 2}.get(axis), grid)
    if func in ("pow", "power"):
        return f"lpir has no {func}", _power_hint(x, y)
    if func in _GATHERS:
        named = "lpir's gather takes the axis as a keyword" if func == "gather" else ""
        return named or f"lpir has no {func}", _gather_hint(func, args, keywords)
    if func in TRANSPOSES:  # (transpose itself only as a module's, np.transpose)
        return f"lpir has no {func}", transpose_hint(func, args, keywords)
    if func == "topk":
        return "lpir has no topk", topk_hint(args, keywords)
    if func in _ATOMICS_WRITTEN_OTHERWISE:
        return _atomic_habit(func, x, y)
    written = _written_otherwise(func, x, args)
    return None if written is None else (f"lpir has no {func}", f"write {written}")


def _written_otherwise(func: str, x: str, args: Sequence[str]) -> str | None:
    """How lpir writes `func(x, ...)`, a function with a short formula, or None."""
    forms = {
        "log1p": f"log(1.0 + {x})",
        "expm1": f"exp({x}) - 1.0",
        "sigmoid": f"1.0 / (1.0 + exp(-{_operand(x)}))",
        "relu": f"max({x}, 0.0)",
        "square": f"{_operand(x)} * {_operand(x)}",
        "fabs": f"abs({x})",
        "mean": f"sum({x}, axis = k) / n, n the length of axis k",
        "expand_dims": f"{_operand(x)}[:, None] (or [None, :]): None in a subscript adds an axis",
        "flip": f"gather({x}, n - 1 - arange(n)) for a 1-d {x} of n (along axis 1 of a 2-d "
        f"tile: gather({x}, (n - 1 - arange(n))[None, :], axis = 1))",
    }
    return forms.get(func)


# numpy's, torch's and Triton's ways to pick elements by position: lpir's gather
_GATHERS = ("take_along_axis", "gather", "take", "index_select")


def _gather_hint(func: str, args: Sequence[str], keywords: dict[str, str]) -> str:
    """lpir's `gather(t, index, axis = k)` for numpy's `take_along_axis(a, i, axis)`,
    Triton's `tl.gather(src, index, axis)`, torch's `gather(input, dim, index)`, and numpy's
    `take` / torch's `index_select` of whole slices (their 1-d positions broadcast)."""
    t = args[0] if args else "t"
    rest = list(args[1:])
    torch_order = func == "index_select" or (
        func == "gather" and len(rest) == 2 and rest[0].strip().lstrip("-").isdigit()
    )
    if torch_order:  # (input, dim, index)
        rest.reverse()
    index = rest[0] if rest else keywords.get("index", keywords.get("indices", "ids"))
    axis = (rest[1] if len(rest) > 1 else keywords.get("axis", keywords.get("dim", "k"))).strip()
    if func in ("take", "index_select"):  # whole slices: the positions broadcast
        placed = {"0": "[:, None]", "1": "[None, :]"}.get(axis, "[None, :]")
        return (
            f"write gather({t}, {_operand(index)}{placed}, axis = {axis}) for a 2-d {t}: the "
            f"positions take {t}'s rank, of size 1 (broadcast) along the other axes; of a 1-d "
            f"tile, gather({t}, {index})"
        )
    return f"write gather({t}, {index}, axis = {axis})"


def _power_hint(x: str, y: str) -> str:
    """How lpir writes `x ** y`."""
    base, exponent = _operand(x), y.strip()
    if exponent in ("2", "2.0", "3", "3.0"):
        return f"write {' * '.join([base] * int(float(exponent)))}"
    if exponent == "0.5":
        return f"write sqrt({x.strip()})"
    return (
        f"write exp2({_operand(exponent)} * log2({x.strip()})) for {base} > 0, or products for "
        f"a small integer power ({base} * {base})"
    )


def _conversion(func: str, x: str) -> tuple[str, str]:
    """`float('-inf')`, `float(x)`, `int(x)`, `bool(x)`."""
    quoted = len(x) >= 2 and x[0] == x[-1] and x[0] in "'\""
    if func == "float" and quoted:
        text = x[1:-1].strip().lower()
        sign = "-" if text.startswith("-") else ""
        name = _CONSTANTS.get(text.lstrip("+-"))
        if name in ("inf", "nan"):
            return "lpir has no float(): infinity and NaN are the constants inf and nan", (
                f"write {sign}{name}"
            )
        try:
            return "lpir has no float(): a number is written as it is", f"write {float(text)!r}"
        except ValueError:
            pass
    if func == "bool":
        return "lpir has no bool(): a comparison gives a bool", f"write {_operand(x)} != 0"
    target = "f32" if func == "float" else "i32"
    truncates = " (it truncates toward zero, as int() does)" if func == "int" else ""
    hint = f"write cast<{target}>({x}){truncates}"
    return f"lpir has no {func}(): a conversion is cast<T>(x)", hint


def _block_index(func: str, axis: int | None, grid: Sequence[str]) -> tuple[str, str]:
    """`program_id(axis)` and `num_programs(axis)`: block.x and the grid's counts."""
    letter = "xyz"[axis] if axis is not None else None
    if func == "program_id":
        hint = f"write block.{letter}" if letter else "write block.x, block.y or block.z"
        return "lpir has no program_id: a block's index is block.x, block.y, block.z", hint
    message = "lpir has no num_programs: the grid is the kernel's blocks(...)"
    if axis is not None and axis < len(grid):
        return message, f"write its count along {letter}, {grid[axis]}"
    return message, "write the count blocks(...) gives along that axis"


def _operand(text: str) -> str:
    """`text` as an operand of `*` or `-`: parenthesized unless it is a name, a number, a
    subscript or a call."""
    text = text.strip()
    call = re.match(r"[\w.]*(?:<\w+>)?(?=\()", text)  # (t + 1.0), exp(t), cast<f32>(t)
    if call is not None and _parenthesized(text[call.end() :]) == text[call.end() + 1 : -1]:
        return text
    if _SIMPLE.fullmatch(text) and not text.startswith("-"):
        return text
    return f"({text})"


# ---- names and attributes -------------------------------------------------------------------
def foreign_name_hint(name: str) -> str | None:
    """The hint for an unknown name that is Python's spelling of an lpir constant."""
    if name in ("True", "False"):
        return f"lpir's booleans are lowercase: write {name.lower()}"
    return None


def module_attribute_hint(name: str) -> str:
    """The hint for `np.inf`, `tl.float32`, `math.pi`: the lpir name, without the module."""
    if name.lower() in _CONSTANTS:
        return f"write {_CONSTANTS[name.lower()]}"
    if name in _DTYPES:
        return f"write {_DTYPES[name]}"
    return f"write lpir's own names, without the module: {name}"


def attribute_hint(name: str, base: str, shape: Sequence[int | str], dtype: str) -> str | None:
    """The hint for `t.T`, `t.shape`, `t.dtype` of a tile or tensor written `base`."""
    if name == "T":
        return f"write transpose({base})"
    if name == "mT":
        return last_two_swapped_hint(base, len(shape))
    if name == "shape":
        return (
            f"its shape is [{', '.join(map(str, shape))}]: write its sizes as the kernel names "
            "them (the header's parameters, the tile sizes it was built with)"
        )
    if name == "dtype":
        return f"its dtype is {dtype}: write {dtype} (or the dtype parameter it came from)"
    return None


def axis_as_operand_hint(node: ast.Node, text: str) -> str | None:
    """The hint for a tile of the wrong shape that is `max(t, 0)` (`text`, its source):
    elementwise in lpir, where Triton's tl.max(x, 0) reduces axis 0."""
    if not (isinstance(node, ast.Call) and node.func in ("max", "min") and len(node.args) == 2):
        return None
    axis = node.args[1]
    if node.keywords or not isinstance(axis, ast.IntLiteral):
        return None
    tile = text[: text.rindex(",")].removeprefix(f"{node.func}(")
    return (
        f"{node.func}(t, {axis.value}) is elementwise, of each element and {axis.value} (Triton's "
        f"tl.{node.func}(x, {axis.value}) reduces axis {axis.value}): to reduce, write "
        f"{node.func}({tile}, axis = {axis.value})"
    )


def keyword_hint(
    func: str, keyword: str, value: str = "", allowed: Sequence[str] = ()
) -> str | None:
    """The hint for a keyword (given `value`, its text) a numpy, torch or Triton function
    takes and lpir's `func`, whose keywords are `allowed`, does not."""
    if keyword == "return_indices" and func in ("max", "min"):
        return (
            f"{func}(t, axis = 0) gives the values and arg{func}(t, axis = 0) their positions: "
            "call both"
        )
    if keyword in ("keep_dims", "keepdims", "keepdim"):
        return "the reduced axis is dropped: add it back with None in a subscript, s[:, None]"
    return axis_keyword_hint(func, keyword, value, allowed)


# ---- syntax lpir does not have --------------------------------------------------------------
def foreign_syntax(line: str, column: int, token: str) -> Habit | None:
    """The habit behind a syntax error at `token` (its text) at `column` of `line`, or None."""
    before, after = line[: column - 1], line[column - 1 + len(token) :]
    if token in ("*", "/") and before.endswith(token):
        return _double_operator(token, before[:-1], after, column - 1)
    if token == ",":
        return _dims_literal(line, column, token) or _tuple_assignment(before, after)
    if token == "[":
        return _dims_literal(line, column, token)
    if token == "(":
        return _call_form(before, line[column - 1 :], column)
    if token == "if" and re.search(r"\belse\b", after):
        return _conditional(line, column)
    if token == ":" and before.rstrip().endswith(":"):
        return _stepped_slice(line, column)
    return None


def _stepped_slice(line: str, column: int) -> Habit | None:
    """numpy's `t[::-1]`, `t[:, ::2]`: a slice with a step (the error is at its second
    ':'), which lpir writes as a gather of the positions."""
    before = line[: column - 1]
    bracket, depth = len(before) - 1, 0
    while bracket >= 0 and not (before[bracket] == "[" and depth == 0):
        depth += {"]": 1, ")": 1, "[": -1, "(": -1}.get(before[bracket], 0)
        bracket -= 1
    inner = _parenthesized(line[bracket:]) if bracket >= 0 else None
    base = _operand_before(line[:bracket].rstrip()) if bracket > 0 else None
    step = re.match(r"\s*(-?\d+)\s*[\],]", line[column:])
    if inner is None or base is None or step is None or int(step.group(1)) == 0:
        return None
    entries = _split_arguments(inner)
    axis = len(_split_arguments(before[bracket + 1 :] + "x")) - 1  # the entries before it
    start = len(line[:bracket].rstrip()) - len(base) + 1
    end = bracket + len(inner) + 3
    written = line[start - 1 : end - 1]
    positions = _stepped_positions(entries[axis] if axis < len(entries) else "", int(step[1]))
    memory = re.search(r"\b(?:load|store|atomic_\w+)\(\s*$", line[: start - 1]) is not None
    tile = "t" if memory else base
    if len(entries) == 1:
        hint = (
            f"write gather({tile}, {positions}) for a 1-d tile of n (numpy's {written} of a "
            f"2-d one steps over its rows: gather({tile}, ({positions})[:, None], axis = 0))"
        )
    else:
        placed = ", ".join(":" if d == axis else "None" for d in range(len(entries)))
        hint = (
            f"write gather({tile}, ({positions})[{placed}], axis = {axis}), n the length of "
            f"axis {axis}"
        )
    if memory:  # a tensor's slice: the step is taken of the tile loaded without it
        hint = f"load {base}'s slice without the step into a tile t, then {hint}"
    return Habit(f"a subscript has no step: {written}", hint, start, end)


def _stepped_positions(entry: str, step: int) -> str:
    """The positions numpy's slice `entry` (`::-1`, `::2`, `1::-1`) with `step` picks of a
    line of n, as lpir writes them."""
    times = f"{abs(step)} * " if abs(step) != 1 else ""
    if re.fullmatch(r"::\s*-?\d+", entry):  # the whole line
        if step > 0:
            return f"{times}arange(n / {step})" if step > 1 else "arange(n)"
        return f"n - 1 - {times}arange(n / {-step})" if step < -1 else "n - 1 - arange(n)"
    return f"start {'+' if step > 0 else '-'} {times}arange(count)"


def _double_operator(operator: str, before: str, after: str, start: int) -> Habit:
    """`t ** 2` and `a // b` (`start` is the first character's column)."""
    a = _operand_before(before.rstrip()) or ("t" if operator == "*" else "a")
    b = _operand_after(after.lstrip()) or ("y" if operator == "*" else "b")
    if operator == "*":
        return Habit("lpir has no power operator **", _power_hint(a, b), start, start + 2)
    a, b = _operand(a), _operand(b)
    hint = (
        f"write {a} / {b}: / of integers truncates toward zero, as in C, where Python's // "
        f"floors (-7 // 2 is -4, -7 / 2 is -3); of floats write floor({a} / {b})"
    )
    return Habit("lpir has no // operator", hint, start, start + 2)


def _operand_before(text: str) -> str | None:
    """The operand `text` ends with: a name, number or subscript, or a parenthesized
    expression or call (None where it is neither)."""
    if not text.endswith(")"):
        found = re.search(rf"({_SIMPLE.pattern})$", text)
        return found.group(1) if found else None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            name = re.search(r"[\w.]*(?:<\w+>)?$", text[:i])
            return text[name.start() if name else i :]
    return None


def _operand_after(text: str) -> str | None:
    """The operand `text` starts with (as `_operand_before`)."""
    if text.startswith("("):
        inner = _parenthesized(text)
        return None if inner is None else f"({inner})"
    found = _SIMPLE.match(text)
    return found.group(0) if found else None


def _dims_literal(line: str, column: int, token: str) -> Habit | None:
    """`transpose(t, (0, 2, 1))`, `transpose(t, [1, 0])`, `transpose(t, axes = (1, 0))`:
    numpy's order of dimensions as a tuple or list (the error is at its first comma, or at
    the '[' that opens it)."""
    before = line[: column - 1]
    if token == "[":
        bracket = column - 1
    else:
        opened = re.search(r"[(\[]\s*-?\d+\s*$", before)
        if opened is None:
            return None
        bracket = opened.start()
    inner = _parenthesized(line[bracket:])
    dims = None if inner is None else dims_of(line[bracket : bracket + len(inner) + 2])
    head = re.match(r"(.*?),\s*(?:(?:axes|dims|perm)\s*=\s*)?$", line[:bracket], re.DOTALL)
    if inner is None or dims is None or head is None:
        return None
    call = max(head.group(1).rfind(f"{name}(") for name in ("transpose", "permute", "trans"))
    if call < 0:
        return None
    tile = head.group(1)[head.group(1).index("(", call) + 1 :]
    if _parenthesized(f"({tile})") != tile:  # the tile is the call's whole first argument
        return None
    after_comma = line[len(head.group(1)) + 1 : bracket]  # ` ` or ` axes = `
    start = bracket - len(after_comma.lstrip()) + 1
    hint = f"write transpose({', '.join([tile.strip(), *dims])})"
    what = "a list" if line[bracket] == "[" else "a tuple"
    message = f"transpose takes the order of dimensions as its arguments, not {what}"
    return Habit(message, hint, start, bracket + len(inner) + 3)


def _tuple_assignment(before: str, after: str) -> Habit | None:
    """`a, b = ...`: several names assigned at once."""
    first = re.fullmatch(r"(\s*(?:let\s+)?)([A-Za-z_]\w*)\s*", before)
    rest = re.match(r"\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*=(?!=)\s*(.*)", after)
    if first is None or rest is None:
        return None
    names = [first.group(2), *re.split(r"\s*,\s*", rest.group(1))]
    start = len(first.group(1)) + 1
    end = len(before) + 2 + rest.end(1)  # `after` starts past the comma
    value = rest.group(2)
    reduction = re.match(r"(max|min)\((.*?),\s*return_indices\s*=", value)
    if reduction is not None and len(names) == 2:
        kind, argument = reduction.groups()
        hint = (
            f"assign each: {names[0]} = {kind}({argument}) for the values, "
            f"{names[1]} = arg{kind}({argument}) for their positions"
        )
    else:
        hint = "assign each name on its own: " + "; ".join(f"{n} = ..." for n in names)
    return Habit("lpir has no tuple assignment", hint, start, end)


def _conditional(line: str, column: int) -> Habit:
    """`a if c else b`."""
    found = re.match(r"\s*(?:let\s+)?\w+\s*=\s*(.+?)\s+if\s+(.+?)\s+else\s+(.+?)\s*$", line)
    hint = "write where(c, a, b), for tiles and scalars alike"
    start = column
    if found is not None:
        a, c, b = (_lpir_text(part) for part in found.groups())
        hint = f"write where({c}, {a}, {b}), for tiles and scalars alike"
        start = found.start(1) + 1
    return Habit("lpir has no conditional expression a if c else b", hint, start, column + 2)


def _call_form(before: str, rest: str, column: int) -> Habit | None:
    """A call lpir writes otherwise: `zeros([BN], f32)` (an untyped tile constructor),
    `tl.exp(t)` (a module's function), `t.to(f16)` (a method). `rest` starts at the '('."""
    found = re.search(r"([A-Za-z_]\w*(?:\[[^\[\]]*\])?(?:\.[A-Za-z_]\w*)*)\s*$", before)
    if found is None:
        return None
    callee = found.group(1)
    inner = _parenthesized(rest)
    args = _split_arguments(inner if inner is not None else "")
    start, end = found.start(1) + 1, column + (len(inner) + 2 if inner is not None else 1)
    if callee in _TILE_FORMS:
        hint = f"write {_tile_constructor(callee, args)}"
        return Habit(f"{callee} is written {_TILE_FORMS[callee]}", hint, start, end)
    if "." not in callee:
        return None
    base, method = callee.rsplit(".", 1)
    if re.split(r"[.\[]", base)[0] in MODULES:
        hint = _module_call_hint(method, args)
        if method == "accumulate":  # np.maximum.accumulate(t, axis = 1)
            hint = _accumulate_hint(base.rsplit(".", 1)[-1], args)
        return Habit(f"lpir has no modules: {callee}", hint, start, end)
    shown = f"{callee}({'...' if inner is None or inner.strip() else ''})"
    return Habit(f"lpir has no methods: {shown}", _method_hint(method, base, args), start, end)


def _module_call_hint(func: str, args: list[str]) -> str:
    """`tl.exp(t)`: the call without the module, as lpir writes it."""
    from lpir.language.builtins import BUILTINS, TYPED_BUILTINS

    if func in _TILE_FORMS:
        return f"write {_tile_constructor(func, args)}"
    positional, keywords = _positional_and_keywords(args)
    foreign = foreign_call(func, positional, keywords)
    if foreign is not None:
        return foreign[1]
    if func in ("cast", "view") and len(positional) == 2:
        return f"write {func}<{_lpir_dtype(positional[1])}>({positional[0]})"
    if func in ALONG_AN_AXIS and positional:
        return along_an_axis_hint(func, positional, keywords)
    if func in BUILTINS or func in TYPED_BUILTINS:
        return f"write {func}({', '.join(args)})"
    return f"lpir has no {func}; call its own functions without a module (docs/language.md)"


# numpy's ufuncs whose accumulate is an lpir scan
_ACCUMULATED = {
    "add": "cumsum", "multiply": "cumprod", "maximum": "cummax", "minimum": "cummin",
    "fmax": "cummax", "fmin": "cummin",
}  # fmt: skip


def _accumulate_hint(ufunc: str, args: list[str]) -> str:
    """`np.maximum.accumulate(t, axis = 1)`: lpir's scan, and where NaNs differ, how."""
    scan = _ACCUMULATED.get(ufunc)
    if scan is None:
        return f"lpir has no {ufunc}.accumulate; its scans are cumsum, cumprod, cummax, cummin"
    hint = _module_call_hint(scan, args)
    if ufunc in ("maximum", "minimum"):
        hint += (
            f" ({scan} passes NaNs over as np.f{ufunc[:3]}.accumulate does, where "
            f"np.{ufunc}.accumulate carries the first NaN to the line's end)"
        )
    return hint


def _method_hint(method: str, base: str, args: list[str]) -> str:
    """`t.to(f16)`, `t.sum(axis = 0)`: the function lpir calls on the value."""
    from lpir.language.builtins import BUILTINS

    positional, keywords = _positional_and_keywords(args)
    if method in ("to", "astype"):
        target = _lpir_dtype(positional[0] if positional else keywords.get("dtype", "T"))
        bits = keywords.get("bitcast", "false").strip() in ("True", "true")
        return f"write {'view' if bits else 'cast'}<{target}>({base})"
    if method == "t":  # torch's: a rank-2 tile's two dimensions swapped
        return f"write transpose({base})"
    if method in TRANSPOSES:
        return transpose_hint(method, [base, *positional], keywords)
    if method in ALONG_AN_AXIS:
        return along_an_axis_hint(method, [base, *positional], keywords)
    if method == "topk":
        return topk_hint([base, *positional], keywords)
    if method in BUILTINS:
        return f"write {method}({', '.join([base, *args])})"
    return f"call a function with {base} as an argument instead, f({base}, ...)"


def _tile_constructor(func: str, args: list[str]) -> str:
    """`zeros<f32>[BN]` for `zeros([BN], dtype = f32)`, `full<f32>[BN](-inf)` for
    `full([BN], float('-inf'), tl.float32)`."""
    positional, keywords = _positional_and_keywords(args)
    shape = keywords.get("shape", positional[0] if positional else "d")
    dims = shape.strip()
    if dims[:1] in "[(" and dims[-1:] in "])":
        dims = dims[1:-1].strip().rstrip(",").strip()
    value_at = 1 if func == "full" else None
    dtype_at = 2 if func == "full" else 1
    dtype_text = keywords.get("dtype", positional[dtype_at] if len(positional) > dtype_at else "")
    written = f"{func}<{_lpir_dtype(dtype_text) if dtype_text else 'f32'}>[{dims}]"
    if value_at is not None:
        value = keywords.get("fill_value", keywords.get("value"))
        if value is None:
            value = positional[value_at] if len(positional) > value_at else "value"
        written += f"({value})"
    return written


# ---- the text of arguments ------------------------------------------------------------------
def _parenthesized(text: str) -> str | None:
    """What is inside the parentheses `text` opens with, or None when they close on a later
    line."""
    depth = 0
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth == 0:
                return text[1:i]
    return None


def _split_arguments(text: str) -> list[str]:
    """The arguments of a call's text, split at its top-level commas, each rewritten as lpir
    writes it (`float('-inf')` is `-inf`)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [_lpir_text(p.strip()) for p in parts if p.strip()]


def _positional_and_keywords(args: list[str]) -> tuple[list[str], dict[str, str]]:
    positional, keywords = [], {}
    for arg in args:
        named = re.fullmatch(r"([A-Za-z_]\w*)\s*=(?!=)\s*(.*)", arg, re.DOTALL)
        if named is None:
            positional.append(arg)
        else:
            keywords[named.group(1)] = named.group(2)
    return positional, keywords


def _lpir_dtype(text: str) -> str:
    """`tl.float16` or `np.float16` -> f16; a name lpir has stays."""
    name = text.strip().rsplit(".", 1)[-1]
    return _DTYPES.get(name, name)


def _lpir_text(text: str) -> str:
    """An argument's text with the habits inside it rewritten: `float('-inf')` -> `-inf`,
    `True` -> `true`, `tl.float32` -> `f32`, `tl.exp(` -> `exp(`."""
    text = re.sub(
        r"""float\(\s*(['"])([+-]?)(inf|nan)\1\s*\)""",
        lambda m: f"{m.group(2).lstrip('+')}{m.group(3)}",
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"\b(True|False)\b", lambda m: m.group(1).lower(), text)
    modules = "|".join(MODULES)
    text = re.sub(rf"\b(?:{modules})\.(\w+)\b(?!\s*\()", lambda m: _lpir_dtype(m[1]), text)
    return re.sub(rf"\b(?:{modules})\.(?=\w+\s*\()", "", text)


def quoted_float(line: str, column: int) -> Habit | None:
    """`float('-inf')`: a single quote (at `column`) that a string cannot open, inside
    float(...), where lpir writes -inf."""
    opened = re.search(r"\bfloat\(\s*$", line[: column - 1])
    closed = re.match(r"('[^'\n]*')\s*\)", line[column - 1 :])
    if opened is None or closed is None:
        return None
    message, hint = _conversion("float", closed.group(1))
    return Habit(message, hint, opened.start() + 1, column + closed.end())
