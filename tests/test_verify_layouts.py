"""The verifier checks each tile op's layouts against what lower-to-threads computes it in.

lower-to-threads hands on slot vectors without reading most results' layouts: IR text (a
hand-edited `after:layout-selection`) whose elementwise result, reduction, expand_dims, ...
carries another layout than the one that follows from its operands was lowered and computed
elements in the wrong places, or failed after lowering with an unlocated message about thread
vectors. Each case below is a well-formed op that verifies and runs like the interpreter, and the
same op with one layout changed, a located error naming both layouts with a hint.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir
from lpir.errors import LpirError, VerifyError
from lpir.ir import parse, verify

HEAD = """\
kernel @k[](%x: global f32[4, 8], %w: global u32[4, 8], %y: global f32[4, 8]) \
blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %a = load_global(%x, %0, %0) {dims = [0, 1], shape = [4, 8]} : f32[4, 8] @ spatial(4,8)
  %rows = load_global(%x, %0, %0) {dims = [0, 1], shape = [4, 8]} : \
f32[4, 8] @ replicate(8).spatial(4,1).local(1,8)
  %q = load_global(%w, %0, %0) {dims = [0, 1], shape = [4, 8]} : u32[4, 8] @ spatial(4,8)
"""
LINE = HEAD.count("\n") + 1  # the line of the op under test

# (op under test, the layout it verifies with, a layout it must not have, words of the message)
CASES = {
    "exp": (
        "%r = exp(%a) : f32[4, 8] @ {}",
        "spatial(4,8)",
        "column_spatial(4,8)",
        "is not its operand's spatial(4,8)",
    ),
    "cast": (
        "%r = cast(%a) : f16[4, 8] @ {}",
        "spatial(4,8)",
        "column_spatial(4,8)",
        "is not its operand's spatial(4,8)",
    ),
    "add": (
        "%r = add(%a, %a) : f32[4, 8] @ {}",
        "spatial(4,8)",
        "column_spatial(4,8)",
        "is not operand 0's spatial(4,8)",
    ),
    "expand_dims": (
        "%r = expand_dims(%a) {{axis = 1}} : f32[4, 1, 8] @ {}",
        "spatial(4,1,8)",
        "column_spatial(4,1,8)",
        "with a size-1 dimension 1, spatial(4,1,8)",
    ),
    "transpose": (
        "%r = transpose(%a) : f32[8, 4] @ {}",
        "column_spatial(8,4)",
        "spatial(8,4)",
        "with its dimensions swapped, column_spatial(8,4)",
    ),
    "reshape": (
        "%r = reshape(%a) {{shape = [4, 2, 4]}} : f32[4, 2, 4] @ {}",
        "spatial(4,2,4)",
        "column_spatial(4,2,4)",
        "regrouped into [4, 2, 4], spatial(4,2,4)",
    ),
    "reduce": (
        '%r = reduce(%a) {{axis = 1, kind = "sum"}} : f32[4] @ {}',
        "spatial(4).replicate(8)",
        "replicate(8).spatial(4)",
        "reduced along axis 1, spatial(4).replicate(8)",
    ),
    "view": (
        "%r = view(%q) : u8[4, 32] @ {}",
        "spatial(4,8).local(1,4)",
        "local(1,4).spatial(4,8)",
        "does not hold the bits that the operand's spatial(4,8) holds",
    ),
    "index": (
        "%r = index(%rows) {{axis = 1, position = 3}} : f32[4] @ {}",
        "replicate(8).spatial(4)",
        "spatial(4).replicate(8)",
        "asks threads for elements that the operand's layout",
    ),
    "stack": (
        "%r = stack(%a, %a) {{axis = 2}} : f32[4, 8, 2] @ {}",
        "spatial(4,8,1).local(1,1,2)",
        "spatial(4,4,2).local(1,2,1)",
        "each thread holds the stacked axis 2 in its slots",
    ),
    "broadcast": (
        "%r = broadcast(%c) {{shape = [4, 8]}} : f32[4, 8] @ {}",
        "spatial(4,8)",
        "column_spatial(4,8)",
        "does not hold in each thread what the result's layout column_spatial(4,8) repeats",
    ),
}
# broadcast's operand: each row's sum, held by the row's threads
BROADCAST_PRELUDE = """\
  %s = reduce(%a) {axis = 1, kind = "sum"} : f32[4] @ spatial(4).replicate(8)
  %c = expand_dims(%s) {axis = 1} : f32[4, 1] @ spatial(4,1).replicate(8)
"""


def kernel_text(name: str, layout: str) -> tuple[str, int]:
    """The kernel with op `name` given `layout`, and the op's line."""
    line, *_ = CASES[name]
    prelude = BROADCAST_PRELUDE if name == "broadcast" else ""
    body = prelude + "  " + line.format(layout) + "\n"
    if name in ("exp", "add", "broadcast"):
        body += "  store_global(%y, %0, %0, %r) {dims = [0, 1]}\n"
    return HEAD + body + "}\n", LINE + prelude.count("\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_layouts_lower_to_threads_computes_in_verify(name: str):
    text, _ = kernel_text(name, CASES[name][1])
    verify(parse(text, "good.ir"), require_layouts=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_another_result_layout_is_a_located_error(name: str):
    _, _, bad, words = CASES[name]
    text, line = kernel_text(name, bad)
    with pytest.raises(VerifyError) as caught:
        verify(parse(text, "bad.ir"))
    error = caught.value
    assert error.location is not None and error.location.line == line, str(error)
    assert error.message.startswith(f"'{name}': "), error.message
    assert words in error.message and bad in error.message, error.message
    assert error.hint is not None and "convert" in error.hint, error.hint
    assert "^" in str(error)


@pytest.mark.parametrize("name", ["exp", "add", "broadcast"])
def test_a_verified_op_computes_what_the_interpreter_does(name: str):
    text, _ = kernel_text(name, CASES[name][1])
    x = np.arange(32, dtype=np.float32).reshape(4, 8) / 8
    w = np.zeros((4, 8), np.uint32)
    results = {}
    for target in ("interp", "threads"):
        y = np.zeros((4, 8), np.float32)
        lpir.compile(text, target=target)(x, w, y)
        results[target] = y
    np.testing.assert_allclose(results["threads"], results["interp"], rtol=1e-6)


def test_the_elementwise_result_of_the_explorer_is_refused_before_lowering():
    """/tmp/s32 ew_bad.ir: exp's result in a column layout, its operand in a row layout; the
    threads and cpu targets computed elements in the wrong places."""
    text, line = kernel_text("exp", "column_spatial(4,8)")
    with pytest.raises(LpirError) as caught:
        lpir.compile(text, target="threads")
    assert caught.value.location is not None and caught.value.location.line == line
    assert "give the result the layout spatial(4,8)" in (caught.value.hint or "")


def test_index_of_an_axis_the_threads_split_says_to_hold_it_whole():
    text = (
        HEAD + "  %r = index(%a) {axis = 1, position = 3} : f32[4] @ spatial(4).replicate(8)\n}\n"
    )
    with pytest.raises(VerifyError) as caught:
        verify(parse(text, "bad.ir"))
    assert "each thread holds dimension 1 whole" in (caught.value.hint or "")


def test_a_mask_in_another_layout_than_the_loaded_tile_is_an_error():
    line = (
        "%m = lt(%a, %a) : bool[4, 8] @ spatial(4,8)\n"
        "  %r = load_global(%x, %0, %0, %m) {dims = [0, 1], shape = [4, 8]} : "
        "f32[4, 8] @ column_spatial(4,8)\n"
    )
    with pytest.raises(VerifyError) as caught:
        verify(parse(HEAD + "  " + line + "}\n", "bad.ir"))
    error = caught.value
    assert error.location is not None and error.location.line == LINE + 1
    assert "the mask's layout spatial(4,8) is not the loaded tile's column_spatial(4,8)" in (
        error.message
    )


DOT = """\
kernel @k[](%x: global f32[4, 8], %v: global f32[8, 4], %y: global f32[4, 4]) \
blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %f = constant {value = 0.0} : f32
  %acc = splat(%f) {shape = [4, 4]} : f32[4, 4] @ spatial(4,4).replicate(2)
  %a = load_global(%x, %0, %0) {dims = [0, 1], shape = [4, 8]} : f32[4, 8] @ A
  %b = load_global(%v, %0, %0) {dims = [0, 1], shape = [8, 4]} : f32[8, 4] @ B
  %r = dot(%a, %b, %acc) : f32[4, 4] @ R
  store_global(%y, %0, %0, %r) {dims = [0, 1]}
}
"""
DOT_LAYOUTS = {
    "A": "spatial(4,1).replicate(8).local(1,8)",  # each thread its accumulator rows' a rows
    "B": "replicate(4).spatial(1,4).replicate(2).local(8,1)",
    "R": "spatial(4,4).replicate(2)",
}


def dot_text(**changes: str) -> str:
    text = DOT
    for key, layout in {**DOT_LAYOUTS, **changes}.items():
        text = text.replace(f"@ {key}\n", f"@ {layout}\n")
    return text


def test_a_dot_in_the_layouts_it_is_computed_in_verifies_and_runs():
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    v = np.arange(32, dtype=np.float32).reshape(8, 4) - 9
    y = np.zeros((4, 4), np.float32)
    lpir.compile(dot_text(), target="threads")(x, v, y)
    np.testing.assert_array_equal(y, x @ v)


def test_a_dot_result_in_another_layout_than_its_accumulator_is_an_error():
    with pytest.raises(VerifyError) as caught:
        verify(parse(dot_text(R="replicate(2).spatial(4,4)"), "bad.ir"))
    assert caught.value.location is not None and caught.value.location.line == 7
    assert "is not the accumulator's spatial(4,4).replicate(2)" in caught.value.message


@pytest.mark.parametrize("operand, layout", [("A", "spatial(4,8)"), ("B", "spatial(8,4)")])
def test_an_f32_dot_operand_that_threads_do_not_hold_is_an_error(operand: str, layout: str):
    """A dot of f32 (or i8) has no tensor-core form: each thread multiplies the rows of a and
    columns of b of its accumulator elements. lower-to-threads said, without a place, 'layout
    ... does not hold what ... needs in each thread'."""
    with pytest.raises(VerifyError) as caught:
        verify(parse(dot_text(**{operand: layout}), "bad.ir"))
    error = caught.value
    name = operand.lower()
    assert error.location is not None and error.location.line == 7
    assert f"'dot': {name}'s layout {layout} does not give each thread the" in error.message
    assert error.hint is not None and DOT_LAYOUTS[operand] in error.hint, error.hint


def test_lower_to_threads_places_a_layout_it_cannot_lower_at_the_op():
    """IR the verifier is not asked about (lpir opt --no-verify): the lowering's own message
    is placed at the op, with a hint."""
    from lpir.passes import PassPipeline

    module = parse(dot_text(A="spatial(4,8)"), "bad.ir")
    with pytest.raises(VerifyError) as caught:
        PassPipeline(["lower-to-threads"], verify_each=False).run(module)
    error = caught.value
    assert error.location is not None and error.location.line == 7, str(error)
    assert error.message.startswith("'dot': layout spatial(4,8) does not hold"), error.message
    assert error.hint is not None and "convert_layout" in error.hint
