"""Packed tensors cost about their own size to unpack, pack, draw and read, never a multiple.

The reference interpreter (`lpir run --check`'s oracle) unpacked each packed argument whole
through 64-bit temporaries and packed every one back, inputs included: a 268 MB u4 argument
took 3 GB. Random inputs of `lpir run` drew a uint64 per element (24x the packed size), and
the thread interpreter copied a packed buffer whole for every read. Peaks are measured with
tracemalloc, which sees numpy's allocations, on tensors of 8 to 32 MB.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

import lpir
from lpir.dtypes import dtype
from lpir.ir.types import GlobalType
from lpir.packing import PIECE, pack_codes, storage_bytes, unpack_codes

MB = 1 << 20


def peak_bytes(run: Callable[[], object]) -> int:
    """The most memory `run` held at once beyond what was held before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def reference_codes(data: np.ndarray, size: int, nbits: int) -> np.ndarray:
    """Codes cut out bit by bit: element i is bits [i * nbits, (i + 1) * nbits), LSB first."""
    bits = np.unpackbits(data, bitorder="little")[: size * nbits].reshape(size, nbits)
    return (bits.astype(np.int64) << np.arange(nbits)).sum(axis=1)


@pytest.mark.parametrize("nbits", range(1, 8))
def test_codes_over_several_pieces_unpack_and_pack_bit_for_bit(nbits):
    size = 2 * PIECE + 13  # two whole pieces and a tail ending inside a byte
    dt = dtype(f"u{nbits}")
    data = np.random.default_rng(nbits).integers(0, 256, storage_bytes(size, dt), np.uint8)
    data[-1] &= (1 << (size * nbits % 8 or 8)) - 1  # bits past the tensor: 0, as pack leaves
    codes = unpack_codes(data, size, dt)
    np.testing.assert_array_equal(codes, reference_codes(data, size, nbits))
    np.testing.assert_array_equal(pack_codes(codes, dt).data, data)


SCALAR_RW = """
kernel scalar_rw[T = u4, N = 16](x: global T[N], y: global i32[1], i: i32, j: i32)
        blocks(1) threads(32) {
    let v = load(x[i])
    store(y[0], cast<i32>(v))
    store(x[j], cast<T>(cast<i32>(v) + 1))
}
"""

SCALAR_READ = """
kernel scalar_read[T = u4, N = 16](x: global T[N], y: global i32[1], i: i32)
        blocks(1) threads(32) {
    store(y[0], cast<i32>(load(x[i])))
}
"""


def random_packed(size: int, name: str, seed: int = 0) -> lpir.PackedArray:
    """Random bytes as a packed tensor, the last byte's bits past the tensor set too (a view
    of rows ends where the next row begins: they must survive a store)."""
    data = np.random.default_rng(seed).integers(0, 256, storage_bytes(size, name), np.uint8)
    return lpir.PackedArray(data, (size,), name)


def test_the_interpreter_decodes_a_stored_packed_tensor_at_about_its_decoded_size():
    size = (1 << 25) + 3  # 32 Mi u3 elements: 12 MB packed, 32 MB decoded
    x = random_packed(size, "u3")
    before = x.data.copy()
    codes = unpack_codes(before, size, "u3")
    kernel = lpir.compile(SCALAR_RW, target="interp", T="u3", N=size)
    y = np.zeros(1, np.int32)
    peak = peak_bytes(lambda: kernel(x, y, size - 1, size - 2))
    assert peak < size * 5 // 4 + 8 * MB, f"{peak / MB:.0f} MB for {size / MB:.0f} MB decoded"
    assert y[0] == codes[-1]
    codes[-2] = (codes[-1] + 1) % 8
    wanted = pack_codes(codes, "u3").data
    wanted[-1] = (wanted[-1] & 1) | (before[-1] & 0xFE)  # the bits past the tensor kept
    np.testing.assert_array_equal(x.data, wanted)


def test_the_interpreter_packs_back_no_tensor_it_only_reads():
    size = 1 << 25  # 16 MB packed, 32 MB decoded: read-only bytes are never written
    x = random_packed(size, "u4")
    x.data.flags.writeable = False
    kernel = lpir.compile(SCALAR_READ, target="interp", T="u4", N=size)
    y = np.zeros(1, np.int32)
    peak = peak_bytes(lambda: kernel(x, y, size - 1))
    assert peak < size * 9 // 8 + 8 * MB, f"{peak / MB:.0f} MB for {size / MB:.0f} MB decoded"
    assert y[0] == x.data[-1] >> 4


def test_the_thread_interpreter_reads_packed_elements_without_copying_the_buffer():
    from lpir.interpreter.thread import _read

    size = 64 * MB * 2 + 1  # u3 elements over 48 MB; the last one's bits end inside a byte
    x = random_packed(size, "u3", seed=1)
    index = np.array([0, 1, size // 2, size - 2, size - 1], np.int64)
    got: list[np.ndarray] = []
    peak = peak_bytes(lambda: got.append(_read(x.data, dtype("u3"), index)))
    assert peak < MB, f"{peak / MB:.0f} MB to read 5 elements"
    data = x.data.tobytes()
    wanted = [int.from_bytes(data[i * 3 // 8 :][:2], "little") >> i * 3 % 8 & 7 for i in index]
    np.testing.assert_array_equal(got[0], wanted)


@pytest.mark.parametrize("name", ["u4", "u3", "i2", "bool", "f4e2m1", "f6e3m2", "f8e5m2"])
def test_random_packed_arguments_cost_their_packed_size(name):
    from lpir.runner import random_argument

    dt = dtype(name)
    size = (1 << 24) + 5
    shape = GlobalType(dt, (size,))
    drawn: list[lpir.PackedArray] = []
    peak = peak_bytes(lambda: drawn.append(random_argument(shape, np.random.default_rng(0))))
    packed = drawn[0]
    assert isinstance(packed, lpir.PackedArray) and packed.shape == (size,)
    assert peak < packed.nbytes * 9 // 8 + 6 * MB, f"{peak / MB:.0f} MB for {packed.nbytes} bytes"
    used = size * dt.nbits % 8
    assert not used or packed.data[-1] >> used == 0  # as lpir.pack leaves the last byte
    counts = np.bincount(packed.codes(), minlength=1 << dt.nbits)
    if dt.is_float:  # every finite code drawn, no NaN or infinity
        values = dt.decode(np.arange(1 << dt.nbits, dtype=dt.code_numpy_dtype))
        assert (counts[~np.isfinite(values)] == 0).all() and (counts[np.isfinite(values)] > 0).all()
    else:  # every code about equally often
        assert counts.min() > 0.9 * size / len(counts)
    again = random_argument(shape, np.random.default_rng(0))
    np.testing.assert_array_equal(again.data, packed.data)


@pytest.mark.parametrize("name", ["f16", "bf16", "f32", "i32", "u8"])
def test_random_unpacked_arguments_are_one_draw_drawn_piecewise(name):
    """Drawn a piece at a time, the values are those of one draw of the whole (what `lpir run
    --seed` gave before)."""
    from lpir.runner import random_argument

    dt = dtype(name)
    shape = (3, PIECE + 7)
    got = random_argument(GlobalType(dt, shape), np.random.default_rng(5))
    rng = np.random.default_rng(5)
    if dt.is_float:
        wanted = rng.standard_normal(shape).astype(dt.numpy_dtype)
    else:
        top = 1 << min(dt.nbits, 16)
        wanted = dt.from_codes(rng.integers(0, top, size=shape, dtype=np.uint64))
    assert got.dtype == wanted.dtype and got.shape == shape
    np.testing.assert_array_equal(got.view(np.uint8), wanted.view(np.uint8))
    bounded = random_argument(GlobalType(dt, shape), np.random.default_rng(5), 300)
    if dt.is_int:
        wanted = np.random.default_rng(5).integers(0, min(300, int(dt.max) + 1), size=shape)
        np.testing.assert_array_equal(bounded, wanted.astype(dt.numpy_dtype))


def test_too_many_rows_for_i32_indices_say_how_to_split_the_call():
    source = """
kernel rows_of_bits[D = 8192](x: global u1[n, D], y: global u1[n, D], n: i32)
        blocks(1) threads(32) {
    store(y[0, 0 :+ 32], load(x[0, 0 :+ 32]))
}
"""
    rows = 2**31 // 8192  # one row more than i32 indices reach: 256 MB never touched
    x, y = (
        lpir.PackedArray(np.zeros(storage_bytes(rows * 8192, "u1"), np.uint8), (rows, 8192), "u1")
        for _ in range(2)
    )
    kernel = lpir.compile(source, target="interp")
    with pytest.raises(lpir.LpirError) as error:
        kernel(x, y, rows)
    assert "more than i32 indices reach" in str(error.value)
    assert "split the call in two" in error.value.hint and "x[:131072]" in error.value.hint


@pytest.mark.parametrize("name", ["u4", "f4e2m1", "f8e4m3"])
def test_example_weights_are_drawn_without_64_bit_codes(name):
    """examples/common.py's random_weights drew a uint64 per weight beside the f32 values."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "common.py"
    spec = importlib.util.spec_from_file_location("example_common", path)
    common = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(common)  # type: ignore[union-attr]
    dt, shape = dtype(name), (2048, 2048)
    drawn: list[tuple[lpir.PackedArray, np.ndarray]] = []
    peak = peak_bytes(
        lambda: drawn.append(common.random_weights(dt, shape, np.random.default_rng(0)))
    )
    packed, values = drawn[0]
    assert peak < 8.5 * values.size, f"{peak / values.size:.1f} bytes a weight"
    assert np.isfinite(values).all() and values.dtype == np.float32
    np.testing.assert_array_equal(dt.decode(packed.codes()).astype(np.float32), values)
