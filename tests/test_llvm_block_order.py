"""The order in which a CPU core runs a kernel's blocks (backends/llvm/block_order.py): the grid
axis whose blocks lie closest in memory varies fastest, every block runs once whatever the
order, and kernels with loops or with accesses the analysis cannot follow keep x first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.backends.llvm.block_order import block_order
from test_llvm_harness import private_cache  # noqa: F401

import lpir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def order_of(path: Path | str, **definitions) -> tuple[int, int, int]:
    kernel = lpir.compile(path, target="cpu", **definitions).specialize(None).kernel_ir
    return block_order(kernel)


@pytest.mark.parametrize(
    "name, definitions, expected",
    [
        # (row tiles, column groups): a group is 128 bytes of x over, a row tile 256 KiB down
        ("quantize", {"M": 4096, "N": 4096}, (1, 0, 2)),
        ("quantize", {"M": 100, "N": 96, "WT": "u3", "ZERO": 4}, (1, 0, 2)),  # packed stores
        ("dequantize", {"M": 4096, "N": 4096}, (1, 0, 2)),
        # (token tiles, heads): the next head is D elements over, the next tile BT x H x D down
        ("rope", {"T": 4096, "H": 32}, (1, 0, 2)),
        # loops: the default order
        ("matmul_wq", {"M": 256, "N": 512, "K": 512}, (0, 1, 2)),
        ("attention", {}, (0, 1, 2)),
        ("gemv_splitk", {}, (0, 1, 2)),
        # one axis
        ("vector_add", {}, (0, 1, 2)),
        ("softmax", {}, (0, 1, 2)),
    ],
)
def test_the_axis_whose_blocks_lie_closest_goes_first(name, definitions, expected):
    assert order_of(EXAMPLES / f"{name}.lp", **definitions) == expected


GRID = """
kernel grid_ids[X = 3, Y = 5, Z = 4](out: global i32[X, Y, Z]) blocks(X, Y, Z) threads(1) {
    store(out[block.x, block.y, block.z :+ 1], full<i32>[1](block.x * 100 + block.y * 10 + block.z))
}
"""


def test_every_block_runs_once_in_a_reordered_grid(tmp_path):
    """A grid of 3 x 5 x 4 blocks whose store moves least along z: z first, then y, then x;
    each block writes its own coordinates, over every core's share of the linear order."""
    path = tmp_path / "grid.lp"
    path.write_text(GRID)
    assert order_of(path) == (2, 1, 0)
    out = np.full((3, 5, 4), -1, np.int32)
    lpir.compile(path, target="cpu")(out)
    x, y, z = np.meshgrid(np.arange(3), np.arange(5), np.arange(4), indexing="ij")
    np.testing.assert_array_equal(out, x * 100 + y * 10 + z)


def test_an_access_the_analysis_cannot_follow_keeps_the_default(tmp_path):
    """A row chosen through a loaded index (a gather): how far it moves per block is unknown."""
    path = tmp_path / "gather.lp"
    path.write_text(
        """
kernel gather[N = 8, D = 256](table: global f32[64, D], rows: global i32[N], y: global f32[N, D])
    blocks(N, D / 64) threads(64) {
    let row = load(rows[block.x])
    store(y[block.x, block.y * 64 :+ 64], load(table[row, block.y * 64 :+ 64]))
}
"""
    )
    assert order_of(path) == (0, 1, 2)
