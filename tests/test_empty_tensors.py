"""Empty calls: a grid with a block count of 0 (an empty batch, cdiv(0, B) blocks) runs no
block on every target and reads or writes nothing; tensors may then have size-0 dimensions.
Blocks over an empty tensor (a non-empty grid) are a located limitation, negative sizes a
mistake."""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.cli import main
from lpir.errors import LpirError
from lpir.ir.parser import parse
from lpir.ir.printer import print_module
from lpir.ir.verifier import verify

ADD = """
kernel add[N, B = 64](x: global f32[N], y: global f32[N], z: global f32[N])
    blocks(cdiv(N, B)) threads(32) {
    i = block.x * B
    store(z[i :+ B], load(x[i :+ B]) + load(y[i :+ B]))
}
"""

ROWS = """
kernel row_sums[N, K, BN = 16, BK = 32](x: global f32[N, K], w: global u4[N, K],
    y: global f32[N]) blocks(cdiv(N, BN)) threads(32) {
    r = block.x * BN
    acc = zeros<f32>[BN, BK]
    for k0 in range(0, K, BK) {
        acc += load(x[r :+ BN, k0 :+ BK]) * cast<f32>(load(w[r :+ BN, k0 :+ BK]))
    }
    store(y[r :+ BN], sum(acc, axis = 1) + 1.0)
}
"""


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_an_empty_batch_runs_no_block(target):
    """N = 0 deduced from the tensors: blocks(cdiv(0, 64)) was "block count is 0" and the
    tensors "dimension is 0"; now the call checks its arguments and runs nothing."""
    add = lpir.compile(ADD, target=target)
    empty = np.zeros(0, np.float32)
    add(empty, empty.copy(), empty.copy())
    assert add.last.params["N"] == 0 and add.last.empty_grid
    rows = lpir.compile(ROWS, target=target)
    y = np.zeros(0, np.float32)
    rows(np.zeros((0, 40), np.float32), lpir.pack(np.zeros((0, 40), int), "u4"), y)
    # a call with elements afterwards compiles and runs as usual
    x = np.arange(100, dtype=np.float32)
    z = np.zeros_like(x)
    add(x, x, z)
    np.testing.assert_array_equal(z, 2 * x)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_an_empty_call_still_checks_its_arguments(target):
    add = lpir.compile(ADD, target=target)
    empty = np.zeros(0, np.float32)
    with pytest.raises(LpirError, match="argument y"):
        add(empty, np.zeros(0, np.float64), empty.copy())
    with pytest.raises(LpirError, match="read-only"):
        out = np.zeros(0, np.float32)
        out.flags.writeable = False
        add(empty, empty.copy(), out)


def test_an_empty_grid_is_shown_and_has_no_code():
    add = lpir.compile(ADD, target="cpu", N=0)
    assert "blocks(0, 1, 1)" in add.ir("final")
    with pytest.raises(LpirError, match=r"the grid blocks\(0, 1, 1\) is empty"):
        add.source("llvm")


def test_blocks_over_an_empty_tensor_are_a_located_limitation():
    """K = 0 with N = 64: the grid has a block, which would run over an empty x."""
    rows = lpir.compile(ROWS, target="interp")
    with pytest.raises(LpirError) as caught:
        rows(
            np.zeros((64, 0), np.float32),
            lpir.pack(np.zeros((64, 0), int), "u4"),
            np.zeros(64, np.float32),
        )
    text = str(caught.value)
    assert ":2:58: error: dimension is 0 while the grid has blocks" in text
    assert "(a limitation)" in text and "hint: with K = 0: skip the call" in text


def test_negative_sizes_and_counts_are_still_mistakes():
    with pytest.raises(LpirError, match="dimension is -3; it must not be negative"):
        lpir.compile(ADD, target="interp", N=-3).specialize(None)
    grid = ADD.replace("blocks(cdiv(N, B))", "blocks(N - 1)")
    with pytest.raises(LpirError, match="the block count is -1; it must not be negative"):
        lpir.compile(grid, target="interp", N=0).specialize(None)


@pytest.mark.parametrize("stage", ["source", "final"])
@pytest.mark.parametrize(
    "target",
    HOST_TARGETS,
)
def test_ir_text_of_an_empty_call_round_trips_and_runs_nothing(target, stage):
    """The verifier refused a block count of 0 ("counts must be positive") and tensors of
    size 0, so kernel.ir() of an empty call printed text that lpir.compile refused."""
    text = lpir.compile(ADD, target=target, N=0).ir(stage)
    assert print_module(verify(parse(text))) == text
    empty = np.zeros(0, np.float32)
    lpir.compile(text, target=target)(empty, empty.copy(), empty.copy())


def test_the_verifier_still_refuses_empty_tensors_of_blocks_and_no_threads():
    text = lpir.compile(ADD, target="interp", N=0).ir("source")
    with pytest.raises(LpirError, match=r"global f32\[0\] has no elements"):
        verify(parse(text.replace("blocks(0, 1, 1)", "blocks(1, 1, 1)")))
    with pytest.raises(LpirError, match="threads"):
        verify(parse(text.replace("threads(32)", "threads(0)")))


@pytest.fixture
def empty_add(tmp_path):
    path = tmp_path / "add.lp"
    path.write_text(ADD)
    return str(path)


def test_lpir_opt_of_an_empty_grid_prints_its_ir(empty_add, capsys):
    """It was "blocks(0, 1, 1) threads(32): counts must be positive"."""
    assert main(["opt", empty_add, "-D", "N=0"]) == 0
    assert "blocks(0, 1, 1)" in capsys.readouterr().out
    assert main(["opt", empty_add, "-D", "N=0", "--print-after-all"]) == 0
    assert "// -----// IR after lower-to-threads" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command, missing",
    [
        (["emit"], "no code to emit"),
        (["emit", "--what", "ir"], "no code to emit"),
        (["emit", "--target", "cuda"], "no code to emit"),
        (["banks"], "no shared-memory access to count"),
    ],
)
def test_emit_and_banks_of_an_empty_grid_say_it_is_empty(empty_add, capsys, command, missing):
    """emit was "the LLVM backend needs thread IR, not tile IR" (--what ir printed tile IR)
    and banks "the thread interpreter runs thread IR, not tile IR"."""
    assert main([command[0], empty_add, "-D", "N=0", *command[1:]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{empty_add}:2:1: error: the grid of add, blocks(0, 1, 1), is empty for these "
        f"parameters (N = 0, B = 64): a call runs no block, so there is {missing}\n"
    ), err
    assert "hint: give parameters (-D) that make every block count at least 1" in err


def test_lpir_run_check_of_an_empty_grid_says_there_is_nothing_to_check(empty_add, capsys):
    """It said "no argument changed ... an index loaded from memory out of range?"."""
    assert main(["run", empty_add, "-D", "N=0", "--check"]) == 0
    out = capsys.readouterr().out
    note = "(N = 0, B = 64): a call runs no block, so there is nothing to check or time"
    assert note in out
    assert "index loaded" not in out
