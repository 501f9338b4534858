"""pipeline-loads: a loop's global loads issued `stages - 1` iterations ahead, same results.

The CUDA pipeline runs the pass (2 stages unless the loop says otherwise); its thread IR runs
on the thread interpreter ("threads-cuda") and, as emitted CUDA C, on the host emulation. Both
must equal the reference interpreter for every number of stages, including loops shorter than
the pipeline and tiles hanging over the tensor's edge. The structure tests pin what is moved
and what is left where it was.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel

import lpir
from lpir.ir.parser import parse
from lpir.ir.printer import print_module

# x and packed u3 weights streamed in BLOCK-wide tiles: two pipelined loads with masks at the
# edge (N need not divide BLOCK), one loop-carried accumulator.
STREAM = """
kernel stream[N = 1000, BLOCK = 128, STAGES = 2](
    x: global f32[N], w: global u3[N], y: global f32[BLOCK],
) blocks(1) threads(32) {
    acc = zeros<f32>[BLOCK]
    for i in range(0, N, BLOCK, stages = STAGES) {
        acc += load(x[i :+ BLOCK]) * cast<f32>(load(w[i :+ BLOCK]))
    }
    store(y[0 :+ BLOCK], acc)
}
"""

CASES = [(n, stages) for n in (100, 128, 256, 1000) for stages in (1, 2, 3, 4)]


def arguments(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    w = lpir.pack(rng.integers(0, 8, n), "u3")
    return [x, w, np.zeros(128, np.float32)]


def run(target: str, n: int, stages: int):
    kernel = lpir.compile(STREAM, target=target, N=n, STAGES=stages)
    args = arguments(n)
    kernel(*args)
    return kernel, args[2]


def final_ir(n: int = 1000, stages: int = 2, source: str = STREAM, **params) -> str:
    kernel = lpir.compile(source, target="threads-cuda", N=n, STAGES=stages, **params)
    return kernel.specialize(None).stages["final"]


@pytest.mark.parametrize(("n", "stages"), CASES)
def test_pipelined_loop_equals_the_interpreter(n, stages):
    _, wanted = run("interp", n, stages)
    _, got = run("threads-cuda", n, stages)
    # the same f32 products summed in the same order per lane: equal to the last bit
    np.testing.assert_array_equal(got, wanted)


@pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
def test_pipelined_cuda_c_equals_the_interpreter():
    kernels, expected, inputs = [], [], []
    for index, (n, stages) in enumerate(CASES):
        kernel, wanted = run("threads-cuda", n, stages)
        kernels.append(emit_kernel(kernel.last.module.kernels[0], f"stream_{index}"))
        expected.append(run("interp", n, stages)[1])
        inputs.append(arguments(n))
    for runner, wanted, args in zip(emulate_kernels(kernels), expected, inputs):
        emulated = copy.deepcopy(args)
        runner.run(emulated)
        np.testing.assert_array_equal(emulated[2], wanted)


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_each_load_is_issued_stages_minus_one_iterations_ahead(stages):
    text = final_ir(stages=stages)
    before, loop = text.split(" = for ", 1)
    # the first stages - 1 tiles of each tensor before the loop, the next one inside it
    assert before.count("ld(%x") == stages - 1 and before.count("ld(%w") == stages - 1
    assert loop.count("ld(%x") == 1 and loop.count("ld(%w") == 1
    assert f"stages {stages} iter_args(" in loop
    # carried: the accumulator and stages - 1 tiles of x and of w
    header = loop.split("\n", 1)[0]
    assert header.count("%x_ahead") == stages - 1 and header.count("%w_ahead") == stages - 1
    # the prefetched iteration is clamped to the last one (1000 = 7 * 128 + 104: 896)
    assert "constant {value = 896}" in text and "min(" in loop


def test_one_stage_and_the_cpu_leave_the_loop_alone():
    assert "_ahead" not in final_ir(stages=1)
    cpu = lpir.compile(STREAM, target="cpu", N=1000, STAGES=3).specialize(None)
    assert "_ahead" not in cpu.stages["final"]


def test_stages_past_the_trip_count_are_the_trip_count():
    """Tiles further ahead than the loop has iterations would only request the last one again:
    stages = 32 over two iterations compiled 32 stages of code (and S = 512 over five, 6758
    lines of CUDA C); it is stages = 2, and one iteration has nothing to run ahead of."""
    text = final_ir(n=256, stages=32)
    body = text.split("\n", 1)[1]  # the header names the parameter STAGES itself
    assert "stages 2 iter_args(" in body and body == final_ir(n=256, stages=2).split("\n", 1)[1]
    assert "_ahead" not in final_ir(n=100, stages=4)


def test_default_is_two_stages_on_the_gpu():
    source = STREAM.replace(", stages = STAGES", "")
    assert "stages 2 iter_args(" in final_ir(source=source)


IN_PLACE = """
kernel scale[N = 512, STAGES = 2](x: global f32[N], s: global f32[N]) blocks(1) threads(32) {
    for i in range(0, N, 64) {
        store(x[i :+ 64], load(x[i :+ 64]) * load(s[i :+ 64]))
    }
}
"""

CARRIED = """
kernel walk[N = 512, STAGES = 2](x: global f32[N], y: global f32[64]) blocks(1) threads(32) {
    acc = zeros<f32>[64]
    let j = 0
    for i in range(0, N, 64) {
        acc += load(x[j :+ 64])
        j = j + 64
    }
    store(y[0 :+ 64], acc)
}
"""

RUNTIME_BOUND = """
kernel bounded[N = 512, STAGES = 2](x: global f32[N], n: i32, y: global f32[64])
    blocks(1) threads(32) {
    acc = zeros<f32>[64]
    for i in range(0, n, 64, stages = STAGES) {
        acc += load(x[i :+ 64])
    }
    store(y[0 :+ 64], acc)
}
"""


def test_a_tensor_the_loop_writes_is_not_loaded_ahead():
    text = final_ir(n=512, source=IN_PLACE)
    assert "%s_ahead" in text and "%x_ahead" not in text


def test_an_address_from_a_loop_carried_value_is_not_loaded_ahead():
    assert "_ahead" not in final_ir(n=512, source=CARRIED)


def test_a_loop_to_a_run_time_bound_is_pipelined_its_first_requests_masked():
    """The loop may not run (n <= 0): its first tiles, requested before it, are masked by
    whether it does, so an empty loop reads nothing (its index would lie outside the range
    the masks were decided for)."""
    text = final_ir(n=512, source=RUNTIME_BOUND)
    assert "%x_ahead" in text, text
    before_loop = text.split(" = for ", 1)[0]
    runs = re.search(r"(%\w+) = lt\(%\w+, %n\) : bool", before_loop)
    assert runs is not None, before_loop
    assert f"splat({runs.group(1)})" in before_loop, before_loop


@pytest.mark.parametrize(
    "target",
    [
        "threads-cuda",
        pytest.param(
            "cuda-host",
            marks=pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler"),
        ),
    ],
)
def test_a_loop_to_a_run_time_bound_computes_the_same_for_any_length(target):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(512).astype(np.float32)
    kernel = lpir.compile(RUNTIME_BOUND, target=target, N=512, STAGES=3)
    for n in (-100, 0, 1, 63, 64, 65, 384, 512, 700):
        y = np.zeros(64, np.float32)
        kernel(x, n, y)
        wanted = np.zeros(64, np.float32)
        for i in range(0, n, 64):
            chunk = x[i : i + 64]  # past the end of x: 0
            wanted += np.pad(chunk, (0, 64 - len(chunk)))
        np.testing.assert_allclose(y, wanted, rtol=1e-6, atol=1e-6, err_msg=f"n = {n}")


def inputs(source: str) -> list:
    """x (and s) random, n = 384 where the loop bound is an argument, y zeros."""
    rng = np.random.default_rng(1)
    values = {"n": 384, "y": np.zeros(64, np.float32)}
    names = [arg.name for arg in lpir.compile(source, target="interp").definition.args]
    return [values.get(name, rng.standard_normal(512).astype(np.float32)) for name in names]


@pytest.mark.parametrize(
    "source", [IN_PLACE, CARRIED, RUNTIME_BOUND], ids=["in-place", "carried", "runtime-bound"]
)
def test_loops_left_alone_still_compute_the_same(source):
    results = {}
    for target in ("interp", "threads-cuda"):
        args = inputs(source)
        lpir.compile(source, target=target, N=512)(*args)
        results[target] = args
    for got, wanted in zip(results["threads-cuda"], results["interp"]):
        np.testing.assert_array_equal(got, wanted)


def test_stages_survive_printing_and_parsing():
    text = final_ir(stages=3)
    assert "stages 3 iter_args(" in text
    assert print_module(parse(text)) == text


# x is the same in every block, w differs per block
SHARED_AND_OWN = """
kernel rows[N = 256, K = 1024, STAGES = 4](
    x: global f32[K], w: global f32[N, K], y: global f32[N],
) blocks(N / 32) threads(64) {
    acc = zeros<f32>[32, 64]
    for k0 in range(0, K, 64, stages = STAGES) {
        acc += load(w[block.x * 32 :+ 32, k0 :+ 64]) * load(x[k0 :+ 64])[None, :]
    }
    store(y[block.x * 32 :+ 32], sum(acc, axis = 1))
}
"""


@pytest.mark.parametrize("stages", [2, 4])
def test_a_load_every_block_makes_alike_is_one_iteration_ahead(stages):
    """With several blocks, x comes from cache: one tile ahead; w, S - 1 tiles ahead."""
    header = final_ir(n=256, stages=stages, source=SHARED_AND_OWN).split(" = for ", 1)[1]
    header = header.split("\n", 1)[0]
    assert header.count("%x_ahead") == 1 and header.count("%w_ahead") == stages - 1
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(1024).astype(np.float32)]
    args += [rng.standard_normal((256, 1024)).astype(np.float32), np.zeros(256, np.float32)]
    unpipelined = copy.deepcopy(args)
    lpir.compile(SHARED_AND_OWN, target="threads-cuda", STAGES=1)(*unpipelined)
    lpir.compile(SHARED_AND_OWN, target="threads-cuda", STAGES=stages)(*args)
    np.testing.assert_array_equal(args[2], unpipelined[2])  # only when loads are issued moved


# the same x, but only stored into shared memory (and read from there): the CUDA backend copies
# its tiles straight into buffers of the shared tile, so it is S - 1 tiles ahead like w
SHARED_X_IN_SHARED_MEMORY = """
kernel rows[N = 256, K = 1024, STAGES = 4](
    x: global f32[K], w: global f32[N, K], y: global f32[N],
) blocks(N / 32) threads(64) {
    sx = shared<f32>[64]
    acc = zeros<f32>[32, 64]
    for k0 in range(0, K, 64, stages = STAGES) {
        store(sx, load(x[k0 :+ 64]))
        sync()
        acc += load(w[block.x * 32 :+ 32, k0 :+ 64]) * load(sx)[None, :]
        sync()
    }
    store(y[block.x * 32 :+ 32], sum(acc, axis = 1))
}
"""


def test_a_load_every_block_makes_alike_but_only_stores_to_shared_memory_is_all_ahead():
    header = final_ir(n=256, stages=4, source=SHARED_X_IN_SHARED_MEMORY).split(" = for ", 1)[1]
    header = header.split("\n", 1)[0]
    assert header.count("%x_ahead") == 3 and header.count("%w_ahead") == 3
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(1024).astype(np.float32)]
    args += [rng.standard_normal((256, 1024)).astype(np.float32), np.zeros(256, np.float32)]
    wanted = copy.deepcopy(args)
    lpir.compile(SHARED_X_IN_SHARED_MEMORY, target="interp")(*wanted)
    lpir.compile(SHARED_X_IN_SHARED_MEMORY, target="threads-cuda")(*args)
    np.testing.assert_allclose(args[2], wanted[2], rtol=1e-5, atol=1e-4)


def test_a_load_every_block_makes_alike_stored_by_one_replica_stays_one_ahead():
    """A masked store (here one replica of a replicated x stores) cannot become copies
    straight into shared memory: x keeps to registers, one tile ahead."""
    source = SHARED_X_IN_SHARED_MEMORY.replace("threads(64)", "threads(128)")
    final = final_ir(n=256, stages=4, source=source)
    assert re.search(r"st\(%\w+, %\w+, %x_ahead, %\w+\)", final)  # the mask, 4th operand
    header = final.split(" = for ", 1)[1].split("\n", 1)[0]
    assert header.count("%x_ahead") == 1 and header.count("%w_ahead") == 3


# each block walks its own rows in an outer loop: the inner loads differ per block through the
# outer loop's start, not through their own address arithmetic
STRIDED_BLOCKS = """
kernel strided[N = 256, K = 1024, STAGES = 4](w: global f32[N, K], y: global f32[N])
    blocks(4) threads(64) {
    for r in range(block.x * 32, N, 128) {
        acc = zeros<f32>[32, 64]
        for k0 in range(0, K, 64, stages = STAGES) {
            acc += load(w[r :+ 32, k0 :+ 64])
        }
        store(y[r :+ 32], sum(acc, axis = 1))
    }
}
"""


def test_a_load_through_a_loop_that_starts_at_the_block_index_differs_per_block():
    header = final_ir(n=256, stages=4, source=STRIDED_BLOCKS).split("stages 4 iter_args(")[1]
    assert header.split("\n", 1)[0].count("%w_ahead") == 3


def test_served_from_cache_needs_many_blocks_reading_a_replicated_operand_alike():
    """A broadcast operand (each element loaded by several threads) that 8 or more blocks read
    alike comes from cache; a tile each thread loads alone, or one few blocks share, does not."""
    from lpir.backends.cuda.examples import example_path

    from lpir.ir.analysis import served_from_cache, thread_replicated
    from lpir.ir.ops import LoadThreadOp

    def loads(path, **params):
        kernel = lpir.compile(path, target="cuda", **params).specialize(None).module.kernels[0]
        found = {}
        for op in kernel.walk():
            if isinstance(op, LoadThreadOp):
                found.setdefault(op.memory.name_hint, (op, kernel))
        return found

    split = loads(example_path("gemv_splitk"), N=4096, K=4096, SPLIT=4)
    assert thread_replicated(*_threads(split["x"])) and served_from_cache(*split["x"])
    assert not thread_replicated(*_threads(split["w"])) and not served_from_cache(*split["w"])
    assert thread_replicated(*_threads(split["s"])) and not served_from_cache(*split["s"])
    few = loads(example_path("gemv_splitk"), N=64, K=4096, SPLIT=4)  # 4 tiles of rows
    assert not served_from_cache(*few["x"])


def _threads(entry):
    op, kernel = entry
    return op, kernel.threads
