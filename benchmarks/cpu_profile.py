"""Where a CPU kernel spends its time, block by block of its machine code.

    python benchmarks/cpu_profile.py examples/matmul_wq.lp -D T=bf16 -D M=256 -D N=4096 -D K=4096
    python benchmarks/cpu_profile.py examples/gemv_wq.lp --seconds 10 --top 5

Runs the kernel on `lpir run`'s inputs (the example's companion script's, else random ones)
again and again for `--seconds` under `perf record -e cpu-clock` (timer sampling: no hardware
counters needed, which virtual machines often lack), maps each sample onto the compiled object
code (`objdump`) and prints the basic blocks of the kernel's run function that took the most
samples: their share of the kernel's samples, their length in instructions and their commonest
instructions. A loop's body is one block or a few: the hot loop and its instruction mix show
what bounds it (the dot's instructions, the decoding of weights, a conversion through shared
memory). Samples land on the instruction after the one that waited (skid), so read blocks,
not single instructions. Needs `perf` (and a `kernel.perf_event_paranoid` of 2 or less) and
`objdump`; the kernel runs on every core as usual.
"""

from __future__ import annotations

import argparse
import collections
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import lpir
from lpir.cli import _definitions
from lpir.runner import load_companion, random_arguments

CHILD = "LPIR_PROFILE_CHILD"  # set in the process perf runs: it runs the kernel


def run_kernel(path: str, params: dict, seconds: float, folder: Path) -> None:
    """Compile and run the kernel for `seconds`; leave its object code and load address in
    `folder` for the parent."""
    kernel = lpir.compile(path, target="cpu", **params)
    spec = kernel.specialize(None)
    companion = load_companion(path)
    rng = np.random.default_rng(0)
    if companion is not None:
        arguments = companion.make_inputs(spec.params, rng)
    else:
        arguments = random_arguments(spec, rng)
    pristine = copy.deepcopy(arguments)
    kernel(*arguments)
    compiled = spec.compiled
    (folder / "kernel.o").write_bytes(compiled.executable.object_code)
    (folder / "address").write_text(str(compiled.address))
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        kernel(*pristine)
        calls += 1
    (folder / "calls").write_text(f"{calls} {time.perf_counter() - start}")


def instructions(object_file: Path) -> list[tuple[int, str]]:
    """(offset from the run function's start, instruction text) of the run function."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(object_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found, inside, start = [], False, 0
    for line in listing.splitlines():
        symbol = re.match(r"^([0-9a-f]+) <(.+)>:", line)
        if symbol:
            inside = symbol.group(2) == "lpir_run"
            start = int(symbol.group(1), 16)
            continue
        instruction = re.match(r"\s+([0-9a-f]+):\s+(\S.*)", line)
        if inside and instruction:
            found.append((int(instruction.group(1), 16) - start, instruction.group(2)))
    return found


def basic_blocks(code: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """The instructions cut into basic blocks: at jump targets and after jumps."""
    targets = set()
    for _, text in code:
        jump = re.match(r"j\w+\s+([0-9a-f]+)", text)
        if jump:
            targets.add(int(jump.group(1), 16))
    blocks: list[list[tuple[int, str]]] = []
    for offset, text in code:
        if not blocks or offset in targets or blocks[-1][-1][1].startswith("j"):
            blocks.append([])
        blocks[-1].append((offset, text))
    return blocks


def report(code, samples: collections.Counter, top: int, mix_size: int = 6) -> None:
    total = sum(samples.values())
    if not total:
        print("no samples in the kernel (too short a run, or perf could not sample it)")
        return
    rows = []
    for block in basic_blocks(code):
        count = sum(samples.get(offset, 0) for offset, _ in block)
        mix = collections.Counter(text.split()[0] for _, text in block)
        rows.append((count, block[0][0], len(block), mix))
    print(f"{total} samples in the kernel's run function")
    print(f"  {'share':>6} {'offset':>7} {'length':>6}  commonest instructions")
    for count, offset, length, mix in sorted(rows, reverse=True)[:top]:
        common = ", ".join(f"{n} {name}" for name, n in mix.most_common(mix_size))
        print(f"  {100 * count / total:5.1f}% {offset:7x} {length:6d}  {common}")


def profile(args) -> int:
    for tool in ("perf", "objdump"):
        if shutil.which(tool) is None:
            print(f"cpu_profile.py needs `{tool}`, which is not installed", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        environment = {**os.environ, CHILD: str(folder)}
        record = [
            "perf", "record", "-e", "cpu-clock", "-F", str(args.frequency), "-q",
            "-o", str(folder / "perf.data"), "--", sys.executable, *sys.argv,
        ]  # fmt: skip
        done = subprocess.run(record, env=environment, capture_output=True, text=True)
        if done.returncode != 0 or not (folder / "calls").exists():
            print(f"perf record failed:\n{done.stderr.strip()}", file=sys.stderr)
            return 1
        ips = subprocess.run(
            ["perf", "script", "-F", "ip", "-i", str(folder / "perf.data")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        code = instructions(folder / "kernel.o")
        address = int((folder / "address").read_text())
        end = code[-1][0] + 16 if code else 0
        samples = collections.Counter(
            int(ip, 16) - address for ip in ips if 0 <= int(ip, 16) - address < end
        )
        calls, seconds = (float(v) for v in (folder / "calls").read_text().split())
        print(f"{args.file}: {calls:.0f} calls, {1e3 * seconds / calls:.3f} ms each")
        report(code, samples, args.top, args.mix)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a kernel source (.lp)")
    parser.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run the kernel")
    parser.add_argument("--top", type=int, default=8, help="blocks to show")
    parser.add_argument(
        "--mix", type=int, default=6, help="commonest instructions to name for each block"
    )
    parser.add_argument("--frequency", type=int, default=4000, help="samples a second")
    args = parser.parse_args()
    if CHILD in os.environ:
        run_kernel(args.file, _definitions(args.define), args.seconds, Path(os.environ[CHILD]))
        return 0
    return profile(args)


if __name__ == "__main__":
    sys.exit(main())
