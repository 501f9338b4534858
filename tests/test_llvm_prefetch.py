"""Software prefetches on the CPU (backends/llvm/prefetch.py): which loads stream through
memory and get one, and that a prefetch past the end of an array changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from lpir.backends.llvm.prefetch import PREFETCH_BYTES, prefetch_distances, streamed_loads
from test_llvm_harness import private_cache  # noqa: F401

import lpir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def streamed(path: Path | str, **definitions) -> list[str]:
    """The names of the tensors whose loads stream, in the thread IR of one specialization."""
    kernel = lpir.compile(path, target="cpu", **definitions).specialize(None).kernel_ir
    ids = streamed_loads(kernel)
    return [op.operands[0].name_hint for op in kernel.walk() if id(op) in ids]


def test_a_gemv_prefetches_its_weights_only():
    # x is the same in every block (cached); a row's scale is one f32 per thread and
    # iteration (too little to cross cache lines often); the weights stream
    assert streamed(EXAMPLES / "gemv_wq.lp", N=256, K=512) == ["w"]
    assert streamed(EXAMPLES / "gemv_wq.lp", WT="f8e4m3", ZERO=0, N=256, K=512) == ["w"]
    # split-K's 16 rows a block: 8 bytes of weights a thread of 128 and iteration, folded
    # into 8 threads of 64 bytes (fold-threads), stream too; its x is the same in every block
    assert streamed(EXAMPLES / "gemv_splitk.lp") == ["w"]


def test_loads_outside_loops_are_not_prefetched():
    assert streamed(EXAMPLES / "vector_add.lp") == []


def test_a_load_that_does_not_move_with_the_loop_is_not_prefetched(tmp_path):
    source = tmp_path / "fixed.lp"
    source.write_text(
        """kernel fixed[N = 256](a: global f32[N, 64], y: global f32[N])
    blocks(N / 64) threads(64) {
    acc = zeros<f32>[64, 64]
    for i in range(0, 4) {
        acc += load(a[block.x * 64 :+ 64, 0 :+ 64])
    }
    store(y[block.x * 64 :+ 64], sum(acc, axis = 1))
}
"""
    )
    assert streamed(source) == []


def test_prefetching_past_the_end_of_the_weights_is_harmless():
    """The last block's prefetches point PREFETCH_BYTES past the last row, outside the array
    (a hint, which never faults): the results equal the thread-IR interpreter's."""
    n, k = 64, 128
    assert n * k // 2 <= 2 * PREFETCH_BYTES  # most prefetches of the array point past its end
    kernel = lpir.compile(EXAMPLES / "gemv_wq.lp", target="cpu", N=n, K=k, BN=64)
    reference = lpir.compile(EXAMPLES / "gemv_wq.lp", target="threads", N=n, K=k, BN=64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(k).astype(np.float32)
    w = lpir.pack_codes(rng.integers(0, 16, (n, k)).astype(np.uint8), lpir.dtype("u4"))
    s = rng.uniform(0.5, 1.5, (n, k // 128)).astype(np.float32)
    y, expected = np.zeros(n, np.float32), np.zeros(n, np.float32)
    kernel(x, w, s, y)
    reference(x, w, s, expected)
    np.testing.assert_array_equal(y, expected)  # the same f32 operations in the same order


def _prefetches(**tile) -> tuple[int | None, int]:
    """(bytes the logits' load moves a step, prefetches in the LLVM IR) of examples/greedy.lp."""
    kernel = lpir.compile(EXAMPLES / "greedy.lp", target="cpu", M=64, V=128256, **tile)
    spec = kernel.specialize(None)
    steps = list(streamed_loads(spec.kernel_ir).values())
    assert len(steps) == 1  # the logits
    return steps[0], spec.source("llvm").count('call void @"llvm.prefetch')


def test_a_walk_that_skips_memory_prefetches_every_line_it_reads():
    """greedy.lp's threads split each step's logits: at 256 a step over 2 threads of 128 (after
    fold-threads) a thread reads 512 bytes of every 1 KiB, a new stream for the hardware at
    each step, so each of its 8 cache lines is prefetched (PREFETCH_BYTES ahead: 8 steps). At
    2048 a step (8 KiB) the loop runs interleaved (test_llvm_interleave.py), and each thread
    prefetches its 8 lines two steps ahead. One thread reading all 128 logits of a step walks
    on without gaps and prefetches once a step, as a GEMV's row does."""
    assert _prefetches(BV=256, THREADS=32) == (1024, 8)
    assert _prefetches() == (8192, 8)
    assert _prefetches(BV=128, THREADS=1) == (512, 1)


def test_prefetch_distances():
    f32, u4 = lpir.dtype("f32"), lpir.dtype("u4")
    lines = [64 * line for line in range(8)]
    assert prefetch_distances(list(range(16)), f32, 256) == [PREFETCH_BYTES]  # no gap
    assert prefetch_distances(list(range(128)), f32, 1024) == [PREFETCH_BYTES + d for d in lines]
    assert prefetch_distances(list(range(128)), f32, 8192) == [PREFETCH_BYTES]  # 1 step: late
    interleaved = prefetch_distances(list(range(128)), f32, 8192, interleaved=True)
    assert interleaved == [16384 + d for d in lines]
    assert prefetch_distances(list(range(512)), f32, None) == [PREFETCH_BYTES]
    # a column's 8 words of each of 16 rows of 16 KiB a step (GPTQ's qweight): two steps ahead
    assert prefetch_distances(list(range(8)), lpir.dtype("i32"), 262144) == [2 * 262144]
    # a byte of every 64 (a dot's share of a tile the block's threads read together): one
    assert prefetch_distances([64 * r + c for r in range(32) for c in (0, 1)], u4, 2048) == [
        PREFETCH_BYTES
    ]


def test_a_walk_down_the_columns_of_a_matrix_prefetches_steps_ahead():
    """GPTQ's qweight[k / 8, n] is read 16 rows of 16 KiB a step, each thread 32 bytes of a
    row: its step (k0 / 8 at a step of 128, `tid % 8` the thread's column) was not known, so
    the prefetch went PREFETCH_BYTES ahead, into another block's columns; it goes two steps
    ahead now. The scales (one row of 8 KiB a step) keep PREFETCH_BYTES: exactly a step."""
    kernel = lpir.compile(EXAMPLES / "gemv_gptq.lp", target="cpu")
    spec = kernel.specialize(None)
    steps = streamed_loads(spec.kernel_ir)
    names = {
        op.operands[0].name_hint: steps[id(op)] for op in spec.kernel_ir.walk() if id(op) in steps
    }
    assert names == {"qweight": 16 * 4096 * 4, "scales": 4096 * 2}
    source = spec.source("llvm")
    assert source.count('call void @"llvm.prefetch') == 2
    assert re.search(rf"add i64 %\S+, {2 * 16 * 4096 * 4}\n", source)  # the qweight's


def test_the_step_of_an_address_is_its_induction_coefficient_times_the_loop_step():
    from lpir.backends.llvm.prefetch import induction_coefficient

    from lpir.ir import parse

    module = parse(
        """
kernel @walk[](%x: global f32[4096]) blocks(1, 1, 1) threads(4) stage(thread) {
  %tid = thread_index : i32
  %c0 = constant {value = 0} : i32
  %c3 = constant {value = 3} : i32
  %end = constant {value = 64} : i32
  %step = constant {value = 8} : i32
  for %i = %c0 to %end step %step {
    %a = mul(%i, %c3) : i32
    %b = add(%a, %tid) : i32
    %c = shl(%b, %c3) : i32
    %d = sub(%c, %i) : i32
    %e = mul(%i, %i) : i32
    %f = div(%i, %c3) : i32
    %bx = block_index {axis = 0} : i32
    %g = mul(%bx, %c3) : i32
    %h = add(%g, %i) : i32
    %r = rem(%tid, %c3) : i32
    %s = mul(%r, %i) : i32
    %t = rem(%i, %c3) : i32
    %v = ld(%x, %d) {offsets = [0]} : <1 x f32>
  }
}
"""
    )
    loop = next(op for op in module.kernels[0].walk() if op.name == "for")
    values = {op.result.name_hint: op.result for op in loop.body.ops if op.results}
    coefficient = {name: induction_coefficient(values[name], loop, {}) for name in "abcdefghrst"}
    # a block index inside the loop (a row's start: x[block.x, v0 :+ BV]) is the same at
    # every step, as one outside it is; so is the remainder of the thread index (a column)
    assert coefficient == {
        "a": 3, "b": 3, "c": 24, "d": 23, "e": None, "f": None, "g": 0, "h": 1,
        "r": 0, "s": None, "t": None,
    }  # fmt: skip
    # per step of 8: i / 3 is not a whole multiple of i, but 8 / 3 is no whole step either;
    # at a step of 6 it moves 2
    per_step = {name: induction_coefficient(values[name], loop, {}, 8) for name in "adf"}
    assert per_step == {"a": 24, "d": 184, "f": None}
    assert induction_coefficient(values["f"], loop, {}, 6) == 2


def block_prefetched(path: Path | str, **definitions) -> dict[str, int]:
    """The tensors whose loads prefetch blocks ahead, with the bytes a block moves them."""
    from lpir.backends.llvm.prefetch import block_prefetches

    kernel = lpir.compile(path, target="cpu", **definitions).specialize(None).kernel_ir
    steps = block_prefetches(kernel)
    return {op.operands[0].name_hint: steps[id(op)] for op in kernel.walk() if id(op) in steps}


def test_loop_free_kernels_whose_blocks_move_less_than_a_page_prefetch_blocks_ahead():
    """rope's blocks (heads first) move 256 bytes: its 16-row tile's rows lie 8 KiB apart, a
    walk of short pieces the hardware picks up late; quantize's 128 bytes and dequantize's
    16 (the codes; its scales, 4). A block of vector_add, rmsnorm or softmax moves a page or
    more of one contiguous walk: no prefetch. Loops have their own (streamed_loads)."""
    assert block_prefetched(EXAMPLES / "rope.lp", T=4096, H=32) == {"x": 256}
    assert block_prefetched(EXAMPLES / "rope.lp", T=4096, H=32, BT=1) == {"x": 256}
    assert block_prefetched(EXAMPLES / "quantize.lp", M=4096, N=4096) == {"x": 128}
    assert block_prefetched(EXAMPLES / "dequantize.lp", M=4096, N=4096) == {"q": 16, "s": 4}
    assert block_prefetched(EXAMPLES / "vector_add.lp", N=2**20) == {}
    assert block_prefetched(EXAMPLES / "rmsnorm.lp", M=4096, N=4096) == {}
    assert block_prefetched(EXAMPLES / "gemv_wq.lp") == {}
    kernel = lpir.compile(EXAMPLES / "rope.lp", target="cpu", T=4096, H=32).specialize(None)
    assert kernel.source("llvm").count('call void @"llvm.prefetch') == 4  # 256 bytes a thread


def test_block_prefetch_distances():
    from lpir.backends.llvm.prefetch import BLOCKS_AHEAD, block_prefetch_distances

    f16 = lpir.dtype("f16")
    assert block_prefetch_distances(list(range(128)), f16, 256) == [
        BLOCKS_AHEAD * 256 + 64 * line for line in range(4)
    ]
    rows = [row * 4096 + column for row in range(4) for column in range(32)]  # 4 rows apart
    assert block_prefetch_distances(rows, lpir.dtype("f32"), 128) == [
        BLOCKS_AHEAD * 128 + 64 * line for line in (0, 1, 256, 257, 512, 513, 768, 769)
    ]
