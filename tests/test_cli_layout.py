"""`lpir layout`: prints the grid, writes a PNG, and reports bad layouts without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lpir.cli import main

ACCUMULATOR = "local(2,1).spatial(8,4).local(1,2)"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lpir", "layout", *args], capture_output=True, text=True, timeout=60
    )


def parse_grid(text: str) -> dict[tuple[int, int], tuple[int, int]]:
    header, *rows = [line for line in text.splitlines() if line.strip()]
    columns = [int(c) for c in header.split()]
    cells = {}
    for line in rows:
        row, *values = line.split()
        for column, value in zip(columns, values, strict=True):
            thread, slot = value.split(":")
            cells[int(row), column] = (int(thread), int(slot))
    return cells


def check_accumulator_grid(text: str) -> None:
    cells = parse_grid(text)
    assert {row for row, _ in cells} == set(range(16))
    assert {column for _, column in cells} == set(range(8))
    assert cells[9, 3] == (5, 3)
    assert cells[0, 0] == (0, 0)


def test_subprocess_prints_the_grid():
    result = run_cli(ACCUMULATOR)
    assert result.returncode == 0, result.stderr
    check_accumulator_grid(result.stdout)


def test_main_prints_the_grid(capsys):
    assert main(["layout", ACCUMULATOR]) == 0
    check_accumulator_grid(capsys.readouterr().out)


def test_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "mma.png"
    result = run_cli(ACCUMULATOR, "--png", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {path}" in result.stdout


def test_bad_layout_subprocess():
    result = run_cli("local(2,1).spatal(8,4)")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "<layout>:1:12: error: unknown layout primitive 'spatal'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_layout_main(capsys):
    assert main(["layout", "local(2,"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("<layout>:1:9: error:")
    assert "Traceback" not in captured.err
