"""Shared tiles whose lifetimes do not meet share bytes (backends/cuda/shared_plan.py).

The plan, on thread IR written here: two phases with a barrier between share; tiles whose uses
interleave do not; a use in a loop keeps a tile live across the loop, while tiles new in each
iteration share only with a barrier each way around; where no barrier separates two phases of
the kernel's top level one is inserted (where the bytes saved pay for it), never inside an
`if`; a tile a pipelined loop buffers is live across every loop around it. Then kernels that
reuse: their CUDA C run on the host (every shared byte's accesses checked for races) equals the
interpreter, and a kernel that needed more than sm_90's 227 KiB now compiles with nvcc.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lpir.backends.cuda import shared_plan
from lpir.backends.cuda.compiler import find_nvcc
from lpir.backends.cuda.emitter import KernelEmitter
from lpir.backends.cuda.emulation import emulation_available
from lpir.backends.cuda.shared_plan import SharedPlan, pack_shared_tiles, plan_shared_memory
from lpir.backends.cuda.staging import StagingPlan

import lpir
from lpir.errors import LpirError
from lpir.ir.core import Kernel, Operation, users_of
from lpir.ir.ops import AllocSharedOp
from lpir.ir.parser import parse

needs_emulation = pytest.mark.skipif(not emulation_available(), reason="no host C++ compiler")
needs_nvcc = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")


# ---- the plan, on thread IR ---------------------------------------------------------------------
def _kernel(body: str, elements: int = 1024) -> Kernel:
    """A thread-IR kernel of 32 threads around `body`, whose lines may write `W(a)` (thread t
    stores element t of tile %a) and `R(a)` (thread t reads element 31 - t: another thread's),
    and name tiles allocated as `%a = alloc_shared : T` (f32[elements])."""
    lines = []
    for number, line in enumerate(body.strip().splitlines()):
        line = line.strip()
        if line.startswith("W(") or line.startswith("R("):
            tile = line[2:-1]
            if line[0] == "W":
                line = f"st(%{tile}, %tid, %v) {{offsets = [0]}}"
            else:
                line = f"%r{number} = ld(%{tile}, %mirror) {{offsets = [0]}} : <1 x f32>"
        lines.append("  " + line.replace(": T", f": shared f32[{elements}]"))
    text = "\n".join(
        [
            "kernel @phases[](%x: global f32[32], %c: bool) blocks(1, 1, 1) threads(32) "
            "stage(thread) {",
            "  %tid = thread_index : i32",
            "  %31 = constant {value = 31} : i32",
            "  %mirror = sub(%31, %tid) : i32",
            "  %0 = constant {value = 0} : i32",
            "  %4 = constant {value = 4} : i32",
            "  %1 = constant {value = 1} : i32",
            "  %v = ld(%x, %tid) {offsets = [0]} : <1 x f32>",
            *lines,
            "}",
        ]
    )
    return parse(text).kernels[0]


def _plan(kernel: Kernel, staging: StagingPlan | None = None) -> SharedPlan:
    return pack_shared_tiles(kernel, users_of(kernel), staging or StagingPlan())


def _offsets(plan: SharedPlan) -> dict[str, int]:
    """Each tile's offset by its name in the IR."""
    return {
        placement.alloc.result.name_hint or "": placement.offset for placement in plan.placements
    }


def _first_access(kernel: Kernel, text: str) -> Operation:
    """The first top-level access of the tile named `text`."""
    return next(op for op in kernel.body.ops if op.operands and op.operands[0].name_hint == text)


def test_two_phases_with_a_barrier_between_share_bytes():
    kernel = _kernel(
        """
        %a = alloc_shared : T
        %b = alloc_shared : T
        W(a)
        barrier
        R(a)
        barrier
        W(b)
        barrier
        R(b)
        """
    )
    plan = _plan(kernel)
    assert _offsets(plan) == {"a": 0, "b": 0}
    assert plan.total == 4096 and plan.shares and not plan.barriers_before


def test_tiles_whose_uses_interleave_do_not_share():
    kernel = _kernel(
        """
        %a = alloc_shared : T
        %b = alloc_shared : T
        W(a)
        barrier
        W(b)
        barrier
        R(a)
        R(b)
        """
    )
    plan = _plan(kernel)
    assert sorted(_offsets(plan).values()) == [0, 4096]
    assert plan.total == 8192 and not plan.shares


LOOP = """
    {outer}
    for %i = %0 to %4 step %1 {{
      {inner}
      W(a)
      barrier
      R(a)
      barrier
      W(b)
      barrier
      R(b)
      {last}
      yield
    }}
"""
TILES = "%a = alloc_shared : T\n%b = alloc_shared : T"


def test_a_use_in_a_loop_keeps_a_tile_allocated_outside_it_live_across_the_loop():
    # allocated before the loop, a tile may carry values from one iteration to the next: a
    # and b are both live throughout it
    kernel = _kernel(LOOP.format(outer=TILES, inner="", last="barrier"))
    plan = _plan(kernel)
    assert plan.total == 8192 and not plan.shares
    # after the loop, a barrier between: a tile used only there shares with the loop's
    kernel = _kernel(
        """
        %a = alloc_shared : T
        %c2 = alloc_shared : T
        for %i = %0 to %4 step %1 {
          W(a)
          barrier
          R(a)
          barrier
          yield
        }
        barrier
        W(c2)
        barrier
        R(c2)
        """
    )
    assert _offsets(_plan(kernel)) == {"a": 0, "c2": 0}


def test_tiles_new_in_each_iteration_share_with_a_barrier_each_way_around():
    kernel = _kernel(LOOP.format(outer="", inner=TILES, last="barrier"))
    plan = _plan(kernel)
    assert _offsets(plan) == {"a": 0, "b": 0} and not plan.barriers_before
    # no barrier after b's read: the next iteration's write of a would meet it
    kernel = _kernel(LOOP.format(outer="", inner=TILES, last=""))
    assert not _plan(kernel).shares


def test_a_barrier_is_inserted_between_phases_that_have_none():
    body = """
        %a = alloc_shared : T
        %b = alloc_shared : T
        W(a)
        barrier
        R(a)
        W(b)
        barrier
        R(b)
        """
    kernel = _kernel(body)
    plan = _plan(kernel)
    assert _offsets(plan) == {"a": 0, "b": 0}
    # before b's first use, after a's last
    assert plan.barriers_before == [_first_access(kernel, "b")]
    # tiles of 256 bytes: 256 saved is not worth a barrier
    small = _kernel(body, elements=64)
    plan = _plan(small)
    assert not plan.shares and not plan.barriers_before and plan.total == 512


def test_no_barrier_is_inserted_inside_an_if():
    kernel = _kernel(
        """
        %a = alloc_shared : T
        %b = alloc_shared : T
        if %c {
          W(a)
          barrier
          R(a)
          W(b)
          barrier
          R(b)
          yield
        }
        """
    )
    plan = _plan(kernel)
    assert not plan.shares and not plan.barriers_before


def test_one_barrier_separates_every_pair_that_needs_it():
    kernel = _kernel(
        """
        %a = alloc_shared : T
        %b = alloc_shared : T
        %c3 = alloc_shared : T
        W(a)
        W(b)
        barrier
        R(a)
        R(b)
        W(c3)
        barrier
        R(c3)
        """
    )
    plan = _plan(kernel)
    offsets = _offsets(plan)
    assert offsets["a"] != offsets["b"] and offsets["c3"] in (offsets["a"], offsets["b"])
    assert plan.barriers_before == [_first_access(kernel, "c3")] and plan.total == 8192


def test_a_tile_a_pipelined_loop_buffers_is_live_across_the_loop():
    kernel = _kernel(LOOP.format(outer="", inner=TILES, last="barrier"))
    tile = next(op.result for op in kernel.walk() if isinstance(op, AllocSharedOp))
    # its copies are written ahead, across iterations: it meets b in every iteration
    plan = _plan(kernel, StagingPlan(buffers={id(tile): 2}))
    assert [placement.nbytes for placement in plan.placements] == [8192, 4096]
    assert not plan.shares and plan.total == 12288


# ---- kernels that reuse ------------------------------------------------------------------------
# a cumsum along axis 0 converts the tile's layout there and back: two exchange tiles, one
# after the other (64 KiB each at [128, 128] f32, 128 KiB at [256, 128])
CUMSUM = """
kernel cumsum_rows[R = 128, C = 128, THREADS = 128](x: global f32[R, C], y: global f32[R, C])
    blocks(1) threads(THREADS) {
    store(y[:, :], cumsum(load(x[:, :]), axis = 0))
}
"""

# a softmax down the columns (its reductions' scratch), then a transposed copy in shared memory
SOFTMAX_T = """
kernel softmax_t[M = 64, N = 128](x: global f32[M, N], y: global f32[N, M])
    blocks(1) threads(128) {
    t = load(x[:, :])
    e = exp(t - max(t, axis = 0)[None, :])
    p = e / sum(e, axis = 0)[None, :]
    s = shared<f32>[N, M]
    store(s, transpose(p))
    sync()
    store(y[:, :], load(s))
}
"""

# a pipelined loop copies a's tiles into 3 buffers of sa ahead (cp.async), then a cumsum's
# exchange tiles reuse those bytes: the copies must have landed, and every thread be done
STAGED = """
kernel staged[M = 64, K = 512, BK = 32](a: global f16[M, K], y: global f32[M, 64])
    blocks(1) threads(128) {
    sa = shared<f16>[M, BK]
    acc = zeros<f32>[M, BK]
    for k0 in range(0, K, BK, stages = 3) {
        store(sa, load(a[0 :+ M, k0 :+ BK]))
        sync()
        acc += cast<f32>(load(sa))
        sync()
    }
    c = cumsum(acc, axis = 0)
    store(y[:, 0 :+ BK], c)
    store(y[:, BK :+ BK], c * 2.0)
}
"""


def _emitter(source: str, **params) -> KernelEmitter:
    kernel = lpir.compile(source, target="cuda", **params).specialize(None).module.kernels[0]
    emitter = KernelEmitter(kernel)
    emitter.emit()
    return emitter


def _tile_bytes(emitter: KernelEmitter) -> int:
    """What the tiles would take each with its own bytes (copies included)."""
    assert emitter.staging is not None
    return sum(
        -(-op.shared_type.nbytes // 16) * 16 * emitter.staging.copies(op.result)
        for op in emitter.kernel.walk()
        if isinstance(op, AllocSharedOp)
    )


def test_a_cumsum_down_the_columns_needs_one_exchange_tile_of_shared_memory():
    emitter = _emitter(CUMSUM)
    assert _tile_bytes(emitter) == 2 * 65536
    assert emitter.shared_bytes == 65536 and emitter.dynamic_shared
    text = emitter.w.text()
    assert "LPIR_DYNAMIC_SHARED(lpir_shared, 65536);" in text
    assert "exchange = reinterpret_cast<float*>(lpir_shared + 0);" in text
    assert "exchange_1 = reinterpret_cast<float*>(lpir_shared + 0);" in text
    # prune-barriers left none between the two exchanges: the plan put one there
    assert len(emitter.shared_plan.barriers_before) == 1


def test_tiles_that_share_are_declared_as_one_array_and_others_each_their_own():
    emitter = _emitter(SOFTMAX_T)
    text = emitter.w.text()
    # a reduction's two scratch tiles (2 KiB each) and the transposed tile (32 KiB): the
    # first scratch is dead by the time the transpose is written, a barrier between
    assert _tile_bytes(emitter) == 36864 and emitter.shared_bytes == 34816
    assert "LPIR_SHARED(lpir_shared, 34816);" in text and not emitter.dynamic_shared
    assert not emitter.shared_plan.barriers_before
    single = _emitter(
        "kernel one(x: global f32[64], y: global f32[64]) blocks(1) threads(32) {\n"
        "    s = shared<f32>[64]\n    store(s, load(x[:]))\n    sync()\n"
        "    store(y[:], load(s))\n}\n"
    )
    assert "LPIR_SHARED(v0_storage, 256);" in single.w.text()
    assert "lpir_shared" not in single.w.text()


def test_the_plan_is_static_up_to_48_kb_and_dynamic_past_it():
    # two 16 KiB exchanges (and a scan's runs: 128 threads split the 64 rows): static
    for params, dynamic in (({"R": 64, "C": 64}, False), ({"R": 128, "C": 128}, True)):
        kernel = lpir.compile(CUMSUM, target="cuda", **params).specialize(None).module.kernels[0]
        plan, staging, is_dynamic = plan_shared_memory(kernel, users_of(kernel))
        assert is_dynamic == dynamic and not staging.rings and plan.shares
        assert plan.total < 2 * params["R"] * params["C"] * 4
        assert (plan.total > 48 * 1024) == dynamic


@needs_nvcc
def test_a_kernel_past_sm_90s_shared_memory_now_compiles():
    params = {"R": 256, "C": 128, "THREADS": 256}  # two 128 KiB exchanges and a scan's runs
    kernel = lpir.compile(CUMSUM, target="cuda", **params)
    emitter = _emitter(CUMSUM, **params)
    assert _tile_bytes(emitter) > 227 * 1024 >= emitter.shared_bytes == 131072
    assert ".visible .entry cumsum_rows" in kernel.source("ptx", "sm_90")
    # sm_86's 99 KiB are still too few, and say so
    with pytest.raises(LpirError, match="needs 128 KiB of shared memory a block"):
        kernel.source("ptx", "sm_86")


def _arguments(source: str, seed: int = 0) -> list[np.ndarray]:
    kernel = lpir.compile(source, target="interp").specialize(None).module.kernels[0]
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal(arg.type.shape).astype(arg.type.dtype.numpy_dtype)
        for arg in kernel.args
    ]


@needs_emulation
@pytest.mark.parametrize("name", ["CUMSUM", "SOFTMAX_T", "STAGED"])
def test_kernels_that_reuse_shared_memory_agree_with_the_interpreter(name):
    source = {"CUMSUM": CUMSUM, "SOFTMAX_T": SOFTMAX_T, "STAGED": STAGED}[name]
    wanted, got = _arguments(source), _arguments(source)
    lpir.compile(source, target="interp")(*wanted)
    lpir.compile(source, target="cuda-host")(*got)  # a shared-memory race would raise
    np.testing.assert_allclose(got[-1], wanted[-1], rtol=1e-5, atol=1e-4)


@needs_emulation
def test_without_the_barriers_the_plan_inserts_the_reuse_is_a_race(monkeypatch):
    planned = shared_plan._separation

    def trusting(kernel, a, b):  # as if a barrier were there wherever one is missing
        gap = planned(kernel, a, b)
        return None if gap is None else dataclasses.replace(gap, ready=True)

    monkeypatch.setattr(shared_plan, "_separation", trusting)
    source = STAGED + "# without the barriers (not the cached kernel of STAGED)\n"
    kernel = lpir.compile(source, target="cuda-host")
    with pytest.raises(LpirError, match="shared-memory race"):
        kernel(*_arguments(source))
