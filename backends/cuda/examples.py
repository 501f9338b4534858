"""The example kernels at the parameter sets the CUDA backend is checked on.

Shared by the compile-only tests (nvcc, sm_80 and sm_90), the host-emulation tests, the GPU
launch tests and the GPU session script, so that all of them cover the same kernels.
"""

from __future__ import annotations

from pathlib import Path

from lpir.backends.cuda.source import emit_kernel, translation_unit

from lpir.ir.core import Module

EXAMPLES_DIRECTORY = Path(__file__).resolve().parents[2] / "examples"

#: Every weight type the GEMV benchmark and the compile tests cover.
WEIGHT_TYPES = (
    *(f"u{n}" for n in range(1, 9)),
    *(f"i{n}" for n in range(2, 9)),
    "f4e2m1",
    "f6e3m2",
    "f6e2m3",
    "f8e4m3",
)

COMPILE_CASES: dict[str, list[dict]] = {
    "vector_add": [
        {},
        {"N": 70001, "BLOCK": 512, "T": "f16"},
        {"N": 5000, "T": "bf16"},
        {"N": 3000, "T": "i32"},
        {"N": 3000, "T": "u8"},
    ],
    "softmax": [{}, {"M": 37, "N": 100}, {"M": 300, "N": 512, "T": "f16"}, {"T": "bf16"}],
    # a row's first largest logit: a running best per column, the columns met at the end
    "greedy": [{}, {"M": 5, "V": 1000, "BV": 256, "T": "f16"}, {"M": 3, "V": 50257, "BM": 2}],
    # a residual add and RMSNorm: rows over 32 threads (shuffles), over 256 (across warps),
    # a row edge and N = 3 x 256 (N = 1000 = 8 x 125 is correct too, but its [4, 1000] tile
    # can spread over 8 of the 128 threads only: 500 f32 a thread, in local memory)
    # quantized embedding rows gathered by ids, the number of tokens read at run time
    "embedding": [
        {"V": 1000, "D": 1024},
        {"WT": "u3", "V": 50, "D": 192, "G": 64, "ZERO": 4, "OT": "f32"},
        {"WT": "f4e2m1", "V": 40, "D": 128, "G": 32, "ZERO": 0, "OT": "bf16", "BT": 4},
    ],
    # a mixture-of-experts GEMM over pairs sorted by expert (vLLM's fused_moe): gathered rows
    # of a, one expert's low-bit weights a tile, padding pairs written nowhere; sizes at run time
    "moe_gemm": [
        {},
        {"WT": "u3", "E": 3, "K": 128, "N": 96, "G": 64, "ZERO": 4, "TOPK": 1},
        {"WT": "f4e2m1", "T": "bf16", "E": 4, "K": 128, "N": 64, "G": 32, "ZERO": 0, "BM": 8},
    ],
    # mixture-of-experts routing (vLLM's topk_softmax): a softmax, an argsort a row, the top K
    # (at most 32 experts here: a thread's sort of 64 is 7500 lines of CUDA C, 16 s of nvcc)
    "moe_topk": [
        {},
        {"M": 37, "E": 30, "BE": 32, "K": 4, "T": "bf16"},
        {"M": 100, "E": 16, "BE": 16, "K": 4, "RENORM": 0, "T": "f32", "BM": 32},
    ],
    # mixture-of-experts alignment (vLLM's moe_align_block_size): a shared count, a cumsum,
    # each pair's slot handed out by an atomic_add used as a value
    "moe_align": [{"M": 333, "TOPK": 8, "E": 64, "BE": 64, "BS": 64}],
    "rmsnorm": [
        {},
        {"M": 5, "N": 4096, "BM": 1, "THREADS": 256, "T": "bf16"},
        {"M": 37, "N": 768, "T": "f32"},
    ],
    "gemv_wq": [{"N": 256, "K": 512, "WT": wt, "ZERO": 0} for wt in WEIGHT_TYPES]
    + [{"N": 100, "K": 1000, "WT": "u3", "ZERO": 4}, {"N": 64, "K": 1000, "WT": "f4e2m1"}]
    # the narrower row tiles benchmarks/gpu_gemv.py tries (more blocks in flight)
    + [{"N": 200, "K": 512, "WT": "u4", "ZERO": 8, "BN": bn} for bn in (32, 16)]
    + [{"N": 96, "K": 384, "WT": "u3", "ZERO": 4, "BN": 16, "BK": 64}]
    # deeper pipelines (gpu_gemv.py --stages), the loop shorter than the pipeline included
    + [{"N": 96, "K": 1000, "WT": "u5", "ZERO": 16, "STAGES": s} for s in (1, 3)]
    # (4 stages of the default 64 x 128 tile need over 255 registers: a narrower one)
    + [{"N": 96, "K": 1000, "WT": "u5", "ZERO": 16, "BN": 16, "BK": 64, "STAGES": 4}]
    + [{"N": 64, "K": 256, "WT": "u4", "ZERO": 8, "BK": 128, "STAGES": 4}],
    # a zero point and a scale per group (GPTQ's and AWQ's asymmetric quantization)
    "gemv_zeros": [
        {"N": 256, "K": 512},
        {"N": 100, "K": 384, "WT": "u3", "ZT": "f16"},
        {"N": 64, "K": 320, "WT": "i4", "ZT": "f32", "G": 64, "BK": 64},
    ],
    # K split over blocks that add into y atomically: edges in N and K, a split past K
    "gemv_splitk": [
        {"N": 256, "K": 512},
        {"N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 3, "STAGES": 3},
        {"N": 64, "K": 384, "WT": "f4e2m1", "ZERO": 0, "SPLIT": 5},
    ],
    # the GEMV on tensor cores: every weight type (k-permuted fragments, fields decoded in
    # pairs), edges in N and K, deeper pipelines, wider and narrower tiles
    "gemv_tc": [{"N": 256, "K": 512, "WT": wt, "ZERO": 0} for wt in WEIGHT_TYPES]
    + [{"N": 100, "K": 1000, "WT": "u3", "ZERO": 4}, {"N": 64, "K": 1000, "WT": "f4e2m1"}]
    + [{"N": 200, "K": 512, "WT": "u4", "ZERO": 8, "BN": 128, "STAGES": 4}]
    + [{"N": 96, "K": 384, "WT": "u2", "ZERO": 2, "BN": 64, "BK": 64, "STAGES": 3}]
    + [{"N": 72, "K": 256, "WT": "u6", "ZERO": 32, "BK": 32, "STAGES": 1}]
    # K split over blocks that add into y atomically (a split past K included)
    + [{"N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 3, "STAGES": 4}]
    + [{"N": 64, "K": 384, "WT": "u4", "ZERO": 8, "SPLIT": 5}],
    # the small-batch matmul on tensor cores: x transposed into the mma's b, y^T stored
    "skinny_wq": [
        {"M": 16, "N": 256, "K": 512},
        {"M": 5, "N": 100, "K": 1000, "WT": "u3", "ZERO": 4},
        {"M": 1, "N": 64, "K": 384, "WT": "f4e2m1", "ZERO": 0, "MB": 8},
        {"M": 40, "N": 200, "K": 256, "WT": "u5", "ZERO": 16, "MB": 32, "STAGES": 3},
        {"M": 20, "N": 200, "K": 256, "WT": "u4", "ZERO": 8, "BN": 128, "STAGES": 4},
        {"M": 64, "N": 64, "K": 256, "WT": "u8", "ZERO": 128, "MB": 64, "STAGES": 1},
        {"M": 20, "N": 100, "K": 1000, "WT": "u3", "ZERO": 4, "SPLIT": 3, "STAGES": 3},
        {"M": 70, "N": 100, "K": 384, "WT": "u4", "ZERO": 8, "MB": 64, "XS": 1, "STAGES": 3},
        {"M": 100, "N": 64, "K": 200, "WT": "f4e2m1", "ZERO": 0, "MB": 128, "BK": 32, "XS": 1},
        # bf16 activations (bf16 mma)
        {"M": 5, "N": 100, "K": 1000, "WT": "u4", "ZERO": 8, "T": "bf16"},
        {"M": 40, "N": 128, "K": 384, "WT": "u8", "ZERO": 128, "MB": 64, "XS": 1, "T": "bf16"},
    ],
    "matmul_wq": [
        {},
        {"M": 100, "N": 64, "K": 256, "WT": "u3", "ZERO": 4},
        {"M": 16, "N": 96, "K": 128, "WT": "f4e2m1", "ZERO": 0},
        {"M": 64, "N": 64, "K": 128, "WT": "i4", "ZERO": 0},
        # tiles benchmarks/gpu_matmul.py tries: 16 rows for M = 16, 128 x 128 for large M
        {"M": 16, "N": 256, "K": 256, "BM": 16, "BN": 128},
        # the tensor-core GEMV of benchmarks/gpu_gemv.py: one row of A, 15 masked
        {"M": 1, "N": 512, "K": 256, "BM": 16, "BN": 256, "WT": "u3", "ZERO": 4},
        {"M": 1, "N": 256, "K": 256, "BM": 16, "BN": 128, "BK": 64, "WT": "f8e4m3", "ZERO": 0},
        {"M": 200, "N": 128, "K": 128, "BM": 128, "BN": 128, "WT": "u3", "ZERO": 4},
        # 8 warps on a 128 x 128 tile (gpu_matmul.py's 128x128x32@256), 3 stages
        {"M": 150, "N": 200, "K": 256, "BM": 128, "BN": 128, "THREADS": 256, "STAGES": 3},
        {"M": 1, "N": 256, "K": 384, "BM": 16, "BN": 128, "WT": "u4", "STAGES": 3},
        {"M": 40, "N": 64, "K": 96, "WT": "u6", "ZERO": 32, "STAGES": 1},
        # bf16 activations and scales (bf16 mma)
        {"M": 70, "N": 128, "K": 256, "WT": "u4", "T": "bf16"},
        {"M": 150, "N": 200, "K": 256, "BM": 128, "BN": 128, "THREADS": 256, "T": "bf16"},
    ],
    # microscaled weights: blocks of 32 (or 16) sharing an e8m0 (or f8e4m3) scale, tiles
    # reshaped to [rows, blocks, 32]; edges in N and K, K not a multiple of the block
    "gemv_mx": [
        {"N": 256, "K": 512},
        {"N": 100, "K": 400, "WT": "f6e3m2"},
        {"N": 64, "K": 256, "WT": "f8e4m3", "BK": 64, "STAGES": 3},
        {"N": 96, "K": 384, "WT": "f4e2m1", "ST": "f8e4m3", "G": 16},
        {"N": 128, "K": 512, "WT": "f6e2m3", "BN": 32},
    ],
    # rotary embedding: pairs cut out with reshape and an index, put back with stack
    "rope": [
        {"T": 100, "H": 2, "D": 64},
        {"T": 37, "H": 3, "D": 128, "INTERLEAVED": 1, "QT": "f32"},
        {"T": 50, "H": 1, "D": 32, "QT": "bf16", "BT": 8},
        {"T": 64, "H": 2, "D": 64, "INTERLEAVED": 1},
    ],
    # two tensor-core dots a step (q k^T, then the weights times v) around an online softmax
    "attention": [
        {"H": 2, "L": 128},
        {"H": 3, "L": 100, "CAUSAL": 1, "BQ": 32},
        {"H": 1, "L": 200, "D": 32, "T": "bf16", "BQ": 64, "BKV": 16},
        {"H": 2, "L": 96, "D": 128, "CAUSAL": 1, "BQ": 16, "BKV": 64},
        {"H": 2, "L": 130, "SHARED_KV": 0},
    ],
    "dequantize": [
        {},
        {"M": 50, "N": 100, "WT": "f6e3m2"},
        {"M": 32, "N": 64, "WT": "u5", "ZERO": 16},
        {"M": 16, "N": 96, "WT": "f8e5m2"},
        {"M": 16, "N": 64, "WT": "f3e1m1"},
        {"M": 32, "N": 64, "WT": "i4"},
    ],
    # a KV cache's new rows quantized per group, written under a mask of the call's rows
    "gemv_gptq": [
        {"N": 256, "K": 512},
        {"N": 200, "K": 256, "G": 32, "BK": 32},
    ],
    # NF4: bitsandbytes' bytes of two codes, a codebook gathered per weight, an absmax per 64;
    # N and K edges
    "gemv_nf4": [{"N": 100, "K": 320}],
    "kv_append": [
        {"H": 2, "S": 64},
        {"QT": "u3", "D": 64, "G": 16, "H": 2, "S": 40},
        {"QT": "u8", "H": 1, "S": 16},
    ],
    # paged decode attention: K/V rows gathered through a block table, a run-time context
    "paged_attention": [
        {"THREADS": 128, "BT": 32},
        {"KT": "bf16", "OT": "bf16", "HKV": 8, "D": 128, "THREADS": 64, "BT": 16},
        {"KT": "f32", "H": 6, "HKV": 2, "D": 64, "PS": 8, "THREADS": 128, "BT": 64},
    ],
    "quantize": [
        {},
        {"M": 50, "N": 100, "WT": "i3"},
        {"M": 32, "N": 64, "WT": "f4e2m1"},
        {"M": 32, "N": 96, "WT": "u5", "ZERO": 16},
        {"M": 16, "N": 64, "WT": "f6e2m3"},
        {"M": 16, "N": 64, "WT": "f8e4m3"},
    ],
}


def example_path(name: str, directory: Path | None = None) -> Path:
    return (directory or EXAMPLES_DIRECTORY) / f"{name}.lp"


def thread_module(name: str, params: dict, directory: Path | None = None) -> Module:
    """The example's final thread IR for `params` (the "cuda" pipeline), without compiling."""
    from lpir.language.specialize import specialize
    from lpir.language.syntax import parse_program
    from lpir.runtime.specialization import run_pipeline

    path = example_path(name, directory)
    program = parse_program(path.read_text(), str(path))
    _, module = specialize(program, None, dict(params))
    return run_pipeline(module, "cuda", {}, verify=False)


def example_translation_unit(name: str, cases: list[dict] | None = None) -> str:
    """One CUDA C file holding the example's kernel at every parameter set (`name_0`, ...)."""
    cases = COMPILE_CASES[name] if cases is None else cases
    kernels = [
        emit_kernel(thread_module(name, params).kernels[0], f"{name}_{index}")
        for index, params in enumerate(cases)
    ]
    return translation_unit(kernels)
