"""A file of several kernels: `lpir run`, `lpir emit` and `lpir banks` (and `lpir.compile`) ask
which one with the same words for a source (.lp) as for IR text; `lpir opt` prints them all.

Before, a source's first kernel ran, was checked and timed without a word, while IR text of
several kernels asked for --kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lpir
from lpir.cli import main

TWO_KERNELS = """
kernel double[N = 256](x: global f32[N], y: global f32[N]) blocks(cdiv(N, 128)) threads(128) {
    i = block.x * 128
    store(y[i :+ 128], load(x[i :+ 128]) * 2.0)
}

kernel negate[N = 256, BN = 128](x: global f32[N], y: global f32[N])
    blocks(cdiv(N, BN)) threads(64) {
    i = block.x * BN
    store(y[i :+ BN], -load(x[i :+ BN]))
}
"""

ASKS = (
    "error: two.{suffix} holds 2 kernels (double, negate)\n"
    "hint: choose one with --kernel NAME (kernel=NAME)\n"
)


@pytest.fixture
def sources(tmp_path):
    """two.lp, and two.ir: the same kernels as IR text."""
    source = tmp_path / "two.lp"
    source.write_text(TWO_KERNELS)
    ir = tmp_path / "two.ir"
    ir.write_text(
        "".join(
            lpir.compile(source, target="interp", kernel=k).ir("source")
            for k in ("double", "negate")
        )
    )
    return source, ir


@pytest.mark.parametrize(
    "command", [["run", "--check"], ["emit", "--what", "ir"], ["banks"]], ids=lambda c: c[0]
)
def test_a_file_of_several_kernels_asks_which_alike_for_source_and_ir(sources, command, capsys):
    for path in sources:
        assert main([*command, str(path)]) == 1
        assert capsys.readouterr().err == ASKS.format(suffix=path.suffix[1:])


def test_the_chosen_kernel_runs(sources, capsys):
    for path in sources:
        assert main(["run", str(path), "--kernel", "negate", "--check"]) == 0
        assert capsys.readouterr().out.startswith("negate[")


def test_lpir_opt_prints_every_kernel_of_a_source_as_of_ir_text(sources, capsys):
    source, ir = sources
    assert main(["opt", str(source)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("kernel @") == 2
    assert main(["opt", str(ir)]) == 0
    assert capsys.readouterr().out == printed


def test_a_definition_applies_to_the_kernels_that_declare_it(sources, capsys):
    assert main(["opt", str(sources[0]), "-D", "BN=64"]) == 0
    printed = capsys.readouterr().out
    assert "@double[N = 256]" in printed
    assert "@negate[N = 256, BN = 64]" in printed
    assert main(["opt", str(sources[0]), "-D", "BK=64"]) == 1
    assert "no kernel of two.lp (double, negate) has a parameter 'BK'" in capsys.readouterr().err


def test_lpir_compile_of_a_source_of_several_kernels_asks_which():
    with pytest.raises(lpir.LpirError, match=r"the source holds 2 kernels \(double, negate\)"):
        lpir.compile(TWO_KERNELS, target="interp")
    assert lpir.compile(TWO_KERNELS, target="interp", kernel="negate").name == "negate"


# ---- output that cannot be written, a reader that stops early, -p naming no pass ------------
def lpir_command(*words: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lpir.cli", *words], stderr=subprocess.PIPE, text=True, **options
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["emit", "--what", "llvm"], ["opt"], ["run"]])
def test_output_to_a_full_device_is_one_line_and_a_failure(sources, command):
    """It was an OSError traceback (ENOSPC) out of lpir/cli.py."""
    with open("/dev/full", "w") as full:
        process = lpir_command(
            command[0], str(sources[0]), "--kernel", "double", *command[1:], stdout=full
        )
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err == "error: cannot write to standard output: No space left on device\n"


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """A closed pipe exited 1 (or 120 with "Exception ignored" where the last flush met it);
    it is now the status of a tool that SIGPIPE ended, and nothing on stderr."""
    process = lpir_command("layout", "local(1024, 1024)", stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.read(16)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (141, "")


@pytest.mark.parametrize("passes", ["", ",", " , "])
def test_lpir_opt_with_a_pass_list_that_names_no_pass(sources, passes, capsys):
    """`-p ""` (an unset shell variable) silently printed the IR as parsed."""
    assert main(["opt", str(sources[0]), "-p", passes]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: -p {passes!r} names no pass\nhint: name the passes"), err
    assert main(["opt", str(sources[0])]) == 0  # without -p: the IR as parsed
    assert capsys.readouterr().out.count("kernel @") == 2


def closed_stdout() -> None:
    os.close(1)


@pytest.mark.parametrize(
    "command",
    [
        ["run", "examples/vector_add.lp", "--check"],
        ["emit", "examples/vector_add.lp"],
        ["opt", "examples/vector_add.lp"],
        ["banks", "examples/vector_add.lp"],
        ["layout", "spatial(4, 4)"],
        ["--help"],
    ],
)
def test_a_closed_standard_output_discards_the_output(command):
    """`lpir run ... >&-` leaves sys.stdout None: an AttributeError traceback (lpir run since
    ac9b4d1, lpir emit before it); now the command runs and its output goes nowhere."""
    process = lpir_command(*command, preexec_fn=closed_stdout)
    _, err = process.communicate(timeout=300)
    assert (process.returncode, err) == (0, "")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["--help"], ["opt", "--help"]])
def test_help_to_a_full_device_is_a_failure(command):
    """argparse ignores its write errors: `lpir --help > /dev/full` exited 0 silently."""
    with open("/dev/full", "w") as full:
        process = lpir_command(*command, stdout=full)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_picture_on_a_full_disk_says_the_disk_is_full(capsys):
    """The hint was 'give a path in a folder that exists', whatever the error."""
    pytest.importorskip("matplotlib", reason="pictures need the plot extra")
    assert main(["layout", "spatial(4, 4)", "--png", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert "error: cannot write /dev/full: No space left on device" in err
    assert "hint: the disk (or your quota) is full" in err and "folder that exists" not in err


def test_definitions_read_integers_as_the_source_writes_them(capsys):
    """`-D N=010` was refused (Python's int(text, 0) has no leading zeros) though 010 in a
    kernel is ten, and `-D N=1_000` was accepted though the source has no digit separators
    (found by a helper documenting literals)."""
    path = str(Path(__file__).resolve().parent.parent / "examples" / "vector_add.lp")
    assert main(["run", path, "--target", "interp", "-D", "N=010", "-D", "BLOCK=0x10"]) == 0
    assert "N=10, BLOCK=16" in capsys.readouterr().out
    assert main(["run", path, "--target", "interp", "-D", "N=1_000"]) == 1
    assert "takes an integer, not '1_000'" in capsys.readouterr().err


def test_the_top_level_help_names_every_command(capsys):
    """`lpir --help` said 'The `lpir` command line: lpir layout, ..., lpir banks', leaving out
    `lpir cache`."""
    import re

    from lpir.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    commands = re.search(r"\{([a-z,]+)\}", out)
    assert commands is not None
    description = " ".join(out.split("\n\n")[1].split())
    for command in commands.group(1).split(","):
        assert re.search(rf"`(lpir )?{command}`", description), (command, description)
