"""The CPU benchmark scripts still run and check what they time: each on a small shape, one
round, its table's relative error against float64 within the script's own arithmetic (f32
sums: ~1e-6; matmul_wq's and rmsnorm's f16 results: half an f16 ulp, 2^-11; matmul_wq's bf16
results: half a bf16 ulp, 2^-8; attention's weights and results rounded to f16 or bf16: an ulp
of the type, 2^-10 or 2^-7; greedy's token ids: exact). cpu_skinny.py runs with f16 and bf16
activations alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

ATTENTION = "--heads 2 --lengths 100 --depths 32 --causal 0,1 --repeat 1 --tiles 64x32"
# (script, arguments, the first word of the table's rows, tolerance)
RUNS = [
    ("cpu_gemv.py", "--shapes 256x512 --weights u3 --repeat 1", "u3", 1e-5),
    ("cpu_skinny.py", "--rows 5 --shapes 256x256 --weights u3 --repeat 1 --bn 64", "u3", 1e-5),
    (
        "cpu_matmul.py",
        "--rows 70 --shapes 192x256 --weights u3 --repeat 1 --tiles 64x64x32/64 --activations f16",
        "u3",
        2**-11,
    ),
    (
        "cpu_matmul.py",
        "--rows 70 --shapes 192x256 --weights u3 --repeat 1 --tiles 64x64x32/64 --activations bf16",
        "u3",
        2**-8,
    ),
    ("cpu_norm.py", "--rows 37 --widths 768 --repeat 1 --tiles 4/128,1/256", "37", 2**-11),
    # cumsum's f32 sums in another order than float64's; the argsort row's last column is the
    # fraction of positions that differ from numpy's stable order
    ("cpu_scans.py", "--rows 37 --widths 512 --sorted 32 --repeat 1", "cumsum", 1e-5),
    ("cpu_scans.py", "--rows 37 --widths 512 --sorted 32 --repeat 1", "argsort", 0.0),
    # the exact GELU through erf: within 2 epsilons of T of float64's (erf within an ulp of
    # f32, and T's rounding)
    ("cpu_gelu.py", "--rows 37 --widths 1000 --repeat 1 --dtypes f32,bf16", "37", 2),
    # the same for elementwise math (vector exp, sin and cos within an ulp or two of f32),
    # with the fold-threads budget compared
    *(
        (
            "cpu_math.py",
            f"--rows 37 --widths 1000 --repeat 1 --dtypes f32,bf16 --compare-budget 512 "
            f"--functions {function}",
            function,
            2,
        )
        for function in ("sincos", "gelu_tanh")
    ),
    # positions: the last column counts the rows whose id differs from numpy's
    # NF4's codebook permutes: exact lookups, f32 sums (~1e-6)
    ("cpu_nf4.py", "--shapes 256x512 --repeat 1", "nf4", 1e-5),
    # GPTQ: exact codes, f16 scales widened exactly, f32 sums (~1e-6)
    ("cpu_gptq.py", "--shapes 256x512 --repeat 1 --tiles 64,32", "gptq", 1e-5),
    # per-group zeros (u4, f16, f32): exact codes and zeros, f32 sums (~1e-6)
    ("cpu_group_zeros.py", "--shapes 256x300 --repeat 1", "group", 1e-5),
    ("cpu_greedy.py", "--rows 3 --vocabularies 1000 --repeat 1 --tiles 256/32,128/1", "3", 0),
    # decode attention over a u4 KV cache: f32 softmax and sums against float64 (~1e-6)
    *(
        (
            "cpu_kv_u4.py",
            "--batch 1 --heads 2 --kv-heads 1 --depth 64 --context 64 --repeat 1",
            cache,
            1e-5,
        )
        for cache in ("u4", "u8")
    ),
    # the weights and the output rounded to T: an ulp of T and a little
    ("cpu_attention.py", f"{ATTENTION} --dtypes bf16", "bf16", 2**-7),
    ("cpu_attention.py", f"{ATTENTION} --dtypes f16", "f16", 2**-10),
]


@pytest.mark.parametrize(
    ("script", "arguments", "marker", "tolerance"),
    RUNS,
    ids=[
        f"{r[0]}-{r[1].split()[-1]}" if "--activations" in r[1] or "--dtypes" in r[1] else r[0]
        for r in RUNS
    ],
)
def test_benchmark_runs_and_checks_its_results(script, arguments, marker, tolerance):
    output = _run_once(script, arguments)
    rows = [line.split() for line in output.splitlines() if line.split()[:1] == [marker]]
    assert rows, output
    for row in rows:
        assert float(row[-1]) <= tolerance, output  # the last column: rel err


_OUTPUTS: dict[tuple[str, str], str] = {}


def _run_once(script: str, arguments: str) -> str:
    """What `script` prints with `arguments`, run once for the rows of every marker (on the
    session's cache: kernels other tests compiled are not compiled again)."""
    if (script, arguments) not in _OUTPUTS:
        _OUTPUTS[script, arguments] = _benchmark_output(script, arguments.split())
    return _OUTPUTS[script, arguments]


def _benchmark_output(script: str, arguments: list[str], cache: Path | None = None) -> str:
    """What benchmarks/`script` prints, run with `arguments` (on `cache`, else the session's
    cache); it must end well."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        cwd=BENCHMARKS,
        env={**os.environ, **({"LPIR_CACHE_DIR": str(cache)} if cache else {})},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _perf_can_sample() -> bool:
    if shutil.which("perf") is None or shutil.which("objdump") is None:
        return False
    probe = subprocess.run(
        ["perf", "record", "-e", "cpu-clock", "-q", "-o", os.devnull, "--", "true"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _perf_can_sample(), reason="perf cannot sample here (or no objdump)")
def test_profile_maps_samples_onto_the_kernels_blocks(tmp_path):
    """cpu_profile.py runs gemv_wq under perf and attributes the kernel's samples to blocks of
    its run function: most of them to one block (its loop), which holds the multiplies (among
    every kind of instruction it has: on AVX2 hosts the unpacking outnumbers them)."""
    environment = {**os.environ, "LPIR_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cpu_profile.py"), "../examples/gemv_wq.lp",
         "--seconds", "1", "--top", "3", "--mix", "100"],
        capture_output=True, text=True, cwd=BENCHMARKS, env=environment, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if "%" in line]
    assert rows, result.stdout
    shares = [float(row[0].rstrip("%")) for row in rows]
    assert shares == sorted(shares, reverse=True) and shares[0] > 50, result.stdout
    assert "fmadd" in " ".join(rows[0]) or "mul" in " ".join(rows[0]), result.stdout


def test_signed_fields_benchmark_runs_and_checks_its_results(tmp_path):
    """cpu_signed_fields.py asserts each kernel's result against numpy's before it times it (an
    AssertionError fails the run); a small shape, one round."""
    arguments = ["--bits", "3,6", "--casts", "i8,f16", "-N", "64", "-K", "512", "--rounds", "1"]
    output = _benchmark_output("cpu_signed_fields.py", arguments, tmp_path)
    rows = [line for line in output.splitlines() if line.startswith("cast<")]
    assert len(rows) == 4 and all("i/u" in row for row in rows), output


def test_packed_store_benchmark_runs_and_checks_its_results(tmp_path):
    """cpu_packed_store.py asserts that the u4 stores and the u8 ones packed by hand write the
    same bytes before it prints a row (an AssertionError fails the run)."""
    arguments = ["--rows", "64", "--tokens", "3", "--repeat", "1"]
    output = _benchmark_output("cpu_packed_store.py", arguments, tmp_path)
    rows = [line for line in output.splitlines() if line.startswith(("store", "kv_append"))]
    assert len(rows) == 2, output
