"""Collect every `*.lp` and `*.ir` file under tests/filecheck/ as a pytest item.

A test file carries its own commands in `RUN:` comment lines (`# RUN:` in kernel sources,
`// RUN:` in IR text) and its expectations in `CHECK:` lines, which the `filecheck` package
finds anywhere on a line, after `#` or `//` alike:

    # RUN: lpir opt %s -p canonicalize | filecheck %s
    # RUN: not lpir opt %s 2>&1 | filecheck %s --check-prefix=ERR
    # CHECK-LABEL: kernel @add

A RUN line is a pipeline of commands separated by `|`. `%s` is the test file and `%S` its
folder. `not CMD` expects CMD to fail (a non-zero exit status, e.g. an lpir diagnostic); a
Python traceback is a crash and fails the test even under `not`. `2>&1` sends a command's standard
error into the pipe. Every command of the pipeline must succeed (`pipefail`). A RUN line ending
in `\\` continues on the next RUN line.

`lpir` and `filecheck` run in this process (`lpir.cli.main` and `filecheck.main.main` with
captured streams), which keeps the suite fast; any other command runs as a subprocess with this
Python environment's bin folder first on PATH. Set LPIR_FILECHECK_SUBPROCESS=1 to run `lpir`
and `filecheck` as `python -m lpir` / `python -m filecheck` subprocesses, as a shell would.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUFFIXES = (".lp", ".ir")
RUN_LINE = re.compile(r"(?:#|//)\s*RUN:(.*)$")
IN_PROCESS = os.environ.get("LPIR_FILECHECK_SUBPROCESS", "") in ("", "0")
TRACEBACK = "Traceback (most recent call last)"


REQUIRES_LINE = re.compile(r"(?:#|//)\s*REQUIRES:(.*)$")


def host_features() -> set[str]:
    """What a `REQUIRES:` line may ask for: "avx512" (AVX-512 F and BW on this host, which
    the CPU backend's table-lookup casts use), "avx512bf16" (bf16 dot products, which decide
    the CPU's IR of bf16 dots)."""
    from lpir.backends.llvm import jit

    cpu = set(jit.host()[2].split(","))
    found = {"avx512"} if {"+avx512f", "+avx512bw"} <= cpu else set()
    return found | ({"avx512bf16"} if "+avx512bf16" in cpu else set())


def missing_requirements(text: str) -> list[str]:
    """Features a test file's `REQUIRES:` lines name that this host lacks."""
    wanted = [
        word.strip()
        for line in text.splitlines()
        if (match := REQUIRES_LINE.search(line))
        for word in match.group(1).split(",")
    ]
    have = host_features() if wanted else set()
    return [feature for feature in wanted if feature not in have]


def run_lines(text: str) -> list[str]:
    """The commands of a test file: its RUN lines, with `\\` continuations joined."""
    commands: list[str] = []
    pending = ""
    for line in text.splitlines():
        match = RUN_LINE.search(line)
        if match is None:
            continue
        part = match.group(1).strip()
        if part.endswith("\\"):
            pending += part[:-1] + " "
            continue
        commands.append((pending + part).strip())
        pending = ""
    if pending:
        commands.append(pending.strip())
    return commands


def substitute(command: str, path: Path) -> str:
    return command.replace("%S", shlex.quote(str(path.parent))).replace(
        "%s", shlex.quote(str(path))
    )


@dataclass
class Stage:
    """One command of a pipeline and what happened when it ran."""

    argv: list[str]
    negate: bool = False
    merge_stderr: bool = False
    status: int | None = None
    stdout: str = ""
    stderr: str = ""
    crashed: bool = False
    problems: list[str] = field(default_factory=list)

    def succeeded(self) -> bool:
        if self.crashed:
            return False
        return self.status != 0 if self.negate else self.status == 0


def parse_pipeline(command: str) -> list[Stage]:
    """`not lpir opt f.lp 2>&1 | filecheck f.lp` -> two stages."""
    stages: list[Stage] = []
    for words in _split_on_pipes(shlex.split(command)):
        stage = Stage([])
        if words and words[0] == "not":
            stage.negate = True
            words = words[1:]
        for word in words:
            if word == "2>&1":
                stage.merge_stderr = True
            else:
                stage.argv.append(word)
        if not stage.argv:
            raise ValueError(f"empty command in RUN line: {command!r}")
        stages.append(stage)
    return stages


def _split_on_pipes(words: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            groups.append([])
        else:
            groups[-1].append(word)
    return groups


def run_lpir_in_process(stage: Stage) -> None:
    """`lpir.cli.main(argv)` with captured output; an escaping exception is a crash."""
    from lpir.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            stage.status = main(stage.argv[1:])
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code
            stage.status = code if isinstance(code, int) else 1
        except Exception:
            stage.status = 1
            stage.crashed = True
            err.write(traceback.format_exc())
    stage.stdout, stage.stderr = out.getvalue(), err.getvalue()


def run_filecheck_in_process(stage: Stage, stdin: str) -> None:
    """`filecheck.main.main(argv)` reading `stdin`; its exit status from SystemExit."""
    import filecheck.colors
    from filecheck.main import main

    filecheck.colors.COLOR_SUPPORT = False  # plain text in failure reports
    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["filecheck", *stage.argv[1:]])
                stage.status = 0
            except SystemExit as exit_:
                code = exit_.code
                stage.status = code if isinstance(code, int) else (0 if code is None else 1)
            except Exception:
                stage.status = 1
                stage.crashed = True
                err.write(traceback.format_exc())
    finally:
        sys.stdin = saved_stdin
    stage.stdout, stage.stderr = out.getvalue(), err.getvalue()


def run_subprocess(stage: Stage, stdin: str, cwd: Path) -> None:
    argv = list(stage.argv)
    if argv[0] in ("lpir", "filecheck"):
        argv = [sys.executable, "-m", argv[0], *argv[1:]]
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    stage.status = done.returncode
    stage.stdout, stage.stderr = done.stdout, done.stderr
    stage.crashed = stage.argv[0] == "lpir" and TRACEBACK in done.stderr


def run_pipeline(command: str, cwd: Path) -> list[Stage]:
    stages = parse_pipeline(command)
    data = ""
    for stage in stages:
        if stage.argv[0] == "lpir" and IN_PROCESS:
            run_lpir_in_process(stage)
        elif stage.argv[0] == "filecheck" and IN_PROCESS:
            run_filecheck_in_process(stage, data)
        else:
            run_subprocess(stage, data, cwd)
        data = stage.stdout + (stage.stderr if stage.merge_stderr else "")
    return stages


class FileCheckFailure(Exception):
    def __init__(self, command: str, stages: list[Stage]):
        super().__init__(command)
        self.command = command
        self.stages = stages

    def report(self) -> str:
        lines = [f"RUN: {self.command}"]
        for stage in self.stages:
            verdict = "ok" if stage.succeeded() else "FAILED"
            expected = "a failure (exit != 0)" if stage.negate else "exit 0"
            if stage.crashed:
                expected += ", got a crash"
            lines.append(
                f"--- {shlex.join(stage.argv)}: exit {stage.status}, expected {expected}: {verdict}"
            )
            for name, text in (("stdout", stage.stdout), ("stderr", stage.stderr)):
                if text.strip():
                    lines.append(f"[{name}]\n{_clip(text)}")
        return "\n".join(lines)


def _clip(text: str, limit: int = 12000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more)"


class FileCheckItem(pytest.Item):
    def __init__(self, *, commands: list[str], missing: list[str], **kwargs):
        super().__init__(**kwargs)
        self.commands = commands
        self.missing = missing

    def runtest(self) -> None:
        if self.missing:
            pytest.skip(f"this host lacks {', '.join(self.missing)} (REQUIRES line)")
        if not self.commands:
            raise FileCheckFailure("(no RUN line in this file)", [])
        for command in self.commands:
            stages = run_pipeline(substitute(command, self.path), self.path.parent)
            if not all(stage.succeeded() for stage in stages):
                raise FileCheckFailure(substitute(command, self.path), stages)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, FileCheckFailure):
            return excinfo.value.report()
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"filecheck: {self.path.name}"


class FileCheckFile(pytest.File):
    def collect(self):
        text = self.path.read_text()
        yield FileCheckItem.from_parent(
            self,
            name=self.path.name,
            commands=run_lines(text),
            missing=missing_requirements(text),
        )


def pytest_collect_file(parent, file_path: Path):
    if file_path.suffix in SUFFIXES:
        return FileCheckFile.from_parent(parent, path=file_path)
    return None
