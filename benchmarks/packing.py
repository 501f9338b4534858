"""Time packing and unpacking of 16 M elements for every width 1..8.

    python benchmarks/packing.py [--elements 16000000] [--repeat 5]

For each width, at the codes level: `pack_codes` (uint8 codes -> packed bytes) and
`PackedArray.codes` (bytes -> uint8 codes); at the value level: `lpir.pack` of integer values
(range-checked) and of float32 values (encoded to the small float of that width, correctly
rounded), and `lpir.unpack` back to integers / float32. Prints medians in milliseconds and,
beside each, millions of elements per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import lpir
from lpir.packing import pack_codes

# One small float per width (none has 1 or 2 bits).
FLOAT_OF_WIDTH = {3: "f3e1m1", 4: "f4e2m1", 5: "f5e2m2", 6: "f6e3m2", 7: "f7e3m3", 8: "f8e4m3"}


def median_seconds(function: Callable[[], object], repeat: int) -> float:
    function()  # warm up: first-touch page faults and cached tables are not what we measure
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure_width(nbits: int, elements: int, repeat: int, rng: np.random.Generator) -> dict:
    """Median seconds of each operation for one width (None where there is no such type)."""
    unsigned = lpir.dtype(f"u{nbits}")
    codes = rng.integers(0, 1 << nbits, size=elements).astype(np.uint8)
    packed = pack_codes(codes, unsigned)
    times = {
        "pack codes": median_seconds(lambda: pack_codes(codes, unsigned), repeat),
        "unpack codes": median_seconds(packed.codes, repeat),
        "pack ints": median_seconds(lambda: lpir.pack(codes, unsigned), repeat),
        "unpack ints": median_seconds(packed.unpack, repeat),
        "pack floats": None,
        "unpack floats": None,
    }
    if nbits in FLOAT_OF_WIDTH:
        small_float = lpir.dtype(FLOAT_OF_WIDTH[nbits])
        values = rng.standard_normal(elements).astype(np.float32)
        floats = lpir.pack(values, small_float)
        times["pack floats"] = median_seconds(lambda: lpir.pack(values, small_float), repeat)
        times["unpack floats"] = median_seconds(floats.unpack, repeat)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=16_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.elements:,} elements, median of {args.repeat} runs: ms (M elements/s)")
    columns = list(measure_width(1, 8, 1, rng))
    print(f"| width | {' | '.join(columns)} |")
    print(f"|---|{'---:|' * len(columns)}")
    for nbits in range(1, 9):
        times = measure_width(nbits, args.elements, args.repeat, rng)
        cells = [
            "-" if t is None else f"{t * 1e3:.0f} ({args.elements / t / 1e6:.0f})"
            for t in times.values()
        ]
        print(f"| {nbits} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
