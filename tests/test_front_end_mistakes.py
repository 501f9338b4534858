"""Mistakes the front end once accepted silently or answered with a Python traceback.

Each is an `LpirError` placed at the mistake (file:line:col, the line, a caret) with a hint:
names declared twice or reserved, a launch grid computed from block.x, sources nested past
Python's recursion limit, bad `-D` values and CLI options, tabs and a byte order mark, a
static_assert message that is not a string, an augmented assignment that changes its target's
shape, a float constant that overflows the dtype it meets, and clamp bounds in the wrong order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.cli import main
from lpir.errors import ArgumentError, LpirError, ParseError, TypeCheckError
from lpir.ir.printer import print_module
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

ARGS = "(a: global f32[N], c: global f32[N]) blocks(1) threads(32)"
HEAD = f"kernel k[N = 64]{ARGS} {{\n    t = load(a[0 :+ 64])\n"
STORE = "    store(c[0 :+ 64], t)\n}\n"


def lower(source: str, **params: object) -> None:
    specialize(parse_program(source, "m.lp"), None, params)


def located(error: LpirError, line: int, column: int, *words: str) -> str:
    """`str(error)` after checking its place and that it has a caret and a hint."""
    text = str(error)
    assert text.startswith(f"m.lp:{line}:{column}: error: "), text
    assert "^" in text and error.hint, text
    for word in words:
        assert word in text, (word, text)
    return text


def run_interp(source: str, x: np.ndarray) -> np.ndarray:
    kernel = lpir.compile(source, target="interp")
    y = np.zeros(64, np.float32)
    kernel(x, y)
    return y


# ---- 1. names declared twice or reserved --------------------------------------------------
DECLARATIONS = [
    # (header, line, column, words)
    (
        "kernel k[N = 64](a: global f32[N], a: global f32[N]) blocks(1) threads(32) {",
        1,
        36,
        ("argument 'a'", "declared twice", "first at line 1, column 18"),
    ),
    (
        "kernel k[N = 64, N = 32](a: global f32[N], c: global f32[N]) blocks(1) threads(32) {",
        1,
        18,
        ("parameter 'N'", "declared twice", "first at line 1, column 10"),
    ),
    (
        "kernel k[N = 64](N: global f32[64], c: global f32[N]) blocks(1) threads(32) {",
        1,
        18,
        ("argument 'N'", "also the name of a parameter"),
    ),
    (
        "kernel k[N = 64](block: global f32[N], c: global f32[N]) blocks(1) threads(32) {",
        1,
        18,
        ("'block' cannot name an argument", "block_"),
    ),
    (
        "kernel k[N = 64](a: global f32[N], for: global f32[N]) blocks(1) threads(32) {",
        1,
        36,
        ("'for' is a reserved word", "argument"),
    ),
    (
        "kernel k[range = 64](a: global f32[64], c: global f32[64]) blocks(1) threads(32) {",
        1,
        10,
        ("'range' is a reserved word", "parameter"),
    ),
]


@pytest.mark.parametrize(("header", "line", "column", "words"), DECLARATIONS)
def test_declarations_twice_or_reserved(header: str, line: int, column: int, words: tuple) -> None:
    with pytest.raises(ParseError) as caught:
        parse_program(f"{header}\n}}\n", "m.lp")
    located(caught.value, line, column, *words)


RESERVED_USES = [
    # (source, line, column, words): each was a bare "unexpected ..." after the word
    (HEAD + "    cast = 3\n" + STORE, 3, 5, ("'cast' is a reserved word, the builtin cast<T>(x)",)),
    (HEAD + "    u = zeros[64]\n" + STORE, 3, 9, ("the builtin zeros<T>[d, ...]", "zeros_")),
    (HEAD + "    for = 3\n" + STORE, 3, 5, ("'for' is a reserved word and cannot name a value",)),
    # the words that open a kernel or a def were "unexpected 'kernel'"
    (HEAD + "    kernel = 2.0\n" + STORE, 3, 5, ("'kernel' is a reserved word and cannot",)),
    (HEAD + "    def *= 2.0\n" + STORE, 3, 5, ("'def' is a reserved word and cannot",)),
    (
        "def f(x, cast) {\n    return cast\n}\n" + HEAD + STORE,
        1,
        10,
        ("'cast' is a reserved word and cannot name a parameter",),
    ),
    (
        "kernel k(a: global f32[64], zeros: global f32[64]) blocks(1) threads(32) {\n"
        "    store(zeros[0 :+ 64], load(a[0 :+ 64]))\n}\n",
        1,
        29,
        ("'zeros' is a reserved word and cannot name an argument",),
    ),
]


@pytest.mark.parametrize(("source", "line", "column", "words"), RESERVED_USES)
def test_reserved_words_used_as_names(source: str, line: int, column: int, words: tuple) -> None:
    with pytest.raises(ParseError) as caught:
        parse_program(source, "m.lp")
    located(caught.value, line, column, *words)


@pytest.mark.parametrize("branch", ["else {\n    }", "else if t[0] > 1.0 {\n    }"])
def test_an_else_on_the_line_after_the_brace_says_to_join_them(branch: str) -> None:
    """`}` then `else {` on the next line said "unexpected '{'" and listed tokens: the new
    line ends the if, and else was read as a name."""
    source = HEAD + "    if t[0] > 0.0 {\n        t = t + 1.0\n    }\n    " + branch + "\n" + STORE
    with pytest.raises(ParseError) as caught:
        parse_program(source, "m.lp")
    text = located(caught.value, 6, 5, "'else' must follow the '}' of its if on the same line")
    assert "^^^^\n" in text and "} else { ... }" in caught.value.hint, text


@pytest.mark.parametrize(
    ("expression", "width", "words", "hint"),
    [
        ("1_000", 5, "lpir has no digit separators: 1_000", "without '_': 1000"),
        ("0o17", 4, "lpir has no octal literals: 0o17", "15 or 0xf"),
        ("0x1p-2", 6, "lpir has no hexadecimal floats: 0x1p-2", "decimal float: 0.25"),
        ("2N", 2, "a number followed by a name: 2N", "2 * N"),
    ],
)
def test_a_literal_lpir_does_not_have_says_how_to_write_it(
    expression: str, width: int, words: str, hint: str
) -> None:
    """They said "unexpected '_000'" (or 'o17', 'p'), with "is a ')' missing?" for a hint."""
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + f"    u = {expression}\n" + STORE, "m.lp")
    text = located(caught.value, 3, 9, words)
    assert "^" * width + "\n" in text and hint in caught.value.hint, text


def test_a_name_that_is_not_ascii_says_names_are_ascii() -> None:
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + "    \u03b1 = 1.0\n" + STORE, "m.lp")
    located(caught.value, 3, 5, "unexpected character")
    assert "names are ASCII" in caught.value.hint, caught.value.hint


def test_two_kernels_of_one_name() -> None:
    one = f"kernel k[N = 64]{ARGS} {{\n}}\n"
    with pytest.raises(ParseError) as caught:
        parse_program(one + one, "m.lp")
    located(caught.value, 3, 8, "kernel 'k' is defined twice (first at line 1)")


def test_reserved_names_of_defs_and_values() -> None:
    with pytest.raises(ParseError) as caught:
        parse_program("def f(block) {\n    return block\n}\n", "m.lp")
    located(caught.value, 1, 7, "'block' cannot name a parameter")
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    let for = 3\n" + STORE)
    located(caught.value, 3, 5, "'for' is a reserved word")
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    for N in range(4) {\n    }\n" + STORE)
    located(caught.value, 3, 5, "loop variable cannot be 'N'", "a parameter")


# ---- 2. the launch grid is computed from parameters ---------------------------------------
def test_block_count_from_block_x() -> None:
    source = (
        "kernel k[N = 64](a: global f32[N], c: global f32[N]) blocks(block.x) threads(32) {\n}\n"
    )
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 1, 61, "a block count must be a compile-time integer", "parameters")


def test_dimension_and_default_from_block_x() -> None:
    with pytest.raises(TypeCheckError) as caught:
        lower("kernel k[N = block.y](a: global f32[64]) blocks(1) threads(32) {\n}\n")
    located(caught.value, 1, 14, "the default of N must be a compile-time integer")
    with pytest.raises(TypeCheckError) as caught:
        lower("kernel k(a: global f32[block.x]) blocks(1) threads(32) {\n}\n")
    located(caught.value, 1, 24, "a tensor dimension must be a compile-time integer")


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("kernel k(a: global f32[64], n: i32) blocks(1) threads(n) {", 55),
    ],
)
def test_launch_grid_from_a_scalar_argument(header: str, column: int) -> None:
    """It was "unknown name 'n'" with the hint "assign n = ... before this line". (A block
    count and a first dimension may read an i32 argument: tests/test_runtime_sizes.py.)"""
    with pytest.raises(TypeCheckError) as caught:
        lower(header + "\n}\n")
    located(
        caught.value,
        1,
        column,
        "is an argument of kernel k: this part of the header is fixed when the kernel "
        "compiles, from literals and parameters only",
        "a parameter instead (kernel k[",
    )


# ---- 3. long chains work, absurd nesting is refused ---------------------------------------
def test_long_flat_chains_lower_and_compute() -> None:
    x = np.arange(64, dtype=np.float32)
    chain = HEAD + "    store(c[0 :+ 64], " + " + ".join(["t"] * 600) + ")\n}\n"
    np.testing.assert_allclose(run_interp(chain, x), 600 * x)
    negated = HEAD + "    store(c[0 :+ 64], " + "-" * 5001 + "t)\n}\n"
    np.testing.assert_array_equal(run_interp(negated, x), -x)
    constants = HEAD + "    store(c[0 :+ 64], t * (" + " + ".join(["1.0"] * 5000) + "))\n}\n"
    np.testing.assert_allclose(run_interp(constants, x), 5000 * x)
    mixed = HEAD + "    store(c[0 :+ 64], t" + " - t * 2.0 + t" * 400 + ")\n}\n"
    np.testing.assert_allclose(run_interp(mixed, x), -399 * x)


def test_deeply_nested_expression_is_refused() -> None:
    deep = "t * (" * 150 + "t" + ")" * 150
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + f"    u = {deep}\n" + STORE)
    located(caught.value, 3, 509, "nests more than 100 levels deep")


@pytest.mark.parametrize("kind", ["expression", "blocks", "calls"])
def test_nesting_limits_take_exactly_100_levels(kind: str) -> None:
    """Each limit says "more than 100": 100 levels lower, 101 are refused (an expression of
    100 nested operations was refused, found by an explorer)."""

    def program(depth: int) -> str:
        if kind == "expression":
            return HEAD + "    u = " + "max(" * depth + "t" + ", t)" * depth + "\n" + STORE
        if kind == "blocks":
            return nested("if v > {}.0", depth)
        defs = "def f0(u) { return u }\n" + "".join(
            f"def f{i}(u) {{ return f{i - 1}(u) }}\n" for i in range(1, depth)
        )
        return defs + HEAD + f"    u = f{depth - 1}(t)\n" + STORE

    lower(program(100))
    with pytest.raises(TypeCheckError, match="more than 100"):
        lower(program(101))


def nested(opening: str, depth: int) -> str:
    body = "".join(f"{opening.format(i)} {{\n" for i in range(depth)) + "}\n" * depth
    return HEAD + "    let v = load(a[0])\n" + body + STORE


def test_deeply_nested_blocks_are_refused_before_lowering() -> None:
    with pytest.raises(TypeCheckError) as caught:
        lower(nested("if v > {}.0", 300))
    located(caught.value, 104, 1, "blocks nest more than 100 deep")
    with pytest.raises(TypeCheckError) as caught:
        lower(nested("for i{} in range(0, 1)", 200))
    located(caught.value, 104, 1, "blocks nest more than 100 deep")
    lower(nested("if v > {}.0", 100))  # at the limit: fine


def test_a_long_chain_of_defs_is_refused() -> None:
    defs = "def f0(x) { return x }\n" + "".join(
        f"def f{i}(x) {{ return f{i - 1}(x) + 1.0 }}\n" for i in range(1, 200)
    )
    source = defs + HEAD + "    store(c[0 :+ 64], f199(t))\n}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 101, 22, "defs call each other more than 100 deep")


# ---- 4. -D values and CLI options ---------------------------------------------------------
GEMV = str(Path(__file__).parent.parent / "examples" / "gemv_wq.lp")


@pytest.mark.parametrize("value", ["abc", "1.5", "1e3", "2*BN", "5=6", "f32"])
def test_define_an_integer_parameter(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["opt", GEMV, "-D", f"N={value}"]) == 1
    err = capsys.readouterr().err
    assert (
        f"gemv_wq.lp:3:25: error: parameter N of kernel gemv_wq takes an integer, not '{value}'"
        in err
    )
    assert "hint: give it an integer" in err and "Traceback" not in err


def test_define_a_dtype_for_an_integer_parameter() -> None:
    with pytest.raises(ArgumentError, match="takes an integer, not the dtype f16") as caught:
        lpir.compile(GEMV, target="interp", N=lpir.dtype("f16")).specialize(None)
    assert str(caught.value).startswith(f"{GEMV}:3:25: error: parameter N of kernel gemv_wq")


def test_a_string_for_an_integer_parameter_from_python_says_to_pass_an_int() -> None:
    """lpir.compile(..., N="8") was told "(decimal, 0x... or 0b...)", as if strings were read
    as numbers from Python too: only -D's text is."""
    with pytest.raises(ArgumentError, match="takes an integer, not '8'") as caught:
        lpir.compile(GEMV, target="interp", N="8").specialize(None)
    hint = caught.value.hint
    assert "N=64 from Python (an int" in hint and "-D N=64 on the command line" in hint, hint


DTYPE_PARAMETER = """kernel k[WT = f32](x: global WT[8], y: global f32[8]) blocks(1) threads(4) {
    store(y[:], cast<f32>(load(x[:])))
}
"""


@pytest.mark.parametrize(
    ("given", "name"),
    [
        (np.dtype("float16"), "f16"),
        (np.float16, "f16"),
        (np.int8, "i8"),
        (np.dtype("uint32"), "u32"),
        (np.bool_, "bool"),
        ("bfloat16", "bf16"),
    ],
)
def test_a_numpy_dtype_gives_a_dtype_parameter(given: object, name: str) -> None:
    """`WT=np.float16` said "must be an int or a dtype name, not <class 'numpy.float16'>",
    with no hint: a numpy dtype (or scalar type) of a type lpir has is that type."""
    if given == "bfloat16":
        given = pytest.importorskip("ml_dtypes").bfloat16
    kernel = lpir.compile(DTYPE_PARAMETER, target="interp", WT=given)
    assert kernel.specialize(None).params["WT"] == lpir.dtype(name)
    if name in ("f16", "i8"):
        y = np.zeros(8, np.float32)
        kernel(np.arange(8).astype(np.dtype(given)), y)
        np.testing.assert_array_equal(y, np.arange(8))


@pytest.mark.parametrize("given", [np.dtype("complex64"), np.str_, 8.0])
def test_a_dtype_parameter_given_what_lpir_has_no_type_for_says_what_to_give(given) -> None:
    """Such a value had no hint."""
    with pytest.raises(ArgumentError) as caught:
        lpir.compile(DTYPE_PARAMETER, target="interp", WT=given).specialize(None)
    text = str(caught.value)
    assert "parameter WT of kernel k must be an int or a dtype" in text and "^" in text, text
    assert caught.value.hint and "WT=np.float16" in caught.value.hint, caught.value.hint


def test_define_a_count_that_makes_no_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    """A block count of 0 is an empty launch now; the negative size that made it is refused."""
    assert main(["opt", GEMV, "-D", "N=-5"]) == 1
    err = capsys.readouterr().err
    assert "gemv_wq.lp:5:18: error: dimension is -5; it must not be negative" in err
    assert "hint: with N = -5: give the parameters values" in err


def test_define_twice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["opt", GEMV, "-D", "N=5", "-D", "N=7"]) == 1
    assert "error: -D N is given twice (N=5 and N=7)" in capsys.readouterr().err


def test_negative_seed_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", GEMV, "--seed", "-1"])
    assert exited.value.code == 2
    assert "argument --seed: invalid seed -1" in capsys.readouterr().err


def test_layout_png_into_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    assert main(["layout", "local(2,1)", "--png", str(tmp_path / "no" / "x.png")]) == 1
    assert "error: cannot write" in capsys.readouterr().err


def test_layout_larger_than_a_tile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layout", "spatial(100000,100000)"]) == 1
    err = capsys.readouterr().err
    assert "covers 10000000000 elements, more than the 1048576" in err


def test_arch_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", GEMV, "--target", "cpu", "--arch", "sm_90"]) == 1
    assert "error: the 'llvm' source does not depend on a GPU architecture" in (
        capsys.readouterr().err
    )


# ---- 5. tabs and a byte order mark --------------------------------------------------------
def test_caret_under_a_name_after_tabs() -> None:
    source = f"kernel k[N = 64]{ARGS} {{\n\tt = load(a[0 :+ 64])\n\tstore(c[0 :+ 64], t +\tq)\n}}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    text = located(caught.value, 3, 24, "unknown name 'q'")
    shown, caret = text.splitlines()[1:3]
    assert shown[caret.index("^")] == "q"


def test_byte_order_mark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = HEAD + STORE
    parse_program("\ufeff" + source, "m.lp")
    path = tmp_path / "bom.lp"
    path.write_bytes(b"\xef\xbb\xbf" + source.encode())
    assert main(["opt", str(path)]) == 0
    path.write_bytes(source.replace("t = load", "t = load # caf\xe9").encode("latin-1"))
    assert main(["opt", str(path)]) == 1
    assert f"{path}:2:19: error: the source is not UTF-8: byte 95 (0xe9)" in capsys.readouterr().err


# ---- 6. statements ------------------------------------------------------------------------
STATEMENTS = [
    # (statement, line, column, words)
    ("    static_assert(N > 100, 5)", 3, 28, ("message of static_assert must be a string",)),
    ("    q", 3, 5, ("unknown name 'q'",)),
    ("    t += t[:, None]", 3, 5, ("'t' is f32[64], but this would make it f32[64, 64]",)),
    ("    let s = load(a[0])\n    s += t", 4, 5, ("'s' is an f32 scalar", "f32[64]")),
    ("    u = load(a[0 :+ 64, 0])", 3, 14, ("a has 1 dimension but the subscript has 2",)),
]


@pytest.mark.parametrize(("statement", "line", "column", "words"), STATEMENTS)
def test_statement_mistakes(statement: str, line: int, column: int, words: tuple) -> None:
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + statement + "\n" + STORE)
    if "subscript" in words[0]:  # that error has no hint to give beyond its example
        assert str(caught.value).startswith(f"m.lp:{line}:{column}: error: {words[0]}")
        return
    located(caught.value, line, column, *words)


# ---- 7. float constants that overflow -----------------------------------------------------
def test_float_constant_past_f16() -> None:
    source = HEAD + "    store(c[0 :+ 64], cast<f32>(cast<f16>(t) + 100000.0))\n}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, 33, "the constant 100000.0 does not fit in f16 (max 65504)")

    assert "write inf if infinity is meant" in str(caught.value)


def test_a_float_constant_past_a_format_without_infinity_names_its_largest_value() -> None:
    """full<f4e2m1>[4](1000.0) said "f4e2m1 rounds it to infinity; ... or write inf", but
    f4e2m1 has no infinity: it saturates, and inf there stores 6.0."""
    source = HEAD + "    store(c[0 :+ 64], cast<f32>(cast<f4e2m1>(t) * -1000.0))\n}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, 33, "the constant -1000.0 does not fit in f4e2m1 (max 6)")
    message = str(caught.value)
    assert (
        "f4e2m1 has no infinity and saturates" in message
        and "write -6.0 (what it saturates to) if" in message
    )
    assert "infinity is meant" not in message


def test_float_constants_that_round_to_the_largest_fit() -> None:
    x = np.ones(64, np.float32)
    f16 = HEAD + "    store(c[0 :+ 64], cast<f32>(cast<f16>(t) * 65519.0))\n}\n"
    np.testing.assert_array_equal(run_interp(f16, x), 65504.0)
    flt_max = HEAD + "    store(c[0 :+ 64], max(t, -3.4028235e38))\n}\n"
    np.testing.assert_array_equal(run_interp(flt_max, x), x)


@pytest.mark.parametrize(
    ("blocks", "column", "words"),
    [
        ("4294967296", 61, ("along x is 4294967296", "at most 2147483647")),
        ("1, 65536", 64, ("along y is 65536", "at most 65535")),
    ],
)
def test_a_grid_past_the_launch_limits(blocks: str, column: int, words: tuple) -> None:
    """block.x is an i32 and a GPU launches at most 2^31 - 1 blocks along x, 65535 along y
    and z (the interpreter ran out of memory, the CUDA C launched a grid it cannot)."""
    source = (
        f"kernel k[N = 64](a: global f32[N], c: global f32[N]) blocks({blocks}) threads(32) {{\n"
    )
    with pytest.raises(LpirError) as caught:
        lower(source + "    store(c[0 :+ 64], load(a[0 :+ 64]))\n}\n")
    located(caught.value, 1, column, *words)


def test_a_slice_passed_to_a_def_is_not_sliced_again() -> None:
    """Past a slice's edge lies the rest of the tensor, not a masked edge: a slice of a slice
    is refused with the way to write it."""
    source = (
        "def first_rows(src) {\n    return load(src[0 :+ 8, :])\n}\n"
        "kernel k[B = 3, S = 37, D = 40](x: global f32[B, S, D], y: global f32[B, 8, D])\n"
        "    blocks(B) threads(32) {\n"
        "    store(y[block.x, :, :], first_rows(x[block.x, :, :]))\n}\n"
    )
    with pytest.raises(LpirError) as caught:
        lower(source)
    located(caught.value, 2, 17, "cannot subscript a slice of x", "called at 6:29")
    assert "pass the tensor x and the indices instead" in str(caught.value)


def test_a_constant_slice_past_a_shared_tile_is_an_error() -> None:
    """A shared tile's size is the kernel's choice: s[32 :+ 64] of 64 elements is a mistake
    (it read zeros past the edge, as a tensor's edge would)."""
    source = HEAD.replace(
        "t = load(a[0 :+ 64])", "s = shared<f32>[64]\n    store(s, load(a[0 :+ 64]))"
    )
    source += "    store(c[0 :+ 64], load(s[32 :+ 64]))\n}\n"
    with pytest.raises(LpirError) as caught:
        lower(source)
    located(caught.value, 4, 30, "the slice 32 :+ 64 leaves the shared tile's 64 elements")


def test_a_constant_cast_to_an_index_past_a_shared_tile_is_an_error() -> None:
    """A constant through a cast (`s[cast<i32>(N)]`) is as constant as a literal: it was masked
    as a run-time position would be, reading 0."""
    source = HEAD.replace(
        "t = load(a[0 :+ 64])", "s = shared<f32>[64]\n    store(s, load(a[0 :+ 64]))"
    )
    source += "    store(c[0 :+ 64], full<f32>[64](load(s[cast<i32>(N)])))\n}\n"
    with pytest.raises(LpirError) as caught:
        lower(source)
    located(caught.value, 4, 44, "the slice 64 :+ 1 leaves the shared tile's 64 elements")


SHARED_ROWS = """kernel rows[R = 8, N = 32](x: global f32[16, N], y: global f32[R, N],
        z: global f32[N], extra: i32, r: i32) blocks(1) threads(32) {
    s = shared<f32>[R, N]
    store(s, zeros<f32>[R, N])
    for i in range(0, R + extra) {
        store(s[i, :], load(x[i, :]))
    }
    store(y[:, :], load(s))
    store(z[:], load(s[r, :]) + 1.0)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("r", [-1, 8, 3])
def test_a_run_time_slice_past_a_shared_tile_reads_zero_and_drops_writes(
    target: str, r: int
) -> None:
    """As at a tensor's edge (docs/language.md, Slices of tensors), on every target: rows 8 to
    10 of the 8-row tile are not written (nothing else is overwritten), row -1 or 8 reads 0."""
    kernel = lpir.compile(SHARED_ROWS, target=target)
    x = np.arange(16 * 32, dtype=np.float32).reshape(16, 32)
    y, z = np.zeros((8, 32), np.float32), np.zeros(32, np.float32)
    kernel(x, y, z, np.int32(3), np.int32(r))
    np.testing.assert_array_equal(y, x[:8])
    np.testing.assert_array_equal(z, x[r] + 1 if 0 <= r < 8 else np.ones(32, np.float32))


def test_clamp_with_reversed_constant_bounds_is_an_error() -> None:
    """clamp(t, 5.0, 1.0) gave 1.0 everywhere: bounds in the wrong order are a mistake."""
    source = HEAD + "    store(c[0 :+ 64], clamp(t, 5.0, 1.0))\n}\n"
    with pytest.raises(LpirError) as caught:
        lower(source)
    located(caught.value, 3, 32, "clamp's lower bound 5.0 is above its upper bound 1.0")


def test_clamp_in_order_folds_and_clamps() -> None:
    ones = np.ones(64, np.float32)
    assert run_interp(HEAD + "    store(c[0 :+ 64], clamp(t, 2, 2))\n}\n", ones)[0] == 2
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    source = HEAD + "    store(c[0 :+ 64], clamp(t, -1.0, 1.0))\n}\n"
    np.testing.assert_array_equal(run_interp(source, x), np.clip(x, -1, 1))


def test_define_an_integer_for_a_dtype_parameter() -> None:
    """WT=3 was reported where WT is used ("'WT' is the constant 3, not a dtype")."""
    source = "kernel k[WT = u4](w: global WT[64], c: global f32[64]) blocks(1) threads(32) {\n"
    source += "    store(c[0 :+ 64], cast<f32>(load(w[0 :+ 64])))\n}\n"
    with pytest.raises(ArgumentError) as caught:
        lower(source, WT=3)
    located(caught.value, 1, 10, "parameter WT of kernel k takes a dtype, not the integer 3")


# ---- 8. memory is not chosen at run time ---------------------------------------------------
def test_a_tensor_chosen_by_a_runtime_if_is_refused_at_the_assignment() -> None:
    """Each branch naming a different tensor gave "unknown name" at the use, with a hint
    that asked for one dtype and shape in both (they had one)."""
    source = (
        f"kernel k[N = 64]{ARGS} {{\n    if block.x == 0 {{\n        s = a\n    }} else {{\n"
        "        s = c\n    }\n    store(c[0 :+ 64], load(s[0 :+ 64]))\n}\n"
    )
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, 9, "a tensor cannot be chosen at run time", "used after it at line 7")
    assert "s = load(a[...]) and s = load(c[...])" in str(caught.value)


def test_a_def_does_not_see_the_callers_memory_choice() -> None:
    """The refusal is for the scope that chose: a def's own unknown name stays unknown."""
    source = (
        "def g(x) {\n    return load(s[0 :+ 64])\n}\n"
        f"kernel k[N = 64]{ARGS} {{\n    if block.x == 0 {{\n        s = a\n    }} else {{\n"
        "        s = c\n    }\n    store(c[0 :+ 64], g(a))\n}\n"
    )
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    assert str(caught.value).startswith("m.lp:2:17: error: unknown name 's' (in g, called at")


def test_the_same_shared_tile_in_both_branches_flows_out_of_the_if() -> None:
    source = HEAD.replace(
        "t = load(a[0 :+ 64])", "s = shared<f32>[64]\n    store(s, load(a[0 :+ 64]))"
    )
    source += (
        "    if block.x == 0 {\n        u = s\n    } else {\n        u = s\n    }\n"
        "    store(c[0 :+ 64], load(u) + 1.0)\n}\n"
    )
    x = np.arange(64, dtype=np.float32)
    np.testing.assert_array_equal(run_interp(source, x), x + 1)


SHARED_HEAD = HEAD.replace(
    "t = load(a[0 :+ 64])", "s = shared<f32>[64]\n    store(s, load(a[0 :+ 64]))"
)


@pytest.mark.parametrize(
    ("block", "line", "words"),
    [
        (
            "    for i in range(3) {\n        let v = i\n        s = shared<f32>[64]\n    }\n",
            6,
            ("inside a for loop", "allocate 's' once before the loop and store(...) into it"),
        ),
        (
            "    u = shared<f32>[64]\n    if block.x == 0 {\n        s = u\n    }\n",
            6,
            ("inside an if", "s = shared<f32>[2, 64]", "s[which, :] with which = 0 or 1"),
        ),
    ],
)
def test_a_shared_tile_reassigned_in_a_block_is_refused_at_the_assignment(
    block: str, line: int, words: tuple
) -> None:
    """The caret was on the for (or if) and there was no hint."""
    with pytest.raises(TypeCheckError) as caught:
        lower(SHARED_HEAD + block + "    store(c[0 :+ 64], load(s))\n}\n")
    located(caught.value, line, 9, "'s' is a shared tile (shared f32[64])", *words)


@pytest.mark.parametrize(
    ("block", "line", "column", "constant"),
    [
        ("    s = 0.0\n", 4, 9, "0.0"),
        ("    let s = 1\n", 4, 13, "1"),
        ("    for i in range(3) {\n        s = -N * 0.5\n    }\n", 5, 13, "-N * 0.5"),
        ("    if block.x == 0 {\n        s = 2.0\n    }\n", 5, 13, "2.0"),
    ],
)
def test_a_constant_assigned_to_a_shared_tile_s_name_is_refused_at_the_assignment(
    block: str, line: int, column: int, constant: str
) -> None:
    """`s = 0.0` rebound s to the constant, and the error came later at load(s) ("load needs
    a tensor slice"); inside a loop it said "cannot be reassigned inside a for loop" with a
    hint about alternating buffers (found by a reviewer). A register tile's name is filled by
    a constant; a shared tile's is not."""
    with pytest.raises(TypeCheckError) as caught:
        lower(SHARED_HEAD + block + "    store(c[0 :+ 64], load(s))\n}\n")
    located(caught.value, line, column, "'s' is a shared tile (shared f32[64])", "not fill")
    hint = f"store(s, full<f32>[64]({constant})), or give the constant a name of its own"
    assert hint in caught.value.hint, caught.value.hint


# ---- 9. constructs lpir does not have -----------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "line", "column", "words"),
    [
        ("    for i in range(4) {\n        break\n    }", 4, 9, ("lpir has no break", "done")),
        ("    for i in range(4) {\n        continue\n    }", 4, 9, ("lpir has no continue",)),
        ("    let i = 0\n    while i < 4 {\n    }", 4, 5, ("lpir has no while loop", "range")),
        ("    if t[0] > 0.0 {\n    } elif true {\n    }", 4, 7, ("lpir has no elif", "else if")),
    ],
)
def test_constructs_that_lpir_does_not_have(
    statement: str, line: int, column: int, words: tuple
) -> None:
    """break was "unknown name 'break'" with the hint "assign break = ..."; while was
    "unexpected 'i'" at the name after it."""
    with pytest.raises(LpirError) as caught:
        lower(HEAD + statement + "\n" + STORE)
    located(caught.value, line, column, *words)


@pytest.mark.parametrize(("dtype", "hint"), [("u32", "cast<i32>(n)"), ("f32", "truncates")])
def test_a_loop_bound_of_another_dtype_says_loop_bound(dtype: str, hint: str) -> None:
    """It said "an index must be an i32 scalar" with a hint about block.x."""
    source = HEAD.replace("c: global f32[N])", f"c: global f32[N], n: {dtype})")
    source += "    for i in range(0, n) {\n    }\n" + STORE
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, 23, "a loop bound must be an i32 scalar, but this is", hint)


@pytest.mark.parametrize(
    ("declared", "start", "words"),
    [
        (
            "n: i64",
            "n + 1",
            ("an i32 scalar, but this is a scalar of type i64", "cast<i32>(n + 1)"),
        ),
        ("n: u32", "n", ("a scalar of type u32", "cast<i32>(n) (a u32 value outside i32")),
        ("n: f32", "n * 2.0", ("a scalar of type f32", "cast<i32>(n * 2.0) truncates")),
        ("n: i32", "1.5 * 2.0", ("an index must be an integer, not 3.0", "cast<i32>(1.5 * 2.0)")),
        ("n: i32", "true", ("an index must be an integer, not true", "write an integer")),
    ],
)
def test_a_slice_start_of_another_type_says_how_to_make_it_an_index(
    declared: str, start: str, words: tuple
) -> None:
    """An i64 or u32 start (a position loaded from memory) had the hint "indices are built
    from block.x/y/z, ...", which does not say to cast; a float constant had no hint."""
    source = HEAD.replace("c: global f32[N])", f"c: global f32[N], {declared})")
    source += f"    store(c[{start} :+ 64], t)\n}}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, 13, *words)


def test_a_tile_as_a_loop_bound_says_loop_bound() -> None:
    """It said "an index must be an i32 scalar" with the hint about block.x."""
    source = HEAD.replace("a: global f32[N]", "a: global f32[N], ids: global i32[N]")
    source += "    u = load(ids[0 :+ 64])\n    for i in range(0, u) {\n    }\n" + STORE
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 4, 23, "a loop bound must be an i32 scalar, but this is a tile", "max(u)")


@pytest.mark.parametrize("statement", ["store(c[u :+ 1], t)", "store(c[0 :+ 64], load(a[u :+ 1]))"])
def test_a_tile_of_positions_as_a_slice_start_says_where_it_goes(statement: str) -> None:
    """A tile of positions stands for the whole index (a gather or scatter: x[ids]); as the
    start of a `:+` range the hint says so, and how to read one position as a scalar."""
    source = HEAD.replace("a: global f32[N]", "a: global f32[N], ids: global i32[N]")
    source += f"    u = load(ids[0 :+ 64])\n    {statement}\n}}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    text = str(caught.value)
    assert "an index must be an i32 scalar, but this is a tile" in text, text
    assert "in place of the whole index (x[ids, :]" in text and "let i = load(ids[r])" in text


# ---- 10. a cast of a constant is a compile-time value --------------------------------------
CAST_FACTS = [
    "cast<i8>(300) == 44",  # integers keep the low bits
    "cast<u8>(-1) == 255",
    "cast<i8>(100) + 100 == -56",  # and compute in their dtype
    "cast<i8>(1000.0) == 127",  # floats to integers saturate
    "cast<i32>(nan) == 0",
    "cast<f16>(70000.0) == inf",  # f16 overflows to inf
    "cast<f32>(cast<f8e4m3>(1000.0)) == 448.0",  # f8e4m3 saturates
    "cast<f32>(cast<f4e2m1>(100.0)) == 6.0",
    "cast<i64>(3000000000) == 3000000000",
    "cast<f64>(0.1) == 0.1",
]


@pytest.mark.parametrize("fact", CAST_FACTS)
def test_static_assert_of_a_cast_of_a_constant(fact: str) -> None:
    """static_assert said "needs a compile-time condition" of every cast of a constant."""
    lower(HEAD + f'    static_assert({fact}, "no")\n' + STORE)
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + f'    static_assert(not ({fact}), "no")\n' + STORE)
    located(caught.value, 3, 19, "static_assert failed: no")


def test_a_cast_of_a_constant_sizes_tiles_and_the_launch() -> None:
    """zeros<f32>[cast<i32>(16)] said "a tile dimension must be a compile-time integer"."""
    source = (
        "kernel k[N = 64](a: global f32[cast<i32>(N)], c: global f32[N]) "
        "blocks(cast<i32>(N / 32)) threads(cast<u8>(288)) {\n"
        "    i = block.x * 32\n"
        "    t = load(a[i :+ 32]) + zeros<f32>[cast<i32>(32)]\n"
        "    for k in range(0, 2, cast<i64>(2), stages = cast<i32>(1)) {\n"
        "        t += reshape(t, 2, 16)[cast<i32>(0), 0]\n    }\n"
        "    store(c[i :+ 32], t)\n}\n"
    )
    kernel = lpir.compile(source, target="interp")
    x = np.arange(64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    kernel(x, y)
    np.testing.assert_array_equal(y, x + np.repeat(x[::32], 32))
    _, module = specialize(parse_program(source, "m.lp"), None, {})
    assert module.kernels[0].threads == 32  # cast<u8>(288)


def test_a_cast_of_a_constant_in_an_expression_is_still_a_cast() -> None:
    """The typed IR of a run-time use is as before: a constant of the exact dtype, cast."""
    source = HEAD + "    store(c[0 :+ 64], t + cast<f32>(cast<i8>(300)))\n}\n"
    _, module = specialize(parse_program(source, "m.lp"), None, {})
    text = print_module(module)
    assert "constant {value = 300} : i64" in text and "cast(" in text, text


def test_none_as_a_value() -> None:
    """It was "unknown name 'None'" with the hint "assign None = ..."."""
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    u = None\n" + STORE)
    located(caught.value, 3, 9, "lpir has no None value", "where(mask, t, 0.0)")


def test_comparisons_do_not_chain() -> None:
    """It was a bare "unexpected '<'"."""
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + "    m = 0.1 < t <= 0.5\n" + STORE, "m.lp")
    located(caught.value, 3, 17, "comparisons do not chain", "(0.1 < t) and (t <= 0.5)")


@pytest.mark.parametrize(
    ("params", "column", "words"),
    [
        ("BK = N * 2, N = 64", 15, ("the default of BK reads N, a parameter declared after it",)),
        ("BK = N, N = 64", 15, ("declared after it", "declare N before BK")),
        ("BK = a, N = 64", 15, ("reads 'a', an argument of kernel k", "make 'a' a parameter")),
        ("BK = a + 1, N = 64", 15, ("reads 'a', an argument of kernel k",)),
        ("N = 64, BK = BK", 23, ("the default of BK reads BK itself",)),
    ],
)
def test_a_default_reading_a_later_parameter_or_an_argument(
    params: str, column: int, words: tuple
) -> None:
    """These were "unknown dtype 'N'" (a bare name) or "unknown name 'a'" with the hint
    "assign a = ... before this line"."""
    with pytest.raises(TypeCheckError) as caught:
        lower(f"kernel k[{params}]{ARGS} {{\n}}\n")
    located(caught.value, 1, column, *words)


@pytest.mark.parametrize(
    "separator", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_a_line_separator_in_a_comment_leaves_later_lines_quoted_right(separator: str) -> None:
    """The lexer counts lines by "\\n" alone, but the quoted line came from str.splitlines,
    which also breaks at a form feed or U+2028: every later diagnostic showed the wrong text."""
    source = HEAD + f"    # page{separator}two\n    store(c[0 :+ 64], t + q)\n}}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    text = located(caught.value, 4, 27, "unknown name 'q'")
    assert "\n        store(c[0 :+ 64], t + q)\n" in text, text
    with pytest.raises(ParseError) as caught:
        parse_program(source.replace("t + q", "t +* q"), "m.lp")
    assert "\n        store(c[0 :+ 64], t +* q)\n" in located(caught.value, 4, 26), caught.value


def test_a_line_separator_inside_the_quoted_line_is_shown_as_a_space() -> None:
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    store(c[0 :+ 64], t + q)  # a\fb\u2028c\n}\n")
    assert "t + q)  # a b c\n" in located(caught.value, 3, 27, "unknown name 'q'")


def test_an_argument_error_after_a_form_feed_quotes_the_parameter(tmp_path: Path) -> None:
    path = tmp_path / "m.lp"
    body = f"    t = load(a[0 :+ 64])\n{STORE}"  # (a body that lowers: lpir.compile lowers it)
    path.write_text(f"# one\fa\n# two\u2028b\nkernel k[N = 64]{ARGS} {{\n{body}", encoding="utf-8")
    kernel = lpir.compile(str(path), target="interp")
    with pytest.raises(ArgumentError) as caught:
        kernel(np.ones(64, np.float64), np.zeros(64, np.float32))
    assert f"\n    kernel k[N = 64]{ARGS} {{\n" in str(caught.value), caught.value


def test_an_error_pickled_across_processes_reads_as_it_was_raised() -> None:
    """Exceptions pickle as type(error)(*error.args), and args held the formatted text, so an
    error from a worker process read "m.lp:3:9: error: m.lp:3:9: error: ..."."""
    import pickle

    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    store(c[0 :+ 64], t + q)\n}\n")
    error = caught.value
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is TypeCheckError and str(back) == str(error)
    assert (back.message, back.location, back.hint) == (error.message, error.location, error.hint)
    error.call_shown = True
    assert pickle.loads(pickle.dumps(error)).call_shown


def test_an_unterminated_string() -> None:
    """It was "unexpected character '\\"'" with the hint "remove or replace it"."""
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + '    static_assert(N > 100, "too small)\n' + STORE, "m.lp")
    text = located(caught.value, 3, 28, "unterminated string")
    assert '"too small)\n                               ^^^^^^^^^^^\n' in text, text
    assert caught.value.hint == 'close it with " on the same line (a string does not span lines)'


def test_a_string_in_single_quotes() -> None:
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + "    static_assert(N > 100, 'too small')\n" + STORE, "m.lp")
    located(caught.value, 3, 28, "a string is written in double quotes")
    assert caught.value.hint == 'write "too small"'


def test_an_alias_of_a_tensor_may_point_elsewhere() -> None:
    """`a = x` then `a = c` (or `a = t * 2.0`) was refused as assigning to the tensor x: only
    the tensor's own name (an argument, a def's parameter) is its one handle."""
    body = (
        "    s = a\n    u = load(s[0 :+ 64])\n    s = c\n    store(s[0 :+ 64], u + 1.0)\n"
        "    s = u * 2.0\n}\n"
    )
    x = np.arange(64, dtype=np.float32)
    kernel = lpir.compile(f"kernel k[N = 64]{ARGS} {{\n" + body, target="interp")
    y = np.zeros(64, np.float32)
    kernel(x, y)
    np.testing.assert_array_equal(y, x + 1)


def test_a_loop_variable_named_as_a_tensor_is_refused() -> None:
    """`for a in range(...)` hid the tensor a: a later a[...] said 'cannot subscript a scalar'."""
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    for a in range(0, 2) {\n    }\n" + STORE)
    located(caught.value, 3, 5, "the loop variable cannot be 'a': it names the tensor a")


def test_a_single_quoted_string_holding_a_double_quote() -> None:
    """It fell back to "unexpected character \"'\"" with the hint "remove or replace it"."""
    with pytest.raises(ParseError) as caught:
        parse_program(HEAD + "    static_assert(N > 100, 'a \"b\" c')\n" + STORE, "m.lp")
    text = located(caught.value, 3, 28, "a string is written in double quotes")
    assert "'a \"b\" c')\n                               ^^^^^^^^^\n" in text, text
    assert caught.value.hint == (
        "write \"a 'b' c\": a string cannot hold a double quote (there are no escapes), so "
        "rephrase it"
    )


def test_a_misspelt_parameter_as_a_whole_default_is_no_unknown_dtype() -> None:
    """`BK = NN` said "unknown dtype 'NN'" and listed the dtypes, where `BK = NN * 2` said
    "did you mean 'N'?"."""
    source = f"kernel k[N = 64, BK = NN]{ARGS} {{\n    t = load(a[0 :+ 64])\n{STORE}"
    with pytest.raises(TypeCheckError) as caught:
        specialize(parse_program(source, "m.lp"), None, {})
    located(caught.value, 1, 23, "unknown name 'NN': neither a parameter declared before BK")
    assert caught.value.hint == "did you mean 'N'?"
    dtype_typo = source.replace("BK = NN", "T = f23")  # close to no parameter: a dtype's typo
    with pytest.raises(TypeCheckError, match="unknown dtype 'f23'"):
        specialize(parse_program(dtype_typo, "m.lp"), None, {})


def test_a_tensor_assigned_inside_a_loop_says_it_cannot_be_assigned_anywhere() -> None:
    """It said "cannot be reassigned inside a for loop", as if it could be elsewhere."""
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + "    for i in range(0, 2) {\n        c = load(a[0 :+ 64])\n    }\n" + STORE)
    located(caught.value, 4, 9, "cannot assign to 'c': it names the tensor c")


@pytest.mark.parametrize(
    ("statement", "column", "hint"),
    [
        (
            "d = view<i32>(a)",
            19,
            "a is in global memory: load a slice of it into registers "
            "first, e.g. view<i32>(load(a[...]))",
        ),
        (
            "d = cast<f16>(a[0 :+ 8])",
            19,
            "a slice is in memory: load it into registers first: cast<f16>(load(a[0 :+ 8]))",
        ),
        ("d = sum(a, axis = 0)", 13, "e.g. sum(load(a[...]), axis = 0)"),
        ("d = reshape(a, 8, 8)", 17, "e.g. reshape(load(a[...]), 8, 8)"),
        ("d = transpose(a)", 19, "e.g. transpose(load(a[...]))"),
        ("d = dot(t[None, :], a)", 25, "e.g. dot(t[None, :], load(a[...]))"),
        ("d = exp(a)", 13, "e.g. exp(load(a[...]))"),
        (
            "s = shared<f32>[64]\n    d = max(s)",
            13,
            "a shared tile is in memory: load it into registers first: max(load(s))",
        ),
    ],
)
def test_a_tensor_where_a_tile_is_needed_says_to_load_it(statement, column, hint) -> None:
    """`view<f16>(w)` of a tensor said "expected a number or a tile, but this is the tensor w"
    with no hint; every builtin that takes tiles now shows its call with the value loaded."""
    with pytest.raises(TypeCheckError) as caught:
        lower(HEAD + f"    {statement}\n" + STORE)
    line = 3 + statement.count("\n")
    located(caught.value, line, column, "but this is")
    assert hint in caught.value.hint, caught.value.hint


# ---- 11. a constant assigned to a tile's name fills the tile ------------------------------
FILL_KERNEL = """kernel k(a: global f32[8], y: global f32[8]) blocks(1) threads(4) {
    acc = load(a[:])
    acc = 3.0
    s = sum(acc)
    for i in range(2) {
        acc = 1.0
        acc += full<f32>[8](sum(acc))
    }
    store(y[:], acc + s)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_constant_assigned_to_a_tile_name_fills_the_tile(target: str) -> None:
    """At the kernel's top level `acc = 3.0` rebound acc to the constant (sum(acc) was then
    refused), and inside a loop body it was a constant until the end of the body; the docs
    say a constant assigned to a tile name fills the tile, everywhere."""
    kernel = lpir.compile(FILL_KERNEL, target=target)
    y = np.zeros(8, np.float32)
    kernel(np.arange(8, dtype=np.float32), y)
    np.testing.assert_array_equal(y, np.full(8, 1.0 + 8.0 + 24.0, np.float32))


@pytest.mark.parametrize(
    ("indent", "value", "column", "words"),
    [
        ("", "2.5", 11, "cannot combine the float constant 2.5 with i32 values"),
        ("", "true", 11, "cannot use the constant true as an i32 value"),
        ("", "1 << 40", 11, "does not fit in i32"),
        ("for i in range(2) { ", "2.5", 31, "cannot combine the float constant 2.5"),
        ("if n > 0 { ", "2.5", 22, "cannot combine the float constant 2.5"),
    ],
)
def test_a_constant_a_tile_cannot_hold_is_refused_where_it_is_assigned(
    indent: str, value: str, column: int, words: str
) -> None:
    """`acc = zeros<i32>[8]; acc = 2.5` was accepted at the top level (the error came at a
    later use of acc, or never), and in a loop the error pointed at the `for`."""
    source = (
        "kernel k(y: global i32[8], n: i32) blocks(1) threads(4) {\n"
        "    acc = zeros<i32>[8]\n"
        f"    {indent}acc = {value}{' }' if indent else ''}\n"
        "    store(y[:], acc)\n}\n"
    )
    with pytest.raises(TypeCheckError) as caught:
        lower(source)
    located(caught.value, 3, column, "'acc' is a tile of i32[8]", words, "acc_2 = ...")


# ---- 12. atomics into a shared tile of a dtype no atomic takes ------------------------------
@pytest.mark.parametrize("atomic", ["atomic_add", "atomic_max", "atomic_min"])
@pytest.mark.parametrize(("place", "width"), [("s", 1), ("s[0 :+ 64]", 10), ("s[ids]", 6)])
def test_an_atomic_into_a_shared_tile_names_the_atomic(atomic: str, place: str, width: int):
    """Atomics combine into shared tiles too (a block's histogram); one of f16 named
    'store_shared' once, an internal op, with no hint (found by an explorer)."""
    source = HEAD.replace("a: global f32[N]", "a: global f32[N], g: global i32[N]")
    source += (
        f"    s = shared<f16>[64]\n    ids = load(g[:])\n    {atomic}({place}, cast<f16>(ids))\n"
    )
    with pytest.raises(TypeCheckError) as caught:
        lower(source + STORE)
    text = located(caught.value, 5, 5 + len(atomic) + 1, f"{atomic} cannot")
    assert "store_shared" not in text and "^" * width + "\n" in text, text
    assert "s, a shared tile of f16" in text, text
    assert "accumulate into a shared tile of" in caught.value.hint, caught.value.hint


# ---- 13. a tensor's index counts from 0 ----------------------------------------------------
NEGATIVE_INDEX_KERNEL = """kernel k[N = 8](x: global f32[N, 2 * N], y: global f32[4], n: i32,
        r: global f32[n, 4]) blocks(1) threads(4) {{
    s = shared<f32>[4, 8]
    store(s, zeros<f32>[4, 8])
    store(y[:], {load})
}}
"""


@pytest.mark.parametrize(
    ("load", "column", "words", "hint"),
    [
        ("full<f32>[4](load(x[-1, 0]))", 37, "the index -1 is before x's", "write N - 1 where"),
        ("load(x[0, -4:-0])", 27, "the range -4:-0 starts before x's", "write 2 * N - 4 where"),
        ("load(r[N - 10, :])", 24, "the index N - 10 is before r's", "write n - 2 where"),
        ("load(s[-1, 0 :+ 4])", 24, "is before the shared tile's", "write 3 where numpy"),
        # constants the front end keeps as ops: casts and arithmetic of them
        ("load(x[cast<i32>(N - 9), 0 :+ 4])", 24, "the index cast<i32>(N - 9) is", "N - 1 where"),
        ("load(x[1, cast<i32>(-2.5) + 1:4])", 27, "the range cast<i32>(-2.5) + 1:4", "2 * N - 1"),
        ("load(s[max(cast<i32>(-3), -2), 0 :+ 4])", 24, "the shared tile's", "write 2 where"),
        # numpy's "all but the last": the end counted from the start too
        ("load(x[0, 0:-1])", 27, "the range 0:-1 ends at -1, before x's", "2 * N - 1 where"),
        ("load(s[0:-1, 0])", 24, "0:-1 ends at -1, before the shared tile's", "write 3 where"),
    ],
)
def test_a_constant_negative_index_of_memory_is_an_error(
    load: str, column: int, words: str, hint: str
) -> None:
    """`load(x[-1])` read 0, from outside the tensor, while a register tile's t[-1] is its
    last element (found by an explorer): a constant negative index or range start of a tensor
    or shared tile is refused, with the position counted from the start in the hint."""
    with pytest.raises(TypeCheckError) as caught:
        lower(NEGATIVE_INDEX_KERNEL.format(load=load))
    located(caught.value, 5, column, words, "counts from 0, not from the end")
    assert hint in caught.value.hint, caught.value.hint


def test_all_but_the_last_row_read_at_run_time_says_how_to_load_rows() -> None:
    """`r[0:-1, :]` of rows read at run time: no end from the start can be written, so the
    hint loads tiles of rows."""
    with pytest.raises(TypeCheckError) as caught:
        lower(NEGATIVE_INDEX_KERNEL.format(load="load(r[0:-1, 0])"))
    located(caught.value, 5, 24, "first dimension is n, an argument read at run time")
    assert "r[r :+ 16, ...]" in caught.value.hint, caught.value.hint


def test_an_empty_range_says_what_a_range_holds() -> None:
    """`x[2:1]` said only "empty slice 2:1", with no hint."""
    with pytest.raises(TypeCheckError) as caught:
        lower(NEGATIVE_INDEX_KERNEL.format(load="load(x[2:1, 0])"))
    located(caught.value, 5, 24, "empty slice 2:1", "from start up to stop - 1")
    assert "2:3 or 2 :+ 1" in caught.value.hint, caught.value.hint


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_negative_start_of_a_length_slice_still_overhangs_the_edge(target: str) -> None:
    """`x[-2 :+ 4]` is a tile overhanging the tensor's start, as at any edge: the elements
    before it read 0 (or other =)."""
    source = HEAD + "    store(c[0 :+ 4], load(a[-2 :+ 4], other = 9.0))\n}\n"
    kernel = lpir.compile(source, target=target)
    y = np.zeros(64, np.float32)
    kernel(np.arange(64, dtype=np.float32), y)
    np.testing.assert_array_equal(y[:4], [9, 9, 0, 1])


# ---- 14. a tile where a scalar is needed ---------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "column", "message", "hint"),
    [
        ("store(c[p[0 :+ 2] :+ 4], t[0 :+ 4])", 13, "an index must be an i32 scalar", "per block"),
        ("for i in range(0, p) { }", 23, "a loop bound must be", "reduce the tile (max(p))"),
        ("let q = p[0 :+ 2]", 13, "let binds a scalar", "plain assignment for tiles"),
        ("if p > 0 { }", 8, "an if condition must be", "where(cond, a, b)"),
        ("u = full<i32>[4](p)", 22, "full needs a scalar value", "full fills a tile"),
    ],
)
def test_a_tile_where_a_scalar_is_needed(statement, column, message, hint):
    """One element of a tile (p[2]) stands as a scalar (tests/test_tile_elements.py); a tile
    of several is still refused, each place saying what to do."""
    source = HEAD.replace("a: global f32[N]", "a: global f32[N], g: global i32[N]")
    source += f"    p = load(g[0 :+ 4])\n    {statement}\n"
    with pytest.raises(TypeCheckError) as caught:
        lower(source + STORE)
    located(caught.value, 4, column, "a tile of type")
    assert message in caught.value.message, caught.value.message
    assert hint in caught.value.hint, caught.value.hint


# ---- 15. an operator after a layout annotation --------------------------------------------
@pytest.mark.parametrize(
    ("expression", "column", "token", "operator"),
    [
        ("t @ spatial(32).local(2) * 2.0", 36, "'2.0'", "(t @ L) * ..."),
        ("t @ spatial(32).local(2) * s", 36, "'s'", "(t @ L) * ..."),
        ("t @ spatial(32).local(2) + t", 34, "'+'", "(t @ L) + ..."),
        ("max(t @ spatial(32).local(2) > 0.0, t)", 38, "'>'", "(t @ L) > ..."),
        ("t @ spatial(32).local(2)[0 :+ 4]", 33, "'['", "(t @ L)[...]"),
    ],
)
def test_an_operator_after_a_layout_annotation_says_to_parenthesize(
    expression: str, column: int, token: str, operator: str
) -> None:
    """`@` binds loosest: `load(...) @ L * 2.0` said only "unexpected '2.0'" (the `*` joins
    layouts) and `t @ L + b` "unexpected '+'" (found by an explorer auditing docs/language.md)."""
    with pytest.raises(ParseError) as caught:
        lower(HEAD + f"    t = {expression}\n" + STORE)
    located(caught.value, 3, column, f"unexpected {token} after a layout annotation")
    assert "@ binds loosest" in caught.value.hint and operator in caught.value.hint


def test_a_layout_cut_short_keeps_the_parser_s_message() -> None:
    """Inside an unfinished layout the parser's own message stands."""
    with pytest.raises(ParseError) as caught:
        lower(HEAD + "    t = t @ spatial(32 2)\n" + STORE)
    text = located(caught.value, 3, 24, "unexpected '2'")
    assert "after a layout annotation" not in text


# ---- 16. a positional argument after a keyword argument -----------------------------------
@pytest.mark.parametrize(
    ("statement", "column", "reordered"),
    [
        ("t = f(b = 2.0, t)", 20, "f(t, b = 2.0)"),
        ("t = f(b = 3.0, t, 1.0)", 20, "f(t, 1.0, b = 3.0)"),
        ("t = clamp(lo = 2.0, t, hi = 5.0)", 25, "clamp(t, lo = 2.0, hi = 5.0)"),
        ("for i in range(0, stages = 2, 4) { }", 35, "range(0, 4, stages = 2)"),
    ],
)
def test_a_positional_argument_after_a_keyword_argument_is_python_s_error(
    statement: str, column: int, reordered: str
) -> None:
    """`f(b = 2.0, x)` bound x to f's first parameter, and `clamp(lo = 2.0, x, hi = 5.0)` said
    "clamp takes 3 arguments, got 1" (found by an explorer)."""
    source = "def f(a, b) { return a - b }\n" + HEAD
    with pytest.raises(ParseError) as caught:
        lower(source + f"    {statement}\n" + STORE)
    located(caught.value, 4, column, "positional argument follows keyword argument")
    assert f"e.g. {reordered}" in caught.value.hint, caught.value.hint


# ---- 17. errors that had no hint ----------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "params", "line", "column", "words", "hint"),
    [
        (
            "kernel k[BN = 8](a: global f32[64]) blocks(cdiv(64, BN)) threads(32) {\n}\n",
            {"BN": 0},
            1,
            53,
            "cdiv by zero",
            "BN is 0 here: give it a positive value",
        ),
        (HEAD + '    u = "a"\n' + STORE, {}, 3, 9, "only allowed as the message", "static_assert("),
        (
            HEAD + "    t = t @ spatial(0, 32)\n" + STORE,
            {},
            3,
            13,
            "must be a positive integer, got 0",
            "give each factor a positive integer",
        ),
    ],
)
def test_errors_that_had_no_hint(source, params, line, column, words, hint) -> None:
    """The docs promise every mistake a place and a hint (found by an explorer: these had
    none)."""
    with pytest.raises(LpirError) as caught:
        lower(source, **params)
    located(caught.value, line, column, words)
    assert hint in caught.value.hint, caught.value.hint


def test_an_unknown_kernel_name_lists_the_kernels() -> None:
    source = HEAD + STORE
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp", kernel="zz")
    assert caught.value.message == "no kernel named 'zz'; the source has k"
    assert "kernel='k' from Python, --kernel k on the command line" in caught.value.hint
    assert lpir.ArgumentError is ArgumentError  # the docs name it so
