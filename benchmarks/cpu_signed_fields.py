"""Signed sub-byte weights (i2..i7) against unsigned ones (u2..u7) holding the same values.

    python benchmarks/cpu_signed_fields.py                  # every width and cast
    python benchmarks/cpu_signed_fields.py --bits 2,6 --casts f32,i32

A GEMV-shaped kernel, y = sum_k cast<A>(cast<C>(w)) * x, N x K weights of b bits, for each
consumer cast C (i32, i8: i32 accumulator and int8 x; f32, f16: f32 accumulator and f32 x),
twice: w stored as i_b, and as u_b codes with the offset subtracted after the cast
(`cast<C>(w) - 2^(b-1)`, as BitNet's u2 codes are used). Both read the same bytes and give
the same values; the ratio i_b / u_b is what unpacking a signed field costs beyond an
unsigned one (docs/benchmarks.md: about 1.0, where the sign extension took two more shifts
per register of fields). The two run in turn, one call each per round; the minimum of the
rounds (the machine is shared: the medians wander more than the gap).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lpir

SOURCE = """
kernel gemv[N = {N}, K = {K}, BN = 64, BK = 256](
    x: global {XT}[K], w: global {W}[N, K], y: global {AT}[N],
) blocks(cdiv(N, BN)) threads(128) {{
    rows = block.x * BN
    acc = zeros<{AT}>[BN, BK]
    for k0 in range(0, K, BK) {{
        t = cast<{C}>(load(w[rows :+ BN, k0 :+ BK])){OFFSET}
        acc += cast<{AT}>(t) * cast<{AT}>(load(x[k0 :+ BK]))[None, :]
    }}
    store(y[rows :+ BN], sum(acc, axis = 1))
}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bits", default="2,3,4,5,6,7")
    parser.add_argument("--casts", default="i32,i8,f32,f16")
    parser.add_argument("-N", type=int, default=2048)
    parser.add_argument("-K", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    n, k = args.N, args.K
    rng = np.random.default_rng(0)
    print(f"N = {n}, K = {k}, minimum of {args.rounds} rounds (ms)")
    for cast in args.casts.split(","):
        integer = cast.startswith("i")
        acc, xt = ("i32", "i8") if integer else ("f32", "f32")
        x = rng.integers(-8, 8, k).astype(np.int8 if integer else np.float32)
        for bits in [int(b) for b in args.bits.split(",")]:
            half = 1 << (bits - 1)
            values = rng.integers(-half, half, (n, k))
            expected = values.astype(np.float64) @ x.astype(np.float64)
            runs = {}
            for name, stored, offset in [
                (f"u{bits}", values + half, f" - {half}" + ("" if integer else ".0")),
                (f"i{bits}", values, ""),
            ]:
                text = SOURCE.format(N=n, K=k, XT=xt, W=name, AT=acc, C=cast, OFFSET=offset)
                kernel = lpir.compile(text.encode(), target="cpu")
                weights = lpir.pack(stored, name)
                y = np.zeros(n, np.int32 if integer else np.float32)
                kernel(x, weights, y)
                assert np.allclose(y, expected), (name, cast)
                runs[name] = (kernel, weights, y)
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, (kernel, weights, y) in runs.items():
                    start = time.perf_counter()
                    kernel(x, weights, y)
                    times[name].append(time.perf_counter() - start)
            u, i = (min(times[f"{s}{bits}"]) * 1e3 for s in "ui")
            print(f"cast<{cast}> {bits} bits: u{bits} {u:.3f}  i{bits} {i:.3f}  i/u {i / u:.2f}")


if __name__ == "__main__":
    main()
