"""`lpir run --check` allows a float cumsum or cumprod the tolerance of a sum in another order.

docs/language.md: a float scan combines in an order each target chooses (a tree across the
threads that split a line, where the interpreter adds in order) and a check's tolerance covers
that. `adds_in_any_order` knew sums, dots and atomic adds but not scans, so a correct
cumsum of 4096 f32 failed its check by 7e-5 at outputs of some 2000. A scan's thread-IR form
(shuffles and adds) fixes one order, which every target follows: it needs no allowance.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir
from lpir.runner import adds_in_any_order, default_tolerance, run_file

CUMSUM = """
kernel cumsum_check[N = 4096](x: global f32[N], y: global f32[N]) blocks(1) threads(128) {
    store(y[:], SCAN(load(x[:])))
}
"""

ROWS = """
kernel rows[K = 64, BM = 4](x: global f32[m, K], c: global f32[m, K], m: i32)
        blocks(cdiv(m, BM)) threads(32) {
    r = block.x * BM
    store(c[r :+ BM, :], cumsum(load(x[r :+ BM, :]), axis = 1))
}
"""


def tile_ir(source: str):
    return lpir.compile(source, target="interp").specialize(None).kernel_ir


@pytest.mark.parametrize(("scan", "reordered"), [
    ("cumsum", True), ("cumprod", True), ("cummax", False), ("cummin", False),
])  # fmt: skip
def test_a_float_sum_or_product_scan_combines_in_any_order(scan: str, reordered: bool) -> None:
    kernel = tile_ir(CUMSUM.replace("SCAN", scan))
    assert adds_in_any_order(kernel) is reordered
    rtol, atol, why = default_tolerance(kernel, {1: np.full(4096, 2000.0)})[1]
    if reordered:
        assert (rtol, atol) == (1e-4, pytest.approx(0.2)) and "another order" in why
    else:  # max and min pick one of their operands: exact in any order
        assert (rtol, atol) == (1e-5, 1e-6)


def test_a_correct_cumsum_passes_its_check(tmp_path, capsys) -> None:
    path = tmp_path / "cumsum_check.lp"
    path.write_text(CUMSUM.replace("SCAN", "cumsum"))
    assert run_file(path, target="cpu", check=True)
    out = capsys.readouterr().out
    assert "FAIL" not in out and "sums in another order" in out


def test_rows_of_cumsums_pass_on_the_gpus_thread_ir(tmp_path, capsys) -> None:
    path = tmp_path / "rows.lp"
    path.write_text(ROWS)
    assert run_file(path, target="threads-cuda", check=True, scalars={"m": 13})
    assert "FAIL" not in capsys.readouterr().out


def test_a_scans_thread_ir_is_one_order_everywhere() -> None:
    """Lowered, a cumsum is shuffles and adds: the tolerance stays tight, and the CPU agrees
    with the thread-IR interpreter exactly."""
    cpu = lpir.compile(CUMSUM.replace("SCAN", "cumsum"), target="cpu")
    thread_ir = cpu.specialize(None).kernel_ir
    assert thread_ir.stage == "thread" and not adds_in_any_order(thread_ir)
    x = np.random.default_rng(1).random(4096, dtype=np.float32)
    y = np.zeros(4096, np.float32)
    cpu(x, y)
    expected = np.zeros(4096, np.float32)
    lpir.compile(cpu.ir(), target="threads")(x, expected)
    np.testing.assert_array_equal(y, expected)
