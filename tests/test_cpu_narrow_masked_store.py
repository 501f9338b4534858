"""Masked stores of narrowed integers with one lane on: the cpu target writes that element only.

LLVM 22 on an AVX-512 host compiles a masked store of a truncated vector (i32 -> u8, i64 ->
i32, ...) whose mask is a constant with one lane set into a store of the untruncated element
(LLVM issue 179489): 1 to 4 bytes too many, past the tensor's end or over the next element,
another block's output among them. `backends/llvm/one_lane_stores.py` makes such stores
scalar after LLVM's optimizer, where an edge mask has become a constant.

Each kernel writes into the first elements of a buffer of canary bytes, next to numpy's copy
of the interpreter's result: every byte of the buffer must match (on a host without AVX-512,
LLVM never made the mistake and the tests pass either way). The rewrite of the IR text is
checked on its own: which masks it rewrites, the alignment and metadata of the store it makes,
and a form it cannot read refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import jit
from lpir.backends.llvm.one_lane_stores import scalarize_one_lane_stores

import lpir
from lpir.errors import CompileError

CANARY = 0x55
SLACK = 64  # canary bytes after the output

# One lane of a narrowed tile stored, at position P (a constant mask from the start).
ONE_LANE = """
kernel one_lane[S = i32, D = u8, T = 4, P = 0](x: global S[T], y: global D[T])
    blocks(1) threads(32) {
    store(y[0 :+ T], cast<D>(load(x[0 :+ T])), mask = arange(T) == P)
}
"""

# The finding as the fuzzer met it: a tile of 4 columns over a tensor of one, the edge mask
# <1, 0, 0, 0>.
EDGE = """
kernel edge[S = i32, D = u8](x: global S[4], y: global D[1, 1]) blocks(1) threads(32) {
    store(y[0, 0 :+ 4], cast<D>(load(x[0 :+ 4])))
}
"""

# A row of N in tiles of T: the last step's edge mask is a run-time value as emitted, a
# constant of one lane only once LLVM has unrolled the loop.
LOOP_TAIL = """
kernel loop_tail[S = i32, D = u8, N = 65, T = 16](x: global S[N], y: global D[N])
    blocks(1) threads(1) {
    for n0 in range(0, N, T) {
        store(y[n0 :+ T], cast<D>(load(x[n0 :+ T])))
    }
}
"""

# Two blocks, each one element of y: block 0 writes row 1 (the last), then block 1 writes row
# 0, whose extra bytes landed on row 1 (and, from row 1, past y).
TWO_BLOCKS = """
kernel two_blocks[](x: global i32[16], y: global u8[2, 1]) blocks(2) threads(256) {
    v = cast<u8>(load(x[block.x * 8 :+ 8]))
    store(y[1 - block.x, 0 :+ 4], v[0 : 4])
}
"""

NARROWINGS = [("i32", "u8"), ("i32", "i8"), ("i32", "i16"), ("i32", "u16"), ("i64", "i32")]
NARROWINGS += [("i16", "u8"), ("i64", "u8")]


def _inputs(source_type: str, count: int) -> np.ndarray:
    """Values whose high bytes are not zero (a too-wide store writes bytes unlike the canary)."""
    numpy_type = lpir.dtype(source_type).numpy_dtype
    return (np.arange(count) * 37 - 1000).astype(numpy_type)


def _written(source: str, target: str, x: np.ndarray, shape: tuple, **params: object) -> bytes:
    """The bytes of a canary buffer whose first elements are the kernel's output y (of
    `shape`), after one run on `target`."""
    output_type = lpir.dtype(str(params.get("D", "u8")))
    size = int(np.prod(shape)) * output_type.nbits // 8
    buffer = np.full(size + SLACK, CANARY, np.uint8)
    y = buffer[:size].view(output_type.numpy_dtype).reshape(shape)
    lpir.compile(source, target=target, **params)(x, y)
    return buffer.tobytes()


def _same_bytes(source: str, x: np.ndarray, shape: tuple, **params: object) -> None:
    wanted = _written(source, "interp", x, shape, **params)
    got = _written(source, "cpu", x, shape, **params)
    size = len(wanted) - SLACK
    assert got[:size] == wanted[:size], f"{params}: y {got[:size].hex()} != {wanted[:size].hex()}"
    assert got[size:] == wanted[size:], f"{params}: bytes past y {got[size : size + 8].hex()}"


@pytest.mark.parametrize(("source_type", "output_type"), NARROWINGS)
@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_one_lane_of_a_narrowed_tile_writes_that_element_only(
    source_type: str, output_type: str, lanes: int
) -> None:
    x = _inputs(source_type, lanes)
    for position in sorted({0, 1, lanes // 2, lanes - 1}):
        params = {"S": source_type, "D": output_type, "T": lanes, "P": position}
        _same_bytes(ONE_LANE, x, (lanes,), **params)


@pytest.mark.parametrize(("source_type", "output_type"), NARROWINGS)
def test_an_edge_mask_of_one_lane_writes_inside_the_tensor(
    source_type: str, output_type: str
) -> None:
    _same_bytes(EDGE, _inputs(source_type, 4), (1, 1), S=source_type, D=output_type)


@pytest.mark.parametrize(
    ("source_type", "output_type", "tile"),
    [("i32", "u8", 16), ("i32", "u8", 4), ("i64", "i32", 4), ("i16", "u8", 8), ("i32", "i16", 8)],
)
def test_the_last_step_of_an_unrolled_loop_writes_inside_the_tensor(
    source_type: str, output_type: str, tile: int
) -> None:
    size = 4 * tile + 1  # the last step has one element left
    params = {"S": source_type, "D": output_type, "N": size, "T": tile}
    _same_bytes(LOOP_TAIL, _inputs(source_type, size), (size,), **params)


def test_one_blocks_store_leaves_the_next_blocks_element(monkeypatch) -> None:
    """One native thread runs the blocks in order, so the overwrite that raced is certain."""
    monkeypatch.setenv("LPIR_NUM_THREADS", "1")
    _same_bytes(TWO_BLOCKS, _inputs("i32", 16), (2, 1))


def test_run_time_and_multi_lane_masks_stay_vector_stores() -> None:
    """Only the one-lane constant masks change: a tail whose mask depends on the block, and
    one of two lanes, are still one masked vector store each."""
    source = """
kernel k[N = 66, T = 16](x: global i32[N], y: global u8[N], z: global u8[2])
    blocks(cdiv(N, T)) threads(32) {
    i = block.x * T
    store(y[i :+ T], cast<u8>(load(x[i :+ T])))
    store(z[0 :+ 4], cast<u8>(load(x[0 :+ 4])))
}
"""
    kernel = lpir.compile(source, target="cpu")
    optimized = jit.optimized_text(kernel.source("llvm"))
    assert "@llvm.masked.store.v16i8" in optimized and "@llvm.masked.store.v4i8" in optimized
    assert "lpir.lane." not in optimized
    x = _inputs("i32", 66)
    y, z = np.zeros(66, np.uint8), np.zeros(2, np.uint8)
    kernel(x, y, z)
    np.testing.assert_array_equal(y, x.astype(np.uint8))
    np.testing.assert_array_equal(z, x[:2].astype(np.uint8))


# ---- the rewrite of the optimized IR text ---------------------------------------------------
def _store(value: str, pointer: str, mask: str, suffix: str = "") -> str:
    return f"  tail call void @llvm.masked.store.v4i32.p0({value}, {pointer}, {mask}){suffix}"


@pytest.mark.parametrize(
    ("mask", "lane"),
    [
        ("<4 x i1> <i1 true, i1 false, i1 false, i1 false>", 0),
        ("<4 x i1> <i1 false, i1 false, i1 true, i1 poison>", 2),
        ("<4 x i1> <i1 undef, i1 true, i1 false, i1 false>", 1),
    ],
)
def test_a_one_lane_mask_becomes_a_scalar_store_of_that_lane(mask: str, lane: int) -> None:
    line = _store("<4 x i32> %v", "ptr nonnull align 16 %p", mask, ", !alias.scope !3")
    text = scalarize_one_lane_stores(f"define void @f() {{\n{line}\n}}")
    assert text is not None
    body = text.split("\n")[1:-1]
    assert body[0] == f"  %lpir.lane.1 = extractelement <4 x i32> %v, i64 {lane}"
    if lane == 0:
        assert body[1:] == ["  store i32 %lpir.lane.1, ptr %p, align 16, !alias.scope !3"]
        return
    address = "%lpir.lane.1.address"
    assert body[1] == f"  {address} = getelementptr inbounds i32, ptr %p, i64 {lane}"
    # lane 1 lies 4 bytes past a 16-byte boundary, lane 2 8 bytes
    assert body[2] == f"  store i32 %lpir.lane.1, ptr {address}, align {4 * lane}, !alias.scope !3"


def test_other_masked_stores_are_left_and_empty_ones_removed() -> None:
    pointer = "ptr align 4 %p"
    kept = [
        _store("<4 x i32> %v", pointer, "<4 x i1> %m"),
        _store("<4 x i32> %v", pointer, "<4 x i1> <i1 true, i1 false, i1 true, i1 false>"),
    ]
    assert scalarize_one_lane_stores("\n".join(kept)) is None
    removed = _store("<4 x i32> splat (i32 7)", pointer, "<4 x i1> zeroinitializer", " #2")
    assert scalarize_one_lane_stores(f"{kept[0]}\n{removed}") == f"{kept[0]}\n"


def test_the_rewritten_ir_compiles_to_a_store_of_one_element() -> None:
    mask = "<4 x i1> <i1 false, i1 true, i1 false, i1 false>"
    text = f"""
define void @f(ptr %x, ptr %y) {{
  %w = load <4 x i32>, ptr %x, align 4
  %v = trunc <4 x i32> %w to <4 x i8>
  call void @llvm.masked.store.v4i8.p0(<4 x i8> %v, ptr align 1 %y, {mask})
  ret void
}}
"""
    assembly = jit.assembly(text)
    stores = [line.split()[0] for line in assembly.splitlines() if "(%rsi)" in line]
    assert stores == ["movb"], assembly


def test_a_masked_store_it_cannot_read_is_refused() -> None:
    line = "  call void @llvm.masked.store.v4i32.p0(<4 x i32> %v, ptr @global, <4 x i1> %m)"
    with pytest.raises(CompileError, match="cannot read a masked store"):
        scalarize_one_lane_stores(line)


def test_a_one_lane_store_of_lanes_packed_into_bits_is_refused() -> None:
    """Lane k of an <8 x i4> is at bit 4k, not byte k: a scalar store through a
    getelementptr of i4 would write the wrong byte. lpir emits no such store (packed data
    goes through bytes); the rewrite refuses one rather than mis-rewrite it (a reviewer)."""
    line = (
        "  call void @llvm.masked.store.v8i4.p0(<8 x i4> %v, ptr align 1 %p, "
        "<8 x i1> <i1 false, i1 true, i1 false, i1 false, i1 false, i1 false, i1 false, "
        "i1 false>)"
    )
    with pytest.raises(CompileError, match="cannot rewrite a masked store of i4 lanes"):
        scalarize_one_lane_stores(line)
