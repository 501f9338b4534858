"""The CPU benchmark scripts still run and check what they time: each on a small shape, one
round, its table's relative error against float64 within the script's own arithmetic (f32
sums: ~1e-6; matmul_wq's and rmsnorm's f16 results: half an f16 ulp, 2^-11; matmul_wq's bf16
results: half a bf16 ulp, 2^-8; attention's weights and results rounded to f16 or bf16: an ulp
of the type, 2^-10 or 2^-7). cpu_skinny.py runs with f16 and bf16 activations alike."""

from __future__ import annotations

import os
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
def test_benchmark_runs_and_checks_its_results(script, arguments, marker, tolerance, tmp_path):
    environment = {**os.environ, "LPIR_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments.split()],
        capture_output=True,
        text=True,
        cwd=BENCHMARKS,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == [marker]]
    assert rows, result.stdout
    for row in rows:
        assert float(row[-1]) <= tolerance, result.stdout  # the last column: rel err
