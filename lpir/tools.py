"""What `lpir opt`, `lpir emit` and `lpir banks` do, as functions (the CLI and tests call these)."""

from __future__ import annotations

import math
from pathlib import Path

from lpir.errors import LpirError
from lpir.ir.core import Kernel, Module
from lpir.ir.grid import grid_text, is_empty, launch_grid
from lpir.ir.printer import print_module
from lpir.language.ast import KernelDef, Program
from lpir.language.specialize import specialize
from lpir.runtime.ir_kernel import IR_SUFFIXES, load_ir, parse_source
from lpir.runtime.source_files import read_source_file


def load_module(path: str, params: dict | None = None, kernel: str | None = None) -> Module:
    """Tile IR of a kernel source specialized with `params` (and defaults), or parsed and
    verified IR text (a pass given IR that breaks an invariant fails with a traceback, not at
    the line to fix).

    IR text is already specialized: `params` are an error for it, `kernel` keeps one kernel.
    Without `kernel`, every kernel of the file, as `lpir opt` prints them (of a source, each
    with the `params` it declares: one that no kernel declares is an error).
    """
    file = Path(path)
    if file.suffix in IR_SUFFIXES:
        return load_ir(path, params, kernel)
    if not file.exists():
        raise LpirError(f"no such file: {path}")
    text = read_source_file(file)
    program = parse_source(text, str(file))
    if kernel is not None or len(program.kernels) < 2:
        _, module = specialize(program, kernel, params or {})
        return module
    return Module([_lowered(program, k, params or {}) for k in program.kernels])


def _lowered(program: Program, kernel: KernelDef, params: dict) -> Kernel:
    """The tile IR of one of several kernels of a source, with the `params` it declares;
    a parameter that no kernel of the source declares is an error."""
    declared = {p.name for k in program.kernels for p in k.params}
    unknown = [name for name in params if name not in declared]
    if unknown:
        names = ", ".join(k.name for k in program.kernels)
        raise LpirError(
            f"no kernel of {Path(program.file).name} ({names}) has a parameter {unknown[0]!r}",
            hint="set only parameters the kernels declare (each applies to the kernels that "
            "declare it), or choose one kernel with --kernel NAME",
        )
    own = {p.name for p in kernel.params}
    chosen = {name: value for name, value in params.items() if name in own}
    return specialize(program, kernel.name, chosen)[1].kernels[0]


def optimize(
    path: str,
    passes: str = "",
    target: str = "cpu",
    params: dict | None = None,
    kernel: str | None = None,
    print_after_all: bool = False,
    verify: bool = True,
) -> str:
    """Run the comma-separated `passes` on the file's IR; return the text to print. Without
    `passes`, the IR as parsed, or with `print_after_all` the IR after each pass of the
    target's whole pipeline (what `lpir.compile` runs: no pass on thread IR). `verify`:
    verify the IR after each pass (the input is verified always)."""
    from lpir.ir.verifier import verify as verify_module
    from lpir.passes import PassPipeline, parse_pipeline
    from lpir.passes.pipeline import default_passes

    # the input is always verified; `verify` (--no-verify) is the checks between passes
    module = verify_module(load_module(path, params, kernel))
    chunks: list[str] = []

    def after_each(name: str, result: Module) -> None:
        if print_after_all:
            chunks.append(f"// -----// IR after {name} //----- //\n{print_module(result)}")

    names = parse_pipeline(passes)
    if not names and print_after_all:
        names = list(default_passes(target, module))
        if not names:  # thread IR, which lpir run and lpir.compile take as it is
            header = "// -----// IR as parsed: thread IR, no pass runs //----- //"
            chunks.append(f"{header}\n{print_module(module)}")
    pipeline = PassPipeline(names, verify_each=verify, after_each=after_each, target=target)
    result = pipeline.run(module)
    if not print_after_all:
        chunks.append(print_module(result))
    return "".join(chunks)


def emit(
    path: str,
    target: str,
    what: str | None,
    params: dict,
    kernel: str | None,
    arch: str | None = None,
) -> str:
    """Generated code of a kernel for `target`: LLVM IR, assembly, CUDA C, PTX, SASS or thread
    IR (PTX and SASS for the GPU architecture `arch`)."""
    import lpir

    what = what or ("llvm" if target == "cpu" else "cuda")
    if arch is not None:  # refused before compiling: ptx and sass alone take one
        if what == "ir" or (target == "cpu" and what == "llvm"):
            raise LpirError(
                f"the {what!r} source does not depend on a GPU architecture",
                hint="leave out --arch, or emit ptx or sass with --target cuda",
            )
        from lpir.backends.cuda.kernel import checked_arch

        checked_arch(arch)
    if target == "cpu" and what == "llvm":
        # The LLVM IR as generated needs no machine code: lower with the cpu pipeline (the
        # "threads" target) and print the module, instead of compiling it first.
        from lpir.backends.llvm import llvm_module

        lowered = lpir.compile(path, target="threads", kernel=kernel, **params)
        refuse_empty_grid(lowered.specialize(None).kernel_ir, "no code to emit", path)
        return str(llvm_module(lowered.module))
    compiled = lpir.compile(path, target=target, kernel=kernel, **params)
    refuse_empty_grid(compiled.specialize(None).kernel_ir, "no code to emit", path)
    if what == "ir":
        return compiled.ir("final")
    text = compiled.source(what, arch)
    return text if text.endswith("\n") else text + "\n"


def empty_grid_note(kernel: Kernel) -> str | None:
    """What to say of a kernel whose grid has a block count of 0 (an empty batch, e.g. N = 0
    deduced from empty tensors); None where every count is at least 1."""
    if not is_empty(kernel.grid):
        return None
    shown = ", ".join(f"{name} = {getattr(v, 'name', v)}" for name, v in kernel.params.items())
    of = f" ({shown})" if shown else ""
    return (
        f"the grid of {kernel.name}, blocks({grid_text(kernel.grid)}), is empty for these "
        f"parameters{of}: a call runs no block"
    )


def refuse_empty_grid(kernel: Kernel, what_is_missing: str, path: str) -> None:
    """An error saying that the grid is empty, so there is `what_is_missing`."""
    note = empty_grid_note(kernel)
    if note is None:
        return
    if Path(path).suffix in IR_SUFFIXES:
        hint = "IR text is specialized: lower the kernel source with parameters that make "
        hint += "every block count at least 1"
    else:
        hint = "give parameters (-D) that make every block count at least 1; lpir opt prints "
        hint += "the tile IR of the empty grid"
    raise LpirError(f"{note}, so there is {what_is_missing}", kernel.location, hint)


def bank_conflicts(
    path: str, params: dict, kernel: str | None, seed: int = 0, blocks: int = 1
) -> str:
    """The shared-memory bank conflicts of a kernel's CUDA code, access by access: its first
    `blocks` blocks run on the thread interpreter (no GPU) on the inputs `lpir run` makes
    (`lpir.backends.cuda.bank_conflicts`)."""
    import warnings

    import numpy as np

    import lpir
    from lpir.backends.cuda.bank_conflicts import count_bank_conflicts
    from lpir.companion import companion_inputs
    from lpir.runner import argument_names, load_companion, random_arguments
    from lpir.runtime import arguments

    if blocks < 1:
        raise LpirError(f"--blocks {blocks}: run at least one block", hint="e.g. --blocks 1")
    spec = lpir.compile(path, target="threads-cuda", kernel=kernel, **params).specialize(None)
    refuse_empty_grid(spec.kernel_ir, "no shared-memory access to count", path)
    rng = np.random.default_rng(seed)
    companion = load_companion(path)
    if companion is not None:
        values = companion_inputs(companion, spec.params, rng, argument_names(spec.kernel_ir))
    else:
        values = random_arguments(spec, rng)
    buffers = [
        arguments.byte_buffer(value) if hasattr(arg.type, "shape") else value
        for arg, value in zip(spec.kernel_ir.args, values)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the values do not matter here
        found = count_bank_conflicts(spec.kernel_ir, buffers, blocks)
    if not found:
        return "no shared-memory accesses in the thread IR (cp.async slots are conflict-free)\n"
    lines = [record.describe() for record in found]
    wavefronts, ideal = sum(r.wavefronts for r in found), sum(r.ideal for r in found)
    ran = min(blocks, math.prod(launch_grid(spec.kernel_ir, buffers)))  # what the grid has
    every = " (the whole grid)" if ran < blocks else ""
    lines.append(
        f"total: {wavefronts} wavefronts in {ran} block{'' if ran == 1 else 's'}{every}, "
        f"{wavefronts / ideal:.2f}x conflict-free"
    )
    return "\n".join(lines) + "\n"
