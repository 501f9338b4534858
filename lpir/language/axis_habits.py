"""What numpy, torch and Triton write for axes and orders, and how lpir writes it.

habits.py meets a call lpir spells otherwise (a module's function, a method, an unknown
function or keyword) and asks here where the call is about axes: a transpose (torch's
`transpose(u, 0, 1)` swaps two dimensions, where lpir's, as numpy's, takes the whole order; an
order as a tuple), a scan or sort along an axis (a positional axis, `dim =`, Triton's
positional `descending`, `reverse`, `stable`), a top-k. Each function takes the arguments'
source text, already split and written as lpir writes it (`True` is `true`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# functions that reorder a tile's dimensions: numpy's and torch's names for lpir's transpose
TRANSPOSES = ("transpose", "trans", "permute", "swapaxes", "swapdims")
SCANS = ("cumsum", "cumprod", "cummax", "cummin")
SORTS = ("sort", "argsort")
# functions whose second positional argument (or dim =) is the axis, lpir's `axis = `
ALONG_AN_AXIS = ("sum", "max", "min", "argmax", "argmin", *SCANS, *SORTS)
# a scan's identity, what an exclusive scan starts with
_TRUE, _FALSE = ("True", "true", "1"), ("False", "false", "0")


def dims_of(text: str) -> list[str] | None:
    """The dimensions of an order written as a tuple or list, `(0, 2, 1)` or `[1, 0]`, or
    None where `text` is no such literal."""
    found = re.fullmatch(r"\s*[(\[]((?:\s*-?\d+\s*,)*\s*(?:-?\d+\s*)?)[)\]]\s*", text)
    if found is None:
        return None
    return [d.strip() for d in found.group(1).split(",") if d.strip()]


# ---- transposes -----------------------------------------------------------------------------
def transpose_hint(func: str, args: Sequence[str], keywords: dict[str, str]) -> str:
    """lpir's transpose for numpy's `transpose(a, axes)`, torch's `transpose(u, d0, d1)`,
    `permute(u, dims)` and `swapaxes`, Triton's `trans(u, *dims)`."""
    tile = args[0] if args else keywords.get("input", keywords.get("a", "t"))
    rest = list(args[1:])
    named = keywords.get("axes", keywords.get("dims", keywords.get("perm")))
    if named is not None:
        rest = [named]
    swapped = [keywords[k] for k in ("dim0", "dim1", "axis1", "axis2") if k in keywords]
    if len(rest) == 1 and dims_of(rest[0]) is not None:  # a whole order, as a tuple
        return f"write transpose({', '.join([tile, *(dims_of(rest[0]) or [])])})"
    if func in ("swapaxes", "swapdims") or (func == "transpose" and len(rest + swapped) == 2):
        first, second = (rest + swapped)[:2]
        return swap_hint(tile, first, second, "torch's transpose" if func == "transpose" else func)
    return f"write transpose({', '.join([tile, *rest])})"


def swap_hint(tile: str, first: str, second: str, said: str = "torch's transpose") -> str:
    """torch's `transpose(u, d0, d1)` (`said`: how the hint names it): lpir's transpose with
    the whole order, at the two smallest ranks the dimensions fit (the rank is not known where
    the hint is made)."""
    try:
        a, b = int(first), int(second)
    except ValueError:
        return (
            f"{said}(u, d0, d1) swaps two dimensions; lpir's transpose takes the "
            f"whole order, as numpy's: write transpose({tile}) for a rank-2 tile, "
            f"transpose({tile}, 0, 2, 1) to swap a rank-3 tile's last two"
        )
    lowest = max(2, *(d + 1 if d >= 0 else -d for d in (a, b)))
    orders = [", ".join(map(str, swapped(rank, a, b))) for rank in (lowest, lowest + 1)]
    forms = [f"transpose({tile}, {order})" for order in orders]
    return (
        f"write {forms[0]} for a rank-{lowest} tile, {forms[1]} for rank {lowest + 1}: "
        f"{said}(u, {a}, {b}) swaps two dimensions, lpir's transpose takes the whole "
        "order of them, as numpy's"
    )


def swapped(rank: int, a: int, b: int) -> list[int]:
    """The order of `rank` dimensions with dimensions a and b (negative: from the last)
    swapped."""
    order = list(range(rank))
    order[a % rank], order[b % rank] = order[b % rank], order[a % rank]
    return order


def last_two_swapped_hint(base: str, rank: int) -> str:
    """torch's `u.mT` (the last two dimensions swapped) of a tile of `rank`."""
    if rank <= 2:
        return f"write transpose({base})"
    order = ", ".join(map(str, swapped(rank, -2, -1)))
    return f"write transpose({base}, {order}): mT swaps the last two dimensions"


# ---- scans, sorts, top-k --------------------------------------------------------------------
def along_an_axis_hint(func: str, positional: Sequence[str], keywords: dict[str, str]) -> str:
    """`tl.cumsum(t, 1, reverse = True)`, `tl.sort(t, 0, True)`, `torch.sort(t, dim = 1)`,
    `t.cumsum(1)`: lpir's call, the axis and the direction named, what lpir lacks said."""
    t = positional[0] if positional else "t"
    third = positional[2].strip() if len(positional) > 2 else None
    second = positional[1] if len(positional) > 1 else ""
    axis = keywords.get("axis", keywords.get("dim", second)).strip()
    arguments = [t] + ([f"axis = {axis}"] if axis else [])
    notes = []
    if func in SORTS:
        flag = third if third in _TRUE + _FALSE else None  # Triton's and torch's 3rd
        down = keywords.get("descending", flag)
        if down is not None:
            arguments.append(f"descending = {bool_text(down)}")
        if {"stable", "kind"} & set(keywords) or (third is not None and flag is None):
            notes.append(always_stable(func))
    if not axis and func in SORTS:  # (numpy's and torch's sorts run along the last axis)
        arguments.insert(1, "axis = -1")
    hint = f"write {func}({', '.join(arguments)})"
    if not axis and func in SCANS:  # numpy's cumsum without an axis flattens
        notes.append(
            f"for a 1-d tile; numpy's {func} without an axis flattens: "
            f"{func}(reshape({t}, -1)), or name the axis"
        )
    if func in SCANS:
        flag = third if third in _TRUE + _FALSE else None  # Triton's reverse
        if bool_text(keywords.get("reverse", flag or "false")) == "true":
            notes.append(reversed_scan(func))
        if bool_text(keywords.get("exclusive", "false")) == "true":
            notes.append(exclusive_scan(func))
    return hint + "".join(f" ({note})" for note in notes)


def bool_text(text: str) -> str:
    """lpir's true or false for Python's `True`, `1`, ...; other text as written."""
    text = text.strip()
    return "true" if text in _TRUE else "false" if text in _FALSE else text


def always_stable(func: str) -> str:
    return f"lpir's {func} is always stable, equal keys keeping their order"


def reversed_scan(func: str) -> str:
    """What lpir writes for a scan from the end of each line: lpir scans forward only. The
    line reversed, scanned and reversed back, by gathers: exact, where a cumsum's
    `sum(t) - cumsum(t) + t` cancels in floats (1e8 then fifteen 1s in f32: 9 for 15)."""
    return (
        f"lpir has no reversed scan: a reversed {func} is the {func} of the line reversed, "
        f"reversed back; of a 1-d t of n, with r = n - 1 - arange(n), gather({func}(gather(t, "
        f"r)), r); along axis 1 of a 2-d t, with r = (n - 1 - arange(n))[None, :], "
        f"gather({func}(gather(t, r, axis = 1), axis = 1), r, axis = 1)"
    )


def exclusive_scan(func: str) -> str:
    """What lpir writes for an exclusive scan: lpir's are inclusive. The inclusive one moved
    one place by a gather whose position -1 reads the scan's identity: exact, where a
    cumsum's `cumsum(t) - t` cancels in floats (1.0 then 1e8 in f32: 0 for 1)."""
    if func == "cumsum":  # (gather's position -1 reads 0 without an `other`)
        return (
            "lpir's scans are inclusive: an exclusive cumsum is the inclusive one moved one "
            "place along the line; of a 1-d t of n, gather(cumsum(t), arange(n) - 1) (position "
            "-1 reads 0; exact, where cumsum(t) - t cancels in floats); along axis 1 of a 2-d "
            "t, gather(cumsum(t, axis = 1), (arange(n) - 1)[None, :], axis = 1)"
        )
    identity = {
        "cumprod": "1.0 (1 for integers)",
        "cummax": "-inf (min_value(T) for integers)",
        "cummin": "inf (max_value(T) for integers)",
    }.get(func, "the identity")
    return (
        f"lpir's scans are inclusive: an exclusive {func} is the inclusive one moved one place "
        f"along the line; of a 1-d t of n, gather({func}(t), arange(n) - 1, other = v) with v "
        f"{identity}; along axis 1 of a 2-d t, gather({func}(t, axis = 1), "
        "(arange(n) - 1)[None, :], axis = 1, other = v)"
    )


def topk_hint(positional: Sequence[str], keywords: dict[str, str]) -> str:
    """Triton's `tl.topk(t, k)`, torch's `topk(t, k, dim = d)`: a sort or argsort cut to its
    first k (docs/language.md, sort)."""
    t = positional[0] if positional else keywords.get("input", "t")
    k = positional[1] if len(positional) > 1 else keywords.get("k", "K")
    axis = keywords.get("dim", keywords.get("axis", positional[2] if len(positional) > 2 else "-1"))
    down = bool_text(keywords.get("largest", "true"))
    line, axis = f"axis = {axis.strip()}, descending = {down}", axis.strip()
    cut = {"1": f"[:, 0:{k}]", "0": f"[0:{k}]"}.get(axis)
    values = (
        f"sort({t}, {line}){cut} for the values"
        if cut is not None
        else f"sort({t}, {line})[0:{k}] for the values of a 1-d tile ([:, 0:{k}] of a 2-d one)"
    )
    return (
        f"write {values}, argsort(...){cut or f'[0:{k}]'} for their positions; for both, "
        "argsort once and "
        f"gather({t}, ids, axis = {axis}) the values at the positions ids (one sort network, "
        f"not two). [0:{k}] must be an aligned block ({k} dividing the line's length): "
        "otherwise cut the next power of two and store it with a mask"
    )


# ---- keywords lpir's own functions do not take ---------------------------------------------
def axis_keyword_hint(func: str, keyword: str, value: str, allowed: Sequence[str]) -> str | None:
    """The hint for numpy's, torch's or Triton's keyword `keyword = value` in a call of lpir's
    `func`, whose keywords are `allowed`, or None."""
    if keyword == "dim" and "axis" in allowed:
        return f"lpir calls it axis: write axis = {value}"
    if func in SORTS and keyword in ("desc", "reverse"):
        return f"write descending = {bool_text(value)}"
    if func in SORTS and keyword in ("stable", "kind"):
        return f"{always_stable(func)}: leave {keyword} out"
    if func in SCANS and keyword == "reverse":
        return reversed_scan(func)
    if func in SCANS and keyword == "exclusive":
        return exclusive_scan(func)
    return None


def named_arguments_hint(func: str, signature: str, given: Sequence[str]) -> str | None:
    """The call written with its keyword arguments named, where `given` (the arguments'
    text) has more positional ones than `signature` takes and the rest fit its keywords in
    order: `cumsum(t, 1)` is `cumsum(t, axis = 1)`, `sort(t, 0, true)` is
    `sort(t, axis = 0, descending = true)`, Triton's `load(p, m, 0.0)` names mask and other;
    Triton's `cumsum(t, 0, True)` scans in reverse."""
    if " or " in signature or ", ..." in signature or "<" in signature.split("(")[0]:
        return None
    parameters = [p.strip() for p in signature[signature.index("(") + 1 : -1].split(",")]
    names = [p.split("=")[0].strip() for p in parameters if "=" in p]
    flags = {p.split("=")[0].strip() for p in parameters if p.endswith(("= false", "= true"))}
    plain = len(parameters) - len(names)
    extra = list(given[plain:])
    if func in SCANS and plain == 1 and len(extra) == 2:
        return along_an_axis_hint(func, given, {})
    if len(given) <= plain or len(extra) > len(names):
        return None
    written = [
        *given[:plain],
        *(f"{n} = {bool_text(v) if n in flags else v}" for n, v in zip(names, extra)),
    ]
    named = " and ".join(names[: len(extra)])
    verb = "is a keyword" if len(extra) == 1 else "are keywords"
    return f"{named} {verb}: write {func}({', '.join(written)})"
