"""The hint of the shared-memory limit's error names the kernel's own parameters that size the
largest shared tiles (it named "a smaller BK or BN" for a vocabulary's bincount tile, a kernel
with neither), and pipeline stages only where the kernel has a loop."""

from __future__ import annotations

import pytest

import lpir
from lpir.errors import LpirError

# the bincount of a row's tokens in a shared tile of the vocabulary rounded up to whole chunks
BINCOUNT = """
kernel bincount[V = 128256, L = 256, BV = 1024, BL = 128](
    output: global i32[B, L], counts_out: global i32[B, V], B: i32,
) blocks(B) threads(128) {
    b = block.x
    VP = cdiv(V, BV) * BV
    counts = shared<i32>[VP]
    for v0 in range(0, VP, BV) {
        store(counts[v0 :+ BV], zeros<i32>[BV])
    }
    for l0 in range(0, L, BL) {
        ids = load(output[b, l0 :+ BL], other = -1)
        atomic_add(counts[ids], ones<i32>[BL], mask = ids >= 0)
    }
    for v0 in range(0, V, BV) {
        store(counts_out[b, v0 :+ BV], load(counts[v0 :+ BV]))
    }
}
"""

# no loop: no pipeline stages; S written where the tile is made
SQUARE = """
kernel square[S = 256](x: global f32[S, S], y: global f32[S, S]) blocks(1) threads(128) {
    s = shared<f32>[S, S]
    store(s, load(x[:, :]))
    store(y[:, :], load(s) * 2.0)
}
"""

# a tile of a local size no parameter's value gives (3 * N, N = 20000): said generally
UNRELATED = """
kernel rows[N = 20000](x: global f32[3 * N], y: global f32[3 * N]) blocks(1) threads(128) {
    R = 3 * N
    s = shared<f32>[R]
    store(s, load(x[:]))
    store(y[:], load(s))
}
"""


def _hint(source: str) -> str:
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="cuda").source("ptx", "sm_90")
    text = str(caught.value)
    assert "of shared memory a block, more than the 227 KiB" in text
    return text.split("hint: ", 1)[1]


def test_a_rounded_up_vocabulary_names_its_parameter():
    hint = _hint(BINCOUNT)
    assert "the largest are sized by V" in hint and "BK" not in hint and "BN" not in hint
    assert "fewer pipeline stages" in hint  # it has loops


def test_the_parameter_written_where_the_tile_is_made():
    hint = _hint(SQUARE)
    assert "the largest are sized by S" in hint
    assert "pipeline" not in hint


def test_no_parameter_found_is_said_generally():
    hint = _hint(UNRELATED)
    assert "smaller values of the parameters that size them" in hint
