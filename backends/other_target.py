"""What a backend says of a thread op it has no emitter for: where the other backend emits it,
the thread IR was lowered for the other target (IR text from `lpir opt --target cuda` run on
the CPU, or the CPU's `dot_pairs` given to the CUDA backend), and the error says which targets
run it rather than only that the op is unknown."""

from __future__ import annotations

import importlib

from lpir.ir.core import Operation

# what each backend is called in messages, and the targets that run the IR lowered for it
_BACKENDS = {
    "llvm": ("LLVM", "the CPU", "cpu (or threads, the thread interpreter)"),
    "cuda": ("CUDA", "CUDA", "cuda or cuda-host (or threads-cuda, the thread interpreter)"),
}


def _emits(backend: str, op: Operation) -> bool:
    """Whether `backend` has an emitter for `op`."""
    if backend == "cuda":
        importlib.import_module("lpir.backends.cuda.source")  # registers every emitter
        from lpir.backends.cuda.emitter import EMITTERS as CUDA_EMITTERS

        return type(op) in CUDA_EMITTERS
    importlib.import_module("lpir.backends.llvm")  # registers every emitter
    from lpir.backends.llvm.ops import EMITTERS as LLVM_EMITTERS

    return op.name in LLVM_EMITTERS


def cannot_emit(op: Operation, backend: str) -> tuple[str, str | None]:
    """(message, hint) for `op`, which `backend` ("llvm" or "cuda") has no emitter for."""
    name = _BACKENDS[backend][0]
    message = f"the {name} backend cannot emit '{op.name}'"
    other = "cuda" if backend == "llvm" else "llvm"
    if _emits(other, op):
        _, lowered_for, targets = _BACKENDS[other]
        return (
            f"{message}: this thread IR was lowered for {lowered_for}",
            f"run it with --target {targets}, or compile the kernel's source (or tile IR) "
            f"for {'the CPU' if backend == 'llvm' else 'CUDA'} instead",
        )
    return message, None
