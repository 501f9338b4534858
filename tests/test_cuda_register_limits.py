"""A register tile far past what GPU threads hold is a located error before compiling (nvcc ran
past 300 s on a 2^20-element one, found by an explorer); nvcc itself is stopped past its
time limit."""

from __future__ import annotations

import pytest
from lpir.backends.cuda import compiler, register_limits
from lpir.backends.cuda.compiler import CudaCompileError, find_nvcc
from lpir.backends.cuda.register_limits import THREAD_VALUE_LIMIT, check_register_tiles

import lpir
from lpir.errors import LpirError

# R * 128 f32 in 128 threads: R * 4 bytes in each thread
TILE = """
kernel tile[R = 8192](x: global f32[R, 128], y: global f32[R]) blocks(1) threads(128) {
    t = load(x[:, :])
    store(y[:], sum(t * t, axis = 1))
}
"""


def _thread_kernel_of(source: str, **params):
    return lpir.compile(source, target="cuda", **params).specialize().module.kernels[0]


def _thread_kernel(rows: int):
    return _thread_kernel_of(TILE, R=rows)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_a_tile_past_the_limit_is_a_located_error(arch: str) -> None:
    with pytest.raises(LpirError) as caught:
        lpir.compile(TILE, target="cuda").source("ptx", arch)
    text = str(caught.value)
    assert "keeps 8192 f32 values (32 KiB) in each of its 128 threads" in text, text
    assert "<source>:3:" in text and "load(x[:, :])" in text and "^" in text, text
    assert "split the tile" in caught.value.hint


def test_the_limit_is_inclusive(monkeypatch) -> None:
    kernel = _thread_kernel(THREAD_VALUE_LIMIT // 4)  # 2048 f32: exactly the limit a thread
    check_register_tiles(kernel)
    monkeypatch.setattr(register_limits, "THREAD_VALUE_LIMIT", THREAD_VALUE_LIMIT - 1)
    with pytest.raises(LpirError, match="keeps 2048 f32 values"):
        check_register_tiles(kernel)


def test_every_example_is_far_inside_the_limit() -> None:
    """The limit refuses nothing the examples do (their largest value: 768 bytes a thread)."""
    from lpir.backends.cuda.examples import COMPILE_CASES, thread_module

    for name, cases in COMPILE_CASES.items():
        for params in cases:
            for kernel in thread_module(name, params).kernels:
                check_register_tiles(kernel)


@pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")
def test_nvcc_past_its_time_limit_is_stopped(monkeypatch) -> None:
    monkeypatch.setattr(compiler, "NVCC_TIMEOUT_S", 0.01)
    with pytest.raises(CudaCompileError, match=r"nvcc ran more than 0\.01 s") as caught:
        compiler.compile_with_nvcc("__global__ void k() {}\n", "sm_90", "ptx")
    assert "too large to compile" in caught.value.hint


BOOLS = """
kernel flip[N = 262144](w: global bool[N], y: global bool[N]) blocks(1) threads(16) {
    store(y[:], not load(w[:]))
}
"""


def test_bools_and_sub_byte_values_count_a_byte_each() -> None:
    """The CUDA C keeps a bool (or a u4, an f4e2m1) in a byte of its own: counted by its bits,
    16384 bools a thread (16 KiB) passed as 2 KiB (found by a reviewer: nvcc ran past 400 s
    on a kernel of 64 KiB of bools a thread)."""
    with pytest.raises(LpirError, match=r"keeps 16384 bool values \(16 KiB\)"):
        check_register_tiles(_thread_kernel_of(BOOLS))
    check_register_tiles(_thread_kernel_of(BOOLS, N=131072))  # 8 KiB: at the limit
