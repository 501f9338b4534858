"""Malformed IR text is a located LpirError from the verifier, for every op, never a crash.

For each registered op name there is one well-formed instance below. The tests check that it
verifies, then break it one way at a time and check that parsing plus verification raises an
`LpirError` placed at the op (or at the `if` whose region it ends): every required attribute
dropped in turn and given a value of the wrong kind, an unknown attribute, one operand more or
one fewer, one result or region more or fewer. Any other exception (a KeyError in the verifier,
say) fails the test.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import lpir
from lpir.dtypes import dtype
from lpir.errors import LpirError
from lpir.ir import parse, verify
from lpir.ir.core import OPERATION_CLASSES, Kernel, Operation, Region, Value
from lpir.ir.ops import ARITHMETIC, BITWISE, COMPARISONS, FLOAT_UNARY
from lpir.ir.signature import DTYPE, INT, INT_LIST, NUMBER, NUMBER_LIST, AttributeKind
from lpir.ir.types import ScalarType

TILE_PRELUDE = """\
kernel @k[](%g: global f32[64, 64], %n: i32, %flag: bool) blocks(1, 1, 1) threads(32) {
  %i = constant {value = 0} : i32
  %f = constant {value = 1.0} : f32
  %h = constant {value = 1.0} : f16
  %t = splat(%f) {shape = [4, 8]} : f32[4, 8]
  %u = splat(%i) {shape = [4, 8]} : i32[4, 8]
  %b = lt(%t, %t) : bool[4, 8]
  %row = splat(%f) {shape = [1, 8]} : f32[1, 8]
  %ha = splat(%h) {shape = [16, 16]} : f16[16, 16]
  %acc = splat(%f) {shape = [16, 16]} : f32[16, 16]
  %z = splat(%f) {shape = []} : f32[]
  %s = alloc_shared : shared f32[4, 8]
"""
THREAD_PRELUDE = """\
kernel @k[](%g: global f32[64], %w: global u8[64]) blocks(1, 1, 1) threads(32) stage(thread) {
  %i = constant {value = 0} : i32
  %f = constant {value = 1.0} : f32
  %h = constant {value = 1.0} : f16
  %byte = constant {value = 1} : u8
  %v = splat(%f) {shape = [4]} : <4 x f32>
  %bytes = splat(%byte) {shape = [4]} : <4 x u8>
  %m = vector_constant {values = [true, true, false, true]} : <4 x bool>
  %a8 = splat(%h) {shape = [8]} : <8 x f16>
  %b4 = splat(%h) {shape = [4]} : <4 x f16>
  %bh = constant {value = 1.0} : bf16
  %p8 = splat(%bh) {shape = [8]} : <8 x bf16>
  %s16 = alloc_shared : shared f16[16, 16]
"""

CASES: dict[str, tuple[str, str]] = {
    "constant": ("tile", "%r = constant {value = 3} : i32"),
    "where": ("tile", "%r = where(%b, %t, %t) : f32[4, 8]"),
    "cast": ("tile", "%r = cast(%t) : f16[4, 8]"),
    "view": ("tile", "%r = view(%t) : i32[4, 8]"),
    "yield": (
        "tile",
        "%r = if %flag -> f32[4, 8] {\n    yield(%t)\n  } else {\n    yield(%t)\n  }",
    ),
    "for": (
        "tile",
        "%r = for %k = %i to %n step %n iter_args(%x = %t) -> f32[4, 8] {\n    yield(%x)\n  }",
    ),
    "if": ("tile", "if %flag {\n    sync\n    yield\n  }"),
    "load_global": (
        "tile",
        "%r = load_global(%g, %i, %i) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]",
    ),
    "in_bounds": (
        "tile",
        "%r = in_bounds(%g, %i, %i) {dims = [0, 1], shape = [4, 8]} : bool[4, 8]",
    ),
    "load_shared": (
        "tile",
        "%r = load_shared(%s, %i, %i) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]",
    ),
    "store_global": ("tile", "store_global(%g, %i, %i, %t) {dims = [0, 1]}"),
    "store_shared": ("tile", "store_shared(%s, %i, %i, %t) {dims = [0, 1]}"),
    "alloc_shared": ("tile", "%r = alloc_shared : shared f32[2, 2]"),
    "sync": ("tile", "sync"),
    "block_index": ("tile", "%r = block_index {axis = 1} : i32"),
    "splat": ("tile", "%r = splat(%f) {shape = [2, 2]} : f32[2, 2]"),
    "broadcast": ("tile", "%r = broadcast(%row) {shape = [4, 8]} : f32[4, 8]"),
    "expand_dims": ("tile", "%r = expand_dims(%t) {axis = 0} : f32[1, 4, 8]"),
    "transpose": ("tile", "%r = transpose(%t) : f32[8, 4]"),
    "index": ("tile", "%r = index(%t) {axis = 1, position = 3} : f32[4]"),
    "stack": ("tile", "%r = stack(%t, %t) {axis = 2} : f32[4, 8, 2]"),
    "reshape": ("tile", "%r = reshape(%t) {shape = [4, 2, 4]} : f32[4, 2, 4]"),
    "reduce": ("tile", '%r = reduce(%t) {axis = 1, kind = "sum"} : f32[4]'),
    "scan": ("tile", '%r = scan(%t) {axis = 1, kind = "max"} : f32[4, 8]'),
    "sort": ("tile", "%r = sort(%t, %t) {axis = 1, descending = true} : f32[4, 8]"),
    "item": ("tile", "%r = item(%z) : f32"),
    "dot": ("tile", "%r = dot(%ha, %ha, %acc) : f32[16, 16]"),
    "convert_layout": ("tile", "%r = convert_layout(%t) : f32[4, 8] @ spatial(4,8)"),
    "arange": ("tile", "%r = arange {shape = [16]} : i32[16]"),
    "thread_index": ("thread", "%r = thread_index : i32"),
    "vector_constant": ("thread", "%r = vector_constant {values = [0, 1, 2, 3]} : <4 x i32>"),
    "shuffle": ("thread", "%r = shuffle(%v, %v) {indices = [0, 5]} : <2 x f32>"),
    "extract": ("thread", "%r = extract(%v) {index = 3} : f32"),
    "vector": ("thread", "%r = vector(%f, %f) : <2 x f32>"),
    "reduce_lanes": ("thread", '%r = reduce_lanes(%v) {group = 2, kind = "max"} : <2 x f32>'),
    "ld": ("thread", "%r = ld(%g, %i) {offsets = [0, 1, 2, 3], vector = 4} : <4 x f32>"),
    "st": ("thread", "st(%g, %i, %v) {dtype = f32, offsets = [0, 1, 2, 3]}"),
    "st_bits": ("thread", "st_bits(%w, %i, %bytes, %bytes) {offsets = [0, 1, 2, 3]}"),
    "unpack_bits": ("thread", "%r = unpack_bits(%bytes) {bit_offsets = [0, 8, 16, 24]} : <4 x u8>"),
    "pack_bits": ("thread", "%r = pack_bits(%bytes) {bit_offsets = [0, 8, 16, 24]} : <4 x u8>"),
    "barrier": ("thread", "barrier"),
    "mma": ("thread", '%r = mma(%a8, %b4, %v) {shape = "m16n8k16"} : <4 x f32>'),
    "dot_pairs": ("thread", "%r = dot_pairs(%v, %p8, %p8) : <4 x f32>"),
    "ldmatrix": ("thread", "%r = ldmatrix(%s16, %i) {count = 4, transpose = false} : <8 x f16>"),
    "shfl_xor": ("thread", "%r = shfl_xor(%v) {mask = 4} : <4 x f32>"),
}
for _name in ARITHMETIC:
    CASES[_name] = ("tile", f"%r = {_name}(%t, %t) : f32[4, 8]")
for _name in BITWISE:
    CASES[_name] = ("tile", f"%r = {_name}(%u, %u) : i32[4, 8]")
for _name in COMPARISONS:
    CASES[_name] = ("tile", f"%r = {_name}(%t, %t) : bool[4, 8]")
for _name in ("neg", "abs", *FLOAT_UNARY):
    CASES[_name] = ("tile", f"%r = {_name}(%t) : f32[4, 8]")
CASES["not"] = ("tile", "%r = not(%u) : i32[4, 8]")

# values of the wrong kind for each attribute kind (as IR text)
WRONG_VALUES = {
    INT: ['"x"', "[1]", "1.5", "true", "f32"],
    INT_LIST: ['"x"', "3", "[1.5]", '["a"]', "[[1]]"],
    NUMBER: ['"x"', "[1]", "f32"],
    NUMBER_LIST: ['"x"', "3", '["a"]'],
    DTYPE: ['"u8"', "8", "[u8]"],
}
OP_LINE = re.compile(
    r"^(?P<results>(?:%[\w.]+(?:, %[\w.]+)* = )?)(?P<name>[a-z_]+)"
    r"(?:\((?P<operands>[^)]*)\))?(?: \{(?P<attributes>[^}]*)\})?(?P<types> :.*)?$",
    re.DOTALL,
)


def module_text(name: str, line: str | None = None) -> str:
    stage, case = CASES[name]
    prelude = TILE_PRELUDE if stage == "tile" else THREAD_PRELUDE
    return f"{prelude}  {case if line is None else line}\n}}\n"


def case_line(name: str) -> int:
    """The line of the text where the op under test starts."""
    stage = CASES[name][0]
    return (TILE_PRELUDE if stage == "tile" else THREAD_PRELUDE).count("\n") + 1


def split_attributes(text: str) -> list[str]:
    """`dims = [0, 1], shape = [4, 8]` -> ['dims = [0, 1]', 'shape = [4, 8]']."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
    if text.strip():
        items.append(text[start:].strip())
    return items


def rebuild(match: re.Match, operands: list[str] | None, attributes: list[str]) -> str:
    text = match["results"] + match["name"]
    if operands is not None:
        text += "(" + ", ".join(operands) + ")"
    if attributes:
        text += " {" + ", ".join(attributes) + "}"
    return text + (match["types"] or "")


def text_mutants(name: str) -> list[tuple[str, str]]:
    """(what, IR text) for each malformed variant of the op's line."""
    line = CASES[name][1]
    first, newline, rest = line.partition("\n")
    match = OP_LINE.match(first)
    if match is None or name in ("for", "if"):
        return []
    operands = [o.strip() for o in match["operands"].split(",")] if match["operands"] else []
    attributes = split_attributes(match["attributes"] or "")
    variants = []
    signature = OPERATION_CLASSES[name].signature
    for index, item in enumerate(attributes):
        key = item.split("=")[0].strip()
        others = attributes[:index] + attributes[index + 1 :]
        if key in signature.attributes:
            variants.append((f"without {key}", rebuild(match, operands or None, others)))
        kind = signature.attributes.get(key) or signature.optional[key]
        for wrong in WRONG_VALUES.get(kind, ['"nope"', "5", "[0]"]):
            mutated = [*others[:index], f"{key} = {wrong}", *others[index:]]
            variants.append((f"{key} = {wrong}", rebuild(match, operands or None, mutated)))
    variants.append(("unknown attribute", rebuild(match, operands, [*attributes, "bogus = 1"])))
    variants.append(("one operand more", rebuild(match, [*operands, "%i"], attributes)))
    if operands:
        variants.append(("one operand fewer", rebuild(match, operands[:-1], attributes)))
    return [(what, module_text(name, text + newline + rest)) for what, text in variants]


def op_under_test(module, name: str) -> Operation:
    lines = case_lines(name)
    for op in module.walk():
        if op.name == name and op.location is not None and op.location.line in lines:
            return op
    raise AssertionError(f"no {name} on lines {lines}")


def structural_mutants(name: str):
    """(what, mutate) pairs that break the parsed op's operand, result or region counts."""

    def add_operand(op: Operation) -> None:
        op.operands.append(first_value(op))

    def add_result(op: Operation) -> None:
        op.results.append(Value(ScalarType(dtype("i32")), "extra"))

    mutants = [("an operand more", add_operand), ("a result more", add_result)]
    mutants.append(("a region more", lambda op: op.regions.append(Region())))
    signature = OPERATION_CLASSES[name].signature
    if signature.operands.low > 0:
        mutants.append(("an operand fewer", lambda op: op.operands.pop()))
    if signature.results.low > 0:
        mutants.append(("a result fewer", lambda op: op.results.pop()))
    if signature.regions.low > 0:
        mutants.append(("a region fewer", lambda op: op.regions.pop()))
    return mutants


def first_value(op: Operation) -> Value:
    """The first value the kernel defines (`%i`)."""
    node = op
    while not isinstance(node, Kernel):
        node = node.parent
    return node.body.ops[0].result


def assert_located_error(text: str, lines: range, mutate=None, name: str = "") -> LpirError:
    try:
        module = parse(text, "malformed.ir")
        if mutate is not None:
            mutate(op_under_test(module, name))
        verify(module)
    except LpirError as error:
        assert error.location is not None, f"unlocated: {error}"
        assert error.location.line in lines, f"placed at line {error.location.line}: {error}"
        return error
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} instead of an LpirError:\n{text}") from error
    raise AssertionError(f"verified although malformed:\n{text}")


def case_lines(name: str) -> range:
    first = case_line(name)
    return range(first, first + CASES[name][1].count("\n") + 1)


def test_every_op_name_has_a_case():
    assert set(CASES) == set(OPERATION_CLASSES)


def test_every_op_class_declares_its_signature():
    for cls in set(OPERATION_CLASSES.values()):
        assert "signature" in vars(cls), f"{cls.__name__} has no signature"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_well_formed_instance_verifies(name: str):
    verify(parse(module_text(name), "ok.ir"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_text_is_a_located_error(name: str):
    for what, text in text_mutants(name):
        error = assert_located_error(text, case_lines(name))
        assert "'" in error.message, f"{name} {what}: the message names no op: {error}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_counts_are_located_errors(name: str):
    for what, mutate in structural_mutants(name):
        error = assert_located_error(module_text(name), case_lines(name), mutate, name)
        named = {f"'{name}'", "'if'" if name == "yield" else ""}  # a yield's region is its if's
        assert any(n and n in error.message for n in named), f"{what}: {error}"


def test_missing_attribute_names_the_op_and_what_it_takes():
    text = module_text("load_global", "%r = load_global(%g, %i, %i) {dims = [0, 1]} : f32[4, 8]")
    error = assert_located_error(text, case_lines("load_global"))
    assert error.message == "'load_global': missing attribute 'shape' (a list of ints)"
    assert error.hint == "'load_global' takes dims (a list of ints), shape (a list of ints)"


def test_attribute_of_the_wrong_kind_says_what_is_expected():
    text = module_text("reduce", '%r = reduce(%t) {axis = "1", kind = "sum"} : f32[4]')
    error = assert_located_error(text, case_lines("reduce"))
    assert error.message == "'reduce': attribute 'axis' must be an int, not \"1\""
    text = module_text("reduce", '%r = reduce(%t) {axis = 1, kind = "prod"} : f32[4]')
    error = assert_located_error(text, case_lines("reduce"))
    assert 'must be one of "sum", "max", "min"' in error.message


def test_operand_count_says_what_is_expected():
    text = module_text("add", "%r = add(%t, %t, %t) : f32[4, 8]")
    error = assert_located_error(text, case_lines("add"))
    assert error.message == "'add': takes 2 operands, not 3"
    text = module_text("ld", "%r = ld(%g) {offsets = [0]} : <1 x f32>")
    error = assert_located_error(text, case_lines("ld"))
    assert error.message == "'ld': takes 2 or 3 operands, not 1"


def test_attribute_disagreeing_with_the_result_type_is_an_error():
    # the interpreter allocates from the attribute: a splat of shape [4] typed f32[8] must fail
    text = module_text("splat", "%r = splat(%f) {shape = [4]} : f32[8]")
    error = assert_located_error(text, case_lines("splat"))
    assert "gives f32[8], but its operands and attributes give f32[4]" in error.message


@pytest.mark.parametrize(
    "line",
    [
        "%r = constant {value = 1.5} : i32",
        "%r = constant {value = 300} : u8",
        "%r = constant {value = 1} : bool",
        "%r = constant {value = 1} : f32[4]",
        "%r = load_global(%g, %i) {dims = [0], shape = [4]} : f32[4]",
        "%r = load_global(%g, %i, %i) {dims = [1, 0], shape = [4, 8]} : f32[4, 8]",
        "%r = load_global(%g, %i, %i) {dims = [0, 1], shape = [0, 8]} : f32[0, 8]",
        "%r = load_global(%s, %i, %i) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]",
        '%r = reduce(%t) {axis = 2, kind = "sum"} : f32[4]',
        "%r = arange {shape = [4, 4]} : i32[4, 4]",
        "%r = block_index {axis = 3} : i32",
        "%r = add(%g, %g) : global f32[64, 64]",
        "%r = exp(%u) : i32[4, 8]",
        "%r = broadcast(%t) {shape = [8, 8]} : f32[8, 8]",
    ],
)
def test_inconsistent_tile_ops_are_errors(line: str):
    assert_located_error(module_text("constant", line), case_lines("constant"))


@pytest.mark.parametrize(
    "line",
    [
        "%r = ld(%g, %i) {offsets = [0, 1, 2], vector = 2} : <3 x f32>",
        "%r = ld(%g, %i) {offsets = [0, 1], vector = 0} : <2 x f32>",
        "%r = extract(%v) {index = 4} : f32",
        "%r = shuffle(%v) {indices = [4]} : <1 x f32>",
        "%r = vector_constant {values = [0.5]} : <1 x i32>",
        '%r = reduce_lanes(%v) {group = 3, kind = "sum"} : <1 x f32>',
        "%r = unpack_bits(%bytes) {bit_offsets = [30]} : <1 x u4>",
        "st_bits(%w, %i, %bytes, %bytes) {dtype = u16, offsets = [0, 1, 2, 3]}",
        "st_bits(%w, %bytes, %bytes, %bytes) {offsets = [0, 1, 2, 3]}",  # (a base per lane)
        "%r = ld(%g, %bytes) {offsets = [0, 1]} : <2 x f32>",  # 4 lane bases for 2 lanes
        "st(%w, %bytes, %bytes) {offsets = [0, 1, 2, 3], vector = 2}",
        "%r = ld(%g, %v) {offsets = [0, 1, 2, 3]} : <4 x f32>",  # float lane bases
        '%r = mma(%a8, %a8, %v) {shape = "m16n8k16"} : <4 x f32>',
        "%r = dot_pairs(%v, %a8, %a8) : <4 x f32>",
        "%r = dot_pairs(%v, %p8, %b4) : <4 x f32>",
    ],
)
def test_inconsistent_thread_ops_are_errors(line: str):
    assert_located_error(module_text("ld", line), case_lines("ld"))


def test_kinds_accept_what_the_parser_produces():
    assert INT.accepts(3) and not INT.accepts(True) and not INT.accepts(3.0)
    assert INT_LIST.accepts((1, 2)) and not INT_LIST.accepts((1, True))
    assert NUMBER.accepts(True) and NUMBER.accepts(1.5) and not NUMBER.accepts("1")
    assert NUMBER_LIST.accepts((0, 1.5, False)) and not NUMBER_LIST.accepts(("a",))
    assert DTYPE.accepts(dtype("u8")) and not DTYPE.accepts("u8")
    assert isinstance(INT, AttributeKind)


@pytest.mark.parametrize(
    "line",
    [
        "for %k = %i to %n step %i {\n    yield\n  }",
        "for %k = %i to %flag step %n {\n    yield\n  }",
        "if %i {\n    yield\n  }",
    ],
)
def test_malformed_control_flow_is_a_located_error(line: str):
    assert_located_error(module_text("constant", line), range(case_line("constant"), 99))


def test_the_interpreters_refuse_a_loop_step_that_is_not_positive():
    from lpir.interpreter.tile import run_tile_kernel

    text = module_text("constant", "for %k = %i to %n step %n {\n    yield\n  }")
    kernel = verify(parse(text, "step.ir")).kernels[0]
    arguments = [np.zeros((64, 64), np.float32), 0, True]
    with pytest.raises(LpirError, match="a loop step must be positive, not 0") as caught:
        run_tile_kernel(kernel, arguments)
    assert caught.value.location is not None


@pytest.mark.parametrize(
    "line, count",
    [
        ("store_global(%g, %i, %i, %t, %b, %b) {dims = [0, 1]}", 6),
        ("store_global(%g, %i, %i, %t, %b, %i, %i, %n) {dims = [0, 1]}", 8),
        ('store_global(%g, %i, %i, %t, %b, %b) {combine = "add", dims = [0, 1]}', 6),
        ("store_shared(%s, %i, %i, %t, %b, %t) {dims = [0, 1]}", 6),
        ("store_global(%g, %i, %t) {dims = [0, 1]}", 3),
    ],
)
def test_a_store_with_operands_past_its_mask_is_an_error(line: str, count: int):
    """The operands were cut by the memory's rank, so any after the mask were ignored."""
    name = line.split("(")[0]
    error = assert_located_error(module_text(name, line), case_lines(name))
    assert error.message == (
        f"'{name}': takes 4 or 5 operands (the memory, 2 offsets, the value and an optional "
        f"mask), not {count}"
    )
    assert error.hint is not None and ("remove the operands" in error.hint) == (count > 5)


@pytest.mark.parametrize(
    "line, count",
    [
        ("%r = load_global(%g, %i, %i, %b, %b) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]", 5),
        ("%r = load_shared(%s, %i, %i, %b, %t) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]", 5),
        ("%r = load_global(%g, %i) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]", 2),
    ],
)
def test_a_load_with_operands_past_its_mask_is_an_error(line: str, count: int):
    name = line.split("= ")[1].split("(")[0]
    error = assert_located_error(module_text(name, line), case_lines(name))
    assert error.message == (
        f"'{name}': takes 3 or 4 operands (the memory, 2 offsets and an optional mask), not {count}"
    )
    assert error.hint is not None and ("remove the operands" in error.hint) == (count > 4)


@pytest.mark.parametrize(
    "mask, words",
    [("%u", "needs a mask of type bool[4, 8], not i32[4, 8]"), ("%flag", "not bool")],
)
def test_a_load_mask_of_the_wrong_type_is_an_error(mask: str, words: str):
    line = f"%r = load_global(%g, %i, %i, {mask}) {{dims = [0, 1], shape = [4, 8]}} : f32[4, 8]"
    error = assert_located_error(module_text("load_global", line), case_lines("load_global"))
    assert words in error.message, error.message


def test_a_masked_load_in_ir_text_runs_as_its_source():
    line = "%r = load_global(%g, %i, %i, %b) {dims = [0, 1], shape = [4, 8]} : f32[4, 8]"
    text = module_text("load_global", line).replace(
        "\n}\n", "\n  store_global(%g, %i, %i, %r) {dims = [0, 1]}\n}\n"
    )
    g = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    lpir.compile(text, target="interp")(g, 3, False)
    assert (g[:4, :8] == 0).all() and g[4, 0] == 4 * 64  # lt(%t, %t) is false: reads 0


def test_a_thread_access_outside_its_buffer_is_placed_at_the_access():
    """The thread interpreter said 'thread IR wrote element 33 of a 32-element buffer' with no
    place: which of a kernel's accesses it was had to be guessed."""
    text = THREAD_PRELUDE.replace("%s16 = alloc_shared : shared f16[16, 16]", "") + (
        "  %s = alloc_shared : shared f32[4, 8]\n"
        "  %c = constant {value = 30} : i32\n"
        "  st(%s, %c, %v) {dtype = f32, offsets = [0, 1, 2, 3]}\n"
        "}\n"
    )
    with pytest.raises(LpirError) as caught:
        lpir.compile(text, target="threads")(np.zeros(64, np.float32), np.zeros(64, np.uint8))
    error = caught.value
    assert error.message == "thread IR wrote element 33 of a 32-element buffer"
    assert error.location is not None and error.location.line == text.count("\n") - 1
    assert error.hint is not None and "mask the lanes" in error.hint


@pytest.mark.parametrize(
    "access, verb",
    [
        ("st(%q, %base, %v) {offsets = [-9, 0]}", "wrote"),
        ("%r = ld(%q, %base) {offsets = [-9, 3]} : <2 x u4>", "read"),
        ("%r = ld(%g, %base) {offsets = [-9, 30]} : <2 x f32>", "read"),
    ],
)
def test_a_thread_access_below_its_buffer_names_the_element_below(access: str, verb: str):
    """A packed store below its buffer checked only the top end: element -7 of a u4 buffer
    wrapped round (numpy's negative index) and overwrote byte 4 silently. A read with lanes
    outside at both ends named the top lane even when the bottom one was the one outside."""
    text = (
        "kernel @k[](%g: global f32[8], %q: global u4[16]) blocks(1, 1, 1) threads(1)"
        " stage(thread) {\n"
        "  %base = constant {value = 2} : i32\n"
        "  %one = constant {value = 1} : u4\n"
        "  %v = splat(%one) {shape = [2]} : <2 x u4>\n"
        f"  {access}\n"
        "}\n"
    )
    packed = lpir.packing.pack(np.zeros(16), "u4")
    with pytest.raises(LpirError) as caught:
        lpir.compile(text, target="threads")(np.zeros(8, np.float32), packed)
    buffer = "an 8-element" if "%g" in access else "a 16-element"
    assert caught.value.message == f"thread IR {verb} element -7 of {buffer} buffer"
    assert caught.value.location is not None and caught.value.location.line == 5
    assert not packed.data.any()


def test_in_bounds_with_operands_past_its_offsets_is_an_error():
    line = "%r = in_bounds(%g, %i, %i, %i) {dims = [0, 1], shape = [4, 8]} : bool[4, 8]"
    error = assert_located_error(module_text("in_bounds", line), case_lines("in_bounds"))
    assert error.message == "'in_bounds': takes 3 operands (the memory and 2 offsets), not 4"


@pytest.mark.parametrize(
    "launch, at, message, hint",
    [
        ("blocks(1, 1, 1) threads(2048)", "threads(", "threads(2048) is out", "use 1 to 1024"),
        ("blocks(1, 1, 1) threads(100000)", "threads(", "threads(100000) is out", "1 to 1024"),
        (
            "blocks(1, 70000, 1) threads(32)",
            "70000",
            "the block count along y is 70000; at most 65535 blocks go along y",
            "loop over tiles inside a block",
        ),
    ],
)
def test_a_launch_past_the_languages_limits_is_refused_in_ir_text(
    launch: str, at: str, message: str, hint: str
):
    """IR text with threads(100000) verified, and `lpir emit --target cuda` wrote
    __launch_bounds__(100000): the language refuses threads outside 1..1024, the IR did not."""
    text = THREAD_PRELUDE.replace("blocks(1, 1, 1) threads(32)", launch) + "}\n"
    error = assert_located_error(text, range(1, 2))
    assert error.message.startswith(message)
    assert error.location is not None and error.location.column == text.index(at) + 1
    assert error.hint is not None and hint in error.hint
