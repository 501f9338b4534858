"""What a compilation target prefers: vector widths and the layouts its instructions want.

Passes ask the target, never the host directly, so that `lpir opt --target cuda` on a laptop
gives the same IR as on a GPU machine. The CPU target is the host's in one respect only: whether
its dots of bf16 multiply two steps of k per instruction (AVX512-BF16's `vdpbf16ps`), which
decides between two forms of the IR (elsewhere bf16 operands are widened to f32 as f16 ones
are: pairs emulated by FMAs would cost 15-25 % there, measured with the feature hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every target a kernel runs on, what `lpir.compile(..., target=)`, `lpir run --target` and the
#: example scripts accept, with what each is for (README's list of targets says the same).
RUN_TARGETS: dict[str, str] = {
    "cpu": "LLVM through llvmlite, all cores: the fast path on the host",
    "cuda": "CUDA C through NVRTC (or nvcc), on an NVIDIA GPU",
    "interp": "the reference interpreter on tile IR: the oracle every other target is checked "
    "against",
    "threads": "the CPU's pipeline down to thread IR, run by the thread-IR interpreter: the "
    "passes checked without a backend",
    "threads-cuda": "the GPU's pipeline (coalesced layouts, tensor-core dots) down to thread "
    "IR, run by the thread-IR interpreter: the GPU's IR checked without a GPU or a compiler",
    "cuda-host": "the CUDA C compiled by the host's C++ compiler and run on the CPU, one OS "
    "thread per GPU thread (slow): the GPU code checked without a GPU, failing on a vector "
    "access a GPU would fault on and on a shared-memory race",
}


@dataclass(frozen=True)
class Target:
    """A code-generation target.

    Attributes:
        name: "cpu", "cuda" or "interp".
        vector_bytes: the widest single memory access (a CPU SIMD register, 16 bytes on a GPU).
        coalesced_loads: global loads and stores take the target's coalesced layout (GPU)
            rather than whatever layout their users want (CPU, where any per-thread order is a
            plain loop over memory).
        bf16_dot_pairs: a dot of bf16 operands into f32 multiplies two steps of k at a time
            (the thread op `dot_pairs`; a CPU with AVX512-BF16).
    """

    name: str
    vector_bytes: int
    coalesced_loads: bool
    bf16_dot_pairs: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.name == "cuda"

    def lanes(self, nbits: int) -> int:
        """How many elements of `nbits` bits one widest access (a vector register) holds."""
        return 8 * self.vector_bytes // nbits


def get_target(name: str) -> Target:
    """The target called `name`: "cpu", "cuda" or "interp"."""
    if name == "cuda":
        return Target("cuda", 16, True)
    if name in ("cpu", "interp"):
        # 64 bytes (one AVX-512 register) whatever the host: the IR stays the same on every
        # machine, and LLVM splits wider vectors for hosts with narrower registers.
        return Target(name, 64, False, bf16_dot_pairs=_host_has_bf16_dot_products())
    from lpir.errors import LpirError

    raise LpirError(f"unknown target {name!r}", hint="use cpu, cuda or interp")


def _host_has_bf16_dot_products() -> bool:
    """Whether this machine has AVX512-BF16 (as the CPU backend compiles for it)."""
    from lpir.backends.llvm import jit

    return "+avx512bf16" in jit.host()[2].split(",")
