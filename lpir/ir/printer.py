"""The canonical text form of the IR (it parses back: see `lpir.ir.parser`).

    kernel @vector_add[N = 1000, BLOCK = 256](%x: global f32[1000], ...) blocks(4, 1, 1)
        threads(128) {
      %bx = block_index {axis = 0} : i32
      ...
    }

Ops print generically, `%r = name(%a, %b) {key = value} : type`, except `for` and `if`, which
have their own readable forms. Names are deterministic: a value with a hint prints as `%hint`,
later values with the same hint as `%hint.1`, `%hint.2`, ...; values without a hint are
numbered `%0`, `%1`, ... in order of appearance.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from lpir.dtypes import DType
from lpir.ir.core import Kernel, Module, Operation, Region, Value
from lpir.ir.grid import count_text
from lpir.ir.ops.control import ForOp, IfOp

_SUFFIX = re.compile(r"^(.*)\.(\d+)$")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_]")
_F64_FRACTION = (1 << 52) - 1
_F64_QUIET = 1 << 51  # the fraction of math.nan, numpy's and x86's default NaN


def format_attribute(value: Any) -> str:
    """The text of an attribute value: ints, floats, bools, strings, dtypes, tuples."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, DType):
        return value.name
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_attribute(v) for v in value) + "]"
    return str(value)


def format_float(value: float) -> str:
    """A float's text, exact: repr (the shortest decimal that reads back as the same f64) for
    numbers, `inf`/`-inf`, and `nan`/`-nan` with the sign of the NaN. A NaN whose f64 fraction
    is not the default quiet one (0x8000000000000) adds it: `-nan(0x8000020000000)` is
    f32 0xffc00001. Every NaN reads back bit for bit (its sign decides where it goes: a cast to
    an all-finite small float gives a zero of the opposite sign)."""
    if not math.isnan(value):
        return repr(value)
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    sign = "-" if bits >> 63 else ""
    fraction = bits & _F64_FRACTION
    return f"{sign}nan" if fraction == _F64_QUIET else f"{sign}nan({fraction:#x})"


class Namer:
    """Gives every value a unique, deterministic name in order of first definition."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.counts: dict[str, int] = {}
        self.anonymous = 0

    def define(self, value: Value) -> str:
        hint = value.name_hint
        if hint is not None:
            match = _SUFFIX.match(hint)
            if match:
                hint = match.group(1)
            hint = _BAD_CHARS.sub("_", hint)
        if not hint or hint[0].isdigit():
            name = str(self.anonymous)
            self.anonymous += 1
        else:
            count = self.counts.get(hint, 0)
            self.counts[hint] = count + 1
            name = hint if count == 0 else f"{hint}.{count}"
        self.names[id(value)] = name
        return "%" + name

    def __getitem__(self, value: Value) -> str:
        name = self.names.get(id(value))
        return "%" + name if name is not None else f"%<undefined {value.name_hint or '?'}>"


class Printer:
    def __init__(self, namer: Namer | None = None):
        self.namer = namer or Namer()
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def kernel(self, kernel: Kernel) -> None:
        params = ", ".join(f"{k} = {format_attribute(v)}" for k, v in kernel.params.items())
        args = ", ".join(f"{self.namer.define(a)}: {a.type}" for a in kernel.args)
        grid = ", ".join(count_text(g) for g in kernel.grid)
        stage = "" if kernel.stage == "tile" else f" stage({kernel.stage})"
        header = f"kernel @{kernel.name}[{params}]({args}) blocks({grid}) threads({kernel.threads})"
        self.emit(0, header + stage + " {")
        self.region_body(kernel.body, 1)
        self.emit(0, "}")

    def region_body(self, region: Region, depth: int) -> None:
        for op in region.ops:
            self.op(op, depth)

    def op(self, op: Operation, depth: int) -> None:
        if isinstance(op, ForOp):
            self.for_op(op, depth)
        elif isinstance(op, IfOp):
            self.if_op(op, depth)
        else:
            self.emit(depth, self.generic(op))

    def results_prefix(self, op: Operation) -> str:
        if not op.results:
            return ""
        return ", ".join(self.namer.define(r) for r in op.results) + " = "

    def generic(self, op: Operation) -> str:
        text = self.results_prefix(op) + op.name
        if op.operands:
            text += "(" + ", ".join(self.namer[v] for v in op.operands) + ")"
        if op.attributes:
            items = sorted(op.attributes.items())
            text += " {" + ", ".join(f"{k} = {format_attribute(v)}" for k, v in items) + "}"
        if op.results:
            text += " : " + ", ".join(str(r.type) for r in op.results)
        return text

    def for_op(self, op: ForOp, depth: int) -> None:
        lower, upper, step = (self.namer[v] for v in op.operands[:3])
        prefix = self.results_prefix(op)
        iv = self.namer.define(op.induction_variable)
        text = f"{prefix}for {iv} = {lower} to {upper} step {step}"
        if op.stages is not None:
            text += f" stages {op.stages}"
        if op.iter_args:
            pairs = [
                f"{self.namer.define(a)} = {self.namer[v]}" for a, v in zip(op.iter_args, op.inits)
            ]
            text += " iter_args(" + ", ".join(pairs) + ")"
            text += " -> " + ", ".join(str(r.type) for r in op.results)
        self.emit(depth, text + " {")
        self.region_body(op.body, depth + 1)
        self.emit(depth, "}")

    def if_op(self, op: IfOp, depth: int) -> None:
        text = f"{self.results_prefix(op)}if {self.namer[op.operands[0]]}"
        if op.results:
            text += " -> " + ", ".join(str(r.type) for r in op.results)
        self.emit(depth, text + " {")
        self.region_body(op.then_region, depth + 1)
        if op.else_region.ops and not _is_empty_yield(op.else_region):
            self.emit(depth, "} else {")
            self.region_body(op.else_region, depth + 1)
        self.emit(depth, "}")


def _is_empty_yield(region: Region) -> bool:
    return len(region.ops) == 1 and region.ops[0].name == "yield" and not region.ops[0].operands


def print_kernel(kernel: Kernel) -> str:
    printer = Printer()
    printer.kernel(kernel)
    return "\n".join(printer.lines) + "\n"


def print_module(module: Module) -> str:
    """The whole module's text (kernels separated by a blank line)."""
    return "\n".join(print_kernel(k) for k in module.kernels)


def print_op(op: Operation) -> str:
    """One op (with its regions) for messages; values outside it print as undefined names."""
    printer = Printer()
    printer.op(op, 0)
    return "\n".join(printer.lines)
