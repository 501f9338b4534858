"""A shared tile that each thread reads back (or overwrites) exactly where it wrote it, with no
`sync` between: insert-syncs orders that by each thread's own program order, so the load must
be read per thread. lower-to-threads made it a warp-wide `ldmatrix` where its layout was an
8x8-matrix one; an ldmatrix's lanes address rows that other lanes wrote, with no barrier
between: formally racy on a GPU, and refused by the CUDA C's host emulation ("uninitialized
shared memory", or a race for the store after the load). Such loads are now per-thread `ld`s
(no barrier added); loads that a `sync` separates from the stores keep their `ldmatrix`.
"""

from __future__ import annotations

import glob

import ml_dtypes
import numpy as np
import pytest
from lpir.passes import PassPipeline
from lpir.passes.insert_syncs import own_round_trips

import lpir
from lpir.ir.core import Module
from lpir.ir.ops import LoadOp
from lpir.ir.types import SharedType
from lpir.language.specialize import specialize
from lpir.language.syntax import parse_program
from lpir.tools import load_module
from tests.host_targets import HOST_TARGETS

# the fuzzer's kernel: stored and loaded in one layout, an 8x8-matrix one (2 f16 a thread)
ROUND_TRIP = """
kernel round_trip(x: global DT[64, 2], y: global DT[64, 2]) blocks(1) threads(64) {
    s = shared<DT>[64, 2]
    store(s, load(x[0 :+ 64, 0 :+ 2]))
    store(y[0 :+ 64, 0 :+ 2], load(s))
}
"""

# loaded, then overwritten in the same layout with no sync between
OVERWRITE = """
kernel overwrite(x: global DT[64, 2], y: global DT[64, 2]) blocks(1) threads(64) {
    s = shared<DT>[64, 2]
    store(s, load(x[0 :+ 64, 0 :+ 2]))
    sync()
    t = load(s)
    store(s, t * 2.0)
    sync()
    store(y[0 :+ 64, 0 :+ 2], load(s))
}
"""

# each iteration reads what the previous one stored, in the same layout
LOOP = """
kernel loop(x: global DT[4, 64, 2], y: global DT[64, 2]) blocks(1) threads(64) {
    s = shared<DT>[64, 2]
    store(s, zeros<DT>[64, 2])
    for i in range(0, 4) {
        store(s, load(s) + load(x[i, 0 :+ 64, 0 :+ 2]))
    }
    store(y[0 :+ 64, 0 :+ 2], load(s))
}
"""

# an mma A fragment (16 x 16, one warp) stored and read back as it is
FRAGMENT = """
kernel fragment(x: global DT[16, 16], y: global DT[16, 16]) blocks(1) threads(32) {
    s = shared<DT>[16, 16]
    store(s, load(x[0 :+ 16, 0 :+ 16]) @ local(2,2).spatial(8,4).local(1,2))
    store(y[0 :+ 16, 0 :+ 16], load(s) @ local(2,2).spatial(8,4).local(1,2))
}
"""

# the same fragment stored row by row: other threads wrote it, insert-syncs adds a sync, and the
# load stays an ldmatrix
EXCHANGE = """
kernel exchange(x: global DT[16, 16], y: global DT[16, 16]) blocks(1) threads(32) {
    s = shared<DT>[16, 16]
    store(s, load(x[0 :+ 16, 0 :+ 16]) @ spatial(16,2).local(1,8))
    store(y[0 :+ 16, 0 :+ 16], load(s) @ local(2,2).spatial(8,4).local(1,2))
}
"""

OWN = {"round_trip": ROUND_TRIP, "overwrite": OVERWRITE, "loop": LOOP, "fragment": FRAGMENT}
NUMPY = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}


def _source(kernel: str, dt: str) -> str:
    return kernel.replace("DT", dt)


def _run(source: str, target: str, seed: int) -> list[np.ndarray]:
    kernel = lpir.compile(source, target=target)
    module = lpir.compile(source, target="interp").module
    numpy_dtype = NUMPY["bf16" if "bf16" in source else "f16"]
    rng = np.random.default_rng(seed)
    args = [
        rng.integers(-8, 8, arg.type.shape).astype(numpy_dtype) for arg in module.kernels[0].args
    ]
    kernel(*args)
    return args


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("dt", sorted(NUMPY))
@pytest.mark.parametrize("name", sorted({*OWN, "exchange"}))
def test_round_trips_equal_the_interpreter(name, dt, target):
    # cuda-host: "uninitialized shared memory" (thread 1 reads byte 16, which threads 4..7
    # wrote) or a race before the fix
    source = _source({**OWN, "exchange": EXCHANGE}[name], dt)
    wanted = _run(source, "interp", seed=len(name))
    got = _run(source, target, seed=len(name))
    for value, expected in zip(got, wanted):
        np.testing.assert_array_equal(value, expected)


def _final_ops(source: str) -> list[str]:
    return [op.name for op in lpir.compile(source, target="cuda").module.kernels[0].walk()]


def _unordered_ldmatrix(source: str) -> int:
    """How many `ldmatrix`s of the final thread IR read a shared tile stored since the last
    barrier (in program order, a loop's body once)."""
    stored: set[int] = set()
    found = 0
    for op in lpir.compile(source, target="cuda").module.kernels[0].walk():
        if op.name == "barrier":
            stored.clear()
        elif op.name == "st":
            stored.add(id(op.operands[0]))
        elif op.name == "ldmatrix":
            found += id(op.operands[0]) in stored
    return found


@pytest.mark.parametrize("dt", sorted(NUMPY))
@pytest.mark.parametrize("name", sorted(OWN))
def test_own_round_trips_are_per_thread_loads_without_a_barrier(name, dt):
    source = _source(OWN[name], dt)
    assert _unordered_ldmatrix(source) == 0  # 1 before the fix
    # the kernel's own barriers only; overwrite's last load, after sync(), is an ldmatrix
    ops = _final_ops(source)
    assert ops.count("barrier") == (2 if name == "overwrite" else 0)
    assert ops.count("ldmatrix") == (1 if name == "overwrite" else 0)
    text = lpir.compile(source, target="cuda").source("cuda")
    assert text.count("lpir_ldmatrix") == ops.count("ldmatrix") and "__syncwarp" not in text


@pytest.mark.parametrize("dt", sorted(NUMPY))
def test_a_load_other_threads_stored_keeps_its_ldmatrix(dt):
    ops = _final_ops(_source(EXCHANGE, dt))
    assert ops.count("ldmatrix") == 1
    assert ops.index("st") < ops.index("barrier") < ops.index("ldmatrix")


def _tile_ir(source: str) -> Module:
    """The kernel as lower-to-threads sees it on the GPU (after insert-syncs)."""
    if source.endswith(".lp"):
        module = load_module(source, {})
    else:
        module = specialize(parse_program(source, "<test>"), None, {})[1]
    passes = ("canonicalize", "cse", "dce", "layout-selection", "canonicalize", "insert-syncs")
    return PassPipeline(passes, target="cuda").run(module)


def _round_trip_loads(source: str) -> list[int]:
    """The source lines of the loads `own_round_trips` names."""
    found = own_round_trips(_tile_ir(source).kernels[0])
    assert all(isinstance(op, LoadOp) and isinstance(op.memory.type, SharedType) for op in found)
    return sorted(op.location.line for op in found)


def test_own_round_trips_name_the_loads_that_rely_on_them():
    assert _round_trip_loads(_source(ROUND_TRIP, "f16")) == [5]
    assert _round_trip_loads(_source(OVERWRITE, "f16")) == [6]  # t, not the load after sync()
    assert _round_trip_loads(_source(LOOP, "f16")) == [6, 8]  # the loop's and the last
    assert _round_trip_loads(_source(EXCHANGE, "f16")) == []


@pytest.mark.parametrize("path", sorted(glob.glob("examples/*.lp")))
def test_examples_read_back_no_shared_tile_of_their_own(path):
    # so their CUDA code keeps every ldmatrix it had (matmul_wq, attention, moe_gemm); rmsnorm
    # loads its residual stream and stores it back in place (global memory: no ldmatrix)
    for kernel in _tile_ir(path).kernels:
        loads = own_round_trips(kernel)
        assert not [op for op in loads if isinstance(op.operands[0].type, SharedType)]
