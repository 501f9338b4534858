"""`reshape(t, d0, d1, ...)`: a register tile's elements in row-major order under another
shape of the same size (one dimension may be -1); the tile IR's reshape splits dimensions or
merges adjacent ones, and the language reaches other shapes through two of them. Each thread
keeps its elements in the same slots, so a reshape costs nothing where the operand's layout
splits along the new dimensions (layout-selection converts the operand where it does not).
Checked on every host target against numpy, with tiles that overhang the tensor, plus its
errors, its folding, and examples/gemv_mx.lp (MX formats: blocks of 32 weights sharing an e8m0
scale)."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS
from located_errors import assert_located_error

import lpir
from lpir.errors import TypeCheckError
from lpir.ir.core import Value
from lpir.ir.ops import ReshapeOp
from lpir.ir.types import TileType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGETS = [*HOST_TARGETS, "threads-cuda"]

# Each block's [BM, BN] tile: its rows' blocks of 8 scaled by a per-block factor (a split),
# then its rows of [BM / 2, 2, BN] summed in pairs (a merge of the split's other side).
SPLIT_AND_MERGE = """
kernel blocks_of_8[M = 37, N = 100, BM = 16, BN = 64](
    a: global f32[M, N], f: global f32[M, cdiv(N, 8)], b: global f32[M, N], c: global f32[M / 2, N],
) blocks(cdiv(M, BM), cdiv(N, BN)) threads(64) {
    rows = block.x * BM
    columns = block.y * BN
    t = load(a[rows :+ BM, columns :+ BN])
    scaled = reshape(t, BM, BN / 8, -1) * load(f[rows :+ BM, columns / 8 :+ BN / 8])[:, :, None]
    store(b[rows :+ BM, columns :+ BN], reshape(scaled, BM, BN))
    pairs = reshape(t, BM / 2, 2, BN)
    store(c[rows / 2 :+ BM / 2, columns :+ BN], sum(pairs, axis = 1))
}
"""


def _split_and_merge_arrays(rng):
    a = rng.standard_normal((37, 100)).astype(np.float32)
    f = rng.standard_normal((37, 13)).astype(np.float32)
    return a, f, np.zeros_like(a), np.zeros((18, 100), np.float32)


@pytest.mark.parametrize("target", TARGETS)
def test_split_and_merge_with_edges(target):
    a, f, b, c = _split_and_merge_arrays(np.random.default_rng(5))
    lpir.compile(SPLIT_AND_MERGE, target=target)(a, f, b, c)
    np.testing.assert_array_equal(b, a * np.repeat(f, 8, axis=1)[:, :100])  # one rounding each
    np.testing.assert_array_equal(c, a[0:36:2] + a[1:36:2])  # row 36's pair is past M / 2


def test_reshapes_of_a_coalesced_load_cost_nothing_on_the_gpu():
    tiles = lpir.compile(SPLIT_AND_MERGE, target="cuda").ir("after:layout-selection")
    assert tiles.count("reshape(") == 3
    assert "convert_layout" not in tiles
    assert "reshape" not in lpir.compile(SPLIT_AND_MERGE, target="cuda").ir(
        "after:lower-to-threads"
    )


# A layout whose modes straddle the split: 32 threads each holding 3 neighbours of 96 cannot
# give [3, 32] as whole digits, so the operand is converted to the result's layout first.
STRADDLING = """
kernel thirds[](a: global f32[96], b: global f32[3, 32]) blocks(1) threads(32) {
    t = load(a[0 :+ 96]) @ spatial(32).local(3)
    store(b[0 :+ 3, 0 :+ 32], reshape(t, 3, 32) + 1.0)
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_a_reshape_the_operand_layout_cannot_take_converts_it(target):
    a = np.arange(96, dtype=np.float32)
    b = np.zeros((3, 32), np.float32)
    kernel = lpir.compile(STRADDLING, target=target)
    kernel(a, b)
    np.testing.assert_array_equal(b, a.reshape(3, 32) + 1)
    if target == "threads-cuda":
        tiles = kernel.ir("after:layout-selection")
        conversion = tiles.index("convert_layout(")
        assert conversion < tiles.index("reshape(")


def test_reshapes_back_and_forth_fold():
    source = """
kernel same[](a: global f32[8, 16], b: global f32[8, 16], c: global f32[128])
    blocks(1) threads(32) {
    t = load(a[0 :+ 8, 0 :+ 16])
    store(b[0 :+ 8, 0 :+ 16], reshape(reshape(t, 8, 4, 4), 8, 16))
    store(c[0 :+ 128], reshape(reshape(t, 8, 4, 4), 128))
}
"""
    kernel = lpir.compile(source, target="cpu")
    tiles = kernel.ir("after:dce")
    assert tiles.count("reshape(") == 1  # the first pair is gone, the second is one reshape
    assert "{shape = [128]}" in tiles
    a = np.arange(128, dtype=np.float32).reshape(8, 16)
    b, c = np.zeros_like(a), np.zeros(128, np.float32)
    kernel(a, b, c)
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(c, a.reshape(-1))


# numpy's reshapes that neither only split nor only merge dimensions: through the shapes'
# common coarsening ([4, 2, 32] -> [4, 64] -> [4, 32, 2]; [6, 4] -> [24] -> [4, 6])
ANY_ORDER = """
kernel regroup[](x: global f32[4, 64], y: global f32[4, 64], z: global i32[24], w: global i32[24])
    blocks(1) threads(32) {
    pairs = reshape(reshape(load(x[0 :+ 4, 0 :+ 64]), 4, 2, 32), 4, 32, 2)
    store(y[0 :+ 4, 0 :+ 64], reshape(transpose(pairs, 0, 2, 1), 4, 64))
    a = reshape(reshape(load(z[0 :+ 24]), 6, 4), 4, 6) * arange(6)[None, :]
    store(w[0 :+ 24], reshape(reshape(reshape(a, 2, 12), 3, 8, 1), 24))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_any_reshape_of_the_same_size_keeps_row_major_order(target):
    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    z = np.arange(24, dtype=np.int32)
    y, w = np.zeros_like(x), np.zeros_like(z)
    kernel = lpir.compile(ANY_ORDER, target=target)
    kernel(x, y, z, w)
    pairs = x.reshape(4, 2, 32).reshape(4, 32, 2)
    np.testing.assert_array_equal(y, pairs.transpose(0, 2, 1).reshape(4, 64))
    np.testing.assert_array_equal(w, (z.reshape(4, 6) * np.arange(6)).reshape(24))


def test_a_reshape_across_dimensions_is_two_reshapes_in_the_tile_ir():
    tiles = lpir.compile(ANY_ORDER, target="cpu").ir("source")
    shapes = [
        line.split("shape = ")[1].split("}")[0] for line in tiles.splitlines() if "reshape(" in line
    ]
    assert shapes[:3] == ["[4, 2, 32]", "[4, 64]", "[4, 32, 2]"], shapes
    assert "[6, 4]" in shapes and "[24]" in shapes and "[4, 6]" in shapes
    assert shapes[-4:] == ["[2, 12]", "[24]", "[3, 8, 1]", "[24]"], shapes  # (24 in common)


def test_the_tile_ir_reshape_still_only_regroups():
    with pytest.raises(TypeCheckError, match="moves elements across dimensions"):
        ReshapeOp.create(Value(TileType(lpir.dtype("f32"), (6, 4))), (4, 6))


@pytest.mark.parametrize(
    ("call", "column", "message", "hint"),
    [
        ("reshape(t, 5, 5)", 9, "(24 elements) to [5, 5] (25 elements)", "as many elements"),
        ("reshape(t, -1, -1)", 24, "only one of reshape's dimensions may be -1", None),
        ("reshape(t, 0, 24)", 20, "must be positive", None),
        ("reshape(t, 5, -1)", 9, "5 does not divide 24", None),
        ("reshape(t)", 9, "reshape takes a tile and its new dimensions", "reshape(t, d0, d1"),
        ("reshape(1.0, 1)", 17, "reshape needs a tile", None),
        ("reshape(t, N, 4)", 20, "dimension of reshape", None),
    ],
)
def test_a_bad_reshape_is_a_located_error(call, column, message, hint):
    assert_located_error(call, column, message, hint)


# ---- examples/gemv_mx.lp ------------------------------------------------------------------


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_every_e8m0_scale_decodes_exactly(target):
    """Row n's weights are all 1.0 and x is 2^-5, so y[n] is the sum of 32 products
    1.0 x 2^(n - 127) x 2^-5: exactly e8m0 code n's value (2^-127 is subnormal in f32, 2^127 its
    largest power of two, 255 NaN), checked against ml_dtypes' float8_e8m0fnu."""
    weights = lpir.dtype("f8e4m3")
    kernel = lpir.compile(EXAMPLES / "gemv_mx.lp", target=target, WT="f8e4m3", N=256, K=32)
    w = lpir.pack_codes(np.full((256, 32), weights.encode(np.ones(1, np.float32))[0]), weights)
    s = np.arange(256, dtype=np.uint8).reshape(256, 1)
    x = np.full(32, 2.0**-5, np.float32)
    y = np.zeros(256, np.float32)
    kernel(x, w, s, y)
    expected = s.reshape(-1).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    np.testing.assert_array_equal(y, expected)  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("target", ["cuda", "cpu"])
def test_mx_scales_and_x_load_in_the_layout_their_reshapes_give(target):
    """x goes through a reshape and the u8 exponents through a view before their broadcasts:
    both are still loaded in the layout the broadcast needs, not loaded coalesced and
    exchanged through shared memory every iteration (the weights' reshape is free too)."""
    kernel = lpir.compile(EXAMPLES / "gemv_mx.lp", target=target, N=256, K=512)
    assert "convert_layout" not in kernel.ir("after:layout-selection")
