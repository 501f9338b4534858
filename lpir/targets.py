"""What a compilation target prefers: vector widths and the layouts its instructions want.

Passes ask the target, never the host directly, so that `lpir opt --target cuda` on a laptop
gives the same IR as on a GPU machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A code-generation target.

    Attributes:
        name: "cpu", "cuda" or "interp".
        vector_bytes: the widest single memory access (a CPU SIMD register, 16 bytes on a GPU).
        coalesced_loads: global loads and stores take the target's coalesced layout (GPU)
            rather than whatever layout their users want (CPU, where any per-thread order is a
            plain loop over memory).
    """

    name: str
    vector_bytes: int
    coalesced_loads: bool

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
        return Target(name, 64, False)
    from lpir.errors import LpirError

    raise LpirError(f"unknown target {name!r}", hint="use cpu, cuda or interp")
