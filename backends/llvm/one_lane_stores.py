"""Masked stores that optimized LLVM IR leaves with one constant lane, made scalar stores.

LLVM 22's x86 code generator (llvmlite 0.50) miscompiles `llvm.masked.store` of a vector
truncated from wider integers (`trunc <4 x i32> to <4 x i8>`, i32 -> i16, i64 -> i32, i16 ->
i8, ...) when its mask is a constant with exactly one lane set, on AVX-512 (a host with
avx512bw, or x86-64-v4): the truncation folds into the store (`vpmovdb` under a mask), then the
one-lane store becomes a scalar store of the lane's untruncated element, which writes 2, 4 or 8
bytes where the lane has 1, 2 or 4, past the end of the tensor or over the next element (another
block's output). LLVM issue 179489, fixed by pull request 179853 after LLVM 22.1. Only a mask
of one lane goes wrong: masks of two lanes or more, run-time masks, masked loads of one lane
(extended or not), gathers and scatters all lower correctly (each checked by running it next to
an unreadable page or a canary).

lpir's masks are seldom constants as emitted: an edge mask `arange(T) < N - n0` becomes one
when its tensor's size is known (every size is, after specialization) and the loop around it is
unrolled, in the last step of a loop over a row of 65 bytes in tiles of 16. So the rewrite runs
on the optimized module, where LLVM has folded what it can: each masked store whose mask is a
constant with one lane set becomes the lane's `extractelement` and a plain store (the best code
for one lane anyway), one with no lane set goes away; every other masked store stays as it is.
"""

from __future__ import annotations

import math
import re

from lpir.errors import CompileError

#: The start of every masked store's call in LLVM's IR text (its intrinsic's name mangled by
#: the stored vector type and the pointer's address space).
CALL = "call void @llvm.masked.store."

# One masked store as LLVM 22 prints it: the stored value, the pointer (after its parameter
# attributes, `align` among them), the mask, then call-site attributes and metadata.
_MASKED_STORE = re.compile(
    r"(?P<indent>[ \t]*)(?:(?:tail|musttail|notail) )?call void @llvm\.masked\.store\.[\w.]+\("
    r"<(?P<lanes>\d+) x (?P<element>[^>]+)> (?P<value>.+), "
    r"ptr (?P<attributes>(?:[\w()]+ )*)(?P<pointer>%[-\w.$]+|%\"[^\"]*\"), "
    r"<(?P=lanes) x i1> (?P<mask>.+)\)(?P<suffix>(?: #\d+)?(?:, ![\w.]+ !\d+)*)"
)
_ALIGN = re.compile(r"\balign (\d+)\b")
_FLOAT_BYTES = {"half": 2, "bfloat": 2, "float": 4, "double": 8}
_PREFIX = "lpir.lane."  # the names of the values the rewrite adds


def stores_in(declarations: list[str]) -> bool:
    """Whether a module that declares the functions named `declarations` may hold a masked
    store (its intrinsic is declared once per vector type stored)."""
    return any(name.startswith("llvm.masked.store.") for name in declarations)


def scalarize_one_lane_stores(text: str) -> str | None:
    """`text` (optimized LLVM IR) with each masked store of a constant one-lane mask made a
    scalar store of that lane, and each of an all-false constant mask removed; None where it
    holds none of either."""
    if CALL not in text:
        return None
    if f"%{_PREFIX}" in text:
        raise CompileError(f"LLVM IR already names values %{_PREFIX}*: rewritten twice")
    lines = text.split("\n")
    changed = False
    for number, line in enumerate(lines):
        if CALL not in line:
            continue
        replacement = _scalar_store(line, number)
        if replacement is not None:
            lines[number] = replacement
            changed = True
    return "\n".join(lines) if changed else None


def _scalar_store(line: str, number: int) -> str | None:
    """The lines that replace one masked store's call (none: ""), or None to keep it."""
    call = _MASKED_STORE.fullmatch(line)
    if call is None:
        # LLVM printed a masked store in a form lpir does not know: keeping it could keep a
        # miscompiled store, so the kernel is refused rather than run.
        raise CompileError(f"lpir cannot read a masked store of the optimized LLVM IR: {line}")
    mask = _constant_mask(call["mask"], int(call["lanes"]))
    if mask is None:
        return None  # a run-time mask: lowered correctly
    on = [lane for lane, value in enumerate(mask) if value]
    if len(on) > 1:
        return None
    if not on:
        return ""
    lane = on[0]
    indent, element, pointer = call["indent"], call["element"], call["pointer"]
    width = re.fullmatch(r"i(\d+)", element)
    if width and int(width[1]) % 8:  # (lanes packed into bits: lane k is not at byte k)
        raise CompileError(f"lpir cannot rewrite a masked store of {element} lanes: {line}")
    vector = f"<{call['lanes']} x {element}>"
    value = f"%{_PREFIX}{number}"
    found = _ALIGN.search(call["attributes"])
    align = int(found[1]) if found else 1
    lines = [f"{indent}{value} = extractelement {vector} {call['value']}, i64 {lane}"]
    address = pointer
    if lane:
        address = f"%{_PREFIX}{number}.address"
        lines.append(
            f"{indent}{address} = getelementptr inbounds {element}, ptr {pointer}, i64 {lane}"
        )
        align = math.gcd(align, lane * _element_bytes(element))
    metadata = re.sub(r"^ #\d+", "", call["suffix"])  # call-site attributes: not a store's
    lines.append(f"{indent}store {element} {value}, ptr {address}, align {align}{metadata}")
    return "\n".join(lines)


def _constant_mask(text: str, lanes: int) -> list[bool] | None:
    """The lanes of a mask operand's text that are surely set (a poison or undef lane counts
    as clear: either is a valid choice), or None where the mask is not a constant."""
    if text == "zeroinitializer":
        return [False] * lanes
    if text in ("splat (i1 true)", "splat (i1 false)"):
        return [text == "splat (i1 true)"] * lanes
    if not (text.startswith("<") and text.endswith(">")):
        return None
    values = [value.strip() for value in text[1:-1].split(",")]
    if len(values) != lanes or any(
        value not in ("i1 true", "i1 false", "i1 poison", "i1 undef") for value in values
    ):
        return None
    return [value == "i1 true" for value in values]


def _element_bytes(element: str) -> int:
    """An element type's bytes in memory (1 where unknown: the store's alignment only needs
    a divisor of the real one)."""
    if element in _FLOAT_BYTES:
        return _FLOAT_BYTES[element]
    width = re.fullmatch(r"i(\d+)", element)
    return int(width[1]) // 8 if width and int(width[1]) % 8 == 0 else 1


__all__ = ["CALL", "scalarize_one_lane_stores", "stores_in"]
