"""Mutation fuzzing of the front end: a broken kernel is an LpirError with a place, never a crash.

Hypothesis takes an example source (and the FileCheck kernels), cuts it into tokens and
applies one to three mutations: delete, duplicate or swap tokens, change a number or a dtype
name, drop a brace, bracket or parenthesis, replace a name, insert a token. Compiling the
result to tile IR must either succeed or raise an `LpirError` whose `location` is set; any
other exception fails the test and prints the mutated source. A mutant that compiles is also
run through the CPU pipeline, which must not crash either (the front end stops tiles at 2^20
elements, so no mutant makes the passes build absurd layouts).

By default 300 mutants, the same ones on every run (a few seconds, no flaky CI). Setting
LPIR_FUZZ_EXAMPLES (e.g. 5000, after changing the front end) draws that many fresh ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lpir.passes import PIPELINES, PassPipeline

from lpir.errors import LpirError
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program

ROOT = Path(__file__).resolve().parent.parent
COMMENT_LINE = re.compile(r"^[ \t]*#.*\n", re.MULTILINE)
SOURCES = [
    *(path.read_text() for path in sorted((ROOT / "examples").glob("*.lp"))),
    # the FileCheck kernels without their RUN/CHECK comment lines
    *(
        COMMENT_LINE.sub("", path.read_text())
        for path in sorted((ROOT / "tests" / "filecheck" / "parse").glob("*.lp"))
        if "\nkernel " in path.read_text()
    ),
]
EXAMPLES = int(os.environ.get("LPIR_FUZZ_EXAMPLES", "300"))
FRESH = "LPIR_FUZZ_EXAMPLES" in os.environ

TOKEN = re.compile(
    r"\s+|#[^\n]*|\d+\.\d*(?:[eE][-+]?\d+)?|\d+|[A-Za-z_]\w*|:\+|<<=?|>>=?|[-+*/%&|^<>=!]=|\S"
)
NUMBERS = ["0", "1", "-1", "2", "3", "7", "8", "33", "1000", "65536", "2147483648", "0.5", "1e9"]
DTYPES = ["u1", "u3", "i4", "u8", "i32", "f16", "bf16", "f32", "f4e2m1", "f8e4m3", "bool", "f33"]
NAMES = ["x", "k0", "acc", "block", "load", "store", "sum", "cast", "None", "range", "let", "if"]
CLOSERS = ["{", "}", "(", ")", "[", "]"]
PUNCTUATION = [",", ":", ":+", "=", "+=", "@", ";", "\n", "*", "<", ">", ".", "-", "~", "not"]
# number and dtype changes leave the program well-formed more often, so they come twice: more
# mutants get through the front end and exercise the passes
MUTATIONS = ["delete", "duplicate", "swap", "closer", "name", "insert", *["number", "dtype"] * 2]
DTYPE_NAME = re.compile(r"^(?:[iu]\d+|f\d+(?:e\d+m\d+)?|bf16|bool)$")


def tokens_of(source: str) -> list[str]:
    return TOKEN.findall(source)


def significant(tokens: list[str]) -> list[int]:
    """Indices of the tokens a mutation may touch (not whitespace or comments)."""
    return [i for i, t in enumerate(tokens) if t.strip() and not t.startswith("#")]


@st.composite
def mutants(draw) -> str:
    tokens = tokens_of(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 3))):
        places = significant(tokens)
        if not places:
            break
        at = draw(st.sampled_from(places))
        kind = draw(st.sampled_from(MUTATIONS))
        if kind == "delete":
            del tokens[at]
        elif kind == "duplicate":
            tokens.insert(at, tokens[at])
        elif kind == "swap":
            other = draw(st.sampled_from(places))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        elif kind == "number":
            numbers = [i for i in places if tokens[i][0].isdigit()] or [at]
            tokens[draw(st.sampled_from(numbers))] = draw(st.sampled_from(NUMBERS))
        elif kind == "dtype":
            dtypes = [i for i in places if DTYPE_NAME.match(tokens[i])] or [at]
            tokens[draw(st.sampled_from(dtypes))] = draw(st.sampled_from(DTYPES))
        elif kind == "closer":
            closers = [i for i in places if tokens[i] in CLOSERS] or [at]
            del tokens[draw(st.sampled_from(closers))]
        elif kind == "name":
            names = [i for i in places if tokens[i][0].isalpha() or tokens[i][0] == "_"] or [at]
            tokens[draw(st.sampled_from(names))] = draw(st.sampled_from(NAMES))
        else:
            tokens.insert(at, " " + draw(st.sampled_from(PUNCTUATION + NUMBERS + NAMES)) + " ")
    return "".join(tokens)


def compile_mutant(source: str):
    """Tile IR of the mutant, or None when it is a (well-reported) error."""
    try:
        program = parse_program(source, "mutant.lp")
        return specialize(program)[1]
    except LpirError as error:
        assert error.location is not None, f"LpirError without a location: {error}"
        return None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FRESH,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutants())
def test_mutated_source_compiles_or_reports_a_located_error(source: str):
    try:
        module = compile_mutant(source)
        if module is not None:
            # a pass may report an LpirError (e.g. an impossible layout), never crash
            with contextlib.suppress(LpirError):
                PassPipeline(PIPELINES["cpu"], target="cpu").run(module)
    except Exception as error:
        raise AssertionError(
            f"{type(error).__name__} on this mutant:\n{source}\n{traceback.format_exc()}"
        ) from None


def test_the_tokenizer_keeps_every_character():
    for source in SOURCES:
        assert "".join(tokens_of(source)) == source
