"""Compile latency: what a new process pays before a kernel's first call can run.

    python benchmarks/compile_latency.py                 # a few examples, 3 rounds
    python benchmarks/compile_latency.py --rounds 5 --examples gemv_wq attention

Each measurement is a fresh Python process (as a serving process, a CLI command or a script
starts) that imports lpir, compiles one example for the CPU and specializes it (front end,
passes, machine code), timed from inside the process: with an empty cache folder (cold: LLVM
compiles) and again with the machine code in the cache (warm: the front end and the passes
still run; parsing a cached final IR back took as long as the passes, so it is not cached).
Prints the medians of `--rounds` processes, and of `import lpir`. The machine's load changes
every number: compare the columns of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import time
start = time.perf_counter()
import lpir
imported = time.perf_counter()
kernel = lpir.compile({path!r}, target="cpu")
kernel.specialize(None)
done = time.perf_counter()
print(imported - start, done - imported)
"""


def child_times(example: str, cache: str) -> tuple[float, float]:
    """(import seconds, compile seconds) of one fresh process."""
    code = CHILD.format(path=str(ROOT / "examples" / f"{example}.lp"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, LPIR_CACHE_DIR=cache),
        capture_output=True,
        text=True,
        check=True,
    )
    imported, compiled = done.stdout.split()
    return float(imported), float(compiled)


def medians(example: str, rounds: int) -> dict[str, float]:
    """Median seconds of the import, a cold compile and a warm one."""
    times: dict[str, list[float]] = {"import": [], "cold": [], "warm": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="lpir-latency-") as cache:
            imported, cold = child_times(example, cache)
            times["import"].append(imported)
            times["cold"].append(cold)
            times["warm"].append(child_times(example, cache)[1])
    return {state: statistics.median(values) for state, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--examples", nargs="+", default=["vector_add", "gemv_wq", "kv_append", "attention"]
    )
    args = parser.parse_args(argv)
    print(f"{'example':12} {'import':>8} {'cold':>8} {'warm':>8} {'cold/warm':>10}")
    for example in args.examples:
        m = medians(example, args.rounds)
        print(
            f"{example:12} {m['import']:7.3f}s {m['cold']:7.3f}s {m['warm']:7.3f}s "
            f"{m['cold'] / m['warm']:9.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
