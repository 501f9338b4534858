"""Benchmark scripts run from any folder: they find the examples through their own path.

benchmarks/launch_overhead.py read "examples/gemv_wq.lp" relative to the working folder, so
it ran only from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
LAYOUTS = ("head-major", "token-major")


def run_script(name: str, options: str, folder: Path) -> subprocess.CompletedProcess:
    """benchmarks/`name` run with `options` (split at spaces) from `folder`."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *options.split()],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )


def test_launch_overhead_runs_outside_the_repository(tmp_path):
    result = run_script("launch_overhead.py", "--repeat 3", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "gemv_wq kernel(...) on the same arrays (checks, then run()):" in result.stdout


def test_compile_latency_runs_outside_the_repository(tmp_path):
    result = run_script("compile_latency.py", "--rounds 1 --examples vector_add", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("vector_add")


def test_cpu_column_packed_runs_outside_the_repository(tmp_path):
    options = "--shapes 256x256 --tiles 64x128 --repeat 1"
    result = run_script("cpu_column_packed.py", options, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    errors = {row[0]: float(row[-1]) for row in rows if row and row[0] in ("column", "row")}
    assert set(errors) == {"column", "row"}, result.stdout
    assert max(errors.values()) < 1e-5, result.stdout  # both agree with numpy's y


def test_cpu_decode_attention_runs_outside_the_repository(tmp_path):
    """Both cache layouts (the example's head-major pages and the token-major kernel kept in
    the script) hold the same values, and every contender in each agrees with float64."""
    options = "--batch 3 --heads 4 --kv-heads 4,2 --depth 32 --max-pages 4 --min-context 1"
    options += " --configs 1x16,64x32 --repeat 1 --layouts head-major,token-major"
    result = run_script("cpu_decode_attention.py", options, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    contenders = [row for row in rows if row and row[0] in ("1x16", "64x32", "numpy")]
    # both configurations and numpy, in both layouts, at HKV = 4 and 2
    assert sorted({(row[0], row[1]) for row in contenders}) == [
        (name, layout) for name in ("1x16", "64x32", "numpy") for layout in LAYOUTS
    ], result.stdout
    assert len(contenders) == 12, result.stdout
    assert max(float(row[-1]) for row in contenders) < 1e-5, result.stdout
    assert result.stdout.count("head-major / token-major: 1x16") == 2, result.stdout


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("--heads 6 --kv-heads 4", "--heads 6 must be a multiple of each --kv-heads (4)"),
        ("--min-context 100 --max-pages 2 --page 16", "--min-context must be 1 to"),
        ("--layouts rows", "--layouts: 'rows' is none of head-major, token-major"),
    ],
)
def test_cpu_decode_attention_refuses_sizes_that_do_not_fit(options, words, tmp_path):
    result = run_script("cpu_decode_attention.py", options, tmp_path)
    assert result.returncode == 2 and words in result.stderr, result.stderr
