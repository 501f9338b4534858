"""The CUDA dequantization fast paths, bit for bit: packed integers of every width (fields
inside bytes, straddling bytes and straddling 32-bit words; signed and unsigned) cast to f32,
bf16 and f16 with a folded zero point, on the cuda pipeline's thread IR (thread interpreter) and
in the emitted CUDA C run on the host, against the reference interpreter. Zero points of 256
and -200 push bf16 results past its 8 significant bits, so the one rounding is checked too."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel

import lpir

SOURCE = """
kernel dq[WT = u3, OUT = bf16, M = 32, N = 96, Z = 3](q: global WT[M, N], y: global OUT[M, N])
    blocks(1) threads(64) {
    store(y[0 :+ M, 0 :+ N], cast<OUT>(load(q[0 :+ M, 0 :+ N])) - Z)
}
"""
WEIGHTS = ["u1", "u2", "u3", "i3", "u4", "i4", "u5", "i5", "u6", "i6", "u7", "i7", "u8", "i8"]
CASES = [
    (weight, out, zero)
    for weight in WEIGHTS
    for out in ("f32", "bf16", "f16")
    for zero in ((3, 256) if out == "f32" else (-200, 256) if out == "bf16" else (3,))
]


def codes(weight: str, rng: np.random.Generator) -> np.ndarray:
    bits = lpir.dtype(weight).nbits
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if weight[0] == "i" else (0, 1 << bits)
    return rng.integers(low, high, size=(32, 96))


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_packed_integers_dequantize_bit_exactly(tmp_path):
    path = tmp_path / "dq.lp"
    path.write_text(SOURCE)
    rng = np.random.default_rng(7)
    prepared = []
    for weight, out, zero in CASES:
        params = {"WT": weight, "OUT": out, "Z": zero}
        q = lpir.pack(codes(weight, rng), weight)
        wanted = np.zeros((32, 96), lpir.dtype(out).numpy_dtype)
        lpir.compile(str(path), target="interp", **params)(q, wanted)
        kernel = lpir.compile(str(path), target="threads-cuda", **params)
        lowered = np.zeros_like(wanted)
        kernel(q, lowered)
        np.testing.assert_array_equal(lowered.view(np.uint8), wanted.view(np.uint8), str(params))
        prepared.append((params, q, wanted, kernel.last.module.kernels[0]))
    runners = emulate_kernels([emit_kernel(p[3], f"dq_{i}") for i, p in enumerate(prepared)])
    for (params, q, wanted, _), runner in zip(prepared, runners):
        emulated = np.zeros_like(wanted)
        runner.run([q, emulated])
        np.testing.assert_array_equal(emulated.view(np.uint8), wanted.view(np.uint8), str(params))
