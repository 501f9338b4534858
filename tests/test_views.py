"""`view<T>` of register tiles whose element widths do not divide each other (u8 as u3, u5 as
u8, u16 as u3): each thread must hold whole runs of lcm(a, b) bits (3 bytes are 8 three-bit
fields). Layout-selection once gave such views an element-count ratio (8 // 3 = 2) and failed
("layout ... does not cover the shape"); every host target now equals the interpreter, and
u8 as u3 equals numpy's little-endian bit unpacking.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir

SOURCE = """
kernel view_rows[ST = u8, VT = u3, M = 16, C = 12, BM = 8, D = 32, THREADS = 32](
    x: global ST[M, C], y: global f32[M, D],
) blocks(cdiv(M, BM)) threads(THREADS) {
    t = load(x[block.x * BM :+ BM, :])
    store(y[block.x * BM :+ BM, :], cast<f32>(view<VT>(t)))
}
"""

# (source dtype, viewed dtype, source row length, viewed row length)
CASES = [
    ("u8", "u3", 12, 32),
    ("u8", "u3", 3, 8),
    ("u8", "u3", 96, 256),
    ("u8", "u5", 5, 8),
    ("u8", "u6", 12, 16),
    ("u8", "u7", 7, 8),
    ("u8", "f6e2m3", 12, 16),
    ("u16", "u3", 6, 32),
    ("u3", "u8", 32, 12),
    ("u5", "u8", 16, 10),
    ("u3", "u6", 2, 1),
    ("u4", "u8", 64, 32),
]


@pytest.mark.parametrize("target", [t for t in HOST_TARGETS if t != "interp"])
@pytest.mark.parametrize(("source", "viewed", "c", "d"), CASES)
def test_a_view_between_widths_that_do_not_divide(target, source, viewed, c, d):
    params = {"ST": source, "VT": viewed, "C": c, "D": d}
    rng = np.random.default_rng(c * d)
    st = lpir.dtype(source)
    codes = rng.integers(0, 1 << min(st.nbits, 16), (16, c))
    x = (
        lpir.pack(codes, source)
        if st.nbits < 8
        else codes.astype(np.uint16 if st.nbits == 16 else np.uint8)
    )
    got, wanted = np.zeros((16, d), np.float32), np.zeros((16, d), np.float32)
    lpir.compile(SOURCE, target=target, **params)(x, got)
    lpir.compile(SOURCE, target="interp", **params)(x, wanted)
    np.testing.assert_array_equal(got, wanted)


def test_bytes_viewed_as_three_bit_fields_are_the_bits_in_order():
    x = np.random.default_rng(0).integers(0, 256, (16, 12)).astype(np.uint8)
    y = np.zeros((16, 32), np.float32)
    lpir.compile(SOURCE, target="cpu")(x, y)
    bits = np.unpackbits(x, axis=1, bitorder="little").reshape(16, 32, 3)
    np.testing.assert_array_equal(y, bits @ np.array([1, 2, 4]))
