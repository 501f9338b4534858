"""Sizes read at run time: a tensor's first dimension written as an i32 argument
(`x: global f16[m, K], ..., m: i32`) and block counts computed from such arguments
(`blocks(cdiv(m, BM))`). One specialization serves every size: the accesses mask their edges
against the argument, and every launcher computes the grid at each call.

Every host target and the CUDA pipeline on the thread interpreter agree with numpy at sizes
0, 1, below a tile, at a tile and past it, from one compiled specialization: row-wise math,
a reduction over a run-time number of rows in a loop, packed rows (u4, u3), gathers through ids
that leave the table, masked loads with `other =`; IR text with run-time sizes prints, parses
and runs. A call whose array disagrees with its size argument, or whose grid is out of range,
is an ArgumentError; a run-time size where the strides need a compile-time one is a located
error. The CUDA C compiles for sm_80 and sm_90.
"""

from __future__ import annotations

import numpy as np
import pytest
from host_targets import HOST_TARGETS
from lpir.backends.cuda.compiler import compile_with_nvcc, find_nvcc
from lpir.backends.cuda.device import gpu_available

import lpir
from lpir.errors import ArgumentError, LpirError

TARGETS = [*HOST_TARGETS, "threads-cuda"]
SIZES = [0, 1, 3, 16, 37]

# Each row of x scaled and shifted, m rows in tiles of BM (the last tile overhangs m).
ROWS = """
kernel rows[K = 24, BM = 16](
    x: global f32[m, K], y: global f32[m, K], m: i32,
) blocks(cdiv(m, BM)) threads(32) {
    r = block.x * BM
    store(y[r :+ BM, :], load(x[r :+ BM, :]) * 2.0 + 1.0)
}
"""

# Column sums over m rows in one block: a loop to the run-time size, rows past it masked.
COLUMN_SUMS = """
kernel column_sums[K = 20, BM = 8](x: global f32[m, K], out: global f32[K], m: i32)
blocks(1) threads(32) {
    acc = zeros<f32>[BM, K]
    for r in range(0, m, BM) {
        acc += load(x[r :+ BM, :])
    }
    store(out[:], sum(acc, axis = 0))
}
"""

# Packed rows: codes of WT copied into a second packed tensor plus one (wrapping at the top).
PACKED_ROWS = """
kernel packed_rows[WT = u4, K = 40, BM = 4](
    w: global WT[n, K], v: global WT[n, K], n: i32,
) blocks(cdiv(n, BM)) threads(32) {
    r = block.x * BM
    store(v[r :+ BM, :], cast<WT>((cast<i32>(load(w[r :+ BM, :])) + 1) % (max_value(WT) + 1)))
}
"""

# Rows of a table of v rows (known at the call) chosen by ids that may leave it: those read
# -1 (other =), as do the rows past the n tokens.
EMBEDDING = """
kernel embedding[D = 12, BT = 8](
    table: global f32[v, D], ids: global i32[n], out: global f32[n, D], v: i32, n: i32,
) blocks(cdiv(n, BT)) threads(32) {
    t0 = block.x * BT
    live = (arange(BT) < n - t0)[:, None]
    store(out[t0 :+ BT, :], load(table[load(ids[t0 :+ BT]), :], mask = live, other = -1.0))
}
"""


def _rows_expected(x: np.ndarray) -> np.ndarray:
    return x * np.float32(2.0) + np.float32(1.0)


@pytest.mark.parametrize("target", TARGETS)
def test_rows_at_every_size_from_one_specialization(target: str) -> None:
    kernel = lpir.compile(ROWS, target=target)
    rng = np.random.default_rng(1)
    for m in SIZES:
        x = rng.standard_normal((m, 24)).astype(np.float32)
        y = np.full_like(x, np.nan)
        kernel(x, y, m)
        np.testing.assert_array_equal(y, _rows_expected(x))
    assert len(kernel.specializations) == 1


@pytest.mark.parametrize("target", TARGETS)
def test_a_loop_over_a_run_time_number_of_rows(target: str) -> None:
    kernel = lpir.compile(COLUMN_SUMS, target=target)
    rng = np.random.default_rng(2)
    for m in [0, 5, 8, 29]:
        x = rng.integers(-8, 8, (m, 20)).astype(np.float32)  # exact sums in any order
        out = np.full(20, np.nan, np.float32)
        kernel(x, out, m)
        np.testing.assert_array_equal(out, x.sum(axis=0))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dt", ["u4", "u3"])
def test_packed_rows(target: str, dt: str) -> None:
    kernel = lpir.compile(PACKED_ROWS, target=target, WT=dt)
    top = (1 << int(dt[1:])) - 1
    rng = np.random.default_rng(3)
    for n in [1, 6, 9]:
        codes = rng.integers(0, top + 1, (n, 40)).astype(np.uint8)
        w = lpir.pack(codes, dt)
        v = lpir.pack(np.zeros_like(codes), dt)
        kernel(w, v, n)
        np.testing.assert_array_equal(v.unpack(), (codes + 1) % (top + 1))


@pytest.mark.parametrize("target", TARGETS)
def test_gathered_rows_of_a_table_whose_rows_are_counted_at_the_call(target: str) -> None:
    kernel = lpir.compile(EMBEDDING, target=target)
    rng = np.random.default_rng(4)
    for v, n in [(5, 11), (30, 3), (1, 8)]:
        table = rng.standard_normal((v, 12)).astype(np.float32)
        ids = rng.integers(-2, v + 3, n).astype(np.int32)  # some outside the table
        out = np.zeros((n, 12), np.float32)
        kernel(table, ids, out, v, n)
        inside = (ids >= 0) & (ids < v)
        expected = np.where(inside[:, None], table[np.clip(ids, 0, v - 1)], np.float32(-1.0))
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("target", ["threads", "cpu"])
def test_ir_text_with_run_time_sizes_prints_parses_and_runs(target: str) -> None:
    kernel = lpir.compile(ROWS, target=target)
    text = kernel.ir("source")
    assert "%x: global f32[%m, 24]" in text and "blocks(cdiv(%m, 16), 1, 1)" in text, text
    again = lpir.compile(text, target=target)
    assert again.ir("source") == text
    x = np.arange(19 * 24, dtype=np.float32).reshape(19, 24)
    y = np.zeros_like(x)
    again(x, y, 19)
    np.testing.assert_array_equal(y, _rows_expected(x))
    final = kernel.ir("final")
    assert lpir.compile(final, target=target).ir("source") == final


def test_calls_of_new_sizes_add_no_cache_entries() -> None:
    kernel = lpir.compile(ROWS, target="cpu")
    for m in range(1, 40):
        x = np.ones((m, 24), np.float32)
        kernel(x, np.empty_like(x), m)
    assert len(kernel.specializations) == 1
    assert len(kernel._by_host_arrays) == 1


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_rows_that_disagree_with_their_size_are_refused(target: str) -> None:
    kernel = lpir.compile(ROWS, target=target)
    x = np.ones((7, 24), np.float32)
    for m, words in [(8, "x has 7 rows (its first dimension is m), but m = 8"), (-1, "m = -1")]:
        with pytest.raises(ArgumentError) as caught:
            kernel(x, np.empty_like(x), m)
        text = str(caught.value)
        assert words in text and "<source>:3:" in text and "x.shape[0]" in text, text
    with pytest.raises(ArgumentError, match="25 from the shape of argument y"):
        kernel(x, np.ones((7, 25), np.float32), 7)


def test_a_grid_out_of_range_at_the_call_is_refused() -> None:
    source = ROWS.replace("blocks(cdiv(m, BM))", "blocks(cdiv(m, BM) - 2)")
    kernel = lpir.compile(source, target="cpu")
    x = np.ones((3, 24), np.float32)
    with pytest.raises(
        ArgumentError, match=r"rows.s block count along x, cdiv\(%m, 16\) - 2, is -1 with m = 3"
    ):
        kernel(x, np.empty_like(x), 3)


def _refused(source: str) -> str:
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp").specialize(None)
    return str(caught.value)


@pytest.mark.parametrize(
    ("header", "body", "words"),
    [
        ("x: global f32[K, m], m: i32", "", "only a tensor's first dimension"),
        ("x: global f32[2 * m, K], m: i32", "", "an argument's name, not an expression"),
        ("x: global f32[m, K], m: i64", "", "must be an i32 argument, but m is i64"),
        ("x: global f32[m, K], m: i32", "t = load(x[:, :])\n", "a slice to its end"),
        ("x: global f32[m, n], m: i32, n: i32", "", "only a tensor's first dimension"),
    ],
)
def test_run_time_sizes_where_compile_time_ones_are_needed_are_located(
    header: str, body: str, words: str
) -> None:
    source = f"kernel k[K = 8](\n    {header},\n) blocks(1) threads(32) {{\n    {body}}}\n"
    text = _refused(source)
    assert words in text and "^" in text and "<source>:" in text, text


def test_a_block_count_read_from_a_tensor_says_what_to_do_instead() -> None:
    text = _refused(
        "kernel k(x: global f32[m], c: global i32[1], m: i32)\n"
        "blocks(cdiv(load(c[0]), 4)) threads(32) {\n}\n"
    )
    assert "'c' is a tensor argument of kernel k" in text and "<source>:2:18:" in text, text
    assert "pass the size as an i32 argument" in text and "if block.x * BM <" in text, text


def test_a_block_count_of_other_arithmetic_is_located() -> None:
    text = _refused("kernel k(x: global f32[m], m: i32)\nblocks(m % 4) threads(32) {\n}\n")
    assert "cannot be computed at launch" in text and "<source>:2:" in text, text


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_cuda_c_compiles(arch: str) -> None:
    cases = [(ROWS, {}), (COLUMN_SUMS, {}), (PACKED_ROWS, {"WT": "u3"}), (EMBEDDING, {})]
    for source, params in cases:
        code = lpir.compile(source, target="cuda", **params).source("cuda")
        compile_with_nvcc(code, arch, "ptx", strict=True)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
def test_run_time_sizes_on_the_gpu() -> None:
    test_rows_at_every_size_from_one_specialization("cuda")
    test_a_loop_over_a_run_time_number_of_rows("cuda")
    test_packed_rows("cuda", "u3")
    test_gathered_rows_of_a_table_whose_rows_are_counted_at_the_call("cuda")


def test_lpir_run_sizes_a_run_time_dimension_by_its_argument(tmp_path, capsys) -> None:
    from lpir.cli import main

    path = tmp_path / "rows.lp"
    path.write_text(ROWS)
    assert main(["run", str(path), "--check", "--arg", "m=037"]) == 0  # (decimal: 37)
    assert "0 of 888 outside" in capsys.readouterr().out  # 37 rows of 24
    table = tmp_path / "embedding.lp"
    table.write_text(EMBEDDING)
    assert main(["run", str(table), "--check", "--arg", "v=0", "--arg", "n=5"]) == 0
    for args, words in [
        (["--arg", "m=-4"], "m is the number of rows of x"),
        (["--arg", "m=200000000"], "give m an integer from 0 to 89478485"),
        (["--arg", "q=3"], "rows has no scalar argument q"),
        (["--arg", "m=3", "--arg", "m=4"], "--arg m is given twice"),
        (["--arg", "m=x"], "'x' is not a number"),
        (["--arg", "m=1_0"], "'1_0' is not a number"),  # (the source has no separators)
        (["--arg", "m=true"], "--arg m=true: m is i32"),
        (["--arg", "K=5"], "parameters are set with -D K=..."),
    ]:
        assert main(["run", str(path), *args]) == 1
        assert words in capsys.readouterr().err


def test_lpir_run_arg_on_an_ir_file_names_the_parameter_in_its_text(tmp_path, capsys) -> None:
    """`lpir run rows.ir --arg K=5` hinted "parameters are set with -D K=...", which an IR
    file refuses: its parameters are fixed in its text."""
    from lpir.cli import main

    path = tmp_path / "rows.ir"
    path.write_text(lpir.compile(ROWS, target="interp").ir("source"))
    assert main(["run", str(path), "--arg", "K=5"]) == 1
    err = capsys.readouterr().err
    assert "K = 24 is a parameter fixed in the IR text (edit it there)" in err
    assert "-D" not in err


def test_calls_of_different_sizes_from_two_threads_each_run_their_own_grid(monkeypatch) -> None:
    """A launcher kept the block count of the last call in shared state, read again after a
    point where Python may switch threads: one call could run another's number of blocks,
    leaving rows unwritten. A sleep at that point makes the switch happen every time."""
    import threading
    import time

    from lpir.backends.llvm import launch

    kernel = lpir.compile(ROWS, target="cpu")
    original = launch.Launcher.ranges

    def slow_ranges(self, *args):
        time.sleep(0.001)  # (where a thread switch may come)
        return original(self, *args)

    monkeypatch.setattr(launch.Launcher, "ranges", slow_ranges)
    wrong = []

    def calls(m: int) -> None:
        x = np.ones((m, 24), np.float32)
        for _ in range(30):
            y = np.zeros_like(x)
            kernel(x, y, m)
            wrong.extend([m] if not np.array_equal(y, _rows_expected(x)) else [])

    threads = [threading.Thread(target=calls, args=(m,)) for m in (16, 2048)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_grids_in_messages_are_written_as_the_ir_writes_them() -> None:
    source = ROWS.replace("[K = 24, BM = 16]", "[K = 24, BM = 16, H = 0]").replace(
        "blocks(cdiv(m, BM))", "blocks(cdiv(m, BM), H)"
    )
    kernel = lpir.compile(source, target="cpu")
    with pytest.raises(LpirError, match=r"the grid blocks\(cdiv\(%m, 16\), 0, 1\) is empty"):
        kernel.source("llvm")


def test_a_literal_zero_divisor_of_a_count_in_ir_text_is_located() -> None:
    text = "kernel @k[](%x: global f32[%m], %m: i32) blocks(cdiv(%m, 0), 1, 1) threads(32) {\n}\n"
    with pytest.raises(LpirError, match="<ir>:1:49: error: a block count divides by zero"):
        lpir.compile(text, target="cpu")


CEILINGS = """
kernel ceilings(a: global i32[8], b: global i32[8], y: global i32[8], z: global i32[8])
blocks(1) threads(32) {
    x = load(a[:])
    store(y[:], cdiv(x, load(b[:])))
    store(z[:], cdiv(x, 4))
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_cdiv_at_run_time_is_the_ceiling_constants_fold_to(target: str) -> None:
    """It was (a + b - 1) / b: cdiv(-5, 4) gave 0 where the folded constant is -1, and
    cdiv(2^31 - 1, 16) wrapped to a negative number (found by an explorer)."""
    a = np.array([-9, -8, -5, -1, 0, 1, 5, 2**31 - 1], np.int32)
    b = np.array([4, 4, 4, -4, -4, -4, -4, 16], np.int32)
    y, z = np.zeros(8, np.int32), np.zeros(8, np.int32)
    lpir.compile(CEILINGS, target=target)(a, b, y, z)
    np.testing.assert_array_equal(y, [-(-int(p) // int(q)) for p, q in zip(a, b)])
    np.testing.assert_array_equal(z, [-(-int(p) // 4) for p in a])


def test_a_run_time_count_is_the_ceiling_too() -> None:
    source = ROWS.replace("blocks(cdiv(m, BM))", "blocks(cdiv(m - 40, BM))")
    kernel = lpir.compile(source, target="cpu")
    x = np.ones((5, 24), np.float32)
    with pytest.raises(
        ArgumentError, match=r"<source>:4:10: .*cdiv\(%m - 40, 16\), is -2 with m = 5"
    ):
        kernel(x, np.empty_like(x), 5)


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_kernel_writing_a_view_of_packed_rows_leaves_the_next_row(target: str) -> None:
    """Rows 0..6 of u3 rows of 15 bits end inside the byte row 7 starts in: the interpreter
    wrote that byte back whole, zeroing row 7's first bits (found in review)."""
    kernel = lpir.compile(PACKED_ROWS, target=target, WT="u3", K=5)
    codes = np.full((16, 5), 7, np.uint8)
    buffer = lpir.pack_codes(codes, "u3")
    zeros = lpir.pack_codes(np.zeros((16, 5), np.uint8), "u3")
    kernel(zeros[:7], buffer[:7], 7)  # rows 0..6 become 1
    expected = codes.copy()
    expected[:7] = 1
    np.testing.assert_array_equal(buffer.codes(), expected)


def test_a_run_time_cdiv_keeps_the_bounds_the_index_analysis_proves() -> None:
    """cdiv's rounding step is a bool cast to an integer: without a range for it, a tile
    the analysis proved inside became masked (found in review)."""
    source = """
kernel halves(x: global f32[80], y: global f32[8, 16]) blocks(8) threads(16) {
    c = cdiv(block.x, 2)
    store(y[block.x, :], load(x[c * 16 :+ 16]))
}
"""
    final = lpir.compile(source, target="cpu").ir("final")
    assert "ld(%x, %8) {offsets" in final and " ge(" not in final and " lt(" not in final, final


UNSIGNED_CEILINGS = """
kernel ceilings(a: global u32[8], b: global u32[8], y: global u32[8]) blocks(1) threads(32) {
    store(y[:], cdiv(load(a[:]), load(b[:])))
}
"""


@pytest.mark.parametrize("target", ["interp", "cpu", "threads-cuda"])
def test_cdiv_of_unsigned_values(target: str) -> None:
    a = np.array([0, 1, 5, 8, 9, 2**32 - 1, 2**31, 7], np.uint32)
    b = np.array([4, 4, 4, 4, 4, 16, 3, 2**32 - 1], np.uint32)
    y = np.zeros(8, np.uint32)
    lpir.compile(UNSIGNED_CEILINGS, target=target)(a, b, y)
    np.testing.assert_array_equal(y, [-(-int(p) // int(q)) for p, q in zip(a, b)])


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_unsigned_cdiv_compiles_without_a_pointless_comparison() -> None:
    code = lpir.compile(UNSIGNED_CEILINGS, target="cuda").source("cuda")
    compile_with_nvcc(code, "sm_90", "ptx", strict=True)


def test_a_count_wraps_as_the_same_i32_arithmetic_in_the_body() -> None:
    source = """
kernel wraps(out: global i32[16], m: i32) blocks(cdiv(m * 65536, 1073741824)) threads(1) {
    store(out[block.x :+ 1], zeros<i32>[1] + cdiv(m * 65536, 1073741824))
}
"""
    kernel = lpir.compile(source, target="cpu")
    out = np.zeros(16, np.int32)
    kernel(out, 3)
    assert out[0] == 1 and not out[1:].any()
    with pytest.raises(ArgumentError, match="is -1 with m = 100000"):  # (-1 in the body too)
        kernel(out, 100000)


def test_a_keyword_given_twice_to_a_builtin_is_located() -> None:
    text = _refused(
        "kernel k(x: global f32[8], y: global f32[8]) blocks(1) threads(32) {\n"
        "    store(y[:], load(x[:], other = 2.0, other = 3.0))\n}\n"
    )
    assert "'other' is given twice" in text and "<source>:2:41:" in text, text


def test_bytes_and_flops_of_a_call_count_its_grid(tmp_path, capsys) -> None:
    from lpir.cli import main
    from lpir.ir import parse
    from lpir.runner import accessed_bytes

    kernel = parse(lpir.compile(ROWS, target="interp").ir("source")).kernels[0]
    assert accessed_bytes(kernel) is None  # (the grid is known only at a call)
    assert accessed_bytes(kernel, (3, 1, 1)) == 3 * 2 * 16 * 24 * 4
    path = tmp_path / "rows.lp"
    path.write_text(ROWS)
    assert main(["run", str(path), "--bench", "--arg", "m=40"]) == 0
    assert " GB/s" in capsys.readouterr().out
