"""Run passes in order, verifying and recording the IR after each.

The default pipeline of each target is one list in `PIPELINES`, the only place that says what
runs for `target="cpu"`, `"cuda"` or `"interp"`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lpir.passes.base import Pass, get_pass

from lpir.ir.core import Module
from lpir.ir.verifier import verify

_CLEANUP = ("canonicalize", "cse", "dce")
# cpu and cuda run the same lowering (cpu a few more passes around it, cuda one more after);
# what differs is the target each pass is given.
_LAYOUTS = (*_CLEANUP, "layout-selection", "canonicalize")
# a tile read or written where the block touched it before waits at a barrier (insert-syncs)
_TO_THREADS = (*_LAYOUTS, "insert-syncs", "lower-to-threads")
_THREAD_IR = ("bit-packing", "vectorize", "prune-barriers")

PIPELINES: dict[str, tuple[str, ...]] = {
    "interp": _CLEANUP,
    # a dot of a repeated column multiplies it once (an mma would do all columns for free);
    # a matmul's f16 operands are widened once, before anyone replicates them; threads that
    # only repeat others' work are not run, threads that would hold little hold more; a loop
    # adding sums of lanes keeps the lanes and sums them once, after the loop; exact integer
    # arithmetic in f16 is done in f32, which the CPU's dots take
    "cpu": (
        *_CLEANUP,
        "narrow-dots",
        "widen-dot-operands",
        *_LAYOUTS,
        "insert-syncs",
        "drop-replicas",
        "fold-threads",
        "lower-to-threads",
        "defer-lane-sums",
        "widen-exact-casts",
        *_THREAD_IR,
        *_CLEANUP,
    ),
    # the GPU also keeps loop iterations' global loads in flight ahead of their use
    "cuda": (*_TO_THREADS, *_THREAD_IR, "pipeline-loads", *_CLEANUP),
}


def default_passes(target: str, module: Module) -> tuple[str, ...]:
    """The passes `lpir.compile` runs on `module` for `target`: its pipeline on tile IR, none on
    thread IR (lowered already: bit-packing or pipeline-loads run twice would change it)."""
    if module.kernels and all(kernel.stage == "thread" for kernel in module.kernels):
        return ()
    return PIPELINES[target]


def parse_pipeline(text: str) -> list[str]:
    """`"canonicalize,dce"` -> ["canonicalize", "dce"] (spaces and empty entries ignored)."""
    return [name.strip() for name in text.split(",") if name.strip()]


class PassPipeline:
    """A sequence of passes.

    Args:
        passes: pass instances or names.
        verify_each: run `verify()` after every pass (`lpir.compile`: where `LPIR_VERIFY_EACH`
            asks for it; the pipeline tests always).
        target: "cpu", "cuda" or "interp", for passes whose choices depend on it.
        after_each: called with (pass name, module) after every pass, e.g. to print the IR.
    """

    def __init__(
        self,
        passes: Sequence[Pass | str],
        verify_each: bool = True,
        after_each: Callable[[str, Module], None] | None = None,
        target: str = "cpu",
    ):
        self.passes = [get_pass(p, target=target) if isinstance(p, str) else p for p in passes]
        self.verify_each = verify_each
        self.after_each = after_each

    def run(self, module: Module) -> Module:
        for pass_ in self.passes:
            pass_.check_input(module)
            module = pass_.run(module)
            if self.verify_each:
                verify(module)
            if self.after_each is not None:
                self.after_each(pass_.name, module)
        return module
