"""IR text files compile and run as they are: `lpir.compile("k.ir")`, `lpir run`, `lpir opt`.

They are already specialized, so parameters (`-D`) are an error rather than silently ignored;
`--kernel` picks one kernel; calls check arguments against the IR types.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lpir
from lpir.cli import main
from lpir.errors import ArgumentError, LpirError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

DOUBLE = """\
kernel @double[N = 64](%x: global f32[64], %s: f32) blocks(1, 1, 1) threads(32) {
  %0 = constant {value = 0} : i32
  %t = load_global(%x, %0) {dims = [0], shape = [64]} : f32[64]
  %v = splat(%s) {shape = [64]} : f32[64]
  %u = mul(%t, %v) : f32[64]
  store_global(%x, %0, %u) {dims = [0]}
}
"""
THREAD = """\
kernel @ids[](%y: global i32[32]) blocks(1, 1, 1) threads(32) stage(thread) {
  %tid = thread_index : i32
  %v = splat(%tid) {shape = [1]} : <1 x i32>
  st(%y, %tid, %v) {offsets = [0]}
}
"""


@pytest.fixture
def double_ir(tmp_path: Path) -> Path:
    path = tmp_path / "double.ir"
    path.write_text(DOUBLE)
    return path


@pytest.mark.parametrize("target", ["interp", "threads", "cpu"])
def test_an_ir_file_compiles_and_runs(double_ir: Path, target: str):
    kernel = lpir.compile(double_ir, target=target)
    x = np.arange(64, dtype=np.float32)
    kernel(x, 2.0)
    np.testing.assert_array_equal(x, 2 * np.arange(64, dtype=np.float32))
    assert kernel.name == "double" and kernel.params == {"N": 64}


def test_parameters_are_an_error_for_ir(double_ir: Path):
    with pytest.raises(LpirError, match=r"parameters \(N\) apply to kernel sources \(.lp\)"):
        lpir.compile(double_ir, target="interp", N=128)


def test_arguments_are_checked_against_the_ir_types(double_ir: Path):
    kernel = lpir.compile(double_ir, target="interp")
    with pytest.raises(ArgumentError, match="takes 2 arguments"):
        kernel(np.zeros(64, np.float32))
    with pytest.raises(ArgumentError, match=r"must be global f32\[64\], got an array of float64"):
        kernel(np.zeros(64), 1.0)
    with pytest.raises(ArgumentError, match=r"must be global f32\[64\]") as caught:
        kernel(np.zeros(32, np.float32), 1.0)
    where = caught.value.location  # the argument's declaration, not the kernel's first column
    assert (where.line, where.column) == (1, 24) and str(caught.value).count("^") == len(
        "%x: global f32[64]"
    )


def test_thread_ir_runs_on_the_thread_interpreter_not_the_reference_one(tmp_path: Path):
    path = tmp_path / "ids.ir"
    path.write_text(THREAD)
    y = np.zeros(32, np.int32)
    lpir.compile(path, target="threads")(y)
    np.testing.assert_array_equal(y, np.arange(32))
    with pytest.raises(LpirError, match="the reference interpreter runs tile IR") as caught:
        lpir.compile(path, target="interp")
    assert caught.value.location is not None


def test_cli_refuses_definitions_and_unknown_kernels_for_ir(double_ir: Path, capsys):
    assert main(["opt", str(double_ir), "-D", "N=4"]) == 1
    assert "parameters (N) apply to kernel sources (.lp)" in capsys.readouterr().err
    assert main(["run", str(double_ir), "--target", "interp", "-D", "N=4"]) == 1
    assert "already specialized" in capsys.readouterr().err
    assert main(["opt", str(double_ir), "--kernel", "triple"]) == 1
    assert "no kernel named 'triple'" in capsys.readouterr().err
    assert main(["run", str(double_ir), "--target", "interp", "--kernel", "double"]) == 0
    assert main(["emit", str(double_ir), "--what", "ir"]) == 0
    assert "stage(thread)" in capsys.readouterr().out


def test_malformed_ir_is_one_diagnostic_and_status_1(tmp_path: Path, capsys):
    path = tmp_path / "bad.ir"
    path.write_text(DOUBLE.replace("{dims = [0], shape = [64]}", "{dims = [0]}"))
    commands = (["opt"], ["opt", "--no-verify", "-p", "canonicalize"], ["run"], ["emit"])
    for command in commands:
        assert main([*command, str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"{path}:3:8: error: 'load_global': missing attribute 'shape'")
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "text, line",
    [
        # an add of one operand: canonicalize raised a ValueError; an unknown reduce kind
        # failed unlocated inside a pass
        (DOUBLE.replace("mul(%t, %v)", "add(%t)"), 5),
        (
            DOUBLE.replace(
                "%u = mul(%t, %v) : f32[64]", '%u = reduce(%t) {axis = 0, kind = "maxx"} : f32[]'
            ),
            5,
        ),
    ],
)
def test_opt_no_verify_still_verifies_its_input(tmp_path: Path, capsys, text: str, line: int):
    """`lpir opt --no-verify` skipped verifying the input too (not only between passes, as its
    help says): malformed IR reached the passes and failed with tracebacks."""
    path = tmp_path / "bad.ir"
    path.write_text(text)
    assert main(["opt", "--no-verify", "-p", "canonicalize,cse", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{line}:8: error: "), err
    assert "Traceback" not in err


def test_thread_ir_lowered_for_cuda_says_so_on_the_cpu(tmp_path: Path, capsys):
    """`lpir run softmax.cuda.ir --target cpu` said only "the LLVM backend cannot emit
    'shfl_xor'", not that the IR was lowered for CUDA, nor which targets run it."""
    path = tmp_path / "warp.ir"
    path.write_text(
        THREAD.replace(
            "  st(%y, %tid, %v)",
            "  %w = shfl_xor(%v) {mask = 1} : <1 x i32>\n  st(%y, %tid, %w)",
        )
    )
    assert main(["run", str(path), "--target", "cpu"]) == 1
    err = capsys.readouterr().err
    message = "error: the LLVM backend cannot emit 'shfl_xor': this thread IR was lowered for CUDA"
    assert err.startswith(f"{path}:4:8: {message}\n"), err
    assert "hint: run it with --target cuda or cuda-host" in err


def test_a_file_with_no_kernel_says_so(tmp_path: Path, capsys):
    """An empty IR file (or one of comments) said "holds 0 kernels (none)" with the hint
    "choose one with --kernel NAME"."""
    for text in ("", "// nothing yet\n"):
        path = tmp_path / "empty.ir"
        path.write_text(text)
        assert main(["run", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: empty.ir holds no kernel\nhint: write a kernel in it"), err
        assert "--kernel" not in err


def test_ir_text_in_a_file_not_named_ir_says_to_rename_it(tmp_path: Path, capsys):
    """IR text in a file named .txt got a source syntax error at the '@' of `kernel @`."""
    path = tmp_path / "double.txt"
    path.write_text(DOUBLE)
    for command in (["run"], ["opt"]):
        assert main([*command, str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"{path}:1:8: error: double.txt holds IR text, but only files "), err
        assert "hint: rename it double.ir" in err
    with pytest.raises(LpirError, match=r"rename it double\.ir"):
        lpir.compile(str(path), target="interp")


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_print_after_all_without_passes_prints_the_whole_pipeline(target, capsys):
    """`lpir opt k.lp --print-after-all` shows the IR after each pass the target's compile
    runs (it printed nothing, no pass being named); without the flag, the IR as parsed."""
    from lpir.passes import PIPELINES

    source = str(Path(__file__).parent.parent / "examples" / "vector_add.lp")
    assert main(["opt", source, "--target", target, "--print-after-all"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("// -----// IR after")]
    assert [h.split()[4] for h in headers] == list(PIPELINES[target])
    assert main(["opt", source]) == 0
    assert "IR after" not in capsys.readouterr().out


def test_an_ir_kernel_takes_arguments_by_name(double_ir: Path):
    kernel = lpir.compile(double_ir, target="cpu")
    x = np.arange(64, dtype=np.float32)
    kernel(x, s=3.0)
    np.testing.assert_array_equal(x, 3 * np.arange(64, dtype=np.float32))
    with pytest.raises(ArgumentError, match="has no argument 'scale'"):
        kernel(x, scale=3.0)


def test_an_ir_file_that_is_not_utf8_is_a_located_error(tmp_path: Path):
    path = tmp_path / "latin1.ir"
    path.write_bytes(DOUBLE.replace("%u = mul", "%\xe9 = mul").encode("latin-1"))
    with pytest.raises(LpirError, match=r"latin1.ir:5:\d+: .*not UTF-8"):
        lpir.compile(path, target="interp")


def test_cse_keeps_each_kernel_of_a_file_to_itself(tmp_path: Path):
    """cse once reused the first kernel's constants in the second ("operand 1 is used before
    it is defined")."""
    path = tmp_path / "two.ir"
    path.write_text(DOUBLE + DOUBLE.replace("@double", "@twice"))
    assert main(["opt", str(path), "-p", "cse"]) == 0


def test_the_cuda_c_of_ir_text_names_unnamed_values(tmp_path: Path):
    """IR text names a shared tile `%0`; the CUDA C once declared `const int 0_swizzled_0`.
    A numbered tile is named as one the source left unnamed (the same C either way)."""
    from lpir.tools import emit, optimize

    path = tmp_path / "mm.ir"
    params = {"M": 64, "N": 64, "K": 64}
    path.write_text(optimize("examples/matmul_wq.lp", params=params))
    assert "%0 = alloc_shared" in path.read_text()
    source = emit(str(path), "cuda", "cuda", {}, None)
    assert re.search(r"\b\d\w*_swizzled", source) is None and "shared_swizzled_0" in source


def test_cuda_c_of_thread_ir_before_bit_packing_is_refused(tmp_path: Path):
    """The CUDA emitter read each u4 of such IR as a byte (249 of 256 outputs wrong)."""
    from lpir.tools import emit, optimize

    source = tmp_path / "up4.lp"
    source.write_text(
        "kernel up4[N = 256](x: global u4[N], y: global f32[N]) blocks(1) threads(32) {\n"
        "    store(y[:], cast<f32>(load(x[:])))\n}\n"
    )
    path = tmp_path / "up4.ir"
    path.write_text(optimize(str(source), "layout-selection,lower-to-threads", target="cuda"))
    with pytest.raises(LpirError, match="run bit-packing first"):
        emit(str(path), "cuda", "cuda", {}, None)


def test_ir_text_given_as_a_string_compiles_as_it_is():
    """What `Kernel.ir()` prints compiles again from the string itself (the first line that is
    not blank or a comment starts `kernel @`): tile IR through the pipeline, thread IR as is."""
    source = lpir.compile(EXAMPLES / "vector_add.lp", target="cpu", N=100)
    x = np.arange(100, dtype=np.float32)
    z = np.zeros_like(x)
    source(x, x, z)
    for stage, target in [("after:layout-selection", "cpu"), ("final", "threads")]:
        kernel = lpir.compile("// from Kernel.ir()\n" + source.ir(stage), target=target)
        got = np.zeros_like(x)
        kernel(x, x, got)
        np.testing.assert_array_equal(got, z)
    with pytest.raises(LpirError, match=r"parameters \(N\) apply to kernel sources"):
        lpir.compile(source.ir(), target="cpu", N=5)
    with pytest.raises(LpirError, match=r"the string holds 2 kernels \(double, ids\)"):
        lpir.compile(DOUBLE + THREAD, target="threads")
    assert lpir.compile(DOUBLE + THREAD, target="threads", kernel="ids").name == "ids"
