"""`lpir run --check` on a kernel without a companion: the tolerance comes from the kernel.

A kernel that adds many values in an order of each target's choosing (a `sum`, a `dot`, an
atomic add) is compared within 1e-4 of its outputs' largest magnitude, an elementwise one
within a few f32 roundings; a narrower output dtype widens that output's relative tolerance to
one unit in its last place (and only that output's). Before, every companion-less kernel got
rtol 1e-5 / atol 1e-6, and a correct GEMV over K = 4096 failed its check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lpir.passes import get_pass

import lpir
from lpir.errors import LpirError
from lpir.ir import Module
from lpir.runner import compare, default_tolerance, dot_flops, run_file

# y = W @ x by f32-accumulated dots: the CPU adds in another order than the interpreter, and
# 5 % of the outputs differ by more than rtol 1e-5 / atol 1e-6 (up to 3e-4 at outputs of ~200)
GEMV_DOT = """
kernel gemv_dot[T = f32, N = 256, K = 4096, BN = 64, BK = 128](
    w: global f16[N, K], x: global f16[K], y: global T[N],
) blocks(cdiv(N, BN)) threads(128) {
    acc = zeros<f32>[BN, 1]
    for k0 in range(0, K, BK) {
        acc = dot(load(w[block.x * BN :+ BN, k0 :+ BK]), load(x[k0 :+ BK])[:, None], acc)
    }
    store(y[block.x * BN :+ BN], cast<T>(sum(acc, axis = 1)))
}
"""

SCALE = """
kernel scale[N = 1000](x: global f32[N], y: global f32[N]) blocks(cdiv(N, 256)) threads(128) {
    i = block.x * 256
    store(y[i :+ 256], exp(load(x[i :+ 256])) * 0.5 + 1.0)
}
"""


def tile_ir(source: str, **params):
    kernel = lpir.compile(source, target="interp", **params)
    return kernel.specialize(None).kernel_ir


def test_a_long_sum_is_checked_against_its_largest_output(tmp_path, capsys):
    path = tmp_path / "gemv_dot.lp"
    path.write_text(GEMV_DOT)
    assert run_file(path, target="cpu", check=True)
    assert "sums in another order" in capsys.readouterr().out


def test_an_elementwise_kernel_is_checked_within_f32_roundings(tmp_path, capsys):
    path = tmp_path / "scale.lp"
    path.write_text(SCALE)
    assert run_file(path, target="cpu", check=True)
    assert "rtol=1e-05 atol=1e-06" in capsys.readouterr().out


def test_the_tolerance_is_relative_to_the_largest_output_and_catches_more():
    expected = np.linspace(-300.0, 300.0, 64).astype(np.float32)
    rtol, atol, _ = default_tolerance(tile_ir(GEMV_DOT), {2: expected})[2]
    assert rtol == 1e-4 and atol == pytest.approx(1e-4 * 300.0)
    near = expected + np.float32(0.5 * atol)
    assert compare("y", near, expected, rtol, atol)[0]
    # an error of 1e-3 of the largest output, at a small output, is beyond it
    far = expected.copy()
    far[31] += np.float32(1e-3 * 300.0)
    assert not compare("y", far, expected, rtol, atol)[0]


@pytest.mark.parametrize(("dtype", "ulp"), [("f16", 2.0**-10), ("bf16", 2.0**-7)])
def test_a_narrow_output_is_allowed_one_unit_in_its_last_place(dtype, ulp):
    expected = np.linspace(1.0, 2.0, 64).astype(np.float32)
    rtol, _, _ = default_tolerance(tile_ir(GEMV_DOT, T=dtype), {2: expected})[2]
    assert rtol == ulp


def test_an_elementwise_kernel_gets_no_magnitude_allowance():
    expected = np.full(1000, 1e4, np.float32)
    rtol, atol, why = default_tolerance(tile_ir(SCALE), {1: expected})[1]
    assert (rtol, atol) == (1e-5, 1e-6)
    assert "one rounding per output" in why


def test_a_companion_without_a_tolerance_gets_the_kernels_own(tmp_path, capsys):
    """Its numpy reference (here in float64) is compared within the kernel's default tolerance,
    also where the target is the interpreter itself (nothing else to compare with)."""
    (tmp_path / "scale.lp").write_text(SCALE)
    (tmp_path / "scale.py").write_text(
        "import numpy as np\n"
        "def make_inputs(params, rng):\n"
        "    return [rng.standard_normal(1000).astype(np.float32), np.zeros(1000, np.float32)]\n"
        "def reference(params, args):\n"
        "    return {1: (np.exp(args[0].astype(np.float64)) * 0.5 + 1.0).astype(np.float32)}\n"
    )
    assert run_file(tmp_path / "scale.lp", target="interp", check=True)
    assert "rtol=1e-05 atol=1e-06" in capsys.readouterr().out


# fp8 codes and their f32 scale: the scale must not inherit fp8's one-in-eight tolerance
ROW_QUANT = """
kernel row_quant[M = 37, N = 1000](x: global f32[M, N], q: global f8e4m3[M, N], s: global f32[M])
        blocks(M) threads(128) {
    t = load(x[block.x, :])
    let scale = max(max(abs(t)), 1e-12) / 448.0
    store(q[block.x, :], cast<f8e4m3>(t / scale))
    store(s[block.x], scale)
}
"""


def test_each_output_has_its_own_tolerance(tmp_path, capsys):
    kernel = tile_ir(ROW_QUANT)
    tolerances = default_tolerance(kernel, {1: np.ones((37, 1000)), 2: np.ones(37)})
    assert tolerances[1][0] == 2.0**-3  # one fp8 e4m3 unit in the last place
    assert tolerances[2][:2] == (1e-5, 1e-6)  # a max is exact in any order: f32 roundings
    path = tmp_path / "row_quant.lp"
    path.write_text(ROW_QUANT)
    assert run_file(path, target="cpu", check=True)
    out = capsys.readouterr().out
    assert "tolerance of arg 1: rtol=0.125" in out
    assert "tolerance of arg 2: rtol=1e-05 atol=1e-06" in out


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("example", "params", "flops"),
    [
        # 2 x 64 x 64 x 32 a step, K / 32 steps, 2 x 1 blocks (rows past M = 100 count whole)
        ("matmul_wq", {"M": 100, "N": 64, "K": 256}, 2 * 64 * 64 * 32 * 8 * 2),
        # two dots a key tile (64 x 32 x 64 and 64 x 64 x 32), 256 / 32 tiles, 4 x 4 blocks
        ("attention", {}, 2 * (2 * 64 * 32 * 64) * 8 * 16),
        ("attention", {"CAUSAL": 1}, None),  # the key loop stops at a run-time bound
        ("gemv_wq", {}, 0),  # no dot
    ],
)
def test_dot_flops_count_every_dot_a_kernel_runs(example, params, flops):
    kernel = tile_ir((EXAMPLES / f"{example}.lp").read_text(), **params)
    folded = get_pass("canonicalize").run(Module([kernel])).kernels[0]
    assert dot_flops(folded) == flops


def test_bench_prints_the_rate_of_a_kernels_dots(tmp_path, capsys):
    path = tmp_path / "gemv_dot.lp"
    path.write_text(GEMV_DOT)
    assert run_file(path, target="cpu", bench=True, params={"N": 64, "K": 256})
    out = capsys.readouterr().out
    assert "GB/s" in out and "GFLOP/s (dots)" in out
    path = tmp_path / "scale.lp"
    path.write_text(SCALE)
    assert run_file(path, target="cpu", bench=True)
    assert "GFLOP/s" not in capsys.readouterr().out


def test_bench_shows_a_companions_reference_as_no_peer(capsys):
    """gemv_wq's reference dequantizes into float64 (300-400 ms): `--bench` printed it as
    "numpy" with "lpir is 265-367x", a ratio against no fair peer."""
    example = EXAMPLES / "gemv_wq.lp"
    assert run_file(str(example), target="cpu", bench=True, params={"N": 256, "K": 512})
    out = capsys.readouterr().out
    assert "  ref  " in out
    assert "(gemv_wq.py's reference: written to check results, often in float64, " in out
    assert "not a performance peer)" in out
    assert "numpy" not in out and "lpir is" not in out


# rows of a table gathered by ids (u16, read through a cast), and a scale looked up by the id
# of each block's row (i64): random ids must lie inside the table, or every read falls past its
# edge (0) and the check compares zeros
EMBED = """
kernel embed[N = 64, V = 1000, D = 256, R = 300](
    ids: global u16[N], rows: global i64[N], table: global f32[V, D], scale: global f32[R],
    out: global f32[N, D],
) blocks(N) threads(64) {
    s = load(scale[cast<i32>(load(rows[block.x]))])
    store(out[block.x, :], load(table[cast<i32>(load(ids[block.x])), :]) * s)
}
"""


def test_random_positions_lie_inside_the_tensors_they_index():
    from lpir.runner import index_bounds, random_arguments

    kernel = lpir.compile(EMBED, target="cpu")
    spec = kernel.specialize(None)
    assert index_bounds(tile_ir(EMBED)) == {0: 1000, 1: 300}
    ids, rows, table, scale, out = random_arguments(spec, np.random.default_rng(0))
    assert ids.max() < 1000 and rows.max() < 300 and len(set(ids.tolist())) > 50
    kernel(ids, rows, table, scale, out)
    np.testing.assert_array_equal(out, table[ids] * scale[rows][:, None])
    assert np.count_nonzero(out) == out.size  # every row a row of the table


# the same rows read as a tile gather: a tile of ids, one table row per element
TILE_GATHER = """
kernel tile_gather[N = 64, V = 1000, D = 256, BT = 8](
    ids: global u16[N], table: global f32[V, D], out: global f32[N, D],
) blocks(N / BT) threads(64) {
    i = cast<i32>(load(ids[block.x * BT :+ BT]))
    store(out[block.x * BT :+ BT, :], load(table[i, :]))
}
"""


def test_random_positions_of_a_tile_gather_lie_inside_the_table():
    from lpir.runner import index_bounds, random_arguments

    assert index_bounds(tile_ir(TILE_GATHER)) == {0: 1000}
    spec = lpir.compile(TILE_GATHER, target="interp").specialize(None)
    ids = random_arguments(spec, np.random.default_rng(0))[0]
    assert ids.max() < 1000 and len(set(ids.tolist())) > 50


# a loop whose end each block reads from a tensor (paged attention's context lengths)
LOOP_TO_LENGTH = """
kernel running_sum[B = 4, N = 256, BT = 16](
    lengths: global i32[B], x: global f32[B, N], out: global f32[B],
) blocks(B) threads(16) {
    let n = load(lengths[block.x])
    s = zeros<f32>[BT]
    for t0 in range(0, n, BT) {
        s = s + load(x[block.x, t0 :+ BT], mask = t0 + arange(BT) < n)
    }
    store(out[block.x :+ 1], full<f32>[1](sum(s, axis = 0)))
}
"""


def test_random_loop_ends_read_from_a_tensor_take_a_few_steps():
    """`lpir run paged_attention.lp --check` without its companion drew context lengths up to
    2^16: the online softmax ran some 2600 steps, whose roundings the tolerance does not
    count, and the check reported a FAIL (max |err| 0.000999 against 0.00039)."""
    from lpir.runner import RANDOM_LOOP_STEPS, loop_bounds, random_arguments

    assert loop_bounds(tile_ir(LOOP_TO_LENGTH)) == {0: RANDOM_LOOP_STEPS * 16 + 1}
    spec = lpir.compile(LOOP_TO_LENGTH, target="interp").specialize(None)
    for seed in range(4):
        lengths = random_arguments(spec, np.random.default_rng(seed))[0]
        assert lengths.min() >= 0 and lengths.max() <= RANDOM_LOOP_STEPS * 16


def test_lpir_run_checks_a_gather_on_rows_that_exist(tmp_path, capsys):
    path = tmp_path / "embed.lp"
    path.write_text(EMBED)
    assert run_file(str(path), target="cpu", check=True)
    assert "0 of 16384 outside" in capsys.readouterr().out


def test_accessed_bytes_count_what_the_tiles_move():
    from lpir.runner import accessed_bytes

    # a block reads an id (2 bytes), a row number (8), a scale (4) and a row of the table
    # (1 KiB), and writes a row of out (1 KiB): 64 blocks
    assert accessed_bytes(tile_ir(EMBED)) == 64 * (2 + 8 + 4 + 2 * 256 * 4)
    # gemv_wq at N = K = 256: each of the 4 blocks reads its 64 x 256 u4 weights, 2 scales a
    # row, x twice (once a step of 128) and writes 64 floats
    kernel = tile_ir((EXAMPLES / "gemv_wq.lp").read_text(), N=256, K=256)
    folded = get_pass("canonicalize").run(Module([kernel])).kernels[0]
    assert accessed_bytes(folded) == 4 * (64 * 256 // 2 + 2 * 64 * 4 + 256 * 4 + 64 * 4)


def test_bench_counts_a_gathers_rows_not_its_whole_table(tmp_path, capsys):
    """A gather of 64 rows of a 1000-row table moves 130 KiB, not the table's 1 MiB."""
    path = tmp_path / "embed.lp"
    path.write_text(EMBED)
    assert run_file(str(path), target="cpu", bench=True)
    line = next(line for line in capsys.readouterr().out.splitlines() if "GB/s" in line)
    milliseconds, rate = float(line.split()[1]), float(line.split()[3])
    moved = rate * 1e9 * milliseconds / 1e3  # from rounded figures: within a few percent
    assert 0.8 < moved / (64 * (14 + 2 * 1024)) < 1.25  # the whole table would be 8x


# the row a block writes is half a loaded id: random ids are kept inside y's rows only where
# they index it directly, so here nothing lands in y
WRITES_NOTHING = """
kernel writes_nothing[NT = 4, D = 8, R = 4](
    idx: global i32[NT], x: global f32[NT, D], y: global f32[R, D],
) blocks(NT) threads(32) {
    let i = load(idx[block.x])
    store(y[i / 2 + R, :], load(x[block.x, :]))
}
"""


def test_a_check_that_compared_nothing_says_so(tmp_path, capsys):
    path = tmp_path / "writes_nothing.lp"
    path.write_text(WRITES_NOTHING)
    assert run_file(str(path), target="cpu", check=True)
    assert "no argument changed" in capsys.readouterr().out


def test_a_companion_may_bound_each_element_from_the_inputs(capsys):
    """gemv_mx's rows mix blocks scaled 2^-127 to 2^73 whose terms cancel: its tolerance is
    per element, on each sum of |terms| (a bound of the output alone failed 3 of 4096)."""
    example = Path(__file__).parent.parent / "examples" / "gemv_mx.lp"
    for seed in range(3):
        assert run_file(str(example), target="cpu", check=True, seed=seed)
    assert "atol=per element, up to" in capsys.readouterr().out


def test_thread_ir_that_sums_lanes_is_checked_as_a_long_sum(tmp_path, capsys):
    """skinny_wq's thread IR sums lanes of products (defer-lane-sums), which the CPU contracts
    into FMAs and the thread interpreter rounds apart: 2 of 512 outputs that cancel differed
    by 1-2 ulps of their terms and failed a tolerance of one rounding per output."""
    from lpir.tools import emit

    params = {"M": 4, "N": 128, "K": 256, "MB": 4}
    path = tmp_path / "skinny.ir"
    path.write_text(emit("examples/skinny_wq.lp", "cpu", "ir", params, None))
    assert "reduce_lanes" in path.read_text()
    assert run_file(str(path), target="cpu", check=True)
    assert "sums in another order" in capsys.readouterr().out


# ---- a faulty companion: an LpirError placed in it, saying what to write or return ----------
ADD = """
kernel add[N = 64](x: global f32[N], y: global f32[N], z: global f32[N]) blocks(1) threads(64) {
    store(z[0 :+ 64], load(x[0 :+ 64]) + load(y[0 :+ 64]))
}
"""
INPUTS = (
    "import numpy as np\n"
    "def make_inputs(params, rng):\n"
    "    return [np.ones(64, np.float32), np.ones(64, np.float32), np.zeros(64, np.float32)]\n"
)


def faulty_companion(tmp_path: Path, companion: str) -> LpirError:
    (tmp_path / "add.lp").write_text(ADD)
    (tmp_path / "add.py").write_text(companion)
    with pytest.raises(LpirError) as caught:
        run_file(tmp_path / "add.lp", target="interp", check=True)
    return caught.value


def reference_returning(value: str) -> str:
    return INPUTS + f"def reference(params, args):\n    return {value}\n"


@pytest.mark.parametrize(
    ("returned", "message", "hint"),
    [
        ('{"z": args[0] + args[1]}', "keyed by argument name ('z')", "index: 2 for z"),
        ("[args[0] + args[1]]", "returned a list of 1", "return a dict {argument index: "),
        ("None", "returned None", "e.g. {2: ...} for z"),
        ("{5: args[0]}", "the key 5, but the kernel has 3 arguments: x, y, z", "(0 to 2)"),
        ("{2.0: args[0]}", "the key 2.0, which is not an argument index", "(0 to 2)"),
        ("{}", "returned an empty dict: it would check nothing", "by its argument index"),
    ],
)
def test_a_reference_that_returns_no_dict_of_indices(tmp_path, returned, message, hint):
    """These were TypeErrors, KeyErrors or IndexErrors with a traceback into lpir/runner.py."""
    error = faulty_companion(tmp_path, reference_returning(returned))
    assert str(error).startswith(f"{tmp_path / 'add.py'}:4:5: error: the companion's reference")
    assert message in error.message and hint in error.hint, str(error)
    assert "def reference(params, args):\n        ^^^^^^^^^" in str(error)


@pytest.mark.parametrize(
    ("returned", "message"),
    [("None", "returned None"), ("5", "returned an int (5)"), ("[1, 2]", "returned 2 arguments")],
)
def test_make_inputs_that_returns_no_list_of_the_arguments(tmp_path, returned, message):
    error = faulty_companion(
        tmp_path,
        f"def make_inputs(params, rng):\n    return {returned}\n"
        "def reference(params, args):\n    return {2: args[0] + args[1]}\n",
    )
    assert str(error).startswith(f"{tmp_path / 'add.py'}:1:5: error: the companion's make_inputs")
    assert message in error.message and "in declaration order: [x, y, z]" in error.hint


def test_a_companion_with_a_syntax_error_is_an_error_at_its_line(tmp_path):
    """It was taken for no companion: --check passed without comparing with numpy."""
    error = faulty_companion(
        tmp_path, INPUTS + "def reference(params, args)\n    return {2: args[0] + args[1]}\n"
    )
    assert str(error).startswith(f"{tmp_path / 'add.py'}:4:28: error: the companion is not valid")
    assert "expected ':'" in error.message and "def reference(params, args)\n" in str(error)


def test_an_unparsable_script_that_names_no_companion_function_is_no_companion(tmp_path):
    (tmp_path / "add.lp").write_text(ADD)
    (tmp_path / "add.py").write_text("print 'a Python 2 script'\n")
    assert run_file(tmp_path / "add.lp", target="interp", check=True)


def test_a_companion_name_bound_to_no_function(tmp_path):
    """`reference = 5` was "defines make_inputs but not reference"."""
    error = faulty_companion(tmp_path, INPUTS + "reference = 5\n")
    assert str(error).startswith(f"{tmp_path / 'add.py'}:4:1: error: the companion's reference")
    assert "is an int (5), not a function" in error.message
    assert "def reference(params, args)" in error.hint
    error = faulty_companion(
        tmp_path, reference_returning("{2: args[0] + args[1]}") + "tolerance = 1e-5\n"
    )
    assert "the companion's tolerance is a float (1e-05), not a function" in error.message


def test_a_tolerance_that_returns_no_triple(tmp_path):
    error = faulty_companion(
        tmp_path,
        reference_returning("{2: args[0] + args[1]}") + "def tolerance(params):\n    return 1e-5\n",
    )
    assert "the companion's tolerance returned a float (1e-05)" in error.message
    assert "return (rtol, atol, why)" in error.hint


def test_lpir_run_reports_a_faulty_companion_without_a_traceback(tmp_path, capsys):
    from lpir.cli import main

    (tmp_path / "add.lp").write_text(ADD)
    (tmp_path / "add.py").write_text(reference_returning('{"z": args[0] + args[1]}'))
    assert main(["run", str(tmp_path / "add.lp"), "--check"]) == 1
    assert "keyed by argument name ('z')" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("returned", "described"),
    [
        ("{2: None}", "None"),
        ("{2: 'abc'}", "a str ('abc')"),
        ("{2: np.array([object()] * 64)}", "an array of object of shape [64]"),
        ("{2: [[1.0, 2.0], [3.0]]}", "a list of 2"),
    ],
)
def test_a_reference_value_that_is_not_an_array_of_numbers(tmp_path, returned, described):
    """An object array was a TypeError traceback in runner.compare; None and 'abc' said
    "shape (64,), expected ()"."""
    error = faulty_companion(tmp_path, reference_returning(returned))
    assert str(error).startswith(f"{tmp_path / 'add.py'}:4:5: error: the companion's reference")
    assert error.message.endswith(
        f"returned {described} for argument 2 (z), not an array of numbers"
    )
    assert "z's expected values as a numpy array of numbers" in error.hint


@pytest.mark.parametrize(
    ("stated", "message"),
    [
        ("(0.0, float('nan'), 'why')", "returned atol = nan; a tolerance is a finite number"),
        ("(-1.0, 1e-6, 'why')", "returned rtol = -1.0; a tolerance is a finite number, 0 or more"),
        ("(1e-5, -5, 'why')", "returned atol = -5.0"),
        ("(0.0, float('inf'), 'why')", "returned atol = inf"),
        ("(1e-5, np.array([1e-6, -1.0]), 'why')", "returned atol = -1.0"),
        ("('a', 'b', 'c')", "a tuple of 3 with rtol a str ('a') and atol a str ('b'): rtol must"),
        ("[1e-5, None, 'why']", "a list of 3 with atol None: rtol must be a number"),
    ],
)
def test_a_tolerance_that_is_no_finite_bound(tmp_path, stated, message, recwarn):
    """NaN or negative tolerances were accepted (numpy's "rtol or atol is not valid" warning
    leaked and a NaN atol failed every element); ('a', 'b', 'c') said "a tuple of 3"."""
    error = faulty_companion(
        tmp_path,
        reference_returning("{2: args[0] + args[1]}")
        + f"def tolerance(params):\n    return {stated}\n",
    )
    assert str(error).startswith(f"{tmp_path / 'add.py'}:6:5: error: the companion's tolerance")
    assert message in error.message, error.message
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize(
    "wrapped",
    [
        "if True:\n{body}",
        "try:\n{body}except ImportError:\n    pass\n",
        "if False:\n    pass\nelse:\n{body}",
    ],
)
def test_a_companion_whose_functions_sit_under_a_statement_is_one(tmp_path, capsys, wrapped):
    """Only top-level defs were read: a companion under `if True:` was taken for no companion,
    so --check passed without the numpy reference."""
    body = reference_returning("{2: args[0] - args[1]}")  # wrong on purpose: z is x + y
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    (tmp_path / "add.lp").write_text(ADD)
    (tmp_path / "add.py").write_text(wrapped.format(body=indented))
    assert not run_file(tmp_path / "add.lp", target="interp", check=True)
    assert "FAIL  arg 2 vs numpy" in capsys.readouterr().out
    (tmp_path / "add.py").write_text(wrapped.format(body=indented.replace(" - ", " + ")))
    assert run_file(tmp_path / "add.lp", target="interp", check=True)


INT_AND_FLOAT_DOTS = """
kernel two_dots[M = 16, K = 32](a: global i8[M, K], c: global i32[M, M],
    fa: global f32[M, K], fc: global f32[M, M]) blocks(1) threads(32) {
    t = load(a[:, :])
    store(c[:, :], dot(t, transpose(t)))
    f = load(fa[:, :])
    store(fc[:, :], dot(f, transpose(f)))
}
"""


def test_an_integer_output_compared_exactly_shows_no_tolerance(tmp_path, capsys):
    """`lpir run --check` printed a tolerance line for an i32 output it had just called exact."""
    path = tmp_path / "two_dots.lp"
    path.write_text(INT_AND_FLOAT_DOTS)
    assert run_file(path, target="cpu", check=True)
    out = capsys.readouterr().out
    assert "arg 1 vs interpreter: 0 of 256 elements differ (exact)" in out
    assert "tolerance of arg 3: rtol=0.0001" in out
    assert "tolerance of arg 1" not in out and "tolerance:" not in out


# A kernel whose output order its atomics choose: each element takes a slot of one counter.
SLOTS = """
kernel slots[N = 64](x: global i32[N], y: global i32[N], c: global i32[1]) blocks(1) threads(32) {
    store(y[atomic_add(c[zeros<i32>[N]], ones<i32>[N])], load(x[0 :+ N]))
}
"""


def test_a_companion_may_put_an_unordered_output_in_one_order(tmp_path, capsys):
    """Which element takes which slot is up to the targets (the interpreter's row-major
    order, a GPU's any): `reference` gives y sorted, and `canonical` sorts y before every
    comparison; without it y (here x in the interpreter's order) is not the reference's, and
    the failure says why."""
    (tmp_path / "slots.lp").write_text(SLOTS)
    companion = (
        "import numpy as np\n"
        "def make_inputs(params, rng):\n"
        "    return [rng.permutation(64).astype(np.int32), np.zeros(64, np.int32),\n"
        "            np.zeros(1, np.int32)]\n"
        "def reference(params, args):\n"
        "    return {1: np.sort(args[0]), 2: np.array([64], np.int32)}\n"
    )
    (tmp_path / "slots.py").write_text(companion)
    assert not run_file(tmp_path / "slots.lp", target="threads-cuda", check=True)
    out = capsys.readouterr().out
    assert "FAIL  arg 1 vs numpy" in out
    assert "the kernel uses atomics' old values" in out
    canonical = "def canonical(params, outputs):\n    outputs[1].sort()\n    return outputs\n"
    (tmp_path / "slots.py").write_text(companion + canonical)
    assert run_file(tmp_path / "slots.lp", target="threads-cuda", check=True)
    out = capsys.readouterr().out
    assert "ok    arg 1 vs interpreter" in out and "ok    arg 1 vs numpy" in out


def test_a_canonical_that_returns_no_list(tmp_path):
    error = faulty_companion(
        tmp_path,
        reference_returning("{2: args[0] + args[1]}")
        + "def canonical(params, outputs):\n    outputs[2].sort()\n",
    )
    assert str(error).startswith(f"{tmp_path / 'add.py'}:6:5: error: the companion's canonical")
    assert "returned None" in error.message
    assert "return the 3 arguments it was given as a list" in error.hint
