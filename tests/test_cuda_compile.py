"""The generated CUDA C of every example compiles with nvcc for sm_80 and sm_90 (no GPU needed),
and with NVRTC where cuda-core is installed.

Each example is one translation unit holding its kernel at every parameter set of
`lpir.backends.cuda.examples.COMPILE_CASES` (every GEMV weight type, softmax in f16 and bf16,
matmul_wq with u4, u3, i4 and fp4 weights, ...). nvcc runs with every warning as an error, and
ptxas reports each kernel's stack frame: a per-thread array that lost its registers to local
memory shows up there, so a large frame fails the test. The translation units compile in
parallel, once per session.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from lpir.backends.cuda.compiler import CudaCompileError, compile_with_nvcc, find_nvcc
from lpir.backends.cuda.examples import COMPILE_CASES, example_translation_unit

from lpir.errors import LpirError

NO_NVCC = pytest.mark.skipif(find_nvcc() is None, reason="nvcc is not installed")

ARCHS = ("sm_80", "sm_90")
EXAMPLES = tuple(COMPILE_CASES)
#: ptxas spills a few bytes now and then; a lost array is hundreds.
STACK_LIMIT = 64
_FUNCTION = re.compile(
    r"Compiling entry function '(\w+)' for '(\w+)'.*?(\d+) bytes stack frame", re.S
)


def _compile(job: tuple[str, str, str]) -> tuple[str, str, bool, str]:
    name, arch, source = job
    log: list[str] = []
    try:
        compile_with_nvcc(source, arch, "cubin", strict=True, extra=("-Xptxas", "-v"), log=log)
        return name, arch, True, "".join(log)
    except CudaCompileError as error:
        return name, arch, False, str(error)


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], tuple[bool, str]]:
    sources = {name: example_translation_unit(name) for name in EXAMPLES}
    jobs = [(name, arch, sources[name]) for name in EXAMPLES for arch in ARCHS]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = list(pool.map(_compile, jobs))
    return {(name, arch): (ok, log) for name, arch, ok, log in done}


@NO_NVCC
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_compiles_without_warnings(results, example, arch):
    ok, log = results[(example, arch)]
    assert ok, log
    assert "warning" not in log.lower(), log


@NO_NVCC
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_thread_arrays_stay_in_registers(results, example, arch):
    ok, log = results[(example, arch)]
    assert ok, log
    frames = {name: int(size) for name, _, size in _FUNCTION.findall(log)}
    assert len(frames) == len(COMPILE_CASES[example]), log
    large = {name: size for name, size in frames.items() if size > STACK_LIMIT}
    assert not large, f"stack frames over {STACK_LIMIT} bytes (local memory): {large}"


def _ptx(name: str, params: dict, arch: str = "compute_90") -> str:
    from lpir.backends.cuda.examples import thread_module
    from lpir.backends.cuda.source import emit_kernel, translation_unit

    source = translation_unit([emit_kernel(thread_module(name, params).kernels[0])])
    return compile_with_nvcc(source, arch, "ptx").decode()


@NO_NVCC
def test_ptx_of_the_gemv_has_wide_loads_and_the_magic_number_dequantization():
    """f32 activations: each u4 weight is one lop3 into the mantissa of 2^23 (0x4b000000) and
    one exact fma, with no f16 in between."""
    ptx = _ptx("gemv_wq", {"N": 4096, "K": 4096, "WT": "u4", "ZERO": 8})
    assert "ld.global.nc.v4.u32" in ptx
    assert "lop3.b32" in ptx and "1258291200" in ptx  # 0x4b000000 as PTX prints it
    assert "cvt.f32.f16" not in ptx and "f16x2" not in ptx
    assert ".local" not in ptx


@NO_NVCC
@pytest.mark.parametrize("weight", ["f8e4m3", "f8e5m2"])
def test_fp8_decodes_by_the_hardware_conversion_from_sm_89(weight):
    params = {"N": 256, "K": 512, "WT": weight, "ZERO": 0}
    instruction = f"cvt.rn.f16x2.{weight[2:]}x2"
    assert instruction in _ptx("gemv_wq", params, "compute_90")
    assert instruction not in _ptx("gemv_wq", params, "compute_80")  # shifts and a multiply


@NO_NVCC
@pytest.mark.parametrize("weights", ["u8", "i8"])
def test_ptx_of_8_bit_weights_places_bytes_with_prmt(weights):
    """8-bit weights to f32 (gemv_wq): per weight one prmt (the byte into the mantissa of 2^23,
    0x4b000000) and one add; to f16 (matmul_wq): per two weights one prmt (two bytes under
    0x64, f16 1024.0) and one sub.f16x2; four weights per 32-bit word, no per-byte shifts or
    masks, no conversions."""
    for name, params, magic, weights_per_prmt in [
        ("gemv_wq", {"N": 4096, "K": 4096}, 0x4B000000, 1),  # 64 x 128 tile: 64 a thread
        ("matmul_wq", {"M": 16, "N": 256, "K": 256, "BM": 16}, 0x64646464, 2),  # 32 x 64: 16
    ]:
        ptx = _ptx(name, {**params, "WT": weights, "ZERO": 0})
        loop = ptx[ptx.index("$L__BB0_") :]
        prmt = len(re.findall(r"prmt\.b32", loop))
        assert re.search(rf"mov\.[bu]32\s+%r\d+, {magic};", ptx), name
        assert prmt >= {"gemv_wq": 64, "matmul_wq": 16}[name] // weights_per_prmt, name
        assert "cvt.rn.f32" not in loop and "bfe.u32" not in loop, name


@NO_NVCC
def test_ptx_of_the_f16_dequantization_pairs_lanes():
    """f16 results: one prmt, one lop3 into the mantissa of 1024 and one add.f16x2 per pair
    (fields at bit 0 of their halves: no scale)."""
    ptx = _ptx("matmul_wq", {})
    assert "prmt.b32" in ptx and "lop3.b32" in ptx and "add.f16x2" in ptx


@NO_NVCC
def test_ptx_of_the_matmul_uses_tensor_cores():
    ptx = _ptx("matmul_wq", {})
    assert "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in ptx
    assert "bar.sync" in ptx


@NO_NVCC
def test_ptx_of_the_pipelined_matmul_copies_tiles_asynchronously():
    """The per-block tiles of the pipelined loop (A and the weights) are 16-byte cp.async
    copies into shared memory, waited for one group at a time; nothing is loaded into
    registers ahead."""
    ptx = _ptx("matmul_wq", {"STAGES": 3})
    assert "cp.async.cg.shared.global" in ptx
    assert "cp.async.commit_group" in ptx and "cp.async.wait_group 1;" in ptx
    assert "ld.global.nc.v4.u32" not in ptx


@pytest.mark.parametrize("example", EXAMPLES)
def test_nvrtc_compiles_the_same_sources(example):
    from lpir.backends.cuda.compiler import compile_with_nvrtc, nvrtc_usable

    if not nvrtc_usable():
        pytest.skip("cuda-core (NVRTC) or the CUDA headers are not installed")
    assert compile_with_nvrtc(example_translation_unit(example), "sm_90", "cubin")


@NO_NVCC
@pytest.mark.parametrize("async_copy", ["1", "0"])
def test_ptx_of_a_masked_pipelined_loop_has_predicated_loads_and_no_branch_inside(
    async_copy, monkeypatch
):
    """The tensor-core GEMV: the A tile's rows past M = 1 are masked, so the loop's load of it
    is one `cp.async` whose source size is 0 where the mask is off (staged in shared memory),
    or without staging one predicated `ld.global.nc` (lpir_load_if); either way the loop body
    is one basic block, its only branch the loop's own (an if/else around the load made nvcc
    recompute the shared-memory addresses in every iteration)."""
    monkeypatch.setenv("LPIR_CUDA_ASYNC_COPY", async_copy)
    params = {"M": 1, "N": 512, "K": 256, "BM": 16, "BN": 256, "WT": "u3", "ZERO": 4}
    ptx = _ptx("matmul_wq", params)
    backward = [
        match
        for match in re.finditer(r"bra\s+(\$L__BB\d+_\d+);", ptx)
        if ptx.find(match.group(1) + ":") < match.start()
    ]
    assert len(backward) == 1, "one loop"
    label = backward[0].group(1)
    loop = ptx[ptx.index(label + ":") : backward[0].start()]
    if async_copy == "1":
        assert re.search(r"cp\.async\.ca\.shared\.global \[%r\d+\], \[%rd\d+\], 8, %r\d+;", loop)
        assert "ld.global" not in loop
    else:
        assert "@p ld.global.nc.v2.u32" in loop
    assert " bra" not in loop and "\tbra" not in loop


def _pipelined_loop(weights: str, bk: int, stages: int) -> str:
    """The CUDA C of the tensor-core GEMV (matmul_wq, M = 1, K = 8192)."""
    import lpir

    params = {"M": 1, "N": 8192, "K": 8192, "BM": 16, "BN": 64, "BK": bk, "STAGES": stages}
    return lpir.compile(
        "examples/matmul_wq.lp", target="cuda", WT=weights, ZERO=16, **params
    ).source("cuda")


def _unroll_pragmas(source: str) -> list[str]:
    return re.findall(r"#pragma unroll \d+\n\s*for \(int k0", source)


def test_a_staged_loop_is_unrolled_by_its_stages_and_its_last_trips_peeled():
    """Unrolled by S, a staged loop's slot indices are constants (one loop over groups of S
    iterations, one inner loop over the slots); where S does not divide the trip count the
    last trips % S iterations follow the loop, straight-line, so that nvcc need not rotate
    it (in the rotated loop, ptxas 13.0-13.5 read a prefetch's address register before
    setting it: u5, 16x64x32, 3 stages, 256 trips; an illegal address on an H200)."""
    source = _pipelined_loop("u5", 32, 3)
    assert "for (int k0_group_0 = 0; k0_group_0 < 8160; k0_group_0 += 96) {" in source
    assert "for (int stage_0 = 0; stage_0 < 3; ++stage_0) {" in source
    assert "const int k0 = 8160 + stage_0 * 32;" in source  # 255 = 85 x 3: one more
    assert "for (int stage_0 = 0; stage_0 < 1; ++stage_0) {" in source
    source = _pipelined_loop("u5", 32, 4)
    assert "for (int k0_group_0 = 0; k0_group_0 < 8192; k0_group_0 += 128) {" in source
    assert source.count("const int k0 = ") == 1  # 256 trips: no remainder
    assert _unroll_pragmas(source) == ["#pragma unroll 1\n    for (int k0"]  # the groups


def test_a_register_pipelined_loop_is_unrolled_only_where_its_stages_divide_its_trips(
    monkeypatch,
):
    """Without staging (tiles ahead in registers), the loop is unrolled S times for nvcc to
    rename the tiles only where S divides the trip count (the rotated loop again)."""
    monkeypatch.setenv("LPIR_CUDA_ASYNC_COPY", "0")
    assert _unroll_pragmas(_pipelined_loop("u5", 32, 2)) == ["#pragma unroll 2\n    for (int k0"]
    assert _unroll_pragmas(_pipelined_loop("u5", 32, 4)) == ["#pragma unroll 4\n    for (int k0"]
    assert _unroll_pragmas(_pipelined_loop("u5", 32, 3)) == []
    assert _unroll_pragmas(_pipelined_loop("u7", 128, 3)) == []  # 64 trips


@NO_NVCC
@pytest.mark.parametrize("weights", ["u5", "u7"])
def test_the_pipelined_tensor_core_gemv_sets_its_addresses_before_using_them(weights, tmp_path):
    """The SASS of the configuration that faulted on an H200 (needs cuobjdump: the test extra
    installs it, `cuda-toolkit[cuobjdump,nvdisasm]`); checked to fail with S-fold unrolling
    there."""
    from lpir.backends.cuda.sass import disassemble, find_cuobjdump, undefined_address_registers

    import lpir

    if find_cuobjdump() is None:
        pytest.skip("cuobjdump is not installed")
    params = {"M": 1, "N": 8192, "K": 8192, "BM": 16, "BN": 64, "BK": 32, "STAGES": 3}
    zero = 1 << (lpir.dtype(weights).nbits - 1)
    source = lpir.compile("examples/matmul_wq.lp", target="cuda", WT=weights, ZERO=zero, **params)
    sass = disassemble(compile_with_nvcc(source.source("cuda"), "sm_90", "cubin"))
    assert "LDG" in sass
    assert undefined_address_registers(sass) == []


#: SASS instructions per weight in the main loop of examples/gemv_tc.lp (sm_90, BN 128,
#: 28672 x 8192: what `python benchmarks/cuda_sass.py` measured, 2026-12-04) and the most an
#: H200 can issue per weight while streaming weights and scales at 4.3 TB/s (docs/benchmarks.md):
#: a loop over that budget cannot run at memory speed, which issue #5's targets need.
GEMV_TC_INSTRUCTIONS_PER_WEIGHT = {
    "u3": (2.09, 3.1),
    "u4": (1.81, 4.1),
    "u5": (2.39, 5.0),
    "u6": (2.31, 6.0),
}


@NO_NVCC
@pytest.mark.parametrize("weights", sorted(GEMV_TC_INSTRUCTIONS_PER_WEIGHT))
def test_the_tensor_core_gemv_loop_stays_within_its_instruction_budget(weights):
    """A change that lengthens the decode shows here, on any machine with nvcc and cuobjdump,
    long before a GPU times it (10 % over the measured count fails)."""
    from lpir.backends.cuda.sass import disassemble, find_cuobjdump, main_loop

    import lpir

    if find_cuobjdump() is None:
        pytest.skip("cuobjdump is not installed")
    zero = 1 << (lpir.dtype(weights).nbits - 1)
    params = {"N": 28672, "K": 8192, "BN": 128, "BK": 128, "ZERO": zero}
    kernel = lpir.compile("examples/gemv_tc.lp", target="cuda", WT=weights, **params)
    loop = main_loop(disassemble(compile_with_nvcc(kernel.source("cuda"), "sm_90", "cubin")))
    # 4 warps share the 128 rows: each thread does 2 row tiles x 8 k-steps = 16 HMMA for
    # 128 x 128 / 128 = 128 weights an iteration, however often nvcc unrolled the loop.
    hmma = sum(op.startswith("HMMA") for op in loop)
    assert hmma and hmma % 16 == 0, loop
    per_weight = len(loop) / (128 * hmma // 16)
    measured, budget = GEMV_TC_INSTRUCTIONS_PER_WEIGHT[weights]
    assert per_weight <= 1.1 * measured, f"{per_weight:.2f} instructions a weight, was {measured}"
    assert per_weight < budget


def test_the_undefined_register_check_finds_a_read_before_any_write():
    sass = """
        /*0000*/                   MOV R4, 0x10 ;
        /*0010*/                   IMAD.WIDE R6, R4, 0x2, R8 ;
        /*0020*/                   LDG.E.128.CONSTANT R12, desc[UR8][R6.64] ;
        /*0030*/               @P1 LDG.E R2, desc[UR8][R20.64+0x4] ;
        /*0040*/                   LDC.64 R20, c[0x0][0x220] ;
        /*0050*/                   LDG.E R3, desc[UR8][R20.64] ;
    """
    from lpir.backends.cuda.sass import undefined_address_registers

    assert undefined_address_registers(sass) == ["0030 LDG.E R2, desc[UR8][R20.64+0x4]"]


def test_the_main_loop_is_the_longest_backward_branch():
    sass = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   IADD3 R2, R2, 0x1, RZ ;
        /*0020*/               @P0 BRA 0x10 ;
        /*0030*/                   LDG.E R4, desc[UR4][R6.64] ;
        /*0040*/                   HMMA.16816.F32 R8, R12, R16, R8 ;
        /*0050*/                   ISETP.GE.AND P1, PT, R2, 0x8, PT ;
        /*0060*/              @!P1 BRA `(.L_x_1) ;
        /*0070*/              @!P1 BRA 0x30 ;
        /*0080*/                   EXIT ;
    """
    from lpir.backends.cuda.sass import main_loop

    assert main_loop(sass) == ["LDG.E", "HMMA.16816.F32", "ISETP.GE.AND", "BRA", "BRA"]


@NO_NVCC
def test_lpir_emit_shows_ptx_and_sass_for_an_architecture_without_a_gpu(capsys):
    """`lpir emit --what ptx|sass --arch sm_XX`: what a given GPU would run (SASS needs
    cuobjdump, which the test extra installs)."""
    from lpir.backends.cuda.sass import find_cuobjdump

    from lpir.cli import main

    kernel = ["examples/gemv_tc.lp", "--target", "cuda", "-D", "N=256", "-D", "K=512"]
    assert main(["emit", *kernel, "--what", "ptx", "--arch", "sm_90"]) == 0
    assert ".target sm_90" in capsys.readouterr().out
    assert main(["emit", *kernel, "--what", "ptx", "--arch", "sm_80"]) == 0
    assert ".target sm_80" in capsys.readouterr().out
    if find_cuobjdump() is None:
        pytest.skip("cuobjdump is not installed")
    assert main(["emit", *kernel, "--what", "sass", "--arch", "sm_90"]) == 0
    sass = capsys.readouterr().out
    assert "code for sm_90" in sass and "HMMA.16816.F32" in sass


@pytest.mark.parametrize(
    ("target", "what", "arch", "message"),
    [
        ("cuda", "ptx", "sm9", "'sm9' is not a GPU architecture"),
        ("cuda", "ptx", "compute_90", "'compute_90' is not a GPU architecture"),
        ("cuda", "cuda", "sm_90", "the 'cuda' source does not depend on a GPU architecture"),
        ("cpu", "asm", "sm_90", "the 'asm' source does not depend on a GPU architecture"),
        ("cpu", "sass", None, "no 'sass' source for this target"),
        # sm_75 dumped a ptxas error (no bf16 mma), sm_70 and sm_99 nvcc's "Unsupported gpu
        # architecture"; --what ir ignored --arch
        ("cuda", "sass", "sm_75", "sm_75 is older than lpir supports: its CUDA code needs sm_80"),
        ("cuda", "ptx", "sm_70", "sm_70 is older than lpir supports"),
        ("cuda", "ptx", "sm_99", "sm_99 is not an NVIDIA GPU architecture"),
        ("cuda", "ir", "sm_90", "the 'ir' source does not depend on a GPU architecture"),
        # sm_86a and sm_89f reached nvcc ("Unsupported gpu architecture 'compute_86a'")
        ("cuda", "ptx", "sm_86a", "sm_86a is not an NVIDIA GPU architecture: the 'a' variants"),
        ("cuda", "ptx", "sm_90f", "sm_90f is not an NVIDIA GPU architecture: the 'f' variants"),
    ],
)
def test_lpir_emit_refuses_an_architecture_it_cannot_use(capsys, target, what, arch, message):
    from lpir.cli import main

    options = ["--arch", arch] if arch else []
    command = ["emit", "examples/vector_add.lp", "--target", target, "--what", what, *options]
    assert main(command) == 1
    error = capsys.readouterr().err
    assert message in error and "hint:" in error and "Traceback" not in error


def test_a_bad_lpir_cuda_arch_is_refused_before_nvcc(capsys, monkeypatch):
    from lpir.backends.cuda import device

    from lpir.cli import main

    monkeypatch.setattr(device, "gpu_available", lambda: False)
    monkeypatch.setenv("LPIR_CUDA_ARCH", "bogus")
    assert main(["emit", "examples/vector_add.lp", "--target", "cuda", "--what", "ptx"]) == 1
    error = capsys.readouterr().err
    assert "LPIR_CUDA_ARCH: 'bogus' is not a GPU architecture" in error and "hint:" in error
    monkeypatch.setenv("LPIR_CUDA_ARCH", " sm_90 ")
    from lpir.backends.cuda.kernel import target_arch

    assert target_arch() == "sm_90"


def test_an_unknown_lpir_cuda_compiler_is_refused(capsys, monkeypatch):
    """A misspelt compiler (nvcc12) was ignored, and the default compiler ran instead."""
    from lpir.backends.cuda.compiler import choose_compiler

    from lpir.cli import main

    monkeypatch.setenv("LPIR_CUDA_COMPILER", "nvcc12")
    assert main(["emit", "examples/vector_add.lp", "--target", "cuda", "--what", "ptx"]) == 1
    error = capsys.readouterr().err
    assert "LPIR_CUDA_COMPILER: 'nvcc12' is not a CUDA compiler" in error and "hint:" in error
    monkeypatch.setenv("LPIR_CUDA_COMPILER", " NVCC ")
    assert choose_compiler() == "nvcc"


@NO_NVCC
def test_an_architecture_this_nvcc_does_not_know_is_a_clear_error():
    """sm_101 (CUDA 12.8-12.9; CUDA 13 calls it sm_110) passed lpir's checks and nvcc 13's
    "Unsupported gpu architecture" read as a bug in lpir's generated code."""
    with pytest.raises(LpirError) as caught:
        compile_with_nvcc("__global__ void k() {}", "sm_999", "ptx")
    assert "does not compile for sm_999" in caught.value.message
    assert "nvcc --list-gpu-arch" in (caught.value.hint or "")


@NO_NVCC
@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "f64"])
def test_every_math_function_compiles(dtype):
    """Each float function of the language (erf too: `erff` / `erf`) in each float dtype is a
    CUDA math function nvcc knows, with no warning."""
    import lpir
    from lpir.ir.ops import FLOAT_UNARY

    stores = "\n".join(f"    store(y[{i}, :], {name}(t))" for i, name in enumerate(FLOAT_UNARY))
    source = f"""
kernel functions[T = f32](x: global T[256], y: global T[{len(FLOAT_UNARY)}, 256])
    blocks(1) threads(128) {{
    t = load(x[:])
{stores}
}}
"""
    kernel = lpir.compile(source, target="cuda", T=dtype)
    log: list[str] = []
    compile_with_nvcc(kernel.source("cuda"), "sm_90", "cubin", strict=True, log=log)
    assert "warning" not in "".join(log).lower()


@NO_NVCC
@pytest.mark.parametrize("dtype", ["f32", "f16", "f64"])
def test_a_literal_zero_divisor_compiles_without_a_warning(dtype):
    """x / 0.0 is IEEE's inf or NaN on every target; written as the literal 0.0f, nvcc warned
    of a division by zero (#39-D), an error under -Werror (quantize with WT=u1, ZERO=1)."""
    import lpir

    source = """
kernel divide[T = f32](x: global T[256], y: global T[2, 256]) blocks(1) threads(128) {
    t = load(x[:])
    store(y[0, :], t / 0.0)
    store(y[1, :], t / -0.0)
}
"""
    kernel = lpir.compile(source, target="cuda", T=dtype)
    log: list[str] = []
    compile_with_nvcc(kernel.source("cuda"), "sm_90", "cubin", strict=True, log=log)
    assert "warning" not in "".join(log).lower()
