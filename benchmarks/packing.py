"""Time packing and unpacking of 16 M elements for every width 1..8.

    python benchmarks/packing.py [--elements 16000000] [--repeat 5]

Prints the median time of: pack_codes (codes -> packed bytes), PackedArray.codes (bytes ->
codes), lpir.pack of values (integers checked against the range) and unpack to values.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lpir
from lpir.packing import pack_codes


def median_seconds(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=16_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.elements:,} elements, median of {args.repeat}")
    columns = ("pack codes", "unpack codes", "pack values", "unpack values")
    print(f"{'dtype':>6} " + " ".join(f"{c:>13}" for c in columns) + "  (ms)")
    for nbits in range(1, 9):
        dt = lpir.dtype(f"u{nbits}")
        codes = rng.integers(0, 1 << nbits, size=args.elements).astype(np.uint8)
        packed = pack_codes(codes, dt)
        times = [
            median_seconds(lambda c=codes, d=dt: pack_codes(c, d), args.repeat),
            median_seconds(packed.codes, args.repeat),
            median_seconds(lambda c=codes, d=dt: lpir.pack(c, d), args.repeat),
            median_seconds(packed.unpack, args.repeat),
        ]
        print(f"{dt.name:>6} " + " ".join(f"{t * 1e3:>13.1f}" for t in times))


if __name__ == "__main__":
    main()
