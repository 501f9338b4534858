"""The Python API: compile, call, argument checks, specialization caching, IR stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.errors import ArgumentError, LpirError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SCALE = """
kernel scale[N, BLOCK = 64](x: global f32[N], y: global f32[N], alpha: f32)
    blocks(cdiv(N, BLOCK)) threads(32) {
    i = block.x * BLOCK
    store(y[i :+ BLOCK], load(x[i :+ BLOCK]) * alpha)
}
"""


@pytest.fixture(params=["interp", "threads", "cpu"])
def target(request):
    """Every argument check must hold before any target runs, the compiled CPU code included."""
    return request.param


def test_call_deduces_sizes_and_runs(target):
    kernel = lpir.compile(SCALE, target=target)
    x = np.arange(100, dtype=np.float32)
    y = np.zeros(100, np.float32)
    kernel(x, y, 2.5)
    np.testing.assert_array_equal(y, x * np.float32(2.5))
    assert kernel.last.params["N"] == 100


def test_same_specialization_is_reused():
    kernel = lpir.compile(SCALE, target="interp")
    x, y = np.ones(64, np.float32), np.zeros(64, np.float32)
    kernel(x, y, 1.0)
    first = kernel.last
    kernel(x, y, 3.0)
    assert kernel.last is first
    kernel(np.ones(65, np.float32), np.zeros(65, np.float32), 1.0)
    assert kernel.last is not first
    assert len(kernel.specializations) == 2


def test_a_call_like_an_earlier_one_does_not_deduce_again(monkeypatch):
    """Arrays of the same dtypes and shapes as an earlier call's: its specialization at once
    (deducing and checking the parameters costs ~200 us of Python per call); anything else,
    a wrong call included, is deduced and checked as usual."""
    import lpir.runtime.kernel as runtime_kernel

    kernel = lpir.compile(SCALE, target="interp")
    deduced = []
    choose = runtime_kernel.choose_params
    monkeypatch.setattr(runtime_kernel, "choose_params", lambda *a: deduced.append(1) or choose(*a))
    x, y = np.ones(64, np.float32), np.zeros(64, np.float32)
    kernel(x, y, 1.0)
    kernel(np.full(64, 2, np.float32), y, 2.0)
    assert len(deduced) == 1 and y[0] == 4.0
    message = "N is 64 from the shape of argument x but 65 from the shape of argument y"
    with pytest.raises(ArgumentError, match=message):
        kernel(x, np.zeros(65, np.float32), 1.0)
    assert len(deduced) == 2


def test_a_call_like_an_earlier_one_is_still_checked(target):
    """The arrays of a call whose dtypes and shapes an earlier call had pick its
    specialization at once, but each is still checked: contiguity, alignment, writes, scalars."""
    kernel = lpir.compile(SCALE, target=target)
    x, y = np.ones(8, np.float32), np.zeros(8, np.float32)
    kernel(x, y, 2.0)
    strided = np.ones(16, np.float32)[::2]
    assert "not C-contiguous" in _error(kernel, strided, y, 1.0).message
    misaligned = np.zeros(8 * 4 + 1, np.uint8)[1:].view(np.float32)
    assert "not aligned" in _error(kernel, misaligned, y, 1.0).message
    y.flags.writeable = False
    assert "read-only" in _error(kernel, x, y, 1.0).message
    y = np.zeros(8, np.float32)
    assert "must be a number" in _error(kernel, x, y, "2").message
    # compiled code assumes that outputs alias nothing: every target refuses the same calls
    assert "overlap in memory" in _error(kernel, y, y, 1.0).message
    kernel(x, y, 3.0)
    np.testing.assert_array_equal(y, 3.0)


def _error(kernel, *arguments) -> ArgumentError:
    with pytest.raises(ArgumentError) as caught:
        kernel(*arguments)
    return caught.value


def test_wrong_dtype_names_the_argument(target):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones(8, np.float64), np.zeros(8, np.float32), 1.0)
    assert "argument x must hold f32" in error.message
    assert error.location is not None and error.location.line == 2


def test_inconsistent_shapes(target):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones(8, np.float32), np.zeros(9, np.float32), 1.0)
    assert "N is 8" in error.message and "9" in error.message


def test_wrong_rank(target):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones((2, 4), np.float32), np.zeros(8, np.float32), 1.0)
    assert "must have 1 dimension, got an array of shape (2, 4)" in error.message


@pytest.mark.parametrize("dtype", [object, np.complex64, np.bool_])
def test_an_array_of_a_dtype_lpir_has_not_is_named_as_such(target, dtype):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones(8, dtype), np.zeros(8, np.float32), 1.0)
    assert "must hold f32, got an array of a numpy dtype that no unpacked lpir dtype has" in str(
        error
    )


@pytest.mark.parametrize("dtype", [object, np.complex64])
def test_an_array_of_a_dtype_lpir_has_not_deduces_no_dtype_parameter(target, dtype):
    # x's dtype is the parameter T: the array must not make T "None" (which once read
    # "'T' is the constant None, not a dtype", or "T is None from argument x but f32 from
    # argument y"); T keeps its default and the argument is named.
    kernel = lpir.compile(EXAMPLES / "vector_add.lp", target=target)
    x, y = np.ones(100, dtype), np.ones(100, np.float32)
    for args in ((x, x, x.copy()), (x, y, y.copy())):
        error = _error(kernel, *args)
        assert "argument x must hold f32, got an array of a numpy dtype" in error.message
        assert error.location is not None and error.location.line == 3


def test_non_contiguous_array(target):
    kernel = lpir.compile(SCALE, target=target)
    x = np.ones(16, np.float32)[::2]
    error = _error(kernel, x, np.zeros(8, np.float32), 1.0)
    assert "not C-contiguous" in error.message
    assert "ascontiguousarray" in error.hint


def test_misaligned_array(target):
    """A float32 array that starts one byte into its buffer: refused, not read unaligned."""
    kernel = lpir.compile(SCALE, target=target)
    x = np.zeros(8 * 4 + 1, np.uint8)[1:].view(np.float32)
    error = _error(kernel, x, np.zeros(8, np.float32), 1.0)
    assert "argument x is not aligned to its element size" in error.message
    assert error.location is not None and error.location.line == 2


def test_read_only_output(target):
    kernel = lpir.compile(SCALE, target=target)
    y = np.zeros(8, np.float32)
    y.flags.writeable = False
    error = _error(kernel, np.ones(8, np.float32), y, 1.0)
    assert "read-only" in error.message


def test_wrong_argument_count(target):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones(8, np.float32))
    assert "takes 3 arguments" in error.message


def test_scalar_of_the_wrong_kind(target):
    kernel = lpir.compile(SCALE, target=target)
    error = _error(kernel, np.ones(8, np.float32), np.zeros(8, np.float32), "two")
    assert "alpha must be a number" in error.message


def test_unpacked_array_for_a_packed_dtype(target):
    kernel = lpir.compile(EXAMPLES / "gemv_wq.lp", target=target, WT="u3", ZERO=4)
    n, k = 64, 256
    x, s, y = np.ones(k, np.float32), np.ones((n, 2), np.float32), np.zeros(n, np.float32)
    error = _error(kernel, x, np.zeros((n, k), np.uint8), s, y)
    assert "WT is u3 from the caller but u8 from argument w" in error.message
    assert "lpir.pack(values, 'u3')" in error.hint
    deduced = lpir.compile(EXAMPLES / "gemv_wq.lp", target=target, ZERO=4, N=n, K=k, WT="u3")
    error = _error(deduced, x, np.zeros((n, k), np.uint8), s, y)
    assert "lpir.pack" in error.hint


def test_packed_array_of_another_dtype(target):
    kernel = lpir.compile(EXAMPLES / "gemv_wq.lp", target=target, WT="u3", ZERO=4)
    n, k = 64, 256
    w = lpir.pack(np.zeros((n, k), np.uint8), "u4")
    error = _error(
        kernel, np.ones(k, np.float32), w, np.ones((n, 2), np.float32), np.zeros(n, np.float32)
    )
    assert "WT" in error.message or "u3" in error.message


def test_dtype_parameter_deduced_from_a_packed_argument(target):
    kernel = lpir.compile(EXAMPLES / "gemv_wq.lp", target=target, ZERO=4)
    n, k = 64, 256
    w = lpir.pack(np.full((n, k), 5, np.uint8), "u3")
    x, s, y = np.ones(k, np.float32), np.ones((n, 2), np.float32), np.zeros(n, np.float32)
    kernel(x, w, s, y)
    assert kernel.last.params["WT"].name == "u3"
    np.testing.assert_allclose(y, np.full(n, k * 1.0, np.float32))


SCALED = """
kernel scaled[T = f32, S = f32, N = 64](x: global T[N], y: global T[N], s: S)
    blocks(1) threads(32) {
    store(y[:], load(x[:]) * cast<T>(s))
}
"""


def test_dtype_parameter_deduced_from_a_numpy_scalar(target):
    """A numpy scalar has a width: np.float16 makes S f16; a Python number deduces nothing
    (S keeps its default), and a dtype the caller or a tensor gave is kept (the scalar is
    converted to it, as a Python number is)."""
    kernel = lpir.compile(SCALED, target=target)
    x, y = np.ones(64, np.float32), np.zeros(64, np.float32)
    for scalar, deduced in [(np.float16(3), "f16"), (np.int8(-2), "i8"), (2.5, "f32")]:
        kernel(x, y, scalar)
        assert kernel.last.params["S"].name == deduced and y[0] == float(scalar)
    kernel(x, y, np.float16(3))  # the fast path for arrays seen before keys the scalar's dtype
    assert kernel.last.params["S"].name == "f16"
    given = lpir.compile(SCALED, target=target, S="bf16")
    given(x, y, np.float64(0.5))
    assert given.last.params["S"].name == "bf16" and y[0] == 0.5
    tensor_typed = lpir.compile(SCALED.replace("s: S", "s: T"), target=target)
    tensor_typed(x, y, np.float16(3))
    assert tensor_typed.last.params["T"].name == "f32" and y[0] == 3.0


def test_unknown_parameter():
    with pytest.raises(ArgumentError, match="has no parameter 'Q'"):
        lpir.compile(SCALE, target="interp", Q=3)(
            np.ones(8, np.float32), np.zeros(8, np.float32), 1.0
        )


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("BLOK", "did you mean BLOCK?"),
        ("block", "did you mean BLOCK?"),
        ("alpha", "alpha is an argument of scale: pass it when calling the kernel"),
        ("Q", "set one of those, or declare it: kernel scale[..., Q = ...](...)"),
    ],
)
def test_an_unknown_parameter_is_offered_the_closest_one(name, hint):
    """-D BLOK=64 said only which parameters there are; misspelt call arguments had 'did you
    mean' already."""
    with pytest.raises(ArgumentError) as caught:
        lpir.compile(SCALE, target="interp", N=64, **{name: 64})
    assert f"has no parameter '{name}' (its parameters: N, BLOCK)" in caught.value.message
    assert caught.value.hint == hint


def test_explicit_parameter_must_agree_with_arguments(target):
    kernel = lpir.compile(SCALE, target=target, N=16)
    error = _error(kernel, np.ones(8, np.float32), np.zeros(8, np.float32), 1.0)
    assert "N is 16" in error.message


def test_ir_stages_and_sources():
    kernel = lpir.compile(SCALE, target="threads", N=64)
    assert "kernel @scale" in kernel.ir("source")
    assert "stage(thread)" in kernel.ir("after:lower-to-threads")
    assert "stage(thread)" in kernel.ir("final")  # (one thread: fold-threads, no thread_index)
    with pytest.raises(LpirError, match="no IR stage"):
        kernel.ir("after:nothing")
    with pytest.raises(LpirError, match="no 'cuda' source"):
        kernel.source("cuda")


def test_unknown_target():
    with pytest.raises(LpirError, match="unknown target"):
        lpir.compile(SCALE, target="tpu")


def test_missing_file():
    with pytest.raises(LpirError, match="no such kernel file"):
        lpir.compile("does/not/exist.lp")


def test_an_8_bit_float_numpy_lacks_is_passed_packed(target):
    """f8e3m4 has no numpy dtype: the hint names lpir.pack, not astype (which cannot work)."""
    source = "kernel k[N = 8](x: global f8e3m4[N], y: global f32[N]) blocks(1) threads(8) {\n"
    source += "    store(y[:], cast<f32>(load(x[:])))\n}\n"
    kernel = lpir.compile(source, target=target)
    y = np.zeros(8, np.float32)
    error = _error(kernel, np.arange(8, dtype=np.uint8), y)
    assert "must hold f8e3m4, got u8" in error.message
    assert "lpir.pack(values, 'f8e3m4')" in error.hint
    kernel(lpir.pack(np.array([0.0, 0.5, -1.0, 15.5, 2, 3, 4, 5], np.float32), "f8e3m4"), y)
    assert y.tolist() == [0.0, 0.5, -1.0, 15.5, 2, 3, 4, 5]


def test_thread_counts_past_the_limit_are_refused_with_the_limit_and_the_cores(monkeypatch):
    """LPIR_NUM_THREADS=100000 once started 100000 workers of 256 MiB stacks and took the
    machine down; past `MAX_THREADS` the call says the limit and the core count."""
    from lpir.backends.llvm import launch

    kernel = lpir.compile(SCALE, target="cpu")
    x = np.ones(640, np.float32)
    for value in (str(launch.MAX_THREADS + 1), "100000", "9" * 5000):
        monkeypatch.setenv("LPIR_NUM_THREADS", value)
        with pytest.raises(LpirError) as caught:
            kernel(x, np.zeros_like(x), 2.0)
        message = str(caught.value)
        assert f"at most {launch.MAX_THREADS} threads" in message
        assert f"this machine has {launch.CORES} cores" in message
        assert "hint: set it to at most" in message


def test_workers_start_only_as_a_call_needs_them(monkeypatch):
    """At the limit, a 10-block grid starts at most 10 workers (it started them all, 84 s for
    30000), and its result is right."""
    import threading

    from lpir.backends.llvm import launch

    monkeypatch.setattr(launch, "_pool", None)
    monkeypatch.setenv("LPIR_NUM_THREADS", str(launch.MAX_THREADS))
    before = {t.ident for t in threading.enumerate()}
    kernel = lpir.compile(SCALE, target="cpu")
    x = np.arange(640, dtype=np.float32)
    y = np.zeros_like(x)
    kernel(x, y, 2.0)
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert 1 <= len(started) <= 10
    np.testing.assert_array_equal(y, x * 2)


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_source_text_with_cr_line_ends_compiles_as_from_a_file(line_end, tmp_path):
    """A string with CR-only line ends parsed as one line ("unexpected 'store'") while the
    same text read from a file compiled; both now read CR and CR LF as new lines."""
    text = SCALE.replace("\n", line_end)
    path = tmp_path / "scale.lp"
    path.write_bytes(text.encode())
    from_file = lpir.compile(path, target="interp", N=64).ir("source")
    assert lpir.compile(text, target="interp", N=64).ir("source") == from_file
    with pytest.raises(LpirError) as caught:
        lpir.compile(text.replace("* alpha", "* beta"), target="interp", N=64).ir("source")
    assert ":5:" in str(caught.value) and "store(y[i :+ BLOCK]" in str(caught.value)


def test_source_bytes_are_read_as_utf8():
    """bytes (open(..., "rb").read()) were str()-ed: "unexpected 'b'" with the repr echoed."""
    data = ("# café\n" + SCALE).encode()
    kernel = lpir.compile(data, target="interp")
    x = np.arange(10, dtype=np.float32)
    y = np.zeros_like(x)
    kernel(x, y, 2.0)
    np.testing.assert_array_equal(y, x * 2)
    assert lpir.compile(bytearray(data), target="interp").name == "scale"
    with pytest.raises(LpirError) as caught:
        lpir.compile(("# café\n" + SCALE).encode("latin-1"), target="interp")
    message = str(caught.value)
    assert "<source>:1:6: error: the source is not UTF-8" in message
    assert "decode them yourself and pass the str" in message


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_kernels_pickle_and_copy_as_their_source(target, tmp_path):
    """pickle.dumps / copy.deepcopy of a called kernel failed inside ctypes ("objects containing
    pointers cannot be pickled") or on a local function; now the copy compiles anew from the
    source, target and parameters, and runs like the original."""
    import copy
    import pickle

    path = tmp_path / "scale.lp"
    path.write_text(SCALE)
    kernel = lpir.compile(path, target=target, BLOCK=32)
    x = np.arange(100, dtype=np.float32)
    expected = np.zeros_like(x)
    kernel(x, expected, 3.0)
    ir_kernel = lpir.compile(kernel.ir("source"), target=target)
    for original in (kernel, ir_kernel):
        for twin in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
            assert (type(twin), twin.target, twin.params) == (
                type(original),
                target,
                original.params,
            )
            y = np.zeros_like(x)
            twin(x, y, 3.0)
            np.testing.assert_array_equal(y, expected)
    twin = pickle.loads(pickle.dumps(kernel))
    with pytest.raises(ArgumentError, match=r"scale\.lp:\d+:\d+"):  # still points at its file
        twin(x, np.zeros(100, np.float64), 3.0)


def test_an_ir_stage_or_source_kind_that_is_not_a_string_is_a_clear_error():
    """k.ir(["final"]) was TypeError: unhashable type: 'list'."""
    kernel = lpir.compile(SCALE, target="cpu", N=64)
    with pytest.raises(LpirError, match=r"an IR stage is a string, not list \['final'\]") as e:
        kernel.ir(["final"])
    assert 'ir("final")' in str(e.value)
    with pytest.raises(LpirError, match=r"a source kind is a string, not list"):
        kernel.source(["llvm"])
    with pytest.raises(LpirError, match=r"an IR stage is a string"):
        lpir.compile(kernel.ir("source"), target="interp").ir(0)


def test_a_kernel_of_native_dtypes_does_not_load_ml_dtypes(tmp_path):
    """Importing ml_dtypes takes ~0.5 s of CPU, most of `import lpir` when lpir imported it
    first thing; it is loaded only for bf16, fp8 and the small floats' ml_dtypes arrays."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np, lpir\n"
        "k = lpir.compile('examples/vector_add.lp', target='cpu', N=100)\n"
        "x = np.ones(100, np.float32)\n"
        "k(x, x.copy(), np.zeros_like(x))\n"
        "assert 'ml_dtypes' not in sys.modules\n"
        "k = lpir.compile('examples/vector_add.lp', target='cpu', N=100, T='bf16')\n"
        "import ml_dtypes\n"
        "x = np.ones(100, ml_dtypes.bfloat16)\n"
        "k(x, x.copy(), np.zeros_like(x))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_kernel_shows_its_arguments_target_and_parameters():
    """A kernel printed as <lpir.runtime.kernel.Kernel object at 0x...>, and inspect.signature
    (help(), a notebook's call tips) said nothing of what a call takes."""
    import inspect

    kernel = lpir.compile(SCALE, target="interp", N=64, BLOCK=32)
    assert repr(kernel) == "<lpir.Kernel scale(x, y, alpha) target='interp' N=64 BLOCK=32>"
    assert str(inspect.signature(kernel)) == "(x, y, alpha)"
    ir_kernel = lpir.compile(kernel.ir("source"), target="interp")
    assert repr(ir_kernel).startswith("<lpir.IRKernel scale(x, y, alpha) target='interp'")
    assert str(inspect.signature(ir_kernel)) == "(x, y, alpha)"
    for given in ("f16", np.float16):
        typed = lpir.compile(SCALED, target="interp", T=given)
        assert repr(typed) == "<lpir.Kernel scaled(x, y, s) target='interp' T='f16'>"
    reserved = lpir.compile(SCALE.replace("alpha", "lambda"), target="interp")
    assert str(inspect.signature(reserved)) == "(x, y, lambda_, /)"
    taken = SCALE.replace("(x:", "(lambda_:").replace("load(x[", "load(lambda_[")
    taken = lpir.compile(taken.replace("alpha", "lambda"), target="interp")  # lambda_ declared
    assert str(inspect.signature(taken)) == "(lambda_, y, lambda__, /)"
    first = SCALE.replace("(x:", "(lambda:").replace("load(x[", "load(lambda[")
    first = lpir.compile(first.replace("y", "lambda_"), target="interp", N=64)
    assert str(inspect.signature(first)) == "(lambda__, /, lambda_, alpha)"  # as a call names
    x = np.arange(64, dtype=np.float32)
    y = np.zeros_like(x)
    inspect.signature(kernel).bind(x, y, alpha=2.0)  # binds as a call does
    kernel(x, y, alpha=2.0)
    np.testing.assert_array_equal(y, x * 2)


def test_source_without_a_kind_gives_the_targets_own_code():
    """kernel.source() on target cuda or cuda-host failed: "no 'llvm' source for this target";
    it now gives what `lpir emit` prints by default for the target."""
    path = str(EXAMPLES / "vector_add.lp")
    for target, kind in (("cpu", "llvm"), ("cuda", "cuda"), ("cuda-host", "cuda")):
        kernel = lpir.compile(path, target=target, N=256)
        assert kernel.source() == kernel.source(kind)
    with pytest.raises(LpirError, match="this target generates no code"):
        lpir.compile(path, target="interp", N=256).source()


def test_compile_reports_the_language_errors_of_a_kernel_whose_parameters_are_known(
    monkeypatch,
):
    """lpir.compile only parsed: a kernel whose every parameter has a default, with an unknown
    name in its body, compiled cleanly and failed at its first call (a server's first
    request). lpir.compile now lowers it to tile IR where every parameter is known; the
    passes and the backend still wait for the first call."""
    from lpir.errors import TypeCheckError
    from lpir.runtime import specialization

    source = "kernel q[K = 4](x: global f32[K]) blocks(1) threads(4) { store(x[:], zeros<f32>[Q]) }"
    with pytest.raises(TypeCheckError) as caught:
        lpir.compile(source, target="interp")
    error = caught.value
    assert error.message == "unknown name 'Q'"
    assert (error.location.line, error.location.column) == (1, 81)
    with pytest.raises(TypeCheckError, match="unknown name 'Q'"):
        lpir.compile(source.replace("K = 4", "K"), target="interp", K=4)

    def no_passes(*arguments):  # type: ignore[no-untyped-def]
        raise AssertionError("lpir.compile ran the passes")

    monkeypatch.setattr(specialization, "run_pipeline", no_passes)
    lpir.compile(source.replace("[Q]", "[K]"), target="interp")
    # a size deduced from the arguments: the kernel is lowered at the first call
    lpir.compile(source.replace("K = 4", "K"), target="interp")
