"""What an op must look like, declared on its class and checked before its own `verify_()`.

Each op class sets `signature = Signature(...)`: how many operands, results and regions it
takes, and which attributes it requires (and may have), each with the kind of value it holds.
`check_signature(op)` compares an op against its class's signature, so that IR text with a
missing attribute, a string where an int list belongs or one operand too many is a located
`VerifyError` instead of a `KeyError` in a pass or the interpreter::

    class ReduceOp(Operation):
        names = ("reduce",)
        signature = Signature(
            operands=exactly(1), results=exactly(1), attributes={"kind": REDUCTION, "axis": INT}
        )

This is the part of xDSL's IRDL that lpir needs, without its machinery: counts and attribute
kinds are data; the relations between types stay in each op's `verify_()` and `create()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lpir.dtypes import DType

if TYPE_CHECKING:
    from lpir.ir.core import Operation


@dataclass(frozen=True)
class AttributeKind:
    """A kind of attribute value: `description` reads "an int", "a list of ints", ..."""

    description: str
    accepts: Callable[[Any], bool]
    example: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def _is_list_of(accepts: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, tuple | list) and all(accepts(v) for v in value)


INT = AttributeKind("an int", _is_int, "0")
INT_LIST = AttributeKind("a list of ints", _is_list_of(_is_int), "[0, 1]")
NUMBER = AttributeKind("a number or true/false", _is_number, "0")
NUMBER_LIST = AttributeKind("a list of numbers", _is_list_of(_is_number), "[0, 1]")
STRING = AttributeKind("a string", lambda value: isinstance(value, str), '"text"')
DTYPE = AttributeKind("a dtype name", lambda value: isinstance(value, DType), "u8")


def one_of(*choices: str) -> AttributeKind:
    """A string attribute that takes one of `choices`."""
    shown = ", ".join(f'"{c}"' for c in choices)
    return AttributeKind(f"one of {shown}", lambda value: value in choices, f'"{choices[0]}"')


@dataclass(frozen=True)
class Count:
    """How many operands (results, regions) an op takes: `low` to `high` (None: no limit)."""

    low: int
    high: int | None

    def accepts(self, count: int) -> bool:
        return count >= self.low and (self.high is None or count <= self.high)

    def describe(self, noun: str) -> str:
        """'2 operands', 'at least 3 operands', '2 or 3 operands', 'no regions'."""
        plural = noun if self.high == 1 and self.low == 1 else noun + "s"
        if self.high is None:
            return f"any number of {noun}s" if self.low == 0 else f"at least {self.low} {plural}"
        if self.low == self.high:
            return f"no {noun}s" if self.low == 0 else f"{self.low} {plural}"
        joiner = "or" if self.high == self.low + 1 else "to"
        return f"{self.low} {joiner} {self.high} {noun}s"


def exactly(count: int) -> Count:
    return Count(count, count)


NONE = Count(0, 0)


def at_least(count: int) -> Count:
    return Count(count, None)


def between(low: int, high: int) -> Count:
    return Count(low, high)


@dataclass(frozen=True)
class Signature:
    """The shape of an op: counts of operands, results and regions, and its attributes.

    Attributes:
        attributes: the attributes the op requires, by name.
        optional: the attributes it may have; any other attribute is an error.
    """

    operands: Count = NONE
    results: Count = NONE
    regions: Count = NONE
    attributes: Mapping[str, AttributeKind] = field(default_factory=dict)
    optional: Mapping[str, AttributeKind] = field(default_factory=dict)

    def attribute_summary(self) -> str:
        """'dims (a list of ints), shape (a list of ints)' and then the optional ones."""

        def listed(attributes: Mapping[str, AttributeKind]) -> str:
            return ", ".join(f"{name} ({kind.description})" for name, kind in attributes.items())

        if not self.attributes and not self.optional:
            return "no attributes"
        if not self.optional:
            return listed(self.attributes)
        optional = f"optionally {listed(self.optional)}"
        return f"{listed(self.attributes)}, and {optional}" if self.attributes else optional


def check_signature(op: Operation) -> None:
    """Raise a located `VerifyError` when `op` breaks its class's `signature`."""
    signature: Signature = type(op).signature
    counts = (
        ("takes", "operand", signature.operands, len(op.operands)),
        ("gives", "result", signature.results, len(op.results)),
        ("has", "region", signature.regions, len(op.regions)),
    )
    for verb, noun, expected, got in counts:
        if not expected.accepts(got):
            raise op.error(f"{verb} {expected.describe(noun)}, not {got}")
    for name, kind in signature.attributes.items():
        if name not in op.attributes:
            raise op.error(
                f"missing attribute '{name}' ({kind.description})",
                hint=f"'{op.name}' takes {signature.attribute_summary()}",
            )
    for name, value in op.attributes.items():
        declared = signature.attributes.get(name) or signature.optional.get(name)
        if declared is None:
            raise op.error(
                f"unknown attribute '{name}'",
                hint=f"'{op.name}' takes {signature.attribute_summary()}",
            )
        if not declared.accepts(value):
            raise op.error(
                f"attribute '{name}' must be {declared.description}, not {_shown(value)}",
                hint=f"e.g. {name} = {declared.example}",
            )


def _shown(value: Any) -> str:
    from lpir.ir.printer import format_attribute

    return format_attribute(value)
