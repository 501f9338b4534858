"""Packed stores of tiles whose rows overhang a narrower tensor: one thread's lanes past the
edge of row r sit where row r + 1 begins (row 0's column N is row 1's column 0), and
`pack_bits` ORs the fields of lanes at one place. bit-packing packs those lanes as zeros
(found when fold-threads gave CPU threads whole rows of quantize's tiles: its codes past the
edge are ZERO, not 0). A one-thread block holds every row: compiled for the CPU, through the
thread interpreter and as CUDA C on the host, against the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulation_available

import lpir

OVERHANG = """
kernel overhang[WT = u7, M = 4, N = 10, BN = 32](x: global f32[M, N], q: global WT[M, N])
    blocks(1) threads(1) {
    store(q[0 :+ M, 0 :+ BN], cast<WT>(load(x[0 :+ M, 0 :+ BN]) + 3.0))
}
"""

TARGETS = ["cpu", "threads"] + (["cuda-host"] if emulation_available() else [])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("params", [{}, {"WT": "i3", "N": 5, "BN": 8}, {"WT": "f4e2m1", "M": 3}])
def test_lanes_past_a_rows_edge_do_not_write_into_the_next_row(params, target):
    kernel = lpir.compile(OVERHANG, target="interp", **params)
    values = kernel.specialize(None).params
    m, n, dt = values["M"], values["N"], lpir.dtype(values["WT"])
    x = np.random.default_rng(8).integers(-2, 3, (m, n)).astype(np.float32)
    expected = [x, lpir.pack(np.zeros((m, n), np.float32), dt)]
    kernel(*expected)
    got = [x, lpir.pack(np.zeros((m, n), np.float32), dt)]
    lpir.compile(OVERHANG, target=target, **params)(*got)
    np.testing.assert_array_equal(lpir.unpack(got[1]), lpir.unpack(expected[1]))
    assert np.all(lpir.unpack(expected[1]).astype(np.float32) != 0)  # x + 3 is 1..5, never 0
