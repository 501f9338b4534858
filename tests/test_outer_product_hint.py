"""Tiles of positions in two dimensions of one access index independently (`probs[b, arange(S),
ids]` is the [S, S] outer product, as numpy's np.ix_): a store of it into a [S] slice is a
shape error whose hint says so and shows the form that pairs them (the dimensions merged in
the tensor's declaration, indexed once), which gives the pairs on every host target."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.errors import LpirError

PAIRS = """
kernel pair[B = 4, S = 4, V = 1000](
    ids: global i32[B, S],
    probs: global f32[B, S, V],
    out: global f32[B, S],
) blocks(B) threads(32) {
    b = block.x
    store(out[b, :], load(probs[b, arange(S), load(ids[b, :])]))
}
"""

# the hint's form: the two dimensions merged, one tile of positions
MERGED = """
kernel pair[B = 4, S = 4, V = 1000](
    ids: global i32[B, S],
    probs: global f32[B, S * V],
    out: global f32[B, S],
) blocks(B) threads(32) {
    b = block.x
    store(out[b, :], load(probs[b, arange(S) * 1000 + load(ids[b, :])]))
}
"""

# three dimensions gathered: the hint says what to do without a formula
THREE = """
kernel three[S = 4](p: global f32[S, S, S], out: global f32[S]) blocks(1) threads(32) {
    store(out[:], load(p[arange(S), arange(S), arange(S)]))
}
"""


def test_the_hint_says_the_positions_index_independently() -> None:
    with pytest.raises(LpirError) as caught:
        lpir.compile(PAIRS, target="interp").specialize(None)
    text = str(caught.value)
    assert ":8:22:" in text and "cannot store a tile of shape [4, 4]" in text and "^" in text
    assert "index independently (an outer product, as numpy's np.ix_)" in text
    assert "probs with the two dimensions merged ([4, 4000])" in text
    assert "probs[b, arange(S) * 1000 + load(ids[b, :])]" in text and "in a loop" in text


def test_three_gathered_dimensions() -> None:
    with pytest.raises(LpirError) as caught:
        lpir.compile(THREE, target="interp").specialize(None)
    text = str(caught.value)
    assert "dimensions 0, 1, 2 of p index independently" in text
    assert "merge the dimensions in the tensor's declaration" in text


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_the_merged_form_gives_the_pairs(target: str) -> None:
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 1000, (4, 4)).astype(np.int32)
    probs = rng.random((4, 4, 1000)).astype(np.float32)
    out = np.zeros((4, 4), np.float32)
    lpir.compile(MERGED, target=target)(ids, probs.reshape(4, 4000), out)
    expected = np.take_along_axis(probs, ids[:, :, None], axis=2)[:, :, 0]
    np.testing.assert_array_equal(out, expected)
