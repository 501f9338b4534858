"""Other libraries' host arrays as arguments, and the messages of a few API mistakes (found
by an explorer probing the Python API):

* an object numpy reads through `__array__` (a torch CPU tensor, a jax CPU array) passed the
  deduction, then "argument x must be a numpy array, got CpuTensorLike", without a hint: it
  is now read in place (DLPack, or `__array__` where that shares memory), and refused with
  how to convert it once where numpy reads it only by copying;
* `T=np.dtype(">f4")` said T "must be an int or a dtype"; `lpir.compile(123)` said "no such
  kernel file: 123"; an IR kernel given a byte-swapped array had no `astype('<f4')` hint.

The fakes below stand for torch and jax (not installed here): what lpir reads of them is
DLPack and `__array__`, which they implement alike.
"""

from __future__ import annotations

import numpy as np
import pytest

import lpir
from lpir.errors import ArgumentError, LpirError

SCALE = """
kernel scale[N, BLOCK = 64](x: global f32[N], y: global f32[N], alpha: f32)
    blocks(cdiv(N, BLOCK)) threads(32) {
    i = block.x * BLOCK
    store(y[i :+ BLOCK], load(x[i :+ BLOCK]) * alpha)
}
"""

TYPED = """
kernel typed[T = f32, N = 64](x: global T[N], y: global T[N]) blocks(1) threads(32) {
    store(y[:], load(x[:]))
}
"""


class SharedArray:
    """A CPU tensor as torch's: `__array__` gives a numpy array over its own memory."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype=None, copy=None):  # type: ignore[no-untyped-def]
        return self.array


class DLPackTensor:
    """A CPU tensor that numpy reads through DLPack only (no `__array__`)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __dlpack__(self, **options):  # type: ignore[no-untyped-def]
        return self.array.__dlpack__(**options)

    def __dlpack_device__(self):  # type: ignore[no-untyped-def]
        return self.array.__dlpack_device__()


class CopiedArray(SharedArray):
    """An array-like whose every conversion is a new copy."""

    def __array__(self, dtype=None, copy=None):  # type: ignore[no-untyped-def]
        return self.array.copy()


class Unreadable:
    def __array__(self, dtype=None, copy=None):  # type: ignore[no-untyped-def]
        raise TypeError("Got unsupported ScalarType BFloat16")


@pytest.fixture(params=["interp", "threads", "cpu"])
def target(request):
    return request.param


@pytest.mark.parametrize("wrap", [SharedArray, DLPackTensor])
def test_a_foreign_host_array_is_read_and_written_in_place(target, wrap):
    kernel = lpir.compile(SCALE, target=target)
    x = np.arange(100, dtype=np.float32)
    y = np.zeros(100, np.float32)
    kernel(wrap(x), wrap(y), 2.0)
    np.testing.assert_array_equal(y, 2 * x)
    y[:] = 0
    kernel(wrap(x), wrap(y), 3.0)  # a call like the first: the same specialization
    np.testing.assert_array_equal(y, 3 * x)
    assert len(kernel.specializations) == 1
    ir_kernel = lpir.compile(kernel.ir("source"), target=target)
    ir_kernel(wrap(x), wrap(y), 4.0)
    np.testing.assert_array_equal(y, 4 * x)


def test_a_foreign_array_numpy_copies_is_refused_with_how_to_convert_it(target):
    kernel = lpir.compile(SCALE, target=target)
    x, y = np.ones(100, np.float32), np.zeros(100, np.float32)
    for arguments, name, line in [((CopiedArray(x), y), "x", 2), ((x, CopiedArray(y)), "y", 2)]:
        with pytest.raises(ArgumentError) as caught:
            kernel(*arguments, 1.0)
        error = caught.value
        assert error.message == (
            f"argument {name} is a CopiedArray that numpy reads only by copying it: each call "
            "would copy it, and a kernel's stores into it would go to the copy"
        )
        assert f"{name} = np.asarray({name})" in error.hint and f"{name}.numpy()" in error.hint
        assert error.location is not None and error.location.line == line
    with pytest.raises(ArgumentError) as caught:
        kernel(Unreadable(), y, 1.0)
    assert caught.value.message.startswith(
        "argument x (Unreadable) cannot be read as a numpy array: Got unsupported"
    )
    assert "x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)" in caught.value.hint


def test_a_read_only_foreign_output_is_refused(target):
    """A jax array is read-only: as an input it is read in place, as an output refused."""
    kernel = lpir.compile(SCALE, target=target)
    frozen = np.ones(100, np.float32)
    frozen.flags.writeable = False
    y = np.zeros(100, np.float32)
    kernel(SharedArray(frozen), y, 2.0)
    np.testing.assert_array_equal(y, 2.0)
    with pytest.raises(ArgumentError, match="argument y is read-only but the kernel stores"):
        kernel(y, SharedArray(frozen), 2.0)


def test_a_byte_swapped_dtype_parameter_says_to_give_the_native_one():
    swapped = np.dtype("<f4").newbyteorder()
    with pytest.raises(ArgumentError) as caught:
        lpir.compile(TYPED, target="interp", T=swapped)
    error = caught.value
    assert error.message == (
        f"parameter T is the byte-swapped dtype {swapped.str!r}; lpir's dtypes are in the "
        "host's byte order"
    )
    native = swapped.newbyteorder("=").str
    assert error.hint == f"convert it to the host's byte order: T=np.dtype('{native}')"
    assert (error.location.line, error.location.column) == (2, 14)
    assert lpir.compile(TYPED, target="interp", T=np.dtype(native)).params["T"].name == "f32"


@pytest.mark.parametrize(
    "value, shown", [(123, "int 123"), (None, "None"), (1.5, "float 1.5"), (("k.lp",), "a tuple")]
)
def test_compile_names_an_argument_that_is_no_path_or_source(value, shown):
    with pytest.raises(LpirError) as caught:
        lpir.compile(value)
    assert caught.value.message.startswith(
        f"lpir.compile takes a kernel's path or source text, not {shown}"
    )
    assert "the path of a .lp or .ir file" in caught.value.hint


def test_an_ir_kernel_given_a_byte_swapped_array_says_to_convert_it():
    kernel = lpir.compile(lpir.compile(SCALE, target="interp", N=64).ir("source"))
    x = np.ones(64, np.float32)
    swapped = x.astype(x.dtype.newbyteorder())
    with pytest.raises(ArgumentError) as caught:
        kernel(swapped, np.zeros(64, np.float32), 1.0)
    native = x.dtype.str
    assert caught.value.hint == f"convert it to the host's byte order: array.astype('{native}')"
