"""Errors in a user's program are `LpirError`s with a place, and the CLI prints them plainly.

Each mistake must raise the right `LpirError` subclass carrying a `SourceLocation` (file, line,
column, the source line) so that `str(error)` reads `file:line:col: error: ...` with a caret;
the CLI prints that text without a Python traceback and exits with status 1.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.cli import main
from lpir.errors import ArgumentError, LpirError, ParseError, TypeCheckError
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

ERROR_TESTS = sorted((Path(__file__).parent / "filecheck" / "errors").glob("*.lp"))

HEADER = "kernel k(x: global f32[64], h: global f16[64], y: global f32[64]) blocks(1) threads(64) {"

# (body line, error class, column of the caret, words the message must contain)
MISTAKES = [
    ("    t = load(x[0:64]) +* 2.0", ParseError, 24, "unexpected '*'"),
    ("    t = load(x[0:64]) $ 2.0", ParseError, 23, "unexpected character"),
    ("    store(y[0:64], totl)", TypeCheckError, 20, "unknown name 'totl'"),
    ("    store(y[0:64], load(x[0:64]) * load(h[0:64]))", TypeCheckError, 20, "dtypes"),
    ("    store(y[0:64], sqrtt(load(x[0:64])))", TypeCheckError, 20, "unknown function"),
    ("    store(y[0:64], where(load(x[0:64]) > 0.0))", TypeCheckError, 20, "3 arguments"),
    ("    t = arange(0, 64)", TypeCheckError, 9, "arange takes 1 argument, got 2"),
    ("    store(y[0:64], sum(load(x[0:64]), dim = 0))", TypeCheckError, 39, "no argument 'dim'"),
    ("    store(h[0:64], load(x[0:64]))", TypeCheckError, 20, "cannot store f32[64]"),
    # a bool sum was OR on interp and threads, XOR on the cpu (found by an explorer)
    ("    t = sum(load(x[0:64]) > 0.0)", TypeCheckError, 9, "'sum' is not defined on bool"),
    ("    store(y[0:64], cast<f33>(load(x[0:64])))", TypeCheckError, 25, "unknown dtype"),
    ("    store(y[0:32], load(x[0:64]))", TypeCheckError, 20, "shape [64]"),
    ("    t = load(x[0:64]) @ spatial(32).local(4)", TypeCheckError, 25, "has shape [128]"),
    ("    t = load(x[0:64]) @ spatial(32).local(2)", TypeCheckError, 25, "spans 32 threads"),
    ("    let t = load(x[0:64])", TypeCheckError, 13, "let binds a scalar"),
    ('    static_assert(1 > 2, "never")', TypeCheckError, 19, "static_assert failed: never"),
    ("    if load(x[0:64]) > 0.0 {\n    }", TypeCheckError, 8, "bool scalar"),
    # integer constants fold within 64 bits (past them a float conversion once crashed)
    ("    let n = exp(" + "9" * 400 + ")", TypeCheckError, 17, "integer of 400 digits"),
    ("    let n = 1 << 63 << 63", TypeCheckError, 13, "does not fit in 64 bits"),
    ("    let n = (1 << 63) * 2", TypeCheckError, 13, "9223372036854775808 * 2"),
    ("    let n = 7 / 0", TypeCheckError, 13, "division by zero"),
    ("    let n = 7.5 * cdiv(7.5, 2)", TypeCheckError, 24, "cdiv divides integers"),
]


def compile_source(source: str, file: str = "mistake.lp", **params):
    program = parse_program(source, file)
    return specialize(program, None, params)


@pytest.mark.parametrize(("line", "kind", "column", "words"), MISTAKES)
def test_mistake_is_a_located_lpir_error(line, kind, column, words):
    source = f"{HEADER}\n{line}\n}}\n"
    with pytest.raises(kind) as caught:
        compile_source(source)
    error = caught.value
    assert isinstance(error, LpirError)
    assert error.location is not None
    assert (error.location.file, error.location.line, error.location.column) == (
        "mistake.lp",
        2,
        column,
    )
    assert words in error.message
    text = str(error)
    assert text.startswith(f"mistake.lp:2:{column}: error: ")
    source_line, caret_line = text.splitlines()[1:3]
    assert source_line.strip() == line.splitlines()[0].strip()
    assert caret_line.index("^") == column - 1 + 4  # under the column, after the indent


@pytest.mark.parametrize("path", ERROR_TESTS, ids=lambda p: p.name)
def test_every_error_test_fails_with_a_location_in_its_file(path: Path):
    if path.name == "command_line.lp":
        pytest.skip("its mistakes are on the command line")
    with pytest.raises(LpirError) as caught:
        compile_source(path.read_text(), str(path))
    location = caught.value.location
    assert location is not None, caught.value
    assert location.file == str(path)
    lines = path.read_text().splitlines()
    assert 1 <= location.line <= len(lines)
    assert 1 <= location.column <= len(lines[location.line - 1]) + 1
    assert location.source_line == lines[location.line - 1]


def test_hint_follows_the_caret():
    source = f"{HEADER}\n    total = load(x[0:64])\n    store(y[0:64], totl)\n}}\n"
    with pytest.raises(TypeCheckError) as caught:
        compile_source(source)
    assert caught.value.hint == "did you mean 'total'?"
    assert str(caught.value).splitlines()[-1] == "hint: did you mean 'total'?"


DOT_KERNEL = (
    "kernel k[S = 16](a: global {a}[S, S], b: global {b}[S, S], c: global {c}[S, S])"
    " blocks(1) threads(32) {{\n"
    "    store(c[:, :], dot({load_a}, {load_b}, zeros<{c}>[S, S]))\n"
    "}}\n"
)


@pytest.mark.parametrize(
    ("a", "b", "cast_to"),
    [
        ("u8", "i8", "f16"),  # i8 would wrap u8 values past 127: f16 holds both
        ("i8", "u8", "f16"),
        ("u8", "u8", "f16"),
        ("f16", "bf16", "f32"),
        ("i8", "f16", "f16"),
        ("f32", "i32", "f32"),
        ("f64", "f64", "f32"),
        ("u16", "i8", "f32"),
        ("i32", "i8", "i8"),  # no dot dtype holds every i32: the hint says values wrap
    ],
)
def test_the_hint_for_dot_operand_dtypes_names_a_cast_that_dot_takes(a, b, cast_to):
    """Following the hint (cast to the dtype it names, accumulate in the dtype it names)
    compiles: it never suggests a dtype that dot then refuses."""
    loads = {"load_a": "load(a[:, :])", "load_b": "load(b[:, :])"}
    with pytest.raises(TypeCheckError) as caught:
        compile_source(DOT_KERNEL.format(a=a, b=b, c="f32", **loads))
    error = caught.value
    assert error.location is not None and (error.location.line, error.location.column) == (2, 20)
    assert error.hint is not None and "^" in str(error)
    assert re.findall(r"cast<(\w+)>", error.hint) == [cast_to], error.hint
    both = "cast both" in error.hint
    if both:
        assert "dot takes f16, bf16, f32 or i8 operands" in error.hint, error.hint
    else:
        assert error.hint.startswith("cast the "), error.hint
    if (a, b) in (("f32", "i32"), ("i32", "i8")):  # a lossy cast says what it loses
        assert error.hint.endswith("round" if cast_to == "f32" else "wrap"), error.hint
    fixed = {
        name: f"cast<{cast_to}>({load})" if both or dt != cast_to else load
        for (name, load), dt in zip(loads.items(), (a, b), strict=True)
    }
    accumulator = "i32" if cast_to == "i8" else "f32"
    if both:
        assert error.hint.endswith(f"accumulate in {accumulator}"), error.hint
    compile_source(DOT_KERNEL.format(a=a, b=b, c=accumulator, **fixed))


@pytest.mark.parametrize(
    ("stored", "hinted", "compute"),
    [
        ("u4", "cast<u8>(x) or cast<i32>(x)", "u8"),
        ("u1", "cast<u8>(x) or cast<i32>(x)", "i32"),
        ("i2", "cast<i8>(x) or cast<i32>(x)", "i8"),
        ("i7", "cast<i8>(x) or cast<i32>(x)", "i32"),
        ("f4e2m1", "cast<f32>(x) or cast<f16>(x)", "f32"),
        ("f8e4m3", "cast<f32>(x) or cast<f16>(x)", "f16"),
    ],
)
def test_the_hint_for_storage_only_operands_names_a_cast_of_their_kind(stored, hinted, compute):
    """`q == 0` of u4 codes hinted cast<f32>/cast<f16>: integer storage types now hint an
    integer cast, which following makes the comparison compile, and small floats a float one."""
    zero = "0.0" if compute.startswith("f") else "0"
    source = f"""
kernel k(q: global {stored}[64], y: global bool[64]) blocks(1) threads(64) {{
    store(y[0 :+ 64], QUERY == {zero})
}}
"""
    with pytest.raises(TypeCheckError) as caught:
        specialize(parse_program(source.replace("QUERY", "load(q[0 :+ 64])")), "k", {})
    error = caught.value
    assert f"'==' is not defined on {stored}, a storage-only type" in str(error)
    assert error.hint == f"cast it to a compute type first, e.g. {hinted}", error.hint
    assert ":3:" in str(error) and "^" in str(error)
    followed = source.replace("QUERY", f"cast<{compute}>(load(q[0 :+ 64]))")
    specialize(parse_program(followed), "k", {})


def test_argument_errors_at_call_time_point_at_the_declaration():
    kernel = lpir.compile(f"{HEADER}\n    store(y[0:64], load(x[0:64]))\n}}\n", target="interp")
    x, h, y = (np.zeros(64, np.float32), np.zeros(64, np.float16), np.zeros(64, np.float32))
    with pytest.raises(ArgumentError) as caught:
        kernel(x, x, y)  # h must be f16
    assert caught.value.location is not None
    assert caught.value.location.line == 1
    assert "h" in caught.value.message
    with pytest.raises(ArgumentError) as caught:
        kernel(np.zeros(65, np.float32), h, y)
    assert caught.value.location is not None


@pytest.fixture
def bad_kernel(tmp_path: Path) -> Path:
    path = tmp_path / "bad.lp"
    path.write_text(f"{HEADER}\n    store(y[0:64], totl)\n}}\n")
    return path


def test_cli_prints_the_diagnostic_and_exits_1(bad_kernel: Path, capsys):
    assert main(["opt", str(bad_kernel)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{bad_kernel}:2:20: error: unknown name 'totl'")
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("command", [["opt"], ["run", "--target", "interp"], ["emit"]])
def test_cli_commands_report_source_errors_the_same_way(bad_kernel: Path, capsys, command):
    assert main([command[0], str(bad_kernel), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert f"{bad_kernel}:2:20: error:" in err
    assert "Traceback" not in err


def test_cli_process_exits_1_without_a_traceback(bad_kernel: Path):
    done = subprocess.run(
        [sys.executable, "-m", "lpir", "opt", str(bad_kernel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0] == f"{bad_kernel}:2:20: error: unknown name 'totl'"
