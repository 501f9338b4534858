"""Control flow and the execution model, compiled vs the thread-IR interpreter: loops and ifs
that contain barriers (run once per block, with per-thread values in context arrays),
per-thread loops and ifs, grids of one to three dimensions run in parallel, scalar arguments
of every kind, and blocks whose frame is too big for the caller's stack."""

from __future__ import annotations

import numpy as np
import pytest
from lpir.backends.llvm import compile_kernel
from lpir.backends.llvm.launch import CALLER_FRAME_LIMIT
from test_llvm_harness import check, private_cache  # noqa: F401

from lpir.errors import LpirError
from lpir.ir import parse

rng = np.random.default_rng(5)

ROTATE = """
kernel @rotate[](%x: global f32[512], %y: global f32[512], %steps: i32) blocks(2, 1,
    1) threads(64) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c0 = constant {value = 0} : i32
  %c1 = constant {value = 1} : i32
  %c4 = constant {value = 4} : i32
  %c64 = constant {value = 64} : i32
  %c256 = constant {value = 256} : i32
  %block = mul(%bx, %c256) : i32
  %mine = mul(%tid, %c4) : i32
  %at = add(%block, %mine) : i32
  %v = ld(%x, %at) {offsets = [0, 1, 2, 3], vector = 4} : <4 x f32>
  %keep = mul(%v, %v) : <4 x f32>
  %s = alloc_shared : shared f32[256]
  %acc, %count = for %k = %c0 to %steps step %c1 iter_args(%carry = %v, %n = %c0) -> <4 x f32>,
      i32 {
    st(%s, %mine, %carry) {offsets = [0, 1, 2, 3]}
    barrier
    %t1 = add(%tid, %c1) : i32
    %neighbour = rem(%t1, %c64) : i32
    %from = mul(%neighbour, %c4) : i32
    %got = ld(%s, %from) {offsets = [0, 1, 2, 3]} : <4 x f32>
    barrier
    %kf = cast(%k) : f32
    %ks = splat(%kf) {shape = [4]} : <4 x f32>
    %next = add(%got, %ks) : <4 x f32>
    %n1 = add(%n, %tid) : i32
    yield(%next, %n1)
  }
  %cf = cast(%count) : f32
  %cv = splat(%cf) {shape = [4]} : <4 x f32>
  %out = add(%acc, %keep) : <4 x f32>
  %out2 = add(%out, %cv) : <4 x f32>
  st(%y, %at, %out2) {offsets = [0, 1, 2, 3], vector = 4}
}
"""


@pytest.mark.parametrize("steps", [0, 1, 5, 64])
def test_loop_with_barriers_carries_per_thread_values(steps):
    """Each step passes every thread's vector to its neighbour through shared memory; the
    loop-carried vector, a carried scalar and a value defined before the loop live in context
    arrays between the thread loops."""
    x = rng.standard_normal(512).astype(np.float32)
    y = check(ROTATE, [x, np.zeros(512, np.float32), steps])[1]
    if steps == 64:  # a full turn: each thread has its own vector back, plus 0 + 1 + ... + 63
        tid = np.repeat(np.arange(64), 4)
        expected = x + x * x + 2016 + 64 * np.tile(tid, 2)
        np.testing.assert_allclose(y, expected, rtol=1e-5)


BRANCH = """
kernel @branch[](%x: global f32[256], %y: global f32[256], %flag: bool) blocks(1, 1,
    1) threads(64) stage(thread) {
  %tid = thread_index : i32
  %c4 = constant {value = 4} : i32
  %c252 = constant {value = 252} : i32
  %mine = mul(%tid, %c4) : i32
  %v = ld(%x, %mine) {offsets = [0, 1, 2, 3], vector = 4} : <4 x f32>
  %s = alloc_shared : shared f32[256]
  %r = if %flag -> <4 x f32> {
    st(%s, %mine, %v) {offsets = [0, 1, 2, 3]}
    barrier
    %mirror = sub(%c252, %mine) : i32
    %w = ld(%s, %mirror) {offsets = [3, 2, 1, 0]} : <4 x f32>
    yield(%w)
  } else {
    %w2 = add(%v, %v) : <4 x f32>
    yield(%w2)
  }
  st(%y, %mine, %r) {offsets = [0, 1, 2, 3]}
}
"""


@pytest.mark.parametrize("flag", [True, False])
def test_if_with_a_barrier_runs_at_block_level(flag):
    x = rng.standard_normal(256).astype(np.float32)
    y = check(BRANCH, [x, np.zeros(256, np.float32), flag])[1]
    np.testing.assert_array_equal(y, x[::-1] if flag else x + x)


NESTED = """
kernel @nested[](%x: global i32[1024], %y: global i32[1024], %n: i32, %odd: bool) blocks(4, 1,
    1) threads(32) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %c0 = constant {value = 0} : i32
  %c1 = constant {value = 1} : i32
  %c3 = constant {value = 3} : i32
  %c8 = constant {value = 8} : i32
  %c256 = constant {value = 256} : i32
  %block = mul(%bx, %c256) : i32
  %mine = mul(%tid, %c8) : i32
  %at = add(%block, %mine) : i32
  %v = ld(%x, %at) {offsets = [0, 1, 2, 3, 4, 5, 6, 7]} : <8 x i32>
  %r = for %i = %c0 to %n step %c1 iter_args(%a = %v) -> <8 x i32> {
    %inner = for %j = %i to %n step %c3 iter_args(%b = %a) -> <8 x i32> {
      %js = splat(%j) {shape = [8]} : <8 x i32>
      %b2 = add(%b, %js) : <8 x i32>
      yield(%b2)
    }
    %pick = if %odd -> <8 x i32> {
      %t = mul(%inner, %inner) : <8 x i32>
      yield(%t)
    } else {
      %t2 = sub(%inner, %a) : <8 x i32>
      yield(%t2)
    }
    yield(%pick)
  }
  st(%y, %at, %r) {offsets = [0, 1, 2, 3, 4, 5, 6, 7]}
}
"""


@pytest.mark.parametrize(("n", "odd"), [(0, True), (4, True), (7, False)])
def test_per_thread_loops_and_ifs(n, odd):
    x = rng.integers(-1000, 1000, 1024).astype(np.int32)
    check(NESTED, [x, np.zeros(1024, np.int32), n, odd])


GRID = """
kernel @grid[](%y: global i32[GX, GY, GZ, 4, 8]) blocks(GX, GY, GZ) threads(8) stage(thread) {
  %tid = thread_index : i32
  %bx = block_index {axis = 0} : i32
  %by = block_index {axis = 1} : i32
  %bz = block_index {axis = 2} : i32
  %gy = constant {value = GY} : i32
  %gz = constant {value = GZ} : i32
  %c4 = constant {value = 4} : i32
  %c8 = constant {value = 8} : i32
  %0 = mul(%bx, %gy) : i32
  %1 = add(%0, %by) : i32
  %2 = mul(%1, %gz) : i32
  %3 = add(%2, %bz) : i32
  %4 = mul(%3, %c8) : i32
  %5 = add(%4, %tid) : i32
  %at = mul(%5, %c4) : i32
  %v = vector(%bx, %by, %bz, %tid) : <4 x i32>
  st(%y, %at, %v) {offsets = [0, 1, 2, 3]}
}
"""


@pytest.mark.parametrize("grid", [(1, 1, 1), (5, 3, 2), (1000, 1, 1), (3, 1, 7)])
def test_grids_run_every_block_once(grid, monkeypatch):
    gx, gy, gz = grid
    text = GRID.replace("GX", str(gx)).replace("GY", str(gy)).replace("GZ", str(gz))
    y = check(text, [np.full(gx * gy * gz * 32, -1, np.int32)])[0]
    monkeypatch.setenv("LPIR_NUM_THREADS", "1")
    single = np.full_like(y, -1)
    compile_kernel(parse(text), {}).run([single])
    assert np.array_equal(single, y)


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_thread_count_is_refused(value, monkeypatch):
    text = GRID.replace("GX", "5").replace("GY", "1").replace("GZ", "1")
    compiled = compile_kernel(parse(text), {})
    monkeypatch.setenv("LPIR_NUM_THREADS", value)
    with pytest.raises(LpirError, match=r"LPIR_NUM_THREADS is .* not a positive whole number"):
        compiled.run([np.full(5 * 32, -1, np.int32)])


@pytest.mark.parametrize("value", ["abc", "0"])
def test_a_bad_thread_count_fails_the_compile_of_a_one_block_kernel(value, monkeypatch):
    """A one-block call never splits its grid, so it never read the variable: a server ran
    its small calls and failed its first large batch (found by an explorer)."""
    text = GRID.replace("GX", "1").replace("GY", "1").replace("GZ", "1")
    monkeypatch.setenv("LPIR_NUM_THREADS", value)
    with pytest.raises(LpirError, match=r"LPIR_NUM_THREADS is .* not a positive whole number"):
        compile_kernel(parse(text), {})


def test_more_threads_than_cores_split_the_grid_finer(monkeypatch):
    from lpir.backends.llvm import launch

    text = GRID.replace("GX", "64").replace("GY", "1").replace("GZ", "1")
    monkeypatch.setenv("LPIR_NUM_THREADS", str(launch.CORES + 3))
    compiled = compile_kernel(parse(text), {})
    assert len(compiled.launcher.ranges(64)) == launch.CORES + 3
    y = np.full(64 * 32, -1, np.int32)
    compiled.run([y])
    assert np.array_equal(y, check(text, [np.full_like(y, -1)])[0])


SCALARS = """
kernel @scalars[](%y: global i64[8], %z: global f64[4], %a: i3, %b: u64, %c: i8, %d: bool,
    %e: f16, %f: bf16, %g: f64, %h: u16)
    blocks(1, 1, 1) threads(1) stage(thread) {
  %c0 = constant {value = 0} : i32
  %a64 = cast(%a) : i64
  %b64 = cast(%b) : i64
  %c64 = cast(%c) : i64
  %d64 = cast(%d) : i64
  %h64 = cast(%h) : i64
  %e64 = cast(%e) : f64
  %f64 = cast(%f) : f64
  %ints = vector(%a64, %b64, %c64, %d64, %h64, %a64, %a64, %a64) : <8 x i64>
  st(%y, %c0, %ints) {offsets = [0, 1, 2, 3, 4, 5, 6, 7]}
  %floats = vector(%e64, %f64, %g, %g) : <4 x f64>
  st(%z, %c0, %floats) {offsets = [0, 1, 2, 3]}
}
"""


def test_scalar_arguments_of_every_kind():
    values = [-3, 2**64 - 5, -128, True, 1.5e-5, -3.0e38, 2.0**-1074, 65535]
    y, z = check(SCALARS, [np.zeros(8, np.int64), np.zeros(4, np.float64), *values])[:2]
    assert list(y[:5]) == [-3, -5, -128, 1, 65535]
    assert z[2] == 2.0**-1074


BIG_FRAME = """
kernel @big[](%x: global f32[65536], %y: global f32[65536]) blocks(1, 1,
    1) threads(1024) stage(thread) {
  %tid = thread_index : i32
  %c64 = constant {value = 64} : i32
  %at = mul(%tid, %c64) : i32
  %v = ld(%x, %at) {offsets = LANES, vector = 16} : <64 x f32>
  %w = mul(%v, %v) : <64 x f32>
  barrier
  %u = add(%v, %w) : <64 x f32>
  barrier
  %r = sub(%u, %w) : <64 x f32>
  st(%y, %at, %r) {offsets = LANES, vector = 16}
}
"""


def test_blocks_whose_frame_exceeds_the_caller_stack_run_on_workers():
    """Three context arrays of 1024 x <64 x f32>: 768 KiB of stack per block."""
    text = BIG_FRAME.replace("LANES", str(list(range(64))))
    compiled = compile_kernel(parse(text), {})
    assert compiled.launcher.frame_bytes > CALLER_FRAME_LIMIT
    x = rng.standard_normal(65536).astype(np.float32)
    check(text, [x, np.zeros(65536, np.float32)])


def test_small_grids_run_on_the_caller_alone(monkeypatch):
    """A grid whose blocks take less on one thread than a round trip through a worker would
    save runs on the caller alone once it has been timed; a slow one keeps its workers."""
    from lpir.backends.llvm import launch

    monkeypatch.setenv("LPIR_NUM_THREADS", "2")
    text = GRID.replace("GX", "64").replace("GY", "1").replace("GZ", "1")
    compiled = compile_kernel(parse(text), {})
    submitted = []
    pool = launch.worker_pool()

    class CountingPool:
        def submit(self, *call):
            submitted.append(call)
            return pool.submit(*call)

    monkeypatch.setattr(launch, "worker_pool", lambda: CountingPool())
    launcher = compiled.launcher
    y = np.full(64 * 32, -1, np.int32)
    compiled.run([y])  # unknown cost: split over two threads, the caller's half timed
    assert len(submitted) == 1 and launcher.block_seconds is not None
    launcher.block_seconds = launch.pool_latency() / 1000  # 64 blocks: far below a round trip
    compiled.run([y])
    assert len(submitted) == 1
    launcher.block_seconds = launch.pool_latency()  # 64 round trips' worth: split
    compiled.run([y])
    assert len(submitted) == 2
    assert np.array_equal(y, check(text, [np.full_like(y, -1)])[0])


def test_data_addresses_of_every_kind_of_array():
    """`data_address` (the fast path of a launch's pointers) agrees with numpy's for writable,
    offset, read-only and empty arrays, and a read-only input runs."""
    from lpir.backends.llvm.launch import data_address

    base = np.arange(64, dtype=np.float32)
    read_only = base.copy()
    read_only.flags.writeable = False
    for array in (base, base[3:], read_only, np.zeros(0, np.float32)):
        assert data_address(array) == array.ctypes.data
    copy = """
kernel @copy[](%x: global f32[64], %y: global f32[64]) blocks(1, 1, 1) threads(4) stage(thread) {
  %tid = thread_index : i32
  %c16 = constant {value = 16} : i32
  %at = mul(%tid, %c16) : i32
  %v = ld(%x, %at) {offsets = LANES, vector = 16} : <16 x f32>
  st(%y, %at, %v) {offsets = LANES, vector = 16}
}
""".replace("LANES", str(list(range(16))))
    y = np.zeros(64, np.float32)
    compile_kernel(parse(copy), {}).run([read_only, y])
    assert np.array_equal(y, read_only)
