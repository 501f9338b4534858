"""On a real GPU: every example, every cast, device arrays, both compilers, the PTX.

Marked `gpu` and skipped (at collection, without touching the driver beyond a guarded probe)
when no CUDA GPU is present. benchmarks/gpu_session.sh runs these on a lent H100.
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
from lpir.backends.cuda.device import gpu_available
from lpir.backends.cuda.examples import COMPILE_CASES, EXAMPLES_DIRECTORY, example_path

import lpir
from lpir.companion import in_canonical_order
from lpir.errors import ArgumentError
from lpir.runner import compare, outputs_of, stated_tolerance

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU (or no cuda-core / driver)"),
]

CASES = [(name, params) for name, cases in COMPILE_CASES.items() for params in cases]


def companion(name: str):
    spec = importlib.util.spec_from_file_location(
        f"cuda_launch_example_{name}", EXAMPLES_DIRECTORY / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _id(case) -> str:
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items())


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_example_on_the_gpu(case):
    name, params = case
    module = companion(name)
    kernel = lpir.compile(example_path(name), target="cuda", **params)
    values = kernel.specialize(None).params
    arguments = module.make_inputs(values, np.random.default_rng(3))
    pristine = copy.deepcopy(arguments)
    kernel(*arguments)
    rtol, atol, why = stated_tolerance(module, values, pristine)
    results = in_canonical_order(module, values, outputs_of(arguments))
    for position, wanted in module.reference(values, pristine).items():
        good, text = compare(f"{name} arg {position}", results[position], wanted, rtol, atol)
        assert good, f"{text} (tolerance: {why})"


@pytest.fixture(scope="module")
def gpu_converters():
    from lpir.backends.cuda.kernel import CompiledKernel
    from lpir.backends.cuda.source import emit_kernel
    from test_cuda_emulation import CONVERT, PAIRS, N

    from lpir.language.specialize import specialize
    from lpir.language.syntax import parse_program
    from lpir.runtime.specialization import run_pipeline

    program = parse_program(CONVERT, "<convert>")
    kernels = []
    for index, (source, target) in enumerate(PAIRS):
        _, module = specialize(program, None, {"S": source, "D": target, "N": N})
        final = run_pipeline(module, "cuda", {}, verify=False)
        kernels.append(emit_kernel(final.kernels[0], f"convert_{index}"))
    return dict(zip(PAIRS, CompiledKernel.group(kernels)))


def test_every_cast_is_bit_exact_on_the_gpu(gpu_converters):
    from test_cuda_emulation import CONVERT, N, _codes, convert_inputs, empty_output

    failures = []
    for (source, target), compiled in gpu_converters.items():
        x = convert_inputs(source, np.random.default_rng(5))
        expected, got = empty_output(target), empty_output(target)
        lpir.compile(CONVERT, target="interp", S=source, D=target, N=N)(x, expected)
        compiled.run([x, got])
        dt = lpir.dtype(target)
        mine, theirs = _codes(got, dt), _codes(expected, dt)
        if dt.is_float and not dt.is_small_float:
            nan = np.isnan(dt.decode(theirs))
            if not np.array_equal(np.isnan(dt.decode(mine)), nan):
                failures.append(f"{source}->{target}: NaN positions differ")
                continue
            mine, theirs = mine[~nan], theirs[~nan]
        bad = np.flatnonzero(mine != theirs)
        if bad.size:
            failures.append(
                f"{source}->{target}: {bad.size} differ, e.g. {mine[bad[:3]]} vs {theirs[bad[:3]]}"
            )
    assert not failures, "\n".join(failures)


def _torch_cuda():
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def test_device_arrays_are_used_in_place():
    torch = _torch_cuda()
    from lpir.backends.cuda.arrays import DevicePacked

    module = companion("gemv_wq")
    kernel = lpir.compile(example_path("gemv_wq"), target="cuda", N=256, K=512, WT="u3", ZERO=4)
    spec = kernel.specialize(None)
    x, w, s, y = module.make_inputs(spec.params, np.random.default_rng(0))
    device = [
        torch.from_numpy(x).cuda(),
        DevicePacked(torch.from_numpy(w.data).cuda(), w.dtype, w.shape),
        torch.from_numpy(s).cuda(),
        torch.zeros(256, dtype=torch.float32, device="cuda"),
    ]
    spec.run(device)
    torch.cuda.synchronize()
    wanted = module.reference(spec.params, [x, w, s, y])[3]
    np.testing.assert_allclose(device[3].cpu().numpy(), wanted, rtol=1e-4, atol=1e-3)


def test_device_array_checks():
    torch = _torch_cuda()
    kernel = lpir.compile(example_path("vector_add"), target="cuda", N=1024, T="f32")
    spec = kernel.specialize(None)
    x = torch.ones(1025, device="cuda")
    good = torch.ones(1024, device="cuda")
    with pytest.raises(ArgumentError, match="16-byte boundary"):
        spec.run([x[1:], good, torch.zeros_like(good)])
    with pytest.raises(ArgumentError, match="must hold f32"):
        spec.run([good.double(), good, torch.zeros_like(good)])
    with pytest.raises(ArgumentError, match="must have shape"):
        spec.run([x, good, torch.zeros_like(good)])
    softmax = lpir.compile(example_path("softmax"), target="cuda", M=64, N=32).specialize(None)
    transposed = torch.ones(32, 64, device="cuda").t()
    with pytest.raises(ArgumentError, match="not C-contiguous"):
        softmax.run([transposed, torch.zeros(64, 32, device="cuda")])


@pytest.mark.parametrize("compiler", ["nvrtc", "nvcc"])
def test_both_compilers_produce_working_code(monkeypatch, compiler):
    from lpir.backends.cuda import compiler as compilers

    if compiler == "nvcc" and compilers.find_nvcc() is None:
        pytest.skip("nvcc is not installed")
    if compiler == "nvrtc" and not compilers.nvrtc_usable():
        pytest.skip("NVRTC headers not found")
    monkeypatch.setenv("LPIR_CUDA_COMPILER", compiler)
    kernel = lpir.compile(example_path("softmax"), target="cuda", M=33, N=200, T="f16")
    x = np.random.default_rng(1).standard_normal((33, 200)).astype(np.float16)
    y = np.zeros_like(x)
    kernel(x, y)
    e = np.exp(x.astype(np.float32) - x.astype(np.float32).max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-2, atol=1e-3)


def test_ptx_has_the_fast_instructions():
    gemv = lpir.compile(example_path("gemv_wq"), target="cuda", N=4096, K=4096, WT="u4")
    ptx = gemv.source("ptx")
    assert "ld.global.nc.v4" in ptx
    assert "lop3.b32" in ptx and "f16x2" not in ptx  # u4 -> f32 straight, no f16 pairs
    matmul = lpir.compile(example_path("matmul_wq"), target="cuda").source("ptx")
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in matmul
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in matmul
    assert "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in matmul
    assert "prmt.b32" in matmul and "add.f16x2" in matmul  # u4 -> f16 pairs, no scale


def test_ldmatrix_on_the_gpu():
    """Every count, plain and transposed, row-major and swizzled tiles, against the PTX
    definition (tests/test_matrix_loads.py checks the same kernels on the host)."""
    from lpir.backends.cuda.kernel import CompiledKernel
    from test_matrix_loads import LDMATRIX_CASES, ldmatrix_case, ldmatrix_sources

    for case, compiled in zip(LDMATRIX_CASES, CompiledKernel.group(ldmatrix_sources())):
        _, (tile, rows, y), wanted = ldmatrix_case(*case)
        compiled.run([tile, rows, y])
        np.testing.assert_array_equal(y, wanted, err_msg=str(case))


def test_packed_integers_dequantize_bit_exactly_on_the_gpu(tmp_path):
    from lpir.backends.cuda.kernel import CompiledKernel
    from test_cuda_dequantize import check_dequantized, dequantize_cases, dequantize_sources

    prepared = dequantize_cases(tmp_path)
    check_dequantized(prepared, CompiledKernel.group(dequantize_sources(prepared)))


def test_random_tensor_core_matmuls_on_the_gpu(tmp_path):
    from lpir.backends.cuda.kernel import CompiledKernel
    from lpir.backends.cuda.source import emit_kernel
    from test_matrix_loads import check_random_matmuls, random_matmul_cases

    cases = random_matmul_cases(tmp_path)
    sources = [emit_kernel(case[4], f"mm_{index}") for index, case in enumerate(cases)]
    check_random_matmuls(cases, CompiledKernel.group(sources))


BIG_SHARED = """
kernel transpose_big[N = 128](x: global f32[N, N], y: global f32[N, N]) blocks(1) threads(256) {
    t = shared<f32>[N, N]
    store(t, load(x[0 :+ N, 0 :+ N]))
    sync()
    store(y[0 :+ N, 0 :+ N], load(t) * 2.0)
}
"""


def test_more_than_48k_of_shared_memory():
    kernel = lpir.compile(BIG_SHARED, target="cuda")
    x = np.random.default_rng(2).standard_normal((128, 128)).astype(np.float32)
    y = np.zeros_like(x)
    kernel(x, y)
    np.testing.assert_array_equal(y, x * 2)
