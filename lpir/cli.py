"""The `lpir` command line: `lpir layout`, `opt`, `run`, `emit`, `banks` and `cache`.

Each subcommand is a small function that receives the parsed arguments. Any `LpirError` is
printed as one diagnostic (no traceback) and the process exits with status 1; so does output
that cannot be written (a full disk: one line saying so). A reader that stops early (`lpir
emit f.lp | head`) ends the command quietly with status 141, as a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import math
import os
import sys
from typing import Any, TextIO

from lpir.errors import LpirError
from lpir.targets import RUN_TARGETS

# A grid prints every element (a 1024 x 1024 tile is 10 MB of text); a picture draws each as
# a labelled cell. Past these a layout is refused before either is made.
MAX_GRID_ELEMENTS = 1 << 20
MAX_PICTURE_ELEMENTS = 1 << 12
# The status of a command whose reader closed the pipe: 128 + SIGPIPE, as the shell reports a
# tool that the signal ended (Python ignores SIGPIPE, so lpir sees BrokenPipeError instead).
BROKEN_PIPE_STATUS = 141


def _cmd_layout(args: argparse.Namespace) -> int:
    from lpir import layout

    parsed = layout.parse(args.layout)
    elements = math.prod(parsed.shape)
    if elements > MAX_GRID_ELEMENTS:
        raise LpirError(
            f"layout {args.layout} covers {elements} elements, more than the {MAX_GRID_ELEMENTS} "
            "(2^20) a tile may hold",
            hint="print a tile's layout: shapes up to 2^20 elements, e.g. spatial(32, 32)",
        )
    if args.png and elements > MAX_PICTURE_ELEMENTS:
        raise LpirError(
            f"layout {args.layout} covers {elements} elements, more than a picture can show "
            f"({MAX_PICTURE_ELEMENTS}, e.g. 64 x 64)",
            hint="draw a smaller layout, or leave out --png to print the grid",
        )
    print(layout.render_grid(parsed))
    if args.png:
        try:
            layout.save_png(parsed, args.png)
        except OSError as error:
            raise LpirError(
                f"cannot write {args.png}: {error.strerror or error}",
                hint=_write_hint(error),
            ) from None
        print(f"wrote {args.png}")
    return 0


def _write_hint(error: OSError) -> str:
    """What to do about a file that could not be written, by its cause."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk (or your quota) is full: free some space, or write to another disk"
    if error.errno == errno.EROFS:
        return "the file system is read-only: write to another one"
    return "give a path in a folder that exists and that you may write to"


def _definitions(items: list[str]) -> dict[str, object]:
    """`-D N=4096 -D WT=u3` -> {"N": 4096, "WT": "u3"}."""
    from lpir.language.syntax import integer_of_text

    params: dict[str, object] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LpirError(f"bad definition {item!r}", hint="write -D NAME=VALUE, e.g. -D BK=64")
        name, value = name.strip(), value.strip()
        if name in params:
            raise LpirError(
                f"-D {name} is given twice ({name}={params[name]} and {name}={value})",
                hint=f"give {name} one value",
            )
        number = integer_of_text(value)  # as the source writes integers: 010 is ten
        params[name] = value if number is None else number
    return params


def _scalar_values(items: list[str] | None) -> dict[str, int | float | bool]:
    """`--arg m=37 --arg eps=1e-5` -> {"m": 37, "eps": 1e-05}: ints, floats, true/false."""
    values: dict[str, int | float | bool] = {}
    for item in items or []:
        name, sep, text = (part.strip() for part in item.partition("="))
        if not sep or not name or name in values:
            twice = f"--arg {name} is given twice" if name in values else f"bad --arg {item!r}"
            raise LpirError(twice, hint="write --arg NAME=VALUE once per argument, e.g. --arg m=37")
        if text in ("true", "false"):
            values[name] = text == "true"
            continue
        values[name] = _number(name, text)
    return values


def _number(name: str, text: str) -> int | float:
    """An --arg value: an integer as the source writes one (010 is ten, 0x.., 0b..), or a
    float (no digit separators, as in the source)."""
    from lpir.language.syntax import integer_of_text

    number = integer_of_text(text)
    if number is not None:
        return number
    if "_" not in text:
        with contextlib.suppress(ValueError):
            return float(text)
    raise LpirError(
        f"--arg {name}={text}: {text!r} is not a number",
        hint="give an integer (decimal, 0x... or 0b...), a float, true or false",
    )


def _seed(text: str) -> int:
    """An argparse type: a numpy seed, an integer of at least 0."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: give an integer") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}: seeds are 0 or more")
    return seed


def _pass_names(passes: str | None) -> str:
    """The `-p` text: absent, no passes; given, it must name at least one (`-p ""`, from an
    unset shell variable, would otherwise print the IR as parsed as if that were asked)."""
    if passes is None:
        return ""
    if not any(name.strip() for name in passes.split(",")):
        raise LpirError(
            f"-p {passes!r} names no pass",
            hint="name the passes, separated by commas, e.g. -p canonicalize,cse; leave out -p "
            "to print the IR as parsed (with --print-after-all: after each pass of the target's "
            "pipeline)",
        )
    return passes


def _cmd_opt(args: argparse.Namespace) -> int:
    from lpir.tools import optimize

    text = optimize(
        args.file,
        passes=_pass_names(args.passes),
        target=args.target,
        params=_definitions(args.define),
        kernel=args.kernel,
        print_after_all=args.print_after_all,
        verify=not args.no_verify,
    )
    sys.stdout.write(text)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from lpir.runner import run_file

    ok = run_file(
        args.file,
        target=args.target,
        params=_definitions(args.define),
        kernel=args.kernel,
        check=args.check,
        bench=args.bench,
        seed=args.seed,
        scalars=_scalar_values(args.arg),
    )
    return 0 if ok else 1


def _cmd_emit(args: argparse.Namespace) -> int:
    from lpir.tools import emit

    sys.stdout.write(
        emit(args.file, args.target, args.what, _definitions(args.define), args.kernel, args.arch)
    )
    return 0


def _cmd_banks(args: argparse.Namespace) -> int:
    from lpir.tools import bank_conflicts

    sys.stdout.write(
        bank_conflicts(args.file, _definitions(args.define), args.kernel, args.seed, args.blocks)
    )
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from lpir.runtime import cache

    if args.clear:
        print(f"cleared {cache.directory()}: {_mib(cache.clear())} freed")
        return 0
    usage = cache.usage()
    print(f"{cache.directory()}")
    for kind, (files, nbytes) in usage.items():
        print(f"  {kind:<10} {files:>7} files {_mib(nbytes):>12}")
    total = sum(nbytes for _, nbytes in usage.values())
    print(f"  {'total':<10} {sum(f for f, _ in usage.values()):>7} files {_mib(total):>12}")
    return 0


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _add_kernel_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("file", help="a kernel source (.lp) or IR text (.ir)")
    command.add_argument(
        "-D",
        dest="define",
        action="append",
        metavar="NAME=VALUE",
        help="set a parameter (kernel sources only: IR text is already specialized)",
    )
    command.add_argument(
        "--kernel",
        help="which kernel of the file (of a file of several: lpir opt takes all, the others "
        "need --kernel)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpir", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    layout_cmd = commands.add_parser("layout", help="print a register layout as a grid")
    layout_cmd.add_argument("layout", help='a layout, e.g. "local(2,1).spatial(8,4).local(1,2)"')
    layout_cmd.add_argument("--png", metavar="FILE", help="also draw it into a PNG file")
    layout_cmd.set_defaults(handler=_cmd_layout)

    opt = commands.add_parser("opt", help="run passes and print the IR")
    _add_kernel_options(opt)
    opt.add_argument(
        "-p",
        "--passes",
        default=None,
        help="comma-separated pass names (without -p: print the IR as parsed, or with "
        "--print-after-all run the target's whole pipeline)",
    )
    opt.add_argument("--target", default="cpu", choices=["cpu", "cuda", "interp"])
    opt.add_argument("--print-after-all", action="store_true", help="print the IR after each")
    opt.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the verifier between passes (the input is verified always)",
    )
    opt.set_defaults(handler=_cmd_opt)

    run = commands.add_parser("run", help="run a kernel on random inputs")
    _add_kernel_options(run)
    run.add_argument(
        "--target",
        default="cpu",
        choices=list(RUN_TARGETS),
        help="; ".join(f"{name}: {what}" for name, what in RUN_TARGETS.items()),
    )
    run.add_argument("--check", action="store_true", help="compare with the interpreter and numpy")
    run.add_argument(
        "--bench",
        action="store_true",
        help="time it (and a companion's reference, which checks results and is no "
        "performance peer)",
    )
    run.add_argument("--seed", type=_seed, default=0, help="of the random inputs (0 or more)")
    run.add_argument(
        "-a",
        "--arg",
        action="append",
        metavar="NAME=VALUE",
        help="a scalar argument's value in the random inputs (otherwise integers are 3, floats "
        "1.5, bools true); a first dimension read at run time has as many rows",
    )
    run.set_defaults(handler=_cmd_run)

    emit_cmd = commands.add_parser("emit", help="print generated code")
    _add_kernel_options(emit_cmd)
    emit_cmd.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    emit_cmd.add_argument(
        "--what",
        default=None,
        choices=["llvm", "asm", "cuda", "ptx", "sass", "ir"],
        help="llvm/asm for cpu, cuda/ptx/sass for cuda, ir: the final thread IR",
    )
    emit_cmd.add_argument(
        "--arch",
        default=None,
        help="GPU architecture of ptx/sass, e.g. sm_90 (default: this machine's GPU, else "
        "$LPIR_CUDA_ARCH or sm_80); no GPU needed",
    )
    emit_cmd.set_defaults(handler=_cmd_emit)

    banks = commands.add_parser(
        "banks", help="count the shared-memory bank conflicts of the CUDA code (no GPU)"
    )
    _add_kernel_options(banks)
    banks.add_argument("--blocks", type=int, default=1, help="how many blocks to run")
    banks.add_argument("--seed", type=_seed, default=0, help="of the random inputs (0 or more)")
    banks.set_defaults(handler=_cmd_banks)

    cache_cmd = commands.add_parser(
        "cache", help="show what lpir's code cache holds on disk (it is never evicted)"
    )
    cache_cmd.add_argument("--clear", action="store_true", help="delete every cached entry")
    cache_cmd.set_defaults(handler=_cmd_cache)
    return parser


class _OutputError(Exception):
    """Standard output could not be written (not a pipe closed by its reader)."""

    def __init__(self, error: OSError):
        super().__init__(error.strerror or str(error))


class _GuardedOutput:
    """Standard output whose write errors are told apart from the command's own OSErrors:
    a closed pipe stays BrokenPipeError, any other becomes `_OutputError`."""

    def __init__(self, stream: TextIO | io.TextIOBase):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise _OutputError(error) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise _OutputError(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _NoOutput(io.TextIOBase):
    """Standard output when there is none (`lpir ... >&-`: sys.stdout is None): what is
    written is discarded, as print() discards it."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def _discard_unwritten(stream: TextIO) -> None:
    """Point `stream`'s file at /dev/null, so that Python's flush at exit neither fails again
    nor prints "Exception ignored" (a stream with no file descriptor is left as it is)."""
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def _report(text: str) -> None:
    """Print a diagnostic on standard error, if there is one (`2>&-` leaves none)."""
    if sys.stderr is not None:
        print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout if stdout is not None else _NoOutput())
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            # --help (or a usage error, on stderr): argparse ignores OSErrors of its own writes,
            # so the help that did not reach a full disk must be flushed here to be noticed.
            sys.stdout.flush()
            raise
        status = args.handler(args)
        sys.stdout.flush()
        return status
    except LpirError as error:
        _report(str(error))
        return 1
    except BrokenPipeError:
        _discard_unwritten(stdout)
        return BROKEN_PIPE_STATUS
    except _OutputError as error:
        _discard_unwritten(stdout)
        _report(f"error: cannot write to standard output: {error}")
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
