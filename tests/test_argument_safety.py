"""Arguments that once crashed the process, wrote outside an array or changed silently: each is
an `LpirError` naming the argument now (read-only and strided packed storage, out-of-range float
scalars, huge lists and ints in messages, unnamed numpy dtypes, sources that are not UTF-8), and
kernels take their arguments by name too."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from host_targets import HOST_TARGETS

import lpir
from lpir.errors import ArgumentError, DTypeError, LpirError

COPY = """
kernel copy[N = 128, B = 64](w: global u4[N], o: global u4[N]) blocks(cdiv(N, B)) threads(32) {
    i = block.x * B
    store(o[i :+ B], load(w[i :+ B]))
}
"""

ADD = """
kernel add[N, T = f32, B = 64](x: global T[N], y: global T[N], z: global T[N])
    blocks(cdiv(N, B)) threads(32) {
    i = block.x * B
    store(z[i :+ B], load(x[i :+ B]) + load(y[i :+ B]))
}
"""

SCALAR = """
kernel shift[N = 64, S = f32](x: global f32[N], s: S, z: global f32[N]) blocks(1) threads(32) {
    store(z[0 :+ 64], load(x[0 :+ 64]) + cast<f32>(s))
}
"""

CODES = np.arange(128) % 16


@pytest.fixture(params=["interp", "cpu"])
def target(request):
    """The checks run before any target: the interpreter and compiled CPU code alike."""
    return request.param


def _error(kernel, *arguments, **by_name) -> ArgumentError:
    with pytest.raises(ArgumentError) as caught:
        kernel(*arguments, **by_name)
    return caught.value


# ---- packed storage: read-only, strided ----------------------------------------------------
def test_packed_output_over_read_only_bytes_is_refused(target):
    kernel = lpir.compile(COPY, target=target)
    out = lpir.pack(np.zeros(128, int), "u4")
    out.data.flags.writeable = False
    error = _error(kernel, lpir.pack(CODES, "u4"), out)
    assert "argument o is read-only" in error.message and "copy()" in error.hint
    assert not out.data.any()


def test_packed_output_over_a_read_only_memmap_is_refused(target, tmp_path):
    """Once a segmentation fault on the CPU."""
    file = tmp_path / "bytes.bin"
    file.write_bytes(bytes(64))
    out = lpir.PackedArray(np.memmap(file, np.uint8, mode="r"), 128, "u4")
    kernel = lpir.compile(COPY, target=target)
    assert "argument o is read-only" in _error(kernel, lpir.pack(CODES, "u4"), out).message
    assert file.read_bytes() == bytes(64)


def test_packed_input_over_read_only_bytes_is_read(target):
    weights = lpir.pack(CODES, "u4")
    weights.data.flags.writeable = False
    out = lpir.pack(np.zeros(128, int), "u4")
    lpir.compile(COPY, target=target)(weights, out)
    np.testing.assert_array_equal(lpir.unpack(out), CODES)


@pytest.mark.parametrize("cut", [slice(None, None, 2), slice(64, 0, -1)])
def test_packed_array_refuses_strided_bytes(cut):
    with pytest.raises(DTypeError) as caught:
        lpir.PackedArray(np.zeros(128, np.uint8)[cut], 128, "u4")
    assert "contiguous" in caught.value.message
    assert "ascontiguousarray" in caught.value.hint


def test_packed_data_made_strided_after_wrapping_is_refused(target):
    """Kernels address the bytes from the first one on: a strided view was written past."""
    guard = np.zeros(4096, np.uint8)
    out = lpir.pack(np.zeros(128, int), "u4")
    out.data = guard[64:0:-1]
    kernel = lpir.compile(COPY, target=target)
    error = _error(kernel, lpir.pack(CODES, "u4"), out)
    assert "argument o is a PackedArray whose data is not contiguous" in error.message
    weights = lpir.pack(CODES, "u4")
    weights.data = np.zeros(128, np.uint8)[::2]
    error = _error(kernel, weights, lpir.pack(np.zeros(128, int), "u4"))
    assert "argument w is a PackedArray whose data is not contiguous" in error.message
    assert not guard.any()


def test_packed_data_replaced_by_the_wrong_bytes_is_refused(target):
    kernel = lpir.compile(COPY, target=target)
    short = lpir.pack(CODES, "u4")
    short.data = short.data[:32]
    out = lpir.pack(CODES, "u4")
    assert "takes 64 bytes, but its data has 32" in _error(kernel, short, out).message
    wide = lpir.pack(CODES, "u4")
    wide.data = np.zeros(32, np.uint16)
    assert "not a 1-D uint8 array" in _error(kernel, wide, lpir.pack(CODES, "u4")).message


# ---- float scalars out of range ----------------------------------------------------------
def _shift(target: str, dtype: str):
    kernel = lpir.compile(SCALAR, target=target, S=dtype)

    def call(value: object) -> np.ndarray:
        z = np.zeros(64, np.float32)
        kernel(np.zeros(64, np.float32), value, z)
        return z

    return call


@pytest.mark.parametrize(
    "dtype, value, largest",
    [("f8e4m3", 1000.0, "448.0"), ("f8e4m3", 464.5, "448.0"), ("f32", 1e300, "3.40282")],
)
def test_float_scalar_beyond_the_dtype_is_refused(target, dtype, value, largest):
    """f8e4m3 saturated 1000.0 to 448 and f32 made 1e300 inf, silently."""
    with pytest.raises(ArgumentError) as caught:
        _shift(target, dtype)(value)
    message = caught.value.message
    assert f"argument s = {value!r} is outside the range of {dtype}" in message
    assert largest in message


def test_float_scalar_rounding_into_range_is_kept():
    # on the CPU: the interpreters read a small-float scalar as its code (a bug of theirs)
    shift = _shift("cpu", "f8e4m3")
    assert shift(464.0)[0] == 448.0  # a tie: to the even code, 448 (480 is NaN's)
    assert shift(0.1)[0] == np.float32(ml_dtypes.float8_e4m3fn(0.1))


def test_float_scalar_range_agrees_with_numpy_and_ml_dtypes():
    """A finite value is refused exactly where numpy's (f16, f32) or ml_dtypes' (f8e4m3, which
    makes it NaN) conversion leaves the finite values. Checked without running a kernel."""
    from lpir.dtypes import dtype
    from lpir.runtime.arguments import NamedArgument, check_scalar

    kinds = {"f16": np.float16, "f32": np.float32, "f8e4m3": ml_dtypes.float8_e4m3fn}
    for name, kind in kinds.items():
        largest = float(dtype(name).max)
        spacing = largest - float(np.nextafter(kind(largest), kind(0)))
        for value in largest + spacing * np.array([0, 0.25, 0.5 - 1e-9, 0.5, 0.5 + 1e-9, 1, 9]):
            with np.errstate(over="ignore"):
                finite = bool(np.isfinite(np.array([value]).astype(kind).astype(np.float64)))
            for signed in (value, -value):
                try:
                    check_scalar(float(signed), dtype(name), NamedArgument("s"), None)
                    accepted = True
                except ArgumentError:
                    accepted = False
                assert accepted == finite, (name, signed)


def test_float_scalar_infinity_and_nan(target):
    shift = _shift(target, "f32")
    assert shift(float("inf"))[0] == np.inf
    assert np.isnan(shift(float("nan"))[0])
    shift = _shift("cpu", "f8e4m3")  # as above: the interpreters read codes
    assert np.isnan(shift(float("nan"))[0])
    with pytest.raises(ArgumentError, match="f8e4m3 has no infinity"):
        shift(float("-inf"))


def test_huge_integer_scalars_are_refused_with_a_short_message(target):
    with pytest.raises(ArgumentError) as caught:
        _shift(target, "f64")(10**400)
    assert "outside the range of f64" in caught.value.message
    with pytest.raises(ArgumentError) as caught:
        _shift(target, "i32")(10**5000)  # Python cannot print it: 4300 digits at most
    assert "an integer of 16610 bits) does not fit in i32" in caught.value.message
    # it had no hint
    hint = "pass an integer from -2147483648 to 2147483647, or declare the argument i64"
    assert caught.value.hint == hint


@pytest.mark.parametrize(
    ("dtype", "value", "message", "hint"),
    [
        ("i32", 3.0, "s must be an integer (i32), got float 3.0", "pass a Python int: int(3.0)"),
        ("i32", 2.5, "s must be an integer (i32), got float 2.5", "np.int32(value)"),
        ("u8", "3", "s must be an integer (u8), got str '3'", "pass a Python int"),
        ("f32", "1.5", "s must be a number (f32), got str '1.5'", "float(value)"),
        ("f32", 1j, "s must be a number (f32), got complex 1j", "np.float32(value)"),
        ("bool", 1, "s must be a bool, got int 1", "pass True or False"),
        (
            "f32",
            np.longdouble(2),
            "s (f32) is a numpy longdouble scalar, a dtype lpir does not support",
            "pass a Python float or int, or a numpy float: float(value)",
        ),
        (
            "i32",
            np.complex64(1),
            "s (i32) is a numpy complex64 scalar, a dtype lpir does not support",
            "pass a Python int, or a numpy integer scalar such as np.int32(value)",
        ),
    ],
)
def test_scalars_of_the_wrong_kind_say_what_to_pass(target, dtype, value, message, hint):
    """These said only "must be an integer, got float 3.0" (and np.longdouble(2) "must be a
    number"), with no hint."""
    with pytest.raises(ArgumentError) as caught:
        _shift(target, dtype)(value)
    assert message in caught.value.message
    assert hint in caught.value.hint


# ---- arguments by name -------------------------------------------------------------------
def test_arguments_by_name(target):
    kernel = lpir.compile(ADD, target=target)
    x, y = np.arange(100, dtype=np.float32), np.ones(100, np.float32)
    z = np.zeros(100, np.float32)
    kernel(z=z, y=y, x=x)
    np.testing.assert_array_equal(z, x + y)
    z = np.zeros(100, np.float32)
    kernel(x, y, z=z)
    np.testing.assert_array_equal(z, x + y)


def test_arguments_by_name_that_do_not_bind():
    kernel = lpir.compile(ADD, target="interp")
    x, z = np.ones(100, np.float32), np.zeros(100, np.float32)
    assert "got argument x twice" in _error(kernel, x, x=x, y=x, z=z).message
    error = _error(kernel, x, x, zz=z)
    assert "add(x, y, z) has no argument 'zz'" in error.message and "z" in error.hint
    assert "is missing argument y" in _error(kernel, x, z=z).message
    error = _error(kernel, x, x, z, N=100)
    assert "N is a compile-time parameter" in error.hint
    assert "takes 3 arguments" in _error(kernel, x, x, z, x, y=x).message


@pytest.mark.parametrize("target", ["interp", "cpu", "ir"])
def test_calls_that_do_not_bind_are_placed_in_the_source(target, tmp_path):
    """A wrong number of arguments, or one named wrongly, twice or not at all, was an error
    without a place (found by an explorer): it points at the kernel's name, or at the
    declaration of the argument concerned, with what to pass."""
    if target == "ir":
        ir_file = tmp_path / "add.ir"
        ir_file.write_text(lpir.compile(ADD, target="cpu", N=100).ir())
        kernel = lpir.compile(ir_file, target="cpu")
    else:
        kernel = lpir.compile(ADD, target=target)
    x = np.ones(100, np.float32)
    line = 1 if target == "ir" else 2  # the header's
    for arguments, by_name, text, hint in [
        ((x, x), {}, "takes 3 arguments (x, y, z), got 2", "(x, y, z)"),
        ((x, x, x, x), {}, "takes 3 arguments", "x, y, z"),
        ((x, x), {"w": x}, "has no argument 'w'", "x, y, z"),
        ((x,), {"x": x, "y": x, "z": x}, "got argument x twice", "once"),
        ((x,), {"z": x}, "is missing argument y", "pass y"),
    ]:
        error = _error(kernel, *arguments, **by_name)
        assert text in error.message and hint in error.hint, error
        assert error.location is not None and error.location.line == line, error
        assert "^" in str(error), error
    if target != "ir":  # the source's declarations: the argument concerned's own column
        assert _error(kernel, x, z=x).location.column == ADD.splitlines()[1].index("y:") + 1


# ---- what messages say about the values passed ---------------------------------------------
@pytest.mark.parametrize(
    "value, shown",
    [
        (list(range(100_000)), "a list of 100000 items"),
        (bytes(400_000), "a bytes object of 400000 bytes"),
        (tuple(range(7)), "a tuple of 7 items"),
    ],
)
def test_containers_are_described_by_length_not_repr(value, shown):
    """A list of 100,000 numbers once put its whole repr (689 KB) in the message."""
    kernel = lpir.compile(ADD, target="interp")
    error = _error(kernel, value, np.ones(8, np.float32), np.zeros(8, np.float32))
    assert shown in error.message and len(str(error)) < 1000


@pytest.mark.parametrize(
    "array, named, hint",
    [
        (np.ones(8, ">f4"), ": >f4", "array.astype('<f4')"),
        (np.ones(8, object), ": object", "Python objects"),
        (np.ones(8, bool), ": bool", "lpir.pack(array, 'bool')"),
        (np.ones(8, ml_dtypes.int4), ": int4", "lpir.pack(array, 'i4')"),
        (np.ones(8, ml_dtypes.uint4), ": uint4", "lpir.pack(array, 'u4')"),
    ],
)
def test_numpy_dtypes_lpir_has_not_are_named(array, named, hint):
    kernel = lpir.compile(ADD, target="interp")
    error = _error(kernel, array, np.ones(8, np.float32), np.zeros(8, np.float32))
    assert error.message.startswith("argument x must hold f32, got an array of a numpy dtype")
    assert error.message.endswith(named) and hint in error.hint


# ---- kernel sources ------------------------------------------------------------------------
def test_a_source_that_is_not_utf8_is_an_lpir_error(tmp_path):
    """Once a UnicodeDecodeError from deep in pathlib."""
    source = tmp_path / "latin1.lp"
    text = ADD.replace("* B\n", "* B  # d\xe9but\n", 1)
    source.write_bytes(text.encode("latin-1"))
    with pytest.raises(LpirError) as caught:
        lpir.compile(source, target="interp")
    error = caught.value
    offset = text.find("\xe9")  # one byte in latin-1, and the text before it is ASCII
    assert "not UTF-8" in error.message and f"byte {offset} (0xe9)" in error.message
    assert error.location is not None
    assert error.location.line == text[:offset].count("\n") + 1
    assert error.location.column == offset - text.rfind("\n", 0, offset)
    assert "UTF-8" in error.hint


def test_a_directory_is_not_a_kernel_file(tmp_path):
    with pytest.raises(LpirError, match="is a directory"):
        lpir.compile(tmp_path, target="interp")


def test_a_utf8_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    source = tmp_path / "bom.lp"
    source.write_bytes(b"\xef\xbb\xbf" + ADD.replace("\n", "\r\n").encode())
    kernel = lpir.compile(source, target="interp")
    z = np.zeros(8, np.float32)
    kernel(np.ones(8, np.float32), np.ones(8, np.float32), z)
    np.testing.assert_array_equal(z, 2)
    assert lpir.compile("\ufeff" + ADD, target="interp").name == "add"


def test_a_path_with_braces_is_a_path(tmp_path):
    """`{proj}/k.lp` was taken for source text ("unexpected '{'")."""
    folder = tmp_path / "{proj}"
    folder.mkdir()
    (folder / "k.lp").write_text(Path("examples/vector_add.lp").read_text())
    assert lpir.compile(str(folder / "k.lp"), target="interp").name == "vector_add"
    assert lpir.compile(folder / "k.lp", target="interp").name == "vector_add"
    one_line = "kernel k[N = 4](x: global f32[N]) blocks(1) threads(4) { store(x[:], 0.0 + x) }"
    with pytest.raises(lpir.LpirError):  # source text of one line (too long a name is no path)
        lpir.compile(one_line * 20, target="interp")


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_every_target_refuses_an_output_that_shares_memory_with_another_argument(target):
    """The docs: two tensor arguments may share memory only if the kernel stores into neither.
    The CPU refused `add(x, z, z)`; the interpreters and cuda-host ran it (and `interp` gave
    x + y where the CPU would have given what its vectors happened to read)."""
    kernel = lpir.compile(ADD, target=target)
    x, z = np.ones(128, np.float32), np.zeros(256, np.float32)
    cases = [(z[:128], z[:128], "y and z"), (z[:128], z[64:192], "y and z")]
    cases.append((z[64:192], z[:128], "z and y"))  # named in address order
    for y, out, pair in cases:
        with pytest.raises(ArgumentError) as caught:
            kernel(x, y, out)
        error = caught.value
        assert error.message == f"arguments {pair} overlap in memory and the kernel stores into z"
        assert error.hint == "pass distinct arrays (copy one of them)"
        # placed at the later argument's declaration (it had no place)
        assert (error.location.line, error.location.column) == (2, 64), str(error)
    kernel(x, x, z[:128])  # inputs may share memory: nothing is stored into them
    np.testing.assert_array_equal(z[:128], 2.0)
    ir = lpir.compile(kernel.ir("source"), target=target)
    with pytest.raises(ArgumentError, match="overlap in memory and the kernel stores into z"):
        ir(x, z[:128], z[:128])


ROWS = """
kernel rows[K = 64, BM = 4](x: global f32[m, K], y: global f32[m, K], m: i32)
    blocks(cdiv(m, BM)) threads(32) {
    r = block.x * BM
    store(y[r :+ BM, :], load(x[r :+ BM, :]) * 2.0)
}"""


@pytest.mark.parametrize("target", [*HOST_TARGETS, "threads-cuda"])
def test_empty_views_of_one_buffer_do_not_overlap(target):
    """An empty batch whose input and output are empty views of one workspace: numpy gives
    an empty view its base's address, and an empty tensor counted as one byte made the two
    'overlap in memory'. Empty tensors hold no byte; views that share one are still refused."""
    kernel = lpir.compile(ROWS, target=target)
    workspace = np.ones((64, 64), np.float32)
    kernel(workspace[0:0], workspace[32:32], 0)
    kernel(workspace[40:40], workspace[40:40], 0)  # one empty view passed twice
    with pytest.raises(ArgumentError, match="arguments x and y overlap in memory"):
        kernel(workspace[0:3], workspace[2:5], 3)
    kernel(workspace[0:3], workspace[32:35], 3)
    np.testing.assert_array_equal(workspace[32:35], 2.0)


# ---- raw checkpoint bytes (uint8) where a low-precision dtype is meant ----------------------
GEMV_MX = Path(__file__).parent.parent / "examples" / "gemv_mx.lp"


def _gemv_mx_arguments(weights: np.ndarray) -> tuple:
    n, k = weights.shape[0], 128
    return (
        np.zeros(k, np.float32),
        weights,
        np.zeros((n, k // 32), np.uint8),
        np.zeros(n, np.float32),
    )


def test_fp8_bytes_where_the_caller_gave_fp8_say_to_view_them():
    kernel = lpir.compile(GEMV_MX, target="interp", WT="f8e4m3")
    error = _error(kernel, *_gemv_mx_arguments(np.zeros((16, 128), np.uint8)))
    assert error.message == "WT is f8e4m3 from the caller but u8 from argument w"
    assert "w.view(ml_dtypes.float8_e4m3fn)" in error.hint


def test_fp4_bytes_where_the_caller_gave_fp4_say_to_wrap_them():
    kernel = lpir.compile(GEMV_MX, target="interp", WT="f4e2m1")
    error = _error(kernel, *_gemv_mx_arguments(np.zeros((16, 64), np.uint8)))
    assert error.message == "WT is f4e2m1 from the caller but u8 from argument w"
    assert "lpir.PackedArray(w, (N, K), 'f4e2m1')" in error.hint
    assert "2 to a byte, low bits first" in error.hint


def test_fp4_bytes_whose_size_conflicts_say_sizes_count_bytes():
    """WT deduced u8 from the bytes: K from w's shape is half x's."""
    kernel = lpir.compile(GEMV_MX, target="interp")
    error = _error(kernel, *_gemv_mx_arguments(np.zeros((16, 64), np.uint8)))
    assert (
        error.message == "K is 128 from the shape of argument x but 64 from the shape of argument w"
    )
    assert "w is an array of u8, so WT is u8 and its sizes count bytes" in error.hint
    assert "8 / bits elements each" in error.hint
    assert "lpir.PackedArray(w, (N, K), 'f4e2m1')" in error.hint  # WT's default


BF16_COPY = """
kernel widen[N = 8](w: global bf16[N], i: global i8[N], y: global f32[N]) blocks(1) threads(8) {
    store(y[:], cast<f32>(load(w[:])) + cast<f32>(load(i[:])))
}
"""


def test_bytes_for_a_declared_bf16_say_to_view_them_even_when_a_size_conflicts():
    kernel = lpir.compile(BF16_COPY, target="interp")
    out = np.zeros(8, np.float32)
    error = _error(kernel, np.zeros(16, np.uint8), np.zeros(8, np.int8), out)
    assert (
        error.message == "N is 16 from the shape of argument w but 8 from the shape of argument i"
    )
    assert "w.view(ml_dtypes.bfloat16) (which halves its last dimension)" in error.hint
    error = _error(kernel, np.zeros(8, np.int16), np.zeros(8, np.int8), out)
    assert error.message == "argument w must hold bf16, got i16"
    assert "w.view(ml_dtypes.bfloat16);" in error.hint
    error = _error(kernel, np.zeros(8, ml_dtypes.bfloat16), np.zeros(8, np.uint8), out)
    assert error.message == "argument i must hold i8, got u8"
    assert "i.view(np.int8)" in error.hint and "i.astype(np.int8)" in error.hint


def test_int8_bytes_for_a_packed_dtype_say_to_view_them_as_uint8(target):
    kernel = lpir.compile(COPY, target=target)
    error = _error(kernel, np.zeros(64, np.int8), lpir.pack(CODES, "u4"))
    assert "lpir.PackedArray(w.view(np.uint8), (N,), 'u4')" in error.hint


def test_a_float_array_for_bf16_keeps_the_conversion_hint():
    kernel = lpir.compile(BF16_COPY, target="interp")
    error = _error(kernel, np.zeros(8, np.float32), np.zeros(8, np.int8), np.zeros(8, np.float32))
    assert error.hint == "convert it: array.astype(ml_dtypes.bfloat16)"


def test_gpu_bytes_get_the_gpu_calls():
    """A GPU array of bytes (a stand-in exposing __cuda_array_interface__): DevicePacked and
    torch's dtypes, not numpy's; refused before anything is compiled or launched."""
    from test_cuda_arguments import PACKED, FakeDeviceArray

    out = FakeDeviceArray((128,))
    packed = lpir.compile(PACKED, target="cuda", WT="f4e2m1")
    error = _error(packed, FakeDeviceArray((64,), "|u1"), out)
    assert "lpir.DevicePacked(w, 'f4e2m1', (N,))" in error.hint
    fp8 = lpir.compile(PACKED, target="cuda", WT="f8e4m3")
    error = _error(fp8, FakeDeviceArray((128,), "|u1"), out)
    assert "w.view(torch.float8_e4m3fn)" in error.hint and "w.to(torch." in error.hint


@pytest.mark.parametrize(
    ("source", "message"), [("", "empty"), (b"", "empty"), (" \n\t", "only whitespace")]
)
def test_an_empty_source_says_it_is_empty(source, message):
    """`lpir.compile("")` said ". is a directory, not a kernel file": Path("") is "."."""
    with pytest.raises(LpirError, match=f"the source (is|holds) {message}") as caught:
        lpir.compile(source)
    assert "kernel source text" in caught.value.hint


def test_an_fp8_array_of_another_fp8_type_names_the_one_to_convert_to():
    import ml_dtypes

    source = """
kernel k[N = 4](x: global f8e4m3[N], y: global f32[N]) blocks(1) threads(32) {
    store(y[:], cast<f32>(load(x[:])))
}
"""
    kernel = lpir.compile(source, target="interp")
    error = _error(kernel, np.zeros(4, ml_dtypes.float8_e4m3fnuz), np.zeros(4, np.float32))
    assert error.hint == "convert it: array.astype(ml_dtypes.float8_e4m3fn)"
