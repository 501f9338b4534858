"""Random kernels (tests/random_kernels.py) through the CUDA backend without a GPU: the CUDA
pipeline's thread IR on the thread interpreter, and the emitted CUDA C run on the host
(backends/cuda/emulation.py), both against the reference interpreter, with the tolerances of
test_random_kernels.py. One host library holds all the cases. On a GPU (`gpu` tests) the same
cases and more run compiled for the device."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.emulation import emulate_kernels, emulation_available
from lpir.backends.cuda.source import emit_kernel
from random_kernels import random_case
from test_random_kernels import check_close

import lpir
from lpir.runner import outputs_of

# random programs are where a pass breaks an invariant the next one relies on
pytestmark = pytest.mark.usefixtures("verify_every_pass")
SEEDS = list(range(30000, 30024))
GPU_SEEDS = list(range(30000, 30100))


@pytest.fixture(scope="module")
def cases():
    if not emulation_available():
        pytest.skip("no host C++ compiler")
    """(case, arguments, reference outputs, threads-cuda outputs, host runner) per seed."""
    prepared = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        case = random_case(rng)
        arguments = case.arguments(rng)
        reference = copy.deepcopy(arguments)
        lpir.compile(case.source, target="interp", **case.params)(*reference)
        kernel = lpir.compile(case.source, target="threads-cuda", **case.params)
        lowered = copy.deepcopy(arguments)
        kernel(*lowered)
        thread_kernel = kernel.last.module.kernels[0]
        prepared.append((case, arguments, reference, lowered, thread_kernel, seed))
    runners = emulate_kernels([emit_kernel(p[4], f"random_{p[5]}") for p in prepared])
    return {p[5]: (*p[:4], runner) for p, runner in zip(prepared, runners)}


@pytest.mark.parametrize("seed", SEEDS)
def test_random_kernel_on_the_cuda_path(cases, seed):
    case, arguments, reference, lowered, runner = cases[seed]
    wanted = outputs_of(reference)[2]
    check_close(case, outputs_of(lowered)[2], wanted, "threads-cuda")
    emulated = copy.deepcopy(arguments)
    runner.run(emulated)
    check_close(case, outputs_of(emulated)[2], wanted, "emulated CUDA C")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)")
@pytest.mark.parametrize("seed", GPU_SEEDS)
def test_random_kernel_on_the_gpu(seed):
    rng = np.random.default_rng(seed)
    case = random_case(rng)
    arguments = case.arguments(rng)
    reference = copy.deepcopy(arguments)
    lpir.compile(case.source, target="interp", **case.params)(*reference)
    mine = copy.deepcopy(arguments)
    lpir.compile(case.source, target="cuda", **case.params)(*mine)
    check_close(case, outputs_of(mine)[2], outputs_of(reference)[2], "cuda")
