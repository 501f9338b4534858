"""mypy finds no type error in lpir, lpir.passes and lpir.backends.

passes/ and backends/ install as `lpir.passes` and `lpir.backends` (pyproject's package-dir),
a mapping mypy cannot follow from the source tree. The test therefore checks a tree of links
that has the installed shape: lpir/ holds links to every entry of the source's lpir/, plus
`passes` and `backends` linked to the top-level folders. Errors are reported with the paths
of the source tree. Settings: [tool.mypy] in pyproject.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install -e '.[test]'")


def installed_shape(tree: Path) -> Path:
    """`tree`/lpir as lpir installs: the package with passes/ and backends/ inside it."""
    package = tree / "lpir"
    package.mkdir()
    for entry in (ROOT / "lpir").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in ("passes", "backends"):
        (package / folder).symlink_to(ROOT / folder)
    return package


def source_path(line: str) -> str:
    """A mypy message with the link tree's path replaced by the source tree's."""
    for folder in ("passes", "backends"):
        line = line.replace(f"lpir/{folder}/", f"{folder}/")
    return line


def test_mypy_finds_no_type_error(tmp_path):
    installed_shape(tmp_path)
    command = [sys.executable, "-m", "mypy", "-p", "lpir"]
    command += ["--config-file", str(ROOT / "pyproject.toml")]
    command += ["--cache-dir", str(tmp_path / "mypy-cache")]
    environment = {**os.environ, "MYPYPATH": ""}
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=600
    )
    report = "\n".join(source_path(line) for line in run.stdout.splitlines())
    assert run.returncode == 0, f"mypy found type errors:\n{report}\n{run.stderr}"
